"""The demo's cluster and containers: a real Kubernetes 1.20 and a Docker Engine, started in the
background while the rest of the demo stack comes up.

The cluster (``opscheck.testbed.kubernetes.Cluster``, ~16 s to node Ready) runs namespace
``demo``: Deployment ``api`` (2 replicas, Service ``api`` in front) and Deployment ``worker``,
whose container exits once at start ("lost connection to the queue") and runs after its restart,
so that the morning's ``kubernetes.pod_restarts`` shows a warning (the demo's thresholds: any
restart warns), not a failure. The checks read the cluster as the opscheck ServiceAccount of
deploy/kubernetes (least privilege, RBAC enforced). The Docker Engine (its own dockerd, not the
cluster's) runs compose project ``shop``: ``web`` and ``db`` healthy, ``worker`` running,
labelled as ``docker compose up`` labels them.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opscheck.testbed.docker import COMPOSE_PROJECT, COMPOSE_SERVICE, DockerEngine
from opscheck.testbed.kubernetes import Cluster, KubernetesError, pod_spec
from opscheck.testbed.sshd import toml_value

NAMESPACE = "demo"
PROJECT = "shop"
WORKER_CRASH = "ERROR worker: lost connection to the queue, exiting"
# The worker's first start fails; an emptyDir outlives the container, so the restart runs.
WORKER = (
    f"if [ ! -e /state/crashed ]; then echo > /state/crashed; echo '{WORKER_CRASH}'; exit 1; fi; "
    "echo 'INFO worker: connected, waiting for jobs'; exec sleep 86400"
)
API = "echo 'INFO api: listening on :8080'; exec sleep 86400"
READY_TIMEOUT = 90.0  # seconds for both deployments after node Ready (measured: ~4 s idle)
HEALTH_INTERVAL = 1.0  # seconds between the compose services' health checks
# Levels for the demo only, appended to the repository's thresholds.toml.
THRESHOLDS = """
[kubernetes.pod_restarts]          # the demo: any restart is a warning (the worker restarted once)
warn = 0
crit = 5
"""


@dataclass
class Containers:
    """The cluster and the Docker Engine, starting in two threads; ``wait()`` joins them."""

    cluster: Cluster
    engine: DockerEngine
    kubeconfig: Path | None = None  # the opscheck ServiceAccount's, once the cluster is up
    # seconds from the start: "node Ready", "workloads" (settled), "compose" (healthy)
    timings: dict[str, float] = field(default_factory=dict)
    began: float = field(default_factory=time.monotonic)
    _futures: list[concurrent.futures.Future[Any]] = field(default_factory=list)

    def wait(self, timeout: float = 180.0) -> float:
        """Wait until the cluster's workloads and the compose project are up; the seconds
        waited. The first start-up error is raised."""
        start = time.monotonic()
        done, pending = concurrent.futures.wait(
            self._futures, timeout, concurrent.futures.FIRST_EXCEPTION
        )
        for future in done:
            future.result()
        if pending:
            raise KubernetesError(f"cluster and containers not up after {timeout:g} s")
        return time.monotonic() - start


@contextlib.contextmanager
def containers(directory: Path) -> Iterator[Containers]:
    """Start the cluster and the Docker Engine in ``directory``, each in a thread, and set up
    their workloads there; stop both on exit (Ctrl-C included: the start-ups are let finish or
    fail first, so nothing is left running)."""
    cluster = Cluster(directory / "kubernetes")
    engine = DockerEngine(directory / "docker")
    boxes = Containers(cluster, engine)
    pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="demo-containers")
    try:
        boxes._futures = [
            pool.submit(_start_cluster, boxes),
            pool.submit(_start_engine, boxes),
        ]
        yield boxes
    finally:
        _settle(boxes._futures)
        pool.shutdown()
        try:
            engine.stop()
        finally:
            cluster.stop()


def _settle(futures: list[concurrent.futures.Future[Any]]) -> None:
    """Wait for the start-up threads to end, through further Ctrl-Cs: stopping a cluster that is
    still starting would leave the daemons started after the stop running."""
    while True:
        try:
            concurrent.futures.wait(futures)
            return
        except KeyboardInterrupt:
            print("opscheck demo: stopping the cluster and the containers ...", file=sys.stderr)


def _start_cluster(boxes: Containers) -> None:
    """Start the cluster, install the account while the node comes Ready, then the workloads.
    Not before Ready: pods created earlier raise FailedScheduling warnings (the node's not-ready
    taint) and wait out the scheduler's back-off, ~4 s later than these (measured)."""
    cluster = boxes.cluster
    cluster.start()
    boxes.kubeconfig = cluster.install_rbac()
    boxes.timings["node Ready"] = cluster.wait_node_ready()
    cluster.apply(*manifests())
    settle(cluster)
    boxes.timings["workloads"] = time.monotonic() - boxes.began


def _start_engine(boxes: Containers) -> None:
    boxes.engine.start()
    boxes.engine.busybox_image()
    compose_project(boxes.engine)
    boxes.timings["compose"] = time.monotonic() - boxes.began


# -- the cluster's workloads -----------------------------------------------------------------


