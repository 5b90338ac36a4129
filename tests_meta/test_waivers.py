"""Waivers (opscheck/waivers.py): a waived CRIT passes as waived with its reason, fails again on
the day it expires saying so, covers only its subject; a stale or unused waiver is reported; a
waiver without an expiry, too long or for an unknown check is refused; a ``*`` waiver is the
maintenance window of a target that is really down.

Real servers: an HTTP server on 127.0.0.1 in this module answering JSON whose two numbers are
past their crit levels, and one that is stopped (nothing listens on its port).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

HTTP = ("suites/http",)
TODAY = dt.datetime.now(dt.UTC).date()
BUSY = {"status": "degraded", "connections": 97, "queue": 95}  # both past crit 80


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps(BUSY).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class Server:
    """A real HTTP server on a loopback port; ``stop()`` closes it (connections are refused)."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/health"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def busy() -> Iterator[Server]:
    server = Server()
    yield server
    server.stop()


@pytest.fixture
def stopped() -> str:
    """The URL of a server that ran and was stopped: its port refuses connections."""
    server = Server()
    server.stop()
    return server.url


def http(name: str, url: str) -> str:
    return (
        f'[[http]]\nname = "{name}"\nurl = "{url}"\njson = {{ status = "degraded" }}\n'
        "json_limits = { connections = { crit = 80 }, queue = { crit = 80 } }\n\n"
    )


def waiver(check: str, target: str = "api", **keys: Any) -> str:
    keys = {"reason": "new disk ordered, INC-4711", "owner": "alice", **keys}
    keys.setdefault("expires", TODAY + dt.timedelta(days=14))
    lines = [f'check = "{check}"', f'target = "{target}"']
    for key, value in keys.items():
        if isinstance(value, dt.date):  # a TOML date or offset datetime, unquoted
            shown = value.isoformat().replace("+00:00", "Z")
        else:
            shown = json.dumps(value)
        lines.append(f"{key} = {shown}")
    return "[[waiver]]\n" + "\n".join(lines) + "\n\n"


def run(suite: Any, inventory: str, waivers: str, *args: str) -> pytest.RunResult:
    path = suite.pytester.path / "w.toml"
    path.write_text(waivers)
    return suite.run(inventory, "", "--waivers", str(path), *args, paths=HTTP)


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def properties(result: pytest.RunResult, test: str) -> dict[str, str]:
    """The user properties of a test's call report (what every report is built from)."""
    reports = result.reprec.getreports("pytest_runtest_logreport")  # type: ignore[attr-defined]
    found = [r for r in reports if r.when == "call" and r.nodeid.endswith(f"::{test}")]
    assert found, test
    return {k: v for k, v in found[0].user_properties if isinstance(v, str)}


def statuses(result: pytest.RunResult) -> list[dict[str, Any]]:
    """``opscheck.waivers.summary`` of the run: each waiver with its status."""
    from opscheck import waivers

    calls = result.reprec.getcalls("pytest_unconfigure")  # type: ignore[attr-defined]
    return waivers.summary(calls[0].config)


def until(days: int = 14) -> str:
    return (TODAY + dt.timedelta(days=days)).isoformat()


LIMITS = "test_json_fields_within_limits[api]"


def test_a_waived_crit_passes_as_waived_with_its_reason(suite, busy, tmp_path):
    why = f"waived until {until()} by alice: new disk ordered, INC-4711"
    junit = tmp_path / "j.xml"
    result = run(
        suite,
        http("api", busy.url),
        waiver("http.json_limits"),
        "-k",
        "limits",
        f"--junitxml={junit}",
    )
    assert result.ret == pytest.ExitCode.OK, output(result)
    entry = suite.results()[LIMITS]
    # The verdict stays the measured one; each record says who accepted it, until when, why.
    assert entry["verdict"] == "CRIT"
    assert [(r["subject"], r["verdict"], r["waived"]) for r in entry["records"]] == [
        ("connections", "CRIT", why),
        ("queue", "CRIT", why),
    ]
    assert properties(result, LIMITS)["waived"] == why
    assert [w["status"] for w in statuses(result)] == ["applied"]
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    props = {p.get("name"): p.get("value") for p in cases[LIMITS].iter("property")}
    assert props["waived"] == why  # JUnit carries it too
    assert entry["outcome"] == "waived"  # opscheck.report maps passed + waived (report helper)
    document = json.loads(suite.json_path.read_text())
    assert document["summary"]["waived"] == 1
    assert document["waivers"][0]["status"] == "applied"


