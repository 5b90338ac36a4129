"""Runbook: "Check error rates" starts with the log itself - `logs/api-$(date +%Y-%m-%d).log`
is there (today's file of a date-templated path, every file of a glob), or the journal answers."""

import pytest

from opscheck.probes import logs as probes

pytestmark = [pytest.mark.logs, pytest.mark.health]


@pytest.mark.morning
@pytest.mark.evening
def test_log_source_present(logs, limits):
    """The log files exist and can be read (a missing file of today: the app stopped logging)."""
    limits.check("logs.source", probes.source_present(logs))
