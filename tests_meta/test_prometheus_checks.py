"""Every Prometheus check against a real ``prometheus`` scraping a real node_exporter and a real
Pushgateway, healthy and really broken.

One Prometheus per module (its first scrape lands ~5.7 s after start). Values are pushed to the
Pushgateway with ``prometheus_client`` and read back through PromQL; broken means broken for
real: an exporter killed, a rule that fails at evaluation and a config that does not load (both
read again on SIGHUP), a query Prometheus cannot parse, Prometheus itself gone. opscheck talks to
Prometheus through a recording proxy that demands a bearer token: every request it made is seen.
"""

from __future__ import annotations

import http.server
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from opscheck.testbed import free_port
from opscheck.testbed.prometheus import Prometheus, prometheus_block
from opscheck.testbed.promstack import NodeExporter, Pushgateway

PROMETHEUS = ("suites/prometheus",)
TOKEN = "prom-tk-7Hq2Lw9xR4"  # the proxy's bearer token; handed over as $PROM_TOKEN
HEALTH = 5  # tests in suites/prometheus per target, without its queries
GOOD_RULES = [{"name": "ok", "interval": "1s", "rules": [{"record": "job:up", "expr": "up"}]}]
# Two `up` series match one empty label set: "many-to-many matching not allowed" at evaluation.
BAD_RULE = {"record": "bad:up", "expr": "up * on() group_left up"}


class _Proxy(http.server.BaseHTTPRequestHandler):
    """Forwards GETs with the right bearer token to Prometheus; records every request."""

    upstream: ClassVar[str] = ""
    seen: ClassVar[list[tuple[str, str]]] = []

    def _any(self) -> None:
        self.seen.append((self.command, self.path))
        if self.command != "GET":
            self.send_error(405)
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self.send_error(401)
            return
        try:
            with urllib.request.urlopen(self.upstream + self.path, timeout=10) as answer:
                status, body = answer.status, answer.read()
        except urllib.error.HTTPError as exc:
            status, body = exc.code, exc.read()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = _any

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Stack:
    prometheus: Prometheus
    gateway: Pushgateway
    victim: NodeExporter
    proxy_url: str
    scraped_at: float  # monotonic time of the first scrape
    seen: list[tuple[str, str]] = field(default_factory=list)

    def push(self, job: str, name: str, values: dict[str, float], label: str = "queue") -> None:
        registry = CollectorRegistry()
        gauge = Gauge(name, f"{name} pushed by the test", [label], registry=registry)
        for value_label, value in values.items():
            gauge.labels(value_label).set(value)
        push_to_gateway(self.gateway.url.removeprefix("http://"), job=job, registry=registry)

    def block(self, queries: list[dict[str, Any]] | None = None, **fields: Any) -> str:
        return self.prometheus.prometheus_block(
            "prom",
            self.proxy_url,
            queries=queries or [],
            bearer_token_env="PROM_TOKEN",
            timeout="3s",
            **fields,
        )


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prom")
    with (
        Pushgateway(tmp / "pgw.log") as gateway,
        NodeExporter(tmp / "node.log") as node,
        NodeExporter(tmp / "victim.log") as victim,
    ):
        jobs = {"node": [node.url], "victim": [victim.url], "pushgateway": [gateway.url]}
        prometheus = Prometheus(
            tmp / "server", jobs, honor_labels={"pushgateway"}, rules=GOOD_RULES
        )
        with prometheus:
            seen: list[tuple[str, str]] = []
            handler = type("Proxy", (_Proxy,), {"upstream": prometheus.url, "seen": seen})
            server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
            threading.Thread(target=server.serve_forever, daemon=True).start()
            proxy = f"http://127.0.0.1:{server.server_address[1]}"
            found = Stack(prometheus, gateway, victim, proxy, 0.0, seen)
            found.push("queues", "queue_depth", {"emails": 1500, "sms": 3})
            found.push("latency", "request_p95_seconds", {"api": 0.35}, "service")
            found.push("held", "cpu_busy_pct", {"web1": 95}, "host")
            found.push("brief", "disk_busy_pct", {"web1": 10}, "host")
            found.push("nan", "error_ratio", {"api": float("nan")}, "service")
            prometheus.wait_for_scrape()
            prometheus.wait_for('queue_depth{queue="emails"}')
            found.scraped_at = time.monotonic()
            try:
                yield found
            finally:
                server.shutdown()
                server.server_close()


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROM_TOKEN", TOKEN)


def said(result: dict[str, Any]) -> str:
    """What the operator reads for a test: its recorded message, else its failure text."""
    return str(result.get("message") or result.get("reason") or "")


# -- healthy -----------------------------------------------------------------------------------


