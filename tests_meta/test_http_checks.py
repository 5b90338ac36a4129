"""The HTTP checks (suites/http) against real local servers from ``opscheck.testbed.http``.

Every check passes against a healthy endpoint and fails against a broken one, with a message that
names the target and what is wrong. The servers start once per worker; each test runs the real
suite in-process with its own inventory.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from opscheck.testbed.http import HttpTestbed
from tests_meta.results import values

TOKEN = "tok-7Qx2mZ9rK4pW"  # what the testbed's /auth accepts; tests hand it over as $API_TOKEN
HTTP = ("suites/http",)


@pytest.fixture(scope="session")
def web() -> Iterator[HttpTestbed]:
    """The testbed's servers, started once per xdist worker."""
    with HttpTestbed(token=TOKEN, slow=0.3) as bed:
        yield bed


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"


def http(name: str, url: str, **keys: Any) -> str:
    """One ``[[http]]`` target of an inventory."""
    keys = {"name": name, "url": url, **keys}
    return "[[http]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items()) + "\n"


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    """The run's counts as pytest prints them, with opscheck's ``warned`` beside ``passed``."""
    counts = result.parseoutcomes()
    counts.pop("deselected", None)
    return counts


def said(result: dict[str, Any]) -> str:
    """What the operator reads for a test: its recorded message, else its failure text."""
    return str(result.get("message") or result.get("reason") or "")


# -- status ------------------------------------------------------------------------------------


def test_status_2xx_passes_and_500_fails(suite, web):
    inventory = http("api", web.url("http", "/health")) + http("broken", web.url("http", "/error"))
    result = suite.run(inventory, "", "-k", "status", paths=HTTP)
    result.assert_outcomes(passed=1, failed=1)
    res = suite.results()
    assert res["test_status_expected[api]"]["verdict"] == "OK"
    broken = res["test_status_expected[broken]"]
    assert broken["outcome"] == "failed"
    assert broken["verdict"] == "CRIT"
    assert broken["message"] == (
        f"broken: GET {web.url('http', '/error')} answered 500 Internal Server Error (expected 2xx)"
    )
    assert "database connection pool exhausted" in broken["detail"]  # the body, as evidence
    result.stdout.fnmatch_lines(["*broken: GET http://127.0.0.1:*/error answered 500*"])


def test_expect_status_401_counts_as_up(suite, web):
    """An external API that wants a token is up when it answers 401 without one."""
    auth = web.url("http", "/auth")
    inventory = (
        http("partner", auth, expect_status=[401])
        + http("strict", auth)
        + http("moved", web.url("http", "/health"), expect_status=[401, 403])
    )
    result = suite.run(inventory, "", "-k", "status", paths=HTTP)
    result.assert_outcomes(passed=1, failed=2)
    res = suite.results()
    assert res["test_status_expected[partner]"]["outcome"] == "passed"
    assert "answered 401 Unauthorized (expected 2xx)" in said(res["test_status_expected[strict]"])
    assert "answered 200 OK (expected 401 or 403)" in said(res["test_status_expected[moved]"])


def test_secret_header_reaches_server_and_never_leaks(suite, web, monkeypatch, tmp_path):
    monkeypatch.setenv("API_TOKEN", TOKEN)
    bearer = {"Authorization": "Bearer ${API_TOKEN}"}
    inventory = (
        http("authed", web.url("http", "/auth"), headers=bearer, json={"user": "opscheck"})
        # An httpbin-like route echoes the header back into the failure's evidence.
        + http("echo", web.url("http", "/headers"), headers=bearer, contains=["X-Missing"])
        + http("leaky", web.url("http", "/error?token=${API_TOKEN}"), headers=bearer)
        + http("gone", web.url("refused", "/health?token=${API_TOKEN}"), headers=bearer)
    )
    junit, html = tmp_path / "junit.xml", tmp_path / "report.html"
    result = suite.run(
        inventory, "", "-v", "-rA", f"--junitxml={junit}", f"--html={html}", paths=HTTP
    )
    res = suite.results()
    # The header reached the server: /auth answers 200 only with the right token.
    assert res["test_status_expected[authed]"]["outcome"] == "passed"
    assert res["test_json_fields_expected[authed]"]["outcome"] == "passed"
    assert res["test_body_contains[echo]"]["outcome"] == "failed"
    assert "Bearer ***" in res["test_body_contains[echo]"]["detail"]
    leaky = said(res["test_status_expected[leaky]"])
    assert "/error?token=*** answered 500" in leaky
    assert "/health?token=***: connection refused" in said(res["test_status_expected[gone]"])
    written = {
        "terminal": result.stdout.str() + result.stderr.str(),
        "json": suite.json_path.read_text(),
        "junit": junit.read_text(),
        "html": html.read_text(),
    }
    assert "answered 500" in written["terminal"]  # the failures are there...
    for where, text in written.items():
        assert TOKEN not in text, f"the token leaked into the {where} output"  # ...the token not


