"""Runbook: "Check slow queries (should be < 5 per hour)" - `pg_stat_activity WHERE state =
'active' AND query_start < now() - interval '5 seconds'`, and what holds sessions up."""

import pytest

from opscheck.probes import postgres as probes

pytestmark = [pytest.mark.postgres, pytest.mark.performance, pytest.mark.midday]


def test_long_queries_below_limit(postgres, postgres_target, limits):
    """Fewer than 5 queries have been active longer than `long_query` (5 s)."""
    limits.check("postgres.long_queries", probes.long_queries(postgres, postgres_target))


@pytest.mark.morning
def test_longest_query_below_limit(postgres, limits):
    """No query has been running for 5 minutes; pid, duration and query text in the detail."""
    limits.check("postgres.longest_query", probes.longest_query(postgres))


def test_no_long_idle_transactions(postgres, limits):
    """No session sits idle in an open transaction for 5 minutes (it holds locks, stalls vacuum)."""
    limits.check("postgres.idle_in_transaction", probes.idle_in_transaction(postgres))


def test_no_long_lock_waits(postgres, limits):
    """No query waits 30 s for a lock; the blocked and blocking pids are in the detail."""
    limits.check("postgres.lock_wait", probes.lock_waits(postgres))