def test_a_waived_warn_passes_as_waived_even_with_fail_on_warn(suite, busy):
    inventory = http("api", busy.url).replace("crit = 80", "warn = 80")
    result = run(suite, inventory, waiver("http.json_fields_within_limits"), "-k", "limits",
                 "--fail-on-warn")  # fmt: skip
    assert result.ret == pytest.ExitCode.OK, output(result)
    records = suite.results()[LIMITS]["records"]
    assert [r["verdict"] for r in records] == ["WARN", "WARN"]
    assert all(r["waived"].startswith(f"waived until {until()} by alice") for r in records)
    assert properties(result, LIMITS)["waived"] == records[0]["waived"]


def test_on_the_day_it_expires_the_check_fails_again_saying_so(suite, busy):
    result = run(suite, http("api", busy.url), waiver("http.json_limits", expires=TODAY),
                 "-k", "limits")  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    entry = suite.results()[LIMITS]
    assert entry["outcome"] == "failed"
    expired = f"waiver expired on {TODAY.isoformat()}: new disk ordered, INC-4711, owner alice"
    assert entry["reason"] == (
        f"api: connections 97 > crit 80 ({expired})\napi: queue 95 > crit 80 ({expired})"
    )
    assert all(r["waived"] == "" for r in entry["records"])
    assert properties(result, LIMITS)["waiver_expired"] == expired
    head = f"w.toml: waiver[0] http.json_limits api (alice, expires {TODAY})"
    assert f"{head}: EXPIRED: its problem counts again (a CRIT fails the run)" in output(result)
    assert [w["status"] for w in statuses(result)] == ["expired"]


def test_a_waiver_of_one_subject_does_not_hide_another(suite, busy):
    result = run(suite, http("api", busy.url), waiver("http.json_limits", subject="connections"),
                 "-k", "limits")  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    entry = suite.results()[LIMITS]
    assert entry["outcome"] == "failed"
    assert entry["reason"] == "api: queue 95 > crit 80"  # the waived one is not a failure
    waived = {r["subject"]: bool(r["waived"]) for r in entry["records"]}
    assert waived == {"connections": True, "queue": False}
    assert "waived" not in properties(result, LIMITS)  # not every problem of it is accepted


def test_a_waiver_matching_nothing_is_reported_stale(suite, busy):
    """No such target; a check that ran, for api, but never runs for plain (no json_limits)."""
    plain = f'[[http]]\nname = "plain"\nurl = "{busy.url}"\n\n'
    waivers = waiver("http.json_limits", "web9") + waiver("http.json_limits", "plain")
    result = run(suite, http("api", busy.url) + plain, waivers, "-k", "limits or status")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # a stale waiver waives nothing
    text = output(result)
    stale = [
        f"w.toml: waiver[0] http.json_limits web9 (alice, expires {until()}): STALE: matches "
        "nothing: no target 'web9' in inventory.toml; remove it",
        f"w.toml: waiver[1] http.json_limits plain (alice, expires {until()}): STALE: matches "
        "nothing: check 'http.json_limits' does not run for plain; remove it",
    ]
    assert text.split("opscheck waivers to act on", 1)[1].splitlines()[1:3] == stale
    assert [w["status"] for w in statuses(result)] == ["stale", "stale"]
    document = json.loads(suite.json_path.read_text())  # the report helper's part
    assert [w["status"] for w in document["waivers"]] == ["stale", "stale"]
    assert [w["note"] for w in document["waivers"]] == [line.split("): ", 1)[1] for line in stale]
    assert "WAIVER" not in text  # said once, in the waivers' own section


