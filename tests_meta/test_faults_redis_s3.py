"""A Redis server that stops answering mid-run, and an S3 endpoint that never answers, cost one
timeout for their target, not one per check.

Redis is frozen for real (SIGSTOP) or killed right after its connectivity check passed: the
connection stays open, nothing answers. The first check that waits past the timeout gives the
client up, the target is down for the rest of the run, its other checks fail at once and the
terminal counts them as unreachable. Before: each check waited its own 3 s in turn on the one
connection (16 checks: 39 s) and each failed on its own ("INFO failed: Timeout reading from
socket"), with no memo.

S3: a listener that accepts and never answers (a hung endpoint), and moto's server frozen
(``S3Server.pause``: requests read, none answered) or stopped after a backup target's client
opened. Before: one timeout per check of the target, each failing on its own (4 checks: 12 s).
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py

from opscheck.config import S3Location
from opscheck.probes import redis as probes
from opscheck.probes import s3 as s3_probes
from opscheck.session import Lost
from opscheck.testbed.redis import RedisServer
from opscheck.testbed.s3 import S3Server
from tests_meta.test_backup_checks import BACKUP, backup_block, day
from tests_meta.test_redis_checks import CHECKS, PASSWORD, REDIS, said

TIMEOUT = 3.0
BOUND = 4 * TIMEOUT + 15  # generous: 2 cores, other suites running beside
QUEUES = [{"key": "emails"}, {"bullmq": "embeddings"}, {"celery": "celery"}]  # LLEN, pipelines


@pytest.fixture
def start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str], RedisServer]]:
    """This test's own servers (one to break, one healthy): stopped after it (a frozen one is
    let run first, ``ServerProcess.stop``)."""
    monkeypatch.setenv("REDIS_PASSWORD", PASSWORD)
    with contextlib.ExitStack() as stack:

        def make(name: str) -> RedisServer:
            server = stack.enter_context(RedisServer(tmp_path / name))
            server.add_reader("opscheck", PASSWORD)
            return server

        yield make


def block(server: RedisServer, name: str) -> str:
    return server.redis_block(
        name, username="opscheck", password_env="REDIS_PASSWORD", queues=QUEUES
    )


def run_timed(
    suite, inventory: str, tmp_path: Path, *args: str, paths: tuple[str, ...] = REDIS
) -> tuple[Any, dict, float]:
    """The suite's run, its JSON results and its wall time; the JUnit and HTML reports too."""
    inventory = f'[settings]\ntimeout = "{TIMEOUT:g}s"\n\n' + inventory
    first = "test_redis_reachable" if paths == REDIS else "test_backup_exists"
    return suite.run_timed(inventory, first, *args, paths=paths)


def break_after_ping(monkeypatch: pytest.MonkeyPatch, server: RedisServer, how: str) -> None:
    """Freeze (``pause``) or kill (``stop``) ``server`` right after its connectivity check
    measured: its client's connection is open, and the next command waits or breaks."""
    ping = probes.ping

    def ping_then_break(client: Any) -> Any:
        measured = ping(client)
        if client.connection_pool.connection_kwargs["port"] == server.port:
            getattr(server, how)()
        return measured

    monkeypatch.setattr(probes, "ping", ping_then_break)


