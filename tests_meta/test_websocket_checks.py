"""The WebSocket checks (suites/websocket) against real ``websockets`` servers on loopback
(``opscheck.testbed.websocket``): healthy, down, frozen, answering wrongly, and with expired,
expiring, untrusted and wrong-host certificates. Each check passes when healthy and fails,
saying what it measured, when broken."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from opscheck.testbed.websocket import WRONG_REPLY, WebsocketTestbed

TOKEN = "ws-tok-8Hn3qL5vX2"  # what the testbed's /auth accepts; tests hand it over as $WS_TOKEN
WS = ("suites/websocket",)


@pytest.fixture(scope="module")
def bed() -> Iterator[WebsocketTestbed]:
    with WebsocketTestbed(token=TOKEN) as testbed:
        yield testbed


def websocket(name: str, url: str, **keys: Any) -> str:
    """One ``[[websocket]]`` target of an inventory."""
    keys = {"name": name, "url": url, "timeout": "2s", **keys}
    return "[[websocket]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in keys.items()) + "\n"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def said(result: dict[str, Any]) -> str:
    return str(result.get("message") or result.get("reason") or "")


def test_healthy_ws_and_wss_pass_every_check(suite, bed):
    inventory = websocket(
        "feed", bed.url("ws", "/echo"), send='{"op": "ping"}', expect='"op": "ping"'
    ) + websocket(
        # A server that greets first: the reply is looked for among the messages that come.
        "secure",
        bed.url("https", "/greet"),
        verify=bed.ca_path,
        send="hello",
        expect_regex="^hel+o$",
    )
    result = suite.run(inventory, "", paths=WS)
    res = suite.results()
    result.assert_outcomes(passed=8)
    assert res["test_websocket_handshake[feed]"]["measured"].startswith(
        f"{bed.url('ws', '/echo')}: 101 Switching Protocols in "
    )
    latency = res["test_websocket_ping_latency_below_limit[feed]"]
    assert latency["measured"].startswith("ping→pong average ")
    assert latency["measured"].endswith(" ms over 3 pings")
    assert latency["records"][0]["value"] < 0.2
    assert res["test_websocket_reply_expected[secure]"]["measured"] == "to 'hello': 'hello'"
    assert res["test_websocket_tls_certificate_valid[secure]"]["measured"].startswith("valid (")
    assert res["test_websocket_tls_certificate_not_expiring[secure]"]["measured"].startswith(
        "expires in 36"
    )
    # A plain ws:// target has no certificate: only the wss:// one is checked.
    assert "test_websocket_tls_certificate_valid[feed]" not in res


def test_ping_latency_judged_against_levels(suite, bed):
    thresholds = '[websocket.ping_latency]\nwarn = "0.001ms"\ncrit = "0.002ms"\n'
    result = suite.run(websocket("feed", bed.url()), thresholds, "-k", "ping", paths=WS)
    result.assert_outcomes(failed=1)
    message = suite.results()["test_websocket_ping_latency_below_limit[feed]"]["message"]
    assert message.startswith("feed: ping→pong average ")
    assert re.fullmatch(r"feed: ping→pong average [0-9.]+ ms over 3 pings > crit 0 ms", message)


def test_server_down_fails_the_handshake_then_the_rest_at_once(suite, bed):
    url = bed.url("refused", "/echo")
    inventory = websocket("gone", url, send="x", expect="x")
    result = suite.run(inventory, "", paths=WS)
    res = suite.results()
    assert res["test_websocket_handshake[gone]"]["reason"] == (
        f"gone: unreachable: {url}: connection refused"
    )
    for test in ("test_websocket_ping_latency_below_limit", "test_websocket_reply_expected"):
        assert said(res[f"{test}[gone]"]) == (
            "not run: gone unreachable (see test_websocket_handshake[gone])"
        )
    # The TLS checks of a ws:// target are not generated (skipped as [-]).
    assert result.parseoutcomes() == {"failed": 1, "unreachable": 2, "skipped": 2}


def test_silent_server_bounds_the_handshake_by_the_timeout(suite):
    """A port that accepts and never answers (an app whose workers are all stuck): the handshake
    fails after the timeout, once for the target."""
    with socket.create_server(("127.0.0.1", 0), backlog=8) as silent:
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}/ws"
        started = time.perf_counter()
        result = suite.run(websocket("hung", url, timeout="1s", send="x"), "", paths=WS)
        elapsed = time.perf_counter() - started
    assert suite.results()["test_websocket_handshake[hung]"]["reason"] == (
        f"hung: unreachable: {url}: no handshake within 1 s"
    )
    assert result.parseoutcomes() == {"failed": 1, "unreachable": 2, "skipped": 2}
    assert elapsed < 10, f"{elapsed:.1f} s"


def test_frozen_server_costs_one_timeout_per_wait(suite):
    """A server frozen (SIGSTOP) after the handshake answers no ping: the check fails after
    the timeout, and the target is down for the rest of the run."""
    with WebsocketTestbed() as frozen:
        url = frozen.url("ws", "/freeze")
        inventory = websocket("stuck", url, timeout="1s", send="x", expect="x")
        started = time.perf_counter()
        result = suite.run(inventory, "", paths=WS)
        elapsed = time.perf_counter() - started
    res = suite.results()
    assert res["test_websocket_handshake[stuck]"]["outcome"] == "passed"
    ping = said(res["test_websocket_ping_latency_below_limit[stuck]"])
    reply = said(res["test_websocket_reply_expected[stuck]"])
    assert ping == "stuck: stopped answering mid-run: ping 1 of 3: no pong within 1 s"
    # Measured ahead, either check may wait first: the reply check for its own timeout, or not
    # at all once the ping found the server gone.
    assert reply in (
        "stuck: no reply containing 'x' to 'x' within 1 s (0 messages received)",
        "not run: stuck unreachable (see test_websocket_ping_latency_below_limit[stuck])",
    ), reply
    assert elapsed < 15, f"{elapsed:.1f} s"  # two timeouts and the close, not hours
    assert result.parseoutcomes()["passed"] == 1


def test_wrong_reply_and_a_close_fail_naming_what_came(suite, bed):
    inventory = (
        websocket("wrong", bed.url("ws", "/wrong"), send="status", expect="ok")
        + websocket("closing", bed.url("ws", "/close"), send="status", expect_regex="^ok")
        + websocket("greeted", bed.url("ws", "/greet"), expect="welcome")  # nothing sent
    )
    result = suite.run(inventory, "", "-k", "reply", paths=WS)
    result.assert_outcomes(passed=1, failed=2)
    res = suite.results()
    wrong = res["test_websocket_reply_expected[wrong]"]
    assert wrong["message"] == (
        "wrong: no reply containing 'ok' to 'status' within 2 s (1 message received)"
    )
    assert wrong["detail"] == f"last received: {WRONG_REPLY!r}"
    assert res["test_websocket_reply_expected[closing]"]["message"] == (
        "closing: no reply matching '^ok' to 'status': the server closed the connection "
        "(1008: 'unauthenticated') (0 messages received)"
    )
    assert res["test_websocket_reply_expected[greeted]"]["measured"] == (
        "from the server: 'welcome'"
    )


def test_expired_certificate_fails_handshake_verification_and_days(suite, bed):
    inventory = websocket("old", bed.url("expired"), verify=bed.ca_path)
    result = suite.run(inventory, "", paths=WS)
    result.assert_outcomes(failed=4, skipped=1)  # nothing to send: no reply check
    res = suite.results()
    assert res["test_websocket_handshake[old]"]["message"] == (
        f"old: {bed.url('expired')}: TLS: certificate has expired"
    )
    assert res["test_websocket_tls_certificate_valid[old]"]["message"] == (
        "old: TLS verification failed: certificate has expired"
    )
    days = res["test_websocket_tls_certificate_not_expiring[old]"]["message"]
    assert days.startswith("old: expired 10.0 days ago (")
    assert days.endswith(") < crit 14.0 days")
    # No ping on a refused handshake: the check says why.
    assert said(res["test_websocket_ping_latency_below_limit[old]"]).endswith(
        "TLS: certificate has expired"
    )


def test_certificate_expiring_soon_crit_by_default_warn_by_override(suite, bed):
    inventory = websocket("soon", bed.url("expiring"), verify=bed.ca_path) + websocket(
        "known", bed.url("expiring"), verify=bed.ca_path
    )
    thresholds = "[websocket.cert_days.targets.known]\nwarn = 30\ncrit = 3\n"
    result = suite.run(inventory, thresholds, "-k", "expiring or handshake", paths=WS)
    assert result.parseoutcomes() == {"passed": 2, "warned": 1, "failed": 1, "deselected": 5}
    res = suite.results()
    soon = res["test_websocket_tls_certificate_not_expiring[soon]"]["message"]
    assert soon.startswith("soon: expires in 5.0 days (")
    assert soon.endswith(") < crit 14.0 days")
    assert res["test_websocket_tls_certificate_not_expiring[known]"]["verdict"] == "WARN"


def test_untrusted_and_wrong_host_certificates_fail_verification(suite, bed):
    inventory = (
        websocket("private", bed.url("https"))  # the testbed CA is not in the trust store
        + websocket("mismatch", bed.url("wrong_host", host="localhost"), verify=bed.ca_path)
        + websocket("legacy", bed.url("https"), verify=False)
    )
    result = suite.run(inventory, "", "-k", "handshake or valid", paths=WS)
    res = suite.results()
    untrusted = "unable to get local issuer certificate"
    assert said(res["test_websocket_handshake[private]"]).endswith(f"TLS: {untrusted}")
    assert res["test_websocket_tls_certificate_valid[private]"]["message"] == (
        f"private: TLS verification failed: {untrusted}"
    )
    mismatch = "Hostname mismatch, certificate is not valid for 'localhost'"
    assert mismatch in said(res["test_websocket_handshake[mismatch]"])
    assert mismatch in said(res["test_websocket_tls_certificate_valid[mismatch]"])
    # verify = false: the handshake passes, the verification check is not generated for it.
    assert res["test_websocket_handshake[legacy]"]["outcome"] == "passed"
    assert "test_websocket_tls_certificate_valid[legacy]" not in res
    result.assert_outcomes(passed=1, failed=4)


def test_bearer_token_reaches_the_server_and_never_leaks(suite, bed, monkeypatch, tmp_path):
    monkeypatch.setenv("WS_TOKEN", TOKEN)
    inventory = (
        websocket("authed", bed.url("ws", "/auth"), bearer_token_env="WS_TOKEN", send="x")
        + websocket("anonymous", bed.url("ws", "/auth"))
        + websocket("leaky", bed.url("ws", "/nowhere?token=${WS_TOKEN}"))
        + websocket("header", bed.url("ws", "/auth"), headers={"Authorization": "Basic x"})
    )
    junit = tmp_path / "junit.xml"
    result = suite.run(inventory, "", "-k", "handshake or reply", f"--junitxml={junit}", paths=WS)
    res = suite.results()
    assert res["test_websocket_handshake[authed]"]["outcome"] == "passed"
    assert res["test_websocket_reply_expected[authed]"]["measured"] == "to 'x': 'x'"
    assert res["test_websocket_handshake[anonymous]"]["message"] == (
        f"anonymous: {bed.url('ws', '/auth')}: answered 401 Unauthorized "
        "(expected 101 Switching Protocols)"
    )
    assert said(res["test_websocket_handshake[leaky]"]).endswith(
        "/nowhere?token=***: answered 404 Not Found (expected 101 Switching Protocols)"
    )
    assert "answered 401 Unauthorized" in said(res["test_websocket_handshake[header]"])
    for where, text in {
        "terminal": result.stdout.str() + result.stderr.str(),
        "json": suite.json_path.read_text(),
        "junit": junit.read_text(),
    }.items():
        assert TOKEN not in text, f"the token leaked into the {where} output"
