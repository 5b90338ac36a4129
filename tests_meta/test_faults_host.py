"""An ssh host that stops answering mid-run costs one timeout, not one per check.

sshd is frozen for real (SIGSTOP on the listener and its sessions) right after the host's
connectivity check measured: the master's connection stays open, nothing answers. ssh's own
keepalives (ServerAlive, sized from the timeout) end the master after about the timeout, the
commands in flight exit 255, the host is down for the rest of the run and every other check of
it (logs on it included) fails at once, pointing to the one that noticed. Before: each host
check waited for pytest's 300 s safety net (projected ~75 min), no report was written and the
master and the run's ``opscheck-*`` folder were left behind.

A command that hangs on a host that does answer is stopped at its own deadline (what it states
it may take, plus ``3 × timeout + 1 s``), with all it started; that check fails naming it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import testinfra

import fixtures.host
from opscheck.config import load
from opscheck.probes import host as probes
from opscheck.session import Lost, Run
from opscheck.testbed.process import _children
from opscheck.testbed.sshd import Sshd, host_block
from tests_meta.conftest import REPO
from tests_meta.test_host_checks import HOST_CHECKS, HOST_SUITE
from tests_meta.test_logs_checks import logs_block

TIMEOUT = 3
BOUND = 4 * TIMEOUT + 15  # generous: 2 cores, other suites running beside
LOG_CHECKS = 4  # suites/logs for a file source without patterns


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    """This test's own sshd, to freeze: let go (SIGCONT) before it is stopped."""
    with Sshd(tmp_path / "sshd") as server:
        try:
            yield server
        finally:
            server.resume()


@pytest.fixture
def scratch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Where the run makes its ``opscheck-*`` folder: this test's own, with a short path (the
    ssh control socket in it must fit a Unix socket's 108 bytes)."""
    with tempfile.TemporaryDirectory(prefix="h9-", dir="/tmp") as folder:
        monkeypatch.setattr(tempfile, "tempdir", folder)
        yield Path(folder)


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("reason") or "")


def processes(needle: str) -> list[str]:
    """Live processes whose command line holds ``needle``."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in argv and state != "Z" and int(proc.name) != os.getpid():
            found.append(f"{proc.name}: {argv}")
    return found


def ssh_processes(folder: Path) -> list[str]:
    """The run's ssh masters and commands: their ControlPath is in its folder under ``folder``."""
    return processes(f"{folder}/opscheck-")


def nothing_left(folder: Path) -> None:
    """No ssh process of the run is left, nor its ``opscheck-*`` folder."""
    deadline = time.monotonic() + 2  # a terminated master may take a moment to go
    while ssh_processes(folder) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ssh_processes(folder) == []
    assert list(folder.glob("opscheck-*")) == []


def freeze_after_reachable(monkeypatch: pytest.MonkeyPatch, sshd: Sshd) -> None:
    """Freeze ``sshd`` right after the host's connectivity check measured."""
    reachable = probes.reachable

    def reachable_then_freeze(host: Any, target: Any) -> Any:
        measured = reachable(host, target)
        sshd.pause()
        return measured

    monkeypatch.setattr(probes, "reachable", reachable_then_freeze)


