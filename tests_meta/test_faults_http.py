"""HTTP faults cost one timeout, not one per byte: a server that trickles its answer at 1 byte/s
(in its headers or its body), one that streams events forever, one that slows down mid-run.

The timeout is a deadline per request (connect to last byte) and a body is read up to a cap
(opscheck.probes.http.MAX_BODY). Each test runs the real suite against this module's own
testbed servers and asserts the run's wall time, the one-line reasons and the reports written.
Before: a 1 byte/s server passed its status check after 119 s and the run took 728 s; an endless
``text/event-stream`` was held in memory (563 MB) and passed.
"""

from __future__ import annotations

import re
import resource
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opscheck.testbed.http import HttpTestbed
from tests_meta.test_http_checks import HTTP, http, outcomes, said

TIMEOUT = 3.0
BOUND = 4 * TIMEOUT + 15  # generous: 2 cores, other suites running beside
EVERY_CHECK: dict[str, Any] = {
    "timeout": "3s",
    "contains": "healthy",
    "json": {"status": "healthy"},
    "json_limits": {"connections": {"crit": 80}},
    "samples": 3,
}


@pytest.fixture(scope="module")
def bed() -> Iterator[HttpTestbed]:
    """This module's own servers: their trickles and streams busy no one else's."""
    with HttpTestbed() as servers:
        yield servers


def run_timed(suite, inventory: str, tmp_path: Path) -> tuple[Any, dict[str, Any], float]:
    """The suite's run, its JSON results and its wall time; the JUnit and HTML reports too."""
    result, results, elapsed = suite.run_timed(inventory, "test_status_expected", paths=HTTP)
    assert results and all(r["outcome"] for r in results.values())
    return result, results, elapsed


def no_watchdog_left() -> bool:
    """Every request's deadline timer was cancelled and has ended (within a second)."""
    for _ in range(20):
        if not any(isinstance(t, threading.Timer) for t in threading.enumerate()):
            return True
        time.sleep(0.05)
    return False


def test_trickling_server_fails_at_the_deadline_not_per_byte(suite, bed, tmp_path):
    """1 byte/s in the headers or in the body: each target fails its status check with how far
    the answer came, in one timeout; its other checks point to it at once."""
    head, body = bed.url("http", "/trickle?part=head"), bed.url("http", "/trickle")
    inventory = http("head", head, **EVERY_CHECK) + http("body", body, **EVERY_CHECK)
    result, res, elapsed = run_timed(suite, inventory, tmp_path)
    assert elapsed < BOUND, f"{elapsed:.1f} s"  # before: 728 s
    headers = res["test_status_expected[head]"]
    match = re.fullmatch(
        rf"head: unreachable: GET {re.escape(head)}: no complete response within 3 s "
        r"\((\d+) bytes? of headers received\)",
        headers["reason"],
    )
    assert match, headers["reason"]
    assert 1 <= int(match.group(1)) <= 5  # ~1 a second
    started = res["test_status_expected[body]"]
    match = re.fullmatch(
        rf"body: unreachable: GET {re.escape(body)}: no complete response within 3 s "
        r"\(200 OK, (\d+) bytes? of body received\)",
        started["reason"],
    )
    assert match, started["reason"]
    assert 1 <= int(match.group(1)) <= 5
    for status in (headers, started):
        assert TIMEOUT - 0.1 <= status["duration"] < TIMEOUT + 4  # the deadline, not per read
    for name in ("head", "body"):
        others = [r for t, r in res.items() if t.endswith(f"[{name}]") and "status" not in t]
        assert len(others) == 5
        for other in others:
            assert other["outcome"] == "not_run"
            assert (
                other["reason"] == f"not run: {name} unreachable (see test_status_expected[{name}])"
            )
    assert outcomes(result) == {
        "failed": 2,
        "skipped": 4,
        "unreachable": 10,
    }  # +2: not_contains, json_checks unset
    assert no_watchdog_left()


