"""Runbook: "Response times < 500ms average", "p95 latency", "top client IPs", "top endpoints",
"active users" from structured (JSON) logs - `jq -s 'map(.duration_ms) | add / length'`,
`jq -r .client_ip | sort | uniq -c | sort -nr | head`: computed on the log's host by the scanner."""

import pytest

from opscheck.probes import logs as probes

pytestmark = [
    pytest.mark.logs,
    pytest.mark.performance,
    pytest.mark.for_each("stats", "stat", what="has [[logs.stats]] entries"),
]


@pytest.mark.morning
@pytest.mark.midday
@pytest.mark.evening
def test_log_field_stat_within_limits(logs, stat, limits):
    """Each stat of a JSON field in its window (avg, median, p95, p99, max, min, sum, distinct;
    count or any of them per group_by group) stays within its levels."""
    measured, levels = probes.stat_values(logs, stat), stat.levels()
    if stat.unit in ("ms", "s"):
        limits.check("logs.stat_seconds", measured, levels)
    elif stat.unit == "bytes":
        limits.check("logs.stat_bytes", measured, levels)
    else:
        limits.check("logs.stat", measured, levels)
