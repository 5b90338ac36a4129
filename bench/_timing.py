"""What the benchmark scripts share: the demo stack with its inventory, timing, the table."""

from __future__ import annotations

import contextlib
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opscheck.testbed.demo import Stack, inventory, stack  # noqa: E402


@contextlib.contextmanager
def demo_stack() -> Iterator[tuple[Stack, Path, dict[str, str]]]:
    """The running demo stack, its inventory file and the environment holding its secrets."""
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp)) as s:
        path = Path(tmp) / "inventory.toml"
        path.write_text(inventory(s))
        env = {**os.environ, **s.env, "PGPASSWORD": s.env["OPSCHECK_DEMO_PG_PASSWORD"]}
        yield s, path, env


def timed(command: list[str], runs: int, env: dict[str, str], cwd: Path = REPO) -> list[float]:
    """Wall times of ``runs`` runs of ``command`` (from the repository), output discarded."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False, cwd=cwd, env=env)
        times.append(time.perf_counter() - start)
    return times


def print_table(rows: dict[str, list[float]]) -> None:
    """The Markdown table bench/RESULTS.md keeps: best and median per row."""
    print("| what | runs | best | median |")
    print("|---|---|---|---|")
    for name, times in rows.items():
        print(f"| {name} | {len(times)} | {min(times):.2f} s | {statistics.median(times):.2f} s |")


def interleaved(
    commands: dict[str, list[str]], runs: int, env: dict[str, str], warm_up: bool = False
) -> dict[str, tuple[list[float], list[float]]]:
    """Wall and CPU (user + system, children included) seconds of each command, ``runs`` rounds
    of one run each in turn (after one untimed run of each with ``warm_up``)."""
    if warm_up:
        for command in commands.values():
            subprocess.run(command, capture_output=True, check=False, cwd=REPO, env=env)
    times: dict[str, tuple[list[float], list[float]]] = {n: ([], []) for n in commands}
    for _ in range(runs):
        for name, command in commands.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(command, capture_output=True, check=False, cwd=REPO, env=env)
            wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            times[name][0].append(wall)
            times[name][1].append(cpu)
    return times


def with_plugin(command: list[str], env: dict[str, str], name: str, source: str) -> str:
    """The stdout of one run of ``command`` with the pytest plugin ``source`` loaded as ``name``
    (``-p name -s``): a bench's counter of what the run sends."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / f"{name}.py").write_text(source)
        path = os.pathsep.join(filter(None, [tmp, env.get("PYTHONPATH")]))
        done = subprocess.run(
            [*command, "-p", name, "-s"],
            capture_output=True,
            text=True,
            check=False,
            cwd=REPO,
            env={**env, "PYTHONPATH": path},
        )
    return done.stdout