def test_healthy_prometheus_passes_every_check(suite, stack):
    queries = [
        {"name": "targets_up", "query": "up", "crit": 1, "direction": "below"},
        {
            "name": "api_p95",
            "query": "request_p95_seconds",
            "unit": "seconds",
            "warn": 0.5,
            "crit": "2s",
        },
        {"name": "memory", "query": "node_memory_MemTotal_bytes", "unit": "bytes", "crit": "100TB"},
        {"name": "sms_queue", "query": 'queue_depth{queue="sms"}', "warn": 100, "crit": 1000},
    ]
    start = len(stack.seen)
    result = suite.run(stack.block(queries), "", paths=PROMETHEUS)
    results = suite.results()
    assert {n: r["outcome"] for n, r in results.items()} == dict.fromkeys(results, "passed"), {
        n: said(r) for n, r in results.items()
    }
    result.assert_outcomes(passed=HEALTH + len(queries))
    measured = {n.removeprefix("test_"): r["measured"] for n, r in results.items()}
    assert re.fullmatch(r"Prometheus 2\.\d+\.\d+\S* ready", measured["prometheus_reachable[prom]"])
    assert "0 of 1 target down" in measured["scrape_targets_up[prom]"]
    assert measured["rule_groups_evaluate[prom]"] == "rules.yml:ok 1 rule evaluate without error"
    assert measured["config_reload_succeeded[prom]"].startswith("last config load succeeded")
    assert re.search(r"\d+ series in the head", measured["head_series[prom]"])
    # Units: 0.35 seconds reads 350 ms, bytes read GB, the worst series is named by its labels.
    assert measured["query_within_limits[prom/api_p95]"] == (
        'request_p95_seconds{job="latency", service="api"} 350 ms'
    )
    assert re.search(
        r"node_memory_MemTotal_bytes\{.*\} \d+\.\d GB", measured["query_within_limits[prom/memory]"]
    )
    assert "(worst of 3 series)" in measured["query_within_limits[prom/targets_up]"]
    api_p95 = results["test_query_within_limits[prom/api_p95]"]
    assert api_p95["threshold"] == "warn > 500 ms, crit > 2.0 s"
    # Read-only: GETs of the read endpoints only, through the proxy, as Prometheus counts them.
    requests = stack.seen[start:]
    assert requests and {method for method, _ in requests} == {"GET"}
    paths = {path.split("?")[0] for _, path in requests}
    assert paths <= {
        "/-/ready", "/api/v1/status/buildinfo", "/api/v1/targets", "/api/v1/rules",
        "/api/v1/status/runtimeinfo", "/api/v1/status/tsdb", "/api/v1/query",
    }, paths  # fmt: skip
    handlers = {
        s["metric"]["handler"] for s in stack.prometheus.query("prometheus_http_requests_total")
    }
    assert not {h for h in handlers if "admin" in h or "lifecycle" in h or h.startswith("/-/re")}
    assert TOKEN not in suite.json_path.read_text()


# -- a PromQL query over its levels ------------------------------------------------------------


def test_a_series_over_its_level_is_crit_naming_the_series(suite, stack):
    queries = [{"name": "queues", "query": "queue_depth", "warn": 100, "crit": 1000, "top": 1}]
    result = suite.run(stack.block(queries), "", "-k", "query", paths=PROMETHEUS)
    result.assert_outcomes(failed=1)
    test = suite.results()["test_query_within_limits[prom/queues]"]
    assert test["verdict"] == "CRIT"
    assert said(test) == (
        'prom: queue_depth{job="queues", queue="emails"} 1500 (worst of 2 series) > crit 1000'
    )
    # The top 1 series in the detail, the other counted.
    assert 'queue_depth{job="queues", queue="emails"} 1500' in test["detail"]
    assert "… and 1 more" in test["detail"]
    assert "PromQL: queue_depth" in test["detail"]


