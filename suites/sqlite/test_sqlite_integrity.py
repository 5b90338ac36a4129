"""Runbook: "Database Maintenance" - `sqlite3 fossawork_v2.db "PRAGMA integrity_check;"`."""

import pytest

from opscheck.probes import sqlite as probes

pytestmark = [pytest.mark.sqlite, pytest.mark.errors, pytest.mark.evening, pytest.mark.weekly]


def test_integrity_check_ok(sqlite, limits):
    """`PRAGMA integrity_check` answers `ok` (read-only: the file is never written)."""
    limits.check("sqlite.integrity", probes.integrity(sqlite))
