"""Reports as operators and CI read them: terminal, JSON, HTML, JUnit and the dated archive.

The host checks of this machine (``local://``) with thresholds that force each verdict: any memory
use is above ``warn = "0%"`` (WARN), any used disk above ``crit = "0%"`` (CRIT), and the host
answering is OK.
"""

from __future__ import annotations

import html
import json
import re
import textwrap
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from opscheck.report import Archive
from tests_meta.results import values

REPO = Path(__file__).resolve().parents[1]
HOST_ONLY = ("suites/host",)
INVENTORY = '[[host]]\nname = "me"\nuri = "local://"\ncpu_sample = "100ms"\n'
THRESHOLDS = (
    '[host.memory_used_pct]\nwarn = "0%"\n\n[host.disk_used_pct]\nwarn = "0%"\ncrit = "0%"\n'
)
OK_WARN_CRIT = ("-k", "host_reachable or memory_used or disk_used")
REACHABLE = "suites/host/test_connectivity.py::test_host_reachable[me]"
MEMORY = "suites/host/test_resources.py::test_memory_used_below_limit[me]"
DISK = "suites/host/test_resources.py::test_disk_used_below_limit[me]"


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + result.stderr.str()


def html_rows(path: Path) -> dict[str, list[str]]:
    """pytest-html 4 keeps its rows as JSON in ``data-jsonblob``: the cells' text by test id."""
    blob = re.search(r'data-jsonblob="([^"]*)"', path.read_text())
    assert blob, "no data-jsonblob in the HTML report"
    tests = json.loads(html.unescape(blob.group(1)))["tests"]
    return {
        test_id: [_text(cell) for cell in runs[-1]["resultsTableRow"]]
        for test_id, runs in tests.items()
    }


