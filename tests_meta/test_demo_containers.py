"""``make demo``'s cluster and containers (opscheck.testbed.demo_containers): its namespace on the
session's real cluster, its compose project on a real dockerd, the morning checks on both."""

from opscheck.testbed.demo_containers import (
    NAMESPACE,
    THRESHOLDS,
    compose_project,
    containers_inventory,
    manifests,
    settle,
)
from opscheck.testbed.docker import DockerEngine

SUITES = ("suites/kubernetes", "suites/docker", "suites/logs")


def test_demo_containers_are_green_with_one_warning(suite, kube_cluster, tmp_path):
    """Every Kubernetes and Docker morning check passes, as the opscheck ServiceAccount, but the
    worker's restart: a WARN at the demo's levels, naming its deployment and pod."""
    kube_cluster.apply(*manifests())
    try:
        settle(kube_cluster)
        with DockerEngine(tmp_path / "docker") as engine:
            engine.busybox_image()
            compose_project(engine)
            inventory = containers_inventory(kube_cluster.opscheck_kubeconfig, engine.url)
            result = suite.run(inventory, THRESHOLDS, "-m", "morning", paths=SUITES)
    finally:
        kube_cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false")
    assert result.ret == 0
    results = suite.results()
    not_ok = {
        name: r["verdict"]
        for name, r in results.items()
        if r["outcome"] != "skipped" and r["verdict"] != "OK"
    }
    assert not_ok == {"test_pod_restarts[demo-cluster]": "WARN"}
    warned = results["test_pod_restarts[demo-cluster]"]["message"]
    assert "deployment demo/worker: 1 restart of pod worker-" in warned
    assert "> warn 0" in warned
    ran = {name for name, r in results.items() if r["outcome"] == "passed"}
    assert {
        "test_nodes_ready[demo-cluster]",
        "test_workloads_available[demo-cluster]",
        "test_service_endpoints[demo-cluster]",
        "test_pods_ready[demo-cluster]",
        "test_warning_events[demo-cluster]",
        "test_expected_containers_running[shop]",
        "test_containers_healthy[shop]",
        "test_error_lines_within_limits[worker-logs/errors]",
        "test_error_lines_within_limits[shop-web-logs/errors]",
    } <= ran
