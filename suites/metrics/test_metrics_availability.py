"""Runbook: `curl -s http://app:8000/metrics` answers, and what it answers is an exposition."""

import pytest

from opscheck.probes import metrics as probes

pytestmark = [pytest.mark.metrics, pytest.mark.health, pytest.mark.morning, pytest.mark.midday]


@pytest.mark.evening
def test_metrics_reachable(metrics, limits):
    """`/metrics` answers 2xx and parses as the text format or OpenMetrics, with metrics in it."""
    limits.check("metrics.reachable", probes.reachable(metrics))
