"""A PostgreSQL server that stops answering mid-run costs one timeout for its target, not one per
check: the first statement that waits past the deadline (the target's timeout and a grace) gives
the session up, the target is down for the rest of the run, its other checks fail at once.

The server is frozen for real (SIGSTOP on the postmaster and every backend) right after its
connectivity check passed: connections stay open, the kernel keeps acknowledging, nothing
answers. Before: one check waited for pytest-timeout's 300 s, the others then failed with
"another command is already in progress". A slow statement is not a lost server: PostgreSQL's
statement_timeout fails that check alone, and the target's other checks still measure.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opscheck.config import PostgresTarget
from opscheck.probes import postgres as probes
from opscheck.testbed.postgres import Postgres
from tests_meta.test_postgres_checks import MONITOR, PASSWORD, PG, outcomes, said

TIMEOUT = 3.0
DEADLINE = TIMEOUT + probes.grace(TIMEOUT)  # 4.5 s: statement_timeout, then a grace
BOUND = 4 * TIMEOUT + 15  # generous: 2 cores, other suites running beside
CHECKS = 12  # of a target without tables and queries (the user-query test is skipped)


@pytest.fixture(scope="module")
def frozen(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """This module's own server, to be frozen: no other test's session waits on it."""
    with Postgres(tmp_path_factory.mktemp("frozen")) as server:
        server.create_monitor_role(MONITOR, PASSWORD, ["postgres"])
        yield server


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    with Postgres(tmp_path_factory.mktemp("healthy")) as server:
        server.create_monitor_role(MONITOR, PASSWORD, ["postgres"])
        yield server


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_PASSWORD", PASSWORD)


def block(server: Postgres, name: str, **keys: Any) -> str:
    return server.postgres_block(name, "postgres", MONITOR, "PG_PASSWORD", **keys)


def run_timed(suite, inventory: str, tmp_path: Path, *args: str) -> tuple[Any, dict, float]:
    """The suite's run, its JSON results and its wall time; the JUnit and HTML reports too."""
    inventory = f'[settings]\ntimeout = "{TIMEOUT:g}s"\n\n' + inventory
    return suite.run_timed(inventory, "test_postgres_reachable", *args, paths=PG)


def no_deadline_left() -> bool:
    """Every statement's watchdog was cancelled and has ended (within a second)."""
    for _ in range(20):
        if not any(t.name == probes.WATCHDOG for t in threading.enumerate()):
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("concurrency", ["16", "1"], ids=["measured ahead", "in the test"])
def test_server_frozen_mid_run_costs_one_deadline(
    suite, frozen, healthy, tmp_path, monkeypatch, concurrency
):
    """Frozen after its connectivity check: the next check gives the session up after the
    deadline, the target's other checks fail at once; a healthy target is not slowed."""
    connected = probes.reachable

    def reachable_then_frozen(conn: Any) -> Any:
        measured = connected(conn)
        if conn.info.port == frozen.port:
            frozen.pause()  # after the check answered: the session is open, nothing answers
        return measured

    monkeypatch.setattr(probes, "reachable", reachable_then_frozen)
    inventory = block(frozen, "frozen") + block(healthy, "healthy")
    try:
        result, res, elapsed = run_timed(suite, inventory, tmp_path, "--concurrency", concurrency)
    finally:
        frozen.resume()
    assert elapsed < BOUND, f"{elapsed:.1f} s"  # before: 300 s for one check, then errors
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert res["test_postgres_reachable[frozen]"]["outcome"] == "passed"
    noticed = res["test_connections_below_limit[frozen]"]
    assert (
        noticed["reason"] == f"frozen: stopped answering mid-run: no answer within {DEADLINE:g} s"
    )
    assert DEADLINE - 0.1 < noticed["duration"] < DEADLINE + 4
    others = [
        r
        for test, r in res.items()
        if test.endswith("[frozen]")
        and not test.startswith(("test_postgres_reachable", "test_connections_below_limit"))
    ]
    assert len(others) == CHECKS - 2
    for other in others:
        assert other["outcome"] == "not_run", other["id"]
        assert other["reason"] == (
            "not run: frozen unreachable (see test_connections_below_limit[frozen])"
        ), other["id"]
        assert other["duration"] < 1.5, other["id"]
    healthy_ones = [r for test, r in res.items() if test.endswith("[healthy]")]
    assert len(healthy_ones) == CHECKS
    # (A new cluster's cache may be cold: a warning, not a failure.)
    assert {r["outcome"] for r in healthy_ones} <= {"passed", "skipped", "warned"}, [
        said(r) for r in healthy_ones
    ]
    assert no_deadline_left()
    # Resumed, the server finds the session closed (its socket was shut down): nothing lingers.
    _until_gone(frozen)


def test_slow_statement_fails_its_check_only(suite, healthy, tmp_path):
    """A statement slower than the timeout is PostgreSQL's to cancel (statement_timeout): its
    check fails with PostgreSQL's words, the session lives on, the other checks measure."""
    queries = [
        {"name": "slow", "sql": "SELECT 1 FROM pg_sleep(10)"},
        {"name": "fast", "sql": "SELECT 1"},
    ]
    result, res, elapsed = run_timed(suite, block(healthy, "main", queries=queries), tmp_path)
    assert elapsed < BOUND, f"{elapsed:.1f} s"
    assert outcomes(result)["failed"] == 1  # (a new cluster's cold cache may warn)
    slow = res["test_query_within_limits[main/slow]"]
    assert said(slow) == "main: query slow failed: canceling statement due to statement timeout"
    assert TIMEOUT - 0.1 < slow["duration"] < DEADLINE
    assert res["test_query_within_limits[main/fast]"]["outcome"] == "passed"


def test_session_sets_keepalives_and_tcp_user_timeout(healthy):
    """A host gone from the network (no packet answered, not even by its kernel): libpq's
    keepalives and tcp_user_timeout end the wait, as the deadline does for a frozen server."""
    spec = PostgresTarget(name="main", dsn=healthy.dsn("postgres", MONITOR))
    session = probes.open_session(spec, PASSWORD, TIMEOUT)
    try:
        params = session.info.get_parameters()
    finally:
        session.close()
    assert params["tcp_user_timeout"] == "3000"
    assert (params["keepalives"], params["keepalives_idle"]) == ("1", "3")
    assert (params["keepalives_interval"], params["keepalives_count"]) == ("1", "3")


def _until_gone(server: Postgres, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    sql = f"SELECT 1 FROM pg_stat_activity WHERE usename = '{MONITOR}'"
    while server.execute(sql):
        assert time.monotonic() < deadline, f"the frozen session still open after {timeout} s"
        time.sleep(0.05)
