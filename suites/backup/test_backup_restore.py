"""Runbook: weekly "Test restore process (on staging)" - `pg_restore -h staging-db -d
test_restore latest_backup.dump`.

THE ONE CHECK THAT WRITES: into a scratch database it creates, and drops again, on the server of
`restore.dsn` - a staging or scratch server, never production. Opt-in: it runs only for targets
that set `restore`.
"""

import pytest

from opscheck.probes import restore as probes

pytestmark = [
    pytest.mark.backup,
    pytest.mark.weekly,
    pytest.mark.restore,
    pytest.mark.applies_to("restore", what="sets restore (a scratch server to restore into)"),
]


def test_newest_dump_restores(backup, backup_target, limits):
    """The newest PostgreSQL dump restores into a scratch database, each `restore.queries`
    count reaches its `min`, and the scratch database is dropped again."""
    restored = probes.restore_newest(backup.store, backup.found(), backup_target, backup.timeout)
    with limits.batch():
        limits.check("backup.restore", probes.outcome(restored))
        for measured, limit in probes.query_results(restored):
            limits.check("backup.restore_rows", measured, limit)
        if restored.database:  # one was created: it must be gone again
            limits.check("backup.restore_cleanup", probes.dropped(restored))