@pytest.mark.parametrize(
    ("how", "concurrency", "error"),
    [
        ("pause", "16", re.escape(f"no answer within {TIMEOUT:g} s")),
        ("pause", "1", re.escape(f"no answer within {TIMEOUT:g} s")),
        ("stop", "16", r"Connection closed by server\.|Error 10[34] .*"),
    ],
    ids=["frozen, measured ahead", "frozen, in the test", "killed"],
)
def test_redis_stopped_mid_run_costs_one_timeout(
    suite, start, tmp_path, monkeypatch, how, concurrency, error
):
    """The check that notices gives the real error, the others point to it at once; a healthy
    target beside is not slowed; every report is written."""
    broken, healthy = start("broken"), start("healthy")
    break_after_ping(monkeypatch, broken, how)
    inventory = block(broken, "cache") + block(healthy, "healthy")
    result, res, elapsed = run_timed(suite, inventory, tmp_path, "--concurrency", concurrency)
    assert elapsed < BOUND, f"{elapsed:.1f} s"  # before: 16 x 3 s, one check after another
    checks = CHECKS + len(QUEUES)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert res["test_redis_reachable[cache]"]["outcome"] == "passed"
    mine = {t: r for t, r in res.items() if "[cache" in t and "reachable" not in t}
    assert len(mine) == checks - 1
    assert {r["outcome"] for r in mine.values()} == {"failed", "not_run"}
    noticed = [t for t, r in mine.items() if "stopped answering mid-run" in said(r)]
    assert len(noticed) == 1, [said(r) for r in mine.values()]
    assert re.fullmatch(f"cache: stopped answering mid-run: (?:{error})", said(mine[noticed[0]]))
    assert mine[noticed[0]]["outcome"] == "failed"
    for test, r in mine.items():
        if test != noticed[0]:
            assert r["outcome"] == "not_run", said(r)
            assert said(r) == f"not run: cache unreachable (see {noticed[0]})", said(r)
        # One timeout, waited by the checks in flight at once, not one after another.
        assert r["duration"] < TIMEOUT + 4, (test, r["duration"])
    if how == "pause":
        assert res[noticed[0]]["duration"] > TIMEOUT - 0.1
    # The terminal counts the pointing failures apart (opscheck.outage); one line each in JSON.
    assert result.parseoutcomes()["unreachable"] == checks - 2
    healthy_ones = [r for t, r in res.items() if "[healthy" in t]
    assert len(healthy_ones) == checks
    # (A queue check's TYPE of a missing key may count as a miss before the hit ratio is read.)
    assert {r["outcome"] for r in healthy_ones} <= {"passed", "skipped", "warned"}, {
        r["id"]: r.get("measured") or said(r) for r in healthy_ones
    }
    assert all(r["duration"] < TIMEOUT - 0.5 for r in healthy_ones), "the healthy one waited"


def test_queue_checks_alone_stop_on_a_frozen_server(suite, start, tmp_path, monkeypatch):
    """Pipelines (BullMQ's and Celery's several keys) run on a connection of their own: a
    frozen server ends them at the timeout too, and the next one at once."""
    broken = start("broken")
    break_after_ping(monkeypatch, broken, "pause")
    _, res, elapsed = run_timed(
        suite, block(broken, "cache"), tmp_path, "-k", "reachable or bullmq or celery"
    )
    assert elapsed < BOUND, f"{elapsed:.1f} s"
    assert list(res) == [
        "test_redis_reachable[cache]",
        "test_queue_depth_below_limit[cache/bullmq:embeddings]",
        "test_queue_depth_below_limit[cache/celery:celery]",
    ]
    # Both queue checks are one test function: which of the two gives the real error and which
    # points to it is not told apart yet (session.TargetDown compares function names).
    for test, r in list(res.items())[1:]:
        assert re.fullmatch(
            r"cache: stopped answering mid-run: " + re.escape(f"no answer within {TIMEOUT:g} s"),
            said(r),
        ) or re.fullmatch(r"not run: cache unreachable \(see .+\)", said(r)), said(r)
        assert r["duration"] < TIMEOUT + 4, (test, r["duration"])


def test_only_a_timeout_or_a_broken_connection_means_stopped_answering():
    """The ``[[redis]]`` classifier: a refused command or a wrong password is the check's own
    failure, not a lost target."""
    assert probes.lost(redis_py.TimeoutError("Timeout reading from socket")) == (
        "Timeout reading from socket"
    )
    assert probes.lost(redis_py.ConnectionError("Connection closed by server.")) == (
        "Connection closed by server."
    )
    for own in (
        redis_py.AuthenticationError("invalid username-password pair"),
        redis_py.exceptions.NoPermissionError("NOPERM this user has no permissions"),
        redis_py.ResponseError("MISCONF"),
        ValueError("x"),
    ):
        assert probes.lost(own) is None, own


