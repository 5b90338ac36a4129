"""FLAKY and WAIVED as outcomes (opscheck/report.py, report_page.py, export.py, merge.py,
archive_index.py): counted apart, passing, shown wherever an operator looks.

Real runs of the host checks of this machine (``local://``). The marks the recheck and the waivers
put on a report (the contract of issue 14: the ``flaky``/``waived``/``waiver_expired`` properties,
a record's ``recheck`` and ``waived``) are added by a small plugin of the test's own to the real
reports of real checks, so these tests show the display, whatever the mechanics do; the waivers'
summary and the flaky call-outs are given the same way (opscheck.waivers.summary,
opscheck.recheck.callouts).
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

import opscheck.recheck
import opscheck.waivers
from opscheck import merge, report_page
from opscheck.report import outcome_of, shown_verdict
from tests_meta.test_report_page import _one, _page

HOST = '[[host]]\nname = "me"\nuri = "local://"\ncpu_sample = "100ms"\n'
HOST_SUITE = ("suites/host",)
# Any memory use warns; no load worries (the FLAKY check's second measurement is OK).
WARN_MEMORY = (
    '[host.memory_used_pct]\nwarn = "0%"\n\n[host.load_per_core]\nwarn = 100\ncrit = 200\n'
)
CRIT_MEMORY = '[host.memory_used_pct]\ncrit = "0%"\n'
CHECKS = "memory_used or load_per_core or host_reachable"
WAIVER = "waived until 2026-12-15 by alice: more RAM ordered, INC-4711"
FLAKY = "900.00 per core > crit 200.00, then {measured} 5 s later"
CALLOUT = "FLAKY on 3 of the last 10 runs"
STALE = {
    "check": "host.disk_used_pct",
    "target": "web9",
    "subject": "/var",
    "reason": "new disk ordered, INC-4712",
    "owner": "bob",
    "expires": "2026-12-20",
    "status": "stale",
    "note": "STALE: matches nothing: no target 'web9' in inventory.toml; remove it",
}
# A waiver of a check this run did not select (-m, -k, --shard): in the JSON, nowhere else.
NOT_CHECKED = {
    "check": "http.tls_certificate_valid",
    "target": "api",
    "subject": "",
    "reason": "cert renewal, CHG-9",
    "owner": "carol",
    "expires": "2026-12-20",
    "status": "not_checked",
    "note": "not checked by this run: check 'http.tls_certificate_valid' did not run",
}
APPLIED = {
    "check": "host.memory_used_pct",
    "target": "me",
    "subject": "",
    "reason": "more RAM ordered, INC-4711",
    "owner": "alice",
    "expires": "2026-12-15",
    "status": "applied",
}

# What opscheck.recheck and opscheck.waivers put on a report, on the real reports of the checks
# named in MARKS (a part of the test id -> what to add); the Reporter's API after the run, as the
# end-of-run helpers (notify, heartbeat, nagios) read it, into api.json.
PLUGIN = """
import json
from pathlib import Path

import pytest

from opscheck.judge import RECORD

MARKS = json.loads({marks!r})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    # On the item, as the recheck and the waivers do: the call's report and the teardown's
    # carry the marks (their records are the item's).
    if call.when != "call":
        return (yield)
    for part, how in MARKS.items():
        if part not in item.nodeid:
            continue
        props = []
        for key, value in item.user_properties:
            if key == RECORD:
                record = json.loads(value)
                first = dict(record)
                for field, given in how.get("record", {{}}).items():
                    record[field] = given.format(**first) if isinstance(given, str) else given
                if how.get("recheck"):
                    record["recheck"] = {{**how["recheck"], "verdict": "CRIT"}}
                value = json.dumps(record)
                for extra in how.get("extra_records", []):
                    props.append((RECORD, json.dumps({{**first, **extra}})))
            props.append((key, value))
        for key, text in how.get("properties", {{}}).items():
            measured = json.loads(dict(props)[RECORD])["measured"]
            props.append((key, text.format(measured=measured)))
        item.user_properties[:] = props
    return (yield)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session):
    result = yield
    reporter = session.config.pluginmanager.get_plugin("opscheck-reporter")
    api = {{
        "headline": reporter.headline(),
        "problems": reporter.problems(),
        "unwaived": reporter.problems(waived=False),
        "summary": reporter.document["summary"],
        "waivers": reporter.document.get("waivers"),
    }}
    Path(session.config.invocation_params.dir, "api.json").write_text(json.dumps(api))
    return result
