"""Wall time of the morning host and HTTP checks on the demo stack, against the runbook's lines
and against the run's slowest single check.

    .venv/bin/python bench/morning.py [--runs 5] [--compare REF]

Starts the demo stack (``opscheck.testbed.demo``) and times whole processes, one of each per
round so that a busy machine slows every side alike, after one untimed warm-up run of each:
- ``pytest -m morning`` with the demo's host and HTTP targets (``localhost`` through
  ``local://``, ``ssh-box`` through an sshd on loopback, three HTTP(S) endpoints): every check
  judged and recorded, a JSON report written;
- the same runbook lines typed as an operator would: one process per line (curl, df, free,
  uptime, ssh ... ), nothing judged.
Each opscheck run's JSON report gives its slowest single check (the ``duration`` of a check:
for a check measured ahead, its measurement). Prints a Markdown table for bench/RESULTS.md
(wall time best and median, CPU time median) and the ratios of the medians with the issue's
goals: at least 1.5 times faster than the lines, at most the slowest check + 0.6 s.
``--compare REF`` also times the checkout of a git ref (``HEAD``, ``main~1``) on the same stack,
in turn with this one, so a change is measured against what it changes and not against another
hour's machine.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _timing import REPO, demo_stack

from opscheck.testbed.http import HttpTestbed
from opscheck.testbed.sshd import Sshd

OPSCHECK = "opscheck `pytest -m morning`, host + HTTP targets"
LINES = "runbook lines (host + HTTP), one process each, unjudged"
SLOWEST = "slowest single check of the opscheck run (JSON report)"
_KEPT = ("settings", "host", "http")  # the inventory's tables the runbook lines cover


def runbook_lines(bed: HttpTestbed, sshd: Sshd) -> list[str]:
    """The demo inventory's checks as the shell lines a runbook has (no judging, no report)."""
    ssh = (
        f"ssh -p {sshd.port} -i {sshd.identity_file} {sshd.ssh_extra_args} "
        "-o BatchMode=yes root@127.0.0.1"
    )
    curl = f"curl -sf --cacert {bed.ca_path} -o /dev/null"
    lines = ["df -h", "df -i", "free", "uptime", "nproc", "top -bn1 | head -5"]
    lines += [
        f"{ssh} {shlex.quote(c)}"
        for c in ("uname -n", "df -h", "df -i", "free", "uptime", "pgrep -x sshd", "ss -tln")
    ]
    lines += [f"{curl} {bed.url('https', '/health')}"] * 10
    lines += [
        f"curl -s {bed.url('https', '/health')} --cacert {bed.ca_path} | head -c 200",
        f"echo | openssl s_client -connect 127.0.0.1:{bed.url('https').rsplit(':', 1)[1]}"
        " 2>/dev/null | openssl x509 -noout -dates",
    ]
    lines += [f"{curl} {bed.url('http', '/health/ready')}"] * 5
    lines += [f"curl -s -o /dev/null -w '%{{http_code}}' {bed.url('http', '/auth')}"]
    return lines


def host_and_http(inventory: str) -> str:
    """The inventory's ``[settings]``, ``[[host]]`` and ``[[http]]`` tables (and their subtables),
    the targets the runbook lines check."""
    kept, keep = [], True
    for line in inventory.splitlines():
        header = line.split("#", 1)[0].strip()
        if header.startswith("["):
            keep = header.strip("[]").split(".", 1)[0].strip() in _KEPT
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n"


def export(ref: str, into: Path) -> Path:
    """The files of ``ref`` in ``into``, to run its suites as they were."""
    archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True)
    into.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    # This venv's pytest11 entry point imports opscheck.options: a checkout older than it lacks it.
    options = into / "opscheck" / "options.py"
    if not options.exists():
        options.write_text('"""Not in this checkout: a stand-in for the entry point."""\n')
    return into


def run(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + system of the process and its children) seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=False, cwd=cwd, env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def slowest_check(report: Path) -> tuple[float, str]:
    """The longest ``duration`` in a JSON report, with its test id."""
    tests = json.loads(report.read_text())["tests"]
    top = max(tests, key=lambda t: t["duration"])
    return top["duration"], top["id"].split("::")[-1]


def ratio_line(what: str, ours: float, theirs: float, goal: str) -> str:
    return f"| {what} | {ours:.2f} s | {theirs:.2f} s | {ours / theirs:.2f}× | {goal} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare", metavar="REF", help="also time this git ref, in turn")
    args = parser.parse_args()
    times: dict[str, tuple[list[float], list[float]]] = {}
    slowest: Counter[str] = Counter()
    with demo_stack() as (s, path, env), tempfile.TemporaryDirectory() as tmp:
        path.write_text(host_and_http(path.read_text()))
        report = Path(tmp) / "report.json"
        pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-m", "morning"]
        pytest_cmd += ["--inventory", str(path), "--thresholds", str(REPO / "thresholds.toml")]
        pytest_cmd += ["--json-report", str(report)]
        checkouts = {OPSCHECK: REPO}
        if args.compare:
            checkouts[f"the same at `{args.compare}`"] = export(args.compare, Path(tmp) / "ref")
        commands = {name: (pytest_cmd, root) for name, root in checkouts.items()}
        commands[LINES] = (["bash", "-c", "\n".join(runbook_lines(s.bed, s.sshd))], REPO)
        for command, cwd in commands.values():  # warm-up: page cache, ssh host keys, bytecode
            run(command, cwd, env)
        times = {name: ([], []) for name in [*commands, SLOWEST]}
        for _ in range(args.runs):
            for name, (command, cwd) in commands.items():
                report.unlink(missing_ok=True)
                wall, cpu = run(command, cwd, env)
                times[name][0].append(wall)
                times[name][1].append(cpu)
                if name == OPSCHECK:
                    took, test = slowest_check(report)
                    times[SLOWEST][0].append(took)
                    slowest[test] += 1
    print("| what | runs | best | median | CPU (median) |")
    print("|---|---|---|---|---|")
    for name, (walls, cpus) in times.items():
        shown = f"{statistics.median(cpus):.2f} s" if cpus else "–"
        print(
            f"| {name} | {len(walls)} | {min(walls):.2f} s | {statistics.median(walls):.2f} s "
            f"| {shown} |"
        )
    median = {name: statistics.median(walls) for name, (walls, _) in times.items()}
    print()
    print("| comparison (medians) | opscheck | reference | ratio | goal |")
    print("|---|---|---|---|---|")
    print(
        ratio_line(
            "morning host + HTTP checks vs the runbook lines",
            median[OPSCHECK],
            median[LINES],
            "≤ 0.67× (1.5× faster)",
        )
    )
    over = median[OPSCHECK] - median[SLOWEST]
    print(
        ratio_line(
            f"morning run vs its slowest single check (+{over:.2f} s)",
            median[OPSCHECK],
            median[SLOWEST],
            "≤ slowest + 0.6 s",
        )
    )
    for name in checkouts.keys() - {OPSCHECK}:
        print(ratio_line(f"{name} vs the runbook lines", median[name], median[LINES], "–"))
        print(ratio_line(f"this checkout vs {name}", median[OPSCHECK], median[name], "–"))
    print()
    print("slowest check: " + ", ".join(f"{test} ({n}×)" for test, n in slowest.most_common()))


if __name__ == "__main__":
    main()
