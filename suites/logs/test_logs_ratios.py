"""Runbook: "Error rate > 5 %" (`grep -c ' 5[0-9][0-9] ' access.log` over `wc -l`), "4xx share",
"success rate < 95 %": a pattern's lines as a share of all lines in its window, or of another
pattern's lines (`ratio_of`), judged in percent."""

import pytest

from opscheck.probes import logs as probes

pytestmark = [
    pytest.mark.logs,
    pytest.mark.errors,
    pytest.mark.for_each(
        "ratio_patterns", "pattern", what="has a pattern judged as a share (ratio_of)"
    ),
]


@pytest.mark.morning
@pytest.mark.evening
def test_pattern_share_within_limits(logs, pattern, limits):
    """The share of the window's lines (or of another pattern's lines) matching each ratio
    pattern stays within its levels, in percent (direction = "below" for a success rate)."""
    limits.check("logs.pattern_ratio", probes.pattern_ratio(logs, pattern), pattern.levels())
