"""A target that is down is one problem (opscheck.outage): its connectivity check fails with the
real error; its other checks are ``not_run`` (``not run: <target> unreachable (see …)``), counted
once in the JSON summary, the category summary, JUnit (skipped) and the metrics; the run stays red.

Real servers: the HTTP testbed for the healthy target, a loopback port nothing listens on for the
down one (``web.url("refused")``).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from opscheck import merge

HTTP = ("suites/http",)
EVERY_CHECK = 'contains = "healthy"\njson = { status = "healthy" }\n'


def http(name: str, url: str) -> str:
    return f'[[http]]\nname = "{name}"\nurl = "{url}"\n{EVERY_CHECK}\n'


def output(result: pytest.RunResult) -> str:
    return "\n".join(result.outlines + result.errlines)


def junit(path: Any) -> dict[str, ET.Element]:
    """The JUnit test cases by test name with its id (``test_x[target]``)."""
    root = ET.parse(path).getroot()
    return {case.get("name", ""): case for case in root.iter("testcase")}


def test_a_healthy_target_has_nothing_not_run(suite, web, tmp_path):
    result = suite.run(http("api", web.url()), "", f"--junitxml={tmp_path / 'j.xml'}", paths=HTTP)
    assert result.ret == pytest.ExitCode.OK, output(result)
    document = json.loads(suite.json_path.read_text())
    assert document["summary"]["not_run"] == 0
    assert document["summary"]["passed"] >= 3
    assert all(t["outcome"] != "not_run" for t in document["tests"])
    assert "not run" not in output(result)
    cases = junit(tmp_path / "j.xml")
    assert not any(c.find("skipped") is not None for n, c in cases.items() if "[api]" in n)


def test_a_down_target_is_one_failure_and_its_other_checks_not_run(suite, web, tmp_path):
    inventory = http("api", web.url()) + http("down", web.url("refused"))
    prom = tmp_path / "opscheck.prom"
    result = suite.run(
        inventory, "", f"--junitxml={tmp_path / 'j.xml'}", "--textfile", str(prom), paths=HTTP
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the run stays red
    res = suite.results()
    first = "test_status_expected[down]"
    # The connectivity check fails with the real error...
    assert res[first]["outcome"] == "failed"
    refused = f"down: unreachable: GET {web.url('refused')}: connection refused"
    assert res[first]["reason"] == refused
    # ...its other checks are not run, each saying why in one line, with no verdict.
    others = {t: r for t, r in res.items() if t.endswith("[down]") and t != first}
    assert len(others) == 4, sorted(others)  # body, json fields, latency average and p95
    for test, entry in others.items():
        assert entry["outcome"] == "not_run", test
        assert entry["reason"] == f"not run: down unreachable (see {first})", test
        assert "verdict" not in entry and "records" not in entry, test
    # Counted once: one failure (the real error), four not run; the healthy target passes.
    document = json.loads(suite.json_path.read_text())  # validated by suite.run (the schema)
    summary = document["summary"]
    assert (summary["failed"], summary["error"], summary["not_run"]) == (1, 0, 4)
    assert sum(n.get("not_run", 0) for n in document["by_category"].values()) >= 4
    assert all(r["outcome"] == "passed" for t, r in res.items() if t.endswith("[api]"))
    # The terminal: pytest's line counts them as unreachable, the category summary as not run.
    text = output(result)
    assert result.parseoutcomes()["failed"] == 1
    assert result.parseoutcomes()["unreachable"] == 4
    categories = text.split("opscheck summary by category", 1)[1]
    assert " not run" in categories and "not_run" not in categories, categories
    # JUnit: one <failure> for the down target, the others <skipped> with the same reason.
    cases = junit(tmp_path / "j.xml")
    assert cases[first].find("failure") is not None
    for test in others:
        assert cases[test].find("failure") is None, test
        skipped = cases[test].find("skipped")
        assert skipped is not None, test
        assert skipped.get("message") == f"not run: down unreachable (see {first})"
        assert "connection refused" in (skipped.text or "")  # the failure line, kept as text
    suite_ = ET.parse(tmp_path / "j.xml").getroot().find("testsuite")
    assert suite_ is not None and suite_.get("failures") == "1"
    # The metrics: opscheck_run_checks{verdict="not_run"} 4, failed 1.
    checks = {
        sample.labels["verdict"]: sample.value
        for family in text_string_to_metric_families(prom.read_text())
        for sample in family.samples
        if sample.name == "opscheck_run_checks"
    }
    assert (checks["not_run"], checks["failed"], checks["error"]) == (4, 1, 0)


def test_a_merged_run_counts_not_run_and_fails(suite, web, tmp_path):
    """opscheck-merge keeps the outcome, counts it apart and exits 1."""
    inventory = http("api", web.url()) + http("down", web.url("refused"))
    suite.run(inventory, "", "--shard", "0/1", paths=HTTP)
    parts, missing, notes = merge.check([merge.read(suite.json_path)], partial=False)
    merged = merge.merge(parts, missing, notes)
    assert merged.document["summary"]["not_run"] == 4
    assert merged.document["summary"]["failed"] == 1
    assert merged.code() == merge.FAILED
    assert "4 not run" in merged.describe()
    assert "not_run" in merge.page(merged, tmp_path)
