"""Every host check against a real machine, healthy and really broken.

The machine is this one, reached through ``local://`` and through ``ssh://`` to a real sshd on
127.0.0.1 (one per xdist worker). Broken means broken for real: a closed port, a daemon that does
not exist, a CPU burner, a log directory with megabytes in it, an ssh server that never answers.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opscheck.testbed import free_port
from opscheck.testbed.sshd import Sshd, host_block
from tests_meta.results import values

# fail2ban (suites/host/test_security.py, hosts with fail2ban = true) is tested with the logs
# checks in test_logs_checks.py, network and processes (test_host_network.py) in
# test_host_network.py, disk I/O (test_host_disk_io.py) in test_host_disk_io.py; the counts here
# are those of the other host modules.
OWN_TESTS = ("test_security.py", "test_host_network.py", "test_host_commands.py")
HOST_SUITE = tuple(
    f"suites/host/{module.name}"
    for module in sorted((Path(__file__).parents[1] / "suites/host").glob("test_*.py"))
    if module.name not in (*OWN_TESTS, "test_host_disk_io.py")
)
HOST_CHECKS = 11  # tests in suites/host per target
MB = 1000**2


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH server for the session (of this xdist worker)."""
    with Sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(params=["local", "ssh"])
def machine(request: pytest.FixtureRequest, sshd: Sshd) -> Callable[..., str]:
    """Render the ``[[host]]`` table of this machine, named ``me``, through one backend."""

    def render(**fields: Any) -> str:
        fields.setdefault("cpu_sample", "200ms")
        if request.param == "ssh":
            return sshd.host_block("me", **fields)
        return host_block("me", "local://", **fields)

    return render


@pytest.fixture
def log_dir(tmp_path: Path) -> Callable[[int], str]:
    """A log directory holding one real (not sparse) file of the given size."""

    def make(size: int) -> str:
        path = tmp_path / "logs"
        path.mkdir(exist_ok=True)
        (path / "app.log").write_bytes(os.urandom(size))
        return str(path)

    return make


def _messages(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: r.get("message") or r.get("reason", "") for name, r in results.items()}


def _busy_loop() -> subprocess.Popen[bytes]:
    """A real process that keeps one CPU core busy until it is killed."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.kill()
    process.wait()


def _load_above_zero() -> None:
    """Make the 1-minute load average non-zero; an idle machine can show 0.00."""
    if float(Path("/proc/loadavg").read_text().split()[0]) > 0:
        return
    burner = _busy_loop()
    try:
        deadline = time.monotonic() + 15  # the kernel recomputes the load every 5 s
        while float(Path("/proc/loadavg").read_text().split()[0]) == 0:
            assert time.monotonic() < deadline, "the load average stayed 0.00 under a busy loop"
            time.sleep(0.2)
    finally:
        _stop(burner)


def _ssh_processes(sshd: Sshd) -> list[str]:
    """Live ssh clients (masters included) talking to this sshd; zombies are already gone."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        ours = argv[0].endswith(b"ssh") and f"Port={sshd.port}".encode() in argv
        if ours and state != "Z":
            found.append(f"{proc.name}: {b' '.join(argv).decode(errors='replace')}")
    return found


# -- healthy ---------------------------------------------------------------------------------

# Levels a healthy machine never reaches, even a busy 2-core CI box running this suite twice
# over with xdist: the healthy test is about the measurements and the plumbing, not this
# machine's mood. Each broken test below uses levels that no running machine can satisfy.
HEALTHY_LIMITS = """
[host.disk_used_pct]
warn = "98%"
crit = "99%"
[host.inode_used_pct]
warn = "98%"
crit = "99%"
[host.memory_used_pct]
warn = "98%"
crit = "99%"
[host.load_per_core]
warn = 50
crit = 100
[host.cpu_busy_pct]
warn = "100%"
crit = "100%"
[host.uptime]
warn = "1s"
[host.log_dir_size]
warn = "900KB"
crit = "1MB"
"""


