"""Network and process probes of a ``[[host]]``: one command per check, read from /sys, /proc
and ``ps`` through the host's testinfra connection. Read-only."""

from __future__ import annotations

import ipaddress
import shlex
from typing import TYPE_CHECKING

from opscheck.judge import Measurement, ProbeError
from opscheck.units import format_value

if TYPE_CHECKING:
    from testinfra.host import Host

    from opscheck.config import HostTarget

# /proc/net/dev columns after "name:", receive then transmit.
_RX = ("bytes", "packets", "errs", "drop", "fifo", "frame", "compressed", "multicast")
_TX = ("bytes", "packets", "errs", "drop", "fifo", "colls", "carrier", "compressed")
_LISTEN = "0A"  # TCP_LISTEN in the st column of /proc/net/tcp
_TOP = 5  # processes shown per list in the detail


def _every(states: list[tuple[bool, str]], expected: str, detail: str = "") -> Measurement:
    bad = [text for ok, text in states if not ok]
    return Measurement.fact(
        not bad, "; ".join(bad or [t for _, t in states]), expected, detail=detail
    )


def interfaces_up(host: Host, target: HostTarget) -> Measurement:
    """Every interface of ``interfaces`` exists and is up (``/sys/class/net/<name>/operstate``).

    ``unknown`` is what drivers without carrier reporting say (loopback, tun, many virtual
    NICs): those count as up when the interface is administratively up (IFF_UP in ``flags``).
    """
    reads = [
        f"printf '%s ' {shlex.quote(name)}; d=/sys/class/net/{shlex.quote(name)}; "
        'if [ -e "$d" ]; then echo "$(cat "$d/operstate") $(cat "$d/flags")"; else echo absent; fi'
        for name in target.interfaces
    ]
    result = host.run("; ".join(reads))
    found = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    states = []
    for name in target.interfaces:
        fields = found.get(name, "absent").split()
        if fields[0] == "absent":
            states.append((False, f"{name}: no such interface"))
            continue
        operstate = fields[0]
        admin_up = len(fields) > 1 and int(fields[1], 16) & 1 == 1
        if operstate == "up":
            states.append((True, f"{name}: up"))
        elif operstate == "unknown" and admin_up:
            states.append((True, f"{name}: up (operstate unknown, administratively up)"))
        else:
            state = operstate + ("" if admin_up else ", administratively down")
            states.append((False, f"{name}: not up ({state})"))
    return _every(states, "up: " + ", ".join(target.interfaces))


def net_dev(host: Host) -> dict[str, dict[str, int]]:
    """``/proc/net/dev`` as {interface: {"rx_errs": …, "tx_drop": …}}: totals since boot."""
    counters = {}
    for line in host.file("/proc/net/dev").content_string.splitlines()[2:]:
        name, colon, rest = line.partition(":")
        numbers = rest.split()
        if not colon or len(numbers) < len(_RX) + len(_TX):
            continue
        keys = [f"rx_{k}" for k in _RX] + [f"tx_{k}" for k in _TX]
        counters[name.strip()] = dict(zip(keys, (int(n) for n in numbers), strict=False))
    return counters


def _counters(host: Host, target: HostTarget, kind: str) -> list[Measurement]:
    """Per interface of ``interfaces``: rx + tx ``kind`` ("errs" or "drop") since boot. The
    detail keeps every counter, for a later run (or an operator) to compare against."""
    counters = net_dev(host)
    missing = [name for name in target.interfaces if name not in counters]
    if missing:
        raise ProbeError(f"not in /proc/net/dev: {', '.join(missing)} (no such interface)")
    noun = "errors" if kind == "errs" else "drops"
    measurements = []
    for name in target.interfaces:
        c = counters[name]
        rx, tx = c[f"rx_{kind}"], c[f"tx_{kind}"]
        detail = f"{name} since boot: " + " ".join(f"{k}={v}" for k, v in c.items())
        text = f"{rx + tx} {noun} since boot (rx {rx} of {c['rx_packets']} packets, tx {tx})"
        measurements.append(Measurement(rx + tx, subject=name, text=text, detail=detail))
    return measurements


def interface_errors(host: Host, target: HostTarget) -> list[Measurement]:
    """Receive + transmit errors per interface, totals since boot (``/proc/net/dev``)."""
    return _counters(host, target, "errs")


def interface_drops(host: Host, target: HostTarget) -> list[Measurement]:
    """Receive + transmit drops per interface, totals since boot (``/proc/net/dev``)."""
    return _counters(host, target, "drop")


