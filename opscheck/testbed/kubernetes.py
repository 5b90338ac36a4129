"""A real single-node Kubernetes 1.20.2 on loopback ports, with its own Docker Engine.

    with Cluster(tmp / "k8s") as cluster:        # ~16 s: dockerd, etcd, apiserver, ..., kubelet
        cluster.wait_node_ready()
        cluster.kubectl("get", "nodes")           # as admin (system:masters)
        cluster.reader_kubeconfig                 # the opscheck user: a token, no rights yet
        cluster.install_rbac()                    # deploy/kubernetes RBAC: opscheck_kubeconfig
        cluster.apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                       "spec": pod_spec("echo hi; sleep 60")})

The binaries come from ``scripts/build-kubernetes.sh`` (cached per machine in
``$OPSCHECK_CACHE/kubernetes-1.20.2/bin``); dockerd, etcd and busybox are Debian's. Everything
follows ../shared/notes/kubernetes.md: dockerd never makes a bridge (``--bridge=none``), images
are imported (no registry is reachable), pods must use ``hostNetwork: true`` and
``dnsPolicy: Default``. Teardown removes the containers, stops every daemon and unmounts what
the kubelet and dockerd mounted.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import shutil
import ssl
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self, TypeVar

from opscheck.testbed import free_port
from opscheck.testbed.docker import DockerEngine
from opscheck.testbed.process import ServerProcess

VERSION = "1.20.2"
PAUSE_IMAGE = "k8s.gcr.io/pause:3.2"
BUSYBOX_IMAGE = "busybox:testbed"  # not :latest, which the kubelet would always try to pull
BUSYBOX = "/bin/busybox"  # Debian's busybox-static
_APPLETS = "sh ls df cat sleep echo grep true false env ps kill date head tail wc mkdir rm touch dd"
# uname: testinfra's `uname -n` for kubectl:// hosts
BUSYBOX_APPLETS = tuple(
    f"{_APPLETS} du mount id hostname sed awk seq yes printf test uname stat find xargs cut sort"
    " uniq tr basename dirname".split()
)
NODE = "localhost"
T = TypeVar("T")
NOT_READY_TAINTS = {"node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"}
CONTROLLERS = (
    "*,-nodeipam,-cloud-node-lifecycle,-route,-service,-csrsigning,-bootstrapsigner,-tokencleaner"
)
# Static bearer tokens: name -> (user, groups). ``opscheck`` gets no group but the implicit
# system:authenticated: its rights come only from the RBAC objects a test binds to it.
USERS: dict[str, tuple[str, str]] = {
    "admin": ("admin", "system:masters"),
    "controller-manager": ("system:kube-controller-manager", ""),
    "scheduler": ("system:kube-scheduler", ""),
    "kubelet": (f"system:node:{NODE}", "system:nodes"),
    "opscheck": ("opscheck", ""),
}


class KubernetesError(RuntimeError):
    """A piece of the testbed cluster did not start, or did not reach the state asked for."""


REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
# What install_rbac() applies: the account, its roles and binding (not the CronJobs, whose
# batch/v1 API 1.20 does not serve).
RBAC_FILES = ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml")


def pod_spec(
    command: str | list[str] | None = None,
    *,
    name: str = "main",
    image: str = BUSYBOX_IMAGE,
    **container_extra: Any,
) -> dict[str, Any]:
    """A PodSpec that runs here: host network (no CNI), ``dnsPolicy: Default`` (no cluster
    DNS), the imported busybox never pulled, no ServiceAccount token mounted (no test pod talks
    to the API server, and a token volume in a namespace created a moment ago may not mount at
    once: a real ``FailedMount`` warning event then breaks tests that expect none); ``command``
    a shell line or an argv, extra keyword arguments (``resources``, ``readinessProbe``,
    ``volumeMounts`` ...) go into the container."""
    container: dict[str, Any] = {"name": name, "image": image, "imagePullPolicy": "Never"}
    if isinstance(command, str):
        container["command"] = ["sh", "-c", command]
    elif command is not None:
        container["command"] = list(command)
    container.update(container_extra)
    return {
        "hostNetwork": True,
        "dnsPolicy": "Default",
        "terminationGracePeriodSeconds": 0,
        "automountServiceAccountToken": False,
        "containers": [container],
    }


def default_bin_dir() -> Path:
    cache = os.environ.get("OPSCHECK_CACHE") or str(Path.home() / ".cache" / "opscheck")
    return Path(cache) / f"kubernetes-{VERSION}" / "bin"


def _find(program: str) -> str:
    """A Debian daemon's path: /usr/sbin is not on every PATH (dockerd lives there)."""
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if found is None:
        raise KubernetesError(f"{program} not found: run scripts/build-kubernetes.sh (as root)")
    return found


