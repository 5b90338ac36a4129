"""A mass outage and a large inventory: how long the report takes, and what collection costs.

    .venv/bin/python bench/outage.py [--targets 2000] [--runs 5] [--sizes 200,2000,10000]

1. **Outage**: ``--targets`` targets nobody answers for, half ``[[http]]`` endpoints and half
   ``[[host]]`` ssh hosts, all on closed loopback ports (connection refused at once, so what is
   measured is opscheck and pytest, not a network timeout). ``pytest -m morning`` runs every
   HTTP and host check of the morning: each target's connectivity check fails with the real
   error, its other checks at once. Prints wall time, CPU, peak RSS, and the report's size: how
   many entries under FAILURES and ``FAILED`` lines (one per target is the goal) and the
   summary line. ``--without`` also times the same run without ``opscheck.outage`` (pytest's own
   failure summary: one entry per failed check, and quadratic in them — minutes at 2,000).
2. **Collection**: ``pytest --collect-only`` of ``[[host]]`` inventories of 200 / 2,000 / 10,000
   ``local://`` targets, against plain pytest collecting test functions of the same names with
   the same parametrization (no plugin, no inventory): the overhead opscheck adds per target.

Medians of ``--runs``; the outage's peak RSS is ``/usr/bin/time``'s maximum resident set size.
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from _timing import REPO

from opscheck.testbed import free_port

COUNTS = re.compile(r"\d+ (?:passed|failed|errors?|skipped|unreachable|deselected)")


def outage_inventory(targets: int, port: int) -> str:
    """``targets`` targets on a closed port: half HTTP endpoints, half ssh hosts."""
    blocks = []
    for n in range(targets):
        if n % 2:
            blocks.append(f'[[host]]\nname = "host{n:05d}"\nuri = "ssh://root@127.0.0.1:{port}"\n')
        else:
            blocks.append(
                f'[[http]]\nname = "api{n:05d}"\nurl = "http://127.0.0.1:{port}/health"\n'
            )
    return "\n".join(blocks)


def timed(command: list[str], cwd: Path) -> tuple[float, float, float, str]:
    """Wall seconds, CPU seconds, peak RSS (MiB) and the output of one run."""
    start = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M %U %S", *command], capture_output=True, text=True, cwd=cwd
    )
    wall = time.perf_counter() - start
    rss, user, system = result.stderr.strip().splitlines()[-1].split()
    return wall, float(user) + float(system), int(rss) / 1024, result.stdout


def report_size(output: str) -> str:
    failures = output.split("= FAILURES =", 1)[1] if "= FAILURES =" in output else ""
    entries = len(re.findall(r"^_{3,} .+ _{3,}$", failures, re.M))
    failed_lines = len(re.findall(r"^FAILED ", output, re.M))
    line = ", ".join(COUNTS.findall(output.strip().splitlines()[-1])) if output.strip() else "?"
    return f"{entries} | {failed_lines} | {line}"


def outage(args: argparse.Namespace, folder: Path) -> None:
    inventory = folder / "outage.toml"
    inventory.write_text(outage_inventory(args.targets, free_port()))
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "morning"]
    command += ["--inventory", str(inventory), "--thresholds", str(REPO / "thresholds.toml")]
    command += ["suites/http", "suites/host"]
    variants = {f"opscheck, {args.targets} targets unreachable": command}
    if args.without:
        variants["the same without opscheck.outage (pytest's summary)"] = [
            *command,
            "-p",
            "no:opscheck.outage",
        ]
    print(f"\n### Outage: {args.targets} targets on a closed port (half HTTP, half ssh)\n")
    head = "| run | runs | wall (median) | CPU | peak RSS | FAILURES entries | FAILED lines |"
    print(f"{head} summary |")
    print("|---|---|---|---|---|---|---|---|")
    for name, cmd in variants.items():
        runs = [timed(cmd, REPO) for _ in range(args.runs if "without" not in name else 1)]
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        print(
            f"| {name} | {len(runs)} | {wall:.2f} s | {cpu:.2f} s | {rss:.0f} MiB | "
            f"{report_size(runs[-1][3])} |"
        )


def plain_suite(nodeids: list[str], into: Path) -> None:
    """Test modules with the functions opscheck collected, each parametrized over the same ids
    (``ids=`` the target names), and nothing else: what pytest alone costs for them."""
    functions: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for nodeid in nodeids:
        path, _, name = nodeid.partition("::")
        function, _, param = name.partition("[")
        functions[Path(path).name].setdefault(function, []).append(param.rstrip("]"))
    into.mkdir(parents=True, exist_ok=True)
    (into / "pytest.ini").write_text("[pytest]\n")
    for module, tests in functions.items():
        lines = ["import pytest", ""]
        for function, ids in tests.items():
            lines.append(f"IDS_{function} = {ids!r}")
            lines.append(f'@pytest.mark.parametrize("target", IDS_{function}, ids=IDS_{function})')
            lines.append(f"def {function}(target):\n    pass\n")
        (into / module).write_text("\n".join(lines) + "\n")


def collection(args: argparse.Namespace, folder: Path) -> None:
    print("\n### Collection: `--collect-only`, [[host]] targets on local://\n")
    print("| targets | tests | opscheck (median) | plain pytest (median) | overhead | ratio |")
    print("|---|---|---|---|---|---|")
    for size in args.sizes:
        inventory = folder / f"hosts-{size}.toml"
        inventory.write_text("\n".join(f'[[host]]\nname = "web{n:05d}"\n' for n in range(size)))
        ours = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"]
        ours += ["--inventory", str(inventory), "suites/host"]
        listing = subprocess.run(ours, capture_output=True, text=True, cwd=REPO).stdout
        nodeids = [line for line in listing.splitlines() if "::" in line and "[" in line]
        plain_dir = folder / f"plain-{size}"
        plain_suite(nodeids, plain_dir)
        plain = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider"]
        plain += [str(plain_dir)]
        timed(ours, REPO), timed(plain, plain_dir)  # warm-up: bytecode, page cache
        ours_t = statistics.median(timed(ours, REPO)[0] for _ in range(args.runs))
        plain_t = statistics.median(timed(plain, plain_dir)[0] for _ in range(args.runs))
        print(
            f"| {size} | {len(nodeids)} | {ours_t:.2f} s | {plain_t:.2f} s | "
            f"+{ours_t - plain_t:.2f} s | {ours_t / plain_t:.2f}× |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--sizes", type=lambda s: [int(x) for x in s.split(",")], default=[200, 2000, 10000]
    )
    parser.add_argument("--without", action="store_true", help="also time pytest's own summary")
    parser.add_argument("--skip-outage", action="store_true")
    parser.add_argument("--skip-collection", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_outage:
            outage(args, Path(tmp))
        if not args.skip_collection:
            collection(args, Path(tmp))


if __name__ == "__main__":
    main()
