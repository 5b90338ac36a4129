"""Network and process checks of a ``[[host]]`` (suites/host/test_host_network.py) against this
machine through ``local://`` and a real sshd on 127.0.0.1, healthy and really broken: an
interface that does not exist (and one that is down, where the machine has one), a listener
this test opens on a random port, processes this test starts holding memory and burning CPU."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from opscheck.probes.host_net import _address, _shown
from opscheck.testbed.sshd import Sshd, host_block

SUITE = ("suites/host/test_host_network.py",)
MB = 1000**2
# Named for this process (this xdist worker), at most 15 characters (``comm``): the same test of
# the other backend may run at the same time on another worker, and must not see these.
HOG, BURN = f"hog-{os.getpid()}", f"burn-{os.getpid()}"


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH server for the session (of this xdist worker)."""
    with Sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(params=["local", "ssh"])
def machine(request: pytest.FixtureRequest, sshd: Sshd) -> Callable[..., str]:
    """Render the ``[[host]]`` table of this machine, named ``me``, through one backend;
    ``processes`` is TOML text (a list of inline tables)."""

    def render(processes: str = "", **fields: Any) -> str:
        block = (
            sshd.host_block("me", **fields)
            if request.param == "ssh"
            else host_block("me", "local://", **fields)
        )
        return block + (f"processes = {processes}\n" if processes else "")

    return render


def _outcomes(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name.split("[")[0]: r["outcome"] for name, r in results.items()}