class Daemon(ServerProcess):
    """One daemon of the cluster: ``argv``, ready when ``probe()`` holds."""

    error = KubernetesError
    stop_timeout = 10.0

    def __init__(
        self,
        name: str,
        argv: list[str],
        log_file: Path,
        probe: Callable[[], bool],
        port: int = 0,
        start_timeout: float = 30.0,
    ) -> None:
        super().__init__(log_file)
        self.name = name
        self._argv = argv
        self._probe = probe
        self.port = port
        self.timeout = start_timeout

    def __str__(self) -> str:
        return f"{self.name} on 127.0.0.1:{self.port}" if self.port else self.name

    def command(self) -> list[str]:
        return list(self._argv)

    def ready(self) -> bool:
        try:
            return self._probe()
        except (OSError, http.client.HTTPException, ValueError):
            return False

    def start(self, timeout: float | None = None) -> Self:
        return super().start(self.timeout if timeout is None else timeout)


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        raise KubernetesError(f"openssl {' '.join(args[:2])} failed: {done.stderr.strip()}")


def make_pki(directory: Path) -> None:
    """CA, apiserver and kubelet serving certs, apiserver->kubelet client cert, SA key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    d = directory
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "30",
        "-subj",
        "/CN=opscheck-testbed-ca",
        cwd=d,
    )
    certs = {
        "apiserver": ("/CN=kube-apiserver", "DNS:localhost,IP:127.0.0.1,IP:10.96.0.1", "server"),
        "kubelet": (f"/CN={NODE}", "DNS:localhost,IP:127.0.0.1", "server"),
        "apiserver-kubelet-client": ("/O=system:masters/CN=kube-apiserver", "", "client"),
    }
    for name, (subject, san, usage) in certs.items():
        ext = d / f"{name}.ext"
        lines = ["basicConstraints=CA:FALSE", "keyUsage=digitalSignature"]
        lines.append(f"extendedKeyUsage={usage}Auth")
        if san:
            lines.append(f"subjectAltName={san}")
        ext.write_text("\n".join(lines) + "\n")
        _openssl(
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            f"{name}.key",
            "-out",
            f"{name}.csr",
            "-subj",
            subject,
            cwd=d,
        )
        _openssl(
            "x509",
            "-req",
            "-in",
            f"{name}.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            f"{name}.crt",
            "-days",
            "30",
            "-extfile",
            ext.name,
            cwd=d,
        )
    _openssl(
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-out",
        "sa.key",
        cwd=d,
    )
    _openssl("pkey", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=d)


def write_kubeconfig(path: Path, server: str, ca_file: Path, token: str, user: str) -> Path:
    """A kubeconfig (JSON is YAML) with one cluster, one token user, one current context."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "testbed",
                "cluster": {"server": server, "certificate-authority": str(ca_file)},
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": f"{user}@testbed", "context": {"cluster": "testbed", "user": user}}],
        "current-context": f"{user}@testbed",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)
    return path


class _ClusterDocker(DockerEngine):
    """The cluster's own dockerd (testbed.docker's engine: own socket, data root and exec root,
    no bridge, no iptables), with the cgroup driver the kubelet is configured for."""

    name = "dockerd"
    timeout = DockerEngine.start_timeout

    def command(self) -> list[str]:
        return [*super().command(), "--exec-opt", "native.cgroupdriver=cgroupfs"]


