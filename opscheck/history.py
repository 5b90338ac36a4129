"""The history store: every archived run's records in one SQLite file beside the reports.

``<reports dir>/history.sqlite`` (``settings.history.path`` elsewhere, ``enabled = false`` off).
Rows are only ever inserted; WAL and a busy timeout let concurrent runs append; a report's rows
are keyed by (run started, schedule, host, run id, shard, record number), so the same report
appended twice -- or rebuilt from the archived JSON reports (``opscheck-history rebuild DIR``) --
is added once. Before a run's records are appended, each gains the previous value of the same
check/target/subject and the change; a change beyond ``settings.history.jump`` (a share of the
previous value) is flagged as a jump.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

FILENAME = "history.sqlite"
TIMEOUT = 30.0  # seconds a run waits for another run's append

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    started TEXT NOT NULL, schedule TEXT NOT NULL, host TEXT NOT NULL, run_id TEXT NOT NULL,
    shard TEXT NOT NULL, seq INTEGER NOT NULL,
    "check" TEXT NOT NULL, target TEXT NOT NULL, subject TEXT NOT NULL,
    value REAL, unit TEXT NOT NULL, verdict TEXT NOT NULL, record TEXT NOT NULL,
    PRIMARY KEY (started, schedule, host, run_id, shard, seq)
);
CREATE INDEX IF NOT EXISTS records_key ON records ("check", target, subject, started);
"""
_FIELDS = (
    *("check", "title", "target", "subject", "value", "unit", "warn", "crit", "direction"),
    *("verdict", "measured", "threshold", "message", "detail"),
)


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=TIMEOUT, isolation_level=None)
    db.execute(f"PRAGMA busy_timeout = {int(TIMEOUT * 1000)}")
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(_SCHEMA)
    return db


def _records(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for test in document.get("tests", []):
        yield from test.get("records", [])


def _run_key(document: dict[str, Any]) -> tuple[str, str, str, str, str]:
    shard = document.get("shard")
    return (
        document["started"],
        document.get("schedule", ""),
        document.get("host", ""),
        document.get("run_id", ""),
        f"{shard['index']}/{shard['count']}" if shard else "",
    )


def _change(record: dict[str, Any], previous: float | None, jump: float) -> None:
    """Add previous, change, change_pct and jump to a record (and say so in its detail)."""
    value = record.get("value")
    record["previous"] = previous
    record["change"] = record["change_pct"] = None
    record["jump"] = False
    if value is None or previous is None:
        return
    record["change"] = value - previous
    if previous:
        record["change_pct"] = 100.0 * (value - previous) / abs(previous)
    if record["unit"] == "state":
        return  # a yes/no flipping is its own verdict, not a jump
    share = abs(value - previous) / abs(previous) if previous else (1.0 if value else 0.0)
    if share > jump:
        record["jump"] = True
        pct = f"{record['change_pct']:+.0f} %" if record["change_pct"] is not None else "from 0"
        note = f"jumped {pct} since the previous run ({previous:g} -> {value:g} {record['unit']})"
        record["detail"] = f"{note}\n{record['detail']}" if record["detail"] else note


def record_run(path: Path, document: dict[str, Any], jump: float = 0.5) -> int:
    """Annotate the document's records with their previous values, then append them.

    Returns the rows added (0 when this report was already in the store).
    """
    with closing(connect(path)) as db:
        db.execute("BEGIN IMMEDIATE")  # one writer at a time: previous values are consistent
        try:
            started = document["started"]
            for test in document.get("tests", []):
                for record in test.get("records", []):
                    _previous(db, record, started, jump)
                notes = [r["detail"].split("\n")[0] for r in test.get("records", []) if r["jump"]]
                if notes:
                    test["detail"] = "\n".join([*notes, test.get("detail", "")]).strip()
            added = _append(db, document)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return added


def _previous(db: sqlite3.Connection, record: dict[str, Any], started: str, jump: float) -> None:
    row = db.execute(
        'SELECT value FROM records WHERE "check" = ? AND target = ? AND subject = ? '
        "AND started < ? AND value IS NOT NULL ORDER BY started DESC LIMIT 1",
        (record["check"], record["target"], record["subject"], started),
    ).fetchone()
    _change(record, row[0] if row else None, jump)


def _append(db: sqlite3.Connection, document: dict[str, Any]) -> int:
    key = _run_key(document)
    rows = [
        (
            *key,
            seq,
            r["check"],
            r["target"],
            r["subject"],
            r["value"],
            r["unit"],
            r["verdict"],
            json.dumps({f: r[f] for f in _FIELDS}, separators=(",", ":")),
        )
        for seq, r in enumerate(_records(document))
    ]
    before = db.total_changes
    db.executemany(f"INSERT OR IGNORE INTO records VALUES ({', '.join('?' * 13)})", rows)
    return db.total_changes - before


def rebuild(reports: Path, path: Path | None = None) -> tuple[int, int]:
    """Append every archived JSON report under ``reports`` not yet in the store.

    Returns (reports read, rows added); unreadable files are skipped, named on stderr.
    """
    path = path or reports / FILENAME
    read = added = 0
    with closing(connect(path)) as db:
        for file in sorted(reports.glob("*/*.json")):
            try:
                document = json.loads(file.read_text(encoding="utf-8"))
                db.execute("BEGIN IMMEDIATE")
                added += _append(db, document)
                db.execute("COMMIT")
            except (OSError, ValueError, KeyError, TypeError) as error:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                print(f"opscheck-history: skipped {file}: {error}", file=sys.stderr)
                continue
            read += 1
    return read, added


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="opscheck-history", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("rebuild", help="add the archived JSON reports to the store")
    build.add_argument("reports", type=Path, help="the reports folder (reports/YYYY-MM-DD/*.json)")
    build.add_argument("--history", type=Path, help=f"the store (default REPORTS/{FILENAME})")
    args = parser.parse_args(argv)
    try:
        read, added = rebuild(args.reports, args.history)
    except sqlite3.Error as error:
        print(f"opscheck-history: {args.history or args.reports / FILENAME}: {error}")
        return 1
    print(f"opscheck-history: {read} reports read, {added} records added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