# -- S3 ------------------------------------------------------------------------------------------


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """This test's own moto server, to freeze or stop (a frozen one is let go when it stops);
    its keys in the environment."""
    with S3Server() as server:
        monkeypatch.setenv("S3_KEY_ID", server.access_key_id)
        monkeypatch.setenv("S3_SECRET", server.secret_access_key)
        yield server


def backups(s3: S3Server, name: str) -> dict[str, str]:
    """A bucket with last night's backup in today's prefix; its ``s3 = {...}`` table."""
    bucket = s3.bucket(f"{name}-{os.getpid()}-{time.monotonic_ns() % 10**6}")
    s3.put(bucket, f"{name}/{day():%Y%m%d}/app.dump", b"PGDMP" + b"x" * 100, age=3600)
    return s3.location(bucket, name + "/{date:%Y%m%d}/")


def no_secret_in(result: Any, tmp_path: Path, suite: Any) -> None:
    written = result.stdout.str() + suite.json_path.read_text()
    folder = suite.pytester.path  # where Suite.run_timed writes the JUnit and HTML reports
    written += (folder / "junit.xml").read_text() + (folder / "report.html").read_text()
    assert os.environ["S3_SECRET"] not in written


def test_hanging_s3_endpoint_costs_one_timeout_per_target(suite, tmp_path, monkeypatch):
    """An endpoint that accepts and never answers: each target's first check waits one
    timeout (one try: botocore's default retries made it 9 s), names the endpoint, and the
    target's other checks fail at once."""
    monkeypatch.setenv("S3_KEY_ID", "AKIAHANGING0000000")
    monkeypatch.setenv("S3_SECRET", "hanging-Secret-4Rw9")
    with socket.create_server(("127.0.0.1", 0), backlog=16) as silent:
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        location = {
            "bucket": "nightly",
            "prefix": "{date:%Y%m%d}/",
            "endpoint_url": endpoint,
            "region": "us-east-1",
            "access_key_id_env": "S3_KEY_ID",
            "secret_access_key_env": "S3_SECRET",
        }
        inventory = backup_block("db", s3=location) + backup_block("media", s3=location)
        result, res, elapsed = run_timed(suite, inventory, tmp_path, paths=BACKUP)
    assert elapsed < BOUND, f"{elapsed:.1f} s"
    assert result.parseoutcomes()["unreachable"] == 2 * 3
    for name in ("db", "media"):
        first = res[f"test_backup_exists[{name}]"]
        why = f"s3://nightly: no answer from {endpoint}/nightly within {TIMEOUT:g} s"
        assert said(first) == f"{name}: unreachable: {why}"
        assert TIMEOUT - 0.1 < first["duration"] < TIMEOUT + 4  # one try, not three
        for test in ("age_below_limit", "size_above_minimum", "not_shrunk"):
            other = res[f"test_backup_{test}[{name}]"]
            assert other["outcome"] == "not_run"
            assert said(other) == f"not run: {name} unreachable (see test_backup_exists[{name}])"
            assert other["duration"] < 1.5
    no_secret_in(result, tmp_path, suite)