def test_endless_event_stream_is_cut_at_the_cap_or_the_deadline(suite, bed, tmp_path):
    """A stream as fast as it can is read up to 10 MiB, then dropped: every check of the body
    says so; one that sends an event every 0.2 s fails at the deadline."""
    flood, drip = bed.url("http", "/events"), bed.url("http", "/events?every=0.2")
    inventory = http("flood", flood, **EVERY_CHECK) + http("drip", drip, **EVERY_CHECK)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    result, res, elapsed = run_timed(suite, inventory, tmp_path)
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak) / 1024
    assert grown < 150, f"peak memory grew {grown:.0f} MB"  # before: 563 MB and on
    assert elapsed < BOUND, f"{elapsed:.1f} s"
    capped = f"flood: {flood}: answered 200 OK with a body larger than 10 MiB (read stopped there)"
    flooded = [r for t, r in res.items() if t.endswith("[flood]")]
    assert len(flooded) == 6  # status, json, json_limits, contains, latency average and p95
    for check in flooded:
        assert check["outcome"] == "failed"
        assert said(check) == capped, check["id"]
    assert res["test_status_expected[flood]"]["duration"] < TIMEOUT  # the cap came first
    dripped = res["test_status_expected[drip]"]
    match = re.fullmatch(
        rf"drip: unreachable: GET {re.escape(drip)}: no complete response within 3 s "
        r"\(200 OK, (\d+) bytes of body received\)",
        dripped["reason"],
    )
    assert match, dripped["reason"]
    assert int(match.group(1)) > 0
    assert TIMEOUT - 0.1 <= dripped["duration"] < TIMEOUT + 4
    assert outcomes(result) == {"failed": 7, "skipped": 4, "unreachable": 5}
    assert no_watchdog_left()


def test_server_that_stalls_mid_run_is_lost_once(suite, bed, tmp_path):
    """The first request is answered at once, the latency samples after it trickle: the first
    sample fails at the deadline, the target is down for the rest of the run."""
    url = bed.url("http", "/trickle?fine=1&id=stalls")
    inventory = http("flaky", url, timeout="2s", samples=3)
    result, res, elapsed = run_timed(suite, inventory, tmp_path)
    assert elapsed < 4 * 2 + 15, f"{elapsed:.1f} s"
    assert res["test_status_expected[flaky]"]["outcome"] == "passed"
    late = r"sample 1 of 3: no complete response within 2 s \(200 OK, \d+ bytes? of body received\)"
    latency = [r for t, r in res.items() if "latency" in t]
    noticed = [r for r in latency if "stopped answering mid-run" in r["reason"]]
    assert len(noticed) == 1, [r["reason"] for r in latency]  # the first to notice says so
    assert re.fullmatch(rf"flaky: stopped answering mid-run: {late}", noticed[0]["reason"])
    test = noticed[0]["id"].split("::")[-1]
    (other,) = [r for r in latency if r is not noticed[0]]  # the other points to it
    assert other["outcome"] == "not_run"
    assert other["reason"] == f"not run: flaky unreachable (see {test})", other["reason"]
    assert outcomes(result)["passed"] == 1
    assert no_watchdog_left()


def test_latency_samples_reuse_one_kept_alive_connection(suite, bed):
    """Each sample gets its own deadline on the same connection: one accepted for the run."""
    app = bed._apps[0][0]  # the plain HTTP server
    before = app.accepted
    inventory = http("api", bed.url("http", "/health"), samples=5, contains="healthy")
    result = suite.run(inventory, "", paths=HTTP)
    result.assert_outcomes(passed=4, skipped=6)  # status, contains, latency; no JSON, no TLS
    assert app.accepted - before == 1


def test_redirect_with_an_endless_body_is_cut_at_the_cap(suite, bed, tmp_path):
    """requests reads a redirect's body before it follows it: that read is capped too."""
    url = bed.url("http", "/moved")
    _, res, elapsed = run_timed(suite, http("moved", url, timeout="3s"), tmp_path)
    assert elapsed < BOUND, f"{elapsed:.1f} s"
    status = res["test_status_expected[moved]"]
    assert said(status) == (
        f"moved: {url}: answered 302 Found with a body larger than 10 MiB (read stopped there)"
    )
    assert status["duration"] < TIMEOUT
