"""Every SQLite check against real database files, on this machine and on a host over ssh.

The files are real SQLite databases written by Python's sqlite3; broken means broken for real: a
file that is gone, a page overwritten with garbage, a text file where the database should be, a
table emptied or dropped. The remote case reads the same files through a real sshd on 127.0.0.1
and the host's ``sqlite3`` command, over the one ssh connection the host checks use too.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opscheck.testbed import free_port
from opscheck.testbed.sshd import Sshd, host_block, toml_value

SQLITE = ("suites/sqlite",)
PAGE = 4096


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH server for the session (of this xdist worker)."""
    with Sshd(tmp_path_factory.mktemp("sshd-sqlite")) as server:
        yield server


def make_db(path: Path, orders: int = 500, events: int = 0) -> Path:
    """An application database: work_orders (indexed by status), an empty audit table, events."""
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA page_size = {PAGE}")
    conn.execute("CREATE TABLE work_orders (id INTEGER PRIMARY KEY, status TEXT, body TEXT)")
    conn.execute("CREATE INDEX work_orders_status ON work_orders (status)")
    conn.execute("CREATE TABLE audit (at TEXT, what TEXT)")
    conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT)")
    rows = [(f"status-{i % 7}", f"work order {i} " + "x" * 200) for i in range(orders)]
    conn.executemany("INSERT INTO work_orders (status, body) VALUES (?, ?)", rows)
    conn.executemany("INSERT INTO events (kind) VALUES (?)", [("login",)] * events)
    conn.commit()
    conn.close()
    return path


def corrupt(path: Path) -> None:
    """Overwrite the middle of a page of the status index with garbage, as a bad disk would."""
    data = bytearray(path.read_bytes())
    leaves = [n for n in range(1, len(data) // PAGE) if data[n * PAGE] == 0x0A]  # index leaves
    assert leaves, "no index leaf page to damage"
    start = leaves[len(leaves) // 2] * PAGE + PAGE // 2
    data[start : start + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))


def sqlite_block(name: str, path: Path | str, host: str | None = None, **fields: Any) -> str:
    lines = ["[[sqlite]]", f"name = {toml_value(name)}", f"path = {toml_value(str(path))}"]
    if host:
        lines.append(f"host = {toml_value(host)}")
    for key, value in fields.items():
        if isinstance(value, dict):
            tables = ", ".join(
                f"{t} = {{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in lim.items()) + " }"
                for t, lim in value.items()
            )
            lines.append(f"{key} = {{ {tables} }}")
        else:
            lines.append(f"{key} = {toml_value(value)}")
    return "\n".join(lines) + "\n"


@pytest.fixture(params=["local", "ssh"])
def where(request: pytest.FixtureRequest, sshd: Sshd) -> Callable[..., str]:
    """Render ``[[sqlite]]`` targets on this machine, or on the ssh host ``box``."""

    def render(*targets: tuple[str, Path | str, dict[str, Any]]) -> str:
        remote = request.param == "ssh"
        text = sshd.host_block("box") if remote else ""
        for name, path, fields in targets:
            text += sqlite_block(name, path, "box" if remote else None, **fields)
        return text

    return render


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("reason") or "")


# -- healthy -----------------------------------------------------------------------------------


def test_healthy_database_passes_every_check(suite, where, tmp_path):
    db = make_db(tmp_path / "fossawork_v2.db", events=3)
    tables = {"work_orders": {"warn": 100}, "events": {"warn": 1000, "direction": "above"}}
    result = suite.run(where(("app", db, {"tables": tables})), "", "-k", "not host", paths=SQLITE)
    results = suite.results()
    assert {n: r["outcome"] for n, r in results.items()} == dict.fromkeys(results, "passed"), {
        n: said(r) for n, r in results.items()
    }
    result.assert_outcomes(passed=5)
    measured = {n.removeprefix("test_"): r["measured"] for n, r in results.items()}
    assert re.fullmatch(
        rf"{re.escape(str(db))} present \(\d+\.\d KB, modified \d+ ms ago\)|"
        rf"{re.escape(str(db))} present \(\d+\.\d KB, modified \d+\.\d s ago\)",
        measured["database_file_present[app]"],
    )
    assert measured["integrity_check_ok[app]"] == "PRAGMA integrity_check: ok"
    assert measured["table_rows_within_limits[app/work_orders]"] == "work_orders 500 rows"
    assert measured["table_rows_within_limits[app/events]"] == "events 3 rows"
    assert results["test_table_rows_within_limits[app/events]"]["threshold"] == "warn > 1000"
    assert re.fullmatch(
        rf"{re.escape(str(db))} \d+\.\d KB", measured["database_size_below_limit[app]"]
    )
    # Read-only: the checks changed nothing, not even the file's time.
    before = db.stat().st_mtime_ns
    suite.run(where(("app", db, {})), "", paths=SQLITE)
    assert db.stat().st_mtime_ns == before


