"""Flaky checks, reported not hidden (opscheck.recheck): ``--recheck`` measures a CRIT once more.

A real HTTP server on loopback, in a thread of this process, answers as a flaky service does: 500
to some requests, 200 to the others, and counts the requests and connections it is sent. The
HTTP suite checks it as users run it (pytester); with ``samples = 0`` only its status check runs:
one request per measurement.
"""

from __future__ import annotations

import json
import textwrap
import threading
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opscheck.testbed import free_port

HTTP = ("suites/http",)
QUICK = "[settings.recheck]\nenabled = true\ndelay = 0.2\n"
STATUS = "test_status_expected[api]"


class Flaky(ThreadingHTTPServer):
    """Answers request N (1, 2 ...) with ``status(N)``, or with ``per_path``, the Nth request
    for its path; counts requests and connections and keeps each request's arrival time."""

    daemon_threads = True

    def __init__(self, status: Callable[[int], int]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.status = status
        self.requests = self.connections = 0
        self.lock = threading.Lock()
        self.per_path = False
        self.by_path: Counter[str] = Counter()
        self.arrivals: dict[str, list[float]] = {}

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connections += 1
        super().process_request(request, client_address)

    def url(self, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.server_address[1]}/"


class _Handler(BaseHTTPRequestHandler):
    server: Flaky

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.requests += 1
            self.server.by_path[self.path] += 1
            self.server.arrivals.setdefault(self.path, []).append(time.monotonic())
            n = self.server.by_path[self.path] if self.server.per_path else self.server.requests
            status = self.server.status(n)
        body = b"ok" if status == 200 else b"internal error: database connection pool exhausted"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[int], int]], Flaky]]:
    servers: list[Flaky] = []

    def start(status: Callable[[int], int]) -> Flaky:
        server = Flaky(status)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def odd_fails(n: int) -> int:
    """500 to the first request of each pair: CRIT, then OK when measured again."""
    return 500 if n % 2 else 200


def inventory(url: str, settings: str = QUICK) -> str:
    return f'{settings}\n[[http]]\nname = "api"\nurl = "{url}"\nsamples = 0\n'


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def properties(path: Path, name: str) -> dict[str, list[str]]:
    """The JUnit properties of the test case ``name``."""
    (case,) = [c for c in ET.parse(path).getroot().iter("testcase") if c.get("name") == name]
    found: dict[str, list[str]] = {}
    for prop in case.iter("property"):
        found.setdefault(prop.get("name", ""), []).append(prop.get("value", ""))
    return found


def test_recheck_off_a_crit_fails_at_once(suite, serve):
    server = serve(odd_fails)
    result = suite.run(inventory(server.url(), ""), "", paths=HTTP)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output(result)
    entry = suite.results()[STATUS]
    assert entry["outcome"] == "failed"
    assert entry["reason"] == (
        f"api: GET {server.url()} answered 500 Internal Server Error (expected 2xx)\n"
        "body: 'internal error: database connection pool exhausted'"
    )
    assert "measured again" not in output(result)
    assert [r.get("recheck") for r in entry["records"]] == [None]
    assert server.requests == 1  # measured once


def test_a_crit_that_recovers_is_flaky_with_both_values(suite, serve, tmp_path):
    server = serve(odd_fails)
    junit = tmp_path / "junit.xml"
    result = suite.run(inventory(server.url()), "", f"--junitxml={junit}", paths=HTTP)
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert server.requests == 2 and server.connections == 2  # measured again, anew
    first = f"GET {server.url()} answered 500 Internal Server Error (expected 2xx)"
    second = f"GET {server.url()} answered 200 OK (expected 2xx)"
    flaky = f"{first}, then {second} 0.2 s later"
    assert properties(junit, STATUS)["flaky"] == [flaky]
    entry = suite.results()[STATUS]
    assert entry["outcome"] == "flaky"  # never plain "passed"
    (record,) = entry["records"]
    assert (record["verdict"], record["measured"]) == ("OK", second)
    assert record["recheck"] == {
        "value": 0.0,
        "measured": first,
        "verdict": "CRIT",
        "message": f"api: {first}",
        "delay": 0.2,
    }
    document = json.loads(suite.json_path.read_text())
    assert document["summary"]["flaky"] == 1 and document["summary"]["passed"] == 0


