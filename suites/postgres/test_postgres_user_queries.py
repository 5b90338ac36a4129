"""The team's own runbook lines: each `[[postgres.queries]]` entry, an SQL query returning one
number (`SELECT count(*) FROM media_items WHERE processing_status = 'pending'`)."""

import pytest

from opscheck.probes import postgres as probes

pytestmark = [pytest.mark.postgres, pytest.mark.health, pytest.mark.morning, pytest.mark.midday]


@pytest.mark.for_each("queries", "query")
def test_query_within_limits(postgres, query, limits):
    """The query, run read-only, returns one number within its `warn`/`crit` levels."""
    limits.check("postgres.query", probes.user_query(postgres, query), query)
