"""Runbook: "Database size monitoring" (`pg_database_size`) and "Storage growth rate"
(`pg_total_relation_size('receipts')`)."""

import pytest

from opscheck.probes import postgres as probes

pytestmark = [pytest.mark.postgres, pytest.mark.capacity, pytest.mark.evening]


@pytest.mark.midday
def test_database_size_below_limit(postgres, limits):
    """The database stays below its size limit; its largest tables are in the detail."""
    limits.check("postgres.database_size", probes.database_size(postgres))


@pytest.mark.weekly
@pytest.mark.applies_to("tables")
def test_table_sizes_below_limit(postgres, postgres_target, limits):
    """Each table in `tables` (data, indexes and TOAST) stays below its size limit."""
    limits.check("postgres.table_size", probes.table_sizes(postgres, postgres_target))