def test_for_judges_the_whole_window_not_the_moment(suite, stack):
    """A value over its level only for the last second is CRIT now but not "for 3s"; one over it
    since the start is CRIT for the window too. One range query, no waiting in the check."""
    time.sleep(max(0.0, stack.scraped_at + 4.0 - time.monotonic()))  # 3 s of history at least
    stack.push("brief", "disk_busy_pct", {"web1": 97}, "host")
    stack.prometheus.wait_for("disk_busy_pct > 90", timeout=5)
    queries = [
        {"name": "disk_now", "query": "disk_busy_pct", "crit": 80},
        {"name": "disk_for", "query": "disk_busy_pct", "crit": 80, "for": "3s"},
        {"name": "cpu_for", "query": "cpu_busy_pct", "unit": "percent", "crit": 80, "for": "3s"},
    ]
    started = time.monotonic()
    suite.run(stack.block(queries), "", "-k", "query", paths=PROMETHEUS)
    elapsed = time.monotonic() - started
    results = suite.results()
    outcomes = {n: r["outcome"] for n, r in results.items()}
    assert outcomes == {
        "test_query_within_limits[prom/disk_now]": "failed",
        "test_query_within_limits[prom/disk_for]": "passed",
        "test_query_within_limits[prom/cpu_for]": "failed",
    }, {n: said(r) for n, r in results.items()}
    assert results["test_query_within_limits[prom/disk_for]"]["measured"].endswith(
        "10 or more for the whole last 3.0 s"
    )
    assert said(results["test_query_within_limits[prom/cpu_for]"]) == (
        'prom: cpu_busy_pct{host="web1", job="held"} 95.0 % or more for the whole '
        "last 3.0 s > crit 80.0 %"
    )
    assert elapsed < 3.0  # read from the history, not waited for


# -- empty, NaN, +Inf, a syntax error ----------------------------------------------------------


def test_an_empty_result_is_crit_unless_said_otherwise(suite, stack):
    queries = [
        {"name": "gone", "query": 'up{job="no-such-job"}'},
        {"name": "gone_warn", "query": "absent_metric_xyz", "empty": "warn"},
        {"name": "gone_ok", "query": "absent_metric_xyz", "empty": "ok"},
    ]
    suite.run(stack.block(queries), "", "-k", "query", paths=PROMETHEUS)
    results = suite.results()
    verdicts = {
        n.split("/")[-1].rstrip("]"): (r["outcome"], r["verdict"]) for n, r in results.items()
    }
    assert verdicts == {
        "gone": ("failed", "CRIT"),
        "gone_warn": ("warned", "WARN"),
        "gone_ok": ("passed", "OK"),
    }
    assert said(results["test_query_within_limits[prom/gone]"]) == (
        "prom: 0 series: the query returned nothing (an exporter down? a label renamed?) < crit 1"
    )


def test_nan_and_inf_are_parsed_and_judged(suite, stack):
    queries = [
        {"name": "nan", "query": "error_ratio", "crit": 0.05},
        {"name": "inf", "query": "vector(1) / 0", "crit": 10},
        {"name": "minus_inf", "query": "vector(-1) / 0", "crit": 10},
    ]
    suite.run(stack.block(queries), "", "-k", "query", paths=PROMETHEUS)
    results = suite.results()
    nan = results["test_query_within_limits[prom/nan]"]
    assert (nan["outcome"], nan["verdict"]) == ("failed", "CRIT")
    assert said(nan) == (
        'prom: error_ratio{job="nan", service="api"} NaN (not a number: 0/0, or a '
        "rate or ratio of nothing)"
    )
    inf = results["test_query_within_limits[prom/inf]"]
    assert said(inf) == "prom: +Inf > crit 10"
    assert results["test_query_within_limits[prom/minus_inf]"]["outcome"] == "passed"
    assert results["test_query_within_limits[prom/minus_inf]"]["measured"] == "-Inf"


def test_a_syntax_error_gives_prometheus_own_words_in_one_line(suite, stack):
    queries = [{"name": "typo", "query": "sum(rate(http_requests_total[5m])", "crit": 1}]
    result = suite.run(stack.block(queries), "", "-k", "query", paths=PROMETHEUS)
    result.assert_outcomes(failed=1)
    reason = said(suite.results()["test_query_within_limits[prom/typo]"])
    assert "HTTP 400" in reason and "parse error" in reason, reason
    assert "\n" not in reason and "Traceback" not in result.stdout.str()


# -- broken for real ---------------------------------------------------------------------------


def test_a_killed_exporter_is_a_target_down_with_its_error(suite, stack):
    stack.victim.stop()
    try:
        stack.prometheus.wait_for('up{job="victim"} == 0', timeout=5)
        result = suite.run(stack.block(), "", "-k", "scrape_targets", paths=PROMETHEUS)
        result.assert_outcomes(failed=1)
        test = suite.results()["test_scrape_targets_up[prom]"]
        assert re.fullmatch(
            # the scrape that saw it die may read "reset by peer"; later ones "refused"
            rf"prom: victim 1 of 1 target down: {stack.victim.url}/metrics: "
            r".*connection (refused|reset by peer) > crit 0",
            said(test),
        ), said(test)
        assert "node 0 of 1 target down" in test["measured"]
    finally:
        stack.victim.start()
        stack.prometheus.wait_for('up{job="victim"} == 1', timeout=5)