# -- JSON body ---------------------------------------------------------------------------------


def test_json_fields_right_wrong_missing_and_not_json(suite, web):
    expected = {"status": "healthy", "checks.database.status": "up", "connections": 12}
    inventory = (
        http("api", web.url("http", "/health"), json=expected)
        + http("degraded", web.url("http", "/wrong"), json=expected)
        + http("old", web.url("http", "/health"), json={"version": "2.1"})
        + http("page", web.url("http", "/notjson"), json={"status": "healthy"})
    )
    result = suite.run(inventory, "", "-k", "json_fields_expected", paths=HTTP)
    result.assert_outcomes(passed=1, failed=3)
    res = suite.results()
    assert res["test_json_fields_expected[api]"]["verdict"] == "OK"
    assert res["test_json_fields_expected[degraded]"]["message"] == (
        "degraded: status = 'degraded' (expected 'healthy'); "
        "checks.database.status = 'down' (expected 'up'); connections = 97 (expected 12)"
    )
    assert (
        res["test_json_fields_expected[old]"]["message"] == "old: version missing (expected '2.1')"
    )
    page = said(res["test_json_fields_expected[page]"])
    assert page.startswith(f"page: {web.url('http', '/notjson')}: response is not JSON (text/html)")
    assert "<!doctype html>" in page


def test_json_limits_ok_warn_crit(suite, web):
    inventory = (
        http(
            "api", web.url("http", "/health"), json_limits={"connections": {"warn": 50, "crit": 80}}
        )
        + http("busy", web.url("http", "/health"), json_limits={"connections": {"warn": 10}})
        + http("full", web.url("http", "/wrong"), json_limits={"connections": {"crit": 80}})
        + http("gone", web.url("http", "/health"), json_limits={"queue.depth": {"crit": 5}})
        + http("page", web.url("http", "/notjson"), json_limits={"connections": {"crit": 80}})
    )
    result = suite.run(inventory, "", "-k", "within_limits", paths=HTTP)
    assert outcomes(result) == {"passed": 1, "warned": 1, "failed": 3}  # a WARN passes
    res = suite.results()
    assert res["test_json_fields_within_limits[api]"]["outcome"] == "passed"
    busy = res["test_json_fields_within_limits[busy]"]
    assert (busy["outcome"], busy["verdict"]) == ("warned", "WARN")
    assert busy["message"] == "busy: connections 12 > warn 10"
    assert (
        res["test_json_fields_within_limits[full]"]["message"] == "full: connections 97 > crit 80"
    )
    assert said(res["test_json_fields_within_limits[gone]"]) == "gone: queue.depth missing"
    assert "response is not JSON" in said(res["test_json_fields_within_limits[page]"])
    result.stdout.fnmatch_lines(
        ["*opscheck warnings*", "WARN *within_limits?busy? - busy: connections 12 > warn 10"]
    )


def test_json_limits_warn_fails_with_fail_on_warn(suite, web):
    inventory = http("busy", web.url("http", "/health"), json_limits={"connections": {"warn": 10}})
    result = suite.run(inventory, "", "-k", "within_limits", "--fail-on-warn", paths=HTTP)
    result.assert_outcomes(failed=1)
    busy = suite.results()["test_json_fields_within_limits[busy]"]
    assert busy["outcome"] == "failed"
    assert "busy: connections 12 > warn 10 (--fail-on-warn)" in busy["reason"]


def test_json_limits_nan_and_infinity_are_crit_with_the_reason(suite, web):
    """NaN passes every comparison and Infinity every limit on its other side: not a verdict."""
    limits = {"connections": {"crit": 80}, "queue.depth": {"crit": 5}, "queue.lag": {"warn": 1}}
    inventory = http("odd", web.url("http", "/nan"), json_limits=limits) + http(
        "api", web.url("http", "/health"), json_limits={"connections": {"crit": 80}}
    )
    result = suite.run(inventory, "", "-k", "within_limits", paths=HTTP)
    result.assert_outcomes(passed=1, failed=1)
    odd = suite.results()["test_json_fields_within_limits[odd]"]
    assert odd["reason"] == (
        "odd: connections is NaN (not a number)\n"
        "odd: queue.depth is Infinity (not a finite number)\n"
        "odd: queue.lag is -Infinity (not a finite number)"
    )
    assert [r["verdict"] for r in odd["records"]] == ["CRIT"] * 3
    assert values(odd) == [None] * 3  # no number recorded (NaN is not JSON either)
    assert suite.results()["test_json_fields_within_limits[api]"]["verdict"] == "OK"


