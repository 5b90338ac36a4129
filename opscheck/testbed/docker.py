"""A real Docker Engine (``dockerd``) on its own unix socket, and containers in every state.

    with DockerEngine(tmp_dir) as engine:                 # root only; ready when /_ping answers
        engine.busybox_image()                            # opscheck/busybox:latest, no registry
        engine.healthy("web")                             # running, health "healthy"
        engine.unhealthy("db")                            # running, health "unhealthy"
        engine.restarting("worker", retries=3)            # RestartCount 3, then exited 3
        engine.exited("job", code=7)                      # exited, ExitCode 7
        engine.oom_killed("hog")                          # exited 137, OOMKilled
        engine.compose_project("shop", {"web": {"health": "true"}, "cron": {"code": 1}})

The daemon keeps everything in ``directory`` (data root, pid file, log) and in a short directory
under /tmp (exec root and API socket: unix socket paths are limited to 107 bytes, containerd's
included). It never touches the host's networking: no iptables, no bridge (172.17/16 must not be
used here), every container runs with ``--network none``. There is no registry: images are
``docker import``-ed from Debian's busybox-static. Set-up goes through ``client()`` (the ``docker``
SDK, imported lazily); the checks use their own client. ``stop()`` removes the containers, stops
dockerd and unmounts whatever it left under its roots.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from opscheck.testbed.process import ServerProcess, _children
from opscheck.testbed.sshd import toml_value

DOCKERD = "dockerd"
BUSYBOX = "/bin/busybox"  # Debian's busybox-static: no shared library to copy along
BUSYBOX_IMAGE = "opscheck/busybox:latest"
BUSYBOX_APPLETS = ("sh", "ls", "df", "cat", "sleep", "echo", "true", "false")
# The host's networking stays as it is: no NAT rules, no docker0 bridge, no proxies.
ISOLATION_FLAGS = (
    "--iptables=false",
    "--ip6tables=false",
    "--bridge=none",
    "--ip-masq=false",
    "--userland-proxy=false",
    "--default-ulimit",
    "nofile=20000:20000",
)
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
FOREVER = "sleep 3600"
HEALTH_INTERVAL = 0.2  # seconds between health checks: a verdict within half a second


class DockerError(RuntimeError):
    """dockerd did not start, or a container did not reach the state asked for; says why."""


class DockerEngine(ServerProcess):
    """``dockerd`` in the foreground as root, its data root and log in ``directory``."""

    kind = "dockerd"
    error = DockerError
    start_timeout = 30.0
    stop_timeout = 20.0  # it stops the containers still running first
    port = 0  # no TCP port: the API is on ``socket_path``

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        super().__init__(self.directory / "dockerd.log")
        self.data_root = self.directory / "data"
        self.pidfile = self.directory / "dockerd.pid"
        self.exec_root = Path(tempfile.mkdtemp(prefix="opscheck-dockerd-", dir="/tmp"))
        self.socket_path = self.exec_root / "docker.sock"
        self._client: Any = None

    def __str__(self) -> str:
        return f"{self.kind} on {self.url}"

    @property
    def url(self) -> str:
        """The ``url`` of a ``[[docker]]`` target for this engine."""
        return f"unix://{self.socket_path}"

    def command(self) -> list[str]:
        return [
            DOCKERD,
            "--data-root",
            str(self.data_root),
            "--exec-root",
            str(self.exec_root / "exec"),
            "--pidfile",
            str(self.pidfile),
            "--host",
            self.url,
            *ISOLATION_FLAGS,
        ]

    def _launch(self) -> None:
        if shutil.which(DOCKERD) is None:
            raise DockerError(f"{DOCKERD} not found: apt-get install docker.io busybox-static")
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.exec_root.mkdir(parents=True, exist_ok=True)  # again after a stop()
        super()._launch()

    def ready(self) -> bool:
        """``GET /_ping`` answers OK on the socket (plain HTTP: no SDK needed to wait)."""
        return self.ping()

    def ping(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(2)
                sock.connect(str(self.socket_path))
                sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
                answer = b""
                while chunk := sock.recv(4096):
                    answer += chunk
        except OSError:
            return False
        return answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n", 1)[0]

    def client(self) -> Any:
        """A ``docker.DockerClient`` on this engine, to set up and break containers.

        ``version="auto"`` (docker-py 7's default too): Debian's dockerd 20.10 speaks API 1.41,
        a pinned newer version would be refused ("client version 1.45 is too new").
        """
        if self._client is None:
            try:
                import docker
            except ImportError as exc:  # not a dependency of opscheck yet
                raise DockerError("the docker SDK is missing: pip install docker==7.2.0") from exc
            self._client = docker.DockerClient(base_url=self.url, version="auto", timeout=30)
        return self._client

    # -- teardown ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Remove every container, stop dockerd, unmount what it left; safe to call twice."""
        if self._started and self.process is not None and self.process.poll() is None:
            if self._paused:
                self.resume()
            with contextlib.suppress(Exception):  # a daemon that does not answer: killed next
                for container in self.client().containers.list(all=True):
                    container.remove(force=True)
        if self._client is not None:
            with contextlib.suppress(Exception):
                self._client.close()
            self._client = None
        super().stop()

    def _halt(self) -> None:
        super()._halt()
        self._kill_shims()
        self._unmount()
        shutil.rmtree(self.exec_root, ignore_errors=True)

    def _kill_shims(self) -> None:
        """Kill the containers a dead dockerd left running: its containerd-shims (daemons of
        their own, children of PID 1, named after our exec root) and everything under them."""
        marker = str(self.exec_root).encode()
        tree = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            with contextlib.suppress(OSError):
                argv = cmdline.read_bytes().split(b"\0")
                if b"containerd-shim" in argv[0] and marker in b" ".join(argv):
                    tree.append(int(cmdline.parent.name))
        for pid in tree:  # whole tree first: a killed shim's children go to PID 1 at once
            tree += _children(pid)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def _unmount(self) -> None:
        """Detach every mount point under the data root or the exec root, deepest first
        (overlay2 layers, netns and shm of containers a killed dockerd did not clean up)."""
        roots = (str(self.data_root.resolve()), str(self.exec_root.resolve()))
        for point in sorted(_mount_points(), key=len, reverse=True):
            if any(point == root or point.startswith(root + "/") for root in roots):
                subprocess.run(["umount", "-l", point], check=False, capture_output=True)

    # -- images --------------------------------------------------------------------------------

    def busybox_image(self, tag: str = BUSYBOX_IMAGE) -> str:
        """Import a busybox rootfs (``/bin/busybox`` + applet symlinks) as ``tag``; its id."""
        if not Path(BUSYBOX).is_file():
            raise DockerError(f"{BUSYBOX} not found: apt-get install busybox-static")
        repository, _, version = tag.rpartition(":")
        result = self.client().api.import_image_from_data(
            _busybox_tar(), repository=repository, tag=version
        )
        if "status" not in str(result) or "error" in str(result).lower():
            raise DockerError(f"docker import of {tag} failed: {result}")
        return str(self.client().images.get(tag).id)

    # -- containers ----------------------------------------------------------------------------

    def run(
        self,
        name: str,
        command: str = FOREVER,
        *,
        image: str = BUSYBOX_IMAGE,
        health: str | None = None,
        restart: str | None = None,
        memory: str | None = None,
        labels: Mapping[str, str] | None = None,
        **options: Any,
    ) -> Any:
        """Start ``sh -c command`` detached as ``name`` with ``--network none``; the Container.

        ``health`` is a shell health command (``"true"``, ``"false"``) checked every 0.2 s,
        unhealthy at the first failure; ``restart`` is ``"on-failure:3"``, ``"always"`` …;
        ``memory`` a limit without swap (``"8m"``); ``options`` go to ``containers.run``.
        """
        if health is not None:
            interval = int(HEALTH_INTERVAL * 1e9)
            options["healthcheck"] = {
                "test": ["CMD-SHELL", health],
                "interval": interval,
                "timeout": 5 * interval,
                "retries": 1,
                "start_period": 0,
            }
        if restart is not None:
            policy, _, count = restart.partition(":")
            options["restart_policy"] = {"Name": policy, "MaximumRetryCount": int(count or 0)}
        if memory is not None:
            options.update(mem_limit=memory, memswap_limit=memory)
        return self.client().containers.run(
            image,
            ["sh", "-c", command],
            name=name,
            detach=True,
            network_mode="none",
            labels=dict(labels or {}),
            **options,
        )

    def state(self, name: str) -> dict[str, Any]:
        """``State`` of ``docker inspect name`` (Status, Health, ExitCode, OOMKilled …) plus
        its ``RestartCount``."""
        attrs = self.client().api.inspect_container(name)
        return {**attrs["State"], "RestartCount": attrs["RestartCount"]}

    def wait_for(
        self, name: str, what: str, reached: Callable[[dict[str, Any]], bool], timeout: float = 20.0
    ) -> dict[str, Any]:
        """Poll ``state(name)`` until ``reached(state)``; DockerError naming ``what`` if not."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(name)
            if reached(state):
                return state
            if time.monotonic() > deadline:
                raise DockerError(f"container {name}: {what} did not happen; state {state}")
            time.sleep(0.05)

    def healthy(self, name: str, command: str = FOREVER, **options: Any) -> dict[str, Any]:
        """A running container whose health check passes; its state once ``healthy``."""
        self.run(name, command, health="true", **options)
        return self.wait_for(name, "healthy", lambda s: _health(s) == "healthy")

    def unhealthy(self, name: str, command: str = FOREVER, **options: Any) -> dict[str, Any]:
        """A running container whose health check fails (``false``); its state once
        ``unhealthy``."""
        self.run(name, command, health="false", **options)
        return self.wait_for(name, "unhealthy", lambda s: _health(s) == "unhealthy")

    def running(self, name: str, command: str = FOREVER, **options: Any) -> dict[str, Any]:
        """A running container without a health check."""
        self.run(name, command, **options)
        return self.wait_for(name, "running", lambda s: s["Status"] == "running")

    def restarting(
        self, name: str, retries: int = 3, code: int = 3, command: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """A container that fails ``retries + 1`` times under ``on-failure:retries``; its state
        once it has given up (exited ``code``, RestartCount ``retries``). Docker waits 0.1 s,
        0.2 s, 0.4 s … between restarts: 3 retries take ~2 s, 5 take ~5 s."""
        command = command or f"echo 'ERROR: worker crashed'; exit {code}"
        self.run(name, command, restart=f"on-failure:{retries}", **options)
        return self.wait_for(
            name,
            f"{retries} restarts",
            lambda s: s["RestartCount"] >= retries and s["Status"] == "exited",
            timeout=10.0 + 0.1 * 2**retries,
        )

    def crash_looping(
        self, name: str, restarts: int = 2, command: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """A container that fails for ever under ``--restart always`` (``docker ps`` shows
        "Restarting (1)"); its state once RestartCount reaches ``restarts``. It keeps going."""
        self.run(name, command or "echo 'FATAL: cannot start'; exit 1", restart="always", **options)
        return self.wait_for(
            name,
            f"{restarts} restarts",
            lambda s: s["RestartCount"] >= restarts,
            timeout=10.0 + 0.1 * 2**restarts,
        )

    def exited(
        self, name: str, code: int = 1, command: str | None = None, **options: Any
    ) -> dict[str, Any]:
        """A container that ran once and exited ``code``; its state."""
        self.run(name, command or f"exit {code}", **options)
        return self.wait_for(name, f"exit {code}", lambda s: s["Status"] == "exited")

    def oom_killed(self, name: str, memory: str = "8m", **options: Any) -> dict[str, Any]:
        """A shell doubling a string until the kernel kills it at ``memory``; its state
        (exited 137, OOMKilled true)."""
        # dockerd (cgroup v1) marks an exit OOMKilled only when its OOM event comes before the
        # exit; under load it may not, and the kill shows as a plain exit 137. The checks read
        # what dockerd reports, so the container is made again until it reports the OOM kill.
        for _ in range(5):
            self.run(name, "sleep 2; x=a; while true; do x=$x$x; done", memory=memory, **options)
            state = self.wait_for(name, "OOM kill", lambda s: s["Status"] == "exited")
            if state.get("OOMKilled"):
                return state
            self.client().api.remove_container(name, force=True)
        raise DockerError(f"container {name}: killed at {memory} but never reported OOMKilled")

    def compose_project(
        self, project: str, services: Mapping[str, Mapping[str, Any]]
    ) -> dict[str, dict[str, Any]]:
        """Containers as ``docker compose -p project up -d`` would label them, without compose.

        ``services`` maps a service to what its container does: ``{}`` runs, ``{"health":
        "true"|"false"}`` is (un)healthy, ``{"code": 2}`` exits 2, ``{"restart": "on-failure:3",
        "code": 1}`` restarts; other keys go to ``run()``. Containers are named
        ``project-service-1`` (compose v2). Returns the state of each service's container once
        reached.
        """
        states = {}
        for service, spec in services.items():
            spec = dict(spec)
            labels = {
                COMPOSE_PROJECT: project,
                COMPOSE_SERVICE: service,
                "com.docker.compose.container-number": "1",
                "com.docker.compose.oneoff": "False",
                **spec.pop("labels", {}),
            }
            name = f"{project}-{service}-1"
            if "restart" in spec and "code" in spec:
                retries = int(str(spec.pop("restart")).partition(":")[2] or 3)
                states[service] = self.restarting(name, retries, labels=labels, **spec)
            elif "code" in spec:
                states[service] = self.exited(name, labels=labels, **spec)
            elif spec.get("health") == "true":
                states[service] = self.healthy(name, labels=labels, **_without(spec, "health"))
            elif spec.get("health") == "false":
                states[service] = self.unhealthy(name, labels=labels, **_without(spec, "health"))
            else:
                states[service] = self.running(name, labels=labels, **spec)
        return states

    def docker_block(self, name: str, url: str | None = None, **fields: object) -> str:
        """A ``[[docker]]`` inventory table for this engine (or ``url``); ``None`` fields are
        left out."""
        lines = ["[[docker]]", f"name = {toml_value(name)}", f"url = {toml_value(url or self.url)}"]
        lines += [
            f"{key} = {toml_value(value)}" for key, value in fields.items() if value is not None
        ]
        return "\n".join(lines) + "\n"


def _health(state: Mapping[str, Any]) -> str | None:
    health = state.get("Health")
    return None if health is None else str(health["Status"])


def _without(mapping: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in mapping.items() if k != key}


def _busybox_tar() -> bytes:
    """A rootfs tar: /bin/busybox, its applets as symlinks, empty /tmp /etc /proc /sys /dev."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "tmp", "etc", "proc", "sys", "dev"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(BUSYBOX, arcname="bin/busybox")
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
            tar.addfile(info)
    return buffer.getvalue()


def _mount_points() -> list[str]:
    """Mount points of this mount namespace, octal escapes (``\\040`` …) decoded."""
    points = []
    with contextlib.suppress(OSError), open("/proc/self/mountinfo", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            if len(fields) > 4:
                points.append(fields[4].encode().decode("unicode_escape"))
    return points
