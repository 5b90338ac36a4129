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
import os
import sqlite3
import sys
from collections.abc import Iterable, Iterator
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
# Kept only when set (reports of older versions have neither): a waiver's note, the first
# measurement of a check measured again (opscheck/recheck.py, read by ``flaky_runs``).
_OPTIONAL = ("waived", "recheck")


def store_path(config: Any, settings: Any) -> Path | None:
    """Where this run's history store is: ``settings.history.path`` (relative to where opscheck
    was started), else ``<reports dir>/history.sqlite`` when the run archives its reports; None
    when the store is off or the run keeps no archive. ``config`` is the pytest config,
    ``settings`` the ``[settings.history]`` model."""
    if not settings.enabled:
        return None
    start = Path(config.invocation_params.dir)
    if settings.path:
        return start / settings.path
    if not config.getoption("archive"):
        return None
    reports = config.getoption("reports_dir") or os.environ.get("OPSCHECK_REPORTS_DIR") or "reports"
    return start / reports / FILENAME


Key = tuple[str, str, str]  # check, target, subject
Point = tuple[str, float]  # started (ISO 8601, UTC), value in the record's base unit


def series(
    path: Path | None,
    checks: Iterable[str] | None = None,
    since: str = "",
    before: str = "9999",
) -> dict[Key, list[Point]]:
    """Read only: the stored values per check/target/subject, oldest first, of runs started in
    [``since``, ``before``) (ISO 8601 strings), for ``checks`` (default: all). A missing store
    is empty history; records without a value are left out."""
    if path is None or not path.exists():
        return {}
    query = (
        'SELECT "check", target, subject, started, value FROM records '
        "WHERE started >= ? AND started < ? AND value IS NOT NULL"
    )
    params: list[Any] = [since, before]
    if checks is not None:
        wanted = sorted(set(checks))
        if not wanted:
            return {}
        query += f' AND "check" IN ({", ".join("?" * len(wanted))})'
        params += wanted
    out: dict[Key, list[Point]] = {}
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=TIMEOUT)) as db:
        for check, target, subject, started, value in db.execute(
            query + " ORDER BY started", params
        ):
            out.setdefault((check, target, subject), []).append((started, value))
    return out


def latest(path: Path | None, before: str, checks: Iterable[str] | None = None) -> dict[Key, Point]:
    """Read only: the newest stored value of each check/target/subject before ``before``."""
    return {key: points[-1] for key, points in series(path, checks, before=before).items()}


def flaky_keys(records: Iterable[dict[str, Any]]) -> set[tuple[str, str]]:
    """(check, target) of a run's records that were FLAKY: measured again (``recheck``) after a
    CRIT, and no longer CRIT then (opscheck/recheck.py)."""
    flaky: set[tuple[str, str]] = set()
    still: set[tuple[str, str]] = set()
    for record in records:
        first = record.get("recheck")
        if isinstance(first, dict) and first.get("verdict") == "CRIT":
            key = (record["check"], record["target"])
            (still if record.get("verdict") == "CRIT" else flaky).add(key)
    return flaky - still


RunId = tuple[str, ...]  # a run: its run id (every shard of it), else (started, host, shard)


def _run_id(started: str, host: str, run_id: str, shard: str) -> RunId:
    return ("id", run_id) if run_id else (started, host, shard)


def flaky_runs(
    path: Path | None, schedule: str, last: int, current: tuple[str, str, str, str]
) -> tuple[int, dict[tuple[str, str], set[RunId]]]:
    """Read only: the last ``last`` runs of ``schedule`` in the store, not counting the run
    ``current`` (started, host, run id, shard) nor any that started after it, and per (check,
    target) those of them where it was FLAKY (``flaky_keys``). Returns (runs found, flaky runs);
    a missing store has no runs."""
    if path is None or not path.exists() or last < 1:
        return 0, {}
    started, host, run_id, shard = current
    mine = _run_id(started, host, run_id, shard)
    runs: dict[RunId, None] = {}
    oldest = started
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=TIMEOUT)) as db:
        # Newest first along the primary key (started leads it): stops after ``last`` runs.
        for when, *rest in db.execute(
            "SELECT DISTINCT started, host, run_id, shard FROM records "
            "WHERE schedule = ? AND started <= ? ORDER BY started DESC",
            (schedule, started),
        ):
            run = _run_id(when, *rest)
            if run == mine or run in runs:
                continue
            if len(runs) == last:
                break
            runs[run] = None
            oldest = when
        if not runs:
            return 0, {}
        by_run: dict[RunId, list[dict[str, Any]]] = {}
        for when, *rest, record in db.execute(
            "SELECT started, host, run_id, shard, record FROM records "
            "WHERE schedule = ? AND started >= ? AND started <= ? "
            """AND record LIKE '%"recheck":{%'""",
            (schedule, oldest, started),
        ):
            run = _run_id(when, *rest)
            if run in runs:
                by_run.setdefault(run, []).append(json.loads(record))
    flaky: dict[tuple[str, str], set[RunId]] = {}
    for run, records in by_run.items():
        for key in flaky_keys(records):
            flaky.setdefault(key, set()).add(run)
    return len(runs), flaky


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
            key = _run_key(document)
            for test in document.get("tests", []):
                for record in test.get("records", []):
                    _previous(db, record, key, jump)
                notes = [r["detail"].split("\n")[0] for r in test.get("records", []) if r["jump"]]
                if notes:
                    test["detail"] = "\n".join([*notes, test.get("detail", "")]).strip()
            added = _append(db, document)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
    return added


def _previous(
    db: sqlite3.Connection, record: dict[str, Any], key: tuple[str, ...], jump: float
) -> None:
    """The newest value stored before this run: started earlier, or in the same second (reports
    say their start to the second) by another run that was appended before it (rowid order)."""
    started, *rest = key
    row = db.execute(
        'SELECT value FROM records WHERE "check" = ? AND target = ? AND subject = ? '
        "AND value IS NOT NULL AND (started < ? OR (started = ? "
        "AND (schedule, host, run_id, shard) <> (?, ?, ?, ?))) "
        "ORDER BY started DESC, rowid DESC LIMIT 1",
        (record["check"], record["target"], record["subject"], started, started, *rest),
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
            json.dumps(
                {**{f: r[f] for f in _FIELDS}, **{f: r[f] for f in _OPTIONAL if r.get(f)}},
                separators=(",", ":"),
            ),
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
