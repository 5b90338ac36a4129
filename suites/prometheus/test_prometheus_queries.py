"""Runbook: "run this PromQL" - error rates, latency percentiles, queue depths: each query in
`[[prometheus.queries]]`, its worst series against its levels, in its unit; with `for`, the
value that held for the whole window. An empty result is CRIT unless `empty` says otherwise."""

import pytest

from opscheck.probes import prometheus as probes

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.performance,
    pytest.mark.morning,
    pytest.mark.midday,
    pytest.mark.for_each("queries", "query"),
]


def test_query_within_limits(prometheus, query, limits):
    """The query's worst series within `warn`/`crit` (`direction`, `unit`, `for`, `empty`)."""
    found = probes.run_query(prometheus, query)
    measured, levels = found.measurement, query.levels()
    if found.empty:
        limits.check("prometheus.query_series", measured, probes.empty_levels(query))
    elif query.unit == "seconds":
        limits.check("prometheus.query_seconds", measured, levels)
    elif query.unit == "bytes":
        limits.check("prometheus.query_bytes", measured, levels)
    elif query.unit == "percent":
        limits.check("prometheus.query_percent", measured, levels)
    else:
        limits.check("prometheus.query", measured, levels)
