"""Runbook: "Check database connections" - `psql -c "SELECT 1"` answers, and the connections
stay "< 80% of max" ("Identify connection hogs": `GROUP BY usename, application_name`)."""

import pytest

from opscheck.probes import postgres as probes

pytestmark = [pytest.mark.postgres, pytest.mark.morning, pytest.mark.midday]


@pytest.mark.health
@pytest.mark.evening
def test_postgres_reachable(postgres, limits):
    """The server accepts a connection and answers a query (`pg_isready`, then `SELECT 1`)."""
    limits.check("postgres.reachable", probes.reachable(postgres))


@pytest.mark.capacity
def test_connections_below_limit(postgres, limits):
    """Client connections stay below 80 % of max_connections; the top users are in the detail."""
    limits.check("postgres.connections_used_pct", probes.connections_used(postgres))