def test_a_waiver_of_a_check_this_run_did_not_select_is_not_checked(suite, busy):
    """One waivers.toml for every schedule: the morning's TLS waiver is no news at midday (-m),
    nor the status waiver in a run of the limits only (-k). In the JSON, not in the terminal."""
    waivers = waiver("http.json_limits") + waiver("http.tls_certificate_valid", owner="carol")
    result = run(suite, http("api", busy.url), waivers, "-m", "midday")
    assert result.ret == pytest.ExitCode.OK, output(result)
    text = output(result)
    assert "waivers to act on" not in text and "waiver[1]" not in text, text
    document = json.loads(suite.json_path.read_text())
    assert [(w["status"], w["note"]) for w in document["waivers"]] == [
        ("applied", ""),
        ("not_checked", "not checked by this run: check 'http.tls_certificate_valid' did not run"),
    ]
    result = run(suite, http("api", busy.url), waivers + waiver("http.status"), "-k", "limits")
    assert result.ret == pytest.ExitCode.OK, output(result)
    assert "waivers to act on" not in output(result)
    assert [w["status"] for w in statuses(result)] == ["applied", "not_checked", "not_checked"]


def test_a_waiver_of_a_target_this_run_did_not_select_is_not_checked(suite, busy):
    """-k or --shard leaves a target out while its check runs for others: not stale."""
    other = f'[[http]]\nname = "other"\nurl = "{busy.url}"\n\n'
    waivers = waiver("http.status", "other")
    result = run(suite, http("api", busy.url) + other, waivers, "-k", "status and api")
    assert "waivers to act on" not in output(result), output(result)
    document = json.loads(suite.json_path.read_text())
    assert [(w["status"], w["note"]) for w in document["waivers"]] == [
        ("not_checked", "not checked by this run: no check ran for other")
    ]


def test_a_waiver_whose_check_now_passes_is_reported_unused(suite, busy):
    result = run(suite, http("api", busy.url), waiver("http.status"), "-k", "status")
    assert result.ret == pytest.ExitCode.OK
    assert (
        f"w.toml: waiver[0] http.status api (alice, expires {until()}): UNUSED: its check "
        "measured OK: no longer needed: remove it"
    ) in output(result)
    expected = [
        {"check": "http.status", "target": "api", "subject": "",
         "reason": "new disk ordered, INC-4711", "owner": "alice", "expires": until(),
         "status": "unused",
         "note": "UNUSED: its check measured OK: no longer needed: remove it"}
    ]  # fmt: skip
    assert statuses(result) == expected
    assert json.loads(suite.json_path.read_text())["waivers"] == expected


@pytest.mark.parametrize(
    ("waivers", "expected"),
    [
        (
            '[[waiver]]\ncheck = "http.json_limits"\ntarget = "api"\nreason = "r"\n'
            'owner = "alice"\n',
            "w.toml: waiver[0].expires: required key is missing (a waiver without an expiry is "
            "refused: give the day it ends, at most 90 days ahead, e.g. expires = {example})",
        ),
        (
            waiver("http.json_limits", expires=TODAY + dt.timedelta(days=91)),
            "w.toml: waiver[0].expires: expected a date at most 90 days ahead (on or before "
            "{latest}), got {too_late} (a longer maximum: [settings.waivers] max_days in "
            "inventory.toml)",
        ),
        (
            waiver("http.json_limit"),
            "w.toml: waiver[0].check: no such check key or check id 'http.json_limit' (did you "
            "mean 'http.json_limits'?); expected a check key (host.disk_used_pct), a check id "
            '(host.disk_used_below_limit) or "*"',
        ),
        (
            waiver("*", starts=TODAY + dt.timedelta(days=3), expires=TODAY + dt.timedelta(days=2)),
            "w.toml: waiver[0].starts: expected a start before expires ({in2}), got {in3}",
        ),
        (
            waiver("*") + waiver("*", expires=TODAY + dt.timedelta(days=20)),
            "w.toml: waiver[1]: duplicate waiver for * api (also waiver[0], their times overlap; "
            "keep one, with the later expiry if that is meant)",
        ),
        (
            waiver("*", reason=" ", expires="2026-12-15"),
            "w.toml: waiver[0].reason: expected a non-empty string, got ' '\n"
            "w.toml: waiver[0].expires: expected a date such as 2026-12-15 or a datetime with its "
            "offset such as 2026-12-14T22:00:00Z, got '2026-12-15' (write it without quotes: a "
            "TOML date)",
        ),
    ],
    ids=["no-expiry", "too-long", "unknown-check", "starts-after-expires", "duplicate", "types"],
)
def test_a_mistaken_waiver_stops_the_run_in_one_line(suite, busy, waivers, expected):
    result = run(suite, http("api", busy.url), waivers)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    day = dt.timedelta(days=1)
    expected = expected.format(
        example=TODAY + 30 * day, latest=TODAY + 90 * day, too_late=TODAY + 91 * day,
        in2=TODAY + 2 * day, in3=TODAY + 3 * day,
    )  # fmt: skip
    errors = [line.removeprefix("ERROR: ") for line in result.errlines if line.strip()]
    assert errors == expected.splitlines(), result.errlines


