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
    "host.fail2ban_banned": Spec("number", None, None, what="IPs a fail2ban jail bans now"),
    # Runbook: "Response times < 500ms average"; escalate at "> 2 seconds".
    "http.latency_avg": Spec("duration", 0.3, 0.5, what="average response time over the samples"),
    "http.latency_p95": Spec("duration", 1.0, 2.0, what="95th percentile response time"),
    "http.cert_days": Spec("days", 30, 14, "below", what="days until the TLS certificate expires"),
    "http.json_limits": Spec("number", None, None, what="numeric JSON field of a response"),
    # Redis. Runbooks: "redis-cli ping", "redis-cli info stats | grep instantaneous_ops_per_sec",
    # "Queue depth < 100 items", "Queue Depth Alert (>1000 jobs)".
    "redis.memory_used_pct": Spec(
        "percent", 80, 90, what="used memory of maxmemory (RSS of host memory without one)"
    ),
    "redis.fragmentation_ratio": Spec(
        "number", 1.5, 2.0, what="RSS / used memory, judged once 100 MB are wasted"
    ),
    "redis.clients_used_pct": Spec("percent", 80, 90, what="connected clients of maxclients"),
    # Counters since start (or CONFIG RESETSTAT): any is worth a look; what is happening now
    # shows in clients_used_pct and memory_used_pct.
    "redis.rejected_connections": Spec("number", 0, None, what="connections refused since start"),
    "redis.evicted_keys": Spec("number", 0, None, what="keys evicted at maxmemory since start"),
    "redis.hit_ratio": Spec("percent", 80, None, "below", what="keyspace hits of all lookups"),
    "redis.ops_per_sec": Spec("number", None, None, what="instantaneous_ops_per_sec"),
    "redis.keys": Spec("number", None, None, what="keys per logical database"),
    "redis.unsaved_changes_age": Spec(
        "duration", 2 * 3600, 26 * 3600, what="age of the last snapshot while changes wait"
    ),
    "redis.queue_depth": Spec("number", 100, 1000, what="jobs waiting in a queue"),
    # SQLite. Runbook: sqlite3 fossawork_v2.db "PRAGMA integrity_check"; SELECT COUNT(*) FROM
    # work_orders. Rows look down by default: an emptied table is the usual accident.
    "sqlite.table_rows": Spec("number", None, 1, "below", what="rows of a table in `tables`"),
    "sqlite.file_size": Spec("size", 1e9, None, what="size of the database file"),
    # Runbooks: "Check database connections (should be < 80% of max)", "Check slow queries
    # (should be < 5 per hour)" (active > 5 s), weekly "mean_exec_time > 100" (ms), the monthly
    # bloat query. Sizes have no runbook number: set them to your disks.
    "postgres.connections_used_pct": Spec("percent", 70, 80, what="connections of max_connections"),
    "postgres.long_queries": Spec("number", 0, 4, what="active queries older than long_query"),
    "postgres.longest_query": Spec("duration", 60, 300, what="age of the oldest active query"),
    "postgres.idle_in_transaction": Spec(
        "duration", 60, 300, what="age of the oldest session idle in a transaction"
    ),
    "postgres.lock_wait": Spec("duration", 5, 30, what="longest wait for a lock"),
    "postgres.database_size": Spec("size", 50e9, 100e9, what="size of the target's database"),
    "postgres.table_size": Spec("size", 10e9, 50e9, what="total size of a table in `tables`"),
    "postgres.dead_tuple_pct": Spec(
        "percent", 20, 50, what="dead tuples per live tuple (tables over 1000 dead tuples)"
    ),
    "postgres.vacuum_age": Spec("duration", 2 * 86400, 7 * 86400, what="time since last vacuum"),
    "postgres.analyze_age": Spec("duration", 2 * 86400, 7 * 86400, what="time since last analyze"),
    "postgres.cache_hit_pct": Spec("percent", 95, 90, "below", what="buffer cache hit ratio"),
    "postgres.xid_age_pct": Spec(
        "percent", 50, 75, what="transaction ID age as % of the wraparound limit"
    ),
    "postgres.replication_lag": Spec(
        "size", 100e6, 1e9, what="WAL a replica has yet to replay or a slot retains"
    ),
    "postgres.statement_mean_time": Spec(
        "duration", 0.1, 1.0, what="mean time of the slowest statement (pg_stat_statements)"
    ),
    "postgres.query": Spec("number", None, None, what="result of a user-defined SQL query"),
    # Logs. Runbooks: `grep -c ERROR logs/api-$(date +%Y-%m-%d).log`, `kubectl logs --since=24h |
    # grep -i error | wc -l`, `grep -c "authentication failed" /logs/backend/*.jsonl`; any match
    # is worth a look by default: set levels per pattern. Evening: `find /logs -name "*.jsonl"
    # -size +100M` (rotate above 100 MB) and `du -sh /logs/*`.
    "logs.pattern_lines": Spec("number", 0, None, what="lines matching a pattern in its window"),
    "logs.file_size": Spec("size", 100e6, 1e9, what="size of a log file (rotate above 100 MB)"),
    "logs.dir_size": Spec("size", 1e9, 5e9, what="disk used by a folder holding log files"),
    # A file rotated daily holds at most ~24 h of lines; 26 h leaves the rotation job its run
    # time. 8 d: past logrotate's weekly default plus a day, rotation has surely stopped.
    "logs.file_span": Spec(
        "duration", 26 * 3600, 8 * 86400, what="first to last line of a file written in 24 h"
    ),
    # Backups. Runbooks: the evening "Daily Backup Verification" (`/backups/daily/$TODAY`, "Backup
    # sizes reasonable"), the weekly `aws s3 ls s3://…/postgres/` and `pg_restore -d test_restore`.
    # 26 h: a nightly backup is ~24 h old just before the next one lands, plus its own run time.
    "backup.age": Spec("duration", None, 26 * 3600, what="age of the newest backup"),
    "backup.size": Spec("size", None, 1, "below", what="size of the newest backup (empty: crit)"),
    "backup.shrink_pct": Spec(
        "percent", 20, None, what="how much smaller the newest backup is than the one before"
    ),
    "backup.restore_rows": Spec(
        "number", None, None, "below", what="result of a query on the restored copy (min)"
    ),
}
