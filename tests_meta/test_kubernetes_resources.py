"""Resource, certificate, job and volume checks against the real test cluster (``kube_cluster``),
run as the opscheck ServiceAccount (RBAC enforced). metrics-server cannot run here: the test
serves ``metrics.k8s.io`` as CRDs and writes NodeMetrics/PodMetrics with chosen usage, as it
installs cert-manager's Certificate CRD and writes the certificates' status. Namespaces:

- ``res-ok``: a Deployment's two pods and a request-only pod well inside their limits, a pod
  without limits (counted, not judged), a Ready certificate with 60 days left, a completed Job,
  a CronJob whose older run failed and newer one completed, a claim bound to a 4 MB tmpfs
  volume a running pod mounts (10 % used);
- ``res-bad``: a pod over its CPU and memory limits, a certificate not Ready and one expiring
  in 5 days, a failed Job, a CronJob that never succeeded and a suspended one, a claim that no
  volume matches (Pending), a mounted claim whose tmpfs a pod filled and one mounted by a
  container without ``df`` (the pause image);
- ``res-noexec``: a mounted claim in a namespace without the opt-in ``opscheck-exec`` binding.

The node (one, shared) is given 95 % CPU and 40 % memory use, judged with per-target levels
so that each node check passes for one target and fails for another. Before the CRDs exist, the
metrics and certificate checks skip saying what to install.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opscheck.probes.kubernetes_resources import quantity
from opscheck.probes.kubernetes_volumes import parse_df
from opscheck.testbed.kubernetes import NODE, PAUSE_IMAGE, pod_spec

PATHS = (
    "suites/kubernetes/test_kubernetes_resources.py",
    "suites/kubernetes/test_kubernetes_jobs.py",
)
CHECKS = 11
NAMESPACES = ("res-ok", "res-bad", "res-noexec")
EXEC_BOUND = ("res-ok", "res-bad")  # RoleBinding to the opt-in opscheck-exec
VOLUMES = (("res-ok", "data"), ("res-bad", "full"), ("res-bad", "nodf"), ("res-noexec", "data"))
MOUNTING = (
    ("res-ok", "writer"),
    ("res-bad", "filler"),
    ("res-bad", "nodf"),
    ("res-noexec", "reader"),
)
FILL = "dd if=/dev/zero of=/data/f bs=1k count=8000; true"  # stops at ENOSPC: 100 % used
# A never-succeeded CronJob is judged by its age: a few seconds here, so its level is too.
# The one node (95 % CPU, 40 % memory) is the same for every target: its levels differ, so
# that each node check passes for "ok" and fails for "bad".
THRESHOLDS = """
[kubernetes.cronjob_last_success.targets.bad]
crit = "3s"
[kubernetes.node_cpu_pct.targets.ok]
warn = 97
crit = 99
[kubernetes.node_memory_pct.targets.bad]
crit = 30
"""
SLEEP = "while :; do sleep 3600; done"
ADMIN = {"api-approved.kubernetes.io": "unapproved, testing only"}


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("reason") or "")


def crd(group: str, kind: str, plural: str, version: str, namespaced: bool) -> dict[str, Any]:
    """A CustomResourceDefinition keeping any field (the real APIs' schemas are not needed to
    serve their objects), with a status subresource."""
    meta: dict[str, Any] = {"name": f"{plural}.{group}"}
    if group.endswith(".k8s.io"):
        meta["annotations"] = ADMIN  # *.k8s.io groups are reserved for approved APIs
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": meta,
        "spec": {
            "group": group,
            "scope": "Namespaced" if namespaced else "Cluster",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                    "subresources": {"status": {}},
                }
            ],
        },
    }


CRDS = (
    crd("metrics.k8s.io", "NodeMetrics", "nodes", "v1beta1", namespaced=False),
    crd("metrics.k8s.io", "PodMetrics", "pods", "v1beta1", namespaced=True),
    crd("cert-manager.io", "Certificate", "certificates", "v1", namespaced=True),
)


def pod(namespace: str, name: str, command: str = SLEEP, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace},
        "spec": pod_spec(command, **extra),
    }


def limits(cpu: str, memory: str, kind: str = "limits") -> dict[str, Any]:
    return {"resources": {kind: {"cpu": cpu, "memory": memory}}}


def pod_metrics(namespace: str, name: str, cpu: str, memory: str) -> dict[str, Any]:
    return {
        "apiVersion": "metrics.k8s.io/v1beta1",
        "kind": "PodMetrics",
        "metadata": {"name": name, "namespace": namespace},
        "timestamp": stamp(0),
        "window": "30s",
        "containers": [{"name": "main", "usage": {"cpu": cpu, "memory": memory}}],
    }


def stamp(days: float) -> str:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(days=days)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def certificate(namespace: str, name: str, ready: bool, days: float | None) -> dict[str, Any]:
    condition = {"type": "Ready", "status": "True", "reason": "Ready", "message": "up to date"}
    if not ready:
        condition = {
            "type": "Ready",
            "status": "False",
            "reason": "DoesNotExist",
            "message": "Issuing certificate as Secret does not exist",
        }
    status: dict[str, Any] = {"conditions": [{**condition, "lastTransitionTime": stamp(-1)}]}
    if days is not None:
        status |= {"notAfter": stamp(days), "renewalTime": stamp(days - 30)}
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"secretName": f"{name}-tls", "dnsNames": [f"{name}.example.com"]},
        "status": status,
    }


def job(namespace: str, name: str, command: str, owner: dict[str, Any] | None = None) -> Any:
    meta: dict[str, Any] = {"name": name, "namespace": namespace}
    if owner:  # what the CronJob controller sets on the Jobs it starts
        meta["ownerReferences"] = [
            {
                "apiVersion": "batch/v1beta1",
                "kind": "CronJob",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": meta,
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {**pod_spec(command), "restartPolicy": "Never"}},
        },
    }


def cronjob(namespace: str, name: str, suspend: bool = False) -> dict[str, Any]:
    """A batch/v1beta1 CronJob (all 1.20 serves) that its schedule never starts during a test."""
    return {
        "apiVersion": "batch/v1beta1",
        "kind": "CronJob",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "schedule": "0 3 1 1 *",
            "suspend": suspend,
            "jobTemplate": {
                "spec": {"template": {"spec": {**pod_spec("true"), "restartPolicy": "Never"}}}
            },
        },
    }


def claim(namespace: str, name: str, storage_class: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": "4Mi"}},
        },
    }


def volume(namespace: str, name: str, path: Path) -> dict[str, Any]:
    """A hostPath PersistentVolume on ``path`` (a 4 MB tmpfs), bound ahead to the claim
    ``namespace/name`` (no provisioner runs here)."""
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"{namespace}-{name}"},
        "spec": {
            "capacity": {"storage": "4Mi"},
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": "manual",
            "hostPath": {"path": str(path)},
            "claimRef": {"namespace": namespace, "name": name},
        },
    }


def mounting(namespace: str, name: str, claim_name: str, command: str) -> dict[str, Any]:
    """A pod mounting ``claim_name`` at /data, Ready once ``command`` has run."""
    obj = pod(
        namespace,
        name,
        f"{command} && touch /tmp/done; {SLEEP}",
        volumeMounts=[{"name": "data", "mountPath": "/data"}],
        readinessProbe={"exec": {"command": ["test", "-e", "/tmp/done"]}, "periodSeconds": 1},
    )
    obj["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]
    return obj


def binding(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "opscheck-exec", "namespace": namespace},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": "opscheck-exec",
        },
        "subjects": [{"kind": "ServiceAccount", "name": "opscheck", "namespace": "opscheck"}],
    }


def get(cluster: Any, path: str) -> dict[str, Any]:
    return dict(cluster.api_get(path))


def condition(cluster: Any, namespace: str, name: str) -> str | None:
    """``Complete`` or ``Failed`` once the Job has finished."""
    found = get(cluster, f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
    for c in found.get("status", {}).get("conditions") or []:
        if c["status"] == "True":
            return str(c["type"])
    return None


def ready(cluster: Any, namespace: str, name: str) -> bool:
    found = get(cluster, f"/api/v1/namespaces/{namespace}/pods/{name}")
    return any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in found.get("status", {}).get("conditions") or []
    )


@contextlib.contextmanager
def tmpfs(path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs on ``path``: a volume whose ``df`` says what a pod wrote to it (a hostPath
    on the host's disk would show the host's usage)."""
    path.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)