def test_a_crit_that_stays_fails_with_both_values(suite, serve):
    server = serve(lambda n: 500)
    result = suite.run(inventory(server.url(), ""), "", "--recheck", paths=HTTP)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output(result)
    assert server.requests == 2
    answered = f"GET {server.url()} answered 500 Internal Server Error (expected 2xx)"
    entry = suite.results()[STATUS]
    assert entry["outcome"] == "failed"
    assert entry["reason"].split("\n")[0] == (
        f"api: {answered} (measured again after 5 s: still CRIT; first {answered})"
    )
    (record,) = entry["records"]
    assert record["verdict"] == "CRIT" and record["recheck"]["verdict"] == "CRIT"


def test_the_setting_delays_and_the_option_turns_on(suite, serve):
    """``--recheck`` with ``enabled = false``: the option wins, the setting's delay holds."""
    server = serve(lambda n: 500)
    settings = "[settings.recheck]\nenabled = false\ndelay = 0.3\n"
    suite.run(inventory(server.url(), settings), "", "--recheck", paths=HTTP)
    assert "(measured again after 0.3 s: still CRIT" in suite.results()[STATUS]["reason"]
    assert server.requests == 2


def test_measured_in_the_test_it_is_flaky_too(suite, serve):
    """``--concurrency 1``: nothing is measured ahead; the test waits and measures again."""
    server = serve(odd_fails)
    result = suite.run(inventory(server.url()), "", "--concurrency", "1", paths=HTTP)
    assert result.ret == pytest.ExitCode.OK, output(result)
    entry = suite.results()[STATUS]
    assert entry["outcome"] == "flaky" and server.requests == 2
    assert entry["flaky"].endswith(" answered 200 OK (expected 2xx) 0.2 s later")
    assert entry["records"][0]["recheck"]["verdict"] == "CRIT"


def test_a_target_gone_when_measured_again_fails_with_the_first_value(suite, serve):
    """The server answers 500 once, then stops listening: the second attempt finds it gone."""
    server: Flaky

    def stop() -> None:
        server.shutdown()
        server.server_close()  # the port refuses from now on

    def once_then_gone(n: int) -> int:
        threading.Thread(target=stop).start()
        return 500

    server = serve(once_then_gone)
    settings = "[settings.recheck]\nenabled = true\ndelay = 0.5\n"
    result = suite.run(inventory(server.url(), settings), "", paths=HTTP)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output(result)
    entry = suite.results()[STATUS]
    answered = f"GET {server.url()} answered 500 Internal Server Error (expected 2xx)"
    assert entry["reason"] == (
        f"api: measured again after 0.5 s: unreachable: GET {server.url()}: connection refused "
        f"(first {answered})"
    )
    (record,) = entry["records"]  # the first measurement, the only one
    assert (record["verdict"], record["measured"], record.get("recheck")) == (
        "CRIT",
        answered,
        None,
    )


def test_a_waived_crit_is_not_measured_again(suite, serve, pytester):
    server = serve(lambda n: 500)
    waivers = pytester.path / "waivers.toml"
    expires = date.today() + timedelta(days=30)
    waivers.write_text(
        '[[waiver]]\ncheck = "http.status"\ntarget = "api"\nreason = "INC-1: migrating"\n'
        f'owner = "alice"\nexpires = {expires}\n'
    )
    result = suite.run(inventory(server.url()), "", "--waivers", str(waivers), paths=HTTP)
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert suite.results()[STATUS]["outcome"] == "waived"
    assert server.requests == 1


def test_a_probe_that_cannot_measure_is_not_measured_again(suite, serve):
    """https:// to a plain HTTP server: the TLS handshake fails (a ProbeError, no record)."""
    server = serve(odd_fails)
    result = suite.run(inventory(server.url("https")), "", "-k", "status", paths=HTTP)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output(result)
    entry = suite.results()[STATUS]
    assert entry["outcome"] == "failed" and "records" not in entry
    assert "measured again" not in entry["reason"]
    assert server.connections == 1


def test_a_down_target_is_not_measured_again(suite):
    url = f"http://127.0.0.1:{free_port()}/"
    result = suite.run(inventory(url), "", paths=HTTP)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, output(result)
    reason = suite.results()[STATUS]["reason"]
    assert reason == f"api: unreachable: GET {url}: connection refused"


