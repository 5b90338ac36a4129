"""Throughput of the log scanner on a multi-hundred-MB log, against the runbook's `grep -c`.

    .venv/bin/python bench/logs.py [--size-mb 500] [--runs 3]

Writes an application log of --size-mb covering 48 h (1 line in 100 an ERROR), then times, best
of N runs, the scanner as the checks run it (sent through testinfra's local backend, and for the
4 h window also through ssh to a local sshd):
- a window that covers the whole file: MB/s and lines/s, for a literal pattern (ERROR), a
  case-insensitive preset (errors), a many-literal preset (attacks); with GNU grep finding the
  candidate lines (as on Debian, RHEL, Ubuntu ...) and without it (BusyBox: Python alone);
- the last 4 h of the file (binary search to the window start, then read forward);
- `grep -c ERROR file` and `grep -ci error file`, the runbook's lines, for comparison.
The file is read from the page cache (it was just written): disk speed is not measured.
Prints Markdown rows for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import testinfra  # noqa: E402

from opscheck.config import LogsTarget  # noqa: E402
from opscheck.probes.logs import LogSource  # noqa: E402
from opscheck.testbed.sshd import Sshd  # noqa: E402

MB = 1000**2


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


def best(runs: int, measure: Any) -> tuple[float, dict[str, Any]]:
    """(best wall time, the scan result of that run)."""
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        answer = measure()
        results.append((time.perf_counter() - started, answer))
    return min(results, key=lambda r: r[0])


def scan(path: Path, host: Any, pattern: dict[str, Any]) -> dict[str, Any]:
    target = LogsTarget.model_validate({"name": "bench", "path": str(path), "patterns": [pattern]})
    return LogSource(target, host).open().counts()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp, Sshd(Path(tmp) / "sshd") as sshd:
        path = Path(tmp) / "api.log"
        size, lines = write_log(path, args.size_mb * MB)
        local = testinfra.get_host("local://")
        remote = testinfra.get_host(
            sshd.uri, ssh_identity_file=str(sshd.identity_file), ssh_extra_args=sshd.ssh_extra_args
        )
        whole = {"window": "30d"}
        for label, pattern in (
            ("pattern `ERROR` (a literal)", {"pattern": "ERROR"}),
            ("preset `errors` (case-insensitive words)", {"preset": "errors"}),
            ("preset `attacks` (24 literals, none present)", {"preset": "attacks"}),
        ):
            spec = {"name": "p", **whole, **pattern}
            wall, answer = best(args.runs, lambda spec=spec: scan(path, local, spec))
            host_seconds = answer["seconds"]
            rows.append(
                f"| whole file, {label} | {answer['patterns']['p']['count']} | "
                f"{wall:.2f} s | {answer['bytes'] / MB / host_seconds:.0f} MB/s | "
                f"{answer['lines'] / host_seconds / 1e6:.1f} M lines/s |"
            )
        # A host without GNU grep (BusyBox, BSD): the literals are found by Python's bytes.find.
        bare = Path(tmp) / "bin"
        bare.mkdir()
        (bare / "python3").symlink_to(sys.executable)
        (bare / "timeout").symlink_to(shutil.which("timeout") or "/usr/bin/timeout")
        path_before = os.environ["PATH"]
        os.environ["PATH"] = str(bare)
        try:
            for label, pattern in (
                ("pattern `ERROR`, no GNU grep on the host", {"pattern": "ERROR"}),
                ("preset `attacks`, no GNU grep on the host", {"preset": "attacks"}),
            ):
                spec = {"name": "p", **whole, **pattern}
                wall, answer = best(args.runs, lambda spec=spec: scan(path, local, spec))
                assert not answer["grep"]
                rows.append(
                    f"| whole file, {label} | {answer['patterns']['p']['count']} | "
                    f"{wall:.2f} s | {answer['bytes'] / MB / answer['seconds']:.0f} MB/s | "
                    f"{answer['lines'] / answer['seconds'] / 1e6:.1f} M lines/s |"
                )
        finally:
            os.environ["PATH"] = path_before
        recent = {"name": "p", "pattern": "ERROR", "window": "4h"}
        for label, host in (("local://", local), ("ssh:// (127.0.0.1)", remote)):
            wall, answer = best(args.runs, lambda host=host: scan(path, host, recent))
            rows.append(
                f"| last 4 h, pattern `ERROR`, {label} | {answer['patterns']['p']['count']} | "
                f"{wall:.2f} s | read {answer['bytes'] / MB:.0f} MB of {size / MB:.0f} MB | |"
            )
        for command in (["grep", "-c", "ERROR"], ["grep", "-ci", "error"]):
            wall, answer = best(
                args.runs,
                lambda command=command: subprocess.run(
                    [*command, str(path)], capture_output=True, text=True, check=False
                ).stdout.strip(),
            )
            rows.append(
                f"| runbook `{' '.join(command)} api.log` (whole file, no window) | {answer} | "
                f"{wall:.2f} s | {size / MB / wall:.0f} MB/s | |"
            )
    print(f"{size / MB:.0f} MB, {lines} lines, 48 h; best of {args.runs} runs\n")
    print("| what | lines found | wall time | throughput (on the host) | lines/s |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