def _messages(results: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {
        name.split("[")[0]: r.get("message") or r.get("reason", "") for name, r in results.items()
    }


def _listeners() -> list[str]:
    """This machine's listening TCP sockets as the check shows them, read here."""
    found = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(path).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":
                found.add(_shown(*_address(fields[1])))
    return sorted(found)


def _named(name: str, code: str) -> subprocess.Popen[str]:
    """A real Python process whose ``ps -o comm`` is ``name``, running ``code``, started once it
    prints ``ready``."""
    setup = f"open('/proc/self/comm', 'w').write({name!r})\n"
    process = subprocess.Popen(
        [sys.executable, "-c", setup + code], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


def _hog(megabytes: int) -> subprocess.Popen[str]:
    """A process that holds ``megabytes`` MB resident (every page written) until killed."""
    code = f"held = b'\\x01' * {megabytes * MB}\nprint('ready', flush=True)\nimport time\n"
    return _named(HOG, code + "time.sleep(600)")


def _burner() -> subprocess.Popen[str]:
    """A process that keeps one core busy until killed."""
    return _named(BURN, "print('ready', flush=True)\nwhile True: pass")


def _stop(*processes: subprocess.Popen[str]) -> None:
    for process in processes:
        process.kill()
        process.wait()


# -- healthy ---------------------------------------------------------------------------------


def test_healthy_network_and_processes_pass(suite, machine, sshd):
    hog = _hog(30)
    # Two listeners allowed by their exact address, IPv4 and IPv6.
    v4, v6 = socket.socket(), socket.socket(socket.AF_INET6)
    v4.bind(("127.0.0.1", 0))
    v6.bind(("::1", 0))
    for sock in (v4, v6):
        sock.listen(1)
    exact = [f"127.0.0.1:{v4.getsockname()[1]}", f"[::1]:{v6.getsockname()[1]}"]
    try:
        processes = (
            '[{ name = "sshd", max_memory = "1GB" },'
            f' {{ name = "{HOG}", max_memory = "500MB", max_cpu = 90 }}]'
        )
        # Other work on this machine opens and closes ports at any time: the expected list is
        # read just before the run, and a run that met a newcomer is tried again.
        for _ in range(3):
            others = [address for address in _listeners() if address not in exact]
            ports = sorted({int(address.rsplit(":", 1)[1]) for address in others})
            inventory = machine(processes, interfaces=["lo"], listening=[*ports, *exact])
            suite.run(inventory, "", paths=SUITE)
            results = suite.results()
            if results["test_no_unexpected_listeners[me]"]["outcome"] == "passed":
                break
    finally:
        _stop(hog)
        v4.close()
        v6.close()
    assert set(_outcomes(results).values()) == {"passed"}, _messages(results)
    measured = {name.split("[")[0]: r["measured"] for name, r in results.items()}
    assert measured["test_interfaces_up"] == "lo: up (operstate unknown, administratively up)"
    assert re.fullmatch(
        r"lo 0 errors since boot \(rx 0 of \d+ packets, tx 0\)",
        measured["test_interface_errors_below_limit"],
    ), measured
    assert re.fullmatch(
        r"lo \d+ drops since boot \(rx \d+ of \d+ packets, tx \d+\)",
        measured["test_interface_drops_below_limit"],
    ), measured
    assert re.fullmatch(
        r"\d+ TCP listeners, all expected", measured["test_no_unexpected_listeners"]
    )
    assert re.fullmatch(
        r"sshd: \d+ process(es)?, at most \d+\.\d [KM]B and \d+\.\d % CPU; "
        rf"{HOG}: 1 process, at most \d+\.\d MB and \d+\.\d % CPU",
        measured["test_processes_within_limits"],
    ), measured
    # The top five by CPU and by memory, largest first, as `ps aux --sort` shows them.
    detail = results["test_processes_within_limits[me]"]["detail"]
    cpu, memory = detail.split("\n")
    entry = r".+? \(pid \d+\) (\d+\.\d) "
    assert re.fullmatch(rf"top CPU \(ps %CPU\): {entry}%(, {entry}%){{4}}", cpu), detail
    assert re.fullmatch(rf"top memory \(RSS\): {entry}[KMG]B(, {entry}[KMG]B){{4}}", memory)
    shares = [float(x) for x in re.findall(r"\) (\d+\.\d) %", cpu)]
    assert shares == sorted(shares, reverse=True), detail
    # The counters of every interface named stay in the detail, for a later run to compare.
    counters = results["test_interface_errors_below_limit[me]"]["detail"]
    assert re.fullmatch(
        r"lo since boot: rx_bytes=\d+ rx_packets=\d+ rx_errs=0 .+ tx_compressed=\d+", counters
    )


# -- broken ----------------------------------------------------------------------------------


def _down_interface() -> str | None:
    """An interface of this machine that exists and is down (ifb0 here), if there is one."""
    for path in sorted(Path("/sys/class/net").iterdir()):
        if (path / "operstate").read_text().strip() == "down":
            return path.name
    return None


def test_broken_network_and_processes_fail_with_their_reasons(suite, machine):
    down = _down_interface()
    wide = socket.socket()  # on every address, where only 127.0.0.1 is allowed
    wide.bind(("0.0.0.0", 0))
    wide.listen(1)
    stray = socket.socket()  # on a random port nobody listed
    stray.bind(("127.0.0.1", 0))
    stray.listen(1)
    wide_port, stray_port = wide.getsockname()[1], stray.getsockname()[1]
    hog, burner = _hog(80), _burner()
    try:
        others = sorted({int(a.rsplit(":", 1)[1]) for a in _listeners()} - {wide_port, stray_port})
        processes = (
            f'[{{ name = "{HOG}", max_memory = "50MB" }},'
            f' {{ name = "{BURN}", max_cpu = "10%" }},'
            ' { name = "no-such-process" }]'
        )
        inventory = machine(
            processes,
            interfaces=["lo", "nosuch0", *([down] if down else [])],
            listening=[*others, f"127.0.0.1:{wide_port}"],
        )
        suite.run(inventory, "[host.interface_drops]\nwarn = 0\ncrit = 0\n", paths=SUITE)
    finally:
        _stop(hog, burner)
        wide.close()
        stray.close()
    results = suite.results()
    outcome, message = _outcomes(results), _messages(results)
    assert outcome == {
        "test_interfaces_up": "failed",
        "test_interface_errors_below_limit": "failed",
        "test_interface_drops_below_limit": "failed",
        "test_no_unexpected_listeners": "failed",
        "test_processes_within_limits": "failed",
    }, message
    not_up = "; nosuch0: no such interface" + (
        f"; {down}: not up (down, administratively down)" if down else ""
    )
    assert message["test_interfaces_up"] == "me:" + not_up[1:]
    assert message["test_interface_errors_below_limit"] == (
        "me: not in /proc/net/dev: nosuch0 (no such interface)"
    )
    # Listed in the order of their ports; another process of this machine may open one too.
    unexpected = re.fullmatch(
        r"me: (\d+) unexpected TCP listener\(s\): (.+)", message["test_no_unexpected_listeners"]
    )
    assert unexpected, message
    found = unexpected.group(2).split(", ")
    assert {f"0.0.0.0:{wide_port}", f"127.0.0.1:{stray_port}"} <= set(found), found
    over = re.fullmatch(
        rf"me: {HOG} \(pid \d+\): (\d+\.\d) MB memory \(RSS\) > max 50\.0 MB; "
        rf"{BURN} \(pid \d+\): \d+\.\d % CPU > max 10 %; "
        r"no-such-process: no process named no-such-process runs",
        message["test_processes_within_limits"],
    )
    assert over, message
    assert float(over.group(1)) >= 80  # the 80 MB it holds, and Python itself


# The counters of this machine's interfaces are all 0 (no faulty NIC to be had here): levels
# that 0 falls short of show that the totals are judged, with the operator's words.
COUNTER_LEVELS = """
[host.interface_errors]
crit = 1
direction = "below"
[host.interface_drops]
warn = 1
direction = "below"
"""


def test_interface_counters_are_judged_against_levels(suite, machine):
    suite.run(machine(interfaces=["lo"]), COUNTER_LEVELS, "-k", "errors or drops", paths=SUITE)
    results = suite.results()
    assert _outcomes(results) == {
        "test_interface_errors_below_limit": "failed",
        "test_interface_drops_below_limit": "warned",
    }
    message = _messages(results)
    assert re.fullmatch(
        r"me: lo 0 errors since boot \(rx 0 of \d+ packets, tx 0\) < crit 1",
        message["test_interface_errors_below_limit"],
    ), message
    assert re.fullmatch(
        r"me: lo 0 drops since boot \(rx 0 of \d+ packets, tx 0\) < warn 1",
        message["test_interface_drops_below_limit"],
    ), message
