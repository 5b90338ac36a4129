"""What CI shows (opscheck.junit): every JUnit failure message is the one-line verdict with value
and threshold; ``--junit-warnings`` adds one ``opscheck`` / ``warnings`` test case listing the
WARN, FLAKY and WAIVED checks and the stale waivers, a ``<skipped>`` (a ``<failure>`` with
``--fail-on-warn``).

Real targets: this machine through ``local://`` (its real disk and uptime against levels it
breaks), the HTTP testbed (a degraded health document, a page that is not JSON, a stopped port)
and a flaky HTTP server of the test's own that fails every first request of a pair.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from opscheck.testbed import CALM_HOST_THRESHOLDS
from opscheck.testbed.sshd import host_block
from tests_meta.conftest import http_block as http

HOST = ("suites/host/test_resources.py", "suites/host/test_connectivity.py")
CHOSEN = ("-k", "disk_used or reachable or reboot")
ME = host_block("web1", "local://")
CALM = CALM_HOST_THRESHOLDS + '[host.uptime]\nwarn = "1s"\n'
UP_TEN_YEARS = CALM_HOST_THRESHOLDS + '[host.uptime]\nwarn = "3650d"\n'  # a real WARN
FULL = 'warn = "0%"\ncrit = "0.001%"'  # every disk is fuller than this: a real CRIT
DISK_CRIT = CALM.replace('warn = "99%"\ncrit = "100%"', FULL, 1)
DISK = "test_disk_used_below_limit[web1]"


def cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    return {case.get("name", ""): case for case in root.iter("testcase")}


def totals(path: Path) -> dict[str, str]:
    suite_ = ET.parse(path).getroot().find("testsuite")
    assert suite_ is not None
    return {k: suite_.get(k, "") for k in ("tests", "failures", "errors", "skipped")}


def failure(case: ET.Element) -> tuple[str, str]:
    node = case.find("failure")
    assert node is not None, ET.tostring(case, encoding="unicode")
    return node.get("message", ""), node.text or ""


def test_a_failure_message_is_the_one_line_verdict(suite, web, tmp_path):
    junit = tmp_path / "j.xml"
    expected = '{ status = "healthy", "checks.database.status" = "up", connections = 12 }'
    inventory = (
        ME
        + http("degraded", web.url("http", "/wrong"), f"json = {expected}")
        + http("slow", web.url("http", "/slow?seconds=0.3"), "samples = 2")
    )
    slow = '[http.latency_avg]\nwarn = "200ms"\ncrit = "250ms"\n'
    result = suite.run(
        inventory,
        DISK_CRIT + slow,
        f"--junitxml={junit}",
        "-k",
        "disk_used or json_fields_expected or latency_average",
        paths=(*HOST, "suites/http/test_health.py", "suites/http/test_performance.py"),
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    found, res = cases(junit), suite.results()
    # A threshold breach: the record's message, measured value and crit level, nothing else
    # (pytest's own message would be "Failed: web1: / …").
    message, text = failure(found[DISK])
    assert message == res[DISK]["message"]
    assert message.startswith("web1: / ") and message.endswith(" > crit 0.0 %"), message
    assert text.startswith(message)
    # Several breaches of one check: its records' messages, "; "-joined.
    message, text = failure(found["test_json_fields_expected[degraded]"])
    assert message == (
        "degraded: status = 'degraded' (expected 'healthy'); "
        "checks.database.status = 'down' (expected 'up'); connections = 97 (expected 12)"
    )
    # A breach with its evidence under it: the verdict is the message; the text, which GitLab
    # shows, starts with the verdict and keeps the evidence.
    message, text = failure(found["test_latency_average_below_limit[slow]"])
    assert re.fullmatch(r"slow: average \d+ ms over 2 requests > crit 250 ms", message), message
    assert text.startswith(message + "\n") and re.search(r"min \d+ ms, max \d+ ms", text)
    for case in found.values():
        for node in case.iter("failure"):
            said = node.get("message", "")
            assert "\n" not in said and not said.startswith("Failed:"), said


def test_a_stopped_server_is_one_line_and_its_other_checks_stay_skipped(suite, web, tmp_path):
    junit = tmp_path / "j.xml"
    inventory = http("shop", web.url("refused"), 'contains = "healthy"')
    suite.run(inventory, "", f"--junitxml={junit}", paths=("suites/http/test_health.py",))
    found = cases(junit)
    message, _ = failure(found["test_status_expected[shop]"])
    assert message == f"shop: unreachable: GET {web.url('refused')}: connection refused"
    skipped = found["test_body_contains[shop]"].find("skipped")  # opscheck.outage's, untouched
    assert skipped is not None
    assert skipped.get("message") == "not run: shop unreachable (see test_status_expected[shop])"


def test_a_setup_error_keeps_pytests_words_in_one_line(suite, tmp_path):
    checks = suite.pytester.path / "test_setup_breaks.py"
    checks.write_text(
        "import pytest\n\n"
        "@pytest.fixture\n"
        "def broken():\n"
        "    raise RuntimeError('the vault did not answer\\nretried 3 times')\n\n"
        "def test_uses_it(broken):\n"
        "    pass\n"
    )
    junit = tmp_path / "j.xml"
    suite.run(ME, CALM, f"--junitxml={junit}", "-p", "no:randomly", paths=(str(checks),))
    error = cases(junit)["test_uses_it"].find("error")
    assert error is not None
    assert error.get("message") == 'failed on setup with "RuntimeError: the vault did not answer"'
    assert "retried 3 times" in (error.text or "")  # the whole error stays in the text


# -- --junit-warnings ------------------------------------------------------------------------


UNTIL = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=14)


def waivers_file(folder: Path) -> Path:
    until = UNTIL
    path = folder / "waivers.toml"
    path.write_text(
        '[[waiver]]\ncheck = "host.disk_used_pct"\ntarget = "web1"\nsubject = "/"\n'
        f'reason = "new disk ordered, INC-4711"\nowner = "alice"\nexpires = {until}\n\n'
        '[[waiver]]\ncheck = "host.disk_used_pct"\ntarget = "web9"\n'
        f'reason = "decommissioned"\nowner = "bob"\nexpires = {until}\n'
    )
    return path


def test_without_the_option_there_is_no_summary_case(suite, tmp_path):
    junit = tmp_path / "j.xml"
    suite.run(ME, UP_TEN_YEARS, f"--junitxml={junit}", *CHOSEN, paths=HOST)
    assert "warnings" not in cases(junit)


def test_the_summary_case_lists_warn_flaky_waived_and_stale(suite, flaky, tmp_path):
    junit = tmp_path / "j.xml"
    recheck = "[settings.recheck]\nenabled = true\ndelay = 0.2\n"
    inventory = recheck + ME + http("api", flaky, "samples = 0")
    thresholds = UP_TEN_YEARS.replace('warn = "99%"\ncrit = "100%"', FULL, 1)
    result = suite.run(
        inventory,
        thresholds,
        f"--junitxml={junit}",
        "--junit-warnings",
        "--waivers",
        str(waivers_file(tmp_path)),
        "-k",
        "disk_used or reboot or status",
        paths=(*HOST, "suites/http/test_health.py"),
    )
    assert result.ret == pytest.ExitCode.OK  # WARN, FLAKY and WAIVED all pass
    case = cases(junit)["warnings"]
    assert case.get("classname") == "opscheck"
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("type") == "opscheck.warnings"
    lines = (skipped.text or "").splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["WARN", "FLAKY", "WAIVED", "STALE"]
    warn, flaky_, waived, stale = lines
    assert warn.startswith("WARN web1: up ") and warn.endswith(
        " < warn 3650.0 d (test_no_recent_reboot[web1])"
    )
    assert flaky_ == (
        f"FLAKY api: GET {flaky} answered 500 Internal Server Error (expected 2xx), then GET "
        f"{flaky} answered 200 OK (expected 2xx) 0.2 s later (test_status_expected[api])"
    )
    assert waived.startswith("WAIVED web1: / ") and "> crit 0.0 %: waived until " in waived
    assert waived.endswith(f"by alice: new disk ordered, INC-4711 ({DISK})")
    assert stale == (
        f"STALE waiver host.disk_used_pct web9 (owner bob, expires {UNTIL}: decommissioned): "
        "matches nothing: no target 'web9' in inventory.toml; remove it"
    )
    message = skipped.get("message", "")
    assert message.startswith("1 WARN, 1 FLAKY, 1 WAIVED, 1 stale waiver: web1: up ")
    assert "\n" not in message
    out = case.find("system-out")
    assert out is not None and out.text == skipped.text  # Jenkins' Standard Output
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert (props["warn"], props["flaky"], props["waived"], props["stale"]) == ("1", "1", "1", "1")
    assert totals(junit)["skipped"] == "1" and totals(junit)["failures"] == "0"


def test_with_fail_on_warn_the_summary_case_fails(suite, tmp_path):
    junit = tmp_path / "j.xml"
    args = (f"--junitxml={junit}", "--junit-warnings", "--fail-on-warn", *CHOSEN)
    result = suite.run(ME, UP_TEN_YEARS, *args, paths=HOST)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the WARN check fails itself
    found = cases(junit)
    message, text = failure(found["warnings"])
    assert message.startswith("1 WARN: web1: up ") and message.endswith(
        " < warn 3650.0 d (test_no_recent_reboot[web1])"
    )
    assert text == "WARN " + message.removeprefix("1 WARN: ")
    own, _ = failure(found["test_no_recent_reboot[web1]"])
    assert own.endswith("< warn 3650.0 d (--fail-on-warn)") and "\n" not in own


def test_with_nothing_to_list_the_summary_case_passes(suite, tmp_path):
    junit = tmp_path / "j.xml"
    result = suite.run(ME, CALM, f"--junitxml={junit}", "--junit-warnings", *CHOSEN, paths=HOST)
    assert result.ret == pytest.ExitCode.OK
    case = cases(junit)["warnings"]
    assert [child.tag for child in case] == ["properties", "system-out"]
    assert "no WARN, FLAKY or WAIVED check" in (case.findtext("system-out") or "")
    assert totals(junit) == {"tests": "4", "failures": "0", "errors": "0", "skipped": "0"}


def test_under_xdist_the_controller_writes_both(tmp_path):
    """``-n 2``: the workers run the checks, the controller writes the JUnit file."""
    (tmp_path / "inventory.toml").write_text(ME)
    (tmp_path / "thresholds.toml").write_text(DISK_CRIT.replace('warn = "1s"', 'warn = "3650d"'))
    junit = tmp_path / "j.xml"
    command = [str(Path(sys.executable).with_name("opscheck")), "-n", "2", *CHOSEN]
    command += [f"--junitxml={junit}", "--junit-warnings"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSCHECK_", "PYTEST_"))}
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.stdout + run.stderr
    found = cases(junit)
    message, _ = failure(found[DISK])
    assert message.startswith("web1: / ") and message.endswith(" > crit 0.0 %"), message
    skipped = found["warnings"].find("skipped")
    assert skipped is not None
    assert (skipped.get("message") or "").startswith("1 WARN: web1: up ")
    # (the command runs every suite: -k also picks checks of components with no target here,
    # which skip)
    skips = sum(case.find("skipped") is not None for case in found.values())
    assert totals(junit) == {
        "tests": str(len(found)),
        "failures": "1",
        "errors": "0",
        "skipped": str(skips),
    }


def test_an_expired_waiver_is_in_the_failure_message(suite, tmp_path):
    today = dt.datetime.now(dt.UTC).date()
    waivers = tmp_path / "waivers.toml"
    waivers.write_text(
        '[[waiver]]\ncheck = "host.disk_used_pct"\ntarget = "web1"\n'
        f'reason = "new disk ordered, INC-4711"\nowner = "alice"\nexpires = {today}\n'
    )
    junit = tmp_path / "j.xml"
    args = (f"--junitxml={junit}", "--junit-warnings", "--waivers", str(waivers), *CHOSEN)
    result = suite.run(ME, DISK_CRIT, *args, paths=HOST)
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # it fails again on the day it expires
    found = cases(junit)
    message, _ = failure(found[DISK])
    assert message.startswith("web1: / ") and "\n" not in message
    assert message.endswith(
        f" > crit 0.0 % (waiver expired on {today}: new disk ordered, INC-4711, owner alice)"
    ), message
    listed = found["warnings"].findtext("skipped") or ""
    assert (
        f"EXPIRED waiver host.disk_used_pct web1 (owner alice, expires {today}: new disk "
        "ordered, INC-4711): its problem counts again (a CRIT fails the run); fix it, or renew "
        "the waiver"
    ) in listed
