"""Runbook: "Deployments" - `kubectl get deploy,sts,ds -A` shows every workload with its desired
replicas available, `kubectl rollout status` is not stuck, and `kubectl get hpa` shows no
autoscaler at its MAXPODS."""

import pytest

from opscheck.probes import kubernetes_workloads as probes

pytestmark = [pytest.mark.kubernetes, pytest.mark.morning]


@pytest.mark.health
@pytest.mark.midday
@pytest.mark.evening
def test_workloads_available(kubernetes, limits):
    """Deployments, StatefulSets and DaemonSets: available replicas = desired."""
    limits.check("kubernetes.workloads_available", probes.workloads_available(kubernetes))


@pytest.mark.health
@pytest.mark.midday
def test_rollouts_progressing(kubernetes, limits):
    """`kubectl rollout status`: no ProgressDeadlineExceeded, no generation left unobserved."""
    limits.check("kubernetes.rollouts", probes.rollouts(kubernetes))


@pytest.mark.capacity
def test_hpa_below_max(kubernetes, limits):
    """`kubectl get hpa`: no autoscaler running at its maxReplicas."""
    limits.check("kubernetes.hpa_at_max", probes.hpa_at_max(kubernetes))