"""

WAIVED_MARK = {"properties": {"waived": WAIVER}, "record": {"waived": WAIVER}}
FLAKY_MARK = {
    "properties": {"flaky": FLAKY},
    "recheck": {
        "value": 900.0,
        "measured": "900.00 per core",
        "message": "me: 900.00 per core > crit 200.00",
        "delay": 5.0,
    },
}


def _marks(pytester: pytest.Pytester, marks: dict[str, Any]) -> tuple[str, ...]:
    (pytester.path / "outcome_marks.py").write_text(
        textwrap.dedent(PLUGIN.format(marks=json.dumps(marks)))
    )
    pytester.syspathinsert()
    return ("-p", "outcome_marks")


def _summary(config: Any) -> list[dict[str, Any]]:
    return [APPLIED, STALE, NOT_CHECKED]


def _callouts(config: Any, document: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for entry in document["tests"]:
        if entry.get("outcome") == "flaky":
            entry["flaky_history"] = CALLOUT
            found.append(
                {"check_id": entry["check_id"], "target": entry["target"], "flaky": 3, "of": 10}
                | {"text": CALLOUT}
            )
    return found


@pytest.fixture
def helpers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The waivers' summary and the recheck's call-outs, as their modules give them."""
    monkeypatch.setattr(opscheck.waivers, "summary", _summary, raising=False)
    monkeypatch.setattr(opscheck.recheck, "callouts", _callouts, raising=False)


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def _metrics(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(path.read_text())
        for s in family.samples
    }


