"""Host probes: a testinfra ``host`` in, ``Measurement``s out. Read-only commands only."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from opscheck.judge import Measurement, ProbeError
from opscheck.units import format_value

if TYPE_CHECKING:
    from testinfra.host import Host

    from opscheck.config import HostTarget


def _run(host: Host, command: str) -> str:
    result = host.run(command)
    if result.rc != 0:
        raise ProbeError(f"`{command}` exited {result.rc}: {result.stderr.strip()[:300]}")
    return str(result.stdout)


def reachable(host: Host, target: HostTarget) -> Measurement:
    """The host answers a command (``uname -n``) through its backend."""
    name = _run(host, "uname -n").strip()
    return Measurement.fact(True, f"{target.uri} answers as {name}", "reachable")


def _df(host: Host, flag: str, mounts: list[str]) -> list[tuple[str, int, int, int]]:
    """(mount, used, available, total) of ``df -P``; real file systems unless mounts are named."""
    command = " ".join(["df", "-P", flag, *(shlex.quote(m) for m in mounts)])
    result = host.run(command)
    rows = []
    for line in result.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 6 or not all(p.isdigit() for p in parts[1:4]):
            continue  # file systems without inode counts show "-"
        source, mount = parts[0], " ".join(parts[5:])
        total, used, available = int(parts[1]), int(parts[2]), int(parts[3])
        if not mounts and not (source.startswith("/") or mount == "/"):
            continue  # tmpfs, overlay layers, proc: not the disks an operator watches
        rows.append((mount, used, available, total))
    # df exits 1 when one mount of many cannot be read (a stale NFS, a FUSE mount of another
    # user): measure the rest, unless a mount the operator named is the one that failed.
    if result.rc != 0 and (mounts or not rows):
        raise ProbeError(f"`{command}` exited {result.rc}: {result.stderr.strip()[:300]}")
    seen: set[str] = set()
    return [r for r in rows if not (r[0] in seen or seen.add(r[0]))]  # type: ignore[func-returns-value]


def _used_pct(used: int, available: int) -> float:
    # As df's Use%: of the space users can have. Blocks reserved for root count as neither, so
    # the disk is "100 %" when writes start to fail, not at 95 % of the raw size.
    return 100.0 * used / (used + available) if used + available else 0.0


def disk_used_pct(host: Host, target: HostTarget) -> list[Measurement]:
    """Space used per mount of ``mounts`` (all real disks without it), as ``df -h`` shows it."""
    measurements = []
    for mount, used, available, total in _df(host, "-k", target.mounts):
        if not total:
            continue
        pct = _used_pct(used, available)
        size = f"{format_value(used * 1024, 'size')} of {format_value(total * 1024, 'size')}"
        measurements.append(Measurement(pct, subject=mount, text=f"{pct:.1f} % used ({size})"))
    return measurements


def inode_used_pct(host: Host, target: HostTarget) -> list[Measurement]:
    """Inodes used per mount (``df -i``); file systems without inode counts are left out."""
    measurements = []
    for mount, used, available, total in _df(host, "-i", target.mounts):
        if not total:
            continue
        pct = _used_pct(used, available)
        text = f"{pct:.1f} % inodes used ({used} of {total})"
        measurements.append(Measurement(pct, subject=mount, text=text))
    return measurements


def meminfo(host: Host) -> dict[str, int]:
    """``/proc/meminfo`` in bytes."""
    values = {}
    for line in host.file("/proc/meminfo").content_string.splitlines():
        key, _, rest = line.partition(":")
        number = rest.split()
        if number and number[0].isdigit():
            values[key] = int(number[0]) * 1024
    return values


def memory_used_pct(host: Host) -> Measurement:
    """Memory in use. MemAvailable, not MemFree: page cache is reclaimable and is not pressure."""
    info = meminfo(host)
    total, available = info["MemTotal"], info.get("MemAvailable", info.get("MemFree", 0))
    used = total - available
    pct = 100.0 * used / total
    return Measurement(
        pct,
        text=f"{pct:.1f} % memory used "
        f"({format_value(used, 'size')} of {format_value(total, 'size')})",
    )


def cpu_count(host: Host) -> int:
    """Online CPUs of the host."""
    return max(1, int(_run(host, "getconf _NPROCESSORS_ONLN").strip() or 1))


def load_per_core(host: Host) -> Measurement:
    """1-minute load average divided by the number of online CPUs."""
    load1, load5, load15 = (float(x) for x in host.file("/proc/loadavg").content_string.split()[:3])
    cores = cpu_count(host)
    return Measurement(
        load1 / cores,
        text=f"load {load1:.2f} on {cores} cores ({load1 / cores:.2f} per core)",
        detail=f"load average 1/5/15 min: {load1} {load5} {load15}",
    )


def cpu_busy_pct(host: Host, target: HostTarget) -> Measurement:
    """CPU busy % between two readings of /proc/stat ``cpu_sample`` seconds apart."""
    sample_seconds = target.cpu_sample
    out = _run(host, f"head -n1 /proc/stat; sleep {sample_seconds:g}; head -n1 /proc/stat")
    first, second = ([int(x) for x in line.split()[1:]] for line in out.splitlines()[:2])
    deltas = [b - a for a, b in zip(first, second, strict=False)]
    idle = deltas[3] + (deltas[4] if len(deltas) > 4 else 0)  # idle + iowait
    total = sum(deltas[:8])  # guest time is already counted in user/nice
    pct = 0.0 if total <= 0 else 100.0 * (total - idle) / total
    return Measurement(pct, text=f"CPU {pct:.1f} % busy over {sample_seconds:g} s")


def _diskstats(text: str) -> tuple[float, dict[str, list[int]]]:
    """``/proc/uptime`` then ``/proc/diskstats``: the uptime, and each device's counters."""
    lines = text.splitlines()
    devices = {}
    for line in lines[1:]:
        fields = line.split()
        if len(fields) >= 14:
            devices[fields[2]] = [int(x) for x in fields[3:14]]
    return float(lines[0].split()[0]), devices


