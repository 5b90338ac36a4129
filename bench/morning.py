"""Wall time of the morning checks on the demo stack: opscheck against the runbook's commands.

    .venv/bin/python bench/morning.py [--runs 5]

Starts the demo stack (``opscheck.testbed.demo``), then times, best and median of N runs:
- ``pytest -m morning`` with the demo inventory (one process, every check judged and recorded);
- the same runbook lines typed as an operator would: one process per line (curl, df, free,
  uptime, ssh ... ), nothing judged.
Prints a Markdown table row for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from opscheck.testbed.demo import inventory, stack  # noqa: E402
from opscheck.testbed.http import HttpTestbed  # noqa: E402
from opscheck.testbed.sshd import Sshd  # noqa: E402


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


def timed(command: list[str] | str, runs: int, **kwargs: object) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, capture_output=True, check=False, **kwargs)  # type: ignore[call-overload]
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, stack(Path(tmp)) as s:
        path = Path(tmp) / "inventory.toml"
        path.write_text(inventory(s))
        bed, sshd = s.bed, s.sshd
        pytest_cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-m",
            "morning",
            "--inventory",
            str(path),
            "--thresholds",
            str(REPO / "thresholds.toml"),
        ]
        opscheck = timed(pytest_cmd, args.runs, cwd=REPO, env={**os.environ, **s.env})
        script = "\n".join(runbook_lines(bed, sshd))
        manual = timed(["bash", "-c", script], args.runs)
    print("| what | runs | best | median |")
    print("|---|---|---|---|")
    for name, times in (
        ("opscheck `pytest -m morning` (demo stack)", opscheck),
        ("runbook lines, one process each, unjudged", manual),
    ):
        print(f"| {name} | {len(times)} | {min(times):.2f} s | {statistics.median(times):.2f} s |")


if __name__ == "__main__":
    main()