def test_flaky_and_waived_shown_everywhere(suite, pytester, tmp_path, helpers):
    reports, prom = tmp_path / "reports", tmp_path / "opscheck.prom"
    marks = _marks(pytester, {"memory_used": WAIVED_MARK, "load_per_core": FLAKY_MARK})
    archive = ("--archive", "--reports-dir", str(reports), "--textfile", str(prom))
    result = suite.run(HOST, WARN_MEMORY, *marks, *archive, "-k", CHECKS, paths=HOST_SUITE)
    text = output(result)
    assert result.ret == pytest.ExitCode.OK, text  # both pass: counted apart, never failing
    outcomes = result.parseoutcomes()  # pytest's own line: "1 passed, 1 flaky, 1 waived"
    assert (outcomes["passed"], outcomes["flaky"], outcomes["waived"]) == (1, 1, 1)
    assert "warned" not in outcomes

    # JSON: the outcomes, counted apart, with both values and the waiver (schema-checked by run).
    document = json.loads(suite.json_path.read_text())
    assert {k: v for k, v in document["summary"].items() if v} == {
        "passed": 1,
        "flaky": 1,
        "waived": 1,
    }
    res = suite.results()
    memory, load = (
        res["test_memory_used_below_limit[me]"],
        res["test_load_per_core_below_limit[me]"],
    )
    assert memory["outcome"] == "waived" and memory["waived"] == WAIVER
    assert memory["verdict"] == "WARN"  # the measured verdict stays; the rows show WAIVED
    assert memory["records"][0]["waived"] == WAIVER
    assert load["outcome"] == "flaky" and load["verdict"] == "OK"
    assert load["flaky"] == FLAKY.format(measured=load["measured"])
    assert load["records"][0]["recheck"]["verdict"] == "CRIT"
    assert load["flaky_history"] == CALLOUT
    assert document["waivers"] == [APPLIED, STALE, NOT_CHECKED]
    assert document["flaky_history"][0]["text"] == CALLOUT

    # The Reporter's API after the run: the headline's words, the problems (FLAKY first here,
    # WAIVED after it, marked as such), the final document.
    api = json.loads((pytester.path / "api.json").read_text())
    assert api["headline"] == "1 FLAKY · 1 WAIVED · 1 OK"
    flaky_line = f"FLAKY me: {load['records'][0]['title']}: {load['flaky']} — {CALLOUT}"
    waived_line = f"WAIVED {memory['message']} — {WAIVER}"
    stale_line = (  # opscheck/waivers.py's words (its note); the not_checked one is not listed
        "WAIVER host.disk_used_pct web9 /var (bob, expires 2026-12-20): STALE: matches "
        "nothing: no target 'web9' in inventory.toml; remove it"
    )
    assert api["problems"] == [flaky_line, waived_line, stale_line]
    assert api["unwaived"] == [flaky_line]
    assert api["summary"] == document["summary"] and api["waivers"] == document["waivers"]

    # The terminal: its own section, both values, the waiver; the category counts.
    section = text.split("opscheck flaky and waived", 1)[1]
    assert f"FLAKY {load['id']} - {load['flaky']} — {CALLOUT}" in section
    assert f"WAIVED {memory['id']} - {memory['message']} — {WAIVER}" in section
    # The waivers to act on are opscheck/waivers.py's section, not repeated here.
    assert "WAIVER" not in section and "web9" not in section and "tls_certificate" not in text
    categories = text.split("opscheck summary by category", 1)[1]
    assert re.search(r"capacity +1 flaky, 1 waived", categories), categories
    assert "opscheck warnings" not in text  # a waived WARN is no warning

    # The HTML report's first screen (archived): headline in own colours, FLAKY listed as a
    # problem with both values and its call-out, the WAIVED block, the waivers to look at.
    (html,) = reports.glob("*/all-*.html")
    root, data, page = _page(html)
    headline = _one(root, "opscheck-headline")
    assert headline.words() == "1 FLAKY · 1 WAIVED · 1 OK"
    assert [s.classes for s in headline.find("span")] == [{"flaky"}, {"waived"}, {"ok"}]
    (row,) = _one(root, "opscheck-problems").find("tr", cls="problem")
    cells = {c.attrs["class"]: c.words() for c in row.find("td")}
    assert row.classes == {"problem", "flaky"} and cells["verdict"] == "FLAKY"
    assert cells["measured"] == load["flaky"]
    assert cells["message"] == f"CRIT, then passed when measured again — {CALLOUT}"
    (waived_row,) = _one(root, "opscheck-waived").find("tr", cls="waived")
    cells = {c.attrs["class"]: c.words() for c in waived_row.find("td")}
    assert cells["verdict"] == "WAIVED" and cells["waiver"] == WAIVER
    assert cells["message"] == memory["message"]
    (stale,) = _one(root, "opscheck-waivers").find("tr", cls="waiver")  # not the not_checked
    assert stale.find("td", cls="status")[0].words() == STALE["note"]
    assert stale.find("td", cls="owner")[0].words() == "bob"
    # pytest-html's table: own outcomes with counts and filters, the verdict cell says it.
    results = {i.split("::")[-1]: t[-1] for i, t in data["tests"].items()}
    assert results["test_memory_used_below_limit[me]"]["result"] == "Waived"
    assert results["test_load_per_core_below_limit[me]"]["result"] == "Flaky"
    assert results["test_memory_used_below_limit[me]"]["verdict"] == "WAIVED"
    assert results["test_load_per_core_below_limit[me]"]["verdict"] == "FLAKY"
    for outcome in ("Flaky", "Waived"):
        found = re.search(
            rf'data-test-result="{outcome.lower()}"\s*>\s*<span class="(\w+)">1 {outcome}', page
        )
        assert found and found.group(1) == outcome.lower(), outcome
    assert re.search(r'data-test-result="passed"\s*>\s*<span class="passed">1 Passed', page)
    assert "    'warned',\n    'flaky',\n    'waived',\n    'notrun',\n" in page
    # The checklist: rows by state, filters for each.
    checks = _one(root, "opscheck-checklist").find("tr", cls="check")
    kinds = {r.find("td", cls="title")[0].words(): r.classes - {"check"} for r in checks}
    assert sorted(map(sorted, kinds.values())) == [["flaky"], ["ok"], ["waived"]]
    notes = {r.find("td", cls="note")[0].words() for r in checks}
    assert WAIVER in notes and f"{load['flaky']} — {CALLOUT}" in notes
    for key in ("flaky", "waived"):
        assert _one(root, f"opscheck-show-{key}").attrs["type"] == "radio"

    # The archive: a FLAKY run is WARN in the index (to look at), the day log lists both.
    index = (reports / "index.html").read_text()
    assert 'title="WARN: 1 passed, 1 flaky, 1 waived"' in index
    (log,) = reports.glob("*/ops-log.md")
    day = log.read_text()
    assert f"**FLAKY** host.load_per_core [me]: {load['flaky']} — {CALLOUT}" in day
    assert f"**WAIVED** host.memory_used_pct [me]: {memory['message']} — {WAIVER}" in day

    # The metrics: the run's counts by verdict; the waived and flaky series beside the verdicts.
    series = _metrics(prom)
    checks_ = {dict(k)["verdict"]: v for (n, k), v in series.items() if n == "opscheck_run_checks"}
    assert (checks_["flaky"], checks_["waived"], checks_["ok"], checks_["warn"]) == (1, 1, 1, 0)

    def of(name: str) -> dict[str, float]:
        return {dict(k)["check"]: v for (n, k), v in series.items() if n == name}

    assert of("opscheck_check_waived") == {"host.memory_used_pct": 1.0}
    assert of("opscheck_check_flaky") == {"host.load_per_core": 1.0}
    assert of("opscheck_check_verdict")["host.memory_used_pct"] == 1.0  # measured: WARN


