"""A fleet: one ssh master per host for the whole run, a host's checks on one xdist worker, and a
mass outage reported as one line per unreachable target.

The hosts are names on one real sshd on 127.0.0.1 (each name its own target, login and master,
as separate machines would be); the broken ones are really broken: a closed port, a server that
accepts the connection and never says a word, a key the server refuses.
"""

from __future__ import annotations

import re
import socket
import threading
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opscheck.config import load
from opscheck.session import Run, TargetDown
from opscheck.testbed import CALM_HOST_THRESHOLDS, free_port
from opscheck.testbed.sshd import Sshd, _write_key, host_block
from tests_meta.conftest import REPO

CALM = CALM_HOST_THRESHOLDS  # these tests are about connections and reports
MIDDAY = 5  # host checks of the midday schedule, per host
REFUSED_AUTH = "Connection closed by authenticating user"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    with Sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def _count(sshd: Sshd, line: str) -> int:
    return sshd.log_file.read_text().count(line)


class Silent:
    """A server that accepts TCP connections, counts them and never says a word (ssh then
    waits for its banner until ConnectTimeout)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


# -- one ssh master per host -------------------------------------------------------------------


def _run(tmp_path: Path, inventory: str) -> Run:
    path = tmp_path / "inventory.toml"
    path.write_text(inventory)
    return Run(load(path, None))


def _at_once(work: Callable[[], object], times: int = 8) -> list[object]:
    """Call ``work()`` from ``times`` threads released together; what each returned or raised."""
    start = threading.Barrier(times)
    results: list[object] = [None] * times

    def one(i: int) -> None:
        start.wait()
        try:
            results[i] = work()
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_concurrent_first_commands_share_one_master(sshd, tmp_path):
    from fixtures.host import connect

    run = _run(tmp_path, sshd.host_block("web1"))
    before = _count(sshd, "Accepted publickey")
    try:
        names = _at_once(lambda: connect(run, "web1").run("uname -n").stdout.strip())
        assert len(set(names)) == 1 and isinstance(names[0], str), names
        assert _count(sshd, "Accepted publickey") == before + 1  # eight checks, one login
    finally:
        run.close()


def test_concurrent_first_commands_to_a_dead_host_try_it_once(silent, tmp_path):
    from fixtures.host import connect

    inventory = host_block("dead", f"ssh://root@127.0.0.1:{silent.port}", timeout="1s")
    run = _run(tmp_path, inventory)
    try:
        outcomes = _at_once(lambda: connect(run, "dead"))
    finally:
        run.close()
    assert all(isinstance(o, TargetDown) for o in outcomes), outcomes
    (message,) = {str(o) for o in outcomes}
    assert message.startswith("dead: unreachable: Connection timed out during banner exchange")
    assert len(silent.accepted) == 1  # one ssh tried the host, not one per check


def test_ssh_master_outlives_a_minute_without_commands(suite, sshd, silent):
    """A host waiting behind a dead one (a 62 s connect timeout, one check at a time) is not
    logged in to again: its master does not expire (ControlPersist=60 used to close it)."""
    healthy = sshd.host_block("web1", cpu_sample="100ms")
    dead = host_block("dead", f"ssh://root@127.0.0.1:{silent.port}", timeout="62s")
    before = _count(sshd, "Accepted publickey")
    # One check at a time, in test order: test_host_reachable[web1] opens the master, then
    # test_host_reachable[dead] waits 62 s for a banner, then web1's other checks run.
    suite.run(healthy + dead, CALM, "-m", "midday", "--concurrency", "1", paths=("suites/host",))
    results = suite.results()
    assert results["test_host_reachable[dead]"]["reason"].startswith(
        "dead: unreachable: Connection timed out during banner exchange"
    )
    web1 = {n: r["outcome"] for n, r in results.items() if n.endswith("[web1]")}
    assert web1 == dict.fromkeys(web1, "passed") and len(web1) == MIDDAY
    assert _count(sshd, "Accepted publickey") == before + 1


# -- xdist: a target's tests on one worker -------------------------------------------------------

RECORD_WORKER = """
import os

def pytest_collection_modifyitems(items):
    for item in items:
        item.user_properties.append(("xdist_worker", os.environ.get("PYTEST_XDIST_WORKER", "")))