def test_json_nested_100k_deep_fails_in_one_line(suite, web):
    """The JSON decoder recurses per level: 50,000 levels fail each JSON check in one line, no
    RecursionError traceback; the status check is unaffected."""
    checks = {"json": {"status": "healthy"}, "json_limits": {"connections": {"crit": 80}}}
    inventory = "".join(
        http(f"deep{levels}", web.url("http", f"/deep?levels={levels}"), **checks)
        for levels in (50000, 100000)
    )
    result = suite.run(inventory, "", "-k", "json or status", paths=HTTP)
    result.assert_outcomes(passed=2, failed=4, skipped=1)  # json_checks: no target has them
    res = suite.results()
    for levels in (50000, 100000):
        url = web.url("http", f"/deep?levels={levels}")
        line = (
            f"deep{levels}: {url}: JSON nested {levels + 1} levels deep, "
            f"deeper than the ~{sys.getrecursionlimit()} levels the decoder can follow"
        )
        for test in ("test_json_fields_expected", "test_json_fields_within_limits"):
            assert res[f"{test}[deep{levels}]"]["reason"] == line
    assert "RecursionError" not in result.stdout.str()
    assert "Traceback" not in result.stdout.str()


def test_body_contains_present_and_missing(suite, web):
    inventory = http("ready", web.url("http", "/health/ready"), contains="ok") + http(
        "page", web.url("http", "/notjson"), contains=["Welcome", "healthy"]
    )
    result = suite.run(inventory, "", "-k", "body_contains", paths=HTTP)
    result.assert_outcomes(passed=1, failed=1)
    res = suite.results()
    assert res["test_body_contains[ready]"]["verdict"] == "OK"
    page = res["test_body_contains[page]"]
    assert page["message"] == "page: body lacks 'healthy'"
    assert "<!doctype html>" in page["detail"]


# -- latency -----------------------------------------------------------------------------------

FAST_LIMITS = """
[http.latency_avg]
warn = "200ms"
crit = "250ms"

[http.latency_p95]
warn = "200ms"
crit = "250ms"
"""


def test_latency_average_and_p95_ok_and_over_limit(suite, web):
    inventory = http("api", web.url("http", "/health"), samples=3) + http(
        "slow", web.url("http", "/slow?seconds=0.3"), samples=3
    )
    result = suite.run(inventory, FAST_LIMITS, "-k", "latency", paths=HTTP)
    result.assert_outcomes(passed=2, failed=2)
    res = suite.results()
    assert res["test_latency_average_below_limit[api]"]["verdict"] == "OK"
    assert res["test_latency_p95_below_limit[api]"]["verdict"] == "OK"
    for test, word in (("average", "average"), ("p95", "p95")):
        slow = res[f"test_latency_{test}_below_limit[slow]"]
        match = re.fullmatch(
            rf"slow: {word} (\d+) ms over 3 requests > crit 250 ms", slow["message"]
        )
        assert match, slow["message"]
        assert int(match.group(1)) >= 300  # /slow sleeps 0.3 s
        assert values(slow)[0] >= 0.3
        assert re.fullmatch(r"min \d+ ms, max \d+ ms", slow["detail"])


def test_latency_override_applies_to_its_target_only(suite, web):
    slow = web.url("http", "/slow?seconds=0.3")
    inventory = http("batch", slow, samples=1) + http("api", slow, samples=1)
    thresholds = FAST_LIMITS + '\n[http.latency_avg.targets.batch]\nwarn = "1s"\ncrit = "2s"\n'
    result = suite.run(inventory, thresholds, "-k", "average", paths=HTTP)
    result.assert_outcomes(passed=1, failed=1)
    res = suite.results()
    batch = res["test_latency_average_below_limit[batch]"]
    assert (batch["outcome"], batch["threshold"]) == ("passed", "warn > 1.0 s, crit > 2.0 s")
    api = res["test_latency_average_below_limit[api]"]
    assert (api["outcome"], api["threshold"]) == ("failed", "warn > 200 ms, crit > 250 ms")


# -- TLS ---------------------------------------------------------------------------------------

TLS = ("-k", "tls or status")