def test_database_on_a_host_shares_the_host_checks_ssh_connection(suite, sshd, tmp_path):
    db = make_db(tmp_path / "app.db")
    inventory = sshd.host_block("box") + sqlite_block("app", db, "box", tables={"work_orders": {}})
    logins = sshd.log_file.read_text().count("Accepted publickey")
    result = suite.run(inventory, "", "-k", "reachable or sqlite", paths=("suites/host", *SQLITE))
    # test_host_reachable and the 4 SQLite checks; test_dependencies_reachable has no addresses
    result.assert_outcomes(passed=5, skipped=1)
    assert sshd.log_file.read_text().count("Accepted publickey") == logins + 1


# -- broken ------------------------------------------------------------------------------------


def test_broken_databases_fail_each_check_with_its_reason(suite, where, tmp_path):
    app = make_db(tmp_path / "app.db", events=50)
    damaged = make_db(tmp_path / "damaged.db", orders=2000)
    corrupt(damaged)
    garbage = tmp_path / "garbage.db"
    garbage.write_text("this was a database until someone redirected a log here\n" * 100)
    gone = tmp_path / "gone.db"
    tables = {
        "work_orders": {"crit": 1000},  # 500 rows: under its level (below is the default)
        "audit": {},  # must not be empty: the default
        "invoices": {},  # dropped, or never created
        "events": {"warn": 10, "direction": "above"},  # 50 rows: over its level
    }
    inventory = where(
        ("app", app, {"tables": tables}),
        ("damaged", damaged, {}),
        ("garbage", garbage, {}),
        ("gone", gone, {"tables": {"work_orders": {}}}),
    )
    thresholds = '[sqlite.file_size.targets.app]\ncrit = "10KB"\n'
    suite.run(inventory, thresholds, "-k", "not host", paths=SQLITE)
    res = suite.results()
    outcome = {n: r["outcome"] for n, r in res.items()}
    message = {n: said(r) for n, r in res.items()}
    assert outcome == {
        "test_database_file_present[app]": "passed",
        "test_database_file_present[damaged]": "passed",
        "test_database_file_present[garbage]": "passed",
        "test_database_file_present[gone]": "failed",
        "test_database_size_below_limit[app]": "failed",
        "test_database_size_below_limit[damaged]": "passed",
        "test_database_size_below_limit[garbage]": "passed",
        "test_database_size_below_limit[gone]": "failed",
        "test_integrity_check_ok[app]": "passed",
        "test_integrity_check_ok[damaged]": "failed",
        "test_integrity_check_ok[garbage]": "failed",
        "test_integrity_check_ok[gone]": "failed",
        "test_table_rows_within_limits[app/work_orders]": "failed",
        "test_table_rows_within_limits[app/audit]": "failed",
        "test_table_rows_within_limits[app/invoices]": "failed",
        "test_table_rows_within_limits[app/events]": "warned",
        "test_table_rows_within_limits[gone/work_orders]": "failed",
    }, message
    assert message["test_database_file_present[gone]"] == f"gone: {gone} does not exist"
    assert message["test_database_size_below_limit[gone]"] == f"gone: {gone}: no such file"
    assert message["test_integrity_check_ok[gone]"] == f"gone: {gone}: no such file"
    assert re.fullmatch(
        rf"app: {re.escape(str(app))} \d+\.\d KB > crit 10\.0 KB",
        message["test_database_size_below_limit[app]"],
    )
    damage = res["test_integrity_check_ok[damaged]"]
    assert re.fullmatch(
        r"damaged: PRAGMA integrity_check: .*(page|index|malformed).*", damage["message"]
    ), damage["message"]
    assert damage["detail"].splitlines()[0] in damage["message"]
    assert message["test_integrity_check_ok[garbage]"] == (
        "garbage: PRAGMA integrity_check: file is not a database"
    )
    rows = "test_table_rows_within_limits[app/{}]"
    assert message[rows.format("work_orders")] == "app: work_orders 500 rows < crit 1000"
    assert message[rows.format("audit")] == "app: audit 0 rows < crit 1"
    assert message[rows.format("invoices")] == (
        "app: invoices: no such table (tables: audit, events, work_orders)"
    )
    assert message[rows.format("events")] == "app: events 50 rows > warn 10"
    assert message["test_table_rows_within_limits[gone/work_orders]"] == (
        f"gone: {gone}: no such file"
    )


