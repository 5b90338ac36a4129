"""Runbook: "Database Maintenance" - `sqlite3 fossawork_v2.db "PRAGMA integrity_check;"`."""

import pytest

from opscheck.probes import sqlite as probes

pytestmark = [pytest.mark.sqlite, pytest.mark.errors, pytest.mark.evening, pytest.mark.weekly]


def test_integrity_check_ok(sqlite, limits):
    """`PRAGMA integrity_check` answers `ok` (read-only: the file is never written)."""
    found = probes.integrity(sqlite)
    ok = found == ["ok"]
    shown = found[: probes.PROBLEMS_SHOWN]
    more = len(found) - len(shown)
    limits.expect(
        "sqlite.integrity",
        ok,
        "PRAGMA integrity_check: ok"
        if ok
        else f"PRAGMA integrity_check: {found[0]}"
        + (f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""),
        "ok",
        detail="" if ok else "\n".join(shown) + (f"\n... and {more} more" if more else ""),
    )
