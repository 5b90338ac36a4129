"""Growth checks ([[growth]], suites/growth) on a real history store: back-dated runs appended
through ``history.record_run``, then the growth suite run as users run it."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opscheck import history
from opscheck.units import format_value

DAYS = "test_growth_days_until_full_above_limit"
PER_DAY = "test_growth_per_day_below_limit"
PER_WEEK = "test_growth_per_week_below_limit"
# What a probe records for each check (opscheck/probes/host.py, postgres.py, backup.py).
UNITS = {"host.disk_used_pct": "percent", "postgres.database_size": "size", "backup.size": "size"}


def _record(check: str, target: str, subject: str, value: float) -> dict[str, Any]:
    unit = UNITS[check]
    shown = format_value(value, unit)
    return {
        "check": check,
        "title": check,
        "target": target,
        "subject": subject,
        "value": value,
        "unit": unit,
        "warn": None,
        "crit": None,
        "direction": "above",
        "verdict": "OK",
        "measured": f"{subject} {shown}".strip(),
        "threshold": "none",
        "message": "",
        "detail": "",
    }


def store(path: Path, runs: Mapping[float, list[tuple[str, str, str, float]]]) -> Path:
    """A history store with one run per ``days ago`` holding (check, target, subject, value)."""
    now = datetime.now(UTC)
    for days_ago, values in sorted(runs.items(), reverse=True):
        started = (now - timedelta(days=days_ago)).isoformat(timespec="seconds")
        records = [_record(*value) for value in values]
        tests = [{"id": f"t{i}", "records": [r]} for i, r in enumerate(records)]
        document = {"started": started, "schedule": "morning", "host": "ops", "tests": tests}
        history.record_run(path, document)
    return path


def _disk(values: list[float], subject: str = "/") -> dict[float, list[Any]]:
    """One disk value a day, the newest yesterday."""
    n = len(values)
    return {n - i: [("host.disk_used_pct", "web1", subject, v)] for i, v in enumerate(values)}


def _inventory(path: Path | None, entries: str) -> str:
    settings = f'[settings.history]\npath = "{path}"\n\n' if path else ""
    return settings + entries


def _run(suite: Any, path: Path | None, entries: str, *args: str) -> dict[str, dict[str, Any]]:
    result = suite.run(_inventory(path, entries), "", *args, paths=("suites/growth",))
    # All skipped (not judged yet) is exit code 5: nothing was checked.
    ok = (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED, pytest.ExitCode.NO_TESTS_COLLECTED)
    assert result.ret in ok, result.stdout.str()
    return suite.results()


DISK = '[[growth]]\nname = "disk"\ncheck = "host.disk_used_pct"\ntarget = "web1"\n'


def test_slow_growth_and_no_growth_are_ok(suite, tmp_path):
    runs = _disk([50.0, 50.5, 51.0, 51.5, 52.0])
    for day, values in _disk([40.0, 39.9, 39.8, 39.7, 39.6], "/var").items():
        runs[day] += values
    path = store(tmp_path / "history.sqlite", runs)
    res = _run(suite, path, DISK)
    test = res[f"{DAYS}[disk]"]
    assert test["outcome"] == "passed", test
    root, var = sorted(test["records"], key=lambda r: r["subject"])
    assert root["verdict"] == "OK" and root["subject"] == "web1 /"
    assert root["measured"] == "web1 / 52.0 % used, growing 0.5 %/day: full in 96 days"
    assert root["threshold"] == "warn < 14.0 days, crit < 7.0 days"
    assert var["verdict"] == "OK" and var["value"] is None
    assert var["measured"] == "web1 /var 39.6 % used, not growing (-0.1 %/day over 4 days)"


def test_a_new_series_waits_while_the_others_are_judged(suite, tmp_path):
    runs = _disk([50.0, 50.5, 51.0, 51.5])
    runs[1] += [("host.disk_used_pct", "web1", "/data", 10.0)]  # a disk mounted yesterday
    test = _run(suite, store(tmp_path / "history.sqlite", runs), DISK)[f"{DAYS}[disk]"]
    assert test["outcome"] == "passed"
    (record,) = test["records"]
    assert record["subject"] == "web1 /"
    assert record["detail"] == (
        "linear fit over 4 runs in 3.0 days\nnot judged yet: web1 /data: 1 run over 0.0 days in "
        "history (needs 3 over 2 days)"
    )


def test_disk_filling_fast_is_crit_with_days_left(suite, tmp_path):
    path = store(tmp_path / "history.sqlite", _disk([70.0, 73.0, 76.0, 79.0, 82.0, 85.0]))
    res = _run(suite, path, DISK)
    test = res[f"{DAYS}[disk]"]
    assert test["outcome"] == "failed"
    assert test["message"] == (
        "disk: web1 / 85.0 % used, growing 3.0 %/day: full in 5 days < crit 7.0 days"
    )


def test_own_days_until_full_levels_warn(suite, tmp_path):
    path = store(tmp_path / "history.sqlite", _disk([71.5, 73.4, 75.3, 77.2, 79.1, 81.0]))
    entry = DISK + "days_until_full = { warn = 30, crit = 3 }\n"
    test = _run(suite, path, entry)[f"{DAYS}[disk]"]
    assert test["outcome"] == "warned", test
    assert test["records"][0]["message"] == (
        "disk: web1 / 81.0 % used, growing 1.9 %/day: full in 10 days < warn 30.0 days"
    )


DB = (
    '[[growth]]\nname = "db"\ncheck = "postgres.database_size"\nsubject = "database app"\n'
    "per_day = { warn = 5, crit = 10 }\n"
)


def test_database_grew_past_per_day_limit_is_crit(suite, tmp_path):
    sizes = {3: 1.00e9, 2: 1.05e9, 1.02: 1.07e9, 0.01: 1.2e9}
    runs = {d: [("postgres.database_size", "main", "database app", v)] for d, v in sizes.items()}
    path = store(tmp_path / "history.sqlite", runs)
    res = _run(suite, path, DB)
    assert f"{DAYS}[db]" not in res  # no capacity given: days until full is not judged
    test = res[f"{PER_DAY}[db]"]
    assert test["outcome"] == "failed"
    assert test["message"] == "db: main database app 1.2 GB, +12 % since yesterday > crit 10.0 %"


def test_database_steady_per_day_is_ok(suite, tmp_path):
    sizes = {3.0: 1.00e9, 2.0: 1.01e9, 1.0: 1.02e9}
    runs = {d: [("postgres.database_size", "main", "database app", v)] for d, v in sizes.items()}
    test = _run(suite, store(tmp_path / "h.sqlite", runs), DB)[f"{PER_DAY}[db]"]
    assert test["outcome"] == "passed"
    assert test["records"][0]["measured"] == "main database app 1.0 GB, +1.0 % since yesterday"


def test_backup_per_week_warns(suite, tmp_path):
    sizes = {8: 100e6, 7.5: 102e6, 4: 105e6, 0.5: 108e6}
    runs = {d: [("backup.size", "db-daily", "", v)] for d, v in sizes.items()}
    entry = '[[growth]]\nname = "backups"\ncheck = "backup.size"\n'
    entry += "per_week = { warn = 5, crit = 20 }\n"
    test = _run(suite, store(tmp_path / "h.sqlite", runs), entry, "-m", "weekly")
    result = test[f"{PER_WEEK}[backups]"]
    assert result["outcome"] == "warned"
    assert result["records"][0]["message"] == (
        "backups: db-daily 108.0 MB, +5.9 % since a week ago > warn 5.0 %"
    )


def test_not_enough_history_is_not_judged_and_says_so(suite, tmp_path):
    path = store(tmp_path / "history.sqlite", _disk([50.0, 51.0]))
    test = _run(suite, path, DISK)[f"{DAYS}[disk]"]
    assert test["outcome"] == "skipped"
    assert test["reason"].endswith(
        "disk: not judged yet: 2 runs over 1.0 days in history (needs 3 over 2 days)"
    )


def test_no_store_is_a_skip_saying_how_to_get_one(suite, tmp_path):
    test = _run(suite, None, DISK)[f"{DAYS}[disk]"]
    assert test["outcome"] == "skipped"
    assert "disk: no history store: this run keeps none; run with --archive" in test["reason"]


def test_corrupt_store_fails_with_one_line(suite, tmp_path):
    path = tmp_path / "history.sqlite"
    path.write_bytes(b"not a database, a half-copied file" * 200)
    test = _run(suite, path, DISK)[f"{DAYS}[disk]"]
    assert test["outcome"] == "failed"
    assert test["reason"] == (  # a failure without a record: its reason, one line
        f"disk: history store {path} cannot be read: file is not a database"
    )


def test_series_matching_nothing_names_what_was_looked_for(suite, tmp_path):
    path = store(tmp_path / "history.sqlite", _disk([50.0, 51.0, 52.0]))
    entry = DISK.replace('target = "web1"', 'target = "web2"')
    test = _run(suite, path, entry)[f"{DAYS}[disk]"]
    assert test["outcome"] == "failed"
    assert test["reason"] == (
        "disk: no history of host.disk_used_pct for target 'web2' subject '*' "
        "(the store has: web1 /)"
    )


def test_history_of_a_real_run_is_judged(suite, tmp_path):
    """A real disk check archived, its document back-dated into the days before (values a bit
    lower each day), then the growth suite run against the same archive."""
    root = tmp_path / "reports"
    inventory = '[[host]]\nname = "me"\nuri = "local://"\n'
    archive = ("--archive", "--reports-dir", str(root))
    result = suite.run(inventory, "", *archive, "-k", "disk_used", paths=("suites/host",))
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    (report,) = root.glob("*/*.json")
    document = json.loads(report.read_text())
    started = datetime.fromisoformat(document["started"])
    for days in (1, 2, 3, 4):
        older = copy.deepcopy(document)
        older["started"] = (started - timedelta(days=days)).isoformat(timespec="seconds")
        for test in older["tests"]:
            for record in test["records"]:
                record["value"] -= 0.01 * days
        history.record_run(root / history.FILENAME, older)
    entry = '[[growth]]\nname = "disk"\ncheck = "host.disk_used_pct"\ntarget = "me"\n'
    result = suite.run(inventory + entry, "", *archive, paths=("suites/growth",))
    test = suite.results()[f"{DAYS}[disk]"]
    assert test["outcome"] == "passed", result.stdout.str()
    for record in test["records"]:
        assert record["subject"].startswith("me /"), record
        assert ", growing 0.0 %/day: full in " in record["measured"], record