def test_sshd_frozen_mid_run_costs_one_timeout(suite, sshd, scratch, tmp_path, monkeypatch):
    """The check that notices gives ssh's reason in one line, every other check of the host
    (and of the logs on it) points to it at once; every report is written, nothing is left."""
    logs = tmp_path / "app.log"
    logs.write_text("started\n")
    inventory = f'[settings]\ntimeout = "{TIMEOUT}s"\n\n'
    inventory += sshd.host_block(
        "me",
        services=["sshd"],
        ports=[sshd.port],
        reachable=[f"127.0.0.1:{sshd.port}"],
        log_dirs=[str(tmp_path)],
        cpu_sample="200ms",
    )
    inventory += logs_block("app", logs, "me")
    freeze_after_reachable(monkeypatch, sshd)
    junit, html = tmp_path / "junit.xml", tmp_path / "report.html"
    started = time.perf_counter()
    result = suite.run(
        inventory, "", f"--junitxml={junit}", f"--html={html}", paths=(*HOST_SUITE, "suites/logs")
    )
    elapsed = time.perf_counter() - started
    assert elapsed < BOUND, f"{elapsed:.1f} s"  # before: 300 s per check
    for report in (junit, html):
        assert "test_host_reachable" in report.read_text(), f"{report.name} not written"
    res = suite.results()
    assert res["test_host_reachable[me]"]["outcome"] == "passed"
    others = {t: r for t, r in res.items() if r["outcome"] != "skipped"}  # no pattern: skipped
    del others["test_host_reachable[me]"]
    assert len(others) == HOST_CHECKS - 1 + LOG_CHECKS, list(others)
    assert {r["outcome"] for r in others.values()} == {"failed", "not_run"}, {
        t: said(r) for t, r in res.items()
    }
    error = re.escape(f"ssh: no answer from 127.0.0.1:{sshd.port} within {TIMEOUT} s (ServerAlive)")
    noticed = [t for t, r in others.items() if "stopped answering mid-run" in said(r)]
    assert len(noticed) == 1, [said(r) for r in others.values()]
    assert re.fullmatch(f"me: stopped answering mid-run: {error}", said(others[noticed[0]]))
    assert res[noticed[0]]["outcome"] == "failed"
    for test, r in others.items():
        if test != noticed[0]:
            assert r["outcome"] == "not_run", (test, said(r))
            assert said(r) == f"not run: me unreachable (see {noticed[0]})", (test, said(r))
        # ServerAlive gives the peer up after ~3 s of silence, for the checks in flight at once.
        assert r["duration"] < 2 * TIMEOUT + 3, (test, r["duration"])  # 2 cores, loaded
    assert result.parseoutcomes()["unreachable"] == len(others) - 1
    nothing_left(scratch)


FREEZER = '''
"""Freeze sshd (SIGSTOP on it and its sessions) once the host's connectivity check measured,
and leave a mark when it did."""
import os
import signal
from pathlib import Path

from opscheck.probes import host as probes
from opscheck.testbed.process import ServerProcess

_reachable = probes.reachable


def _reachable_then_freeze(host, target):
    measured = _reachable(host, target)
    ServerProcess._signal_tree(int(os.environ["FREEZE_SSHD"]), signal.SIGSTOP)
    Path(os.environ["FROZEN_MARK"]).touch()
    return measured


probes.reachable = _reachable_then_freeze
'''


def test_interrupted_run_ends_its_master_and_folder(sshd, scratch, tmp_path):
    """Ctrl-C while the checks wait on a frozen host (a 30 s timeout: they would wait that
    long): the run ends its ssh master and commands, and removes its folder."""
    plugin_dir = tmp_path / "plugins"
    plugin_dir.mkdir()
    (plugin_dir / "freeze_sshd.py").write_text(textwrap.dedent(FREEZER))
    inventory = tmp_path / "inventory.toml"
    inventory.write_text('[settings]\ntimeout = "30s"\n\n' + sshd.host_block("me"))
    (tmp_path / "thresholds.toml").write_text("")
    mark = tmp_path / "frozen"
    env = {
        **os.environ,
        "TMPDIR": str(scratch),
        "PYTHONPATH": f"{plugin_dir}{os.pathsep}{REPO}",
        "FREEZE_SSHD": str(sshd.process.pid if sshd.process else 0),
        "FROZEN_MARK": str(mark),
    }
    env.pop("PYTEST_XDIST_WORKER", None)
    command = [sys.executable, "-m", "pytest", "-c", str(REPO / "pytest.ini")]
    command += [
        "--rootdir",
        str(REPO),
        "-p",
        "freeze_sshd",
        "-p",
        "no:xdist",
        "-p",
        "no:cacheprovider",
    ]
    command += ["--inventory", str(inventory), "--thresholds", str(tmp_path / "thresholds.toml")]
    command += [str(REPO / p) for p in HOST_SUITE]
    run = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while not mark.exists():
            assert run.poll() is None, run.communicate()[0].decode()
            assert time.monotonic() < deadline, "sshd was never frozen"
            time.sleep(0.05)
        time.sleep(1)  # the checks are in flight, waiting on the frozen host
        assert ssh_processes(scratch), "no master to end"
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=20)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert b"KeyboardInterrupt" in output, output.decode()
    nothing_left(scratch)


