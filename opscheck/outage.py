"""A mass outage reads as one line per unreachable target, and is printed in seconds.

When a target is down, its connectivity check fails with the real error and its other checks
fail at once, pointing to it (``web1: unreachable (see test_host_reachable[web1]): …``). Those
pointing failures stay failures in every report (JSON, JUnit, HTML, the exit code); the terminal
counts them as ``unreachable`` instead of listing each again: 2,000 dead targets are 2,000
entries under FAILURES and 2,000 ``FAILED`` lines, not 10,000 of each. Each carries the user
property ``unreachable`` = the test that holds the real error.

pytest's failure summary is also quadratic: for every failure it scans every report of the run
for that test's teardown output (``TerminalReporter._get_teardown_reports``): 177 s of a 215 s
run with 6,000 failures. The reporter here looks them up in an index built once. And a failure
for a down target is one line without a traceback, so pytest is spared analysing one (~2 ms each).
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

import pytest

from opscheck.session import TargetDown

UNREACHABLE = "unreachable"  # the user property, and the terminal's word for such a failure


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
        see = (UNREACHABLE, down.seen)
        report.user_properties.append(see)
        item.user_properties.append(see)  # JUnit writes the properties of the last report
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
