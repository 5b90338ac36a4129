"""Every Alertmanager check against a real ``prometheus-alertmanager``, healthy and really broken.

Each test starts its own Alertmanager (~0.2 s) from ``opscheck.testbed.alertmanager``, POSTs
the alerts and silences it needs as Prometheus and an operator would, and runs the real suite
through a ``RecordingProxy``: every request the checks made is asserted to be a GET of the
read-only API. Broken means broken for real: alerts firing, a silenced and an inhibited alert,
a stopped Alertmanager, a cluster that lost its peer.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from opscheck.testbed import free_port
from opscheck.testbed.alertmanager import Alertmanager, RecordingProxy, alert

AM = ("suites/alertmanager",)
CHECKS = 3  # tests in suites/alertmanager per target
FIRING = "test_no_alerts_firing[am]"
READ_PATHS = ("/-/ready", "/api/v2/status", "/api/v2/alerts", "/api/v2/silences")
TOKEN = "am-Read-Only-7xQ2vLp"  # the proxy's bearer token; handed over as $AM_TOKEN


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Alertmanager]]:
    """Start an Alertmanager; all are stopped after the test."""
    with contextlib.ExitStack() as stack:

        def make(name: str = "am", **settings: Any) -> Alertmanager:
            return stack.enter_context(Alertmanager(tmp_path / name, **settings))

        yield make


@pytest.fixture
def proxied(start: Callable[..., Alertmanager]) -> Iterator[tuple[Alertmanager, RecordingProxy]]:
    """An Alertmanager and the proxy the checks reach it through, which records every request."""
    am = start()
    with RecordingProxy(am.url) as proxy:
        yield am, proxy


def block(url: str, name: str = "am", **fields: Any) -> str:
    """The ``[[alertmanager]]`` table of a target (values as JSON, which TOML reads too)."""
    lines = [f'name = "{name}"', f'url = "{url}"', 'timeout = "2s"']
    lines += [f"{key} = {_toml(value)}" for key, value in fields.items()]
    return "[[alertmanager]]\n" + "\n".join(lines) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("reason") or "")


def records(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The records of one test by subject (a severity)."""
    return {r["subject"]: r for r in result["records"]}


def only_read(proxy: RecordingProxy) -> None:
    """Every request of the run was a GET of the read-only API."""
    assert proxy.requests, "the run made no request through the proxy"
    for method, path in proxy.requests:
        assert method == "GET", (method, path)
        assert path.split("?")[0] in READ_PATHS, path


def written(am: Alertmanager) -> dict[str, float]:
    """Alertmanager's own count of what it was sent: alerts received, silences held."""
    text = am.get_text("/metrics")
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in ("alertmanager_alerts_received_total", "alertmanager_silences"):
                key = sample.name + json.dumps(sample.labels, sort_keys=True)
                counts[key] = sample.value
    return counts


# -- healthy -----------------------------------------------------------------------------------


def test_quiet_alertmanager_passes_every_check_reading_only(suite, proxied):
    am, proxy = proxied
    before = written(am)
    result = suite.run(block(proxy.url), "", paths=AM)
    results = suite.results()
    assert {n: r["outcome"] for n, r in results.items()} == dict.fromkeys(results, "passed"), {
        n: said(r) for n, r in results.items()
    }
    result.assert_outcomes(passed=CHECKS)
    measured = {n: r["measured"] for n, r in results.items()}
    assert re.fullmatch(
        r"Alertmanager 0\.\d+\.\d+ \(up .+\)", measured["test_alertmanager_reachable[am]"]
    )
    assert measured["test_cluster_healthy[am]"] == (
        "clustering disabled: a single instance (fine without min_peers > 1)"
    )
    firing = records(results[FIRING])
    assert list(firing) == ["critical", "warning"]
    assert [(r["measured"], r["verdict"], r["threshold"]) for r in firing.values()] == [
        ("critical 0 firing", "OK", "crit > 0"),
        ("warning 0 firing", "OK", "warn > 0"),
    ]
    only_read(proxy)
    assert written(am) == before  # nothing sent to it, no silence made or expired


# -- alerts firing -----------------------------------------------------------------------------