def disk_busy_pct(host: Host, target: HostTarget) -> list[Measurement]:
    """Per disk of ``disks``: the share of ``io_sample`` seconds it had I/O in flight (iostat's
    %util, /proc/diskstats' io_ticks), with its reads, writes and average wait (await)."""
    seconds = target.io_sample
    read = "cat /proc/uptime /proc/diskstats"
    out = _run(host, f"{read}; echo --; sleep {seconds:g}; {read}")
    first, _, second = out.partition("--\n")
    (up0, before), (up1, after) = _diskstats(first), _diskstats(second)
    missing = [name for name in target.disks if name not in before or name not in after]
    if missing:
        raise ProbeError(f"not in /proc/diskstats: {', '.join(missing)} (no such block device)")
    elapsed = max(up1 - up0, 0.001)  # the real interval, sleep and the commands around it
    measurements = []
    for name in target.disks:
        delta = [b - a for a, b in zip(before[name], after[name], strict=True)]
        reads, writes, ticks = delta[0], delta[4], delta[9]
        busy = min(100.0, ticks / (elapsed * 10))  # io_ticks in ms: / (elapsed s * 1000) * 100
        waited = (delta[3] + delta[7]) / (reads + writes) if reads + writes else 0.0
        text = (
            f"{busy:.1f} % busy over {elapsed:.1f} s ({reads} reads, {writes} writes, "
            f"{waited:.1f} ms average wait)"
        )
        measurements.append(Measurement(busy, subject=name, text=text))
    return measurements


def uptime(host: Host) -> Measurement:
    """Seconds since boot (``/proc/uptime``)."""
    seconds = float(host.file("/proc/uptime").content_string.split()[0])
    return Measurement(seconds, text=f"up {format_value(seconds, 'duration')}")


def _every(states: list[tuple[bool, str]], expected: str, all_ok: str = "") -> Measurement:
    """One yes/no answer for several: those that are not, else ``all_ok`` (else every one)."""
    bad = [text for ok, text in states if not ok]
    shown = bad or ([all_ok] if all_ok else [text for _, text in states])
    return Measurement.fact(not bad, "; ".join(shown), expected)


