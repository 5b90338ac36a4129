"""Every check key opscheck judges, with its unit, default levels, direction and title.

``thresholds.toml`` may change the levels of any numeric key listed here, e.g.
``[host.disk_used_pct]``. A key that is not listed here cannot be judged: ``Limits.check`` refuses
it, and ``tests_meta/test_registry.py`` walks every suite for the keys it uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from opscheck.units import Kind

SCHEDULES = ("morning", "midday", "evening", "weekly", "monthly")
CATEGORIES = ("health", "performance", "errors", "capacity", "security", "backup")
Direction = Literal["above", "below"]


@dataclass(frozen=True)
class Spec:
    """A check key: its unit, default levels and direction, what it measures, and the range its
    value can take (a level outside it could never fire: thresholds.toml refuses it)."""

    kind: Kind
    warn: float | None
    crit: float | None
    direction: Direction = "above"
    title: str = ""
    min: float | None = 0  # None: a user's own number, which may be negative
    max: float | None = None  # 100 for a share of a capacity


def _share(
    warn: float | None, crit: float | None, title: str, direction: Direction = "above"
) -> Spec:
    """A percentage of a capacity (used of max, hits of lookups): it cannot pass 100 %."""
    return Spec("percent", warn, crit, direction, title, max=100)


def _state(title: str) -> Spec:
    """A yes/no check (a service running, a file present): CRIT when the answer is no."""
    return Spec("state", None, None, title=title)


CHECKS: dict[str, Spec] = {
    # Runbooks: "Disk usage < 80%", "Memory utilization < 85%", "CPU utilization < 80%".
    "host.reachable": _state("the host answers a command through its backend"),
    "host.disk_used_pct": _share(70, 80, "disk space used per mount"),
    "host.inode_used_pct": _share(80, 90, "inodes used per mount"),
    "host.memory_used_pct": _share(75, 85, "memory used (from MemAvailable)"),
    "host.load_per_core": Spec("number", 1.0, 2.0, title="1-minute load average per CPU core"),
    "host.cpu_busy_pct": _share(70, 80, "CPU busy over a short sample"),
    "host.disk_busy_pct": _share(80, 95, "time a disk had I/O in flight over a short sample"),
    "host.uptime": Spec("duration", 86400, None, "below", title="time since boot (recent reboot)"),
    "host.log_dir_size": Spec("size", 1e9, 5e9, title="size of a log directory"),
    "host.services": _state("the services named in `services` are running"),
    "host.ports": _state("the ports named in `ports` are listening"),
    "host.reachable_addresses": _state("the addresses in `reachable` accept a TCP connection"),
    "host.fail2ban": _state("fail2ban answers and runs at least one jail"),
    "host.fail2ban_banned": Spec("number", None, None, title="IPs a fail2ban jail bans now"),
    # Network and processes. Counters are totals since boot until runs keep a history: any error
    # is worth a look; drops (rx drops count frames of unknown protocols) take levels of yours.
    "host.interfaces": _state("the interfaces named in `interfaces` exist and are up"),
    "host.interface_errors": Spec("number", 0, None, title="errors of an interface since boot"),
    "host.interface_drops": Spec("number", None, None, title="drops of an interface since boot"),
    "host.listening": _state("no TCP port listens beyond those in `listening`"),
    "host.processes": _state("the processes in `processes` run within their limits"),
    # The operator's own commands (`[[host.commands]]`): levels are the entry's own.
    "host.command_exit": _state("a command in `commands` exits with its expected status"),
    "host.command_value": Spec("number", None, None, title="a number a command prints", min=None),
    "host.command_value_seconds": Spec("duration", None, None, title="seconds a command prints"),
    "host.command_value_bytes": Spec("size", None, None, title="bytes a command prints"),
    "host.command_value_percent": _share(None, None, "a percentage a command prints"),
    "host.command_lines": Spec("number", None, None, title="lines a command prints"),
    "host.command_json": _state("JSON fields a command prints have their expected values"),
    "host.command_json_limits": Spec(
        "number", None, None, title="numeric JSON field a command prints", min=None
    ),
    "host.command_json_check": _state("a `json_checks` assertion on a command's JSON holds"),
    "host.command_json_value": Spec(
        "number", None, None, title="a `json_checks` number of a command's JSON", min=None
    ),
    # Runbook: "Response times < 500ms average"; escalate at "> 2 seconds".
    "http.status": _state("the endpoint answers with the expected status"),
    "http.json": _state("JSON fields of the response have their expected values"),
    "http.json_limits": Spec(
        "number", None, None, title="numeric JSON field of a response", min=None
    ),
    "http.contains": _state("the response body contains the expected texts"),
    "http.not_contains": _state("the response body contains none of the forbidden texts"),
    "http.json_check": _state("a JSON check (JMESPath) of the response holds"),
    "http.json_value": Spec(
        "number", None, None, title="a number, aggregate or ratio of the JSON response", min=None
    ),
    "http.latency_avg": Spec("duration", 0.3, 0.5, title="average response time over the samples"),
    "http.latency_p95": Spec("duration", 1.0, 2.0, title="95th percentile response time"),
    "http.tls_valid": _state("the TLS certificate verifies (chain, expiry, host name)"),
    "http.cert_days": Spec("days", 30, 14, "below", title="days until the TLS certificate expires"),
    # Redis. Runbooks: "redis-cli ping", "redis-cli info stats | grep instantaneous_ops_per_sec",
    # "Queue depth < 100 items", "Queue Depth Alert (>1000 jobs)".
    "redis.reachable": _state("redis-cli ping answers PONG"),
    "redis.replication": _state("a replica's link to its master is up"),
    "redis.memory_used_pct": _share(
        80, 90, "used memory of maxmemory (RSS of host memory without one)"
    ),
    "redis.fragmentation_ratio": Spec(
        "number", 1.5, 2.0, title="RSS / used memory, judged once 100 MB are wasted"
    ),
    "redis.clients_used_pct": _share(80, 90, "connected clients of maxclients"),
    # Counters since start (or CONFIG RESETSTAT): any is worth a look; what is happening now
    # shows in clients_used_pct and memory_used_pct.
    "redis.rejected_connections": Spec("number", 0, None, title="connections refused since start"),
    "redis.evicted_keys": Spec("number", 0, None, title="keys evicted at maxmemory since start"),
    "redis.hit_ratio": _share(80, None, "keyspace hits of all lookups", "below"),
    "redis.ops_per_sec": Spec("number", None, None, title="instantaneous_ops_per_sec"),
    "redis.keys": Spec("number", None, None, title="keys per logical database"),
    "redis.rdb_last_bgsave": _state("the last RDB snapshot succeeded"),
    "redis.unsaved_changes_age": Spec(
        "duration", 2 * 3600, 26 * 3600, title="age of the last snapshot while changes wait"
    ),
    "redis.aof": _state("append-only file writes and rewrites succeed"),
    "redis.queue_depth": Spec("number", 100, 1000, title="jobs waiting in a queue"),
    # SQLite. Runbook: sqlite3 fossawork_v2.db "PRAGMA integrity_check"; SELECT COUNT(*) FROM
    # work_orders. Rows look down by default: an emptied table is the usual accident.
    "sqlite.file": _state("the database file exists"),
    "sqlite.file_size": Spec("size", 1e9, None, title="size of the database file"),
    "sqlite.integrity": _state("PRAGMA integrity_check answers ok"),
    "sqlite.table_rows": Spec("number", None, 1, "below", title="rows of a table in `tables`"),
    # Runbooks: "Check database connections (should be < 80% of max)", "Check slow queries
    # (should be < 5 per hour)" (active > 5 s), weekly "mean_exec_time > 100" (ms), the monthly
    # bloat query. Sizes have no runbook number: set them to your disks.
    "postgres.reachable": _state("the server accepts a connection and answers a query"),
    "postgres.connections_used_pct": _share(70, 80, "connections of max_connections"),
    "postgres.long_queries": Spec("number", 0, 4, title="active queries older than long_query"),
    "postgres.longest_query": Spec("duration", 60, 300, title="age of the oldest active query"),
    "postgres.idle_in_transaction": Spec(
        "duration", 60, 300, title="age of the oldest session idle in a transaction"
    ),
    "postgres.lock_wait": Spec("duration", 5, 30, title="longest wait for a lock"),
    "postgres.database_size": Spec("size", 50e9, 100e9, title="size of the target's database"),
    "postgres.table_size": Spec("size", 10e9, 50e9, title="total size of a table in `tables`"),
    # Dead per live tuple: past 100 % when a table holds more dead rows than live ones.
    "postgres.dead_tuple_pct": Spec(
        "percent", 20, 50, title="dead tuples per live tuple (tables over 1000 dead tuples)"
    ),
    "postgres.vacuum_age": Spec("duration", 2 * 86400, 7 * 86400, title="time since last vacuum"),
    "postgres.analyze_age": Spec("duration", 2 * 86400, 7 * 86400, title="time since last analyze"),
    "postgres.cache_hit_pct": _share(95, 90, "buffer cache hit ratio", "below"),
    "postgres.xid_age_pct": _share(50, 75, "transaction ID age as % of the wraparound limit"),
    "postgres.replication_lag": Spec(
        "size", 100e6, 1e9, title="WAL a replica has yet to replay or a slot retains"
    ),
    "postgres.statement_mean_time": Spec(
        "duration", 0.1, 1.0, title="mean time of the slowest statement (pg_stat_statements)"
    ),
    "postgres.query": Spec(
        "number", None, None, title="result of a user-defined SQL query", min=None
    ),
    # Logs. Runbooks: `grep -c ERROR logs/api-$(date +%Y-%m-%d).log`, `kubectl logs --since=24h |
    # grep -i error | wc -l`, `grep -c "authentication failed" /logs/backend/*.jsonl`; any match
    # is worth a look by default: set levels per pattern. Evening: `find /logs -name "*.jsonl"
    # -size +100M` (rotate above 100 MB) and `du -sh /logs/*`.
    "logs.source": _state("the log files exist and can be read, or the journal answers"),
    "logs.pattern_lines": Spec("number", 0, None, title="lines matching a pattern in its window"),
    # Runbooks: "error rate > 5 %", "4xx share", "success rate < 95 %"; "p95 response time",
    # "top client IPs", "distinct users" from JSON access logs (computed on the log's host).
    "logs.pattern_ratio": _share(
        None, None, "share of a window's lines (or of another pattern's) matching a pattern"
    ),
    "logs.stat": Spec(
        "number", None, None, title="a statistic of a JSON log field in its window", min=None
    ),
    "logs.stat_seconds": Spec(
        "duration", None, None, title="a statistic of a JSON log field (a time) in its window"
    ),
    "logs.stat_bytes": Spec(
        "size", None, None, title="a statistic of a JSON log field (a size) in its window"
    ),
    "logs.file_size": Spec("size", 100e6, 1e9, title="size of a log file (rotate above 100 MB)"),
    "logs.dir_size": Spec("size", 1e9, 5e9, title="disk used by a folder holding log files"),
    # A file rotated daily holds at most ~24 h of lines; 26 h leaves the rotation job its run
    # time. 8 d: past logrotate's weekly default plus a day, rotation has surely stopped.
    "logs.file_span": Spec(
        "duration", 26 * 3600, 8 * 86400, title="first to last line of a file written in 24 h"
    ),
    # Backups. Runbooks: the evening "Daily Backup Verification" (`/backups/daily/$TODAY`, "Backup
    # sizes reasonable"), the weekly `aws s3 ls s3://…/postgres/` and `pg_restore -d test_restore`.
    # 26 h: a nightly backup is ~24 h old just before the next one lands, plus its own run time.
    "backup.exists": _state("last night's backup is there"),
    "backup.age": Spec("duration", None, 26 * 3600, title="age of the newest backup"),
    "backup.size": Spec("size", None, 1, "below", title="size of the newest backup (empty: crit)"),
    "backup.shrink_pct": _share(
        20, None, "how much smaller the newest backup is than the one before"
    ),
    "backup.integrity": _state("each file of the newest backup reads back whole"),
    # Retention (`find /backups -name "*.dump" -mtime +30 -delete`, "Old backups cleaned up
    # according to retention policy"): levels from the target's keep_daily and max_age_days.
    "backup.retention_days_covered": Spec(
        "number", None, None, "below", title="of the last keep_daily days, those with a backup"
    ),
    "backup.pruned": Spec("days", None, None, title="age of the oldest backup kept (pruning)"),
    "backup.restore": _state("the newest dump restores into a scratch database"),
    "backup.restore_rows": Spec(
        "number", None, None, "below", title="result of a query on the restored copy (min)"
    ),
    "backup.restore_cleanup": _state("the scratch database is dropped again"),
    # An application's own /metrics. Runbooks: `curl -s app:8000/metrics | grep queue_depth`;
    # levels, unit and aggregate are each limit's own (no default: the numbers are the app's).
    "metrics.reachable": _state("the app's /metrics answers and its exposition parses"),
    "metrics.limit": Spec("number", None, None, title="a metric of the app's /metrics", min=None),
    "metrics.limit_seconds": Spec("duration", None, None, title="a metric of /metrics (s)"),
    "metrics.limit_bytes": Spec("size", None, None, title="a metric of /metrics (bytes)"),
    "metrics.limit_percent": Spec("percent", None, None, title="a metric of /metrics (%)"),
    # Prometheus. Runbooks: "run this PromQL", "is every target up" (a down target is CRIT), rule
    # groups evaluating, config reloaded. A query's unit picks its key: levels read in its unit.
    "prometheus.reachable": _state("Prometheus answers and is ready (/-/ready)"),
    "prometheus.targets_down": Spec("number", None, 0, title="scrape targets down per job"),
    "prometheus.targets_down_pct": _share(None, None, "share of a job's scrape targets down"),
    "prometheus.rule_groups": _state("a rule group's rules evaluate without error"),
    "prometheus.config_reload": _state("the last configuration (re)load succeeded"),
    "prometheus.head_series": Spec("number", None, None, title="series in the TSDB head"),
    "prometheus.query": Spec("number", None, None, title="a PromQL query's worst series", min=None),
    "prometheus.query_seconds": Spec("duration", None, None, title="a PromQL query's worst (s)"),
    "prometheus.query_bytes": Spec("size", None, None, title="a PromQL query's worst (bytes)"),
    "prometheus.query_percent": Spec("percent", None, None, title="a PromQL query's worst (%)"),
    "prometheus.query_series": Spec(
        "number", None, None, "below", title="series a PromQL query returns (empty = …)"
    ),
    # Alertmanager. Runbooks: "is anything firing?" (amtool alert query), per severity: by default
    # any critical alert is CRIT and any warning WARN (levels per severity in the inventory).
    "alertmanager.reachable": _state("Alertmanager answers its status API"),
    "alertmanager.cluster": _state("the cluster is ready with min_peers peers, or clustering off"),
    "alertmanager.firing_alerts": Spec(
        "number", None, None, title="alerts firing per severity, not silenced or inhibited"
    ),
    # Docker. Runbooks: `docker ps` (everything up, healthy), `docker inspect` (restarts, exit
    # codes, OOM kills), `docker stats` (memory against the container's limit).
    "docker.reachable": _state("the Engine API answers /_ping and /version"),
    "docker.running": _state("the expected containers (or compose services) exist and run"),
    "docker.healthy": _state("containers with a health check report healthy"),
    "docker.restarts": Spec(
        "number", 0, 5, title="restarts of a container since the previous run (else in all)"
    ),
    "docker.exit_codes": _state("stopped containers exited 0 and none was OOM-killed"),
    "docker.memory_used_pct": _share(80, 90, "memory used of a container's limit"),
    "docker.cpu_used_pct": _share(80, 90, "CPU used of a container's CPU limit (else the host's)"),
    # `docker system df`, opt-in (system_df = true): set the sizes to your disks.
    "docker.images_size": Spec("size", 20e9, 50e9, title="size of the images' layers"),
    "docker.volumes_size": Spec("size", 50e9, 100e9, title="size of the local volumes"),
    "docker.build_cache_size": Spec("size", 10e9, 20e9, title="size of the build cache"),
    # Kubernetes. Runbooks: `kubectl get nodes`, `get pods -A` (not Running, restarts,
    # CrashLoopBackOff), `rollout status`, `get endpoints`, `get ingress`, `get events`,
    # `kubectl top`, cert-manager certificates, `get jobs,cronjobs`, `get pvc`, `get hpa`.
    "kubernetes.reachable": _state("the API server answers /version"),
    "kubernetes.nodes_ready": _state("every node is Ready"),
    "kubernetes.node_conditions": _state("no node under memory/disk/PID pressure or cordoned"),
    "kubernetes.kubelet_versions": _state("kubelets within the supported skew of the API server"),
    "kubernetes.pods_running": _state("pods are Running or Succeeded"),
    "kubernetes.pods_ready": _state("running pods are Ready"),
    "kubernetes.pod_restarts": Spec("number", 1, 5, title="most restarts of one pod in the window"),
    "kubernetes.pods_waiting": _state("no container waits in CrashLoopBackOff, ImagePullBackOff…"),
    "kubernetes.oom_killed": _state("no container was OOM-killed in the window"),
    "kubernetes.workloads_available": _state("deployments, statefulsets, daemonsets available"),
    "kubernetes.rollouts": _state("no rollout stuck (ProgressDeadlineExceeded) or behind"),
    "kubernetes.hpa_at_max": _state("no HorizontalPodAutoscaler at its maximum replicas"),
    "kubernetes.service_endpoints": _state("services with a selector have ready endpoints"),
    "kubernetes.ingress_address": _state("ingresses have a load-balancer address"),
    "kubernetes.ingress_cert_days": Spec(
        "days", 30, 14, "below", title="days until an ingress TLS certificate expires"
    ),
    "kubernetes.warning_events": Spec("number", 10, 50, title="events not Normal in the window"),
    "kubernetes.node_cpu_pct": _share(80, 90, "node CPU used of allocatable (metrics.k8s.io)"),
    "kubernetes.node_memory_pct": _share(80, 90, "node memory used of allocatable"),
    "kubernetes.pod_cpu_pct": Spec(
        "percent", 80, 100, title="pod CPU used of its limit (else its request)"
    ),
    "kubernetes.pod_memory_pct": Spec(
        "percent", 80, 90, title="pod memory used of its limit (else its request)"
    ),
    "kubernetes.certificates_ready": _state("cert-manager certificates are Ready"),
    "kubernetes.certificate_days": Spec(
        "days", 30, 14, "below", title="days until a cert-manager certificate expires"
    ),
    "kubernetes.jobs_failed": _state("no Job failed"),
    "kubernetes.cronjob_last_success": Spec(
        "duration", None, 26 * 3600, title="time since a CronJob's last successful run"
    ),
    "kubernetes.cronjobs_suspended": _state("no CronJob is suspended"),
    "kubernetes.pvcs_bound": _state("persistent volume claims are Bound"),
    "kubernetes.pvc_used_pct": _share(80, 90, "space used of a mounted volume claim (exec df)"),
    # WebSocket. Runbooks: `websocat wss://…` connects, answers a ping, replies to a message.
    "websocket.handshake": _state("the server accepts the WebSocket handshake (101)"),
    "websocket.ping_latency": Spec("duration", 0.2, 0.5, title="average ping→pong time"),
    "websocket.reply": _state("the reply to the message sent holds the text expected"),
    "websocket.tls_valid": _state("the TLS certificate verifies (chain, expiry, host name)"),
    "websocket.cert_days": Spec(
        "days", 30, 14, "below", title="days until the TLS certificate expires"
    ),
    # Growth, judged from the history of earlier runs (`[[growth]]`). Runbooks: "df -h trend",
    # "database size growth", "database grew > 10 % since yesterday". Two weeks' warning leaves
    # time to order a disk; a week is the least that does. Growth limits are each entry's own.
    "growth.days_until_full": Spec(
        "days", 14, 7, "below", title="days until full at the growth of the window (linear fit)"
    ),
    "growth.per_day_pct": Spec(
        "percent", None, None, title="growth since the value a day before", min=None
    ),
    "growth.per_week_pct": Spec(
        "percent", None, None, title="growth since the value a week before", min=None
    ),
}
