"""Runbook: "Check response times (should be < 500ms average)" - `curl -w %{time_total}` loop."""

import pytest

from opscheck.probes import http as probes

pytestmark = [
    pytest.mark.http,
    pytest.mark.performance,
    pytest.mark.morning,
    pytest.mark.applies_to("samples", what="has samples > 0"),
]


def test_latency_average_below_limit(endpoint, limits):
    """Average response time over `samples` requests < 500 ms."""
    limits.check("http.latency_avg", probes.latency_avg(endpoint))


def test_latency_p95_below_limit(endpoint, limits):
    """95th percentile response time < 2 s (the runbook's escalation line)."""
    limits.check("http.latency_p95", probes.latency_p95(endpoint))