def _text(cell: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", cell))


def junit_cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    return {f"{case.get('classname')}.{case.get('name')}": case for case in root.iter("testcase")}


def properties(case: ET.Element) -> dict[str, str]:
    return {p.get("name", ""): p.get("value", "") for p in case.iter("property")}


# -- terminal and JSON ---------------------------------------------------------------------------


def test_warn_and_crit_in_terminal_and_json(suite):
    result = suite.run(INVENTORY, THRESHOLDS, *OK_WARN_CRIT, paths=HOST_ONLY)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the CRIT
    outcomes = result.parseoutcomes()
    assert (outcomes["passed"], outcomes["warned"], outcomes["failed"]) == (1, 1, 1)
    result.stdout.re_match_lines(
        [
            r"^=+ opscheck warnings =+$",
            rf"^WARN {re.escape(MEMORY)} - me: \d+\.\d % memory used \(.+ of .+\) > warn 0\.0 %$",
            r"^-+ opscheck summary by category -+$",
            r"^health +1 passed$",
            r"^capacity +1 warned, 1 failed$",
        ]
    )
    # The failure is the operator's one line, not a traceback.
    lines = result.stdout.lines
    header = next(i for i, line in enumerate(lines) if "test_disk_used_below_limit[me]" in line)
    assert re.fullmatch(r"me: / \d+\.\d % used \(.+ of .+\) > crit 0\.0 %", lines[header + 1])
    assert "Traceback" not in output(result)
    assert "def test_" not in output(result)

    document = json.loads(suite.json_path.read_text())
    assert document["schedule"] == "all"
    assert document["summary"] == {
        "passed": 1, "warned": 1, "flaky": 0, "waived": 0, "failed": 1, "error": 0,
        "not_run": 0, "skipped": 0,
    }  # fmt: skip
    assert document["by_category"] == {
        "health": {"passed": 1},
        "capacity": {"warned": 1, "failed": 1},
    }
    tests = {t["id"]: t for t in document["tests"]}
    memory = tests[MEMORY]
    assert memory["target"] == "me"
    assert memory["check"] == "host.memory_used_pct"
    assert memory["outcome"] == "warned"
    assert memory["verdict"] == "WARN"
    assert re.fullmatch(r"\d+\.\d % memory used \(.+\)", memory["measured"])
    assert memory["threshold"] == "warn > 0.0 %, crit > 85.0 %"
    assert values(memory)[0] > 0
    disk = tests[DISK]
    assert (disk["outcome"], disk["verdict"]) == ("failed", "CRIT")
    assert disk["threshold"] == "warn > 0.0 %, crit > 0.0 %"
    assert disk["reason"] == disk["message"]
    assert disk["message"].startswith("me: / ")
    reachable = tests[REACHABLE]
    assert (reachable["outcome"], reachable["verdict"]) == ("passed", "OK")
    assert reachable["measured"].startswith("local:// answers as ")


def test_fail_on_warn(suite):
    result = suite.run(
        INVENTORY, THRESHOLDS, "--fail-on-warn", "-k", "memory_used", paths=HOST_ONLY
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    result.stdout.re_match_lines([r"^me: .* memory used .* > warn 0\.0 % \(--fail-on-warn\)$"])
    memory = suite.results()["test_memory_used_below_limit[me]"]
    assert (memory["outcome"], memory["verdict"]) == ("failed", "WARN")


def test_no_warning_section_when_all_ok(suite):
    result = suite.run(INVENTORY, "", "-k", "host_reachable", paths=HOST_ONLY)
    assert result.ret == pytest.ExitCode.OK
    assert "opscheck warnings" not in result.stdout.str()
    result.stdout.re_match_lines([r"^health +1 passed$"])


# -- HTML and JUnit ------------------------------------------------------------------------------


def test_html_report_has_the_numbers(suite, tmp_path):
    report = tmp_path / "report.html"
    suite.run(INVENTORY, THRESHOLDS, *OK_WARN_CRIT, "--html", str(report), paths=HOST_ONLY)
    text = report.read_text()
    headers = re.findall(r'<th class="sortable" data-column-type="\w+">(\w+)</th>', text)
    assert headers[:6] == ["Result", "Test", "Target", "Measured", "Threshold", "Verdict"]
    rows = html_rows(report)
    result, test_id, target, measured, threshold, verdict = rows[MEMORY][:6]
    assert (result, test_id, target, verdict) == ("Warned", MEMORY, "me", "WARN")
    assert re.fullmatch(r"\d+\.\d % memory used \(.+\)", measured)
    assert threshold == "warn > 0.0 %, crit > 85.0 %"
    assert rows[DISK][0] == "Failed"
    assert rows[DISK][5] == "CRIT"
    assert rows[DISK][3].startswith("/ ")
    assert rows[REACHABLE][5] == "OK"
    categories = re.search(r'<table id="opscheck-categories">(.*?)</table>', text)
    assert categories
    cells = re.findall(r"<t[dh]>([^<]*)</t[dh]>", categories.group(1))
    assert cells == [
        *("category", "passed", "warned", "flaky", "waived", "failed", "error", "not_run"),
        "skipped",
        *("health", "1", "0", "0", "0", "0", "0", "0", "0"),
        *("capacity", "0", "1", "0", "0", "1", "0", "0", "0"),
    ]


def test_junit_has_properties_and_shows_warnings(suite, tmp_path):
    report = tmp_path / "junit.xml"
    suite.run(INVENTORY, THRESHOLDS, *OK_WARN_CRIT, "--junitxml", str(report), paths=HOST_ONLY)
    cases = junit_cases(report)
    memory = cases["suites.host.test_resources.test_memory_used_below_limit[me]"]
    props = properties(memory)
    assert props["target"] == "me"
    assert props["verdict"] == "WARN"
    assert props["threshold"] == "warn > 0.0 %, crit > 85.0 %"
    assert re.fullmatch(r"\d+\.\d % memory used \(.+\)", props["measured"])
    assert props["message"].startswith("me: ")
    # JUnit has no warning state: the WARN line is in system-out, which CI viewers display.
    assert memory.find("failure") is None
    system_out = memory.find("system-out")
    assert system_out is not None
    assert system_out.text == f"WARN {props['message']}"

    disk = cases["suites.host.test_resources.test_disk_used_below_limit[me]"]
    failure = disk.find("failure")
    assert failure is not None
    assert properties(disk)["verdict"] == "CRIT"
    assert failure.get("message") == properties(disk)["message"]  # one line (issue 14)
    assert (
        properties(cases["suites.host.test_connectivity.test_host_reachable[me]"])["verdict"]
        == "OK"
    )


# -- the archive ---------------------------------------------------------------------------------


def _archived(root: Path) -> list[Path]:
    # The history store beside the days is opscheck/history.py's (tests_meta/test_history.py).
    # So are the index and each day's ops-log.md opscheck/archive_index.py's (its own tests).
    files = (p for p in root.rglob("*") if p.is_file() and p.parent != root)
    return sorted(p for p in files if p.name != "ops-log.md")


def test_archive_writes_dated_reports(suite, tmp_path):
    root = tmp_path / "reports"
    before = datetime.now(UTC)
    result = suite.run(
        INVENTORY,
        THRESHOLDS,
        "--archive",
        "--reports-dir",
        str(root),
        "-m",
        "morning",
        "-k",
        "memory_used",
        paths=HOST_ONLY,
    )
    after = datetime.now(UTC)
    assert result.ret == pytest.ExitCode.OK
    files = _archived(root)
    assert len(files) == 3, files  # and no .partial or .lock left behind
    day, stem = files[0].parent, files[0].stem
    assert day.name in {before.strftime("%Y-%m-%d"), after.strftime("%Y-%m-%d")}  # UTC date
    assert re.fullmatch(r"morning-\d{6}", stem)
    stamp = datetime.strptime(f"{day.name} {stem[-6:]}", "%Y-%m-%d %H%M%S").replace(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= stamp <= after
    assert [f.name for f in files] == [f"{stem}.html", f"{stem}.json", f"{stem}.xml"]
    # The paths the terminal shows are the final files, not the .partial ones written first.
    text = result.stdout.str()
    assert f"opscheck: reports archived to {day / stem}.html (and .xml, .json)" in text
    assert f"generated xml file: {day / stem}.xml" in text
    assert f"Generated html report: file://{day / stem}.html" in text
    assert ".partial" not in text
    document = json.loads((day / f"{stem}.json").read_text())
    assert document["schedule"] == "morning"
    assert document["summary"]["warned"] == 1
    assert (
        properties(
            junit_cases(day / f"{stem}.xml")[
                "suites.host.test_resources.test_memory_used_below_limit[me]"
            ]
        )["verdict"]
        == "WARN"
    )
    assert html_rows(day / f"{stem}.html")[MEMORY][5] == "WARN"


def test_archive_never_overwrites(suite, tmp_path):
    root = tmp_path / "reports"
    now = datetime.now(UTC)
    taken = []
    for offset in range(-2, 30):  # every name this run could pick in the next half minute
        moment = now + timedelta(seconds=offset)
        day = root / moment.strftime("%Y-%m-%d")
        day.mkdir(parents=True, exist_ok=True)
        old = day / f"morning-{moment:%H%M%S}.json"
        old.write_text("earlier run")
        taken.append(old)
    result = suite.run(
        INVENTORY,
        "",
        "--archive",
        "--reports-dir",
        str(root),
        "-m",
        "morning",
        "-k",
        "host_reachable",
        paths=HOST_ONLY,
    )
    assert result.ret == pytest.ExitCode.OK
    assert all(old.read_text() == "earlier run" for old in taken)
    new = [f for f in _archived(root) if f not in taken]
    assert len(new) == 3, new
    assert all(re.fullmatch(r"morning-\d{6}-2\.(html|json|xml)", f.name) for f in new), new


def test_archive_names_are_reserved_within_the_same_second(tmp_path):
    first, second = Archive(tmp_path, "morning"), Archive(tmp_path, "morning")
    assert first.final("html") != second.final("html")
    first.publish()
    second.discard()
    assert _archived(tmp_path) == []  # nothing was written, and both locks are released


def test_schedule_setting_moves_a_check(suite):
    inventory = INVENTORY + '[settings.schedule]\n"host.disk_used_below_limit" = ["weekly"]\n'
    disk = "test_disk_used_below_limit[me]"
    morning = suite.run(inventory, "", "-m", "morning", "--collect-only", "-q", paths=HOST_ONLY)
    assert morning.ret == pytest.ExitCode.OK
    assert disk not in morning.stdout.str()
    assert "test_memory_used_below_limit[me]" in morning.stdout.str()
    weekly = suite.run(inventory, "", "-m", "weekly", "-k", "disk_used", paths=HOST_ONLY)
    weekly.assert_outcomes(passed=1)
    assert suite.results()[disk]["schedule"] == "weekly"


# -- secrets ------------------------------------------------------------------------------------


def test_secrets_are_redacted_everywhere(suite, tmp_path, monkeypatch):
    secret = "s3cr3t-0f-the-day"
    monkeypatch.setenv("OPSCHECK_TEST_SECRET", secret)
    inventory = textwrap.dedent("""
        [[http]]
        name = "api"
        url = "http://127.0.0.1:1/health?token=${OPSCHECK_TEST_SECRET}"
        samples = 1
        headers = { Authorization = "Bearer ${OPSCHECK_TEST_SECRET}" }
        """)
    reports = {"html": tmp_path / "r.html", "xml": tmp_path / "r.xml"}
    result = suite.run(
        inventory,
        "",
        "-rA",
        "-k",
        "status_expected or latency_average",
        "--html",
        str(reports["html"]),
        "--junitxml",
        str(reports["xml"]),
        paths=("suites/http",),
    )
    # The terminal counts the check that points to the real error apart (opscheck.outage).
    outcomes = result.parseoutcomes()
    assert (outcomes["failed"], outcomes["unreachable"]) == (1, 1)
    texts = {
        "terminal": output(result),
        "json": suite.json_path.read_text(),
        **{kind: path.read_text() for kind, path in reports.items()},
    }
    for kind, text in texts.items():
        assert secret not in text, kind
        assert "token=***" in text, kind
    assert suite.results()["test_status_expected[api]"]["reason"].startswith("api: unreachable: ")


# -- xdist --------------------------------------------------------------------------------------


def test_reports_under_xdist(pytester, tmp_path):
    """Workers measure; the controller writes the reports from the properties they send."""
    inventory, thresholds = tmp_path / "inventory.toml", tmp_path / "thresholds.toml"
    inventory.write_text(INVENTORY)
    thresholds.write_text(THRESHOLDS)
    paths = {"json": tmp_path / "r.json", "html": tmp_path / "r.html", "xml": tmp_path / "r.xml"}
    result = pytester.runpytest_inprocess(
        "-c",
        str(REPO / "pytest.ini"),
        "--rootdir",
        str(REPO),
        "-n",
        "2",
        "--inventory",
        str(inventory),
        "--thresholds",
        str(thresholds),
        "--json-report",
        str(paths["json"]),
        "--html",
        str(paths["html"]),
        "--junitxml",
        str(paths["xml"]),
        *OK_WARN_CRIT,
        str(REPO / "suites/host"),
    )
    assert result.parseoutcomes() == {"passed": 1, "warned": 1, "failed": 1}
    tests = {t["id"]: t for t in json.loads(paths["json"].read_text())["tests"]}
    assert tests[MEMORY]["verdict"] == "WARN"
    assert "% memory used" in tests[MEMORY]["measured"]
    assert tests[DISK]["reason"] == tests[DISK]["message"]  # no "[gw0] linux -- Python" line
    row = html_rows(paths["html"])[MEMORY]
    assert (row[2], row[4], row[5]) == ("me", "warn > 0.0 %, crit > 85.0 %", "WARN")
    assert row[3] == tests[MEMORY]["measured"]
    case = junit_cases(paths["xml"])["suites.host.test_resources.test_memory_used_below_limit[me]"]
    assert properties(case)["measured"] == tests[MEMORY]["measured"]
    system_out = case.find("system-out")
    assert system_out is not None
    assert system_out.text == f"WARN {tests[MEMORY]['message']}"