@pytest.mark.parametrize(
    ("how", "error"),
    [
        ("pause", r"no answer from {url} within 3 s"),
        ("stop", r"cannot connect to {url}: Connection refused"),
    ],
    ids=["frozen", "stopped"],
)
def test_s3_endpoint_lost_mid_run_costs_one_timeout_per_target(
    suite, s3, tmp_path, monkeypatch, how, error
):
    """Frozen or stopped once both targets' clients opened: each target's listing gives the
    real error, its other checks point to it at once; the terminal counts them unreachable."""
    opened = s3_probes.open_client
    # Both targets' first checks open at once: the server breaks once both clients are open,
    # before either lists a thing.
    both_open = threading.Barrier(2, action=getattr(s3, how), timeout=20)

    def open_then_break(location: S3Location, timeout: float) -> Any:
        client = opened(location, timeout)
        both_open.wait()
        return client

    monkeypatch.setattr(s3_probes, "open_client", open_then_break)
    db, media = backups(s3, "db"), backups(s3, "media")
    inventory = backup_block("db", s3=db) + backup_block("media", s3=media)
    result, res, elapsed = run_timed(suite, inventory, tmp_path, paths=BACKUP)
    assert elapsed < BOUND, f"{elapsed:.1f} s"  # before: one timeout per check
    assert result.parseoutcomes()["unreachable"] == 2 * 3
    for name, location in (("db", db), ("media", media)):
        bucket = location["bucket"]
        url = re.escape(f"{s3.endpoint_url}/{bucket}")
        why = re.escape(f"s3://{bucket}/{name}/") + r"\d{8}/: " + error.format(url=url)
        first = res[f"test_backup_exists[{name}]"]
        assert re.fullmatch(f"{name}: stopped answering mid-run: {why}", said(first)), said(first)
        assert (TIMEOUT - 0.1 if how == "pause" else 0) < first["duration"] < TIMEOUT + 4
        for test in ("age_below_limit", "size_above_minimum", "not_shrunk"):
            other = res[f"test_backup_{test}[{name}]"]
            assert other["outcome"] == "not_run", said(other)
            assert said(other) == f"not run: {name} unreachable (see test_backup_exists[{name}])"
            assert other["duration"] < 1.5
    no_secret_in(result, tmp_path, suite)


def test_s3_endpoint_dropping_connections_says_so(suite, tmp_path, monkeypatch):
    """An endpoint that reads the request and closes the connection (a proxy whose backend is
    gone): one line naming it, without the request's query."""
    monkeypatch.setenv("S3_KEY_ID", "AKIADROPPING000000")
    monkeypatch.setenv("S3_SECRET", "dropping-Secret-8Kp2")
    with socket.create_server(("127.0.0.1", 0)) as dropping:

        def drop() -> None:
            with contextlib.suppress(OSError):
                while True:
                    conn, _ = dropping.accept()
                    with conn:
                        conn.recv(65536)

        threading.Thread(target=drop, daemon=True).start()
        endpoint = f"http://127.0.0.1:{dropping.getsockname()[1]}"
        location = {
            "bucket": "nightly",
            "endpoint_url": endpoint,
            "access_key_id_env": "S3_KEY_ID",
            "secret_access_key_env": "S3_SECRET",
        }
        result, res, elapsed = run_timed(
            suite, backup_block("db", s3=location), tmp_path, paths=BACKUP
        )
    assert elapsed < BOUND, f"{elapsed:.1f} s"
    assert said(res["test_backup_exists[db]"]) == (
        f"db: unreachable: s3://nightly: {endpoint}/nightly closed the connection before it "
        "answered"
    )
    assert result.parseoutcomes()["unreachable"] == 3
    no_secret_in(result, tmp_path, suite)


def test_download_from_a_frozen_endpoint_loses_the_target(s3, tmp_path):
    """The restore test's download: a frozen endpoint ends it at the timeout, and the store
    asks nothing more of it."""
    location = S3Location(**backups(s3, "db"))
    store = s3_probes.S3Objects(s3_probes.open_client(location, TIMEOUT), location, TIMEOUT)
    [[backup]], _ = store.find([f"db/{day():%Y%m%d}/"])
    s3.pause()
    try:
        started = time.perf_counter()
        with pytest.raises(Lost) as lost:
            store.fetch(backup.files[0], tmp_path, time.monotonic() + 60)
        assert TIMEOUT - 0.1 < time.perf_counter() - started < TIMEOUT + 4
        key = backup.files[0].path
        assert lost.value.error == (
            f"s3://{location.bucket}/{key}: no answer from "
            f"{s3.endpoint_url}/{location.bucket}/{key} within {TIMEOUT:g} s"
        )
        started = time.perf_counter()
        with pytest.raises(Lost) as again:
            store.find([f"db/{day():%Y%m%d}/"])
        assert time.perf_counter() - started < 0.1
        assert again.value.error == lost.value.error
    finally:
        s3.resume()
