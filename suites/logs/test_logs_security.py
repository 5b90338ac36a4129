"""Runbook: "Security Status Review" - `grep -c "authentication failed" /logs/backend/*.jsonl`,
`grep -c "rate limit" …`; weekly: `grep -E "SQL injection|XSS|../|<script" logs/api-*.log`;
monthly: `grep sudo /var/log/auth.log`. Presets name these signals (failed_logins, attacks ...)."""

import pytest

from opscheck.probes import logs as probes

pytestmark = [
    pytest.mark.logs,
    pytest.mark.security,
    pytest.mark.for_each(
        "security_patterns",
        "pattern",
        what='has a security pattern (a security preset, or category = "security")',
    ),
]


@pytest.mark.morning
@pytest.mark.weekly
def test_security_lines_within_limits(logs, pattern, limits):
    """Failed logins, rate limiting, attack patterns, sudo use: lines matching each security
    pattern in its window stay within its levels; the report lists who and what repeats."""
    limits.check("logs.pattern_lines", probes.pattern_lines(logs, pattern), pattern.levels())
