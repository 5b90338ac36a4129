"""Runbook: evening "Daily Backup Verification" - `[ -d /backups/daily/$TODAY ]`, "Database
backup found", "Backup sizes reasonable" (`du -sh "$BACKUP_DIR"/*`); weekly `aws s3 ls
s3://bucket/postgres/ --recursive | tail -5`. The same checks for files and for S3 objects."""

import pytest

from opscheck.probes import backup as probes

pytestmark = [pytest.mark.backup, pytest.mark.evening]


def test_backup_exists(backup, limits):
    """Last night's backup is there: in today's folder, or in yesterday's while it is young
    enough to be last night's (`ls /backups/daily/$TODAY`)."""
    limits.check("backup.exists", probes.exists(backup.found(), backup.noun))


def test_backup_age_below_limit(backup, limits):
    """The newest backup is younger than its limit (default crit 26 h: one night and its run)."""
    limits.check("backup.age", probes.age(backup.found()))


def test_backup_size_above_minimum(backup, limits):
    """The newest backup is not empty, nor below its minimum size (`[backup.size] crit`)."""
    limits.check("backup.size", probes.size(backup.found(), backup.noun))


def test_backup_not_shrunk(backup, limits):
    """The newest backup is not much smaller than the one before it (default warn 20 %)."""
    shrunk = probes.shrink(backup.found())
    limits.check("backup.shrink_pct", shrunk)
