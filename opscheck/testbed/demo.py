"""``make demo``: start a local stack, run ``pytest -m morning --archive`` on it, show the report.

The stack is real: HTTP and HTTPS endpoints (with their own CA) and an sshd on 127.0.0.1, plus
this machine through ``local://``. One endpoint is deliberately past a warn level, so the report
shows what a warning looks like.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from opscheck.testbed.http import HttpTestbed
from opscheck.testbed.sshd import Sshd, toml_value

REPO = Path(__file__).resolve().parents[2]


def inventory(bed: HttpTestbed, sshd: Sshd) -> str:
    """The demo stack as an inventory: the runbook's morning lines against loopback."""
    return f"""\
[settings]
timeout = "3s"

[[host]]
name = "localhost"
uri = "local://"
cpu_sample = "500ms"

{
        sshd.host_block(
            "ssh-box",
            services=["sshd"],
            ports=[sshd.port],
            cpu_sample="500ms",
            reachable=[f"127.0.0.1:{sshd.port}"],
        )
    }

[[http]]
name = "api-health"
url = "{bed.url("https", "/health")}"
verify = {toml_value(bed.ca_path)}
json = {{ status = "healthy", "checks.database.status" = "up" }}
samples = 10

[http.json_limits.connections]   # 12 connections in use: past the demo's warn level of 10
warn = 10
crit = 80

[[http]]
name = "api-ready"
url = "{bed.url("http", "/health/ready")}"
contains = "ok"
samples = 5

[[http]]
name = "partner-api"
url = "{bed.url("http", "/auth")}"
expect_status = [401]              # only has to be up: 401 without credentials is fine
samples = 0
"""


def main() -> int:
    """Run the morning checks on the demo stack; 0 when the run completed (whatever it found)."""
    with (
        tempfile.TemporaryDirectory(prefix="opscheck-demo-") as tmp,
        HttpTestbed() as bed,
        Sshd(Path(tmp)) as sshd,
    ):
        path = Path(tmp) / "inventory.toml"
        path.write_text(inventory(bed, sshd))
        reports = REPO / "reports"
        before = set(reports.glob("*/*.html"))
        command = [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "morning",
            "--archive",
            "--inventory",
            str(path),
            "--thresholds",
            str(REPO / "thresholds.toml"),
        ]
        print("opscheck demo:", " ".join(command[1:]), flush=True)
        code = subprocess.run(command, cwd=REPO, check=False).returncode
        new = sorted(set(reports.glob("*/*.html")) - before)
    if code not in (0, 1) or not new:
        print(f"opscheck demo: the run did not complete (exit {code})", file=sys.stderr)
        return code or 1
    outcome = "all checks OK or WARN" if code == 0 else "some checks failed (see the report)"
    print(f"\nopscheck demo: {outcome}.\nReport: {new[-1].relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
