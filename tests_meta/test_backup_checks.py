"""The backup checks (suites/backup) against real backups: files on this machine and on a host
over ssh, objects on an S3-compatible server, and real restores into a real PostgreSQL.

The backups are real: SQLite files written by Python's sqlite3, custom and plain dumps made by
``pg_dump`` from the PostgreSQL testbed, tar.gz archives made by ``tar``. Broken means broken
for real: a dump cut short (in its table of contents, or in its data), a SQLite page overwritten
with garbage, an archive cut in half, a backup dated back with ``os.utime``, today's folder
missing, a backup much smaller than the day before, an empty S3 prefix, objects dated back, a
wrong secret key, a query on the restored copy below its ``min``. One PostgreSQL, one sshd and
one S3 server per xdist worker; every test writes its backups under its own ``tmp_path``.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opscheck.probes.backup import Backup, File, Found, exists, lookback
from opscheck.testbed import free_port
from opscheck.testbed.postgres import Postgres
from opscheck.testbed.s3 import S3Server
from opscheck.testbed.sshd import Sshd, toml_value

BACKUP = ("suites/backup",)
HOUR = 3600
NINE = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)  # the morning check
ORDERS = 500  # rows of work_orders in the dumped database
# its dump lists: table, sequence, sequence owned by, default, table data, sequence set, key
TOC_ENTRIES = 7
RESTORE_PASSWORD = "rst-Qm4vX8wK2pLz"  # the scratch server role's, as $RESTORE_PW only
# The retention checks run only for targets that set keep_daily / max_age_days.
UNSET = {"test_backup_retention_days_covered[-]": "skipped", "test_backup_pruned[-]": "skipped"}
CHECKS = (
    "test_backup_exists",
    "test_backup_age_below_limit",
    "test_backup_size_above_minimum",
    "test_backup_not_shrunk",
    "test_backup_integrity_ok",
)


# -- services and real backups -------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """The application's database (``fossawork``) and the scratch server's role in one server."""
    with Postgres(tmp_path_factory.mktemp("pg-backup")) as server:
        server.create_database("fossawork")
        server.execute(
            "CREATE TABLE work_orders (id serial PRIMARY KEY, title text NOT NULL);"
            "INSERT INTO work_orders (title) SELECT 'work order ' || g || ' ' || md5(g::text) "
            f"FROM generate_series(1, {ORDERS}) g;",
            "fossawork",
        )
        server.execute(f"CREATE ROLE restorer LOGIN CREATEDB PASSWORD '{RESTORE_PASSWORD}'")
        server.execute(f"CREATE ROLE nocreate LOGIN PASSWORD '{RESTORE_PASSWORD}'")
        yield server


@pytest.fixture(scope="session")
def dumps(pg: Postgres, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real dumps of ``fossawork``: custom format (``-Fc``) and plain SQL. The plain one without
    owners and grants (``-O -x``): psql cannot skip them, and the scratch role owns nothing."""
    folder = tmp_path_factory.mktemp("dumps")
    made = {"custom": folder / "fossawork.dump", "plain": folder / "fossawork.sql"}
    for fmt, path in (("c", made["custom"]), ("p", made["plain"])):
        subprocess.run(
            ["pg_dump", "-F", fmt, "-O", "-x", "-f", str(path), "-d", pg.admin_dsn("fossawork")],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return made


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with Sshd(tmp_path_factory.mktemp("sshd-backup")) as server:
        yield server


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    with S3Server() as server:
        yield server


@pytest.fixture(autouse=True)
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESTORE_PW", RESTORE_PASSWORD)


def sqlite_db(path: Path, rows: int, mtime: float | None = None) -> Path:
    """A real SQLite backup: ``rows`` work orders (about 120 bytes each)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE work_orders (id INTEGER PRIMARY KEY, title TEXT)")
    conn.executemany(
        "INSERT INTO work_orders (title) VALUES (?)",
        [(f"order {i} " + "x" * 100,) for i in range(rows)],
    )
    conn.commit()
    conn.close()
    return dated(path, mtime)


def dated(path: Path, mtime: float | None) -> Path:
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


def copy(source: Path, path: Path, mtime: float | None = None, keep: int | None = None) -> Path:
    """``source`` at ``path``; only its first ``keep`` bytes: a backup cut short."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = source.read_bytes()
    path.write_bytes(data if keep is None else data[:keep])
    return dated(path, mtime)


def corrupt(path: Path) -> Path:
    """Overwrite the middle of the file with garbage, as a bad disk would."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 512] = b"\xff" * 512
    path.write_bytes(bytes(data))
    return path


def tar_gz(path: Path, source: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as archive:
        archive.add(source, arcname=source.name)
    return path


def inline(value: Any) -> str:
    """A TOML value; tables inline (one line, as TOML 1.0 wants them)."""
    if isinstance(value, dict):
        pairs = [f"{k} = {inline(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(pairs) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(inline(v) for v in value) + "]"
    return toml_value(value)


def backup_block(name: str, **fields: Any) -> str:
    lines = ["[[backup]]", f"name = {toml_value(name)}"]
    lines += [f"{key} = {inline(value)}" for key, value in fields.items() if value is not None]
    return "\n".join(lines) + "\n\n"


def restore_table(pg: Postgres, minimum: float = 1) -> dict[str, Any]:
    query = {"name": "work_orders", "sql": "SELECT count(*) FROM work_orders", "min": minimum}
    return {"dsn": pg.dsn("postgres", "restorer"), "password_env": "RESTORE_PW", "queries": [query]}


def scratch_databases(pg: Postgres) -> list[str]:
    rows = pg.execute("SELECT datname FROM pg_database WHERE datname LIKE 'opscheck\\_restore%'")
    return [r[0] for r in rows]


def day(offset: int = 0) -> date:
    return datetime.now(UTC).date() + timedelta(days=offset)


def ymd(offset: int = 0) -> str:
    return f"{day(offset):%Y%m%d}"


def run(suite: Any, inventory: str, thresholds: str = "", *args: str) -> dict[str, dict[str, Any]]:
    """Run the backup suite; no secret may appear in any output."""
    result = suite.run(
        '[settings]\ntimeout = "5s"\n\n' + inventory, thresholds, *args, paths=BACKUP
    )
    assert result.ret in (0, 1), result.stdout.str() + result.stderr.str()
    text = result.stdout.str() + result.stderr.str() + suite.json_path.read_text()
    for secret in (RESTORE_PASSWORD, os.environ.get("S3_SECRET")):
        assert not secret or secret not in text, "a secret leaked into the output"
    return suite.results()


def said(result: dict[str, Any]) -> str:
    """What the operator reads: the recorded message, else the failure or skip text."""
    return str(result.get("message") or result.get("reason") or "")


def by_target(results: dict[str, dict[str, Any]], name: str) -> dict[str, dict[str, Any]]:
    """The results of one target, by test name without the id."""
    return {k.split("[")[0]: r for k, r in results.items() if k.endswith(f"[{name}]")}


@pytest.fixture(params=["local", "ssh"])
def where(request: pytest.FixtureRequest, sshd: Sshd) -> Callable[..., str]:
    """Render ``[[backup]]`` targets for files on this machine, or on the ssh host ``box``."""

    def render(*targets: tuple[str, dict[str, Any]]) -> str:
        remote = request.param == "ssh"
        text = sshd.host_block("box") + "\n" if remote else ""
        for name, fields in targets:
            text += backup_block(name, host="box" if remote else None, **fields)
        return text

    return render


# -- files -----------------------------------------------------------------------------------------


def test_healthy_backups_pass_every_check(suite, where, dumps, tmp_path):
    now = time.time()
    daily = tmp_path / "daily"
    for offset, rows, age in ((0, 1000, 2 * HOUR), (-1, 980, 25 * HOUR)):
        folder = daily / ymd(offset)
        sqlite_db(folder / f"fossawork_v2_{ymd(offset)}.db", rows, now - age)
        copy(dumps["custom"], folder / f"fossawork_{ymd(offset)}.dump", now - age)
        copy(dumps["plain"], folder / f"fossawork_{ymd(offset)}.sql", now - age)
        dated(tar_gz(folder / "config.tar.gz", dumps["plain"]), now - age)
        subprocess.run(["gzip", "-k", str(folder / f"fossawork_{ymd(offset)}.sql")], check=True)
        dated(folder / f"fossawork_{ymd(offset)}.sql.gz", now - age)
    before = {p: p.stat().st_mtime_ns for p in daily.rglob("*")}
    inventory = where(
        ("db-daily", {"path": f"{daily}/{{date:%Y%m%d}}/fossawork_v2_*.db"}),
        ("pg-daily", {"path": f"{daily}/{{date:%Y%m%d}}/fossawork_*.dump"}),
        ("folder", {"path": f"{daily}/{{date:%Y%m%d}}/"}),
    )
    results = run(suite, inventory)
    outcomes = {k: r["outcome"] for k, r in results.items()}
    expected = {f"{c}[{t}]": "passed" for c in CHECKS for t in ("db-daily", "pg-daily", "folder")}
    assert outcomes == {**expected, **UNSET, "test_newest_dump_restores[-]": "skipped"}, {
        k: said(r) for k, r in results.items()
    }
    db = by_target(results, "db-daily")
    assert db["test_backup_exists"]["measured"] == (
        f"found fossawork_v2_{ymd()}.db (today's) in {daily}/{ymd()}"
    )
    assert re.fullmatch(
        rf"newest backup fossawork_v2_{ymd()}\.db is 2\.0 h old",
        db["test_backup_age_below_limit"]["measured"],
    )
    assert db["test_backup_age_below_limit"]["threshold"] == "crit > 26.0 h"
    assert re.fullmatch(
        rf"newest backup fossawork_v2_{ymd()}\.db is 1\d\d\.\d KB",
        db["test_backup_size_above_minimum"]["measured"],
    )
    assert re.fullmatch(
        rf"fossawork_v2_{ymd()}\.db 1\d\d\.\d KB grew [\d.]+ % from "
        rf"fossawork_v2_{ymd(-1)}\.db 1\d\d\.\d KB",
        db["test_backup_not_shrunk"]["measured"],
    )
    assert db["test_backup_integrity_ok"]["measured"] == (
        f"fossawork_v2_{ymd()}.db: PRAGMA integrity_check: ok"
    )
    assert by_target(results, "pg-daily")["test_backup_integrity_ok"]["measured"] == (
        f"fossawork_{ymd()}.dump: pg_restore lists {TOC_ENTRIES} entries, all data readable"
    )
    folder = by_target(results, "folder")
    assert folder["test_backup_exists"]["measured"] == (
        f"found {daily}/{ymd()}/ (today's): {folder_size(daily / ymd())} in 5 files"
    )
    assert folder["test_backup_integrity_ok"]["measured"] == (
        "config.tar.gz: tar -tf lists 1 entries; "
        f"fossawork_{ymd()}.dump: pg_restore lists {TOC_ENTRIES} entries, all data readable; "
        f"fossawork_{ymd()}.sql: ends with '-- PostgreSQL database dump complete'; "
        f"fossawork_{ymd()}.sql.gz: ends with '-- PostgreSQL database dump complete'; "
        f"fossawork_v2_{ymd()}.db: PRAGMA integrity_check: ok"
    )
    # Read-only: not even a file's time changed.
    assert {p: p.stat().st_mtime_ns for p in daily.rglob("*")} == before


def folder_size(path: Path) -> str:
    total = sum(p.stat().st_size for p in path.iterdir())
    return f"{total / 1000:.1f} KB"


def test_broken_backups_fail_each_check_with_its_reason(suite, where, dumps, tmp_path):
    now = time.time()
    custom, plain = dumps["custom"], dumps["plain"]
    size = custom.stat().st_size

    def yesterday_and_today(name: str, today: Callable[[Path], Path] | None) -> str:
        """Yesterday's healthy SQLite backup, and today's made by ``today`` (None: missing)."""
        folder = tmp_path / name
        sqlite_db(folder / ymd(-1) / f"app_{ymd(-1)}.db", 1000, now - 25 * HOUR)
        if today is not None:
            today(folder / ymd() / f"app_{ymd()}.db")
        return f"{folder}/{{date:%Y%m%d}}/app_*.db"

    inventory = where(
        ("missing", {"path": yesterday_and_today("missing", None).replace("app_", "gone_")}),
        ("stale", {"path": stale(tmp_path / "stale", now)}),
        ("empty", {"path": yesterday_and_today("empty", empty)}),
        ("shrunk", {"path": yesterday_and_today("shrunk", lambda p: sqlite_db(p, 400))}),
        (
            "corrupt",
            {"path": yesterday_and_today("corrupt", lambda p: corrupt(sqlite_db(p, 1000)))},
        ),
        ("toc-cut", {"path": str(copy(custom, tmp_path / "toc" / "app.dump", keep=200))}),
        ("data-cut", {"path": str(copy(custom, tmp_path / "data" / "app.dump", keep=size - 600))}),
        ("sql-cut", {"path": str(copy(plain, tmp_path / "sql" / "app.sql", keep=9000))}),
        ("tgz-cut", {"path": str(half(tar_gz(tmp_path / "tgz" / "etc.tar.gz", plain)))}),
        ("unknown", {"path": str(copy(plain, tmp_path / "raw" / "app.bin"))}),
    )
    results = run(suite, inventory)
    outcome = {k: r["outcome"] for k, r in results.items()}
    message = {k: said(r) for k, r in results.items()}
    expected_failures = {
        "test_backup_exists[missing]",
        "test_backup_age_below_limit[missing]",
        "test_backup_size_above_minimum[missing]",
        "test_backup_not_shrunk[missing]",
        "test_backup_integrity_ok[missing]",
        "test_backup_age_below_limit[stale]",
        "test_backup_size_above_minimum[empty]",
        "test_backup_integrity_ok[corrupt]",
        "test_backup_integrity_ok[toc-cut]",
        "test_backup_integrity_ok[data-cut]",
        "test_backup_integrity_ok[sql-cut]",
        "test_backup_integrity_ok[tgz-cut]",
    }
    assert {k for k, o in outcome.items() if o == "failed"} == expected_failures, message
    assert {k for k, o in outcome.items() if o == "warned"} == {
        "test_backup_not_shrunk[shrunk]",
        "test_backup_not_shrunk[empty]",
    }, message
    missing = tmp_path / "missing"
    assert re.fullmatch(
        rf"missing: no backup of last night: nothing at {missing}/{ymd()}/gone_\*\.db \(today\) "
        rf"or ({missing}/{ymd(-1)}/gone_\*\.db \(yesterday\)|the 2 days before \(to .+\))",
        message["test_backup_exists[missing]"],
    )
    assert message["test_backup_age_below_limit[missing]"].startswith(
        "missing: no backup found (see test_backup_exists): nothing at "
    )
    # Today's folder absent, yesterday's backup 31 h old: there is one, but too old.
    assert outcome["test_backup_exists[stale]"] == "passed"
    assert results["test_backup_exists[stale]"]["measured"] == (
        f"found app_{ymd(-1)}.db (yesterday's) in {tmp_path}/stale/{ymd(-1)}; "
        f"nothing yet for today ({tmp_path}/stale/{ymd()}/app_*.db)"
    )
    assert message["test_backup_age_below_limit[stale]"] == (
        f"stale: newest backup app_{ymd(-1)}.db is 31.0 h old > crit 26.0 h"
    )
    assert message["test_backup_size_above_minimum[empty]"] == (
        f"empty: newest backup app_{ymd()}.db is 0 B < crit 1 B"
    )
    assert re.fullmatch(
        rf"shrunk: app_{ymd()}\.db \d+\.\d KB is 5\d\.\d % smaller than "
        rf"app_{ymd(-1)}\.db 1\d\d\.\d KB > warn 20\.0 %",
        message["test_backup_not_shrunk[shrunk]"],
    )
    assert re.fullmatch(
        rf"corrupt: app_{ymd()}\.db: PRAGMA integrity_check: .+",
        message["test_backup_integrity_ok[corrupt]"],
    )
    assert re.fullmatch(
        r"toc-cut: app\.dump: pg_restore --list failed: pg_restore: error: could not read "
        r"from input file: end of file.*",
        message["test_backup_integrity_ok[toc-cut]"],
    )
    # The table of contents is whole, the data is not: --list alone would call it fine.
    assert re.fullmatch(
        rf"data-cut: app\.dump: pg_restore lists {TOC_ENTRIES} entries but cannot read the data: "
        r"pg_restore: error: .+",
        message["test_backup_integrity_ok[data-cut]"],
    )
    assert re.fullmatch(
        r"sql-cut: app\.sql: no '-- PostgreSQL database dump complete' at its end: the dump "
        r"was cut short \(last line: '.*'\)",
        message["test_backup_integrity_ok[sql-cut]"],
    )
    assert re.fullmatch(
        r"tgz-cut: etc\.tar\.gz: tar -tf failed: .*(unexpected end of file|Unexpected EOF).*",
        message["test_backup_integrity_ok[tgz-cut]"],
    )
    assert message["test_backup_integrity_ok[unknown]"] == (
        'unknown: no file whose kind its name tells (app.bin): set kind = "sqlite", "tar", '
        '"gzip", "pg_custom" or "pg_plain"'
    )
    assert outcome["test_backup_not_shrunk[toc-cut]"] == "skipped"
    assert message["test_backup_not_shrunk[toc-cut]"] == (
        "toc-cut: only one backup found (app.dump): nothing to compare"
    )


def stale(folder: Path, now: float) -> str:
    """Today's folder absent; yesterday's backup written 31 h ago."""
    sqlite_db(folder / ymd(-1) / f"app_{ymd(-1)}.db", 100, now - 31 * HOUR)
    return f"{folder}/{{date:%Y%m%d}}/app_*.db"


def empty(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def half(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def test_a_backup_path_that_is_no_file_says_what_it_is(suite, where, tmp_path):
    """Where last night's backup should be: a FIFO, a socket, a device, a link to nothing. The
    existence check says what is there (a FIFO passed it as a 0 B backup, whose integrity check
    then said "not a file"); the other checks judge the backups there are, and nothing reads the
    FIFO (it would wait for a writer forever)."""
    now = time.time()
    odd = {}
    for name in ("fifo", "sock", "dev", "link"):
        (tmp_path / name).mkdir()
        odd[name] = tmp_path / name / f"app_{ymd()}.db"
    sqlite_db(tmp_path / "fifo" / f"app_{ymd(-1)}.db", 100, now - 20 * HOUR)
    os.mkfifo(odd["fifo"])
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(odd["sock"]))
    odd["dev"].symlink_to(os.devnull)
    odd["link"].symlink_to(tmp_path / "link" / "moved-away.db")
    inventory = where(
        *((name, {"path": f"{tmp_path}/{name}/app_{{date:%Y%m%d}}.db"}) for name in odd)
    )
    started = time.monotonic()
    try:
        results = run(suite, inventory)
    finally:
        listener.close()
    assert time.monotonic() - started < 60
    what = {
        "fifo": "is a FIFO (named pipe), not a regular file",
        "sock": "is a socket, not a regular file",
        "dev": "is a character device, not a regular file",
        "link": "is a symbolic link to a file that does not exist",
    }
    for name, path in odd.items():
        found = by_target(results, name)
        assert found["test_backup_exists"]["outcome"] == "failed"
        text = f"{name}: {path} {what[name]}"
        if name == "fifo":
            text += f"; found app_{ymd(-1)}.db (yesterday's)"
        assert said(found["test_backup_exists"]) == text
    fifo = by_target(results, "fifo")
    assert fifo["test_backup_integrity_ok"]["measured"] == (
        f"app_{ymd(-1)}.db: PRAGMA integrity_check: ok"
    )
    age = said(by_target(results, "sock")["test_backup_age_below_limit"])
    assert age.startswith(
        f"sock: no backup found (see test_backup_exists): nothing at {odd['sock']}"
    )
    assert age.endswith(f" ({odd['sock']} {what['sock']})")


def test_kind_named_outright_and_gzip(suite, dumps, tmp_path):
    """``kind`` overrides the name; ``gzip -t`` passes a whole .gz and fails a cut one."""
    raw = copy(dumps["custom"], tmp_path / "raw" / "nightly.bin")
    whole = tmp_path / "gz" / "media.gz"
    whole.parent.mkdir()
    subprocess.run(f"gzip -c {dumps['plain']} > {whole}", shell=True, check=True)
    cut = half(copy(whole, tmp_path / "cut" / "media.gz"))
    inventory = (
        backup_block("raw", path=str(raw), kind="pg_custom")
        + backup_block("gz", path=str(whole))
        + backup_block("gz-cut", path=str(cut))
    )
    results = run(suite, inventory, "", "-k", "integrity")
    assert results["test_backup_integrity_ok[raw]"]["measured"] == (
        f"nightly.bin: pg_restore lists {TOC_ENTRIES} entries, all data readable"
    )
    assert results["test_backup_integrity_ok[gz]"]["measured"] == "media.gz: gzip -t: ok"
    assert re.fullmatch(
        r"gz-cut: media\.gz: gzip -t failed: gzip: media\.gz: unexpected end of file",
        said(results["test_backup_integrity_ok[gz-cut]"]),
    )


def test_last_night_at_half_past_midnight_and_at_nine():
    """At 09:00 last night's backup is today's or yesterday's; at 00:30 the day before's counts
    too (written just before midnight, it is younger than 26 h); the day before is read for
    the shrink comparison, tomorrow for hosts east of UTC."""
    nine = lookback(26 * HOUR, NINE)
    assert nine.recent == {date(2026, 11, 26), date(2026, 11, 25), date(2026, 11, 24)}
    assert nine.days == [date(2026, 11, d) for d in (26, 25, 24, 23)]
    half_past = lookback(26 * HOUR, datetime(2026, 11, 25, 0, 30, tzinfo=UTC))
    assert date(2026, 11, 23) in half_past.recent
    assert half_past.days == [date(2026, 11, d) for d in (26, 25, 24, 23, 22)]
    weekly = lookback(8 * 86400, datetime(2026, 11, 25, 9, 0, tzinfo=UTC))
    assert min(weekly.recent) == date(2026, 11, 17)


def test_backup_of_the_day_before_is_last_nights_only_just_after_midnight():
    """Only the day before yesterday's backup is there, written at 23:00: at 00:30 it is last
    night's (1.5 h old), at 09:00 it is not (10 h after its day ended, yet 34 h old)."""
    written = datetime(2026, 11, 23, 23, 0, tzinfo=UTC).timestamp()
    files = (File("/b/20261123/app_20261123.db", 10, written),)
    old = Backup(files[0].path, "app_20261123.db", files, day=date(2026, 11, 23))
    for now, ok in ((datetime(2026, 11, 25, 0, 30, tzinfo=UTC), True), (NINE, False)):
        window = lookback(26 * HOUR, now)
        looked: list[tuple[date | None, str]] = [
            (d, f"/b/{d:%Y%m%d}/app_*.db") for d in window.days
        ]
        measured = exists(Found([old], looked, window))
        assert measured.ok is ok, measured.text
    assert measured.text == (
        "no backup of last night: nothing at /b/20261125/app_*.db (today) or "
        "/b/20261124/app_*.db (yesterday); the newest is app_20261123.db (dated 2026-11-23)"
    )


# -- S3 --------------------------------------------------------------------------------------------


def test_s3_prefixes_today_empty_old_and_unreachable(suite, s3, dumps, monkeypatch):
    monkeypatch.setenv("S3_KEY_ID", s3.access_key_id)
    monkeypatch.setenv("S3_SECRET", s3.secret_access_key)
    monkeypatch.setenv("S3_WRONG", "wrong-secret-7Hq2")
    bucket = s3.bucket(f"backups-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    data = dumps["custom"].read_bytes()
    for offset, age in ((0, 3 * HOUR), (-1, 27 * HOUR)):
        for name in ("fossawork.dump", "media.tar.gz"):
            s3.put(bucket, f"postgres/{day(offset):%Y/%m/%d}/{name}", data, age=age)
    s3.put(bucket, f"old/{day():%Y/%m/%d}/fossawork.dump", data, age=30 * HOUR)
    template = "{date:%Y/%m/%d}/"
    wrong = {**s3.location(bucket, "postgres/" + template), "secret_access_key_env": "S3_WRONG"}
    down = {**s3.location(bucket, "x/"), "endpoint_url": f"http://127.0.0.1:{free_port()}"}
    inventory = (
        backup_block("pg-s3", s3=s3.location(bucket, "postgres/" + template))
        + backup_block("empty", s3=s3.location(bucket, "empty/" + template))
        + backup_block("old", s3=s3.location(bucket, "old/" + template))
        + backup_block("wrong-key", s3=wrong)
        + backup_block("no-bucket", s3=s3.location("no-such-bucket", "postgres/"))
        + backup_block("down", s3=down, timeout="2s")
    )
    start = time.perf_counter()
    results = run(suite, inventory)
    elapsed = time.perf_counter() - start
    assert "wrong-secret-7Hq2" not in str(results)
    ok = by_target(results, "pg-s3")
    assert {k: r["outcome"] for k, r in ok.items()} == {c: "passed" for c in CHECKS[:4]}, ok
    prefix = f"s3://{bucket}/postgres/{day():%Y/%m/%d}/"
    assert ok["test_backup_exists"]["measured"] == (
        f"found {prefix} (today's): {2 * len(data) / 1000:.1f} KB in 2 objects"
    )
    assert re.fullmatch(  # both objects were written 3 h ago, in the same second or not
        rf"newest backup {prefix}(fossawork\.dump|media\.tar\.gz) is 3\.0 h old",
        ok["test_backup_age_below_limit"]["measured"],
    )
    assert ok["test_backup_not_shrunk"]["measured"].endswith(
        ", the same as "
        + (f"s3://{bucket}/postgres/{day(-1):%Y/%m/%d}/ {2 * len(data) / 1000:.1f} KB")
    )
    empty = by_target(results, "empty")
    assert said(empty["test_backup_exists"]).startswith(
        f"empty: no backup of last night: nothing at s3://{bucket}/empty/{day():%Y/%m/%d}/ "
        "(today) or "
    )
    assert said(by_target(results, "old")["test_backup_age_below_limit"]) == (
        f"old: newest backup s3://{bucket}/old/{day():%Y/%m/%d}/fossawork.dump is 30.0 h old "
        "> crit 26.0 h"
    )
    # A wrong key, a missing bucket, a dead endpoint: the first check says why, the others
    # fail at once pointing to it.
    for name, why in (
        ("wrong-key", f"s3://{bucket}: SignatureDoesNotMatch: .+"),
        ("no-bucket", "s3://no-such-bucket: no such bucket"),
        (
            "down",
            rf"s3://{bucket}: cannot connect to http://127\.0\.0\.1:\d+/{bucket}: "
            "Connection refused",
        ),
    ):
        target = by_target(results, name)
        assert {k: r["outcome"] for k, r in target.items()} == {
            c: "failed" if c == "test_backup_exists" else "not_run" for c in CHECKS[:4]
        }
        assert re.fullmatch(rf"{name}: unreachable: {why}", said(target["test_backup_exists"]))
        assert said(target["test_backup_age_below_limit"]) == (
            f"not run: {name} unreachable (see test_backup_exists[{name}])"
        )
    assert elapsed < 8, f"{elapsed:.1f} s: a dead endpoint was tried by every check"


def test_s3_credentials_only_from_the_environment(suite, s3, tmp_path, monkeypatch):
    """A credentials file with valid keys is not used; the standard AWS_* variables are."""
    bucket = s3.bucket(f"creds-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    s3.put(bucket, f"{day():%Y%m%d}/app.dump", b"PGDMP" + b"x" * 100, age=HOUR)
    shared = tmp_path / "credentials"
    shared.write_text(
        f"[default]\naws_access_key_id = {s3.access_key_id}\n"
        f"aws_secret_access_key = {s3.secret_access_key}\n"
    )
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(shared))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(shared))
    location = {k: v for k, v in s3.location(bucket, "{date:%Y%m%d}/").items() if "env" not in k}
    inventory = backup_block("std", s3=location)
    result = suite.run(inventory, "", "-k", "exists", paths=BACKUP)  # said at start-up: exit 4
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stderr.str().strip() == (
        "ERROR: inventory.toml: backup[0].s3: expected credentials from the environment, got "
        "none (set access_key_id_env and secret_access_key_env, or AWS_ACCESS_KEY_ID and "
        "AWS_SECRET_ACCESS_KEY; a credentials file or profile is never read)"
    )
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3.secret_access_key)
    results = run(suite, inventory, "", "-k", "exists")
    assert results["test_backup_exists[std]"]["outcome"] == "passed"
    assert s3.secret_access_key not in suite.json_path.read_text()