def build(cluster: Any, ok_disk: Path, bad_disk: Path, plain: Path) -> None:
    """Everything the module docstring lists, waited for until the checks can see it."""
    cluster.apply(*CRDS)
    for name in ("nodes.metrics.k8s.io", "pods.metrics.k8s.io", "certificates.cert-manager.io"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    objects: list[Any] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": n}} for n in NAMESPACES
    ]
    objects += [binding(n) for n in EXEC_BOUND]
    objects += [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "res-ok"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": pod_spec(SLEEP, **limits("500m", "64Mi")),
                },
            },
        },
        pod("res-ok", "lean", **limits("100m", "32Mi", "requests")),
        pod("res-ok", "free"),
        pod("res-bad", "hog", **limits("200m", "32Mi")),
        certificate("res-ok", "web", True, 60),
        certificate("res-bad", "api", False, None),
        certificate("res-bad", "soon", True, 5),
        job("res-ok", "done", "true"),
        job("res-bad", "broken", "echo failing; exit 1"),
        cronjob("res-ok", "nightly"),
        cronjob("res-bad", "never"),
        cronjob("res-bad", "paused", suspend=True),
        volume("res-ok", "data", ok_disk),
        volume("res-bad", "full", bad_disk),
        claim("res-ok", "data", "manual"),
        claim("res-bad", "full", "manual"),
        claim("res-bad", "orphan", ""),
        volume("res-noexec", "data", plain),
        claim("res-noexec", "data", "manual"),
        mounting("res-noexec", "reader", "data", "true"),
        mounting("res-ok", "writer", "data", "dd if=/dev/zero of=/data/f bs=1k count=400"),
        mounting("res-bad", "filler", "full", FILL),
        # an image without df (nor a shell): the pause image every pod has
        volume("res-bad", "nodf", plain),
        claim("res-bad", "nodf", "manual"),
        {
            **pod("res-bad", "nodf"),
            "spec": {
                **pod_spec(image=PAUSE_IMAGE, volumeMounts=[{"name": "d", "mountPath": "/d"}]),
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "nodf"}}],
            },
        },
    ]
    cluster.apply(*objects)
    for certificate_obj in (
        certificate("res-ok", "web", True, 60),
        certificate("res-bad", "api", False, None),
        certificate("res-bad", "soon", True, 5),
    ):
        cluster.apply_status(certificate_obj)
    # CronJob res-ok/nightly: a failed run, then a later completed one (as the controller
    # makes them: Jobs it owns); only the newer counts for jobs_failed.
    nightly = get(cluster, "/apis/batch/v1beta1/namespaces/res-ok/cronjobs/nightly")
    cluster.apply(job("res-ok", "nightly-1", "exit 1", nightly))
    cluster.wait_for(lambda: condition(cluster, "res-ok", "nightly-1"), 90, "nightly-1 done")
    time.sleep(1.1)  # creationTimestamp has whole seconds: the next run is newer
    cluster.apply(job("res-ok", "nightly-2", "true", nightly))

    node = get(cluster, f"/api/v1/nodes/{NODE}")["status"]["allocatable"]
    cpu, memory = quantity(node["cpu"]), quantity(node["memory"])
    metrics: list[Any] = [
        {
            "apiVersion": "metrics.k8s.io/v1beta1",
            "kind": "NodeMetrics",
            "metadata": {"name": NODE},
            "timestamp": stamp(0),
            "window": "30s",
            "usage": {"cpu": f"{int(cpu * 950)}m", "memory": f"{int(memory * 0.4)}"},
        }
    ]
    web = cluster.wait_for(
        lambda: (
            [
                p["metadata"]["name"]
                for p in get(cluster, "/api/v1/namespaces/res-ok/pods?labelSelector=app%3Dweb")[
                    "items"
                ]
            ]
            if len(get(cluster, "/api/v1/namespaces/res-ok/pods?labelSelector=app%3Dweb")["items"])
            == 2
            else None
        ),
        90,
        "the two pods of res-ok/web",
    )
    metrics += [
        pod_metrics("res-ok", web[0], "100m", "20Mi"),
        pod_metrics("res-ok", web[1], "250m", "16Mi"),
        pod_metrics("res-ok", "lean", "30m", "8Mi"),
        pod_metrics("res-ok", "free", "900m", "900Mi"),
        pod_metrics("res-bad", "hog", "300m", "31Mi"),
    ]
    cluster.apply(*metrics)

    for namespace, name, done in (
        ("res-ok", "done", "Complete"),
        ("res-bad", "broken", "Failed"),
        ("res-ok", "nightly-2", "Complete"),
    ):
        cluster.wait_for(
            lambda n=namespace, j=name, d=done: condition(cluster, n, j) == d,
            90,
            f"Job {namespace}/{name} {done}",
        )
    for namespace, name in MOUNTING:
        cluster.wait_for(
            lambda n=namespace, p=name: ready(cluster, n, p), 90, f"{namespace}/{name} Ready"
        )
    cluster.wait_for(
        lambda: any(
            e["involvedObject"]["name"] == "orphan"
            for e in get(cluster, "/api/v1/namespaces/res-bad/events")["items"]
        ),
        60,
        "the FailedBinding event of res-bad/orphan",
    )


