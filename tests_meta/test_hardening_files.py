"""Report files when runs die mid-write or write side by side (issue 9, "The archive").

Real runs of ``opscheck`` in their own processes, held at the instant a report is renamed into
place (a plugin in the run waits there for a go file), then killed with SIGKILL or released
together: what a killed run leaves is removed by the next run, never what a live run is writing;
runs sharing one ``--json-report`` path all succeed, and the file is one whole report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from opscheck import merge
from opscheck.report import _write_atomic, sweep_partials

REPO = Path(__file__).resolve().parents[1]
OPSCHECK = Path(sys.executable).with_name("opscheck")
INVENTORY = '[[host]]\nname = "me"\nuri = "local://"\n'
REACHABLE = ("-k", "host_reachable", str(REPO / "suites/host"))

# Loaded into a run with -p: the first rename of a partial file waits until $HOLD_GO exists,
# after saying so in $HOLD_AT; every report file is then written, none renamed yet.
HOLD = """
import os, time
from pathlib import Path
from typing import ClassVar

_replace = os.replace


def held(source, target, *args, **kwargs):
    go = Path(os.environ["HOLD_GO"])
    if str(source).endswith(".partial") and not go.exists():
        Path(os.environ["HOLD_AT"]).write_text(str(source))
        deadline = time.monotonic() + 120
        while not go.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
    return _replace(source, target, *args, **kwargs)


os.replace = held
"""


class Run:
    """``opscheck`` started in its own process, held before it renames its first report."""

    started: ClassVar[list[subprocess.Popen[str]]] = []  # ended by the ``folder`` fixture

    def __init__(self, folder: Path, name: str, *args: str, go: Path | None = None) -> None:
        self.at = folder / f"{name}.at"
        self.go = go or folder / f"{name}.go"
        env = dict(os.environ, HOLD_AT=str(self.at), HOLD_GO=str(self.go))
        env["PYTHONPATH"] = os.pathsep.join([str(folder), env.get("PYTHONPATH", "")])
        self.process = subprocess.Popen(
            [str(OPSCHECK), "-p", "opscheck_hold", "-p", "no:cacheprovider", *args, *REACHABLE],
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        Run.started.append(self.process)

    def held(self, timeout: float = 60) -> str:
        """Wait until the run is held; the partial file it is about to rename."""
        deadline = time.monotonic() + timeout
        # written by the held run: seen once created, read once written (not in between)
        while not (self.at.exists() and self.at.read_text()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                out = self.process.stdout.read() if self.process.stdout else ""
                pytest.fail(f"the run was never held (exit {self.process.returncode}):\n{out}")
            time.sleep(0.02)
        return self.at.read_text()

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def finish(self) -> tuple[int, str]:
        self.go.touch()
        out, _ = self.process.communicate(timeout=120)
        return self.process.returncode, out


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    """A folder with the inventory and the holding plugin; every run started is ended."""
    (tmp_path / "inventory.toml").write_text(INVENTORY)
    (tmp_path / "thresholds.toml").write_text("")
    (tmp_path / "opscheck_hold.py").write_text(textwrap.dedent(HOLD))
    yield tmp_path
    for process in Run.started:
        if process.poll() is None:
            process.kill()
            process.wait()
    Run.started.clear()


def leftovers(root: Path) -> list[str]:
    """Runs' locks and partial files (not the archive index's lock, which stays on purpose)."""
    return sorted(
        p.name
        for p in root.rglob(".*")
        if p.suffix in (".lock", ".partial") and p.name != ".index.lock"
    )


def finals(root: Path) -> list[Path]:
    """The reports under a final name in the day folders (not the history store, the index)."""
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file() and not p.name.startswith(".") and p.parent != root and p.suffix != ".md"
    )


def assert_whole(path: Path) -> None:
    """A report under a final name is complete: it parses (HTML: it ends)."""
    if path.suffix == ".json":
        assert json.loads(path.read_text())["tests"], path
    elif path.suffix == ".xml":
        ET.parse(path)
    else:
        assert path.read_text().rstrip().endswith("</html>"), path


ARCHIVE = ("--inventory", "inventory.toml", "--thresholds", "thresholds.toml", "--archive")


def test_runs_killed_mid_write_leave_what_the_next_run_removes(folder, suite):
    """Three runs killed (SIGKILL) while writing their reports, files of an older opscheck that
    took no locks, and a run held mid-write that is alive: the next run removes the dead runs'
    locks and partial files, and nothing of the live run, which then publishes whole reports."""
    root = folder / "reports"
    args = (*ARCHIVE, "--reports-dir", str(root))
    doomed = [Run(folder, f"doomed{i}", *args) for i in range(3)]
    live = Run(folder, "live", *args)
    for run in [*doomed, live]:
        assert ".json." in run.held()  # the archive's JSON report, about to be renamed
    before = leftovers(root)
    # per run: its name's lock, pytest-html's and junitxml's partials, the JSON partial
    assert len(before) == 4 * 4, before
    for run in doomed:
        run.kill()
    day = next(root.iterdir())
    legacy = [day / ".morning-000001.lock", day / ".morning-000001.json.partial"]
    for path in legacy:
        path.write_text("")  # as opscheck before this change left them: no lock on them
    assert finals(root) == []  # a killed run leaves no half file under a final name

    after = suite.run(INVENTORY, "", "--archive", "--reports-dir", str(root), *REACHABLE[:2])
    assert after.ret == 0, after.stdout.str()
    assert "opscheck: removed 14 lock and partial files that runs killed mid-write left in" in (
        after.stdout.str()
    )
    live_files = [n for n in before if n not in leftovers(root)]
    assert len(live_files) == 12  # the dead runs' files are gone ...
    assert len(leftovers(root)) == 4  # ... and the live run's are all there
    assert len(finals(root)) == 3  # the run that cleaned up published its own

    code, out = live.finish()
    assert code == 0, out
    assert leftovers(root) == []
    published = finals(root)
    assert len(published) == 6
    for path in published:
        assert_whole(path)


def test_runs_sharing_one_json_report_path_all_succeed(folder):
    """Eight runs with the same ``--json-report`` path, all held with their report written and
    released at once to rename it (one partial name for all crashed 1 run in 30): every run
    succeeds and the file is one whole report. Two runs killed while held leave partial files;
    the next run writing that path removes them."""
    shared = folder / "shared.json"
    args = ["--inventory", "inventory.toml", "--thresholds", "thresholds.toml"]
    args += ["--json-report", str(shared)]
    go = folder / "all.go"
    runs = [Run(folder, f"run{i}", *args, go=go) for i in range(10)]
    partials = {run.held() for run in runs}
    assert len(partials) == 10  # each run its own partial name (pid and random)
    for run in runs[8:]:
        run.kill()
    go.touch()
    for run in runs[:8]:
        code, out = run.finish()
        assert code == 0, out
    assert json.loads(shared.read_text())["summary"]["passed"] == 1
    assert len(leftovers(folder)) == 2  # the killed runs' partials

    last = Run(folder, "last", *args)
    last.go.touch()
    code, out = last.finish()
    assert code == 0, out
    assert leftovers(folder) == []
    assert json.loads(shared.read_text())["summary"]["passed"] == 1


HOLDER = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(120)
"""


