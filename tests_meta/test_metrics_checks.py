"""Every ``[[metrics]]`` check against a real app exposing ``/metrics`` with prometheus_client.

Each test starts its own app (``opscheck.testbed.metrics_app``: a WSGI server in a thread, its
own registry, ~5 ms) and runs the real suite in-process. Broken means broken for real: a gauge
past its limit, a counter counting faster than allowed, slow requests in the histogram, a metric
the app does not expose, the app stopped, and a server answering 200 with something that is not
an exposition.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from opscheck.config import MetricLimit
from opscheck.judge import ProbeError
from opscheck.probes import metrics as probes
from opscheck.probes.api import Api
from opscheck.probes.metrics import histogram_quantile
from opscheck.testbed.metrics_app import MetricsApp

METRICS = ("suites/metrics",)
TOKEN = "mt-Jq72Vb0sXe"  # the app's bearer token; handed over as $METRICS_TOKEN
LIMIT = "test_metric_within_limit"


@pytest.fixture
def app() -> Iterator[MetricsApp]:
    """The app, with two queues and 100 requests observed (p95 = 750 ms, see below)."""
    with MetricsApp() as started:
        started.queue_depth.labels(queue="embeddings").set(150)
        started.queue_depth.labels(queue="emails").set(7)
        for seconds in [0.01] * 50 + [0.2] * 40 + [0.7] * 10:
            started.latency.observe(seconds)
        yield started


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)  # strings and numbers: JSON's forms are TOML's


def block(url: str, *limits: dict[str, Any], name: str = "app", **fields: Any) -> str:
    """The ``[[metrics]]`` table of ``url`` with its ``[[metrics.limits]]``."""
    lines = ["[[metrics]]", f"name = {_toml(name)}", f"url = {_toml(url)}", 'timeout = "2s"']
    lines += [f"{key} = {_toml(value)}" for key, value in fields.items()]
    for limit in limits:
        lines += ["[[metrics.limits]]", *(f"{k} = {_toml(v)}" for k, v in limit.items())]
    return "\n".join(lines) + "\n"


def said(result: dict[str, Any]) -> str:
    """What the operator reads for a test: its recorded message, else its failure text."""
    return str(result.get("message") or result.get("reason") or "")


def run(suite: Any, inventory: str) -> dict[str, dict[str, Any]]:
    suite.run(inventory, "", paths=METRICS)
    return suite.results()


# -- healthy -----------------------------------------------------------------------------------


def test_healthy_app_passes_every_check(suite, app):
    limits = [
        {"name": "embeddings", "metric": "app_queue_depth", "labels": {"queue": "embeddings"},
         "warn": 500, "crit": 1000},
        {"name": "queued", "metric": "app_queue_depth", "aggregate": "sum", "crit": 1000},
        {"name": "queues", "metric": "app_queue_depth", "aggregate": "count", "crit": 2,
         "direction": "below"},
        {"name": "p95", "metric": "app_request_duration_seconds", "quantile": 0.95,
         "unit": "seconds", "warn": 1, "crit": "2s"},
    ]  # fmt: skip
    results = run(suite, block(app.url, *limits))
    assert {n: r["outcome"] for n, r in results.items()} == dict.fromkeys(results, "passed"), {
        n: said(r) for n, r in results.items()
    }
    measured = {n: r["measured"] for n, r in results.items()}
    assert re.fullmatch(
        r"\d+ series in 3 metrics \(OpenMetrics, \d+ B, \d+ ms\)",
        measured["test_metrics_reachable[app]"],
    )
    assert measured[f"{LIMIT}[app/embeddings]"] == 'app_queue_depth{queue="embeddings"} 150'
    assert measured[f"{LIMIT}[app/queued]"] == "sum(app_queue_depth) 157 (sum of 2 series)"
    assert results[f"{LIMIT}[app/queued]"]["detail"] == (
        'app_queue_depth{queue="embeddings"} 150\napp_queue_depth{queue="emails"} 7'
    )
    assert measured[f"{LIMIT}[app/queues]"] == "count(app_queue_depth) 2 series"
    assert measured[f"{LIMIT}[app/p95]"] == (
        "app_request_duration_seconds 750 ms (p95 of 100 observations)"
    )
    assert results[f"{LIMIT}[app/p95]"]["threshold"] == "warn > 1.0 s, crit > 2.0 s"
    # GET /metrics only: one to open the target, one per check.
    assert set(app.requests) == {("GET", "/metrics")}
    assert len(app.requests) == 1 + len(results)


# -- over the limit ----------------------------------------------------------------------------


def test_gauge_over_its_limit_is_crit_naming_the_metric_and_labels(suite, app):
    limits = [
        {"name": "embeddings", "metric": "app_queue_depth", "labels": {"queue": "embeddings"},
         "warn": 50, "crit": 100},
        # Without labels each series is judged: the one over the limit is named.
        {"name": "any-queue", "metric": "app_queue_depth", "warn": 100},
    ]  # fmt: skip
    results = run(suite, block(app.url, *limits))
    crit = results[f"{LIMIT}[app/embeddings]"]
    assert crit["outcome"] == "failed"
    assert said(crit) == 'app: app_queue_depth{queue="embeddings"} 150 > crit 100'
    warned = results[f"{LIMIT}[app/any-queue]"]
    assert (warned["outcome"], warned["verdict"]) == ("warned", "WARN")
    assert said(warned) == 'app: app_queue_depth{queue="embeddings"} 150 > warn 100'


def test_aggregates_sum_and_max(suite, app):
    limits = [
        {"name": "sum", "metric": "app_queue_depth", "aggregate": "sum", "warn": 120},
        {"name": "max", "metric": "app_queue_depth", "aggregate": "max", "crit": 100},
        {"name": "min", "metric": "app_queue_depth", "aggregate": "min", "crit": 100},
        {"name": "avg", "metric": "app_queue_depth", "aggregate": "avg", "crit": 100},
    ]
    results = run(suite, block(app.url, *limits))
    assert said(results[f"{LIMIT}[app/sum]"]) == (
        "app: sum(app_queue_depth) 157 (sum of 2 series) > warn 120"
    )
    assert results[f"{LIMIT}[app/sum]"]["verdict"] == "WARN"
    assert said(results[f"{LIMIT}[app/max]"]) == (
        "app: max(app_queue_depth) 150 (max of 2 series) > crit 100"
    )
    assert results[f"{LIMIT}[app/max]"]["outcome"] == "failed"
    assert results[f"{LIMIT}[app/min]"]["measured"] == "min(app_queue_depth) 7 (min of 2 series)"
    assert results[f"{LIMIT}[app/avg]"]["measured"] == (
        "avg(app_queue_depth) 78.5 (avg of 2 series)"
    )
    assert results[f"{LIMIT}[app/avg]"]["verdict"] == "OK"


def test_counter_rate_is_measured_over_its_window(suite, app):
    """20 jobs a second for the whole run: two limits of `rate = "2s"` read ~20/s each."""
    limits = [
        {"name": "throughput", "metric": "app_jobs_processed", "rate": "2s", "aggregate": "sum",
         "warn": 5, "direction": "below"},
        {"name": "too-fast", "metric": "app_jobs_processed_total",
         "labels": {"queue": "embeddings"}, "rate": "2s", "crit": 10},
    ]  # fmt: skip
    with app.counting(per_second=20):
        results = run(suite, block(app.url, *limits))
    ok, fast = results[f"{LIMIT}[app/throughput]"], results[f"{LIMIT}[app/too-fast]"]
    assert (ok["outcome"], ok["verdict"]) == ("passed", "OK"), said(ok)
    assert ok["records"][0]["value"] == pytest.approx(20, rel=0.15)
    assert re.fullmatch(
        r"sum\(rate\(app_jobs_processed_total\[2s\]\)\) [\d.]+/s \(sum of 1 series; "
        r"\+\d+ in 2\.0\d* s\)",
        ok["measured"],
    ), ok["measured"]
    assert fast["outcome"] == "failed"
    assert fast["records"][0]["value"] == pytest.approx(20, rel=0.15)
    assert re.fullmatch(
        r'app: app_jobs_processed_total\{queue="embeddings"\} [\d.]+/s \(\+\d+ in 2\.0\d* s\) '
        r"> crit 10",
        said(fast),
    ), said(fast)
    assert len(app.requests) == 1 + 1 + 2 * 2  # open, reachable, two scrapes per rate


def test_histogram_p95_from_its_buckets(suite, app):
    """100 requests: 50 take 10 ms, 40 take 200 ms, 10 take 700 ms. The 95th falls in the
    (0.5, 1] bucket, half-way through its 10: 0.5 + 0.5 × 5/10 = 0.75 s (as PromQL says)."""
    limits = [
        {"name": "p95", "metric": "app_request_duration_seconds", "quantile": 0.95,
         "unit": "seconds", "warn": "300ms", "crit": 0.5},
        {"name": "p50", "metric": "app_request_duration_seconds_bucket", "quantile": 0.5,
         "unit": "seconds", "aggregate": "sum", "crit": 0.5},
    ]  # fmt: skip
    results = run(suite, block(app.url, *limits))
    p95, p50 = results[f"{LIMIT}[app/p95]"], results[f"{LIMIT}[app/p50]"]
    assert p95["outcome"] == "failed"
    assert p95["records"][0]["value"] == pytest.approx(0.75)
    assert said(p95) == (
        "app: app_request_duration_seconds 750 ms (p95 of 100 observations) > crit 500 ms"
    )
    # The 50th is the last of the first bucket (0, 0.05]: 0.05 s.
    assert p50["records"][0]["value"] == pytest.approx(0.05)
    assert p50["measured"] == (
        "histogram_quantile(0.5, app_request_duration_seconds_bucket) 50 ms "
        "(p50 of 100 observations)"
    )


def test_histogram_quantile_follows_promql():
    inf = float("inf")
    buckets = [(0.1, 10.0), (0.5, 30.0), (1.0, 40.0), (inf, 40.0)]
    assert histogram_quantile(0.5, buckets) == (pytest.approx(0.3), "")  # 20th of (0.1, 0.5]
    assert histogram_quantile(0.25, buckets) == (pytest.approx(0.1), "")
    assert histogram_quantile(0.99, [(0.1, 1.0), (inf, 10.0)]) == (0.1, "")  # in +Inf
    assert histogram_quantile(0.5, [(0.1, 0.0), (inf, 0.0)])[1] == "no observations"
    assert histogram_quantile(0.5, [(0.1, 3.0)])[1] == "no +Inf bucket: not a complete histogram"


# -- formats -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "shown"), [("text", "text format"), ("openmetrics", "OpenMetrics")]
)
def test_text_format_and_openmetrics_both_parse(suite, form, shown):
    with MetricsApp(form) as app:
        app.queue_depth.labels(queue="embeddings").set(150)
        app.jobs.labels(queue="embeddings").inc(3)
        limits = [
            {"name": "depth", "metric": "app_queue_depth", "crit": 100},
            {"name": "done", "metric": "app_jobs_processed", "crit": 2},
        ]
        results = run(suite, block(app.url, *limits))
    assert f"({shown}, " in results["test_metrics_reachable[app]"]["measured"]
    assert said(results[f"{LIMIT}[app/depth]"]) == (
        'app: app_queue_depth{queue="embeddings"} 150 > crit 100'
    )
    # A counter named by its family reads its `_total` samples in both formats.
    assert said(results[f"{LIMIT}[app/done]"]) == (
        'app: app_jobs_processed_total{queue="embeddings"} 3 > crit 2'
    )


# -- nothing to judge --------------------------------------------------------------------------


def test_missing_metric_unmatched_labels_and_nan_are_not_ok(suite, app):
    app.queue_depth.labels(queue="stuck").set(float("nan"))
    limits: list[dict[str, Any]] = [
        {"name": "typo", "metric": "app_queue_dept", "crit": 100},
        {"name": "other-queue", "metric": "app_queue_depth", "labels": {"queue": "pdfs"}},
        {"name": "nan", "metric": "app_queue_depth", "labels": {"queue": "stuck"}, "crit": 100},
        {"name": "nan-sum", "metric": "app_queue_depth", "aggregate": "sum", "crit": 1000},
        {"name": "no-requests", "metric": "app_jobs_processed", "crit": 1},
    ]
    results = run(suite, block(app.url, *limits))
    assert {n: r["outcome"] for n, r in results.items() if LIMIT in n} == dict.fromkeys(
        [f"{LIMIT}[app/{n}]" for n in ("typo", "other-queue", "nan", "nan-sum", "no-requests")],
        "failed",
    )
    assert said(results[f"{LIMIT}[app/typo]"]) == (
        "app: app_queue_dept no series matches: no metric app_queue_dept in the exposition "
        "(5 names); did you mean app_queue_depth?"
    )
    assert said(results[f"{LIMIT}[app/other-queue]"]) == (
        'app: app_queue_depth{queue="pdfs"} no series matches: no series of app_queue_depth '
        'matches {queue="pdfs"}; it has app_queue_depth{queue="embeddings"}, '
        'app_queue_depth{queue="emails"}, app_queue_depth{queue="stuck"}'
    )
    assert said(results[f"{LIMIT}[app/nan]"]) == (
        'app: app_queue_depth{queue="stuck"} NaN (not a number)'
    )
    assert said(results[f"{LIMIT}[app/nan-sum]"]) == (
        'app: sum(app_queue_depth) NaN (app_queue_depth{queue="stuck"} is not a number)'
    )
    # A labelled counter nothing has incremented yet has no series at all.
    assert "no series matches: no metric app_jobs_processed in the exposition" in said(
        results[f"{LIMIT}[app/no-requests]"]
    )


# -- broken ------------------------------------------------------------------------------------


def test_app_down_is_unreachable_then_the_rest_at_once(suite, app):
    inventory = block(app.url, {"name": "depth", "metric": "app_queue_depth", "crit": 100})
    app.stop()
    result = suite.run(inventory, "", paths=METRICS)
    assert result.parseoutcomes() == {"failed": 1, "unreachable": 1}
    results = suite.results()
    assert said(results["test_metrics_reachable[app]"]) == (
        f"app: unreachable: GET {app.url}: connection refused"
    )
    assert results[f"{LIMIT}[app/depth]"]["outcome"] == "not_run"
    assert said(results[f"{LIMIT}[app/depth]"]) == (
        "not run: app unreachable (see test_metrics_reachable[app])"
    )


class _Garbage(BaseHTTPRequestHandler):
    """200 with a body that is no exposition (a login page, a proxy's error page)."""

    content_type = "text/plain; version=0.0.4"

    def do_GET(self) -> None:
        body = b"<html><body>Please log in</body></html>\n"
        self.send_response(200)
        self.send_header("Content-Type", self.content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _GarbageOpenMetrics(_Garbage):
    content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"


@pytest.mark.parametrize(
    ("handler", "error"),
    [
        (_Garbage, "malformed exposition (text format): invalid metric name:<html><body>Please"),
        (_GarbageOpenMetrics, "malformed exposition (OpenMetrics): "),
    ],
)
def test_a_malformed_exposition_is_a_one_line_failure(suite, handler, error):
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    try:
        result = suite.run(block(url, {"name": "depth", "metric": "app_queue_depth"}), "",
                           paths=METRICS)  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    results = suite.results()
    for name in ("test_metrics_reachable[app]", f"{LIMIT}[app/depth]"):
        reason = said(results[name])
        assert reason.startswith(f"app: GET {url}: {error}"), reason
        assert "\n" not in reason and "Traceback" not in reason
    assert "Traceback" not in result.stdout.str()


def test_bearer_token_from_the_environment(suite, monkeypatch):
    monkeypatch.setenv("METRICS_TOKEN", TOKEN)
    monkeypatch.setenv("WRONG_TOKEN", "not-the-token-7")
    with MetricsApp(token=TOKEN) as app:
        app.queue_depth.labels(queue="embeddings").set(1)
        inventory = block(app.url, bearer_token_env="METRICS_TOKEN") + block(
            app.url, name="wrong", bearer_token_env="WRONG_TOKEN"
        )
        result = suite.run(inventory, "", "-rA", paths=METRICS)
    results = suite.results()
    assert results["test_metrics_reachable[app]"]["outcome"] == "passed"
    assert said(results["test_metrics_reachable[wrong]"]) == (
        f"wrong: GET {app.url}: HTTP 401: Unauthorized"
    )
    written = result.stdout.str() + suite.json_path.read_text()
    assert TOKEN not in written and "not-the-token-7" not in written


# -- the inventory -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "error"),
    [
        (
            'url = "http://scraper:s3cret@10.0.0.1:8000/metrics"',
            "metrics[0].url: expected a URL without user:password@ (name the variables in "
            "bearer_token_env, or username and password_env), got 'http://***@10.0.0.1:8000/metrics'",
        ),
        (
            'url = "http://10.0.0.1/metrics"\n'
            '[[metrics.limits]]\nname = "r"\nmetric = "x_total"\nrate = "10m"',
            "metrics[0].limits[0].rate: expected a duration up to 2m (the check waits this long)",
        ),
        (
            'url = "http://10.0.0.1/metrics"\ntimeout = "2m"\n'
            '[[metrics.limits]]\nname = "r"\nmetric = "x_total"\nrate = "2m"',
            "metrics[0]: limits[0]: rate 120 s plus two scrapes of timeout 120 s exceeds 5m",
        ),
        (
            'url = "http://10.0.0.1/metrics"\n'
            '[[metrics.limits]]\nname = "p"\nmetric = "x"\nquantile = 0.9\naggregate = "avg"',
            "metrics[0].limits[0]: aggregate 'avg' does not combine quantiles",
        ),
        (
            'url = "http://10.0.0.1/metrics"\n'
            '[[metrics.limits]]\nname = "q"\nmetric = \'x{queue="a"}\'',
            "metrics[0].limits[0].metric: expected a metric name such as 'http_requests_total'",
        ),
        (
            'url = "http://10.0.0.1/metrics"\n'
            '[[metrics.limits]]\nname = "q"\nmetric = "x"\nunit = "bytes"\ncrit = "2 parsecs"',
            "metrics[0].limits[0].crit: expected a size such as",
        ),
    ],
)
def test_inventory_mistakes_stop_the_run(suite, table, error):
    result = suite.run(f'[[metrics]]\nname = "app"\n{table}\n', "", paths=METRICS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"inventory.toml: {error}" in result.stderr.str()


def test_seconds_levels_read_as_seconds():
    limit = MetricLimit(name="p", metric="x", unit="seconds", warn=0.35, crit="2s")
    assert limit.levels().warn == "0.35s" and limit.key == "metrics.limit_seconds"


def test_rate_with_quantile_reads_the_window_only(app):
    """100 fast requests before the window, 10 of 700 ms inside it: the window's p50 is 750 ms
    (the whole histogram's would be 50 ms). A gauge has no rate: said, not measured."""
    api = Api(app.url, 5, {"Accept": probes.ACCEPT})
    slow = threading.Timer(0.3, lambda: [app.latency.observe(0.7) for _ in range(10)])
    slow.start()
    limit = MetricLimit.model_validate(
        {"name": "p50", "metric": "app_request_duration_seconds", "quantile": 0.5, "rate": "1s",
         "unit": "seconds"}
    )  # fmt: skip
    [measured] = probes.limit_values(api, limit)
    slow.join()
    assert (measured.value, measured.text) == (0.75, "750 ms (p50 of 10 observations)")
    gauge = MetricLimit.model_validate({"name": "g", "metric": "app_queue_depth", "rate": "1s"})
    with pytest.raises(ProbeError, match="rate applies to counters and histograms; "
                       "app_queue_depth is a gauge"):  # fmt: skip
        probes.limit_values(api, gauge)
    api.close()
