"""Runbook: "Check database connectivity" and "Backup sizes reasonable" - the application's
SQLite file is there, and its size within limits."""

import pytest

from opscheck.probes import sqlite as probes

pytestmark = [pytest.mark.sqlite]


@pytest.mark.health
@pytest.mark.morning
@pytest.mark.evening
def test_database_file_present(sqlite, limits):
    """The database file exists (`ls -l fossawork_v2.db`)."""
    limits.check("sqlite.file", probes.file_present(sqlite))


@pytest.mark.capacity
@pytest.mark.evening
@pytest.mark.weekly
def test_database_size_below_limit(sqlite, limits):
    """The file stays below its size limit (default warn 1 GB)."""
    limits.check("sqlite.file_size", probes.file_size(sqlite))