def hold_lock(path: Path) -> subprocess.Popen[str]:
    """Another live process that holds ``path``'s lock, as a writer does."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None and process.stdout.readline() == "held\n"
    return process


def test_a_partial_is_removed_only_once_its_writer_is_dead(tmp_path):
    """A partial file whose writer lives (holds its lock) stays, whatever its age; once the
    writer is killed, the next write of that report removes it."""
    report = tmp_path / "r.json"
    partial = tmp_path / f".r.json.{os.getpid()}-0123abcd.partial"
    partial.write_text("{half")
    os.utime(partial, (0, 0))  # as old as can be: age is not what counts
    other = tmp_path / ".r.json.old-style.partial"  # not a name this opscheck writes: kept
    other.write_text("")
    holder = hold_lock(partial)
    try:
        assert sweep_partials(report) == 0
        _write_atomic(report, '{"tests": []}')
        assert partial.exists()
    finally:
        holder.kill()
        holder.wait()
    _write_atomic(report, '{"tests": [1]}')
    assert not partial.exists()
    assert other.exists()
    assert json.loads(report.read_text()) == {"tests": [1]}


def test_a_merge_killed_midway_is_taken_over_by_the_next(tmp_path):
    """``opscheck-merge`` claims a run while it merges it: a live claim keeps other mergers off,
    a claim whose merger was killed is taken over (it used to keep the run unmerged for good),
    and a run marked merged is not merged again."""
    marker = tmp_path / "2026-11-30" / ".merged-0123456789abcdef"
    claim = merge._claim(marker)
    assert claim is not None
    lock = claim[1]
    merge._release(*claim)
    lock.write_text("")  # a merger's claim ...
    holder = hold_lock(lock)  # ... alive
    try:
        assert merge._claim(marker) is None
    finally:
        holder.kill()  # ... killed mid-merge
        holder.wait()
    taken = merge._claim(marker)
    assert taken is not None
    merge._mark_merged(marker)
    merge._release(*taken)
    assert merge._claim(marker) is None  # merged: not again
    assert not lock.exists()
