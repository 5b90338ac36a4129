"""Runbook: "Check database connectivity" - `SELECT COUNT(*) FROM work_orders`: each table in
`tables` is there and its rows within its levels (by default: not empty)."""

import pytest

from opscheck.probes import sqlite as probes

pytestmark = [
    pytest.mark.sqlite,
    pytest.mark.capacity,
    pytest.mark.morning,
    pytest.mark.for_each("tables", "table"),
]


def test_table_rows_within_limits(sqlite, sqlite_target, table, limits):
    """`SELECT COUNT(*) FROM <table>` is within the table's levels; crit when it is empty."""
    rows = probes.row_count(sqlite, table)
    limits.check("sqlite.table_rows", rows, sqlite_target.levels(table))
