"""Runbook: monthly "Database Maintenance" - the bloat query on `pg_stat_user_tables`,
`VACUUM ANALYZE` of the busy tables, and the transaction ID wraparound it prevents."""

import pytest

from opscheck.probes import postgres as probes

pytestmark = [pytest.mark.postgres, pytest.mark.capacity, pytest.mark.weekly, pytest.mark.monthly]


def test_dead_tuples_below_limit(postgres, postgres_target, limits):
    """No table over 1000 dead tuples has more than 50 % dead per live tuple (`dead_ratio`)."""
    limits.check("postgres.dead_tuple_pct", probes.dead_tuples(postgres, postgres_target))


@pytest.mark.applies_to("tables")
def test_tables_vacuumed_recently(postgres, postgres_target, limits):
    """Each table in `tables` was vacuumed and analyzed (by hand or autovacuum) within 7 days."""
    with limits.batch():
        limits.check("postgres.vacuum_age", probes.vacuum_ages(postgres, postgres_target))
        limits.check("postgres.analyze_age", probes.analyze_ages(postgres, postgres_target))


def test_transaction_ids_far_from_wraparound(postgres, limits):
    """The oldest unfrozen transaction ID is below 75 % of the 2^31 wraparound limit."""
    limits.check("postgres.xid_age_pct", probes.xid_age(postgres))