def test_integrity_check_is_bounded_by_query_timeout(suite, where, tmp_path):
    db = make_db(tmp_path / "big.db", orders=20_000)
    inventory = where(("big", db, {"query_timeout": "1ms"}))
    suite.run(inventory, "", "-k", "integrity", paths=SQLITE)
    result = suite.results()["test_integrity_check_ok[big]"]
    assert result["outcome"] == "failed"
    assert result["reason"] == (
        "big: PRAGMA integrity_check: no result within 0.001 s (query_timeout)"
    )


# -- configuration and reachability ------------------------------------------------------------


def test_unknown_host_stops_the_run_naming_the_key(suite, tmp_path):
    inventory = host_block("web1") + sqlite_block("app", tmp_path / "app.db", "web9")
    result = suite.run(inventory, "", paths=SQLITE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (
        "inventory.toml: sqlite[0].host: no [[host]] target named 'web9' (known: web1)"
        in result.stderr.str()
    )


def test_unreachable_host_fails_at_once_pointing_at_the_host_check(suite, sshd, tmp_path):
    refused = free_port()
    inventory = host_block(
        "box",
        f"ssh://root@127.0.0.1:{refused}",
        ssh_identity_file=str(sshd.identity_file),
        ssh_extra_args=sshd.ssh_extra_args,
    ) + sqlite_block("app", tmp_path / "app.db", "box", tables={"work_orders": {}})
    result = suite.run(inventory, "", paths=SQLITE)
    # The terminal counts the checks that point to the real error apart (opscheck.outage).
    assert result.parseoutcomes() == {"failed": 1, "unreachable": 3}
    res = suite.results()
    assert [r["outcome"] for r in res.values()] == ["failed"] + ["not_run"] * 3
    first = res["test_database_file_present[app]"]["reason"]
    assert first == (
        f"box: unreachable: ssh: connect to host 127.0.0.1 port {refused}: Connection refused"
    )
    for name, r in res.items():
        if name != "test_database_file_present[app]":
            assert r["outcome"] == "not_run", name
            assert r["reason"] == "not run: box unreachable (see test_host_reachable[box])", name


def test_host_without_sqlite3_command_fails_with_the_fix(suite, sshd, tmp_path, monkeypatch):
    db = make_db(tmp_path / "app.db")
    # A host whose shell finds the basic tools but no sqlite3: a PATH of a few symlinks.
    fake = tmp_path / "bin"
    fake.mkdir()
    for tool in ("uname", "sh", "bash", "timeout", "stat"):
        found = next(Path(d) / tool for d in ("/usr/bin", "/bin") if (Path(d) / tool).exists())
        os.symlink(found, fake / tool)
    inventory = host_block("box", "local://") + sqlite_block("app", db, "box")
    monkeypatch.setenv("PATH", str(fake))
    suite.run(inventory, "", "-k", "file_present", paths=SQLITE)
    result = suite.results()["test_database_file_present[app]"]
    assert result["reason"] == (
        "app: unreachable: host box has no sqlite3 command (Debian: apt-get install sqlite3)"
    )
