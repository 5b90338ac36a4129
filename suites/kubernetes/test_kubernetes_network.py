"""Runbook: "Services and ingress" - `kubectl get endpoints` shows a ready address behind every
service, `kubectl get ingress` an address for every ingress, and the TLS certificates the
ingresses serve are far from expiry."""

import pytest

from opscheck.probes import kubernetes_network as probes

pytestmark = [pytest.mark.kubernetes, pytest.mark.morning]


@pytest.mark.health
@pytest.mark.midday
def test_service_endpoints(kubernetes, limits):
    """`kubectl get endpoints`: every service with a selector has a ready address; the others
    say whether no pod matches the selector or the matching pods are not ready."""
    limits.check("kubernetes.service_endpoints", probes.service_endpoints(kubernetes))


@pytest.mark.health
def test_ingress_address(kubernetes, limits):
    """`kubectl get ingress`: every ingress has a load-balancer address (its controller took it)."""
    limits.check("kubernetes.ingress_address", probes.ingress_address(kubernetes))


@pytest.mark.security
@pytest.mark.weekly
def test_ingress_tls_expiry(kubernetes, kubernetes_target, limits):
    """Days until the certificate of each ingress TLS secret expires, per host: < 30 days WARN,
    < 14 CRIT (reads the secrets: opt-in `get secrets`, `ingress_tls = false` skips)."""
    with limits.batch():
        limits.check(
            "kubernetes.ingress_cert_days",
            probes.ingress_cert_days(kubernetes, kubernetes_target),
        )
