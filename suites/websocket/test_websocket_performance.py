"""Runbook: "WebSocket latency (ping < 200 ms)" - ping→pong round trips on the connection."""

import pytest

from opscheck.probes import websocket as probes

pytestmark = [
    pytest.mark.websocket,
    pytest.mark.performance,
    pytest.mark.morning,
    pytest.mark.applies_to("pings", what="has pings > 0"),
]


def test_websocket_ping_latency_below_limit(websocket, limits):
    """Average ping→pong time over `pings` pings: warn above 200 ms, crit above 500 ms."""
    limits.check("websocket.ping_latency", probes.ping_latency(websocket))
