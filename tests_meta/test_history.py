"""The history store (opscheck/history.py): previous values, jumps, concurrent appends, rebuild."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from opscheck import history

INVENTORY = '[[host]]\nname = "me"\nuri = "local://"\ncpu_sample = "100ms"\n'
MEMORY = "suites/host/test_resources.py::test_memory_used_below_limit[me]"


def _rows(path: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT * FROM records ORDER BY started, host, seq").fetchall()


def _run(suite, root: Path, *extra: str) -> tuple[Any, dict[str, Any]]:
    result = suite.run(
        INVENTORY + extra[0] if extra else INVENTORY,
        "",
        "--archive",
        "--reports-dir",
        str(root),
        "-k",
        "memory_used",
        paths=("suites/host",),
    )
    newest = max(root.glob("*/*.json"), key=lambda p: p.stat().st_mtime_ns)
    return result, json.loads(newest.read_text())


def _memory(document: dict[str, Any]) -> dict[str, Any]:
    (test,) = [t for t in document["tests"] if t["id"] == MEMORY]
    (record,) = test["records"]
    return record


def test_second_run_shows_previous_value_and_change(suite, tmp_path):
    root = tmp_path / "reports"
    result, first = _run(suite, root)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert _memory(first)["previous"] is None and _memory(first)["change"] is None
    time.sleep(1.1)  # runs are ordered by their start second
    _, second = _run(suite, root)
    record, before = _memory(second), _memory(first)
    assert record["previous"] == before["value"]
    assert record["change"] == pytest.approx(record["value"] - before["value"])
    assert record["change_pct"] == pytest.approx(100 * record["change"] / before["value"])
    assert second["history"] == {"path": str(root / "history.sqlite"), "added": 1}
    assert len(_rows(root / "history.sqlite")) == 2


def _document(started: str, value: float, host: str = "h1", subject: str = "/") -> dict[str, Any]:
    record = {
        "check": "host.disk_used_pct",
        "title": "Disk used",
        "target": "web1",
        "subject": subject,
        "value": value,
        "unit": "percent",
        "warn": 70.0,
        "crit": 80.0,
        "direction": "above",
        "verdict": "OK",
        "measured": f"/ {value} % used",
        "threshold": "warn > 70.0 %, crit > 80.0 %",
        "message": "",
        "detail": "",
    }
    test = {"id": "t[web1]", "check_id": "host.disk_used", "target": "web1", "records": [record]}
    return {"started": started, "schedule": "morning", "host": host, "tests": [test]}


def test_a_jump_beyond_the_share_is_flagged(tmp_path):
    store = tmp_path / "history.sqlite"
    history.record_run(store, _document("2026-11-29T06:00:00+00:00", 20.0))
    small = _document("2026-11-30T06:00:00+00:00", 25.0)
    history.record_run(store, small, jump=0.5)
    assert small["tests"][0]["records"][0]["jump"] is False  # +25 % of 20
    big = _document("2026-11-30T12:00:00+00:00", 60.0)
    history.record_run(store, big, jump=0.5)
    record = big["tests"][0]["records"][0]
    assert (record["previous"], record["change"], record["jump"]) == (25.0, 35.0, True)
    assert record["change_pct"] == pytest.approx(140.0)
    note = "jumped +140 % since the previous run (25 -> 60 percent)"
    assert record["detail"] == note and big["tests"][0]["detail"] == note


def test_jump_share_is_validated(suite, tmp_path):
    result = suite.run(INVENTORY + "[settings.history]\njump = -1\n", "", paths=("suites/host",))
    assert result.ret != pytest.ExitCode.OK
    assert "jump" in result.stdout.str() + result.stderr.str()


def _append(args: tuple[str, int]) -> int:
    store, n = args
    added = 0
    for i in range(10):
        document = _document(f"2026-11-30T06:00:{i:02d}+00:00", float(i), host=f"runner{n}")
        added += history.record_run(Path(store), document)
    return added


def test_concurrent_runs_append_without_loss(tmp_path):
    store = tmp_path / "history.sqlite"
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        added = pool.map(_append, [(str(store), n) for n in range(4)])
    assert added == [10, 10, 10, 10]
    rows = _rows(store)
    assert len(rows) == 40
    assert {(r[2], r[0]) for r in rows} == {
        (f"runner{n}", f"2026-11-30T06:00:{i:02d}+00:00") for n in range(4) for i in range(10)
    }


def test_rebuild_from_archived_reports_is_the_same_and_idempotent(tmp_path):
    reports = tmp_path / "reports"
    live = reports / "history.sqlite"
    for day, value in (("2026-11-28", 10.0), ("2026-11-29", 30.0), ("2026-11-30", 31.0)):
        document = _document(f"{day}T06:00:00+00:00", value)
        history.record_run(live, document)
        (reports / day).mkdir(parents=True)
        (reports / day / "morning-060000.json").write_text(json.dumps(document))
    (reports / "2026-11-30" / "morning-070000.json").write_text("killed mid-write")
    rebuilt = tmp_path / "rebuilt.sqlite"
    assert history.main(["rebuild", str(reports), "--history", str(rebuilt)]) == 0
    assert _rows(rebuilt) == _rows(live) and len(_rows(live)) == 3
    assert history.rebuild(reports, rebuilt) == (3, 0)  # again: nothing added twice
    assert history.rebuild(reports) == (3, 0)  # into the live store: already there
    assert _rows(rebuilt) == _rows(live)


def test_a_corrupt_history_never_fails_the_run_nor_loses_the_report(suite, tmp_path):
    root = tmp_path / "reports"
    root.mkdir()
    (root / "history.sqlite").write_bytes(b"not a database" * 100)
    result, document = _run(suite, root)
    assert result.ret == pytest.ExitCode.OK
    store = root / "history.sqlite"
    assert document["history"]["path"] == str(store)
    assert "file is not a database" in document["history"]["error"]
    assert f"opscheck: history not written to {store}: file is not a database" in (
        result.stdout.str()
    )
    assert store.read_bytes() == b"not a database" * 100  # never rewritten
    assert "previous" not in _memory(document)


def test_history_can_be_switched_off(suite, tmp_path):
    root = tmp_path / "reports"
    _, document = _run(suite, root, "[settings.history]\nenabled = false\n")
    assert "history" not in document and not (root / "history.sqlite").exists()


def test_runs_in_the_same_second_see_each_other_in_append_order(tmp_path):
    """Reports give their start to the second: a second run started in the same second as one
    already appended takes it as its previous run; its own report recorded again does not."""
    store = tmp_path / "history.sqlite"
    history.record_run(store, _document("2026-11-30T05:59:59+00:00", 10.0, host="runner0"))
    first = _document("2026-11-30T06:00:00+00:00", 20.0, host="runner1")
    second = _document("2026-11-30T06:00:00+00:00", 30.0, host="runner2")
    assert history.record_run(store, first) == 1
    assert history.record_run(store, second) == 1
    assert first["tests"][0]["records"][0]["previous"] == 10.0
    assert second["tests"][0]["records"][0]["previous"] == 20.0  # not 10: the same-second run
    again = _document("2026-11-30T06:00:00+00:00", 30.0, host="runner2")
    assert history.record_run(store, again) == 0  # already stored: added once
    assert again["tests"][0]["records"][0]["previous"] == 20.0  # never itself
    third = _document("2026-11-30T06:00:00+00:00", 40.0, host="runner3")
    history.record_run(store, third)
    assert third["tests"][0]["records"][0]["previous"] == 30.0  # the newest appended


def test_two_real_runs_in_the_same_second(suite, tmp_path):
    """A real archived run's report and, recorded after it, another runner's report of the same
    start second (the same document, host changed, values +1): the second shows the first's
    value as its previous and the change."""
    root = tmp_path / "reports"
    _, first = _run(suite, root)
    other = json.loads(json.dumps(first))
    other["host"] = "another-runner"
    for test in other["tests"]:
        for record in test["records"]:
            record["value"] += 1.0
    history.record_run(root / "history.sqlite", other)
    assert other["started"] == first["started"]
    assert _memory(other)["previous"] == _memory(first)["value"]
    assert _memory(other)["change"] == pytest.approx(1.0)