def test_an_unwaived_warn_beside_a_waived_crit_stays_warned(suite, pytester):
    """A second record of the check, CRIT and waived: the WARN that no waiver accepts stays."""
    crit = {"verdict": "CRIT", "subject": "swap", "waived": WAIVER, "message": "me: swap > crit"}
    mark = {"properties": {"waived": WAIVER}, "extra_records": [crit]}
    marks = _marks(pytester, {"memory_used": mark})
    result = suite.run(HOST, WARN_MEMORY, *marks, "-k", "memory_used", paths=HOST_SUITE)
    assert result.ret == pytest.ExitCode.OK, output(result)
    (entry,) = suite.results().values()
    assert entry["outcome"] == "warned" and entry["verdict"] == "CRIT"
    assert "opscheck warnings" in output(result)
    api = json.loads((pytester.path / "api.json").read_text())
    assert api["headline"] == "1 WARN · 0 OK"
    assert api["problems"][0].startswith("WARN me: ")
    assert api["problems"][1] == f"WAIVED me: swap > crit — {WAIVER}"  # listed after, as such
    assert api["unwaived"] == api["problems"][:1]


def test_an_expired_waiver_fails_and_says_so(suite, pytester):
    """The failure (the waivers' job) and the entry's waiver_expired, in the terminal too; the
    headline's CRIT and the problems list it first."""
    expired = "waiver expired on 2026-11-30 (alice: more RAM ordered, INC-4711)"
    marks = _marks(pytester, {"memory_used": {"properties": {"waiver_expired": expired}}})
    result = suite.run(HOST, CRIT_MEMORY, *marks, "-k", "memory_used", paths=HOST_SUITE)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    (entry,) = suite.results().values()
    assert entry["outcome"] == "failed" and entry["waiver_expired"] == expired
    assert f"WAIVER EXPIRED {entry['id']} - {expired}" in output(result)
    api = json.loads((pytester.path / "api.json").read_text())
    assert api["headline"] == "1 CRIT · 0 OK"
    assert api["problems"] == [f"CRIT {entry['message']}"]


def test_missing_or_failing_helpers_leave_the_run_whole(suite, pytester, monkeypatch):
    """No summary/callouts (a module without them): no key; one that raises: one line, and the
    run and its reports stand."""
    monkeypatch.delattr(opscheck.recheck, "callouts", raising=False)

    def broken(config: Any) -> list[dict[str, Any]]:
        raise RuntimeError("waivers.toml: unreadable")

    monkeypatch.setattr(opscheck.waivers, "summary", broken, raising=False)
    result = suite.run(HOST, "", "-k", "host_reachable", paths=HOST_SUITE)
    assert result.ret == pytest.ExitCode.OK
    document = json.loads(suite.json_path.read_text())
    assert "waivers" not in document and "flaky_history" not in document
    assert "opscheck: waivers not reported: RuntimeError: waivers.toml: unreadable" in output(
        result
    )


