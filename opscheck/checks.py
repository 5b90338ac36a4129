"""The measurements opscheck knows, with their units and default levels.

``thresholds.toml`` may change the levels of any key listed here, e.g. ``[host.disk_used_pct]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from opscheck.units import Kind

SCHEDULES = ("morning", "midday", "evening", "weekly", "monthly")
CATEGORIES = ("health", "performance", "errors", "capacity", "security", "backup")


@dataclass(frozen=True)
class Spec:
    kind: Kind
    warn: float | None
    crit: float | None
    direction: Literal["above", "below"] = "above"
    what: str = ""


CHECKS: dict[str, Spec] = {
    # Runbooks: "Disk usage < 80%", "Memory utilization < 85%", "CPU utilization < 80%".
    "host.disk_used_pct": Spec("percent", 70, 80, what="disk space used per mount"),
    "host.inode_used_pct": Spec("percent", 80, 90, what="inodes used per mount"),
    "host.memory_used_pct": Spec("percent", 75, 85, what="memory used (from MemAvailable)"),
    "host.load_per_core": Spec("number", 1.0, 2.0, what="1-minute load average per CPU core"),
    "host.cpu_busy_pct": Spec("percent", 70, 80, what="CPU busy over a short sample"),
    "host.uptime": Spec("duration", 86400, None, "below", what="time since boot (recent reboot)"),
    "host.log_dir_size": Spec("size", 1e9, 5e9, what="size of a log directory"),
    # Runbook: "Response times < 500ms average"; escalate at "> 2 seconds".
    "http.latency_avg": Spec("duration", 0.3, 0.5, what="average response time over the samples"),
    "http.latency_p95": Spec("duration", 1.0, 2.0, what="95th percentile response time"),
    "http.cert_days": Spec("days", 30, 14, "below", what="days until the TLS certificate expires"),
    "http.json_limits": Spec("number", None, None, what="numeric JSON field of a response"),
}
