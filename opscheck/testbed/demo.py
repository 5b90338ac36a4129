"""``make demo``: start a local stack, run ``pytest -m morning --archive`` on it, show the report.

The stack is real: HTTP and HTTPS endpoints (with their own CA), an sshd, a PostgreSQL 15 and a
Redis on 127.0.0.1, an SQLite application database, an application log with a few errors and
failed logins, last night's ``pg_dump`` and SQLite backups, plus this machine through
``local://``; and the monitoring around them: a Prometheus scraping a node_exporter, a Pushgateway
and the API's own ``/metrics`` (with its traffic), alerting to an Alertmanager. The morning run
and then the evening run (logs, backups) are archived. The checks log in as least-privilege users
(pg_monitor, a read-only Redis ACL) whose passwords are in environment variables. And the
containers (``opscheck.testbed.demo_containers``, started in the background meanwhile): a real
single-node Kubernetes read as the opscheck ServiceAccount, with a worker that restarted once,
and a Docker Engine running a compose project. One endpoint, one PromQL line and the worker's
restart are deliberately past a warn level, so the report shows what a warning looks like; the
endpoint's is waived for two weeks (``waivers.toml``), so it also shows a WAIVED check. A local
receiver (``Receiver``) plays the team's JSON webhook and dead-man's switch: the demo prints the
notification the morning run sent it, and the heartbeat pings it got.

So that the index, the changes since the previous run and the trends have two days to show, the
demo first takes a real morning reading (archived in a temporary folder) and files it as
yesterday's morning run through the history store's API (``file_as_yesterday``); the page and the
day log of that run say so. Then the real morning and evening runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway

from opscheck import archive_index, history
from opscheck.report import Archive, _write_atomic
from opscheck.testbed.alertmanager import Alertmanager
from opscheck.testbed.demo_containers import (
    THRESHOLDS,
    Containers,
    containers,
    containers_inventory,
)
from opscheck.testbed.http import HttpTestbed
from opscheck.testbed.metrics_app import MetricsApp
from opscheck.testbed.postgres import Postgres
from opscheck.testbed.prometheus import Prometheus
from opscheck.testbed.promstack import NodeExporter, Pushgateway
from opscheck.testbed.redis import RedisServer
from opscheck.testbed.sshd import Sshd, toml_value

REPO = Path(__file__).resolve().parents[2]
PENDING = "SELECT count(*) FROM receipts WHERE status = 'pending'"
# Prometheus's rules: the "Watchdog" that always fires (as kube-prometheus has it: it proves the
# Prometheus -> Alertmanager path works, and fires on the first evaluation) and a target down.
RULES = [
    {
        "name": "demo",
        "interval": "1s",
        "rules": [
            {
                "alert": "Watchdog",
                "expr": "vector(1)",
                "labels": {"severity": "none"},
                "annotations": {"summary": "always firing: the alerting pipeline works"},
            },
            {
                "alert": "TargetDown",
                "expr": "up == 0",
                "for": "30s",
                "labels": {"severity": "critical"},
                "annotations": {"summary": "{{ $labels.job }} target {{ $labels.instance }} down"},
            },
        ],
    }
]
# The runbook's 5xx rate as a share of all requests ("Error rate < 1%").
ERROR_RATE = (
    '100 * sum(rate(http_requests_total{status=~"5.."}[5m])) / sum(rate(http_requests_total[5m]))'
)
LATENCIES = (0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.09, 0.12, 0.15, 0.3)  # seconds, one each tick
SYNC_AGE = 30 * 3600  # the offsite copy last succeeded 30 h ago: past the demo's warn of 26 h
# The demo's end-of-run settings (notify_inventory): a local receiver plays the team's webhook
# and its dead-man's switch; one of the deliberate WARNs is waived (waivers_toml).
WEBHOOK_ENV, WEBHOOK_PATH = "OPSCHECK_DEMO_WEBHOOK_URL", "/hooks/opscheck"
HEARTBEAT_ENV, HEARTBEAT_PATH = "OPSCHECK_DEMO_HEARTBEAT_URL", "/ping/opscheck-demo"
WAIVER_REASON = "pool raised to 40 connections in Thursday's release, CHG-2211"
WAIVER_OWNER = "alice"
READY_TIMEOUT = 20.0  # seconds for Prometheus to have scraped everything (measured ~6.5 s)


class Receiver:
    """A local HTTP receiver for notifications and heartbeat pings (``make demo``, tests): a
    ThreadingHTTPServer on 127.0.0.1 in a thread that answers every GET, HEAD and POST with
    ``statuses`` in turn (then 200 "OK"), each after ``delay`` seconds, and keeps what it got in
    ``received``: {"method", "path", "query", "headers", "body"}."""

    def __init__(self, statuses: tuple[int, ...] = (), delay: float = 0.0) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[dict[str, Any]] = []
        self.statuses = list(statuses)
        self.delay = delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode(errors="replace") if length else ""
                path, _, query = self.path.partition("?")
                got: dict[str, Any] = {"method": self.command, "path": path, "query": query}
                got |= {"headers": dict(self.headers.items()), "body": body}
                receiver.received.append(got)
                time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                said = b"OK" if status < 400 else b"not found" if status == 404 else b"error"
                try:
                    self.send_response(status)
                    self.send_header("Content-Length", str(len(said)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(said)
                except ConnectionError:
                    pass  # the sender gave up waiting (delay): what it sent is recorded

            do_GET = do_POST = do_HEAD = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: what it got is in `received`

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="demo-receiver", daemon=True
        )

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def paths(self) -> list[str]:
        return [got["path"] for got in self.received]


@dataclass
class Monitoring:
    """Prometheus, what it scrapes (node_exporter, a Pushgateway, the API's ``/metrics``) and
    the Alertmanager it sends its alerts to."""

    prom: Prometheus
    alertmanager: Alertmanager
    gateway: Pushgateway
    exporter: NodeExporter
    app: MetricsApp

    def wait(self) -> float:
        """Wait until every target is up, the API's rates exist (two scrapes) and the Watchdog
        reached Alertmanager; the seconds waited. PromStackError when one never does."""
        start = time.monotonic()
        deadline = start + READY_TIMEOUT
        for promql in (
            f"count(up == 1) >= {len(self.prom.jobs)}",
            "sum(rate(http_requests_total[1m])) > 0",
        ):
            self.prom.wait_for(promql, timeout=max(deadline - time.monotonic(), 0.1))
        self.alertmanager.wait_until(
            "/api/v2/alerts",
            lambda alerts: any(a["labels"].get("alertname") == "Watchdog" for a in alerts),
            timeout=max(deadline - time.monotonic(), 0.1),
        )
        return time.monotonic() - start


@contextlib.contextmanager
def monitoring(directory: Path) -> Iterator[Monitoring]:
    """Prometheus first (its first scrape lands ~5.7 s after it starts, whatever the interval:
    do other set-up meanwhile, then ``wait()``), then Alertmanager, node_exporter, a Pushgateway
    holding a batch job's last success, and the API's ``/metrics`` with 1,000 requests a second
    (0.5 % of them 5xx); all stopped on exit."""
    directory.mkdir(parents=True, exist_ok=True)
    exporter = NodeExporter(directory / "node-exporter.log")
    gateway = Pushgateway(directory / "pushgateway.log")
    app = MetricsApp()
    am = Alertmanager(directory / "alertmanager")
    jobs = {"node": [exporter.url], "pushgateway": [gateway.url], "api": [app.url]}
    prom = Prometheus(
        directory / "prometheus",
        jobs,
        honor_labels={"pushgateway"},
        rules=RULES,
        alertmanagers=[am.url],
    )
    with prom, am, exporter, gateway, app, _traffic(app):
        app.queue_depth.labels(queue="embeddings").set(42)
        pushed = CollectorRegistry()
        last = Gauge(
            "offsite_sync_last_success_timestamp_seconds",
            "When the nightly offsite copy last succeeded",
            registry=pushed,
        )
        last.set(time.time() - SYNC_AGE)
        push_to_gateway(gateway.url, job="offsite-sync", registry=pushed, timeout=5)
        yield Monitoring(prom, am, gateway, exporter, app)


@contextlib.contextmanager
def _traffic(app: MetricsApp) -> Iterator[None]:
    """The API serving: ``http_requests_total{status}`` grows by 199 200s and one 500 every
    0.2 s, ``LATENCIES`` observed into its latency histogram, while the block runs."""
    requests = Counter("http_requests", "Requests answered", ["status"], registry=app.registry)
    ok, failed = requests.labels(status="200"), requests.labels(status="500")
    stop = threading.Event()

    def serve() -> None:
        while not stop.wait(0.2):
            ok.inc(199)
            failed.inc(1)
            for seconds in LATENCIES:
                app.latency.observe(seconds)

    thread = threading.Thread(target=serve, name="demo-traffic", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@dataclass
class Stack:
    """The demo's running services and the secrets the checks log in with."""

    bed: HttpTestbed
    sshd: Sshd
    pg: Postgres
    redis: RedisServer
    sqlite_path: Path
    env: dict[str, str]
    monitoring: Monitoring
    containers: Containers | None = None

    @property
    def directory(self) -> Path:
        return self.sqlite_path.parent


@contextlib.contextmanager
def stack(directory: Path, with_containers: bool = False) -> Iterator[Stack]:
    """Start every demo service in ``directory`` with some data; stop them all on exit.
    ``with_containers``: the Kubernetes cluster and the Docker Engine too (``make demo``; the
    benchmarks leave them out). The cluster and Prometheus start first and warm up while the
    rest is set up."""
    env = {
        "OPSCHECK_DEMO_PG_PASSWORD": secrets.token_urlsafe(16),
        "OPSCHECK_DEMO_REDIS_PASSWORD": secrets.token_urlsafe(16),
    }
    with (
        (
            containers(directory / "containers") if with_containers else contextlib.nullcontext()
        ) as boxes,
        monitoring(directory / "monitoring") as watch,
        HttpTestbed() as bed,
        Sshd(directory / "sshd") as sshd,
        Postgres(directory / "pg") as pg,
        RedisServer(directory / "redis") as redis,
    ):
        pg.create_database("app")
        pg.execute(
            "CREATE TABLE receipts (id serial PRIMARY KEY, total numeric, status text)",
            dbname="app",
        )
        pg.execute(
            "INSERT INTO receipts (total, status) SELECT n, CASE WHEN n % 50 = 0 "
            "THEN 'pending' ELSE 'done' END FROM generate_series(1, 2000) n",
            dbname="app",
        )
        pg.execute("VACUUM ANALYZE receipts", dbname="app")
        pg.create_monitor_role("opscheck", env["OPSCHECK_DEMO_PG_PASSWORD"], ["app"])
        pg.execute("GRANT SELECT ON receipts TO opscheck", dbname="app")
        redis.add_reader("opscheck", env["OPSCHECK_DEMO_REDIS_PASSWORD"])
        redis.admin().rpush("queue:embeddings", *range(42))
        sqlite_path = directory / "fossawork_v2.db"
        with contextlib.closing(sqlite3.connect(sqlite_path)) as db, db:
            db.execute("CREATE TABLE work_orders (id INTEGER PRIMARY KEY, site TEXT)")
            db.executemany("INSERT INTO work_orders (site) VALUES (?)", [("site",)] * 120)
        _write_log(directory / "logs")
        _write_backups(directory / "backups", pg, sqlite_path)
        watch.wait()
        if boxes is not None:
            boxes.wait()
        yield Stack(bed, sshd, pg, redis, sqlite_path, env, watch, boxes)


def _write_log(folder: Path) -> None:
    """Today's application log: traffic, three errors, two failed logins (timestamps: now)."""
    folder.mkdir()
    now = datetime.now(UTC)
    lines = []
    for minute in range(120, 0, -1):
        at = (now - timedelta(minutes=minute)).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{at} INFO GET /api/receipts 200 {minute % 40 + 12}ms")
        if minute in (95, 61, 7):
            lines.append(f"{at} ERROR upload {minute * 7919} failed: S3 timeout after 30s")
        if minute in (30, 29):
            lines.append(f"{at} WARN authentication failed for user ops{minute} from 10.0.0.9")
    (folder / f"api-{now:%Y-%m-%d}.log").write_text("\n".join(lines) + "\n")


def _write_backups(folder: Path, pg: Postgres, sqlite_path: Path) -> None:
    """The last two nights' backups as the runbook's cron makes them: pg_dump -Fc, a SQLite copy."""
    for days_ago in (1, 0):
        when = datetime.now(UTC) - timedelta(days=days_ago)
        night = folder / "daily" / f"{when:%Y%m%d}"
        night.mkdir(parents=True)
        dump = night / "app.dump"
        subprocess.run(
            ["pg_dump", "-F", "c", "-O", "-x", "-f", str(dump), "-d", pg.admin_dsn("app")],
            check=True,
            capture_output=True,
        )
        copy_path = night / f"fossawork_v2_{when:%Y%m%d}.db"
        with (
            contextlib.closing(sqlite3.connect(sqlite_path)) as source,
            contextlib.closing(sqlite3.connect(copy_path)) as copy,
        ):
            source.backup(copy)
        for made in (dump, copy_path):
            os.utime(made, (when.timestamp(), when.timestamp()))


def inventory(s: Stack) -> str:
    """The demo stack as an inventory: the runbooks' morning lines against loopback."""
    ssh_box = s.sshd.host_block(
        "ssh-box",
        services=["sshd"],
        ports=[s.sshd.port],
        cpu_sample="500ms",
        reachable=[f"127.0.0.1:{s.sshd.port}"],
    )
    main_db = s.pg.postgres_block(
        "main",
        "app",
        "opscheck",
        password_env="OPSCHECK_DEMO_PG_PASSWORD",
        tables=["public.receipts"],
        queries=[{"name": "pending_receipts", "sql": PENDING, "warn": 100, "crit": 500}],
    )
    cache = s.redis.redis_block(
        "cache",
        username="opscheck",
        password_env="OPSCHECK_DEMO_REDIS_PASSWORD",
        queues=[{"key": "queue:embeddings", "warn": 100, "crit": 1000}],
    )
    return f"""\
[settings]
timeout = "3s"

[[host]]
name = "localhost"
uri = "local://"
cpu_sample = "500ms"

{ssh_box}
{api_health(s.bed)}
[[http]]
name = "api-ready"
url = "{s.bed.url("http", "/health/ready")}"
contains = "ok"
samples = 5

[[http]]
name = "partner-api"
url = "{s.bed.url("http", "/auth")}"
expect_status = [401]              # only has to be up: 401 without credentials is fine
samples = 0

{main_db}
{cache}
[[logs]]
name = "api-log"
path = "{s.directory}/logs/api-{{date:%Y-%m-%d}}.log"

[[logs.patterns]]                  # grep -c ERROR logs/api-$(date +%Y-%m-%d).log
name = "errors"
pattern = "ERROR"
warn = 10
crit = 100

[[logs.patterns]]                  # grep "authentication failed" logs/auth-*.log | wc -l
name = "failed-logins"
preset = "failed_logins"
warn = 5
crit = 50

[[backup]]
name = "app-db-dump"
path = "{s.directory}/backups/daily/{{date:%Y%m%d}}/app.dump"

[[backup]]
name = "fossawork-db"
path = "{s.directory}/backups/daily/{{date:%Y%m%d}}/fossawork_v2_*.db"

[[sqlite]]
name = "fossawork"
path = {toml_value(str(s.sqlite_path))}
tables = {{ work_orders = {{ crit = 1, direction = "below" }} }}

[[growth]]                         # df -h trend: days until the demo host's disks are full
name = "disk"
check = "host.disk_used_pct"
target = "localhost"

[[growth]]                         # database size growth: "grew > 10 % since yesterday"
name = "db-size"
check = "postgres.database_size"
target = "main"
per_day = {{ warn = 5, crit = 10 }}
per_week = {{ warn = 20, crit = 50 }}

[[growth]]                         # Redis used memory: days until maxmemory
name = "redis-memory"
check = "redis.memory_used_pct"
target = "cache"

{monitoring_inventory(s.monitoring)}{_containers_inventory(s.containers)}"""


def api_health(bed: HttpTestbed) -> str:
    """The API's health endpoint: its JSON fields, and its connections past the warn level
    (the WARN the demo's waivers.toml accepts)."""
    return f"""\
[[http]]
name = "api-health"
url = "{bed.url("https", "/health")}"
verify = {toml_value(bed.ca_path)}
json = {{ status = "healthy", "checks.database.status" = "up" }}
samples = 10

[http.json_limits.connections]   # 12 connections in use: past the demo's warn level of 10
warn = 10
crit = 80
"""


def _containers_inventory(boxes: Containers | None) -> str:
    if boxes is None or boxes.kubeconfig is None:
        return ""
    return "\n" + containers_inventory(boxes.kubeconfig, boxes.engine.url)


def monitoring_inventory(watch: Monitoring) -> str:
    """The monitoring's inventory tables: the runbooks' PromQL lines (one past its warn level),
    what fires in Alertmanager, the API's own /metrics."""
    return f"""\
[[prometheus]]
name = "prom"
url = "{watch.prom.url}"

[[prometheus.queries]]             # rate(http_requests_total[1m])*60: requests per minute
name = "request-rate"
query = "sum(rate(http_requests_total[1m])) * 60"
warn = 1
direction = "below"
description = "no requests at all: the API or its ingress is down"

[[prometheus.queries]]             # rate(http_requests_total{{status=~'5..'}}[5m]): < 1 %
name = "error-rate"
query = {toml_value(ERROR_RATE)}
unit = "percent"
warn = 1
crit = 5

[[prometheus.queries]]             # p95 latency < 500 ms, from the API's histogram
name = "latency-p95"
query = "histogram_quantile(0.95, sum by (le) (rate(app_request_duration_seconds_bucket[1m])))"
unit = "seconds"
warn = 0.5
crit = 2

[[prometheus.queries]]             # Status > Targets: every scrape target up
name = "up"
query = "up"
crit = 1
direction = "below"

[[prometheus.queries]]             # ALERTS{{alertstate='firing'}}: no critical alert firing
name = "critical-alerts"
query = 'count(ALERTS{{alertstate="firing", severity="critical"}})'
crit = 0
empty = "ok"                       # nothing firing: no series at all

[[prometheus.queries]]             # the offsite copy's last success (pushed): 30 h ago, past warn
name = "offsite-sync-age"
query = "time() - offsite_sync_last_success_timestamp_seconds"
unit = "seconds"
warn = "26h"
crit = "48h"

[[prometheus.queries]]             # avg_over_time(node_memory_MemAvailable_bytes[7d])
name = "memory-available-7d"
query = "avg_over_time(node_memory_MemAvailable_bytes[7d])"
unit = "bytes"
warn = "512MB"
direction = "below"

[[alertmanager]]                   # curl -f http://alertmanager:9093/-/healthy; what is firing
name = "alerts"
url = "{watch.alertmanager.url}"

[[metrics]]                        # curl -s http://localhost:3000/metrics | grep queue_depth
name = "api-metrics"
url = "{watch.app.url}"

[[metrics.limits]]                 # embedding queue depth (should be < 100)
name = "embeddings-queue"
metric = "app_queue_depth"
labels = {{ queue = "embeddings" }}
warn = 100
crit = 1000

[[metrics.limits]]                 # p95 latency < 500 ms, straight from the app's histogram
name = "latency-p95"
metric = "app_request_duration_seconds"
quantile = 0.95
unit = "seconds"
warn = 0.5
crit = 2
"""


def _took(s: Stack) -> str:
    if s.containers is None:
        return ""
    steps = ", ".join(f"{step} {at:.1f} s" for step, at in s.containers.timings.items())
    return f" (Kubernetes and Docker: {steps})"


def file_as_yesterday(report: Path, reports: Path) -> Path:
    """File a real run's archived report (``report``: its JSON, with the HTML and XML beside it)
    in ``reports`` as if it had run at the same time yesterday: its start and finish moved back one
    day, its records appended to ``reports``' history store (previous values and changes as for
    any run), its files reserved and published as the archive does, the index and day log
    rebuilt. The page and the day log say when the reading was really taken. The HTML page."""
    document = json.loads(report.read_text(encoding="utf-8"))
    taken = datetime.fromisoformat(document["started"])
    when = taken - timedelta(days=1)
    document["started"] = when.isoformat(timespec="seconds")
    finished = datetime.fromisoformat(document["finished"]) - timedelta(days=1)
    document["finished"] = finished.isoformat(timespec="seconds")
    store = reports / history.FILENAME
    document["history"] = {"path": str(store), "added": history.record_run(store, document)}
    note = (
        f"make demo: this reading was taken today at {taken:%H:%M:%S} UTC and filed as yesterday "
        f"({when:%Y-%m-%d}), so that the index, the changes and the trends have two days to show."
    )
    archive = Archive(reports, document["schedule"], when=when)
    try:
        page = report.with_suffix(".html").read_text(encoding="utf-8")
        said = f'<p id="opscheck-demo-note"><strong>{note}</strong></p>'
        archive.partial("html").write_text(page.replace("<body>", f"<body>{said}", 1), "utf-8")
        if report.with_suffix(".xml").exists():
            archive.partial("xml").write_bytes(report.with_suffix(".xml").read_bytes())
        _write_atomic(archive.final("json"), json.dumps(document, indent=2))
        archive.publish()
    except BaseException:
        archive.discard()
        raise
    archive_index.rebuild(reports, {archive.day.name})
    with (archive.day / archive_index.DAY_LOG).open("a", encoding="utf-8") as log:
        log.write(f"\n- {note}\n")  # the operator's part of the day log: never regenerated
    return archive.final("html")


def waivers_toml(today: date) -> str:
    """The demo's waivers.toml: the API's connections WARN accepted for two weeks."""
    return f"""\
[[waiver]]                         # 12 connections > warn 10: accepted until the pool is resized
check = "http.json_limits"
target = "api-health"
subject = "connections"
reason = "{WAIVER_REASON}"
owner = "{WAIVER_OWNER}"
expires = {today + timedelta(days=14)}
"""


def notify_inventory() -> str:
    """The demo inventory's end-of-run settings: every run's notification to the local
    receiver's JSON webhook, and its heartbeat pings to the same receiver."""
    return f"""
[settings.notify]
on = "always"

[settings.notify.webhook]
url_env = "{WEBHOOK_ENV}"

[settings.heartbeat]
url_env = "{HEARTBEAT_ENV}"
"""


def _show_waived(report: Path) -> None:
    """The archived morning report's waived checks, and the waiver's status, one line each."""
    document = json.loads(report.read_text(encoding="utf-8"))
    waived = [
        t for t in document.get("tests", []) if any(r.get("waived") for r in t.get("records", []))
    ]
    for test in waived:
        why = "; ".join(dict.fromkeys(r["waived"] for r in test["records"] if r.get("waived")))
        name = test["id"].split("::")[-1]
        print(f"opscheck demo: {test.get('outcome', '').upper()} {name}: {why}")
    for waiver in document.get("waivers", []):
        print(f"opscheck demo: waiver {waiver['check']} on {waiver['target']}: {waiver['status']}")
    if not waived:
        print("opscheck demo: no check of the morning run was waived", file=sys.stderr)


def _show_received(receiver: Receiver) -> None:
    """What the morning run sent the receiver: the webhook's JSON body, the heartbeat pings."""
    hooks = [got for got in receiver.received if got["path"] == WEBHOOK_PATH]
    for got in hooks:
        print(f"opscheck demo: notification received by {receiver.url}{WEBHOOK_PATH}:")
        try:
            print(json.dumps(json.loads(got["body"]), indent=2, ensure_ascii=False))
        except ValueError:
            print(got["body"])
    if not hooks:
        print(f"opscheck demo: no notification reached {receiver.url}", file=sys.stderr)
    pings = [got for got in receiver.received if got["path"].startswith(HEARTBEAT_PATH)]
    if pings:
        shown = [got["path"].removeprefix(HEARTBEAT_PATH) or "/ (success)" for got in pings]
        headline = pings[-1]["body"].splitlines()[:1]
        print(
            f"opscheck demo: heartbeat pings received by {receiver.url}{HEARTBEAT_PATH}: "
            + ", then ".join(shown)
            + (f" (body: {headline[0]})" if headline else "")
        )


def _run_checks(
    schedule: str, path: Path, thresholds: Path, env: dict[str, str], *extra: str
) -> int:
    command = [sys.executable, "-m", "pytest", "-m", schedule, "--archive", *extra]
    # "--option=PATH": pytest looks for its ini file beside a path argument, and before opscheck's
    # options are known "--inventory /tmp/x.toml" reads as one: then it would miss pytest.ini.
    command += [f"--inventory={path}", f"--thresholds={thresholds}"]
    print("\nopscheck demo:", " ".join(command[1:]), flush=True)
    return subprocess.run(command, cwd=REPO, env=env, check=False).returncode


def main() -> int:
    """Run the morning, then the evening checks on the demo stack; 0 when both runs completed.
    Before them, a first morning reading is filed as yesterday's (``file_as_yesterday``)."""
    reports = REPO / "reports"
    archived: list[Path] = []
    began = time.monotonic()
    with (
        tempfile.TemporaryDirectory(prefix="opscheck-demo-") as tmp,
        stack(Path(tmp), with_containers=True) as s,
        Receiver() as receiver,
    ):
        print(f"opscheck demo: services up in {time.monotonic() - began:.1f} s{_took(s)}")
        path = Path(tmp) / "inventory.toml"
        path.write_text(inventory(s) + notify_inventory())
        thresholds = Path(tmp) / "thresholds.toml"
        thresholds.write_text((REPO / "thresholds.toml").read_text() + THRESHOLDS)
        waivers = Path(tmp) / "waivers.toml"
        waivers.write_text(waivers_toml(datetime.now(UTC).date()))
        print(
            f"opscheck demo: {waivers.name}: the API's connections WARN is waived for two weeks "
            f"({WAIVER_REASON}); notifications and heartbeat go to {receiver.url}"
        )
        env = {**os.environ, **s.env}
        env[WEBHOOK_ENV] = receiver.url + WEBHOOK_PATH
        env[HEARTBEAT_ENV] = receiver.url + HEARTBEAT_PATH
        earlier = Path(tmp) / "earlier"
        first = time.monotonic()
        waived = (f"--waivers={waivers}",)
        quiet = (f"--reports-dir={earlier}", "--no-notify")  # filed as yesterday's: no news
        code = _run_checks("morning", path, thresholds, env, *waived, *quiet)
        taken = sorted(earlier.glob("*/morning-*.json"))
        if code not in (0, 1) or not taken:
            print(
                f"opscheck demo: the first morning reading did not complete (exit {code})",
                file=sys.stderr,
            )
            return code or 1
        yesterday = file_as_yesterday(taken[-1], reports)
        archived.append(yesterday)
        print(
            f"opscheck demo: that first morning reading is filed as yesterday's morning run "
            f"({yesterday.relative_to(REPO)}, {time.monotonic() - first:.1f} s), so the index, "
            "the changes and the trends show two days; the next run is today's."
        )
        for schedule in ("morning", "evening"):
            before = set(reports.glob("*/*.html"))
            receiver.received.clear()
            code = _run_checks(schedule, path, thresholds, env, *waived)
            new = sorted(set(reports.glob("*/*.html")) - before)
            if code not in (0, 1) or not new:
                print(
                    f"opscheck demo: the {schedule} run did not complete (exit {code})",
                    file=sys.stderr,
                )
                return code or 1
            outcome = "all checks OK or WARN" if code == 0 else "some checks failed"
            archived.append(new[-1])
            print(f"opscheck demo: {schedule}: {outcome}.")
            if schedule == "morning":
                _show_waived(new[-1].with_suffix(".json"))
                _show_received(receiver)
    print("\nReports:\n" + "\n".join(f"  {p.relative_to(REPO)}" for p in archived))
    print(f"  {(reports / archive_index.INDEX).relative_to(REPO)} (every day, every schedule)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything is stopped by then: the context managers' exits ran
        print("\nopscheck demo: interrupted; every service is stopped", file=sys.stderr)
        sys.exit(130)
