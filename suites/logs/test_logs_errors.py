"""Runbook: "Error Rate Analysis" - `grep -c ERROR logs/api-$(date +%Y-%m-%d).log`,
`kubectl logs --since=24h | grep -i error | wc -l`; evening: "Error Summary" (`log-analyzer.py
--errors --last-24h`): the count, and the most repeated messages behind it."""

import pytest

from opscheck.probes import logs as probes

pytestmark = [
    pytest.mark.logs,
    pytest.mark.errors,
    pytest.mark.for_each(
        "error_patterns",
        "pattern",
        what='has an error pattern (category = "errors", the default)',
    ),
]


@pytest.mark.morning
@pytest.mark.evening
def test_error_lines_within_limits(logs, pattern, limits):
    """Lines matching each error pattern in its window (default: the last 24 h) stay within
    its levels; the report lists the top repeated messages (`sort | uniq -c | sort -nr`)."""
    limits.check("logs.pattern_lines", probes.pattern_lines(logs, pattern), pattern.levels())
