"""Runbook: "Test database backup integrity" - `sqlite3 "$DB_BACKUP" "SELECT COUNT(*) FROM
sqlite_master"`, and its kin for archives and dumps: `tar -tf`, `gzip -t`, `pg_restore --list`."""

import pytest

from opscheck.probes import backup_integrity as probes

pytestmark = [
    pytest.mark.backup,
    pytest.mark.evening,
    pytest.mark.applies_to("path", what="sets path (S3 objects are read by the restore test)"),
]


def test_backup_integrity_ok(backup, backup_target, limits):
    """Each file of the newest backup reads back whole, read-only, on its host: SQLite `PRAGMA
    integrity_check`, `tar -tf`, `gzip -t`, `pg_restore --list` and every data block, a plain
    dump's `-- PostgreSQL database dump complete` line."""
    checked = probes.integrity(backup.store, backup.found(), backup_target)
    limits.check("backup.integrity", checked)
