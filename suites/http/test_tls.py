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


def _certificate(endpoint, http_target):
    # endpoint.timeout opens the endpoint first: a dead server fails here at once.
    return probes.certificate(http_target.url, endpoint.timeout, http_target.verify)


@pytest.mark.applies_to("verify", what="verifies TLS")
def test_tls_certificate_valid(endpoint, http_target, limits):
    """The certificate verifies: trusted chain, not expired, issued for this host name."""
    _, error, subject = _certificate(endpoint, http_target)
    limits.expect(
        "http.tls_valid",
        error is None,
        f"TLS verification failed: {error}" if error else f"valid ({subject})",
        "verifies",
    )


def test_tls_certificate_not_expiring(endpoint, http_target, limits):
    """Days until the certificate expires: warn below 30, crit below 14."""
    not_after, _, _ = _certificate(endpoint, http_target)
    limits.check("http.cert_days", probes.days_left(not_after))