class Cluster:
    """dockerd, etcd, kube-apiserver, kube-controller-manager, kube-scheduler and a kubelet,
    all on loopback, state in ``directory`` (dockerd's exec-root in a short temp dir: unix
    socket paths are limited to 107 bytes)."""

    def __init__(self, directory: Path, bin_dir: Path | None = None) -> None:
        self.directory = Path(directory)
        self.bin_dir = Path(bin_dir) if bin_dir else default_bin_dir()
        self.pki = self.directory / "pki"
        self.tokens = {name: os.urandom(16).hex() for name in USERS}
        self.apiserver_port = free_port()
        self.server = f"https://127.0.0.1:{self.apiserver_port}"
        self.admin_kubeconfig = self.directory / "admin.kubeconfig"
        self.reader_kubeconfig = self.directory / "opscheck.kubeconfig"
        # the opscheck ServiceAccount's (deploy/kubernetes RBAC), written by install_rbac()
        self.opscheck_kubeconfig = self.directory / "opscheck-sa.kubeconfig"
        self.daemons: list[Daemon | _ClusterDocker] = []
        self.exec_root: Path | None = None
        self.docker_socket = ""
        self.timings: dict[str, float] = {}  # seconds per step of start()
        self.began = 0.0

    # -- life cycle --------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Self:
        begin = self.began = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - begin
        return self

    def _start(self) -> None:
        stamp = self.bin_dir / ".complete"
        if not stamp.is_file():
            raise KubernetesError(
                f"no Kubernetes build in {self.bin_dir}: run scripts/build-kubernetes.sh"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        logs = self.directory / "logs"
        t0 = time.monotonic()
        make_pki(self.pki)
        self._write_auth()
        self.timings["pki"] = time.monotonic() - t0

        docker = _ClusterDocker(self.directory / "docker")
        self.exec_root = docker.exec_root
        self.docker_socket = str(docker.socket_path)
        etcd_port, peer_port = free_port(), free_port()
        etcd_url = f"http://127.0.0.1:{etcd_port}"
        etcd = Daemon(
            "etcd",
            [
                _find("etcd"),
                "--name",
                "testbed",
                "--data-dir",
                str(self.directory / "etcd"),
                "--listen-client-urls",
                etcd_url,
                "--advertise-client-urls",
                etcd_url,
                "--listen-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-advertise-peer-urls",
                f"http://127.0.0.1:{peer_port}",
                "--initial-cluster",
                f"testbed=http://127.0.0.1:{peer_port}",
            ],
            logs / "etcd.log",
            lambda: _http_ok(f"{etcd_url}/health"),
            etcd_port,
        )
        self._run(docker, etcd)
        t0 = time.monotonic()
        self._import_images()
        self.timings["images"] = time.monotonic() - t0

        p = self.pki
        apiserver = Daemon(
            "kube-apiserver",
            [
                str(self.bin_dir / "kube-apiserver"),
                "--etcd-servers",
                etcd_url,
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self.apiserver_port}",
                "--insecure-port=0",
                "--authorization-mode=Node,RBAC",
                f"--token-auth-file={self.directory / 'tokens.csv'}",
                f"--client-ca-file={p / 'ca.crt'}",
                f"--tls-cert-file={p / 'apiserver.crt'}",
                f"--tls-private-key-file={p / 'apiserver.key'}",
                f"--kubelet-client-certificate={p / 'apiserver-kubelet-client.crt'}",
                f"--kubelet-client-key={p / 'apiserver-kubelet-client.key'}",
                "--service-cluster-ip-range=10.96.0.0/24",
                "--kubelet-preferred-address-types=Hostname",
                "--allow-privileged=true",
                f"--service-account-key-file={p / 'sa.pub'}",
                f"--service-account-signing-key-file={p / 'sa.key'}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--cert-dir={self.directory / 'apiserver-certs'}",
                "--profiling=false",
            ],
            logs / "kube-apiserver.log",
            lambda: self._api_ok("/readyz"),
            self.apiserver_port,
        )
        self._run(apiserver)
        write_kubeconfig(
            self.admin_kubeconfig, self.server, p / "ca.crt", self.tokens["admin"], "admin"
        )
        write_kubeconfig(
            self.reader_kubeconfig, self.server, p / "ca.crt", self.tokens["opscheck"], "opscheck"
        )
        configs = {
            name: write_kubeconfig(
                self.directory / f"{name}.kubeconfig",
                self.server,
                p / "ca.crt",
                self.tokens[name],
                USERS[name][0],
            )
            for name in ("controller-manager", "scheduler", "kubelet")
        }
        cm_port, sched_port = free_port(), free_port()
        controller_manager = Daemon(
            "kube-controller-manager",
            [
                str(self.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={configs['controller-manager']}",
                "--bind-address=127.0.0.1",
                "--port=0",
                f"--secure-port={cm_port}",
                "--leader-elect=false",
                f"--controllers={CONTROLLERS}",
                f"--service-account-private-key-file={p / 'sa.key'}",
                f"--root-ca-file={p / 'ca.crt'}",
                # each controller as its own service account, with the bootstrap RBAC roles
                # (as system:kube-controller-manager the node controller may not untaint nodes)
                "--use-service-account-credentials=true",
                "--node-monitor-grace-period=8s",
                "--node-monitor-period=1s",
                f"--cert-dir={self.directory / 'controller-manager-certs'}",
            ],
            logs / "kube-controller-manager.log",
            lambda: _http_ok(f"https://127.0.0.1:{cm_port}/healthz", insecure=True),
            cm_port,
        )
        scheduler = Daemon(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                f"--kubeconfig={configs['scheduler']}",
                "--bind-address=127.0.0.1",
                "--port=0",
                f"--secure-port={sched_port}",
                "--leader-elect=false",
                f"--cert-dir={self.directory / 'scheduler-certs'}",
            ],
            logs / "kube-scheduler.log",
            lambda: _http_ok(f"https://127.0.0.1:{sched_port}/healthz", insecure=True),
            sched_port,
        )
        kubelet_port, healthz_port = free_port(), free_port()
        kubelet_dir = self.directory / "kubelet"
        kubelet_dir.mkdir(parents=True, exist_ok=True)
        kubelet_config = {
            "kind": "KubeletConfiguration",
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "address": "127.0.0.1",
            "port": kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": healthz_port,
            "tlsCertFile": str(p / "kubelet.crt"),
            "tlsPrivateKeyFile": str(p / "kubelet.key"),
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": False},
                "x509": {"clientCAFile": str(p / "ca.crt")},
            },
            "authorization": {"mode": "AlwaysAllow"},  # only the apiserver's client cert gets in
            "cgroupDriver": "cgroupfs",
            "failSwapOn": False,
            "cgroupsPerQOS": False,
            "enforceNodeAllocatable": [],
            "evictionHard": {},
            "syncFrequency": "5s",
            "nodeStatusUpdateFrequency": "5s",
            "nodeStatusReportFrequency": "5s",
            "volumePluginDir": str(kubelet_dir / "volume-plugins"),
        }
        (self.directory / "kubelet.json").write_text(json.dumps(kubelet_config, indent=2))
        kubelet = Daemon(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                f"--kubeconfig={configs['kubelet']}",
                f"--config={self.directory / 'kubelet.json'}",
                f"--root-dir={kubelet_dir}",
                "--container-runtime=docker",
                f"--docker-endpoint=unix://{self.docker_socket}",
                f"--pod-infra-container-image={PAUSE_IMAGE}",
                f"--hostname-override={NODE}",
                f"--cert-dir={self.directory / 'kubelet-certs'}",
            ],
            logs / "kubelet.log",
            lambda: _http_ok(f"http://127.0.0.1:{healthz_port}/healthz"),
            kubelet_port,
        )
        self._run(controller_manager, scheduler, kubelet)

    def _run(self, *daemons: Daemon | _ClusterDocker) -> None:
        """Launch ``daemons`` together, then wait for each (their start-ups overlap)."""
        t0 = time.monotonic()
        for daemon in daemons:
            self.daemons.append(daemon)
            daemon._started = True
            try:
                daemon._launch()
            except OSError as exc:
                raise KubernetesError(f"{daemon} did not start: {exc}") from exc
        for daemon in daemons:
            deadline = time.monotonic() + daemon.timeout
            while True:
                why = daemon._died()
                if why is None and daemon.ready():
                    break
                if why is None and time.monotonic() > deadline:
                    why = f"not ready after {daemon.timeout:g} s"
                if why is not None:
                    raise KubernetesError(f"{daemon} did not start: {why}{daemon._diagnosis()}")
                time.sleep(0.05)
            self.timings[daemon.name] = time.monotonic() - t0

    def wait_node_ready(self, timeout: float = 60.0) -> float:
        """Wait until node ``localhost`` is Ready and schedulable; returns the seconds since
        start() began."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError, ValueError, KeyError):
                node = self.api_get(f"/api/v1/nodes/{NODE}")
                conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
                taints = {t["key"] for t in node["spec"].get("taints") or []}
                # the node controller lifts the not-ready taint a moment after Ready: until
                # then the scheduler places nothing there
                if conditions.get("Ready") == "True" and not taints & NOT_READY_TAINTS:
                    break
            if time.monotonic() > deadline:
                raise KubernetesError(f"node {NODE} not Ready after {timeout:g} s")
            time.sleep(0.2)
        return time.monotonic() - self.began

    def stop(self) -> None:
        """Stop the kubelet, remove the containers, stop the rest, unmount; safe twice."""
        daemons, self.daemons = self.daemons, []
        by_name = {d.name: d for d in daemons}
        if "kubelet" in by_name:
            by_name.pop("kubelet").stop()
        docker = by_name.pop("dockerd", None)
        if docker is not None and docker.process is not None:
            with contextlib.suppress(OSError, subprocess.SubprocessError, KubernetesError):
                ids = self.docker("ps", "-aq", timeout=20).split()
                if ids:
                    self.docker("rm", "-f", *ids, timeout=60)
        for daemon in reversed(list(by_name.values())):
            daemon.stop()
        if docker is not None:
            docker.stop()
        self._unmount()
        if self.exec_root is not None:
            shutil.rmtree(self.exec_root, ignore_errors=True)
            self.exec_root = None

    def _unmount(self) -> None:
        roots = [str(self.directory.resolve())]
        if self.exec_root is not None:
            roots.append(str(self.exec_root))
        mounts = []
        with contextlib.suppress(OSError):
            for line in Path("/proc/self/mountinfo").read_text().splitlines():
                point = line.split()[4].replace("\\040", " ")
                if any(point == r or point.startswith(r + "/") for r in roots):
                    mounts.append(point)
        for point in sorted(set(mounts), key=len, reverse=True):
            if subprocess.run(["umount", point], capture_output=True).returncode:
                subprocess.run(["umount", "-l", point], capture_output=True)

    # -- clients -----------------------------------------------------------------------------

    def kubectl(
        self,
        *args: str,
        kubeconfig: Path | None = None,
        check: bool = True,
        stdin: str | None = None,
    ) -> str:
        """Run the built kubectl (admin unless ``kubeconfig``), ``stdin`` fed to it (``apply
        -f -``); returns stdout."""
        argv = [
            str(self.bin_dir / "kubectl"),
            f"--kubeconfig={kubeconfig or self.admin_kubeconfig}",
        ]
        done = subprocess.run(
            [*argv, *args], input=stdin, capture_output=True, text=True, timeout=60
        )
        if check and done.returncode:
            raise KubernetesError(f"kubectl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def docker(self, *args: str, timeout: float = 60, stdin: bytes | None = None) -> str:
        """Run the docker CLI against this cluster's dockerd; returns stdout."""
        argv = [_find("docker"), "-H", f"unix://{self.docker_socket}", *args]
        done = subprocess.run(argv, input=stdin, capture_output=True, timeout=timeout)
        if done.returncode:
            raise KubernetesError(f"docker {' '.join(args)}: {done.stderr.decode().strip()}")
        return done.stdout.decode()

    def api_get(self, path: str, token: str | None = None) -> Any:
        """GET ``path`` from the apiserver as admin (or with ``token``); parsed JSON."""
        request = urllib.request.Request(self.server + path)
        request.add_header("Authorization", f"Bearer {token or self.tokens['admin']}")
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return json.loads(response.read())

    def api(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        token: str | None = None,
    ) -> Any:
        """``method`` on ``path`` as admin (or with ``token``), ``body`` sent as JSON; parsed
        JSON. An HTTP error raises KubernetesError with the apiserver's message."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.server + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {token or self.tokens['admin']}")
        if data is not None:
            request.add_header("Content-Type", content_type)
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        try:
            with urllib.request.urlopen(request, timeout=10, context=context) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError):
                detail = json.loads(detail).get("message", detail)
            raise KubernetesError(f"{method} {path}: {exc.code} {detail}") from exc

    def apply(self, *objects: dict[str, Any] | str) -> None:
        """``kubectl apply`` the objects (dicts, or YAML/JSON text) as admin."""
        documents = [o if isinstance(o, str) else json.dumps(o) for o in objects]
        # the leading "---" makes kubectl read a YAML stream (a JSON document is YAML); a
        # stream starting with "{" is read as one JSON object
        self.kubectl("apply", "-f", "-", stdin="---\n" + "\n---\n".join(documents))

    def resource_path(self, obj: dict[str, Any]) -> str:
        """The API path of ``obj`` (apiVersion, kind, metadata.name/namespace), by discovery."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
        resources = self.api_get(base)["resources"]
        found = next((r for r in resources if r["kind"] == kind and "/" not in r["name"]), None)
        if found is None:
            raise KubernetesError(f"{api_version} serves no {kind}")
        meta = obj["metadata"]
        namespace = meta.get("namespace", "default") if found["namespaced"] else None
        scope = f"/namespaces/{namespace}" if namespace else ""
        return f"{base}{scope}/{found['name']}/{meta['name']}"

    def apply_status(self, obj: dict[str, Any]) -> Any:
        """Write ``obj["status"]`` through the status subresource (a merge patch; kubectl 1.20
        has no ``--subresource``): an Ingress's load balancer, a Certificate's conditions.
        The object must exist; returns it as the apiserver answered."""
        return self.api(
            "PATCH",
            self.resource_path(obj) + "/status",
            {"status": obj["status"]},
            content_type="application/merge-patch+json",
        )

    def wait_for(
        self, predicate: Callable[[], T], timeout: float = 60.0, what: str = "the condition"
    ) -> T:
        """Poll ``predicate`` until it returns something true, and return that. Errors inside
        it (an object not there yet) count as false; the last one is in the timeout message."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            try:
                value = predicate()
            except (KubernetesError, OSError, KeyError, IndexError, ValueError, TypeError) as exc:
                last = f" (last: {exc})"
            else:
                if value:
                    return value
            if time.monotonic() > deadline:
                raise KubernetesError(f"{what}: not after {timeout:g} s{last}")
            time.sleep(0.2)

    def install_rbac(self, manifest_dir: Path = MANIFESTS) -> Path:
        """Apply the ServiceAccount ``opscheck/opscheck`` and its roles from ``manifest_dir``;
        write a kubeconfig with the account's token (1.20 makes a token Secret for it) to
        ``opscheck_kubeconfig`` and return it."""
        self.apply(*((manifest_dir / name).read_text() for name in RBAC_FILES))

        def token() -> str:
            account = self.api_get("/api/v1/namespaces/opscheck/serviceaccounts/opscheck")
            name = account["secrets"][0]["name"]
            secret = self.api_get(f"/api/v1/namespaces/opscheck/secrets/{name}")
            return base64.b64decode(secret["data"]["token"]).decode()

        value = self.wait_for(token, 60, "the token Secret of ServiceAccount opscheck/opscheck")
        return write_kubeconfig(
            self.opscheck_kubeconfig, self.server, self.pki / "ca.crt", value, "opscheck"
        )

    # -- helpers -----------------------------------------------------------------------------

    def _write_auth(self) -> None:
        lines = []
        for name, (user, groups) in USERS.items():
            lines.append(
                f'{self.tokens[name]},{user},{name},"{groups}"'
                if groups
                else f"{self.tokens[name]},{user},{name}"
            )
        path = self.directory / "tokens.csv"
        path.write_text("\n".join(lines) + "\n")
        path.chmod(0o600)

    def _api_ok(self, path: str) -> bool:
        return _http_ok(self.server + path, cafile=self.pki / "ca.crt", token=self.tokens["admin"])

    def _import_images(self) -> None:
        """busybox (Debian's static one + applet links) and the pause image, by docker import."""
        images = self.directory / "images"
        images.mkdir(parents=True, exist_ok=True)
        busybox_tar = images / "busybox.tar"
        with tarfile.open(busybox_tar, "w") as tar:
            tar.add(BUSYBOX, "bin/busybox")
            for applet in BUSYBOX_APPLETS:
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type = tarfile.SYMTYPE
                link.linkname = "busybox"
                tar.addfile(link)
            for name in ("tmp", "etc", "proc", "sys", "dev", "var/log"):
                entry = tarfile.TarInfo(name)
                entry.type = tarfile.DIRTYPE
                entry.mode = 0o1777 if name == "tmp" else 0o755
                tar.addfile(entry)
        self.docker("import", "--change", 'CMD ["/bin/sh"]', str(busybox_tar), BUSYBOX_IMAGE)
        pause_tar = images / "pause.tar"
        with tarfile.open(pause_tar, "w") as tar:
            tar.add(str(self.bin_dir / "pause"), "pause")
        self.docker("import", "--change", 'ENTRYPOINT ["/pause"]', str(pause_tar), PAUSE_IMAGE)


def _http_ok(
    url: str, insecure: bool = False, cafile: Path | None = None, token: str | None = None
) -> bool:
    """Whether GET ``url`` answers 200."""
    context = None
    if url.startswith("https:"):
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None)
        if insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=2, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, http.client.HTTPException):
        return False
