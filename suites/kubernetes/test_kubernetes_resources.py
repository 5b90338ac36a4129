"""Runbook: "Resource utilization" - `kubectl top nodes` and `kubectl top pods` (metrics-server)
against allocatable and the pods' limits, cert-manager certificates Ready and far from expiry,
`kubectl get pvc` all Bound and `kubectl exec … df -h` on the volumes below their limit."""

import pytest

from opscheck.probes import kubernetes_resources as probes
from opscheck.probes import kubernetes_volumes as volumes

pytestmark = [pytest.mark.kubernetes, pytest.mark.morning]


@pytest.mark.capacity
@pytest.mark.midday
def test_node_cpu_below_limit(kubernetes, limits):
    """`kubectl top nodes`: CPU each node uses < 80 % of its allocatable CPU."""
    with limits.batch():
        limits.check("kubernetes.node_cpu_pct", probes.node_usage_pct(kubernetes, "cpu"))


@pytest.mark.capacity
@pytest.mark.midday
def test_node_memory_below_limit(kubernetes, limits):
    """`kubectl top nodes`: memory each node uses < 80 % of its allocatable memory."""
    with limits.batch():
        limits.check("kubernetes.node_memory_pct", probes.node_usage_pct(kubernetes, "memory"))


@pytest.mark.performance
@pytest.mark.midday
def test_pod_cpu_below_limit(kubernetes, limits):
    """`kubectl top pods`: CPU of each workload's busiest pod < 80 % of its containers' limits
    (else requests); pods that set neither are counted, not judged."""
    with limits.batch():
        limits.check("kubernetes.pod_cpu_pct", probes.pod_usage_pct(kubernetes, "cpu"))


@pytest.mark.capacity
@pytest.mark.midday
def test_pod_memory_below_limit(kubernetes, limits):
    """`kubectl top pods`: memory of each workload's biggest pod < 80 % of its containers'
    limits (else requests), < 90 % before the OOM killer takes it."""
    with limits.batch():
        limits.check("kubernetes.pod_memory_pct", probes.pod_usage_pct(kubernetes, "memory"))


@pytest.mark.security
def test_certificates_ready(kubernetes, limits):
    """`kubectl get certificates -A`: every cert-manager Certificate is Ready."""
    limits.check("kubernetes.certificates_ready", probes.certificates_ready(kubernetes))


@pytest.mark.security
@pytest.mark.weekly
def test_certificate_expiry(kubernetes, limits):
    """Days until each cert-manager Certificate's notAfter: < 30 days WARN, < 14 CRIT (cert-manager
    renews 30 days ahead by default: a certificate this close was not renewed)."""
    with limits.batch():
        limits.check("kubernetes.certificate_days", probes.certificate_days(kubernetes))


@pytest.mark.health
def test_pvcs_bound(kubernetes, limits):
    """`kubectl get pvc -A`: every PersistentVolumeClaim is Bound; Pending and Lost ones with the
    reason of their newest event."""
    limits.check("kubernetes.pvcs_bound", volumes.pvcs_bound(kubernetes))


@pytest.mark.capacity
def test_pvc_usage_below_limit(kubernetes, kubernetes_target, limits):
    """`kubectl exec <pod> -- df -h <mount>`: space used of each mounted claim < 80 % (opt-in:
    `pvc_usage = true` and the `pods/exec` role)."""
    with limits.batch():
        limits.check(
            "kubernetes.pvc_used_pct",
            volumes.pvc_used_pct(kubernetes, kubernetes_target.pvc_usage),
        )
