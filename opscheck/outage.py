"""A mass outage reads as one line per unreachable target, and is printed in seconds.

When a target is down, its connectivity check fails with the real error and its other checks
fail at once, pointing to it (``web1: unreachable (see test_host_reachable[web1]): …``). A down
target is one problem: those pointing checks were not run. They stay pytest failures (the exit
code, ``-x``), but the terminal counts them as ``unreachable`` instead of listing each again
(2,000 dead targets are 2,000 entries under FAILURES and 2,000 ``FAILED`` lines, not 10,000 of
each), the JSON report gives them the outcome ``not_run`` (opscheck.report) and JUnit records them
as skipped with the same reason, ``not run: web1 unreachable (see test_host_reachable[web1])``:
CI viewers show one failure per down target, and the run stays red. Each carries the user
properties ``unreachable`` = the test that holds the real error and ``not_run`` = that reason.

pytest's failure summary is also quadratic: for every failure it scans every report of the run
for that test's teardown output (``TerminalReporter._get_teardown_reports``): 177 s of a 215 s
run with 6,000 failures. The reporter here looks them up in an index built once. And a failure
for a down target is one line without a traceback, so pytest is spared analysing one (~2 ms each).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Generator
from typing import Any

import pytest

from opscheck.session import TargetDown

UNREACHABLE = "unreachable"  # the user property, and the terminal's word for such a failure
NOT_RUN = "not_run"  # the user property holding the reason; the JSON report's outcome


def not_run_reason(down: TargetDown) -> str:
    """Why a check of a down target was not run, pointing to the test with the real error."""
    return f"not run: {down.name} unreachable (see {down.seen})"


def not_run(report: pytest.TestReport) -> str | None:
    """The reason a check was not run (its target is down), or None: it ran."""
    if report.when == "call" and report.failed:
        for key, value in report.user_properties:
            if key == NOT_RUN:
                return str(value)
    return None


def _target_down(excinfo: pytest.ExceptionInfo[BaseException] | None) -> TargetDown | None:
    """The ``TargetDown`` behind a failure: raised as it is, or made a one-line failure."""
    if excinfo is None:
        return None
    value = excinfo.value
    for exc in (value, value.__cause__, value.__context__):
        if isinstance(exc, TargetDown):
            return exc
    return None


def _pointing(excinfo: pytest.ExceptionInfo[BaseException] | None, down: TargetDown) -> bool:
    """Whether the failure points to the target's real error rather than giving it.

    The one failure of a down target that gives the real error is an ordinary failure; the
    others point to it (to its connectivity test, or to its first check when the run has no
    connectivity test: opscheck.plugin decides which and words the message)."""
    return excinfo is not None and str(excinfo.value) != down.first


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    excinfo = call.excinfo
    down = _target_down(excinfo) if call.when == "call" else None
    if excinfo is not None and down is not None and not item.config.getoption("fulltrace"):
        # The failure is one line (no traceback), yet pytest would walk and filter its whole
        # traceback first, stat-ing each frame's file: ~2 ms a failure, 12 s for 6,000. Its
        # last frame is all the line needs.
        excinfo.traceback = excinfo.traceback[-1:]
    report = yield
    if down is not None and report.failed and _pointing(excinfo, down):
        for pair in ((UNREACHABLE, down.seen), (NOT_RUN, not_run_reason(down))):
            report.user_properties.append(pair)
            item.user_properties.append(pair)  # JUnit writes the properties of the last report
    return report


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    if report.when != "call" or not report.failed:
        return None
    if any(key == UNREACHABLE for key, _ in report.user_properties):
        return UNREACHABLE, "U", ("UNREACHABLE", {"red": True})
    return None


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None and callable(getattr(reporter, "_get_teardown_reports", None)):
        reporter._get_teardown_reports = _indexed_teardown_reports(reporter)
    config.pluginmanager.register(_JUnitNotRun(config), "opscheck-junit-not-run")


class _JUnitNotRun:
    """JUnit has no "not run": a check of a down target becomes a ``<skipped>`` with its reason
    (the failure line, with the real error, as its text) instead of a ``<failure>``. Jenkins and
    GitLab then show one failure per down target (its connectivity check) and the rest as
    skipped; the run stays red (that failure, the exit code)."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config

    @pytest.hookimpl(trylast=True)  # after junitxml wrote the <failure>
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        reason = not_run(report)
        if reason is None:
            return
        from _pytest.junitxml import bin_xml_escape, xml_key

        logxml = self._config.stash.get(xml_key, None)  # None: no --junitxml, an xdist worker
        if logxml is None:
            return
        nodes = logxml.node_reporter(report).nodes
        failures = [i for i, node in enumerate(nodes) if node.tag == "failure"]
        if not failures:
            return
        skipped = ET.Element("skipped", type="opscheck.not_run", message=bin_xml_escape(reason))
        skipped.text = nodes[failures[-1]].text
        nodes[failures[-1]] = skipped
        logxml.stats["failure"] -= 1
        logxml.stats["skipped"] += 1


def _indexed_teardown_reports(reporter: Any) -> Callable[[Any], list[pytest.TestReport]]:
    """``TerminalReporter._get_teardown_reports`` (the passed teardown reports of one test, in
    order) from an index, rebuilt only when the reports it is built from change."""
    index: dict[Any, list[pytest.TestReport]] = {}
    built_from = -1

    def teardown_reports(node_id: Any) -> list[pytest.TestReport]:
        nonlocal built_from
        if len(reporter.stats.get("", ())) != built_from:
            index.clear()
            for report in reporter.getreports(""):
                if report.when == "teardown":
                    index.setdefault(report.id, []).append(report)
            built_from = len(reporter.stats.get("", ()))
        return list(index.get(node_id, ()))

    return teardown_reports
