"""A fleet of ssh hosts: opscheck's midday host checks against the same commands in an ssh loop.

    .venv/bin/python bench/fleet.py [--hosts 200] [--sshd 4] [--runs 5] [--xdist 2]

Starts ``--sshd`` real OpenSSH servers on loopback (``opscheck.testbed.sshd``) and names
``--hosts`` ``[[host]]`` targets over them (``host001`` on the first, ``host002`` on the second
...: 50 names per server at the defaults, each its own login and ssh master, as separate machines
would be). Then times, median and best of ``--runs``:

- ``pytest -m midday suites/host``: 5 checks per host (reachable, disk, memory, load, CPU busy
  sampled over the default 1 s), one process, every value judged and recorded;
- with ``--xdist N`` also the same with ``-n N`` (a host's checks on one worker);
- the same commands as a plain ``ssh`` loop, nothing judged: one ``ssh`` per host carrying all
  its commands (``uname -n; df -P -k; cat /proc/meminfo /proc/loadavg; getconf …; head -n1
  /proc/stat; sleep 1; head -n1 /proc/stat``), one host after another (``--serial-runs``, 1 by
  default: ~1.3 s a host), and 16 at a time (``xargs -P 16``, opscheck's default concurrency).

For each run it also counts the logins the servers accepted (one per host is the goal: one ssh
master per host for the whole run); for opscheck the checks that passed (the reasons of those that
failed go to stderr), the CPU of the pytest process with its ssh clients and of the servers with
their sessions (on loopback the "remote" side shares the runner's cores: on a real fleet it runs
on the hosts), the peak RSS of the pytest process, and the ssh masters' memory (PSS, sampled while
the run is under way). ``--ssh-args "-o KexAlgorithms=curve25519-sha256"`` shows what OpenSSH 9's
post-quantum key exchange costs (~0.09 s of client CPU per login, against ~0.013 s).

The servers allow 200 unauthenticated connections at once (``MaxStartups 200``) and 20 sessions
per connection (``MaxSessions 20``): 50 names per server is not what a real host sees. With
``--sshd-defaults`` they keep OpenSSH's ``MaxStartups 10:30:100``, ``MaxSessions 10``: then
logins beyond 10 at once to one server are dropped at random, as they are behind a bastion.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path

from _timing import REPO

from opscheck.testbed import CALM_HOST_THRESHOLDS
from opscheck.testbed.sshd import Sshd

CHECKS = 5  # of `-m midday` in suites/host, per host
LOOP = (
    "uname -n; df -P -k; cat /proc/meminfo /proc/loadavg; getconf _NPROCESSORS_ONLN; "
    "head -n1 /proc/stat; sleep 1; head -n1 /proc/stat"
)
THRESHOLDS = CALM_HOST_THRESHOLDS


class FleetSshd(Sshd):
    """A testbed sshd with the settings a fleet of names on one server needs (or sshd's own)."""

    def __init__(self, directory: Path, settings: dict[str, str]) -> None:
        super().__init__(directory)
        self.settings = settings

    def command(self) -> list[str]:
        extra = [part for k, v in self.settings.items() for part in ("-o", f"{k}={v}")]
        return [*super().command(), *extra]

    def logins(self) -> int:
        return self.log_file.read_text().count("Accepted publickey")

    def cpu(self) -> float:
        """CPU seconds of the server and of its ended sessions (the "remote" side of a run)."""
        assert self.process is not None
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def inventory(servers: list[FleetSshd], hosts: int) -> str:
    blocks = []
    for n in range(hosts):
        sshd = servers[n % len(servers)]
        blocks.append(sshd.host_block(f"host{n + 1:03d}"))
    return "\n".join(blocks)


def add_ssh_args(servers: list[FleetSshd], extra: str) -> None:
    """Give every client of these servers (opscheck's and the loop's) more ssh options."""
    for server in servers:
        server.ssh_extra_args = f"{server.ssh_extra_args} {extra}".strip()


def loop_script(servers: list[FleetSshd], hosts: int, parallel: int) -> str:
    """The loop an operator would write: one ssh per host, ``parallel`` at a time."""
    lines = []
    for n in range(hosts):
        s = servers[n % len(servers)]
        lines.append(f"-p {s.port} -i {s.identity_file} {s.ssh_extra_args} -o BatchMode=yes")
    listing = "\n".join(lines)
    quoted = LOOP.replace("'", "'\\''")
    if parallel <= 1:
        each = f"while read -r args; do ssh -n $args root@127.0.0.1 '{quoted}' >/dev/null; done"
    else:
        ssh = 'ssh -n "$@" root@127.0.0.1 "$0" >/dev/null || :'  # an exit 255 stops xargs
        each = f"xargs -P {parallel} -L 1 sh -c '{ssh}' '{quoted}'"
    return f"{each} <<'EOF'\n{listing}\nEOF\n"


def _parent(pid: str) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]


