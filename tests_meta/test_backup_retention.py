"""The retention checks (suites/backup/test_backup_retention.py) against real backups: files on
this machine and on a host over ssh (days in the path, or modification times set here with
``os.utime``), and objects on the S3 testbed (days in the keys: a client cannot set an object's
LastModified). Healthy: a backup for each of the last days, none past ``max_age_days``. Broken:
days missing in the middle, a backup 45 days old that pruning missed.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests_meta.test_backup_checks import (  # noqa: F401 (fixtures)
    backup_block,
    by_target,
    day,
    run,
    s3,
    said,
    sshd,
    where,
    ymd,
)

RETENTION = ("-k", "retention_days_covered or pruned or backup_exists")


def write(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"backup " * 100)
    os.utime(path, (mtime, mtime))


def early(offset: int) -> float:
    """00:01 UTC of the day ``offset`` days from today: never in the future."""
    start = datetime.combine(day(offset), datetime.min.time(), UTC)
    return (start + timedelta(minutes=1)).timestamp()


def span(keep: int, end: int = 0) -> str:
    return f"({day(end - keep + 1)} to {day(end)})"


def test_files_retention_healthy_and_broken(suite, where, tmp_path):  # noqa: F811
    for offset in range(8):  # today and the 7 days before
        write(tmp_path / "ok" / ymd(-offset) / f"app_{ymd(-offset)}.dump", early(-offset))
    for offset in (0, 1, 3, 5, 6, 45):  # 2 and 4 days ago missing; one 45 days old left
        write(tmp_path / "gap" / ymd(-offset) / f"app_{ymd(-offset)}.dump", early(-offset))
    # No date in the path: the modification times tell the days.
    for offset in range(7):
        write(tmp_path / "mt-ok" / f"app-{offset}.dump", early(-offset))
    for offset in (1, 2, 40):  # today's not yet there: the days end yesterday
        write(tmp_path / "mt-gap" / f"app-{offset}.dump", early(-offset))
    (tmp_path / "gap" / "notes").mkdir()  # matches the glob, is no day: not counted
    keys = {"keep_daily": 7, "max_age_days": 30}
    inventory = where(
        ("ok", {"path": f"{tmp_path}/ok/{{date:%Y%m%d}}/app_*.dump", **keys}),
        ("gap", {"path": f"{tmp_path}/gap/{{date:%Y%m%d}}/", **keys}),
        ("mt-ok", {"path": f"{tmp_path}/mt-ok/*.dump", **keys}),
        ("mt-gap", {"path": f"{tmp_path}/mt-gap/*.dump", **keys}),
    )
    results = run(suite, inventory, "", *RETENTION)
    outcome = {k: r["outcome"] for k, r in results.items()}
    message = {k: said(r) for k, r in results.items()}
    assert {k for k, o in outcome.items() if o == "failed"} == {
        "test_backup_retention_days_covered[gap]",
        "test_backup_pruned[gap]",
        "test_backup_retention_days_covered[mt-gap]",
        "test_backup_pruned[mt-gap]",
    }, message
    assert {k for k, o in outcome.items() if o == "passed"} == {
        f"test_backup_exists[{name}]" for name in ("ok", "gap", "mt-ok", "mt-gap")
    } | {
        f"{test}[{name}]"
        for test in ("test_backup_retention_days_covered", "test_backup_pruned")
        for name in ("ok", "mt-ok")
    }
    ok = by_target(results, "ok")
    assert ok["test_backup_retention_days_covered"]["measured"] == (
        f"7 of the last 7 days {span(7)} have a backup"
    )
    assert ok["test_backup_pruned"]["measured"] == (
        f"oldest backup app_{ymd(-7)}.dump (dated {day(-7)}) is 7.0 days old; 8 backups kept"
    )
    # The wide listing serves the existing checks as the per-day one did.
    assert ok["test_backup_exists"]["measured"] == (
        f"found app_{ymd()}.dump (today's) in {tmp_path}/ok/{ymd()}"
    )
    assert message["test_backup_retention_days_covered[gap]"] == (
        f"gap: 5 of the last 7 days {span(7)} have a backup; none for {day(-4)}, {day(-2)} < crit 7"
    )
    assert message["test_backup_pruned[gap]"] == (
        f"gap: oldest backup {ymd(-45)}/ (dated {day(-45)}) is 45.0 days old; 1 of 6 backups "
        "older than 30 days kept > crit 30.0 days"
    )
    mt = by_target(results, "mt-ok")
    assert mt["test_backup_retention_days_covered"]["measured"] == (
        f"7 of the last 7 days {span(7)} have a backup"
    )
    assert message["test_backup_retention_days_covered[mt-gap]"] == (
        f"mt-gap: 2 of the last 7 days {span(7, -1)} have a backup; none for {day(-7)}, "
        f"{day(-6)}, {day(-5)}, {day(-4)}, {day(-3)} < crit 7"
    )
    pruned = message["test_backup_pruned[mt-gap]"]
    start = f"mt-gap: oldest backup app-40.dump (modified {day(-40)}) is 4"
    assert pruned.startswith(start), pruned
    assert pruned.endswith(" days old; 1 of 3 backups older than 30 days kept > crit 30.0 days")


def test_s3_retention_from_dated_keys(suite, s3, monkeypatch):  # noqa: F811
    monkeypatch.setenv("S3_KEY_ID", s3.access_key_id)
    monkeypatch.setenv("S3_SECRET", s3.secret_access_key)
    bucket = s3.bucket(f"retain-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    for offset in range(6, -1, -1):  # oldest first: today's objects are the newest
        for name in ("app.dump", "media.tar.gz"):
            s3.put(bucket, f"ok/{day(-offset)}/{name}", b"PGDMP" + b"x" * 200)
    for offset in (31, 6, 3, 2, 1, 0):
        s3.put(bucket, f"gap/{day(-offset)}/app.dump", b"PGDMP" + b"x" * 200)
    s3.put(bucket, "gap/README.txt", b"not a backup")  # under the prefix, no day: not counted
    keys = {"keep_daily": 7, "max_age_days": 30}
    ok = backup_block("s3-ok", s3=s3.location(bucket, "ok/{date}/"), **keys)
    gap = backup_block("s3-gap", s3=s3.location(bucket, "gap/{date}/"), **keys)
    inventory = ok + gap
    results = run(suite, inventory, "", *RETENTION)
    outcome = {k: r["outcome"] for k, r in results.items()}
    message = {k: said(r) for k, r in results.items()}
    assert outcome == {
        "test_backup_exists[s3-ok]": "passed",
        "test_backup_exists[s3-gap]": "passed",
        "test_backup_retention_days_covered[s3-ok]": "passed",
        "test_backup_retention_days_covered[s3-gap]": "failed",
        "test_backup_pruned[s3-ok]": "passed",
        "test_backup_pruned[s3-gap]": "failed",
    }, message
    found = by_target(results, "s3-ok")
    assert found["test_backup_exists"]["measured"] == (
        f"found s3://{bucket}/ok/{day()}/ (today's): 410 B in 2 objects"
    )
    assert found["test_backup_retention_days_covered"]["measured"] == (
        f"7 of the last 7 days {span(7)} have a backup"
    )
    assert found["test_backup_pruned"]["measured"] == (
        f"oldest backup s3://{bucket}/ok/{day(-6)}/ (dated {day(-6)}) is 6.0 days old; "
        "7 backups kept"
    )
    assert message["test_backup_retention_days_covered[s3-gap]"] == (
        f"s3-gap: 5 of the last 7 days {span(7)} have a backup; none for {day(-5)}, {day(-4)} "
        "< crit 7"
    )
    assert message["test_backup_pruned[s3-gap]"] == (
        f"s3-gap: oldest backup s3://{bucket}/gap/{day(-31)}/ (dated {day(-31)}) is 31.0 days "
        "old; 1 of 6 backups older than 30 days kept > crit 30.0 days"
    )


@pytest.mark.parametrize("keys", [{}, {"keep_daily": 3}])
def test_retention_checks_only_for_targets_that_ask(suite, tmp_path, keys):
    write(tmp_path / f"app_{ymd()}.dump", time.time() - 60)
    inventory = backup_block("db", path=f"{tmp_path}/app_{{date:%Y%m%d}}.dump", **keys)
    results = run(suite, inventory, "", *RETENTION)
    if not keys:
        assert results["test_backup_retention_days_covered[-]"]["outcome"] == "skipped"
        assert results["test_backup_pruned[-]"]["outcome"] == "skipped"
        return
    assert "test_backup_pruned[db]" not in results
    assert said(results["test_backup_retention_days_covered[db]"]) == (
        f"db: 1 of the last 3 days {span(3)} have a backup; none for {day(-2)}, {day(-1)} < crit 3"
    )