def test_healthy_machine_passes_every_check(suite, machine, sshd, log_dir):
    logs = log_dir(100_000)
    inventory = machine(
        services=["sshd", "sshd.service"],
        ports=[sshd.port, f"tcp://127.0.0.1:{sshd.port}"],
        reachable=[f"127.0.0.1:{sshd.port}", f"localhost:{sshd.port}"],
        log_dirs=[logs],
    )
    result = suite.run(inventory, HEALTHY_LIMITS, paths=HOST_SUITE)
    results = suite.results()
    assert {name: r["outcome"] for name, r in results.items()} == {
        name: "passed" for name in results
    }, _messages(results)
    result.assert_outcomes(passed=HOST_CHECKS)
    measured = {name.split("[")[0]: r["measured"] for name, r in results.items()}
    assert re.fullmatch(r".+ answers as \S+", measured["test_host_reachable"])
    assert measured["test_no_recent_reboot"].startswith("up ")
    assert re.search(r"(^|; )/ \d+\.\d % used \(.+ of .+\)", measured["test_disk_used_below_limit"])
    assert re.search(r"(^|; )/ \d+\.\d % inodes used", measured["test_inodes_used_below_limit"])
    assert re.fullmatch(
        r"\d+\.\d % memory used \(.+ of .+\)", measured["test_memory_used_below_limit"]
    )
    assert re.fullmatch(
        rf"load \d+\.\d\d on {os.cpu_count()} cores \(\d+\.\d\d per core\)",
        measured["test_load_per_core_below_limit"],
    )
    assert re.fullmatch(r"CPU \d+\.\d % busy over 0.2 s", measured["test_cpu_busy_below_limit"])
    assert 0 <= values(results["test_cpu_busy_below_limit[me]"])[0] <= 100
    # sshd was started by hand and there is no systemd: found by its process.
    assert re.fullmatch(
        r"sshd: \d+ process(es)?; sshd.service: \d+ process(es)?", measured["test_services_running"]
    )
    assert measured["test_ports_listening"] == "all listening"
    assert measured["test_dependencies_reachable"] == "2 reachable"
    assert re.fullmatch(
        rf"{re.escape(logs)} \d+\.\d KB", measured["test_log_dirs_below_size_limit"]
    )


# -- broken ----------------------------------------------------------------------------------

BROKEN_LIMITS = """
[host.disk_used_pct]
warn = "0.5%"
crit = "1%"
[host.inode_used_pct]
crit = "0.1%"
[host.memory_used_pct]
crit = "1%"
[host.load_per_core]
warn = 0
crit = 0
[host.uptime]
warn = "36500d"
[host.log_dir_size]
crit = "1MB"
"""


def test_broken_machine_fails_each_check_with_its_reason(suite, machine, sshd, log_dir):
    logs = log_dir(3 * 1024 * 1024)
    closed = free_port()
    inventory = machine(
        services=["sshd", "no-such-daemon"],
        ports=[sshd.port, closed],
        reachable=[f"127.0.0.1:{sshd.port}", f"127.0.0.1:{closed}"],
        log_dirs=[logs],
    )
    _load_above_zero()
    suite.run(inventory, BROKEN_LIMITS, "-k", "not cpu", paths=HOST_SUITE)
    results = suite.results()
    outcome = {name.split("[")[0]: r["outcome"] for name, r in results.items()}
    message = {name.split("[")[0]: m for name, m in _messages(results).items()}
    assert outcome == {
        "test_host_reachable": "passed",
        "test_no_recent_reboot": "warned",
        "test_disk_used_below_limit": "failed",
        "test_inodes_used_below_limit": "failed",
        "test_memory_used_below_limit": "failed",
        "test_load_per_core_below_limit": "failed",
        "test_services_running": "failed",
        "test_ports_listening": "failed",
        "test_dependencies_reachable": "failed",
        "test_log_dirs_below_size_limit": "failed",
    }, message
    assert re.fullmatch(r"me: up .+ < warn 36500\.0 d", message["test_no_recent_reboot"])
    assert re.search(
        r"(^me: |; )/ \d+\.\d % used \(.+\) > crit 1\.0 %", message["test_disk_used_below_limit"]
    )
    assert re.search(
        r"(^me: |; )/ \d+\.\d % inodes used \(\d+ of \d+\) > crit 0\.1 %",
        message["test_inodes_used_below_limit"],
    )
    assert re.fullmatch(
        r"me: \d+\.\d % memory used \(.+ of .+\) > crit 1\.0 %",
        message["test_memory_used_below_limit"],
    )
    assert re.fullmatch(
        r"me: load \d+\.\d\d on \d+ cores \(\d+\.\d\d per core\) > crit 0",
        message["test_load_per_core_below_limit"],
    )
    assert message["test_services_running"] == (
        "me: no-such-daemon: not running (no process named no-such-daemon)"
    )
    assert message["test_ports_listening"] == f"me: not listening: {closed}"
    assert message["test_dependencies_reachable"] == (
        f"me: 127.0.0.1:{closed} not reachable (Connection refused)"
    )
    assert message["test_log_dirs_below_size_limit"] == f"me: {logs} 3.1 MB > crit 1.0 MB"