def test_a_merged_run_counts_flaky_and_waived_and_passes(suite, pytester, helpers):
    marks = _marks(pytester, {"memory_used": WAIVED_MARK, "load_per_core": FLAKY_MARK})
    suite.run(HOST, WARN_MEMORY, *marks, "--shard", "0/1", "-k", CHECKS, paths=HOST_SUITE)
    parts, missing, notes = merge.check([merge.read(suite.json_path)], partial=False)
    merged = merge.merge(parts, missing, notes)
    summary = merged.document["summary"]
    assert (summary["flaky"], summary["waived"], summary["passed"]) == (1, 1, 1)
    assert merged.document["shards"][0]["summary"]["flaky"] == 1
    assert merged.code() == 0 and merged.code(fail_on_warn=True) == 0
    assert "1 passed, 0 warned, 1 flaky, 1 waived, 0 failed" in merged.describe()
    assert merged.document["waivers"] == [APPLIED, STALE, NOT_CHECKED]
    assert merged.document["flaky_history"][0]["text"] == CALLOUT
    page = merge.page(merged, suite.json_path.parent)
    assert '<td class="flaky">flaky</td>' in page and '<td class="waived">waived</td>' in page
    assert ">FLAKY</td>" in page and ">WAIVED</td>" in page and WAIVER in page


def test_merge_keeps_what_a_waiver_did_on_any_shard():
    """A waiver of a target of shard 1 matches nothing on shard 0: applied in the run."""

    def part(index: int, status: str) -> merge.Part:
        doc = {"waivers": [{**APPLIED, "status": status}], "flaky_history": []}
        return merge.Part(Path(f"s{index}.json"), doc)

    fields = merge._waivers_and_flaky([part(0, "stale"), part(1, "applied")])
    assert fields == {"waivers": [APPLIED], "flaky_history": []}
    # Its check not on shard 0 at all (not_checked), not for its target on shard 1 (stale), with
    # that shard's note; a note never splits one waiver in two.
    stale = {**APPLIED, "status": "stale", "note": "STALE: matches nothing: check 'x' does not"}
    parts = [part(0, "not_checked"), merge.Part(Path("s1.json"), {"waivers": [stale]})]
    assert merge._waivers_and_flaky(parts)["waivers"] == [stale]


# -- the rules, on JSON entries --------------------------------------------------------------


def _record(verdict: str, **extra: Any) -> dict[str, Any]:
    return {"verdict": verdict, "measured": "91.0 %", "message": f"web1: 91.0 % {verdict}"} | extra


@pytest.mark.parametrize(
    ("props", "outcome"),
    [
        ({"verdict": "OK", "records": [_record("OK")]}, "passed"),
        ({"verdict": "WARN", "records": [_record("WARN")]}, "warned"),
        ({"flaky": "92 % > crit, then 41 %", "records": [_record("OK")]}, "flaky"),
        ({"records": [_record("OK", recheck={"verdict": "CRIT"})]}, "flaky"),  # record only
        ({"waived": "w", "verdict": "CRIT", "records": [_record("CRIT", waived="w")]}, "waived"),
        ({"verdict": "WARN", "records": [_record("WARN", waived="w")]}, "waived"),
        (
            {"waived": "w", "verdict": "CRIT", "records": [_record("CRIT", waived="w")]}
            | {"records": [_record("CRIT", waived="w"), _record("WARN")], "verdict": "CRIT"},
            "warned",  # passed, an unwaived WARN beside the waived CRIT: not waived
        ),
    ],
)
def test_outcome_of_a_passed_test(props, outcome):
    assert outcome_of(True, props) == outcome


