"""Runbook: weekly "Performance Review" - `SELECT query, mean_exec_time, calls FROM
pg_stat_statements WHERE mean_exec_time > 100`, and how much is read from disk."""

import pytest

from opscheck.probes import postgres as probes

pytestmark = [pytest.mark.postgres, pytest.mark.performance, pytest.mark.weekly]


def test_cache_hit_ratio_above_limit(postgres, limits):
    """Shared buffers serve at least 90 % of the database's block reads."""
    limits.check("postgres.cache_hit_pct", probes.cache_hit(postgres))


def test_statements_mean_time_below_limit(postgres, limits):
    """No statement takes more than 100 ms on average (warn; 1 s crit); the slowest in detail."""
    slowest = probes.slow_statements(postgres)
    limits.check("postgres.statement_mean_time", slowest)