"""


def _xdist_run(pytester: pytest.Pytester, inventory: str, *args: str) -> dict[str, dict]:
    """Run the midday host checks with ``-n 2``; per test: its worker, outcome and message."""
    pytester.makepyfile(record_worker=RECORD_WORKER)
    (pytester.path / "inventory.toml").write_text(inventory)
    (pytester.path / "thresholds.toml").write_text(CALM)
    junit = pytester.path / "junit.xml"
    pytester.runpytest_subprocess(
        "-c",
        str(REPO / "pytest.ini"),
        "--rootdir",
        str(REPO),
        "--inventory",
        str(pytester.path / "inventory.toml"),
        "--thresholds",
        str(pytester.path / "thresholds.toml"),
        "-p",
        "record_worker",
        "-m",
        "midday",
        "-n",
        "2",
        "--junitxml",
        str(junit),
        *args,
        str(REPO / "suites" / "host"),
    )
    tests: dict[str, dict] = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        skipped = case.find("skipped")
        not_run = skipped is not None and skipped.get("type") == "opscheck.not_run"
        if skipped is not None and not not_run:
            continue  # a check no target of the inventory applies to
        props = {p.get("name"): p.get("value") for p in case.iter("property")}
        failure = case.find("failure") if not not_run else skipped
        tests[str(case.get("name"))] = {
            "worker": props.get("xdist_worker"),
            "outcome": "not_run" if not_run else "failed" if failure is not None else "passed",
            "message": "" if failure is None else failure.get("message", ""),
            "unreachable": props.get("unreachable"),
        }
    return tests


def _workers_by_target(tests: dict[str, dict]) -> dict[str, set[str]]:
    workers: dict[str, set[str]] = defaultdict(set)
    for name, test in tests.items():
        workers[name.split("[")[1].rstrip("]")].add(test["worker"])
    return workers


HOSTS = [f"web{n}" for n in range(1, 7)]


def test_a_tests_target_is_read_from_its_node_id(tmp_path):
    from opscheck.xdist_target import scope_of, scopes

    inventory = host_block("web1", "local://") + host_block("web/2", "local://")
    inventory += '[[sqlite]]\nname = "app"\npath = "/srv/app.db"\nhost = "web1"\n'
    inventory += '[[sqlite]]\nname = "web"\npath = "/srv/web.db"\ntables = { "t/1" = {} }\n'
    targets = scopes(_run(tmp_path, inventory).config)
    assert {
        nodeid: scope_of(nodeid, targets)
        for nodeid in (
            "suites/host/test_resources.py::test_disk_used_below_limit[web1]",
            "suites/host/test_resources.py::test_disk_used_below_limit[web/2]",
            # on its host: the host's ssh connection is the one it reads the file through
            "suites/sqlite/test_sqlite_file.py::test_database_file_present[app]",
            # a for_each test: <target>/<entry>, where a name may hold "/" itself
            "suites/sqlite/test_sqlite_tables.py::test_table_rows_within_limits[web/t/1]",
            # no target of that component: one test, its own unit
            "suites/http/test_health.py::test_status_expected[-]",
            "tests_meta/test_fleet.py::test_a[web1]",
        )
    } == {
        "suites/host/test_resources.py::test_disk_used_below_limit[web1]": "host:web1",
        "suites/host/test_resources.py::test_disk_used_below_limit[web/2]": "host:web/2",
        "suites/sqlite/test_sqlite_file.py::test_database_file_present[app]": "host:web1",
        "suites/sqlite/test_sqlite_tables.py::test_table_rows_within_limits[web/t/1]": (
            "sqlite:web"
        ),
        "suites/http/test_health.py::test_status_expected[-]": (
            "suites/http/test_health.py::test_status_expected[-]"
        ),
        "tests_meta/test_fleet.py::test_a[web1]": "tests_meta/test_fleet.py::test_a[web1]",
    }


def test_xdist_runs_each_hosts_checks_on_one_worker(pytester, sshd):
    inventory = "".join(sshd.host_block(name, cpu_sample="100ms") for name in HOSTS)
    before = _count(sshd, "Accepted publickey")
    tests = _xdist_run(pytester, inventory)
    assert len(tests) == MIDDAY * len(HOSTS)
    assert all(t["outcome"] == "passed" for t in tests.values()), tests
    workers = _workers_by_target(tests)
    assert all(len(w) == 1 for w in workers.values()), workers
    assert {w for ws in workers.values() for w in ws} == {"gw0", "gw1"}  # both did work
    assert _count(sshd, "Accepted publickey") == before + len(HOSTS)  # one login per host

    # xdist alone hands the same checks out without regard to their host: both workers log in
    # to the same hosts.
    before = _count(sshd, "Accepted publickey")
    tests = _xdist_run(pytester, inventory, "--dist", "worksteal")
    assert any(len(w) == 2 for w in _workers_by_target(tests).values())
    assert _count(sshd, "Accepted publickey") > before + len(HOSTS)


def test_xdist_tries_a_refusing_host_once(pytester, sshd, tmp_path):
    wrong_key = tmp_path / "wrong_key"
    _write_key(wrong_key)
    inventory = "".join(sshd.host_block(name, cpu_sample="100ms") for name in HOSTS[:3])
    inventory += host_block(
        "locked",
        sshd.uri,
        ssh_identity_file=str(wrong_key),
        ssh_extra_args=sshd.ssh_extra_args,
    )
    refused_before = _count(sshd, REFUSED_AUTH)
    tests = _xdist_run(pytester, inventory)
    locked = {n: t for n, t in tests.items() if n.endswith("[locked]")}
    assert len(locked) == MIDDAY
    assert [t["outcome"] for t in locked.values()].count("failed") == 1  # the rest not run
    assert len({t["worker"] for t in locked.values()}) == 1
    real = [t for t in locked.values() if not t["unreachable"]]
    assert [t["message"] for t in real] == [
        "locked: unreachable: root@127.0.0.1: Permission denied (publickey)."
    ]
    assert all(
        t["unreachable"] == "test_host_reachable[locked]"
        and t["outcome"] == "not_run"
        and t["message"] == "not run: locked unreachable (see test_host_reachable[locked])"
        for t in locked.values()
        if t not in real
    )
    assert _count(sshd, REFUSED_AUTH) == refused_before + 1  # one attempt, not one per worker
    others = [t for n, t in tests.items() if not n.endswith("[locked]")]
    assert all(t["outcome"] == "passed" for t in others)


# -- a mass outage -------------------------------------------------------------------------------


def _outage_inventory(port: int, count: int) -> str:
    blocks = [host_block(f"host{n:02d}", f"ssh://root@127.0.0.1:{port}") for n in range(count)]
    blocks += [f'[[http]]\nname = "api{n:02d}"\nurl = "http://127.0.0.1:{port}/health"\n'
               for n in range(count)]  # fmt: skip
    return "\n".join(blocks)


def test_mass_outage_reads_one_line_per_target(suite, sshd):
    port = free_port()  # nothing listens: every connection is refused
    count = 15
    inventory = _outage_inventory(port, count) + sshd.host_block("alive", cpu_sample="100ms")
    result = suite.run(inventory, CALM, "-m", "midday", paths=("suites/host", "suites/http"))
    output = result.stdout.str()
    down = 2 * count
    # Per target: its connectivity check fails with the real error, once, under FAILURES and
    # in the short summary; its other checks are counted, not listed again.
    failures = output.split("= FAILURES =", 1)[1].split("opscheck summary by category")[0]
    entries = re.findall(r"^_{3,} (\S+) _{3,}\n(.*)$", failures, re.M)
    assert len(entries) == down
    for test, line in entries:
        target = test.split("[")[1].rstrip("]")
        if target.startswith("host"):
            assert test == f"test_host_reachable[{target}]"
            assert line == (
                f"{target}: unreachable: ssh: connect to host 127.0.0.1 port {port}: "
                "Connection refused"
            )
        else:
            assert test == f"test_status_expected[{target}]"
            assert line == (
                f"{target}: unreachable: GET http://127.0.0.1:{port}/health: connection refused"
            )
    assert len(re.findall(r"^FAILED ", output, re.M)) == down
    pointing = count * (MIDDAY - 1)  # the http targets' midday checks are all connectivity
    assert re.search(rf"\b{down} failed, {MIDDAY} passed, .*{pointing} unreachable\b", output)
    # Every other report still has them as failures, each with its message.
    results = suite.results()
    for name, r in results.items():
        if name.endswith("[-]"):
            continue  # a check no target of the inventory applies to
        if name.endswith("[alive]"):
            assert r["outcome"] == "passed"
        elif not name.startswith(("test_host_reachable", "test_status_expected")):
            target = name.split("[")[1].rstrip("]")
            assert r["outcome"] == "not_run"
            assert r["reason"].startswith(
                f"not run: {target} unreachable (see test_host_reachable["
            )


def test_a_failures_teardown_output_is_still_shown(suite, pytester):
    """The failure summary finds each test's teardown output in an index instead of scanning
    every report; what it prints is pytest's own."""
    plain = pytester.makepyfile(
        test_plain="""
        import pytest

        @pytest.fixture
        def noisy():
            yield
            print("said at teardown")

        def test_fails(noisy):
            assert False

        def test_passes(noisy):
            pass
        """
    )
    result = suite.run(host_block("me"), "", "-m", "not midday", str(plain), paths=())
    output = result.stdout.str()
    section = output.split("_ test_fails _", 1)[1]
    assert "Captured stdout teardown" in section
    assert "said at teardown" in section
    assert output.count("said at teardown") == 1  # the passing test's teardown: not shown