@pytest.fixture(scope="module")
def resources(kube_cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    cluster = kube_cluster
    disks = tmp_path_factory.mktemp("volumes")
    plain = disks / "plain"  # its df would show the host's disk: never read (no exec role)
    plain.mkdir()
    with tmpfs(disks / "ok") as ok_disk, tmpfs(disks / "bad") as bad_disk:
        try:
            build(cluster, ok_disk, bad_disk, plain)
            yield cluster
        finally:
            cluster.kubectl("delete", "namespace", "--timeout=50s", *NAMESPACES, check=False)
            cluster.kubectl(
                "delete", "pv", "--timeout=50s", *(f"{n}-{c}" for n, c in VOLUMES), check=False
            )
            # gone before the next module: the demo's morning checks read the node's metrics
            names = (c["metadata"]["name"] for c in CRDS)
            cluster.kubectl("delete", "crd", "--timeout=50s", *names, check=False)


def block(name: str, cluster: Any, namespace: str, extra: str = "") -> str:
    return (
        f'[[kubernetes]]\nname = "{name}"\nkubeconfig = "{cluster.opscheck_kubeconfig}"\n'
        f'namespaces = ["{namespace}"]\ntimeout = "10s"\n{extra}\n'
    )


def test_metrics_and_cert_manager_missing_skip(suite, kube_cluster):
    served = {g["name"] for g in kube_cluster.api_get("/apis")["groups"]}
    assert not {"metrics.k8s.io", "cert-manager.io"} & served, "installed before this test"
    suite.run(block("bare", kube_cluster, "default"), "", "-k", "node_cpu or pod_memory or certif",
              paths=PATHS)  # fmt: skip
    res = suite.results()
    assert {n: r["outcome"] for n, r in res.items()} == dict.fromkeys(res, "skipped"), res
    assert len(res) == 4
    for name in ("test_node_cpu_below_limit[bare]", "test_pod_memory_below_limit[bare]"):
        assert "install metrics-server for `kubectl top`" in said(res[name]), res[name]
    for name in ("test_certificates_ready[bare]", "test_certificate_expiry[bare]"):
        assert "cert-manager is not installed" in said(res[name]), res[name]


def test_healthy_and_broken(suite, resources):
    cluster = resources
    inventory = (
        block("ok", cluster, "res-ok", "pvc_usage = true")
        + block("bad", cluster, "res-bad", "pvc_usage = true")
        + block("noexec", cluster, "res-noexec", "pvc_usage = true")
        + block("off", cluster, "res-ok")
    )
    started = time.monotonic()
    suite.run(inventory, THRESHOLDS, paths=PATHS)
    elapsed = time.monotonic() - started
    res = suite.results()
    outcome = {n: r["outcome"] for n, r in res.items()}
    every = {n: said(r) for n, r in res.items()}
    detail = {n: str(r.get("detail") or "") for n, r in res.items()}

    cpu = said(res["test_node_cpu_below_limit[bad]"])
    assert re.fullmatch(
        r"bad: localhost 95\.0 % \([\d.]+ cores of [\d.]+ cores allocatable\) > crit 90\.0 %", cpu
    ), cpu
    assert (
        res["test_node_cpu_below_limit[ok]"]["measured"]
        == cpu[len("bad: ") : -len(" > crit 90.0 %")]
    )
    memory = said(res["test_node_memory_below_limit[bad]"])
    assert re.fullmatch(
        r"bad: localhost 40\.0 % \([\d.]+ [GM]B of [\d.]+ [GM]B allocatable\) > crit 30\.0 %",
        memory,
    ), memory

    ok = {n: o for n, o in outcome.items() if n.endswith("[ok]")}
    assert ok == dict.fromkeys(ok, "passed"), {n: every[n] for n in ok}
    assert len(ok) == CHECKS
    # One record per workload (its worst pod), worst first; a pod without limits is counted.
    records = {r["subject"]: r for r in res["test_pod_cpu_below_limit[ok]"]["records"]}
    assert list(records) == ["res-ok/Deployment/web", "res-ok/Pod/lean"], records
    web = records["res-ok/Deployment/web"]
    assert web["measured"].startswith("res-ok/Deployment/web 50.0 % (res-ok/web-"), web
    assert web["measured"].endswith(": 250m of 500m limit); worst of 2 pods"), web
    assert ": 100m of 500m limit)" in web["detail"], web  # the other pod of web
    assert "1 pod without a cpu limit or request, not judged: res-ok/free" in web["detail"], web
    lean = records["res-ok/Pod/lean"]["measured"]
    assert lean == "res-ok/Pod/lean 30.0 % (res-ok/lean: 30m of 100m request)", lean
    assert res["test_certificates_ready[ok]"]["measured"] == "1 certificate Ready"
    assert res["test_certificate_expiry[ok]"]["measured"].startswith("res-ok/web 60.0 days (")
    assert res["test_jobs_not_failed[ok]"]["measured"] == "2 finished jobs, none failed"
    last = res["test_cronjob_last_success[ok]"]["measured"]
    assert last.startswith("res-ok/nightly ") and "ago (" in last, last
    assert res["test_cronjobs_not_suspended[ok]"]["measured"] == "1 CronJob, none suspended"
    assert res["test_pvcs_bound[ok]"]["measured"] == "1 claim Bound"
    used = res["test_pvc_usage_below_limit[ok]"]["measured"]
    assert used.startswith("res-ok/data 9.8 % (409.6 KB of 4.2 MB, df in res-ok/writer:/data)"), (
        used
    )

    bad = {n.split("[")[0]: o for n, o in outcome.items() if n.endswith("[bad]")}
    assert bad == {
        "test_node_cpu_below_limit": "failed",
        "test_node_memory_below_limit": "failed",
        "test_pod_cpu_below_limit": "failed",
        "test_pod_memory_below_limit": "failed",
        "test_certificates_ready": "failed",
        "test_certificate_expiry": "failed",
        "test_pvcs_bound": "failed",
        "test_pvc_usage_below_limit": "failed",
        "test_jobs_not_failed": "failed",
        "test_cronjob_last_success": "failed",
        "test_cronjobs_not_suspended": "failed",
    }, every
    assert every["test_pod_cpu_below_limit[bad]"] == (
        "bad: res-bad/Pod/hog 150.0 % (res-bad/hog: 300m of 200m limit) > crit 100.0 %"
    )
    assert every["test_pod_memory_below_limit[bad]"] == (
        "bad: res-bad/Pod/hog 96.9 % (res-bad/hog: 32.5 MB of 33.6 MB limit) > crit 90.0 %"
    )
    ready_msg = every["test_certificates_ready[bad]"]
    assert "1 of 2 certificates not Ready: res-bad/api" in ready_msg, ready_msg
    assert (
        "res-bad/api: Ready=False (DoesNotExist: Issuing certificate as Secret does not exist)"
        in detail["test_certificates_ready[bad]"]
    ), detail
    expiry = every["test_certificate_expiry[bad]"]
    assert expiry.startswith("bad: res-bad/soon 5.0 days (notAfter "), expiry
    assert "secret soon-tls) < crit 14.0 days" in expiry, expiry
    failed = every["test_jobs_not_failed[bad]"]
    assert "1 of 1 finished job failed: res-bad/broken" in failed, failed
    assert (
        "res-bad/broken: BackoffLimitExceeded, 1 failed pod (Job has reached the specified "
        "backoff limit)" in detail["test_jobs_not_failed[bad]"]
    ), detail
    never = every["test_cronjob_last_success[bad]"]
    assert never.startswith("bad: res-bad/never never succeeded (created "), never
    assert re.fullmatch(
        r"bad: res-bad/never never succeeded \(created [\d.]+ (s|min) ago\) > crit 3\.0 s", never
    ), never
    assert "paused" not in never, never  # suspended: judged by cronjobs_suspended
    suspended = every["test_cronjobs_not_suspended[bad]"]
    assert "1 of 2 CronJobs suspended: res-bad/paused" in suspended, suspended
    pending = every["test_pvcs_bound[bad]"]
    assert "1 of 3 claims not Bound: res-bad/orphan" in pending, pending
    pending = detail["test_pvcs_bound[bad]"]
    assert "res-bad/orphan: Pending for " in pending and "storageClass (none)" in pending
    assert "FailedBinding: no persistent volumes available for this claim" in pending, pending
    volumes = {
        r["subject"]: r["message"] for r in res["test_pvc_usage_below_limit[bad]"]["records"]
    }
    assert volumes["res-bad/full"] == (
        "bad: res-bad/full 100.0 % (4.2 MB of 4.2 MB, df in res-bad/filler:/data) > crit 90.0 %"
    )
    assert volumes["res-bad/nodf"] == (
        "bad: res-bad/nodf exec df in res-bad/nodf (main): exit 126 (no df in the container's "
        "image?): OCI runtime exec failed: exec failed: unable to start container process: exec: "
        '"df": executable file not found in $PATH: unknown'
    )
    # res-noexec: a mounted claim, but no opscheck-exec binding in its namespace.
    assert every["test_pvc_usage_below_limit[noexec]"] == (
        "noexec: forbidden: grant get and create on pods/exec in namespace res-noexec (the opt-in "
        "role opscheck-exec in deploy/kubernetes/rbac.yaml)"
    ), every["test_pvc_usage_below_limit[noexec]"]
    off = every["test_pvc_usage_below_limit[off]"]
    assert outcome["test_pvc_usage_below_limit[off]"] == "skipped", off
    assert "set pvc_usage = true on the target and grant get and create on pods/exec" in off, off
    assert elapsed < 60, elapsed


def test_df_output_parsed():
    """POSIX df -Pk: the last line, used and available in KiB."""
    output = (
        "Filesystem           1024-blocks    Used Available Capacity Mounted on\n"
        "tmpfs                      4096     400      3696  10% /data\n"
    )
    assert parse_df(output) == (400 * 1024, 4096 * 1024)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("250m", 0.25),
        ("2", 2.0),
        ("1.5", 1.5),
        ("123456789n", 0.123456789),
        ("1500u", 0.0015),
        ("1Gi", 2.0**30),
        ("123456Ki", 123456 * 1024.0),
        ("64M", 64e6),
        ("1e3", 1000.0),
    ],
)
def test_quantities_parsed(text, value):
    """What NodeMetrics, PodMetrics and resource limits hold, as kubectl reads them."""
    assert quantity(text) == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "1Xi", "m", "ten", "1.2.3"])
def test_not_a_quantity_refused(text):
    with pytest.raises(ValueError, match="not a Kubernetes quantity"):
        quantity(text)
