"""Runbook: "Cluster health" - `kubectl cluster-info` answers, `kubectl get nodes` shows every
node Ready, without pressure, none cordoned, kubelets on a supported version."""

import pytest

from opscheck.probes import kubernetes as probes

pytestmark = [pytest.mark.kubernetes, pytest.mark.health, pytest.mark.morning, pytest.mark.midday]


@pytest.mark.evening
def test_kubernetes_reachable(kubernetes, limits):
    """The API server answers `/version` with the kubeconfig's credentials."""
    limits.check("kubernetes.reachable", probes.reachable(kubernetes))


@pytest.mark.evening
def test_nodes_ready(kubernetes, limits):
    """`kubectl get nodes`: every node is Ready; the others with their reason and since when."""
    limits.check("kubernetes.nodes_ready", probes.nodes_ready(kubernetes))


def test_node_conditions(kubernetes, limits):
    """No node reports memory, disk or PID pressure or is cordoned (SchedulingDisabled)."""
    limits.check("kubernetes.node_conditions", probes.node_conditions(kubernetes))


@pytest.mark.weekly
def test_kubelet_versions(kubernetes, limits):
    """Kubelets are at most two minor versions behind the API server, never ahead of it."""
    limits.check("kubernetes.kubelet_versions", probes.kubelet_versions(kubernetes))