def test_recent_reboot_warns_and_fails_with_fail_on_warn(suite, machine):
    limits = '[host.uptime]\nwarn = "36500d"\n'
    result = suite.run(machine(), limits, "-k", "reboot", paths=HOST_SUITE)
    assert result.ret == 0
    assert suite.results()["test_no_recent_reboot[me]"]["outcome"] == "warned"
    result.stdout.fnmatch_lines(
        ["*WARN *test_no_recent_reboot[[]me[]] - me: up * < warn 36500.0 d"]
    )

    result = suite.run(machine(), limits, "-k", "reboot", "--fail-on-warn", paths=HOST_SUITE)
    assert result.ret == 1
    failed = suite.results()["test_no_recent_reboot[me]"]
    assert failed["outcome"] == "failed"
    assert failed["verdict"] == "WARN"
    assert "< warn 36500.0 d (--fail-on-warn)" in failed["reason"]


def test_cpu_burner_fails_cpu_check(suite, machine):
    cores = os.cpu_count() or 1
    # One busy loop makes at least 100/cores % of the machine busy; crit sits well below that.
    crit = 60 / cores
    burner = _busy_loop()
    try:
        time.sleep(0.1)
        result = suite.run(
            machine(cpu_sample="300ms"),
            f'[host.cpu_busy_pct]\ncrit = "{crit}%"\n',
            "-k",
            "cpu",
            paths=HOST_SUITE,
        )
    finally:
        _stop(burner)
    result.assert_outcomes(failed=1)
    cpu = suite.results()["test_cpu_busy_below_limit[me]"]
    assert values(cpu)[0] >= 100 / cores * 0.8, cpu
    assert re.fullmatch(rf"me: CPU \d+\.\d % busy over 0.3 s > crit {crit:.1f} %", cpu["message"])