# -- what is and is not a lost host -----------------------------------------------------------


def test_broken_connection_is_lost_a_remote_255_is_not(sshd, scratch, tmp_path):
    """A remote command that exits 255 is the check's own answer (testinfra's RuntimeError), the
    host stays up; a session the host closes under a command in flight is ``Lost``, with ssh's
    words. Either way the run's master and folder are gone after it."""
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(sshd.host_block("me"))
    run = Run(load(inventory, None))
    try:
        host = fixtures.host.connect(run, "me")
        with pytest.raises(RuntimeError):
            host.run("exit 255")
        assert run.down(("host", "me")) is None
        caught: list[BaseException] = []

        def sleep() -> None:
            try:
                host.run("sleep 20")
            except BaseException as exc:
                caught.append(exc)

        worker = threading.Thread(target=sleep)
        worker.start()
        time.sleep(0.5)
        assert sshd.process is not None
        for session in _children(sshd.process.pid):  # the listener lives on: the host is up
            os.kill(session, signal.SIGKILL)
        worker.join(timeout=5)
        assert not worker.is_alive()
        (lost,) = caught
        assert isinstance(lost, Lost), repr(lost)
        assert lost.key == ("host", "me")
        assert lost.error == "ssh: Connection to 127.0.0.1 closed by remote host."
    finally:
        run.close()
    nothing_left(scratch)


# -- a command that hangs on a host that answers --------------------------------------------


def test_stuck_command_stops_at_its_deadline(suite, tmp_path, monkeypatch):
    """A ``du`` that never ends (as on a hung mount) is killed with what it started after
    ``3 × timeout + 1 s``; that check fails naming it, the others measure."""
    shims = tmp_path / "bin"
    shims.mkdir()
    du = shims / "du"
    du.write_text("#!/bin/sh\nsleep 613\necho never\n")  # the shell waits for its child
    du.chmod(0o755)
    monkeypatch.setenv("PATH", f"{shims}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(testinfra.host.Host, "_host_cache", {})
    inventory = '[settings]\ntimeout = "1s"\n\n' + host_block("me", log_dirs=[str(tmp_path)])
    started = time.perf_counter()
    suite.run(inventory, "", "-k", "log_dirs or memory", paths=HOST_SUITE)
    elapsed = time.perf_counter() - started
    res = suite.results()
    stuck = res["test_log_dirs_below_size_limit[me]"]
    assert stuck["outcome"] == "failed"
    assert said(stuck) == f"me: `du -sk {tmp_path}` did not finish within 4 s; stopped"
    assert 4 <= stuck["duration"] < 8, stuck["duration"]
    assert res["test_memory_used_below_limit[me]"]["outcome"] == "passed"
    assert elapsed < 15, f"{elapsed:.1f} s"
    assert processes("sleep 613") == []  # the shell's child went with it


def test_deadline_is_what_a_command_states_plus_the_ssh_margin():
    """The commands the probes run, as they state their time: a CPU sample's ``sleep``, a log
    scan's or a backup read's ``timeout``; nothing for a ``df``."""
    assert fixtures.host.stated_seconds("df -P -k") == 0
    sample = "head -n1 /proc/stat; sleep 0.2; head -n1 /proc/stat"
    assert fixtures.host.stated_seconds(sample) == 0.2
    assert fixtures.host.stated_seconds("timeout 120 /usr/bin/python3 -S -c 'x'") == 120
    assert fixtures.host.stated_seconds("timeout 5m sh -c 'cat x'; sleep 1.5") == 301.5
    assert fixtures.host.stated_seconds("grep timeouts /var/log/x; sleepy 3") == 0
    # ServerAlive: about the timeout of silence, in at most three probes a second apart or more.
    assert fixtures.host._alive(1) == (1, 1)
    assert fixtures.host._alive(3) == (1, 3)
    assert fixtures.host._alive(5) == (1, 5)
    assert fixtures.host._alive(10) == (3, 3)
    assert fixtures.host._alive(120) == (40, 3)