def _deployment(name: str, replicas: int, command: str, **extra: Any) -> dict[str, Any]:
    spec = pod_spec(command, **extra)
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def manifests() -> list[dict[str, Any]]:
    """Namespace ``demo``: Deployment ``api`` (2 replicas) behind Service ``api``, Deployment
    ``worker`` (1 replica) that crashes once at start."""
    worker = _deployment(
        "worker", 1, WORKER, volumeMounts=[{"name": "state", "mountPath": "/state"}]
    )
    worker["spec"]["template"]["spec"]["volumes"] = [{"name": "state", "emptyDir": {}}]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "api", "namespace": NAMESPACE},
        "spec": {"selector": {"app": "api"}, "ports": [{"port": 8080}]},
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        _deployment("api", 2, API),
        service,
        worker,
    ]


def settle(cluster: Cluster, timeout: float = READY_TIMEOUT) -> float:
    """Wait until ``manifests()``' deployments are available, the Service has its two endpoints
    and the worker has restarted once; the seconds that took."""
    start = time.monotonic()
    deadline = start + timeout
    while (why := _not_settled(cluster)) is not None:
        if time.monotonic() > deadline:
            raise KubernetesError(f"namespace {NAMESPACE}: {why} after {timeout:g} s")
        time.sleep(0.2)
    return time.monotonic() - start


def _not_settled(cluster: Cluster) -> str | None:
    """What the demo namespace still lacks, or None."""
    base = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments"
    for deployment in cluster.api_get(base)["items"]:
        name, status = deployment["metadata"]["name"], deployment.get("status") or {}
        if status.get("availableReplicas", 0) < deployment["spec"]["replicas"]:
            return f"deployment {name} not available"
    endpoints = cluster.api_get(f"/api/v1/namespaces/{NAMESPACE}/endpoints/api")
    if sum(len(s.get("addresses") or []) for s in endpoints.get("subsets") or []) < 2:
        return "service api without its 2 endpoints"
    pods = cluster.api_get(f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector=app%3Dworker")
    for pod in pods["items"]:
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        if not statuses or statuses[0].get("restartCount", 0) < 1 or not statuses[0]["ready"]:
            return "the worker has not restarted yet"
    return None


# -- the compose project -------------------------------------------------------------------------

SERVICES: dict[str, dict[str, Any]] = {
    "web": {"command": "echo up > /tmp/up; exec sleep 86400", "health": "test -e /tmp/up"},
    "db": {"command": "exec sleep 86400", "health": "true", "mem_limit": "64m"},
    "worker": {"command": "exec sleep 86400"},
}


def compose_project(engine: DockerEngine) -> None:
    """``shop``'s containers as ``docker compose -p shop up -d`` names and labels them; returns
    once the health-checked ones are healthy."""
    for service, spec in SERVICES.items():
        options = {k: v for k, v in spec.items() if k not in ("command", "health")}
        if "health" in spec:
            interval = int(HEALTH_INTERVAL * 1e9)
            options["healthcheck"] = {
                "test": ["CMD-SHELL", spec["health"]],
                "interval": interval,
                "timeout": 5 * interval,
                "retries": 1,
                "start_period": 0,
            }
        if "mem_limit" in options:
            options["memswap_limit"] = options["mem_limit"]
        labels = {
            COMPOSE_PROJECT: PROJECT,
            COMPOSE_SERVICE: service,
            "com.docker.compose.container-number": "1",
            "com.docker.compose.oneoff": "False",
        }
        engine.run(f"{PROJECT}-{service}-1", spec["command"], labels=labels, **options)
    for service, spec in SERVICES.items():
        name = f"{PROJECT}-{service}-1"
        if "health" in spec:
            engine.wait_for(
                name, "healthy", lambda s: (s.get("Health") or {}).get("Status") == "healthy"
            )
        else:
            engine.wait_for(name, "running", lambda s: s["Status"] == "running")


# -- inventory -------------------------------------------------------------------------------


def containers_inventory(kubeconfig: Path, docker_url: str) -> str:
    """The ``[[kubernetes]]`` and ``[[docker]]`` tables of the demo and their logs: the
    runbooks' kubectl, ``docker compose ps`` and ``… logs | grep -i error`` lines."""
    return f"""\
[[kubernetes]]                     # kubectl get nodes; get pods/services/deployments -n {NAMESPACE}
name = "demo-cluster"
kubeconfig = {toml_value(str(kubeconfig))}   # the opscheck ServiceAccount (read-only RBAC)
namespaces = ["{NAMESPACE}"]

[[docker]]                         # docker compose -p {PROJECT} ps: every service up and healthy
name = "{PROJECT}"
url = {toml_value(docker_url)}
project = "{PROJECT}"
services = {json.dumps(list(SERVICES))}

[[logs]]                           # kubectl logs deployment/worker --since=24h | grep -i error
name = "worker-logs"
kubernetes = {{ target = "demo-cluster", namespace = "{NAMESPACE}", deployment = "worker" }}

[[logs.patterns]]
name = "errors"
preset = "errors"
warn = 10
crit = 100

[[logs]]                           # docker compose -p {PROJECT} logs web | grep -i error
name = "shop-web-logs"
docker = {{ target = "{PROJECT}", service = "web" }}

[[logs.patterns]]
name = "errors"
preset = "errors"
warn = 10
crit = 100
"""