def _hung_port(keep: list[socket.socket]) -> int:
    """A port whose connects hang, as to a firewalled host: its accept queue is full, so the
    kernel drops new SYNs. The sockets go into ``keep``; close them to release the port."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(0)
    keep.append(hung)
    port = int(hung.getsockname()[1])
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        keep.append(filler)
    return port


def test_dependency_timeout_costs_one_timeout(suite, machine, sshd):
    keep: list[socket.socket] = []
    try:
        one, two = _hung_port(keep), _hung_port(keep)
        time.sleep(0.05)
        dead = [f"127.0.0.1:{one}", f"localhost:{one}", f"127.0.0.1:{two}"]
        inventory = machine(timeout="1s", reachable=[*dead, f"127.0.0.1:{sshd.port}"])
        # test_host_reachable opens the connection first, so the dependencies test times alone.
        suite.run(inventory, "", "-k", "reachable", paths=HOST_SUITE)
    finally:
        for sock in keep:
            sock.close()
    result = suite.results()["test_dependencies_reachable[me]"]
    assert result["outcome"] == "failed"
    assert result["message"] == "me: " + "; ".join(
        f"{address} not reachable (timed out after 1.0 s)" for address in dead
    )
    # The three dead addresses are tried at once: one timeout, not three.
    assert result["duration"] < 2.0, result


# -- unreachable -----------------------------------------------------------------------------


def test_unreachable_ssh_target_fails_once_with_the_real_error(suite, sshd):
    silent = socket.socket()  # accepts TCP, never says a word: ssh waits for its banner
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    refused = free_port()
    everything = {
        "services": ["sshd"],
        "ports": [22],
        "reachable": ["127.0.0.1:22"],
        "log_dirs": ["/var/log"],
        "timeout": "1s",
        "ssh_identity_file": str(sshd.identity_file),
        "ssh_extra_args": sshd.ssh_extra_args,
    }
    inventory = host_block("refused", f"ssh://root@127.0.0.1:{refused}", **everything)
    inventory += host_block(
        "silent", f"ssh://root@127.0.0.1:{silent.getsockname()[1]}", **everything
    )
    started = time.monotonic()
    try:
        result = suite.run(inventory, "", paths=HOST_SUITE)
    finally:
        silent.close()
    elapsed = time.monotonic() - started
    # The terminal counts the checks that point to the real error apart (opscheck.outage).
    assert result.parseoutcomes() == {"failed": 2, "unreachable": 2 * (HOST_CHECKS - 1)}
    results = suite.results()
    outcome = [r["outcome"] for r in results.values()]
    assert (outcome.count("failed"), outcome.count("not_run")) == (2, 2 * (HOST_CHECKS - 1))
    assert results["test_host_reachable[refused]"]["reason"] == (
        f"refused: unreachable: ssh: connect to host 127.0.0.1 port {refused}: Connection refused"
    )
    assert results["test_host_reachable[silent]"]["reason"] == (
        "silent: unreachable: Connection timed out during banner exchange"
    )
    for name, r in results.items():
        target = name.split("[")[1].rstrip("]")
        if not name.startswith("test_host_reachable"):
            assert r["outcome"] == "not_run"
            assert r["reason"] == (
                f"not run: {target} unreachable (see test_host_reachable[{target}])"
            ), r["reason"]
    # The silent host costs one connect timeout (1 s) for the whole run, not one per test.
    reach = results["test_host_reachable[silent]"]["duration"]
    others = sum(r["duration"] for n, r in results.items() if n != "test_host_reachable[silent]")
    assert 0.9 <= reach < 3.0
    assert others < 1.0, others  # one timeout per test would be 20 s
    assert elapsed < reach + 4


# -- the ssh master --------------------------------------------------------------------------


def test_ssh_master_is_shared_fast_and_closed(suite, sshd, log_dir):
    before = sshd.log_file.read_text().count("Accepted publickey")
    inventory = sshd.host_block(
        "me",
        services=["sshd"],
        ports=[sshd.port],
        reachable=[f"127.0.0.1:{sshd.port}"],
        log_dirs=[log_dir(1000)],
        cpu_sample="200ms",
    )
    suite.run(inventory, HEALTHY_LIMITS, paths=HOST_SUITE)
    results = suite.results()
    assert all(r["outcome"] == "passed" for r in results.values()), _messages(results)
    # One login for the whole module: every command went through the master.
    assert sshd.log_file.read_text().count("Accepted publickey") == before + 1
    # Opening the master (key exchange, login) is the one slow step; then a check (1-4
    # commands) takes ~0.02 s, against ~0.3 s per command without a master.
    ordinary = [
        r["duration"]
        for n, r in results.items()
        if not n.startswith(("test_host_reachable", "test_cpu_busy"))
    ]
    assert len(ordinary) == HOST_CHECKS - 2
    assert sum(ordinary) / len(ordinary) < 0.15, ordinary
    # The run closed its master: no ssh process to this server is left.
    deadline = time.monotonic() + 2
    while _ssh_processes(sshd) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _ssh_processes(sshd) == []


def test_missing_log_dir_fails_naming_it(suite, tmp_path):
    missing = tmp_path / "gone"
    suite.run(host_block("me", log_dirs=[str(missing)]), "", "-k", "log_dirs", paths=HOST_SUITE)
    result = suite.results()["test_log_dirs_below_size_limit[me]"]
    assert result["outcome"] == "failed"
    assert result["reason"] == (
        f"me: {missing}: du: cannot access '{missing}': No such file or directory"
    )