def test_boto3_is_imported_only_for_s3_targets(tmp_path):
    """boto3 costs ~190 ms: a run without an S3 target does not import it."""
    backup = sqlite_db(tmp_path / "app.db", 10)
    (tmp_path / "inventory.toml").write_text(backup_block("files", path=str(backup)))
    (tmp_path / "thresholds.toml").write_text("")
    (tmp_path / "boto3_probe.py").write_text(
        "import sys\n\ndef pytest_unconfigure(config):\n"
        f"    open({str(tmp_path / 'loaded')!r}, 'w').write(str('boto3' in sys.modules))\n"
    )
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-c",
            str(repo / "pytest.ini"),
            "--rootdir",
            str(repo),
            "-p",
            "boto3_probe",
            "-p",
            "no:xdist",
            "-q",
            "--inventory",
            str(tmp_path / "inventory.toml"),
            "--thresholds",
            str(tmp_path / "thresholds.toml"),
            str(repo / "suites/backup"),
        ],
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"4 passed, {2 + len(UNSET)} skipped" in done.stdout, done.stdout
    assert (tmp_path / "loaded").read_text() == "False"


# -- restore ---------------------------------------------------------------------------------------


def test_restore_passes_fails_and_always_drops_the_scratch_database(
    suite, pg, dumps, sshd, s3, tmp_path, monkeypatch
):
    monkeypatch.setenv("S3_KEY_ID", s3.access_key_id)
    monkeypatch.setenv("S3_SECRET", s3.secret_access_key)
    bucket = s3.bucket(f"restore-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    s3.put(bucket, f"pg/{day():%Y%m%d}/fossawork.dump", dumps["custom"].read_bytes(), age=HOUR)
    custom = copy(dumps["custom"], tmp_path / "custom" / ymd() / "fossawork.dump")
    plain = copy(dumps["plain"], tmp_path / "plain" / "fossawork.sql")
    cut = copy(
        dumps["custom"], tmp_path / "cut" / "fossawork.dump", keep=custom.stat().st_size - 600
    )
    template = f"{tmp_path}/custom/{{date:%Y%m%d}}/fossawork.dump"
    slow = restore_table(pg)
    slow["queries"] = [{"name": "sleep", "sql": "SELECT count(*) FROM pg_sleep(5)", "min": 0}]
    slow["query_timeout"] = "300ms"
    no_createdb = {**restore_table(pg), "dsn": pg.dsn("postgres", "nocreate")}
    # A scratch database an earlier run left (killed with SIGKILL): reported, never dropped.
    leftover = "opscheck_restore_earlier_20261101020000_abcd"
    pg.execute(f"CREATE DATABASE {leftover}")
    inventory = (
        sshd.host_block("box")
        + "\n"
        + backup_block("local", path=template, restore=restore_table(pg))
        + backup_block("remote", host="box", path=template, restore=restore_table(pg))
        + backup_block("s3", s3=s3.location(bucket, "pg/{date:%Y%m%d}/"), restore=restore_table(pg))
        + backup_block("plain", path=str(plain), restore=restore_table(pg))
        + backup_block("too-few", path=template, restore=restore_table(pg, minimum=ORDERS + 1))
        + backup_block("cut", path=str(cut), restore=restore_table(pg))
        + backup_block("slow", path=template, restore=slow)
        + backup_block("no-createdb", path=template, restore=no_createdb)
    )
    try:
        results = run(suite, inventory, "", "-m", "restore")
        assert scratch_databases(pg) == [leftover]
    finally:
        pg.execute(f"DROP DATABASE {leftover}")
    outcome = {k: r["outcome"] for k, r in results.items()}
    assert outcome == {
        "test_newest_dump_restores[local]": "passed",
        "test_newest_dump_restores[remote]": "passed",
        "test_newest_dump_restores[s3]": "passed",
        "test_newest_dump_restores[plain]": "passed",
        "test_newest_dump_restores[too-few]": "failed",
        "test_newest_dump_restores[cut]": "failed",
        "test_newest_dump_restores[slow]": "failed",
        "test_newest_dump_restores[no-createdb]": "failed",
    }, {k: said(r) for k, r in results.items()}
    scratch = r"opscheck_restore_{}_\d{{14}}_[0-9a-f]{{4}}"
    restored = results["test_newest_dump_restores[local]"]
    assert re.fullmatch(
        rf"fossawork\.dump \(\d+\.\d KB\) restored into {scratch.format('local')} on "
        rf"127\.0\.0\.1:{pg.port} in [\d.]+ (ms|s); work_orders = {ORDERS}; "
        rf"scratch database {scratch.format('local')} dropped",
        restored["measured"],
    )
    assert [(r["check"], r["value"]) for r in restored["records"]] == [
        ("backup.restore", 1),
        ("backup.restore_rows", ORDERS),
        ("backup.restore_cleanup", 1),
    ]
    assert restored["detail"] == (
        f"scratch databases left by earlier runs (drop them by hand): {leftover}"
    )
    assert said(results["test_newest_dump_restores[slow]"]) == (
        "slow: sleep: canceling statement due to statement timeout"
    )
    assert results["test_newest_dump_restores[plain]"]["measured"].startswith("fossawork.sql (")
    assert re.fullmatch(
        rf"too-few: work_orders = {ORDERS} < crit {ORDERS + 1}",
        said(results["test_newest_dump_restores[too-few]"]),
    )
    assert re.fullmatch(
        r"cut: pg_restore of fossawork\.dump failed \(exit 1\): pg_restore: error: .+",
        said(results["test_newest_dump_restores[cut]"]).splitlines()[0],
    )
    assert said(results["test_newest_dump_restores[no-createdb]"]) == (
        f"no-createdb: CREATE DATABASE on 127.0.0.1:{pg.port}: permission denied to create "
        "database (the role needs CREATEDB)"
    )
    for name in ("cut", "too-few", "slow"):  # failed, and dropped all the same
        assert re.search(
            rf"; scratch database {scratch.format(name.replace('-', '_'))} dropped$",
            results[f"test_newest_dump_restores[{name}]"]["measured"],
        )
    # Passed or failed, no scratch database of this run is left behind (checked above, while
    # the earlier run's one was still there).


def test_restore_runs_only_when_asked(suite, pg, dumps, tmp_path):
    """The evening run never restores; the restore test runs with -m weekly or -m restore."""
    path = copy(dumps["custom"], tmp_path / "fossawork.dump")
    inventory = backup_block("db", path=str(path), restore=restore_table(pg))
    results = run(suite, inventory, "", "-m", "evening")
    assert "test_newest_dump_restores[db]" not in results
    assert len(results) == 5 + len(UNSET)
    results = run(suite, inventory, "", "-m", "weekly")
    assert list(results) == ["test_newest_dump_restores[db]"]
    assert results["test_newest_dump_restores[db]"]["outcome"] == "passed"
    assert scratch_databases(pg) == []


# -- configuration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "error"),
    [
        (
            backup_block("b", path="/x", s3={"bucket": "bkp"}),
            "inventory.toml: backup[0]: expected exactly one of path (files on a host) or s3 "
            "(a bucket)",
        ),
        (
            backup_block("b", path="backups/*.db"),
            "inventory.toml: backup[0].path: expected an absolute path such as "
            "'/backups/daily/*.db', got 'backups/*.db'",
        ),
        (
            backup_block("b", path="/b/*.db", kind="zip"),
            "inventory.toml: backup[0].kind: expected 'auto', 'sqlite', 'tar', 'gzip', "
            "'pg_custom' or 'pg_plain', got 'zip'",
        ),
        (
            backup_block("b", s3={"bucket": "s3://bkp"}),
            "inventory.toml: backup[0].s3.bucket: expected a bucket name such as 'my-backups' "
            "(no s3://), got 's3://bkp'",
        ),
        (
            backup_block(
                "b",
                s3={
                    "bucket": "bkp",
                    "access_key_id_env": "NOT_SET_KEY_ID",
                    "secret_access_key_env": "NOT_SET_SECRET",
                },
            ),
            "inventory.toml: backup[0].s3.access_key_id_env: environment variable NOT_SET_KEY_ID "
            "is not set",
        ),
        (
            backup_block("b", s3={"bucket": "bkp", "access_key_id_env": "RESTORE_PW"}),
            "inventory.toml: backup[0].s3: expected both access_key_id_env and "
            "secret_access_key_env, or neither",
        ),
        (
            backup_block("b", path="/b.dump", restore={"dsn": "host=db user=x password=hunter2"}),
            "inventory.toml: backup[0].restore.dsn: expected a DSN without a password (name the "
            "variable that holds it in password_env)",
        ),
        (
            backup_block("b", path="/b.dump", host="nas"),
            "inventory.toml: backup[0].host: no [[host]] target named 'nas' (known: none)",
        ),
    ],
    ids=["path-and-s3", "relative", "kind", "bucket", "unset-env", "half-keys", "dsn-pw", "host"],
)
def test_configuration_mistakes_stop_the_run(suite, block, error):
    result = suite.run(block, "", paths=BACKUP)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert error in result.stderr.str(), result.stderr.str()