def services_running(host: Host, target: HostTarget) -> Measurement:
    """Every service of ``services`` runs: through systemd where it runs, else by process name.

    Without systemd (containers, hand-started daemons) ``host.service`` reports every daemon as
    stopped, so the process table decides: one ``ps`` for all names.
    """
    names = target.services
    expected = "running: " + ", ".join(names)
    if host.file("/run/systemd/system").is_directory:
        running = [bool(host.service(name).is_running) for name in names]
        return _every(
            [
                (ok, f"{name}: running (systemd)" if ok else f"{name}: not running (systemd unit)")
                for name, ok in zip(names, running, strict=True)
            ],
            expected,
        )
    commands = _run(host, "ps -A -o comm=").splitlines()
    states = []
    for name in names:
        comm = name.removesuffix(".service")
        count = sum(1 for c in commands if c.strip() in (comm, comm[:15]))  # comm is cut to 15
        states.append(
            (True, f"{name}: {count} process{'es' if count > 1 else ''}")
            if count
            else (False, f"{name}: not running (no process named {comm})")
        )
    return _every(states, expected)


def ports_listening(host: Host, target: HostTarget) -> Measurement:
    """Every entry of ``ports`` has a listener, from one ``ss -l`` (or ``netstat``) reading.

    A bare port (``5432`` or ``tcp://5432``) listens when any address has it: testinfra alone
    would demand both 0.0.0.0 and ::, and call a daemon bound to 127.0.0.1 closed.
    """
    from testinfra.modules.socket import parse_socketspec

    any_address = set()
    for spec in host.socket.get_listening_sockets():
        protocol, _, address = spec.partition("://")
        if protocol != "unix":
            any_address.add((protocol, int(address.rsplit(":", 1)[1])))
    closed = []
    for port in target.ports:
        spec = f"tcp://{port}" if isinstance(port, int) or str(port).isdigit() else str(port)
        try:
            protocol, address, number = parse_socketspec(spec)
        except RuntimeError as exc:  # testinfra's word for a malformed spec
            hint = "expected 5432 or tcp://127.0.0.1:5432"
            raise ProbeError(f"ports: {port!r}: {exc} ({hint})") from None
        if protocol != "unix" and address is None:
            ok = (protocol, number) in any_address
        else:
            ok = bool(host.socket(spec).is_listening)
        if not ok:
            closed.append(str(port))
    return Measurement.fact(
        not closed,
        f"not listening: {', '.join(closed)}" if closed else "all listening",
        "listening: " + ", ".join(str(p) for p in target.ports),
    )


def log_dir_sizes(host: Host, target: HostTarget) -> list[Measurement]:
    """Disk space under each directory of ``log_dirs`` (``du -s``), counted in bytes."""
    return [_dir_size(host, path) for path in target.log_dirs]


def _dir_size(host: Host, path: str) -> Measurement:
    result = host.run(f"du -sk {shlex.quote(path)}")
    if result.rc != 0 and not result.stdout.strip():
        raise ProbeError(f"{path}: {result.stderr.strip()[:300] or 'cannot be read'}")
    size = int(result.stdout.split()[0]) * 1024
    return Measurement(size, subject=path, text=format_value(size, "size"))


def reachable_addresses(host: Host, target: HostTarget, timeout: float) -> Measurement:
    """Every ``host:port`` of ``reachable`` accepts a TCP connect from the host itself, as ``nc
    -z`` does. All connects run at once in one command: dead ones cost one timeout together.
    """
    addresses = target.reachable
    checks = []
    for index, address in enumerate(addresses):
        name, _, port = address.rpartition(":")
        connect = shlex.quote(f"exec 3<>/dev/tcp/{name.strip('[]')}/{int(port)}")
        # ${out##*: } keeps the reason of bash's "bash: connect: Connection refused".
        checks.append(
            f"(out=$(timeout {timeout:g} bash -c {connect} 2>&1); "
            f'echo "{index} $? ${{out##*: }}") &'
        )
    out = _run(host, "bash -c " + shlex.quote(" ".join([*checks, "wait"])))
    results: dict[int, tuple[int, str]] = {}
    for line in out.splitlines():
        fields = line.split(" ", 2)
        results[int(fields[0])] = (int(fields[1]), fields[2].strip() if len(fields) > 2 else "")
    states = []
    for index, address in enumerate(addresses):
        rc, why = results.get(index, (-1, "no answer from the check"))
        if rc == 0:
            states.append((True, f"{address} reachable"))
        else:
            reason = f"timed out after {format_value(timeout, 'duration')}" if rc == 124 else why
            states.append((False, f"{address} not reachable ({reason or 'refused'})"))
    return _every(states, "reachable", f"{len(states)} reachable")