def test_firing_critical_is_crit_naming_it_and_warning_is_warn(suite, proxied):
    am, proxy = proxied
    am.post(
        alert("DiskFull", "critical", "Disk almost full", started_ago=1800,
              instance="db1", namespace="prod", prometheus="k8s/main"),
        alert("HighLatency", "warning", "p95 above 1 s", started_ago=300, service="api"),
        alert("Watchdog", "none", "always firing"),
    )  # fmt: skip
    am.wait_until("/api/v2/alerts", lambda alerts: len(alerts) == 3)
    before = written(am)
    result = suite.run(block(proxy.url), "", paths=AM)
    result.assert_outcomes(passed=CHECKS - 1, failed=1)
    res = suite.results()[FIRING]
    critical, warning = said(res).split("; ")  # the message: each record past its level
    assert re.fullmatch(
        r'am: critical 1 firing: DiskFull for 30(\.\d)? min \("Disk almost full"\) > crit 0',
        critical,
    ), critical
    assert re.fullmatch(r"am: warning 1 firing: HighLatency for 5(\.\d)? min .+ > warn 0", warning)
    firing = records(res)
    assert list(firing) == ["critical", "warning", "none"]  # the two first, then others
    assert firing["critical"]["verdict"] == "CRIT"
    assert firing["critical"]["value"] == 1
    # The detail: the labels that tell it apart (not the name, severity or external labels).
    assert re.fullmatch(
        r'DiskFull \{instance="db1", namespace="prod"\} for 30(\.\d)? min: Disk almost full',
        firing["critical"]["detail"],
    )
    assert firing["warning"]["verdict"] == "WARN"
    assert re.fullmatch(
        r'warning 1 firing: HighLatency for 5(\.\d)? min \("p95 above 1 s"\)',
        firing["warning"]["measured"],
    )
    assert firing["warning"]["message"].endswith("> warn 0")
    # A severity without levels is counted and listed, not judged.
    assert (firing["none"]["verdict"], firing["none"]["threshold"]) == ("OK", "none")
    assert "DiskFull" in result.stdout.str()  # the failure names it
    only_read(proxy)
    assert written(am) == before


def test_warning_alone_warns_and_severities_set_their_own_levels(suite, proxied):
    am, proxy = proxied
    am.post(*(alert(f"QueueBacklog{i}", "warning", queue=f"q{i}") for i in range(52)))
    am.post(alert("Disk80", "page"))
    am.wait_until("/api/v2/alerts", lambda alerts: len(alerts) == 53)
    suite.run(block(proxy.url), "", paths=AM)
    res = suite.results()[FIRING]
    assert res["outcome"] == "warned"  # WARN does not fail without --fail-on-warn
    warning = records(res)["warning"]
    assert (warning["verdict"], warning["value"]) == ("WARN", 52)
    assert warning["measured"].endswith(" and 49 more")  # three named in the line
    listed = warning["detail"].splitlines()  # the first 50 in the detail
    assert (len(listed), listed[-1]) == (51, "... and 2 more")

    levels = {"warning": {"warn": 50, "crit": 100}, "page": {"crit": 0}, "critical": {}}
    suite.run(block(proxy.url, severities=levels), "", paths=AM)
    firing = records(suite.results()[FIRING])
    assert [(s, r["verdict"], r["threshold"]) for s, r in firing.items()] == [
        ("critical", "OK", "none"),  # written without levels: recorded, never judged
        ("warning", "WARN", "warn > 50, crit > 100"),
        ("page", "CRIT", "crit > 0"),
    ]


def test_silenced_and_inhibited_alerts_are_listed_not_counted(suite, proxied):
    am, proxy = proxied
    am.post(
        alert("DiskFull", "critical", "Disk almost full", started_ago=600, instance="db1"),
        alert("ClusterDown", "warning", "cluster unreachable", namespace="staging"),
        alert("PodCrashLooping", "critical", "pod restarts", namespace="staging", pod="web-1"),
    )
    am.silence(comment="disk replaced tonight", by="alice", alertname="DiskFull")
    am.wait_until(
        "/api/v2/alerts",
        lambda alerts: sum(a["status"]["state"] == "suppressed" for a in alerts) == 2,
    )
    before = written(am)
    suite.run(block(proxy.url), "", paths=AM)
    firing = records(suite.results()[FIRING])
    critical = firing["critical"]
    assert (critical["verdict"], critical["value"]) == ("OK", 0)
    assert critical["measured"] == "critical 0 firing (2 silenced or inhibited, not counted)"
    lines = critical["detail"].splitlines()
    assert re.fullmatch(
        r'DiskFull \{instance="db1"\} for 10(\.\d)? min: Disk almost full \[not counted: '
        r"silenced \(by alice until \d{4}-\d\d-\d\d \d\d:\d\d UTC: disk replaced tonight\)\]",
        lines[0],
    ), lines
    assert lines[1].startswith('PodCrashLooping {namespace="staging", pod="web-1"} for ')
    assert lines[1].endswith("[not counted: inhibited by 1 firing alert(s)]")
    assert firing["warning"]["value"] == 1  # the inhibiting alert itself is counted
    only_read(proxy)
    assert ("GET", "/api/v2/silences") in proxy.requests  # read to say who silenced it
    assert written(am) == before


