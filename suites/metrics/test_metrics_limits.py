"""Runbook: `curl -s http://app:8000/metrics | grep queue_depth` - "Queue depth < 100 items",
"p95 latency < 500ms", "errors per second": each of the target's `limits`."""

import pytest

from opscheck.probes import metrics as probes

pytestmark = [
    pytest.mark.metrics,
    pytest.mark.performance,
    pytest.mark.morning,
    pytest.mark.midday,
    pytest.mark.for_each("limits", "limit"),
]


def test_metric_within_limit(metrics, limit, limits):
    """The metric's matching series (each, or their sum/max/min/avg/count; a counter's rate, a
    histogram's quantile) within the limit's warn and crit, in its unit."""
    measured, levels = probes.limit_values(metrics, limit), limit.levels()
    if limit.unit == "seconds":
        limits.check("metrics.limit_seconds", measured, levels)
    elif limit.unit == "bytes":
        limits.check("metrics.limit_bytes", measured, levels)
    elif limit.unit == "percent":
        limits.check("metrics.limit_percent", measured, levels)
    else:
        limits.check("metrics.limit", measured, levels)
