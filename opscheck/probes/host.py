"""Host probes: a testinfra ``host`` in, ``Measurement``s out. Read-only commands only."""

from __future__ import annotations

import shlex
from typing import Any

from opscheck.judge import Measurement, ProbeError
from opscheck.units import format_value


def _run(host: Any, command: str) -> str:
    result = host.run(command)
    if result.rc != 0:
        raise ProbeError(f"`{command}` exited {result.rc}: {result.stderr.strip()[:300]}")
    return str(result.stdout)


def _df(host: Any, flag: str, mounts: list[str]) -> list[tuple[str, str, int, int]]:
    """(source, mount, used, total) rows of ``df -P``; real filesystems unless mounts are named."""
    args = " ".join(shlex.quote(m) for m in mounts)
    rows = []
    for line in _run(host, f"df -P {flag} {args}").splitlines()[1:]:
        parts = line.split()
        if len(parts) < 6 or not parts[2].isdigit() or not parts[1].isdigit():
            continue
        source, total, used, mount = parts[0], int(parts[1]), int(parts[2]), " ".join(parts[5:])
        if not mounts and not (source.startswith("/") or mount == "/"):
            continue  # tmpfs, overlay layers, proc: not the disks an operator watches
        rows.append((source, mount, used, total))
    seen: set[str] = set()
    return [r for r in rows if not (r[1] in seen or seen.add(r[1]))]  # type: ignore[func-returns-value]


def disk_used_pct(host: Any, mounts: list[str]) -> list[Measurement]:
    """Space used per mount, as ``df -h`` shows it."""
    return [
        Measurement(100.0 * used / total, subject=mount,
                    text=f"{100.0 * used / total:.1f} % used "
                         f"({format_value(used * 1024, 'size')} of {format_value(total * 1024, 'size')})")
        for _, mount, used, total in _df(host, "-k", mounts) if total
    ]


def inode_used_pct(host: Any, mounts: list[str]) -> list[Measurement]:
    """Inodes used per mount (``df -i``); file systems without inode counts are left out."""
    return [
        Measurement(100.0 * used / total, subject=mount,
                    text=f"{100.0 * used / total:.1f} % inodes used ({used} of {total})")
        for _, mount, used, total in _df(host, "-i", mounts) if total
    ]


def meminfo(host: Any) -> dict[str, int]:
    values = {}
    for line in host.file("/proc/meminfo").content_string.splitlines():
        key, _, rest = line.partition(":")
        number = rest.split()
        if number and number[0].isdigit():
            values[key] = int(number[0]) * 1024
    return values


def memory_used_pct(host: Any) -> Measurement:
    """Memory in use. MemAvailable, not MemFree: page cache is reclaimable and is not pressure."""
    info = meminfo(host)
    total, available = info["MemTotal"], info.get("MemAvailable", info.get("MemFree", 0))
    used = total - available
    pct = 100.0 * used / total
    return Measurement(pct, text=f"{pct:.1f} % memory used "
                                 f"({format_value(used, 'size')} of {format_value(total, 'size')})")


def cpu_count(host: Any) -> int:
    return max(1, int(_run(host, "getconf _NPROCESSORS_ONLN").strip() or 1))


def load_per_core(host: Any) -> Measurement:
    """1-minute load average divided by the number of online CPUs."""
    load1, load5, load15 = (float(x) for x in
                            host.file("/proc/loadavg").content_string.split()[:3])
    cores = cpu_count(host)
    return Measurement(load1 / cores,
                       text=f"load {load1:.2f} on {cores} cores ({load1 / cores:.2f} per core)",
                       detail=f"load average 1/5/15 min: {load1} {load5} {load15}")


def cpu_busy_pct(host: Any, sample_seconds: float) -> Measurement:
    """CPU busy % between two readings of /proc/stat ``sample_seconds`` apart."""
    out = _run(host, f"head -n1 /proc/stat; sleep {sample_seconds:g}; head -n1 /proc/stat")
    first, second = ([int(x) for x in line.split()[1:]] for line in out.splitlines()[:2])
    deltas = [b - a for a, b in zip(first, second, strict=False)]
    idle = deltas[3] + (deltas[4] if len(deltas) > 4 else 0)  # idle + iowait
    total = sum(deltas[:8])  # guest time is already counted in user/nice
    pct = 0.0 if total <= 0 else 100.0 * (total - idle) / total
    return Measurement(pct, text=f"CPU {pct:.1f} % busy over {sample_seconds:g} s")


def uptime(host: Any) -> Measurement:
    seconds = float(host.file("/proc/uptime").content_string.split()[0])
    return Measurement(seconds, text=f"up {format_value(seconds, 'duration')}")


def service_running(host: Any, name: str) -> tuple[bool, str]:
    """Through systemd where it runs; otherwise (containers, hand-started daemons) by process."""
    if host.file("/run/systemd/system").is_directory:
        service = host.service(name)
        if service.is_running:
            return True, f"{name}: running (systemd)"
        return False, f"{name}: not running (systemd unit {name})"
    count = len(host.process.filter(comm=name[:15]))  # comm is cut to 15 characters
    if count:
        return True, f"{name}: {count} process{'es' if count > 1 else ''}"
    return False, f"{name}: not running (no process named {name})"


def port_spec(port: int | str) -> str:
    return f"tcp://{port}" if isinstance(port, int) or str(port).isdigit() else str(port)


def listening(host: Any, port: int | str) -> bool:
    return bool(host.socket(port_spec(port)).is_listening)


def dir_size(host: Any, path: str) -> Measurement:
    """Disk space under ``path`` (``du -s``), counted in bytes."""
    result = host.run(f"du -sk {shlex.quote(path)}")
    if result.rc != 0 and not result.stdout.strip():
        raise ProbeError(f"{path}: {result.stderr.strip()[:300] or 'cannot be read'}")
    size = int(result.stdout.split()[0]) * 1024
    return Measurement(size, subject=path, text=format_value(size, "size"))


def reachable(host: Any, address: str, timeout: float) -> tuple[bool, str]:
    """TCP connect from the host itself, as the runbooks' ``nc -z`` / ``ping`` lines do."""
    name, _, port = address.rpartition(":")
    name = name.strip("[]")
    seconds = max(1, round(timeout))
    script = f"exec 3<>/dev/tcp/{name}/{port}"
    result = host.run(f"timeout {seconds} bash -c {shlex.quote(script)}")
    if result.rc == 0:
        return True, f"{address} reachable"
    why = "timed out" if result.rc == 124 else (result.stderr.strip().split(": ")[-1] or "refused")
    return False, f"{address} not reachable ({why})"