def test_max_days_is_a_setting(suite, busy):
    inventory = "[settings.waivers]\nmax_days = 200\n\n" + http("api", busy.url)
    waivers = waiver("http.json_limits", expires=TODAY + dt.timedelta(days=150))
    result = run(suite, inventory, waivers, "-k", "limits")
    assert result.ret == pytest.ExitCode.OK, output(result)


def test_waivers_toml_beside_the_run_or_from_the_environment(suite, busy, monkeypatch):
    """Found as inventory.toml is: ./waivers.toml where opscheck runs, else $OPSCHECK_WAIVERS."""
    inventory = http("api", busy.url)
    (suite.pytester.path / "waivers.toml").write_text(waiver("http.json_limits"))
    result = suite.run(inventory, "", "-k", "limits", paths=HTTP)
    assert result.ret == pytest.ExitCode.OK, output(result)
    (suite.pytester.path / "waivers.toml").unlink()
    elsewhere = suite.pytester.path / "elsewhere.toml"
    elsewhere.write_text(waiver("http.json_limits", subject="queue"))
    monkeypatch.setenv("OPSCHECK_WAIVERS", str(elsewhere))
    result = suite.run(inventory, "", "-k", "limits", paths=HTTP)
    assert suite.results()[LIMITS]["reason"] == "api: connections 97 > crit 80"
    monkeypatch.setenv("OPSCHECK_WAIVERS", str(suite.pytester.path / "missing.toml"))
    result = suite.run(inventory, "", "-k", "limits", paths=HTTP)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"$OPSCHECK_WAIVERS: {suite.pytester.path / 'missing.toml'}: no such file" in (
        output(result)
    )


def test_a_maintenance_window_waives_a_target_that_is_down(suite, busy, stopped):
    """``check = "*"``: every check of the target, the failure that gives the real error and
    the checks not run because of it; the other target's problems still count."""
    inventory = http("api", busy.url) + http("down", stopped)
    waivers = waiver("*", "down", reason="datacenter move, CHG-1234", owner="bob")
    waivers += waiver("http.json_limits", "down")  # a check key: nothing measured, not checked
    result = run(suite, inventory, waivers)
    results = suite.results()
    down = {t: r for t, r in results.items() if t.endswith("[down]")}
    assert len(down) == 5, sorted(down)  # status, json fields and limits, latency avg and p95
    why = f"waived until {until()} by bob: datacenter move, CHG-1234"
    connectivity = properties(result, "test_status_expected[down]")
    assert connectivity["waived"] == why
    assert "connection refused" in connectivity["waived_failure"]
    for test in down:
        assert properties(result, test)["waived"] == why, test
    assert [w["status"] for w in statuses(result)] == ["applied", "not_checked"]
    assert "waiver[1]" not in output(result)
    # No record to show: the WAIVED line says the failure the window accepted.
    refused = results["test_status_expected[down]"]["waived_failure"]
    assert "connection refused" in refused
    assert f"WAIVED {results['test_status_expected[down]']['id']} - {refused} — {why}" in (
        output(result)
    )
    # A check not run because its target is down was seen as such, then waived.
    assert properties(result, "test_json_fields_expected[down]")["not_run"].startswith("not run:")
    # The healthy target's CRIT is not the window's: the run stays red for it only.
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    assert results[LIMITS]["outcome"] == "failed"
    failed = [t for t, r in results.items() if r["outcome"] in ("failed", "not_run")]
    assert failed == [LIMITS], failed
    assert all(down[test]["outcome"] == "waived" for test in down)  # the report helper's
    assert json.loads(suite.json_path.read_text())["waivers"][0]["status"] == "applied"