def test_a_rule_failing_at_evaluation_fails_its_group(suite, stack):
    prometheus = stack.prometheus
    prometheus.rules = [*GOOD_RULES, {"name": "broken", "interval": "1s", "rules": [BAD_RULE]}]
    prometheus.write_files()
    prometheus.reload()
    try:
        deadline = time.monotonic() + 5
        while not any(
            rule.get("lastError")
            for group in prometheus.api("rules")["groups"]
            for rule in group["rules"]
        ):
            assert time.monotonic() < deadline, "the bad rule never failed"
            time.sleep(0.2)
        result = suite.run(stack.block(), "", "-k", "rule_groups", paths=PROMETHEUS)
        result.assert_outcomes(failed=1)
        test = suite.results()["test_rule_groups_evaluate[prom]"]
        assert re.search(
            r"rules\.yml:broken 1 of 1 rule fail to evaluate: bad:up: .*many-to-many matching "
            r"not allowed",
            said(test),
        ), said(test)
        assert "rules.yml:ok 1 rule evaluate without error" in test["measured"]
    finally:
        prometheus.rules = GOOD_RULES
        prometheus.write_files()
        prometheus.reload()


def test_a_failed_config_reload_is_crit(suite, stack):
    prometheus = stack.prometheus
    (prometheus.directory / "prometheus.yml").write_text("scrape_configs: [nonsense\n")
    prometheus.reload()
    try:
        deadline = time.monotonic() + 5
        while prometheus.api("status/runtimeinfo")["reloadConfigSuccess"]:
            assert time.monotonic() < deadline, "the reload never failed"
            time.sleep(0.1)
        result = suite.run(stack.block(), "", "-k", "config_reload", paths=PROMETHEUS)
        result.assert_outcomes(failed=1)
        assert said(suite.results()["test_config_reload_succeeded[prom]"]).startswith(
            "prom: the last config reload failed: Prometheus still runs the config loaded "
        )
    finally:
        prometheus.write_files()
        prometheus.reload()


def test_series_over_the_operators_level_is_crit_with_the_biggest_metrics(suite, stack):
    """The head's series count judged against levels an operator set below it (a cardinality
    explosion measured against the normal they wrote down)."""
    levels = "[prometheus.head_series]\nwarn = 10\ncrit = 20\n"
    result = suite.run(stack.block(), levels, "-k", "head_series", paths=PROMETHEUS)
    result.assert_outcomes(failed=1)
    test = suite.results()["test_head_series[prom]"]
    found = re.fullmatch(r"prom: (\d+) series in the head > crit 20", said(test))
    assert found and int(found.group(1)) > 20, said(test)
    assert re.fullmatch(r"most series: \w+ \d+(, \w+ \d+){4}", test["detail"]), test["detail"]


def test_prometheus_down_is_unreachable(suite, stack):
    port = free_port()
    inventory = stack.prometheus.prometheus_block(
        "gone", f"http://127.0.0.1:{port}", queries=[{"name": "q", "query": "up"}], timeout="2s"
    )
    started = time.monotonic()
    result = suite.run(inventory, "", paths=PROMETHEUS)
    assert time.monotonic() - started < 10
    assert result.parseoutcomes() == {"failed": 1, "unreachable": HEALTH}
    reachable = said(suite.results()["test_prometheus_reachable[gone]"])
    assert reachable.startswith(f"gone: unreachable: GET http://127.0.0.1:{port}/-/ready: ")
    assert "refused" in reachable, reachable
    others = said(suite.results()["test_query_within_limits[gone/q]"])
    assert others == "not run: gone unreachable (see test_prometheus_reachable[gone])", others


# -- the inventory -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "http://u:pw@prom:9090"}, "without user:password@"),
        ({"queries": [{"name": "a", "query": "up"}, {"name": "a", "query": "up"}]}, "duplicate"),
        ({"queries": [{"name": "a", "query": "up", "unit": "seconds", "crit": "5 parsecs"}]},
         "expected a duration"),
        ({"queries": [{"name": "a", "query": "up", "empty": "maybe"}]}, "'ok', 'warn' or 'crit'"),
        ({"bearer_token_env": "PROM_TOKEN", "username": "x", "password_env": "PROM_TOKEN"},
         "not both"),
    ],
    ids=["credentials in url", "duplicate query", "bad unit level", "bad empty", "two auths"],
)  # fmt: skip
def test_inventory_mistakes_stop_the_run(suite, fields, message):
    url = fields.pop("url", "http://127.0.0.1:9")
    inventory = prometheus_block("prom", url, **fields)
    result = suite.run(inventory, "", paths=PROMETHEUS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str(), result.stderr.str()
    assert "pw" not in result.stderr.str().replace("password_env", "")