def test_headline_and_problems_order_on_entries():
    entries: list[dict[str, Any]] = [
        {"outcome": "waived", "target": "w", "verdict": "CRIT", "waived": "until x"}
        | {"records": [_record("CRIT", waived="until x")]},
        {"outcome": "flaky", "target": "f", "title": "Load", "flaky": "9, then 1"},
        {"outcome": "warned", "target": "web1", "records": [_record("WARN")]},
        {"outcome": "failed", "target": "web1", "records": [_record("CRIT")]},
        {"outcome": "passed"},
        {"outcome": "not_run", "target": "db"},
        {"outcome": "skipped"},
    ]
    assert report_page.headline_text(entries) == (
        "1 CRIT · 1 WARN · 1 FLAKY · 1 WAIVED · 1 OK · 1 not run · 1 skipped"
    )
    lines = [p.line() for p in report_page.problem_list(entries)]
    assert lines == [
        "CRIT web1: 91.0 % CRIT",
        "WARN web1: 91.0 % WARN",
        "FLAKY f: Load: 9, then 1",
        "WAIVED w: web1: 91.0 % CRIT — until x",
    ]
    assert [shown_verdict(e) for e in entries[:3]] == ["WAIVED", "FLAKY", ""]


def test_a_waived_down_target_shows_the_failure_its_window_accepted():
    """No record behind it (the target down): its WAIVED line says the hidden failure."""
    failure = "E   ConnectionRefusedError: [Errno 111] Connection refused"
    entry = {"outcome": "waived", "target": "db2", "title": "Answers", "waived": "until y"}
    (problem,) = report_page.problem_list([entry | {"waived_failure": failure}])
    assert problem.message == failure
    assert problem.line() == f"WAIVED db2: {failure} — until y"


def test_a_real_pushgateway_holds_the_flaky_and_waived_series(suite, pytester, tmp_path, helpers):
    """Pushed to a real Pushgateway and scraped back: the run's counts by verdict, and the
    waived and flaky series beside the measured verdicts."""
    from opscheck.testbed.promstack import Pushgateway
    from tests_meta.test_export import by_record, of, scrape

    marks = _marks(pytester, {"memory_used": WAIVED_MARK, "load_per_core": FLAKY_MARK})
    with Pushgateway(tmp_path / "pushgateway.log") as gateway:
        result = suite.run(
            HOST, WARN_MEMORY, *marks, "--pushgateway", gateway.url, "-k", CHECKS, paths=HOST_SUITE
        )
        assert result.ret == pytest.ExitCode.OK, output(result)
        _, series = scrape(gateway.url)
    counts = {dict(k)["verdict"]: v for k, v in of(series, "opscheck_run_checks").items()}
    assert counts == {
        "ok": 1, "warn": 0, "crit": 0, "flaky": 1, "waived": 1, "failed": 0, "error": 0,
        "not_run": 0, "skipped": 0,
    }  # fmt: skip
    assert by_record(series, "opscheck_check_waived") == {("host.memory_used_pct", "me", ""): 1}
    assert by_record(series, "opscheck_check_flaky") == {("host.load_per_core", "me", ""): 1}
    verdicts = by_record(series, "opscheck_check_verdict")
    assert verdicts[("host.memory_used_pct", "me", "")] == 1  # the measured WARN
    assert verdicts[("host.load_per_core", "me", "")] == 0  # the second measurement's OK


CRASH = """
import pytest


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    if "memory_used" in item.name:  # a check that breaks (a bug, an interpreter error)
        raise SystemError("AST constructor recursion depth mismatch (before=39, after=62)")
    return (yield)
"""


def test_a_check_that_crashes_is_one_line_its_exception(suite, pytester):
    """The problems (page, notifications, heartbeat body) say the exception, not the last
    characters of its traceback (the entry's reason keeps the traceback)."""
    (pytester.path / "crash_probe.py").write_text(textwrap.dedent(CRASH))
    pytester.syspathinsert()
    result = suite.run(HOST, "", "-p", "crash_probe", "-k", "memory_used", paths=HOST_SUITE)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    entries = json.loads(suite.json_path.read_text())["tests"]
    (crashed,) = [e for e in entries if e["outcome"] == "failed"]
    said = "SystemError: AST constructor recursion depth mismatch (before=39, after=62)"
    assert crashed["message"] == said
    assert "Traceback" in crashed["reason"] or "raise SystemError" in crashed["reason"]
    (problem,) = report_page.problem_list(entries)
    assert problem.line() == f"CRIT me: {said}"
