"""Runbook: "Check response times (should be < 500ms average)" - the `curl -w %{time_total}` loop."""

import pytest

from opscheck.probes import http as probes

pytestmark = [pytest.mark.http, pytest.mark.performance, pytest.mark.morning]


def _samples(endpoint, http_target):
    if http_target.samples == 0:
        pytest.skip(f"samples = 0 for {http_target.name}")
    return endpoint.latencies()


def test_latency_average_below_limit(endpoint, http_target, limits):
    """Average response time over `samples` requests < 500 ms."""
    limits.check("http.latency_avg", probes.average(_samples(endpoint, http_target)))


def test_latency_p95_below_limit(endpoint, http_target, limits):
    """95th percentile response time < 2 s (the runbook's escalation line)."""
    limits.check("http.latency_p95", probes.p95(_samples(endpoint, http_target)))
