"""N PromQL checks on one Prometheus: opscheck vs the runbook's ``curl … | jq`` lines.

    .venv/bin/python bench/promql.py [--runs 5] [--queries 20]

Starts the demo's monitoring (``opscheck.testbed.demo.monitoring``: Prometheus scraping
node_exporter, a Pushgateway and an app's ``/metrics``, 1 s intervals) and, once everything is
scraped, times whole processes, one of each per round so that a busy machine slows every side
alike, after one untimed warm-up run of each:
- ``pytest -m morning`` on an inventory with one ``[[prometheus]]`` target and N queries (each
  judged against its levels and recorded, plus the target's 5 built-in checks: reachable,
  scrape targets, rule groups, config reload, head series), a JSON report written;
- the same N queries as the runbook types them, one after the other:
  ``curl -sG …/api/v1/query --data-urlencode 'query=…' | jq -r '.data.result[0].value[1]'``
  (nothing judged, only the first series shown).
Prints a Markdown table for bench/RESULTS.md (wall time best and median, CPU time median), the
ratio of the medians and the opscheck run's verdicts.
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _timing import REPO

from opscheck.testbed.demo import ERROR_RATE, monitoring
from opscheck.testbed.prometheus import prometheus_block

_P95 = "histogram_quantile(0.95, sum by (le) (rate(app_request_duration_seconds_bucket[1m])))"
# The runbooks' kind of PromQL on the demo's series: (name, query, levels).
QUERIES: list[tuple[str, str, dict[str, object]]] = [
    ("request-rate", "sum(rate(http_requests_total[5m]))", {"warn": 0.1, "direction": "below"}),
    ("requests-per-minute", "sum(rate(http_requests_total[1m])) * 60", {}),
    ("error-rate", ERROR_RATE, {"unit": "percent", "warn": 1, "crit": 5}),
    ("5xx-rate", 'sum(rate(http_requests_total{status=~"5.."}[5m]))', {"warn": 50}),
    ("latency-p95", _P95, {"unit": "seconds", "warn": 0.5, "crit": 2}),
    (
        "latency-p99",
        _P95.replace("0.95", "0.99"),
        {"unit": "seconds", "warn": 1, "crit": 2.5},
    ),
    (
        "latency-avg",
        "sum(rate(app_request_duration_seconds_sum[1m]))"
        " / sum(rate(app_request_duration_seconds_count[1m]))",
        {"unit": "seconds", "warn": 0.5},
    ),
    ("up", "up", {"crit": 1, "direction": "below"}),
    ("queue-depth", 'app_queue_depth{queue="embeddings"}', {"warn": 100, "crit": 1000}),
    (
        "memory-available",
        "node_memory_MemAvailable_bytes",
        {"unit": "bytes", "crit": "256MB", "direction": "below"},
    ),
    (
        "memory-available-7d",
        "avg_over_time(node_memory_MemAvailable_bytes[7d])",
        {"unit": "bytes", "warn": "512MB", "direction": "below"},
    ),
    (
        "memory-used",
        "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
        {"unit": "percent", "warn": 85, "crit": 95},
    ),
    (
        "cpu-busy",
        '100 * (1 - avg(rate(node_cpu_seconds_total{mode="idle"}[1m])))',
        {"unit": "percent", "crit": 100},
    ),
    ("load1", "node_load1", {"crit": 64}),
    ("open-files", "node_filefd_allocated / node_filefd_maximum", {"crit": 0.9}),
    (
        "offsite-sync-age",
        "time() - offsite_sync_last_success_timestamp_seconds",
        {"unit": "seconds", "crit": "48h"},
    ),
    (
        "alerts-firing",
        'count(ALERTS{alertstate="firing", severity="critical"})',
        {"crit": 0, "empty": "ok"},
    ),
    ("scrape-duration", "max(scrape_duration_seconds)", {"unit": "seconds", "warn": 0.5}),
    ("samples-scraped", "sum(scrape_samples_scraped)", {}),
    ("jobs", "count by (job) (up)", {"crit": 1, "direction": "below"}),
]
OPSCHECK = "opscheck `pytest -m morning`, one [[prometheus]] target, {n} queries + 5 built-in"
LINES = "runbook lines: {n} × `curl -sG …/api/v1/query \\| {parser}`, one after another"


def inventory(url: str, count: int) -> str:
    """One ``[[prometheus]]`` target with the first ``count`` of ``QUERIES`` (cycled)."""
    queries = []
    for index in range(count):
        name, query, levels = QUERIES[index % len(QUERIES)]
        suffix = f"-{index // len(QUERIES) + 1}" if index >= len(QUERIES) else ""
        queries.append({"name": name + suffix, "query": query, **levels})
    return '[settings]\ntimeout = "5s"\n\n' + prometheus_block("prom", url, queries)


def curl_lines(url: str, count: int) -> tuple[str, str]:
    """The same queries as a runbook's shell lines, and what parses their answer."""
    if shutil.which("jq"):
        parser, parse = "jq", "jq -r '.data.result[0].value[1]'"
    else:  # no jq: the same with Python's json
        parser = "python3 -c json"
        code = "import json,sys; r=json.load(sys.stdin)['data']['result']; print(r[0]['value'][1])"
        parse = "python3 -c " + shlex.quote(code)
    lines = [
        f"curl -sG {url}/api/v1/query --data-urlencode {shlex.quote('query=' + q)} | {parse}"
        for q in (QUERIES[i % len(QUERIES)][1] for i in range(count))
    ]
    return parser, "\n".join(lines)


def run(command: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system of the process and its children) seconds of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(command, capture_output=True, check=False, cwd=REPO)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--queries", type=int, default=20)
    args = parser.parse_args()
    n = args.queries
    with tempfile.TemporaryDirectory() as tmp, monitoring(Path(tmp) / "monitoring") as watch:
        watch.wait()
        path, report = Path(tmp) / "inventory.toml", Path(tmp) / "report.json"
        path.write_text(inventory(watch.prom.url, n))
        pytest_cmd = [sys.executable, "-m", "pytest", "-q", "-m", "morning"]
        pytest_cmd += ["--inventory", str(path), "--thresholds", str(REPO / "thresholds.toml")]
        pytest_cmd += ["--json-report", str(report)]
        shown, script = curl_lines(watch.prom.url, n)
        commands = {
            OPSCHECK.format(n=n): pytest_cmd,
            LINES.format(n=n, parser=shown): ["bash", "-c", script],
        }
        for command in commands.values():  # warm-up: page cache, bytecode
            run(command)
        tests = json.loads(report.read_text())["tests"]  # other components' skip: no target
        verdicts = Counter(t["verdict"] for t in tests if "verdict" in t)
        times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name in commands}
        for _ in range(args.runs):
            for name, command in commands.items():
                wall, cpu = run(command)
                times[name][0].append(wall)
                times[name][1].append(cpu)
    print("| what | runs | best | median | CPU (median) |")
    print("|---|---|---|---|---|")
    for name, (walls, cpus) in times.items():
        print(
            f"| {name} | {len(walls)} | {min(walls):.2f} s | {statistics.median(walls):.2f} s "
            f"| {statistics.median(cpus):.2f} s |"
        )
    ours, theirs = (statistics.median(walls) for walls, _ in times.values())
    print()
    print(f"opscheck / curl lines = {ours / theirs:.2f} (medians)")
    print("opscheck verdicts: " + ", ".join(f"{v} {c}" for v, c in sorted(verdicts.items())))


if __name__ == "__main__":
    main()
