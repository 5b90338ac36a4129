"""The cluster checks (`kubectl cluster-info`, `kubectl get nodes`) against the real testbed
cluster, run as opscheck's ServiceAccount (deploy/kubernetes RBAC): healthy, a node NotReady
(kubelet frozen), a cordoned node, an account without rights, an API server that is not there
or stops answering mid-run, a kubeconfig that is missing or names an unknown context, nodes
whose kubelets report pressure and a version outside the skew policy."""

from __future__ import annotations

import importlib
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from opscheck.probes import kubernetes as probes
from opscheck.testbed import free_port
from opscheck.testbed.kubernetes import NODE, Cluster

PATHS = ("suites/kubernetes/test_kubernetes_cluster.py",)
CHECKS = 4


def block(name: str, kubeconfig: Path | str, **keys: str) -> str:
    extra = "".join(f'{key} = "{value}"\n' for key, value in keys.items())
    return f'[[kubernetes]]\nname = "{name}"\nkubeconfig = "{kubeconfig}"\n{extra}\n'


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("reason") or "")


def daemon(cluster: Cluster, name: str) -> Any:
    return next(d for d in cluster.daemons if d.name == name)


def node_ready(cluster: Cluster) -> str:
    node = cluster.api_get(f"/api/v1/nodes/{NODE}")
    return next(c["status"] for c in node["status"]["conditions"] if c["type"] == "Ready")


