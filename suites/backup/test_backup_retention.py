"""Runbook: evening "Old backups cleaned up according to retention policy"; `find /backups -name
"*.dump" -mtime +30 -delete` (that it ran). Retention: each of the last `keep_daily` days has a
backup, none is older than `max_age_days`. Opt-in per target; files or S3 objects alike."""

import pytest

from opscheck.probes import backup_retention as probes

pytestmark = [pytest.mark.backup, pytest.mark.evening]


@pytest.mark.applies_to("keep_daily")
def test_backup_retention_days_covered(backup, backup_target, limits):
    """Each of the last `keep_daily` days has a backup (`ls /backups/daily/` shows 7 days)."""
    keep = backup_target.keep_daily
    measured = probes.days_covered(backup.everything(), keep)
    limits.check("backup.retention_days_covered", measured, probes.at_least(keep))


@pytest.mark.applies_to("max_age_days")
def test_backup_pruned(backup, backup_target, limits):
    """No backup older than `max_age_days` is kept: pruning works (`find -mtime +30`)."""
    oldest = backup_target.max_age_days
    measured = probes.oldest(backup.everything(), oldest)
    limits.check("backup.pruned", measured, probes.at_most(oldest))
