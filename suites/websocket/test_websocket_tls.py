"""Runbook: "SSL certificates valid" for the wss:// endpoint, and the weekly expiry check."""

import pytest

from opscheck.probes import websocket as probes

pytestmark = [
    pytest.mark.websocket,
    pytest.mark.security,
    pytest.mark.morning,
    pytest.mark.weekly,
    pytest.mark.applies_to("checks_tls", what="is wss"),
]


@pytest.mark.applies_to("verify", what="verifies TLS")
def test_websocket_tls_certificate_valid(websocket, limits):
    """The certificate verifies: trusted chain, not expired, issued for this host name."""
    limits.check("websocket.tls_valid", probes.tls_valid(websocket))


def test_websocket_tls_certificate_not_expiring(websocket, limits):
    """Days until the certificate expires: warn below 30, crit below 14."""
    limits.check("websocket.cert_days", probes.cert_days(websocket))
