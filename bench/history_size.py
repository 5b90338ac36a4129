"""The history store after 1,000 runs of the demo inventory: its size and the cost of an append.

    .venv/bin/python bench/history_size.py [REPORT.json] [--runs 1000]

REPORT is a real JSON report of the demo's morning run (default: the newest
``reports/*/morning-*.json``, which ``make demo`` leaves). Its document is appended ``--runs``
times with ``history.record_run`` into a new store in a temporary folder, each copy started 15
minutes after the previous one (so every append looks up the previous values among all runs
before it, as a real run does). Prints the records per run, the store's size on disk (the SQLite
file after a WAL checkpoint, and the bytes per run and per record) and the wall time of one
append (median, 95th percentile, the last 100), as a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import copy
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from contextlib import closing
from datetime import datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opscheck import history  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", nargs="?", type=Path, help="a demo morning run's JSON report")
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    report = args.report or max(
        (REPO / "reports").glob("*/morning-*.json"), key=lambda p: p.stat().st_mtime, default=None
    )
    if report is None:
        sys.exit("history_size: no reports/*/morning-*.json: run `make demo` first, or name one")
    document = json.loads(report.read_text(encoding="utf-8"))
    records = sum(len(t.get("records", [])) for t in document["tests"])
    start = datetime.fromisoformat(document["started"])
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / history.FILENAME
        for n in range(args.runs):
            run = copy.deepcopy(document)  # record_run annotates the document it is given
            run["started"] = (start + timedelta(minutes=15 * n)).isoformat(timespec="seconds")
            began = time.perf_counter()
            history.record_run(store, run)
            times.append(time.perf_counter() - began)
        with closing(sqlite3.connect(store)) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            rows = db.execute("SELECT count(*) FROM records").fetchone()[0]
        size = store.stat().st_size
    p95 = sorted(times)[int(0.95 * len(times)) - 1]
    print(f"{report}: {records} records per run, {args.runs} runs, {rows} rows stored\n")
    print("| what | value |")
    print("|---|---|")
    print(f"| store after {args.runs} runs | {size:,} bytes ({size / 2**20:.1f} MiB) |")
    print(f"| per run / per record | {size / args.runs:,.0f} bytes / {size / rows:,.0f} bytes |")
    print(f"| append, median | {statistics.median(times) * 1000:.1f} ms |")
    print(f"| append, 95th percentile | {p95 * 1000:.1f} ms |")
    print(f"| append, median of the last 100 | {statistics.median(times[-100:]) * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