def test_matchers_scope_the_alerts_counted(suite, proxied):
    am, proxy = proxied
    am.post(
        alert("DiskFull", "critical", namespace="dev"),
        alert("HighLatency", "warning", namespace="prod", service="api"),
    )
    am.wait_until("/api/v2/alerts", lambda alerts: len(alerts) == 2)
    inventory = block(proxy.url, matchers=['namespace="prod"', 'service=~"api|web"'])
    suite.run(inventory, "", paths=AM)
    firing = records(suite.results()[FIRING])
    assert firing["critical"]["measured"] == (
        'critical 0 firing matching namespace="prod", service=~"api|web"'
    )
    assert firing["critical"]["verdict"] == "OK"  # the dev alert is not counted
    assert (firing["warning"]["verdict"], firing["warning"]["value"]) == ("WARN", 1)
    filtered = [p for _, p in proxy.requests if p.startswith("/api/v2/alerts")]
    assert filtered == [
        "/api/v2/alerts?filter=namespace%3D%22prod%22&filter=service%3D~%22api%7Cweb%22"
    ]


@pytest.mark.parametrize(
    ("url", "fields", "error"),
    [
        ("http://127.0.0.1:9093", {"matchers": ["namespace"]},
         "alertmanager[0].matchers[0]: expected a matcher such as 'namespace=\"prod\"'"),
        ("http://ops:hunter2@127.0.0.1:9093", {},
         "alertmanager[0].url: expected a URL without user:password@ (name the variables in "
         "bearer_token_env, or username and password_env), got 'http://***@127.0.0.1:9093'"),
        ("http://127.0.0.1:9093", {"bearer_token_env": "HOME", "username": "ops"},
         "alertmanager[0]: expected bearer_token_env or username + password_env, not both"),
        ("http://127.0.0.1:9093", {"severities": {"warning": {"warn": 5, "crit": 2}}},
         "alertmanager[0].severities.warning: warn 5 is above crit 2"),
    ],
)  # fmt: skip
def test_inventory_mistakes_stop_the_run(suite, url, fields, error):
    result = suite.run(block(url, **fields), "", paths=AM)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"inventory.toml: {error}" in result.stderr.str(), result.stderr.str()
    assert "hunter2" not in result.stderr.str()


# -- unreachable, auth -------------------------------------------------------------------------


def test_alertmanager_down_fails_reachable_with_the_real_error_then_the_rest(suite, start):
    am = start()
    am.stop()
    result = suite.run(block(am.url), "", paths=AM)
    assert result.parseoutcomes() == {"failed": 1, "unreachable": CHECKS - 1}
    res = suite.results()
    assert re.fullmatch(
        rf"am: unreachable: GET http://127\.0\.0\.1:{am.port}/-/ready: .*[Cc]onnection refused.*",
        res["test_alertmanager_reachable[am]"]["reason"],
    ), res["test_alertmanager_reachable[am]"]["reason"]
    assert res[FIRING]["outcome"] == "not_run"
    assert res[FIRING]["reason"] == "not run: am unreachable (see test_alertmanager_reachable[am])"


def test_bearer_token_from_the_environment(suite, start, monkeypatch):
    am = start()
    monkeypatch.setenv("AM_TOKEN", TOKEN)
    monkeypatch.setenv("AM_WRONG", "not-the-Token-4kd9")
    with RecordingProxy(am.url, token=TOKEN) as proxy:
        inventory = block(proxy.url, bearer_token_env="AM_TOKEN")
        inventory += block(proxy.url, "wrong", bearer_token_env="AM_WRONG")
        suite.run(inventory, "", paths=AM)
    res = suite.results()
    assert all(r["outcome"] == "passed" for n, r in res.items() if "[am]" in n)
    assert said(res["test_alertmanager_reachable[wrong]"]) == (
        f"wrong: GET {proxy.url}/api/v2/status: HTTP 401: Unauthorized"
    )
    assert TOKEN not in json.dumps(res)


# -- cluster -----------------------------------------------------------------------------------


def test_single_instance_fails_min_peers(suite, start):
    am = start()
    suite.run(block(am.url, min_peers=2), "", paths=AM)
    res = suite.results()["test_cluster_healthy[am]"]
    assert res["outcome"] == "failed"
    assert said(res) == "am: clustering disabled: a single instance, min_peers is 2"


def test_cluster_with_its_peer_passes_and_without_it_fails(suite, start):
    one, two = free_port(), free_port()
    am = start("am1", cluster_port=one, peers=(two,))
    peer = start("am2", cluster_port=two, peers=(one,))

    def settled(peers: int) -> Callable[[dict[str, Any]], bool]:
        return lambda s: s["cluster"]["status"] == "ready" and len(s["cluster"]["peers"]) == peers

    am.wait_until("/api/v2/status", settled(2), timeout=20)
    suite.run(block(am.url, min_peers=2), "", paths=AM)
    res = suite.results()["test_cluster_healthy[am]"]
    assert (res["outcome"], res["measured"]) == ("passed", "cluster ready, 2 of min 2 peers")
    assert res["records"][0]["detail"].startswith("peers: ")

    peer.stop()
    am.wait_until("/api/v2/status", settled(1), timeout=20)
    suite.run(block(am.url, min_peers=2), "", paths=AM)
    res = suite.results()["test_cluster_healthy[am]"]
    assert res["outcome"] == "failed"
    assert said(res) == "am: cluster ready, 1 of min 2 peers"