def test_tls_valid_certificate_trusted_through_ca_bundle(suite, web):
    inventory = http("api", web.url("https"), verify=web.ca_path) + http(
        "default", web.url("https")
    )
    result = suite.run(inventory, "", *TLS, paths=HTTP)
    res = suite.results()
    for test in ("test_status_expected", "test_tls_certificate_valid"):
        assert res[f"{test}[api]"]["outcome"] == "passed", said(res[f"{test}[api]"])
    days = res["test_tls_certificate_not_expiring[api]"]
    assert days["outcome"] == "passed"
    assert days["measured"].startswith("expires in 36")  # ~365 days
    # Without the CA, the system trust store refuses the private CA: both checks say so.
    assert "unable to get local issuer certificate" in said(res["test_status_expected[default]"])
    valid = res["test_tls_certificate_valid[default]"]
    assert valid["message"] == (
        "default: TLS verification failed: unable to get local issuer certificate"
    )
    result.assert_outcomes(passed=4, failed=2)


def test_tls_expired_certificate_fails_verification_and_days(suite, web):
    inventory = http("old", web.url("expired"), verify=web.ca_path)
    result = suite.run(inventory, "", *TLS, paths=HTTP)
    result.assert_outcomes(failed=3)
    res = suite.results()
    assert said(res["test_status_expected[old]"]).endswith("TLS: certificate has expired")
    valid = res["test_tls_certificate_valid[old]"]
    assert valid["message"] == "old: TLS verification failed: certificate has expired"
    days = res["test_tls_certificate_not_expiring[old]"]["message"]
    assert days.startswith("old: expired 10.0 days ago (")
    assert days.endswith(") < crit 14.0 days")


def test_tls_certificate_expiring_in_5_days_crit_by_default_warn_by_override(suite, web):
    inventory = http("soon", web.url("expiring"), verify=web.ca_path) + http(
        "known", web.url("expiring"), verify=web.ca_path
    )
    thresholds = "[http.cert_days.targets.known]\nwarn = 30\ncrit = 3\n"
    result = suite.run(inventory, thresholds, "-k", "expiring", paths=HTTP)
    assert outcomes(result) == {"warned": 1, "failed": 1}
    res = suite.results()
    soon = res["test_tls_certificate_not_expiring[soon]"]["message"]
    assert soon.startswith("soon: expires in 5.0 days (")
    assert soon.endswith(") < crit 14.0 days")
    known = res["test_tls_certificate_not_expiring[known]"]
    assert (known["outcome"], known["verdict"]) == ("warned", "WARN")
    assert known["message"].endswith("< warn 30.0 days")


def test_tls_wrong_hostname_fails_naming_the_mismatch(suite, web):
    inventory = http("api", web.url("wrong_host", host="localhost"), verify=web.ca_path)
    result = suite.run(inventory, "", *TLS, paths=HTTP)
    result.assert_outcomes(passed=1, failed=2)  # the expiry date itself is fine
    res = suite.results()
    mismatch = "Hostname mismatch, certificate is not valid for 'localhost'"
    assert mismatch in said(res["test_status_expected[api]"])
    assert mismatch in res["test_tls_certificate_valid[api]"]["message"]


def test_tls_verify_false_skips_verification_but_checks_expiry(suite, web):
    inventory = http("legacy", web.url("expired"), verify=False)
    result = suite.run(inventory, "", *TLS, paths=HTTP)
    result.assert_outcomes(passed=1, skipped=1, failed=1)
    res = suite.results()
    assert res["test_status_expected[legacy]"]["outcome"] == "passed"
    reason = "no [[http]] target in inventory.toml verifies TLS"
    assert res["test_tls_certificate_valid[-]"]["reason"] == reason
    assert "expired 10.0 days ago" in res["test_tls_certificate_not_expiring[legacy]"]["message"]


def test_plain_http_skips_tls_checks_with_reason(suite, web):
    result = suite.run(http("api", web.url("http")), "", "-k", "tls", paths=HTTP)
    result.assert_outcomes(skipped=2)
    for test in ("test_tls_certificate_valid[-]", "test_tls_certificate_not_expiring[-]"):
        assert suite.results()[test]["reason"] == "no [[http]] target in inventory.toml is https"


# -- unreachable -------------------------------------------------------------------------------

EVERY_CHECK = {"json": {"status": "healthy"}, "json_limits": {"connections": {"crit": 80}}}