def _address(hex_address: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]:
    """``0100007F:1538`` of /proc/net/tcp{,6}: the address in host (little-endian) 32-bit
    words, the port big-endian."""
    address, _, port = hex_address.partition(":")
    raw = bytes.fromhex(address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    ip = ipaddress.ip_address(words)
    return ip, int(port, 16)


def _shown(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> str:
    return f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"


def tcp_listeners(host: Host) -> list[tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, int]]:
    """Listening TCP sockets (address, port), IPv4 and IPv6, from ``/proc/net/tcp{,6}``."""
    result = host.run("cat /proc/net/tcp /proc/net/tcp6")
    if not result.stdout.strip():  # tcp6 is absent without IPv6: the rest is enough
        raise ProbeError(f"`cat /proc/net/tcp` exited {result.rc}: {result.stderr.strip()[:300]}")
    found = set()
    for line in result.stdout.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[3] == _LISTEN:
            found.add(_address(fields[1]))
    return sorted(found, key=lambda a: (a[1], a[0].version, int(a[0])))


def listening_expected(host: Host, target: HostTarget) -> Measurement:
    """No TCP port listens beyond ``listening``: a port alone allows any address, an
    ``address:port`` that address only (a daemon on 0.0.0.0 where 127.0.0.1 was meant is not)."""
    ports = {entry for entry in target.listening if isinstance(entry, int)}
    exact = set()
    for entry in target.listening:
        if isinstance(entry, str):
            address, _, port = entry.rpartition(":")
            exact.add((ipaddress.ip_address(address.strip("[]")), int(port)))
    listeners = tcp_listeners(host)
    unexpected = [
        _shown(ip, port) for ip, port in listeners if port not in ports and (ip, port) not in exact
    ]
    every = ", ".join(_shown(ip, port) for ip, port in listeners)
    expected = "listening only: " + ", ".join(str(e) for e in target.listening)
    if unexpected:
        text = f"{len(unexpected)} unexpected TCP listener(s): {', '.join(unexpected)}"
    else:
        text = f"{len(listeners)} TCP listeners, all expected"
    return Measurement.fact(not unexpected, text, expected, detail=f"listening: {every}")


def _ps(host: Host) -> list[tuple[int, float, int, str]]:
    """(pid, %CPU, RSS bytes, name) of every process, from one ``ps``."""
    out = host.run("ps -A -o pid=,pcpu=,rss=,comm=")
    if out.rc != 0:
        raise ProbeError(f"`ps -A` exited {out.rc}: {out.stderr.strip()[:300]}")
    rows = []
    for line in out.stdout.splitlines():
        fields = line.split(None, 3)
        if len(fields) == 4 and fields[0].isdigit() and fields[2].isdigit():
            rows.append((int(fields[0]), float(fields[1]), int(fields[2]) * 1024, fields[3]))
    return rows


def _top(rows: list[tuple[int, float, int, str]]) -> str:
    """The top processes by CPU and by memory, for the detail of a processes check."""
    by_cpu = sorted(rows, key=lambda r: -r[1])[:_TOP]
    by_memory = sorted(rows, key=lambda r: -r[2])[:_TOP]
    cpu = ", ".join(f"{name} (pid {pid}) {pcpu:.1f} %" for pid, pcpu, _, name in by_cpu)
    memory = ", ".join(
        f"{name} (pid {pid}) {format_value(rss, 'size')}" for pid, _, rss, name in by_memory
    )
    return f"top CPU (ps %CPU): {cpu}\ntop memory (RSS): {memory}"


def processes_within_limits(host: Host, target: HostTarget) -> Measurement:
    """Each ``processes`` entry has a running process of that name (as ``ps -o comm`` shows
    it, cut to 15 characters), and none of them passes its ``max_memory`` (RSS) or ``max_cpu``
    (ps's %CPU: CPU time over the process's life, 100 = one core). The detail lists the top
    processes by CPU and memory."""
    rows = _ps(host)
    states: list[tuple[bool, str]] = []
    wanted = []
    for limit in target.processes:
        matched = [r for r in rows if r[3] in (limit.name, limit.name[:15])]
        bounds = []
        if limit.max_memory is not None:
            bounds.append(format_value(limit.max_memory, "size"))
        if limit.max_cpu is not None:
            bounds.append(f"{limit.max_cpu:g} % CPU")
        wanted.append(limit.name + (f" ≤ {', '.join(bounds)}" if bounds else ""))
        if not matched:
            states.append((False, f"{limit.name}: no process named {limit.name[:15]} runs"))
            continue
        over = []
        for pid, pcpu, rss, _ in matched:
            if limit.max_memory is not None and rss > limit.max_memory:
                over.append(
                    f"{limit.name} (pid {pid}): {format_value(rss, 'size')} memory (RSS) "
                    f"> max {format_value(limit.max_memory, 'size')}"
                )
            if limit.max_cpu is not None and pcpu > limit.max_cpu:
                over.append(f"{limit.name} (pid {pid}): {pcpu:.1f} % CPU > max {limit.max_cpu:g} %")
        if over:
            states.extend((False, text) for text in over)
            continue
        most = format_value(max(r[2] for r in matched), "size")
        busiest = max(r[1] for r in matched)
        count = f"{len(matched)} process{'es' if len(matched) > 1 else ''}"
        states.append((True, f"{limit.name}: {count}, at most {most} and {busiest:.1f} % CPU"))
    return _every(states, "running within limits: " + "; ".join(wanted), _top(rows))