def test_measured_ahead_rechecks_wait_in_parallel(suite, serve):
    """Ten targets CRIT at once, delay 1 s: measured again side by side, not one after another."""
    server = serve(lambda n: 500 if n == 1 else 200)  # each target: CRIT, then OK
    server.per_path = True
    settings = "[settings.recheck]\nenabled = true\ndelay = 1.0\n"
    targets = "".join(
        f'[[http]]\nname = "api{i}"\nurl = "{server.url()}?n={i}"\nsamples = 0\n' for i in range(10)
    )
    result = suite.run(f"{settings}\n{targets}", "", paths=HTTP)
    assert result.ret == pytest.ExitCode.OK, output(result)
    tests = {n: t for n, t in suite.results().items() if t["outcome"] != "skipped"}
    assert len(tests) == 10 and {t["outcome"] for t in tests.values()} == {"flaky"}
    assert server.requests == 20
    took = sum(t["duration"] for t in tests.values())  # each: first + 1 s + second
    assert took >= 10
    # Each second request came >= 1 s after its first; one after another, the ten second
    # requests would spread over >= 9 s, side by side they arrive together.
    seconds = [times[1] for times in server.arrivals.values()]
    assert all(times[1] - times[0] >= 1.0 for times in server.arrivals.values())
    assert max(seconds) - min(seconds) < 5, seconds


CALLER = """
    import json

    import pytest

    from opscheck import recheck


    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(session):
        reporter = session.config.pluginmanager.get_plugin("opscheck-reporter")
        before = recheck.callouts(session.config, reporter._document())  # not yet appended
        result = yield
        after = recheck.callouts(session.config, reporter._built)  # appended to the store
        out = session.config.invocation_params.dir / "callouts.json"
        out.write_text(json.dumps({"before": before, "after": after}))
        return result
"""


def test_flaky_on_n_of_the_last_m_runs_is_called_out(suite, serve, pytester):
    server = serve(odd_fails)
    (pytester.path / "callout_probe.py").write_text(textwrap.dedent(CALLER))
    pytester.syspathinsert()
    settings = (
        f'{QUICK}flaky_runs = 2\nof_last = 3\n\n[settings.history]\npath = "history.sqlite"\n'
    )
    seen = []
    for run in range(4):
        ok = run != 2  # the third run: 500 to both requests (still CRIT, not flaky)
        server.status = odd_fails if ok else (lambda n: 500)
        suite.run(
            inventory(server.url(), settings),
            "",
            "-p",
            "callout_probe",
            "--run-id",
            f"run-{run}",
            paths=HTTP,
        )
        outcome = suite.results()[STATUS]["outcome"]
        assert outcome == ("flaky" if ok else "failed")
        called = json.loads((pytester.path / "callouts.json").read_text())
        assert called["before"] == called["after"]  # whether the run is in the store or not
        seen.append(called["after"])
    assert seen[0] == []  # one flaky run of one
    text = "FLAKY on 2 of the last 2 runs"
    assert seen[1] == [
        {"check_id": "http.status_expected", "target": "api", "flaky": 2, "of": 2, "text": text}
    ]
    assert seen[2][0]["text"] == "FLAKY on 2 of the last 3 runs"  # runs 0, 1 of 0-2
    assert seen[3][0]["text"] == "FLAKY on 2 of the last 3 runs"  # runs 1, 3 of 1-3
    document = json.loads(suite.json_path.read_text())
    assert document["tests"][0]["flaky_history"] == "FLAKY on 2 of the last 3 runs"
    assert document["flaky_history"] == seen[3]


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from opscheck.testbed.sshd import Sshd

    with Sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.mark.parametrize("backend", ["local", "ssh"])
def test_a_host_command_measured_again_on_the_hosts_one_connection(
    suite, tmp_path, backend, request
):
    """A real command on a real host: a queue of 42 the first time it is read, 3 the second (a
    flag file it leaves behind). ``[[host]]`` keeps its one connection (ssh master): the command
    runs again on it."""
    from opscheck.testbed.sshd import host_block, toml_value

    flag = tmp_path / "drained"
    if backend == "ssh":
        block = request.getfixturevalue("sshd").host_block("me")
    else:
        block = host_block("me", "local://")
    run = f"if [ -e {flag} ]; then echo 3; else touch {flag}; echo 42; fi"
    block += f'\n[[host.commands]]\nname = "queue"\nrun = {toml_value(run)}\ncrit = 10\n'
    suite.run(QUICK + "\n" + block, "", paths=("suites/host/test_host_commands.py",))
    entry = suite.results()["test_command_output_expected[me/queue]"]
    assert entry["outcome"] == "flaky", entry
    assert entry["flaky"] == "queue 42 > crit 10, then queue 3 0.2 s later"
    (record,) = entry["records"]
    assert (record["value"], record["recheck"]["value"]) == (3.0, 42.0)