def test_refused_port_fails_connectivity_then_the_rest_at_once(suite, web):
    inventory = http("down", web.url("refused"), contains="ok", **EVERY_CHECK) + http(
        "down_tls", web.url("refused").replace("http:", "https:"), verify=web.ca_path
    )
    result = suite.run(inventory, "", paths=HTTP)
    res = suite.results()
    assert res["test_status_expected[down]"]["reason"] == (
        f"down: unreachable: GET {web.url('refused')}: connection refused"
    )
    see = "not run: down unreachable (see test_status_expected[down])"
    others = [t for t in res if t.endswith("[down]") and "status" not in t and "tls" not in t]
    assert len(others) == 5
    for test in others:
        assert res[test]["outcome"] == "not_run"
        assert res[test]["reason"] == see, test
    # TLS checks of an https target that is down are not run either (they do not skip).
    assert (
        said(res["test_tls_certificate_not_expiring[down_tls]"])
        == "not run: down_tls unreachable (see test_status_expected[down_tls])"
    )
    # Checks a target does not configure (contains on down_tls, TLS on down) are not generated.
    # The terminal counts the checks that point to the real error apart (opscheck.outage).
    # not_contains and json_checks: no target has them, one skip each.
    assert outcomes(result) == {"failed": 2, "skipped": 2, "unreachable": 9}


def test_blackhole_waits_for_the_timeout_only_once(suite, web):
    """A server that accepts and never answers costs one timeout, not one per check."""
    inventory = http("hung", web.url("blackhole"), timeout="1s", contains="ok", **EVERY_CHECK)
    start = time.perf_counter()
    result = suite.run(inventory, "", paths=HTTP)
    elapsed = time.perf_counter() - start
    # The terminal counts the checks that point to the real error apart (opscheck.outage).
    # 4 skipped: TLS (an http URL), not_contains and json_checks (not set)
    assert result.parseoutcomes() == {"failed": 1, "skipped": 4, "unreachable": 5}
    res = suite.results()
    status = res["test_status_expected[hung]"]
    assert status["reason"].endswith("no response within 1 s (read timed out)")
    assert status["duration"] >= 0.9
    others = [r for t, r in res.items() if r["outcome"] == "not_run" and "status" not in t]
    assert len(others) == 5
    for other in others:
        assert other["reason"] == "not run: hung unreachable (see test_status_expected[hung])"
        assert other["duration"] < 0.5, other["id"]
    # Six failing checks that each waited their 1 s would take over 6 s.
    assert elapsed < 3.0, f"{elapsed:.1f} s: the checks waited for the timeout one by one"


# -- the testbed itself ------------------------------------------------------------------------


def test_testbed_stop_leaves_no_threads_or_sockets():
    threads, fds = _settled()
    bed = HttpTestbed(slow=3.0).start()
    session = requests.Session()  # keep-alive connections that stop() must cut
    assert session.get(bed.url("http"), timeout=2).json()["status"] == "healthy"
    assert session.get(bed.url("https"), verify=bed.ca_path, timeout=2).status_code == 200
    slow = threading.Thread(target=_ignore_errors, args=(bed.url("http", "/slow"),))
    slow.start()
    hung = threading.Thread(target=_ignore_errors, args=(bed.url("blackhole"),))
    hung.start()
    time.sleep(0.2)
    ca, url = Path(bed.ca_path), bed.url("http")
    start = time.perf_counter()
    bed.stop()
    assert time.perf_counter() - start < 1.0  # /slow (3 s) and keep-alive do not hold it up
    slow.join(timeout=5)
    hung.join(timeout=5)
    session.close()
    assert set(threading.enumerate()) == threads
    assert len(os.listdir("/proc/self/fd")) == fds
    assert not ca.exists()
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=1)


def test_testbed_sends_replies_without_waiting_for_the_clients_ack(web):
    """TCP_NODELAY on every accepted connection: with Nagle on, a reply's body waited ~40 ms for
    the client's delayed ACK of its headers, and the latency checks measured that timer."""
    with requests.Session() as session:  # kept-alive: the server's socket stays open
        for server in ("http", "https"):
            assert session.get(web.url(server), verify=web.ca_path, timeout=2).status_code == 200
        accepted = [sock for app, _ in web._apps for sock in list(app._open)]
        assert len(accepted) >= 2
        for sock in accepted:
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0, sock


def _settled() -> tuple[set[threading.Thread], int]:
    """This process's threads and open files, once the handlers of the runs before have seen
    their clients go (closed at the end of a run, or garbage not yet collected): up to 1 s."""
    gc.collect()
    for _ in range(20):
        if not any(t.name.endswith("(process_request_thread)") for t in threading.enumerate()):
            break
        time.sleep(0.05)
    return set(threading.enumerate()), len(os.listdir("/proc/self/fd"))


def _ignore_errors(url: str) -> None:
    with contextlib.suppress(requests.RequestException):  # stop() cuts it short on purpose
        requests.get(url, timeout=4)