def test_a_maintenance_window_that_has_not_started_waives_nothing(suite, busy, stopped):
    starts = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2)
    waivers = waiver("*", "down", starts=starts, expires=TODAY + dt.timedelta(days=2))
    result = run(suite, http("down", stopped), waivers)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = {t: r["outcome"] for t, r in suite.results().items()}
    assert outcomes["test_status_expected[down]"] == "failed"
    assert "waived" not in properties(result, "test_status_expected[down]")
    shown = starts.isoformat().replace("+00:00", "Z")
    assert (
        f"w.toml: waiver[0] * down (alice, expires {until(2)}): not applied yet: starts {shown}"
        in (output(result))
    )


def test_an_expired_maintenance_window_says_so_under_the_failure(suite, stopped):
    waivers = waiver("http.status_expected", "down", expires=TODAY)
    result = run(suite, http("down", stopped), waivers, "-k", "status")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    entry = suite.results()["test_status_expected[down]"]
    expired = f"waiver expired on {TODAY}: new disk ordered, INC-4711, owner alice"
    assert entry["outcome"] == "failed"
    assert "connection refused" in entry["reason"] and expired in entry["reason"]
    assert properties(result, "test_status_expected[down]")["waiver_expired"] == expired


def test_under_xdist_the_controller_reports_each_waiver(suite, busy, stopped):
    """The workers judge; the controller works out each waiver's status from their reports."""
    from tests_meta.conftest import REPO

    pytester = suite.pytester
    (pytester.path / "inventory.toml").write_text(http("api", busy.url) + http("down", stopped))
    waivers = (
        waiver("*", "down")
        + waiver("http.json_limits", subject="connections")
        + waiver("http.json", owner="carol")  # `status = "degraded"` holds: unused
        + waiver("http.status", "web9")
    )
    (pytester.path / "waivers.toml").write_text(waivers)
    result = pytester.runpytest_subprocess(
        "-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO), "-n", "2",
        "--inventory", str(pytester.path / "inventory.toml"),
        "--json-report", str(suite.json_path), str(REPO / "suites/http"),
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the queue of api, not waived
    text = output(result)
    assert "waiver[2] http.json api (carol, " in text and "UNUSED: its check measured OK" in text
    assert "waiver[3] http.status web9 (alice, " in text and "STALE: matches nothing" in text
    assert "waiver[0]" not in text and "waiver[1]" not in text  # applied: nothing to do
    results = suite.results()
    assert results[LIMITS]["reason"] == "api: queue 95 > crit 80"
    assert [bool(r["waived"]) for r in results[LIMITS]["records"]] == [True, False]
    failed = [t for t, r in results.items() if r["outcome"] in ("failed", "not_run")]
    assert failed == [LIMITS]  # every check of the down target is waived
    statuses = [w["status"] for w in json.loads(suite.json_path.read_text())["waivers"]]
    assert statuses == ["applied", "applied", "unused", "stale"]  # the report helper's part


def test_a_full_disk_waived_for_its_mount(suite, tmp_path):
    """This machine's / measured for real, past a crit level of 1 %: waived for / only."""
    from opscheck.testbed.sshd import host_block

    path = tmp_path / "w.toml"
    path.write_text(waiver("host.disk_used_pct", "me", subject="/"))
    inventory = host_block("me", "local://", mounts=["/"])
    limits = '[host.disk_used_pct]\ncrit = "1%"\n'
    args = ("--waivers", str(path), "-k", "disk_used")
    result = suite.run(inventory, limits, *args, paths=("suites/host/test_resources.py",))
    assert result.ret == pytest.ExitCode.OK, output(result)
    entry = suite.results()["test_disk_used_below_limit[me]"]
    [record] = [r for r in entry["records"] if r["subject"] == "/"]
    assert record["verdict"] == "CRIT" and record["value"] > 1
    assert record["waived"] == f"waived until {until()} by alice: new disk ordered, INC-4711"
    assert entry["outcome"] == "waived"
