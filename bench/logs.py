"""The log scanner against grep on the same file: whole-file and windowed counts.

    .venv/bin/python bench/logs.py [--size-mb 500] [--runs 5]

Writes an application log of --size-mb covering 48 h (1 line in 100 an ERROR), then times each
row's two sides in turn, after one warm-up run of each, and prints the medians and their ratio:
- opscheck: a ``[[logs]]`` source opened and counted as the checks do it (the scanner sent through
  testinfra's local backend and run on the host by its python3: count, window lines, top
  messages);
- the shell line that gives the same number: ``grep -c ERROR api.log`` and ``grep -ci error
  api.log`` (the runbooks' lines), ``grep -ciwE`` with the preset's four words, and for the last
  4 h an ``awk`` line comparing the ISO timestamps, and ``grep -c`` reading only the window's bytes
  (its start offset given, which a shell line cannot find).
CPU is the user + system time of all the processes of a side (grep, wc, python3, sh). A second
table gives throughput rows: a preset of 24 literals, a host without GNU grep (Python reads the
file), the last 4 h through ssh. The file is read from the page cache (it was just written):
disk speed is not measured. Prints Markdown for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import testinfra  # noqa: E402

from opscheck.config import LogsTarget  # noqa: E402
from opscheck.probes import _logscan  # noqa: E402
from opscheck.probes.logs import LogSource  # noqa: E402
from opscheck.testbed.sshd import Sshd  # noqa: E402

MB = 1000**2
C_LOCALE = {"LC_ALL": "C", "PATH": os.environ["PATH"]}


def write_log(path: Path, size: int, hours: float = 48.0) -> tuple[int, int]:
    """An application log of ``size`` bytes over ``hours``; returns (bytes, lines)."""
    template = b"".join(
        b"@@@@@@@@@@@@@@@@@@@@ ERROR payment %d failed for user %d from 10.0.%d.%d\n"
        % (i, i * 31, i % 256, i % 7)
        if i % 100 == 0
        else b"@@@@@@@@@@@@@@@@@@@@ INFO GET /api/items/%d 200 %dms request_id=%08x\n"
        % (i, i % 97, i * 7919)
        for i in range(1000)
    )
    blocks = size // len(template) + 1
    now = time.time()
    start, step = now - hours * 3600, hours * 3600 / blocks
    with path.open("wb") as out:
        for k in range(blocks):
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start + k * step))
            out.write(template.replace(b"@" * 20, stamp.encode()))
    return blocks * len(template), blocks * 1000


def cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


class Side:
    """One side of a row: wall and CPU time of each run, and what the last run found."""

    def __init__(self, run: Callable[[], Any]) -> None:
        self.run = run
        self.walls: list[float] = []
        self.cpus: list[float] = []
        self.found: Any = None

    def once(self) -> None:
        used, started = cpu(), time.perf_counter()
        self.found = self.run()
        self.walls.append(time.perf_counter() - started)
        self.cpus.append(cpu() - used)

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)


def race(runs: int, *sides: Side) -> None:
    """A warm-up run of each side, then ``runs`` rounds of each in turn (drift hits all)."""
    for side in sides:
        side.run()
    for _ in range(runs):
        for side in sides:
            side.once()


def scan(path: Path, host: Any, pattern: dict[str, Any]) -> dict[str, Any]:
    target = LogsTarget.model_validate({"name": "bench", "path": str(path), "patterns": [pattern]})
    return LogSource(target, host).open().counts()


def shell(command: str) -> str:
    ran = subprocess.run(command, shell=True, capture_output=True, env=C_LOCALE, check=False)
    return ran.stdout.decode().strip()


def grep_from(path: Path, offset: int, *args: str) -> str:
    """``grep`` reading ``path`` from byte ``offset`` on (its stdin seeked there)."""
    with path.open("rb") as f:
        f.seek(offset)
        ran = subprocess.run(
            ["grep", *args], stdin=f, capture_output=True, env=C_LOCALE, check=False
        )
    return ran.stdout.decode().strip()


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    versus: list[str] = []
    alone: list[str] = []
    with tempfile.TemporaryDirectory() as tmp, Sshd(Path(tmp) / "sshd") as sshd:
        path = Path(tmp) / "api.log"
        size, lines = write_log(path, args.size_mb * MB)
        local = testinfra.get_host("local://")
        name = path.name
        four_hours = "the last 4 h's"

        def awk_since() -> str:
            # ISO 8601 UTC stamps sort as text: the window is the lines from 4 h ago on.
            since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 4 * 3600))
            return shell(f"awk -v s={since} '$1 >= s && /ERROR/ {{n++}} END {{print n+0}}' {path}")

        def window_start() -> int:
            reader = _logscan.Reader(str(path), {}, time.time())
            try:
                return reader.window_offset(time.time() - 4 * 3600)
            finally:
                reader.close()

        start = window_start()  # as of now: blocks of the file are ~25 s apart
        rows: list[tuple[str, dict[str, Any], str, Callable[[], str]]] = [
            (
                'whole file, `pattern = "ERROR"`',
                {"pattern": "ERROR", "window": "30d"},
                f"`grep -c ERROR {name}`",
                lambda: shell(f"grep -c ERROR {path}"),
            ),
            (
                'whole file, `preset = "errors"`',
                {"preset": "errors", "window": "30d"},
                f"`grep -ci error {name}`",
                lambda: shell(f"grep -ci error {path}"),
            ),
            (
                'whole file, `preset = "errors"`',
                {"preset": "errors", "window": "30d"},
                f"`grep -ciwE 'error|fatal|critical|panic' {name}` (the preset's words)",
                lambda: shell(f"grep -ciwE 'error|fatal|critical|panic' {path}"),
            ),
            (
                'last 4 h, `pattern = "ERROR"`',
                {"pattern": "ERROR", "window": "4h"},
                f"`awk -v s=<4 h ago> '$1 >= s && /ERROR/' {name}` (reads all of it)",
                awk_since,
            ),
            (
                'last 4 h, `pattern = "ERROR"`',
                {"pattern": "ERROR", "window": "4h"},
                f"`grep -c ERROR` on {four_hours} {(size - start) / MB:.0f} MB (offset given)",
                lambda: grep_from(path, start, "-c", "ERROR"),
            ),
        ]
        for label, pattern, reference, command in rows:
            ours = Side(functools.partial(scan, path, local, {"name": "p", **pattern}))
            theirs = Side(command)
            race(args.runs, ours, theirs)
            counted = ours.found["patterns"]["p"]["count"]
            cell = reference.replace("|", "\\|")  # a table cell
            versus.append(
                f"| {label} | {counted} | {ms(ours.wall)} | {cell} | {theirs.found} | "
                f"{ms(theirs.wall)} | {ours.wall / theirs.wall:.2f}× | "
                f"{ms(ours.cpu)} / {ms(theirs.cpu)} |"
            )

        def throughput(label: str, host: Any, pattern: dict[str, Any]) -> None:
            side = Side(functools.partial(scan, path, host, {"name": "p", **pattern}))
            race(args.runs, side)
            answer = side.found
            read = answer["bytes"] / MB
            alone.append(
                f"| {label} | {answer['patterns']['p']['count']} | {ms(side.wall)} | "
                f"{ms(answer['seconds'])} | {read:.0f} MB at {read / answer['seconds']:.0f} MB/s |"
            )

        whole = {"window": "30d"}
        attacks = {**whole, "preset": "attacks"}
        throughput('whole file, `preset = "attacks"` (24 literals, none present)', local, attacks)
        remote = testinfra.get_host(
            sshd.uri, ssh_identity_file=str(sshd.identity_file), ssh_extra_args=sshd.ssh_extra_args
        )
        recent = {"pattern": "ERROR", "window": "4h"}
        throughput('last 4 h, `pattern = "ERROR"`, ssh:// (a login per command)', remote, recent)
        # A host without GNU grep (BusyBox, BSD): Python reads the window and finds the literals.
        bare = Path(tmp) / "bin"
        bare.mkdir()
        (bare / "python3").symlink_to(sys.executable)
        (bare / "timeout").symlink_to(shutil.which("timeout") or "/usr/bin/timeout")
        path_before = os.environ["PATH"]
        os.environ["PATH"] = str(bare)
        try:
            no_grep = "no GNU grep on the host"
            throughput(
                f'whole file, `pattern = "ERROR"`, {no_grep}', local, {**whole, "pattern": "ERROR"}
            )
            throughput(f'whole file, `preset = "attacks"`, {no_grep}', local, attacks)
        finally:
            os.environ["PATH"] = path_before
    print(f"{size / MB:.0f} MB, {lines} lines over 48 h, page cache; medians of {args.runs} runs\n")
    print("| opscheck | lines | time | reference | lines | time | ratio | CPU opscheck / ref |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(versus))
    print("\n| opscheck | lines | time | on the host | read |")
    print("|---|---|---|---|---|")
    print("\n".join(alone))


if __name__ == "__main__":
    main()
