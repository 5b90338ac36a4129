"""Issue 12, items 2-4 (JSON half): requests with bodies (POST/PUT/PATCH, ``params``),
``json_checks`` in JMESPath (values, empty lists, any/all/none, aggregates, ratios, numbers sent
as strings) and ``not_contains``, against the real HTTP testbed (``opscheck.testbed.http``).

Each check passes on the healthy answer and fails on the broken one (``?state=broken``), with the
message the operator reads.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from opscheck.testbed.http import HttpTestbed
from tests_meta.results import values
from tests_meta.test_http_checks import http, said

HTTP = ("suites/http",)


@pytest.fixture(scope="module")
def web() -> Iterator[HttpTestbed]:
    with HttpTestbed(slow=0.3) as bed:
        yield bed


def test_post_json_body_status_json_and_latency(suite, web):
    """A search API's POST /query: the body and params are sent; every latency sample is the same
    POST (the testbed delays only a well-formed search: a GET or an empty body would be fast);
    PATCH sends its body too; a GET to it (405) fails the status check."""
    search = dict(
        method="POST",
        json_body={"query": "disk full", "size": 2},
        params={"limit": 5},
        json={"query": "disk full", "limit": "5"},
        json_checks=[{"path": "hits", "aggregate": "length", "crit": 1, "direction": "below"}],
        samples=3,
    )
    slow = dict(search, samples=2)
    inventory = (
        http("search", web.url("http", "/query"), **search)
        + http("slow", web.url("http", "/query?delay=0.7"), **slow)
        + http("get", web.url("http", "/query"), samples=0)
        + http("patch", web.url("http", "/query"), **dict(search, method="PATCH", samples=0))
        + http("text", web.url("http", "/query"), method="PUT", data="query=x", samples=0)
    )
    result = suite.run(inventory, "", paths=HTTP)
    res = suite.results()
    assert res["test_status_expected[search]"]["verdict"] == "OK"
    assert res["test_json_fields_expected[search]"]["verdict"] == "OK"
    assert values(res["test_json_checks[search]"]) == [2]  # hits sent back for size = 2
    assert res["test_latency_average_below_limit[search]"]["verdict"] == "OK"
    late = res["test_latency_average_below_limit[slow]"]
    assert late["outcome"] == "failed"
    assert re.fullmatch(r"slow: average \d+ ms over 2 requests > crit 500 ms", late["message"])
    assert res["test_json_fields_expected[patch]"]["verdict"] == "OK"
    get = res["test_status_expected[get]"]
    assert (
        said(get)
        == f"get: GET {web.url('http', '/query')} answered 405 Method Not Allowed (expected 2xx)"
    )
    assert "POST a JSON query" in get["detail"]
    text = res["test_status_expected[text]"]  # data is sent as it is: not JSON, a 400
    assert "answered 400 Bad Request" in said(text)
    assert "body is not JSON" in text["detail"]
    assert result.ret == 1


ALERTS_EMPTY = [{"path": "data.alerts", "name": "firing alerts", "empty": True}]


def test_alerts_list_must_be_empty(suite, web):
    inventory = "".join(
        http(state, web.url("http", f"/alerts?state={state}"), json_checks=ALERTS_EMPTY, samples=0)
        for state in ("healthy", "broken")
    )
    suite.run(inventory, "", "-k", "json_checks", paths=HTTP)
    res = suite.results()
    assert res["test_json_checks[healthy]"]["verdict"] == "OK"
    broken = res["test_json_checks[broken]"]
    assert broken["outcome"] == "failed"
    assert said(broken).startswith("broken: firing alerts 2 items: {'instance': 'db-1', ")
    assert "'name': 'DiskFull'" in said(broken) and "'name': 'HighLatency'" in said(broken)


STATS = [
    {"path": "services", "all": "status == 'up'", "name": "services up"},
    {"path": "services", "any": "name == 'search'"},
    {"path": "data.alerts || `[]`", "none": "severity == 'critical'"},
    {"path": "services[].latency_ms", "aggregate": "max", "warn": 1000, "crit": 2000},
    {"path": "services[].latency_ms", "aggregate": "avg", "warn": 500, "crit": 1000},
    {"path": "queues", "aggregate": "sum", "warn": 100, "crit": 500},
    {"path": "error_rate", "warn": 0.01, "crit": 0.05},
    {"path": "requests.errors", "of": "requests.total", "name": "error rate", "warn": 1, "crit": 5},
]


def test_any_all_none_aggregates_string_numbers_and_ratio(suite, web):
    inventory = "".join(
        http(state, web.url("http", f"/stats?state={state}"), json_checks=STATS, samples=0)
        for state in ("healthy", "broken")
    )
    suite.run(inventory, "", "-k", "json_checks", paths=HTTP)
    res = suite.results()
    healthy = res["test_json_checks[healthy]"]
    assert healthy["verdict"] == "OK", healthy
    assert [r["value"] for r in healthy["records"]] == [
        1.0, 1.0, 1.0, 310.0, pytest.approx(170.1666, rel=1e-3), 11.0, 0.006, 0.6
    ]  # fmt: skip
    broken = res["test_json_checks[broken]"]
    assert broken["outcome"] == "failed"
    assert broken["reason"].splitlines() == [
        "broken: services up 1 of 3 do not match: {'latency_ms': '80', 'name': 'worker', "
        "'status': 'down'}",
        "broken: services[].latency_ms max 2950 of 3 values > crit 2000",
        "broken: services[].latency_ms avg 1050.17 of 3 values > crit 1000",
        "broken: queues sum 954 of 3 values > crit 500",
        "broken: error_rate = 0.0975 > crit 0.05",
        "broken: error rate 9.75 % (195 / 2000) > crit 5",
    ]


def test_wrong_documents_fail_with_the_reason(suite, web):
    checks = [
        {"path": "missing", "empty": False},
        {"path": "services[0].name", "warn": 1},
        {"path": "services[0]", "all": "status == 'up'"},
        {"path": "requests.errors", "of": "requests.none", "crit": 1},
        {"path": "services[].name", "aggregate": "avg", "crit": 1},
        {"path": "requests.total", "equals": 2000},
        {"path": "error_rate", "equals": 0.006},
    ]
    inventory = http("odd", web.url("http", "/stats"), json_checks=checks, samples=0)
    inventory += http("page", web.url("http", "/notjson"), json_checks=checks, samples=0)
    suite.run(inventory, "", "-k", "json_checks", paths=HTTP)
    res = suite.results()
    assert res["test_json_checks[odd]"]["reason"].splitlines() == [
        "odd: missing missing or null",
        "odd: services[0].name = 'api' (not a number)",
        "odd: services[0] = {'latency_ms': '120.5', 'name': 'api', 'status': 'up'} (not a list)",
        "odd: requests.errors / requests.none requests.none missing or null",
        "odd: services[].name [0] = 'api' (not a number)",
    ]  # equals 2000 and "0.006" == 0.006 hold
    assert "response is not JSON" in said(res["test_json_checks[page]"])


def test_not_contains(suite, web):
    inventory = http(
        "calm", web.url("http", "/health"), not_contains=["error", "exhausted"], samples=0
    ) + http(
        "failing",
        web.url("http", "/error"),
        not_contains=["exhausted", "panic"],
        expect_status=[500],
        samples=0,
    )
    suite.run(inventory, "", "-k", "not_contains", paths=HTTP)
    res = suite.results()
    assert res["test_body_not_contains[calm]"]["verdict"] == "OK"
    failing = res["test_body_not_contains[failing]"]
    assert said(failing) == "failing: body contains 'exhausted'"
    assert "database connection pool exhausted" in failing["detail"]


def test_json_checks_as_toml_tables_read_like_the_runbook(suite, web):
    """The README's form: one [[http.json_checks]] table per runbook line."""
    inventory = f"""
[[http]]
name = "alertmanager"
url = "{web.url("http", "/alerts?state=broken")}"
samples = 0

[[http.json_checks]]
name = "critical alerts"
path = "data.alerts[?severity == 'critical']"
aggregate = "length"
crit = 0
"""
    suite.run(inventory, "", "-k", "json_checks", paths=HTTP)
    got = suite.results()["test_json_checks[alertmanager]"]
    assert said(got) == "alertmanager: critical alerts length 1 > crit 0"