def _pss_of_masters(ancestor: int) -> tuple[int, int]:
    """(count, total PSS in KiB) of the live ssh masters started by ``ancestor``'s child."""
    count = total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            if not argv[0].endswith(b"ssh") or b"ControlMaster=yes" not in argv:
                continue
            lineage = [proc.name]
            for _ in range(3):  # pytest's (or an xdist worker's), under /usr/bin/time
                lineage.append(_parent(lineage[-1]))
            if str(ancestor) not in lineage:
                continue
            rollup = (proc / "smaps_rollup").read_text()
        except OSError:
            continue
        match = re.search(r"^Pss:\s+(\d+) kB", rollup, re.M)
        if match:
            count += 1
            total += int(match.group(1))
    return count, total


def run_opscheck(command: list[str], servers: list[FleetSshd], report: Path) -> dict[str, float]:
    """One run: wall time, logins, passed checks, peak RSS, the masters' peak PSS."""
    before = sum(s.logins() for s in servers)
    remote_before = sum(s.cpu() for s in servers)
    peak = [0, 0]
    done = threading.Event()
    report.unlink(missing_ok=True)
    start = time.perf_counter()
    process = subprocess.Popen(
        ["/usr/bin/time", "-f", "%M %U %S", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )

    def sample() -> None:
        while not done.wait(0.5):
            count, pss = _pss_of_masters(process.pid)
            if pss > peak[1]:
                peak[:] = [count, pss]

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, stderr = process.communicate()
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    result = subprocess.CompletedProcess(command, process.returncode, "", stderr)
    rss_kib, user, system = result.stderr.strip().splitlines()[-1].split()
    passed = 0
    if report.exists():
        tests = json.loads(report.read_text())["tests"]
        passed = sum(1 for t in tests if t.get("outcome") in ("passed", "warned"))
        reasons = Counter(
            re.sub(r"^host\d+: |port \d+", "", t["reason"])
            for t in tests
            if t.get("outcome") == "failed" and "(see " not in t.get("reason", "")
        )
        for reason, count in reasons.most_common(3):
            print(f"  {count} × {reason}", file=sys.stderr)
    return {
        "wall": wall,
        "logins": sum(s.logins() for s in servers) - before,
        "passed": passed,
        "rss_mib": int(rss_kib) / 1024,
        "cpu": float(user) + float(system),
        "remote_cpu": sum(s.cpu() for s in servers) - remote_before,
        "masters": peak[0],
        "masters_pss_mib": peak[1] / 1024,
    }


def run_loop(script: str, servers: list[FleetSshd], logins: list[int]) -> float:
    """One run of a shell loop: its wall time; the logins it made go to ``logins``."""
    before = sum(s.logins() for s in servers)
    start = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=False, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    logins.append(sum(s.logins() for s in servers) - before)
    return wall


def row(name: str, times: list[float], reference: float | None) -> str:
    median = statistics.median(times)
    ratio = f"{median / reference:.2f}×" if reference else "—"
    return f"| {name} | {len(times)} | {min(times):.2f} s | {median:.2f} s | {ratio} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=200)
    parser.add_argument("--sshd", type=int, default=4, help="servers the hosts are spread over")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--serial-runs", type=int, default=1, help="runs of the one-by-one loop")
    parser.add_argument("--xdist", type=int, default=0, metavar="N", help="also time -n N")
    parser.add_argument("--sshd-defaults", action="store_true", help="MaxStartups 10:30:100")
    parser.add_argument("--pytest-args", default="", help="extra pytest arguments")
    parser.add_argument(
        "--ssh-args",
        default="",
        help="extra ssh options for every client, e.g. '-o KexAlgorithms=curve25519-sha256'",
    )
    args = parser.parse_args()
    settings = {} if args.sshd_defaults else {"MaxStartups": "200", "MaxSessions": "20"}
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        folder = Path(tmp)
        servers = [
            stack.enter_context(FleetSshd(folder / f"sshd{i}", settings)) for i in range(args.sshd)
        ]
        add_ssh_args(servers, args.ssh_args)
        inv, thr, report = folder / "inventory.toml", folder / "thresholds.toml", folder / "r.json"
        inv.write_text(inventory(servers, args.hosts))
        thr.write_text(THRESHOLDS)
        base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "midday"]
        base += ["--inventory", str(inv), "--thresholds", str(thr), "--json-report", str(report)]
        base += [*args.pytest_args.split(), "suites/host"]
        commands = {"opscheck `pytest -m midday suites/host`": base}
        if args.xdist:
            commands[f"opscheck, `-n {args.xdist}`"] = [*base, "-n", str(args.xdist)]
        loops = {
            "plain ssh loop, 16 hosts at a time (xargs -P 16)": loop_script(
                servers, args.hosts, 16
            ),
            "plain ssh loop, one host after another": loop_script(servers, args.hosts, 1),
        }
        for script in loops.values():  # warm-up: page cache, bytecode, sshd's first forks
            subprocess.run(["bash", "-c", script.replace("sleep 1", "true")], check=False)
        subprocess.run(base, capture_output=True, cwd=REPO, check=False)
        times: dict[str, list[float]] = {name: [] for name in [*commands, *loops]}
        details: dict[str, list[dict[str, float]]] = {name: [] for name in commands}
        logins: dict[str, list[int]] = {name: [] for name in loops}
        for _ in range(args.runs):
            for name, command in commands.items():
                measured = run_opscheck(command, servers, report)
                times[name].append(measured["wall"])
                details[name].append(measured)
            name = next(iter(loops))
            times[name].append(run_loop(loops[name], servers, logins[name]))
        name = list(loops)[1]
        for _ in range(args.serial_runs):
            times[name].append(run_loop(loops[name], servers, logins[name]))
        if not times[name]:
            del times[name]
    parallel_loop = statistics.median(times[next(iter(loops))])
    where = f"{args.sshd} sshd on 127.0.0.1, {settings or 'sshd defaults'}"
    where += f", ssh {args.ssh_args}" if args.ssh_args else ""
    print(f"{args.hosts} hosts × {CHECKS} checks, {where}")
    print("| what | runs | best | median | vs ssh loop, 16 at a time |")
    print("|---|---|---|---|---|")
    for name, walls in times.items():
        print(row(name, walls, parallel_loop))
    print()
    print(
        "| run | logins / host | checks passed | CPU: pytest + ssh clients | CPU: sshd side "
        "| peak RSS | ssh masters (peak) | their PSS |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, counts in logins.items():
        for count in counts:
            print(f"| {name} | {count / args.hosts:.2f} | (not judged) | | | | | |")
    for name, runs in details.items():
        for d in runs:
            print(
                f"| {name} | {d['logins'] / args.hosts:.2f} | {d['passed']:.0f} of "
                f"{args.hosts * CHECKS} | {d['cpu']:.1f} s | {d['remote_cpu']:.1f} s "
                f"| {d['rss_mib']:.0f} MiB | {d['masters']:.0f} | {d['masters_pss_mib']:.0f} MiB |"
            )


if __name__ == "__main__":
    main()
