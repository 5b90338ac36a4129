"""Wall time of the morning checks on the demo stack: opscheck against the runbook's commands.

    .venv/bin/python bench/morning.py [--runs 5]

Starts the demo stack (``opscheck.testbed.demo``), then times, best and median of N runs:
- ``pytest -m morning`` with the demo inventory (one process, every check judged and recorded);
- the same runbook lines typed as an operator would: one process per line (curl, df, free,
  uptime, ssh ... ), nothing judged.
Prints a Markdown table row for bench/RESULTS.md. ``--compare REF`` also times the checkout of a
git ref (``HEAD``, ``main~1``) on the same stack, run for run in turn with this one, so a change is
measured against what it changes and not against another hour's machine.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

from _timing import REPO, demo_stack, print_table, timed

from opscheck.testbed.http import HttpTestbed
from opscheck.testbed.sshd import Sshd


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


def export(ref: str, into: Path) -> Path:
    """The files of ``ref`` in ``into``, to run its suites as they were."""
    archive = subprocess.run(["git", "archive", ref], cwd=REPO, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    # This venv's pytest11 entry point imports opscheck.options: a checkout older than it lacks it.
    options = into / "opscheck" / "options.py"
    if not options.exists():
        options.write_text('"""Not in this checkout: a stand-in for the entry point."""\n')
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--compare", metavar="REF", help="also time this git ref, in turn")
    args = parser.parse_args()
    with demo_stack() as (s, path, env), tempfile.TemporaryDirectory() as tmp:
        pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-m", "morning"]
        pytest_cmd += ["--inventory", str(path), "--thresholds", str(REPO / "thresholds.toml")]
        script = "\n".join(runbook_lines(s.bed, s.sshd))
        rows: dict[str, list[float]] = {"opscheck `pytest -m morning` (demo stack)": []}
        checkouts = {"opscheck `pytest -m morning` (demo stack)": REPO}
        if args.compare:
            name = f"the same at `{args.compare}`"
            rows[name], checkouts[name] = [], export(args.compare, Path(tmp))
        for _ in range(args.runs):
            for name, root in checkouts.items():
                rows[name] += timed(pytest_cmd, 1, env, cwd=root)
        rows["runbook lines, one process each, unjudged"] = timed(
            ["bash", "-c", script], args.runs, env
        )
        print_table(rows)


if __name__ == "__main__":
    main()
