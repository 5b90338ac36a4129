"""Real services on free loopback ports, for opscheck's own tests and ``make demo``."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Host levels no machine reaches: for runs about connections, reports or time (a busy 2-core CI
# box or benchmark machine must not turn them red).
CALM_HOST_THRESHOLDS = """
[host.disk_used_pct]
warn = "99%"
crit = "100%"
[host.memory_used_pct]
warn = "99%"
crit = "100%"
[host.load_per_core]
warn = 1000
crit = 1000
[host.cpu_busy_pct]
warn = "100%"
crit = "100%"
"""
