"""Runbook: "SSL certificates valid" and the weekly certificate expiry check."""

import pytest

from opscheck.probes import http as probes

pytestmark = [
    pytest.mark.http,
    pytest.mark.security,
    pytest.mark.morning,
    pytest.mark.weekly,
    pytest.mark.applies_to("checks_tls", what="is https"),
]


@pytest.mark.applies_to("verify", what="verifies TLS")
def test_tls_certificate_valid(endpoint, limits):
    """The certificate verifies: trusted chain, not expired, issued for this host name."""
    limits.check("http.tls_valid", probes.tls_valid(endpoint))


def test_tls_certificate_not_expiring(endpoint, limits):
    """Days until the certificate expires: warn below 30, crit below 14."""
    limits.check("http.cert_days", probes.cert_days(endpoint))