@pytest.fixture
def frozen_kubelet(kube_cluster: Cluster) -> Iterator[Cluster]:
    """The kubelet SIGSTOPped until the node controller marks the node Ready=Unknown (~5 s with
    the testbed's 8 s grace period); resumed and Ready again afterwards."""
    kubelet = daemon(kube_cluster, "kubelet")
    kubelet.process.send_signal(signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 60
        while node_ready(kube_cluster) == "True":
            assert time.monotonic() < deadline, "the node stayed Ready with its kubelet frozen"
            time.sleep(0.5)
        yield kube_cluster
    finally:
        kubelet.process.send_signal(signal.SIGCONT)
        kube_cluster.wait_node_ready(timeout=90)


@pytest.fixture
def cordoned(kube_cluster: Cluster) -> Iterator[Cluster]:
    kube_cluster.kubectl("cordon", NODE)
    try:
        yield kube_cluster
    finally:
        kube_cluster.kubectl("uncordon", NODE)


# Two more nodes, as kubelets of other versions register theirs: a kubelet posts its Node with
# its version and conditions and posts the conditions again every few seconds (else the node
# controller turns them Unknown after the testbed's 8 s grace period). No kubelet runs behind
# them: they are tainted NoSchedule so no pod is placed there, and deleted afterwards.
STRAY_NODES = {
    "kubelet-old": (
        "v1.17.17",
        "DiskPressure",
        "KubeletHasDiskPressure",
        "kubelet has disk pressure",
    ),
    "kubelet-ahead": (
        "v1.21.1",
        "PIDPressure",
        "KubeletHasInsufficientPID",
        "kubelet has insufficient PID available",
    ),
}


def _node_status(version: str, pressure: str, reason: str, message: str) -> dict[str, Any]:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    conditions = []
    for kind in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready"):
        status, why, said = "False", f"KubeletHasNo{kind}", f"kubelet has no {kind}"
        if kind == pressure:
            status, why, said = "True", reason, message
        elif kind == "Ready":
            why, said = "KubeletNotReady", "the node is being drained"
        conditions.append(
            {
                "type": kind,
                "status": status,
                "reason": why,
                "message": said,
                "lastHeartbeatTime": now,
                "lastTransitionTime": now,
            }
        )
    info = {"kubeletVersion": version, "kubeProxyVersion": version, "operatingSystem": "linux"}
    return {"conditions": conditions, "nodeInfo": {**dict.fromkeys(NODE_INFO, ""), **info}}


NODE_INFO = (
    "machineID",
    "systemUUID",
    "bootID",
    "kernelVersion",
    "osImage",
    "containerRuntimeVersion",
    "architecture",
)


@pytest.fixture
def stray_nodes(kube_cluster: Cluster) -> Iterator[Cluster]:
    taints = [
        {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
        {"key": "opscheck.test/no-kubelet", "effect": "NoExecute"},
    ]
    stop = threading.Event()

    def post_status() -> None:
        for name, facts in STRAY_NODES.items():
            kube_cluster.api(
                "PATCH",
                f"/api/v1/nodes/{name}/status",
                {"status": _node_status(*facts)},
                content_type="application/merge-patch+json",
            )

    def heartbeat() -> None:
        while not stop.wait(2):
            post_status()

    for name, facts in STRAY_NODES.items():
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
            "spec": {"taints": taints},
            "status": _node_status(*facts),
        }
        kube_cluster.api("POST", "/api/v1/nodes", node)
    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    try:
        yield kube_cluster
    finally:
        stop.set()
        beat.join()
        for name in STRAY_NODES:
            kube_cluster.api("DELETE", f"/api/v1/nodes/{name}")


def test_healthy_cluster(suite, kube_cluster):
    suite.run(block("prod", kube_cluster.opscheck_kubeconfig), paths=PATHS)
    res = suite.results()
    assert {n: r["outcome"] for n, r in res.items()} == dict.fromkeys(res, "passed"), {
        n: said(r) for n, r in res.items()
    }
    assert len(res) == CHECKS
    assert re.fullmatch(
        r"Kubernetes v1\.20\.2 \(linux/\w+\)", res["test_kubernetes_reachable[prod]"]["measured"]
    )
    assert res["test_nodes_ready[prod]"]["measured"] == "1 node Ready"
    assert res["test_node_conditions[prod]"]["measured"] == "1 node without pressure"
    assert res["test_kubelet_versions[prod]"]["measured"] == (
        "kubelet v1.20.2 (1 node); API server v1.20.2"
    )


def test_node_not_ready_when_its_kubelet_is_frozen(suite, frozen_kubelet):
    suite.run(block("prod", frozen_kubelet.opscheck_kubeconfig), paths=PATHS)
    res = suite.results()
    result = res["test_nodes_ready[prod]"]
    assert result["outcome"] == "failed"
    assert re.fullmatch(r"prod: 1 of 1 node not Ready: localhost", said(result)), said(result)
    assert re.search(r"localhost: Ready=Unknown \(NodeStatusUnknown, since \S+\)", str(res))


def test_cordoned_node(suite, cordoned):
    suite.run(block("prod", cordoned.opscheck_kubeconfig), paths=PATHS)
    result = suite.results()["test_node_conditions[prod]"]
    assert result["outcome"] == "failed"
    assert "localhost: cordoned (SchedulingDisabled)" in said(result), said(result)


def test_nodes_under_pressure_and_kubelets_outside_the_skew(suite, stray_nodes):
    suite.run(block("prod", stray_nodes.opscheck_kubeconfig), paths=PATHS)
    res = suite.results()
    conditions, versions = res["test_node_conditions[prod]"], res["test_kubelet_versions[prod]"]
    assert (conditions["outcome"], versions["outcome"]) == ("failed", "failed"), res
    assert said(conditions) == (
        "prod: 2 problems on nodes: kubelet-ahead: PIDPressure (kubelet has insufficient PID "
        "available), kubelet-old: DiskPressure (kubelet has disk pressure)"
    ), said(conditions)
    assert said(versions) == (
        "prod: 2 kubelets outside the skew: kubelet-ahead: kubelet v1.21.1 vs API server "
        "v1.20.2, kubelet-old: kubelet v1.17.17 vs API server v1.20.2"
    ), said(versions)
    # the testbed's own node is not blamed
    assert NODE not in said(conditions) + said(versions)


def test_account_without_rights_is_told_what_to_grant(suite, kube_cluster):
    """The testbed's `opscheck` user has a token and no role: /version answers (every account
    may read it), the node list is refused with the RBAC rule to add."""
    suite.run(block("bare", kube_cluster.reader_kubeconfig), paths=PATHS)
    res = suite.results()
    assert res["test_kubernetes_reachable[bare]"]["outcome"] == "passed"
    for name in ("test_nodes_ready[bare]", "test_node_conditions[bare]"):
        assert res[name]["outcome"] == "failed"
        assert said(res[name]).startswith(
            "bare: forbidden: grant list on nodes cluster-wide: nodes is forbidden: "
            'User "opscheck" cannot list resource "nodes"'
        ), said(res[name])


def test_missing_kubeconfig_unknown_context_and_no_server(suite, kube_cluster, tmp_path):
    dead = tmp_path / "dead.kubeconfig"
    text = Path(kube_cluster.opscheck_kubeconfig).read_text()
    dead.write_text(re.sub(r"https://127\.0\.0\.1:\d+", f"https://127.0.0.1:{free_port()}", text))
    inventory = (
        block("nofile", tmp_path / "absent.kubeconfig")
        + block("noctx", kube_cluster.opscheck_kubeconfig, context="staging")
        + block("dead", dead, timeout="3s")
    )
    started = time.monotonic()
    suite.run(inventory, paths=PATHS)
    assert time.monotonic() - started < 30
    res = suite.results()
    reachable = {n: r for n, r in res.items() if n.startswith("test_kubernetes_reachable")}
    assert {r["outcome"] for r in reachable.values()} == {"failed"}
    assert {r["outcome"] for n, r in res.items() if n not in reachable} == {"not_run"}
    assert re.fullmatch(
        r"nofile: unreachable: kubeconfig: ConfigException: Invalid kube-config file\. "
        r"No configuration found\.",
        said(res["test_kubernetes_reachable[nofile]"]),
    ) or "absent.kubeconfig" in said(res["test_kubernetes_reachable[nofile]"]), said(
        res["test_kubernetes_reachable[nofile]"]
    )
    assert "staging" in said(res["test_kubernetes_reachable[noctx]"])
    assert re.search(
        r"dead: unreachable: https://127\.0\.0\.1:\d+: GET /version: .*(refused|Errno 111)",
        said(res["test_kubernetes_reachable[dead]"]),
    ), said(res["test_kubernetes_reachable[dead]"])
    assert said(res["test_nodes_ready[dead]"]) == (
        "not run: dead unreachable (see test_kubernetes_reachable[dead])"
    )


@pytest.mark.parametrize("concurrency", ["1", "16"], ids=["in the test", "measured ahead"])
def test_api_server_frozen_mid_run_costs_one_timeout(suite, kube_cluster, monkeypatch, concurrency):
    """The apiserver SIGSTOPped right after the client opened (``GET /version`` answered,
    before any check listed anything, whatever order the checks are measured in): the first
    check that lists waits one timeout and says the target stopped answering; the rest fail
    at once."""
    apiserver = daemon(kube_cluster, "kube-apiserver")
    # The module the run will call, whichever way it is reached: pytester's in-process runs
    # drop modules first imported inside an earlier run, so the package's attribute and
    # sys.modules may name two copies (clean-clone CI: the patch missed, nothing froze).
    module = importlib.import_module("opscheck.probes.kubernetes")
    monkeypatch.setattr(sys.modules["opscheck.probes"], "kubernetes", module)
    if "fixtures.kubernetes" in sys.modules:  # the fixture module kept from an earlier run
        monkeypatch.setattr(sys.modules["fixtures.kubernetes"], "probes", module)
    opened = module.open_client

    def open_then_freeze(target: Any, timeout: float) -> probes.Kube:
        kube = opened(target, timeout)
        apiserver.pause()  # returns once every thread has stopped
        frozen.append(apiserver.process.pid)
        return kube

    frozen: list[int] = []

    monkeypatch.setattr(module, "open_client", open_then_freeze)
    inventory = block("prod", kube_cluster.opscheck_kubeconfig, timeout="3s")
    try:
        started = time.monotonic()
        suite.run(inventory, "", "--concurrency", concurrency, paths=PATHS)
        elapsed = time.monotonic() - started
    finally:
        apiserver.resume()
    res = suite.results()
    assert frozen, "the run never opened a client through the patched open_client"
    assert elapsed < 8, f"{elapsed:.1f} s"  # one 3 s timeout, not one per check
    print(f"frozen apiserver, concurrency {concurrency}: run {elapsed:.1f} s")
    rest = {n: said(r) for n, r in res.items() if "reachable" not in n}
    noticed = [n for n, m in rest.items() if "stopped answering mid-run" in m]
    assert len(noticed) == 1, rest
    assert re.search(r"prod: stopped answering mid-run: GET /api/v1/nodes: .*", rest[noticed[0]])
    for name, message in rest.items():
        if name not in noticed:
            assert message == f"not run: prod unreachable (see {noticed[0]})", message
    kube_cluster.wait_node_ready(timeout=90)
