"""opscheck.gcfreeze: a run's long-lived objects are frozen after collection and at exit, and an
in-process run leaves its host process collecting as before. The time it saves is measured by
bench/morning.py, not asserted here."""

from __future__ import annotations

import gc
import xml.etree.ElementTree as ET

import pytest

FROZEN_IN_TESTS = """
import gc

def test_objects_of_the_collection_are_frozen():
    assert gc.get_freeze_count() > 0
"""

AT_EXIT = """
import atexit, gc

# Registered before opscheck.gcfreeze's own handler (at configure): runs after it.
atexit.register(lambda: print(f"frozen at exit: {gc.get_freeze_count() > 0}", flush=True))
"""


def test_in_process_run_is_frozen_during_its_tests_and_unfrozen_after(pytester):
    pytester.makepyfile(test_frozen=FROZEN_IN_TESTS)
    result = pytester.runpytest_inprocess("-p", "opscheck.gcfreeze")
    result.assert_outcomes(passed=1)
    assert gc.get_freeze_count() == 0  # this process's own garbage is collectable again


def test_run_that_breaks_in_collection_reports_it_and_unfreezes(pytester):
    pytester.makepyfile(test_frozen=FROZEN_IN_TESTS, test_broken="def test_x(:\n    pass\n")
    result = pytester.runpytest_inprocess("-p", "opscheck.gcfreeze")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*ERROR collecting test_broken.py*", "*SyntaxError*"])
    assert gc.get_freeze_count() == 0


def test_process_exits_frozen_with_its_reports_complete(pytester):
    pytester.makeconftest(AT_EXIT)
    pytester.makepyfile(test_frozen=FROZEN_IN_TESTS)
    report = pytester.path / "junit.xml"
    result = pytester.runpytest_subprocess("-p", "opscheck.gcfreeze", f"--junitxml={report}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["frozen at exit: True"])
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "1"


def test_process_without_the_plugin_is_not_frozen_at_exit(pytester):
    """The broken case: the same run without opscheck.gcfreeze pays the full last collection."""
    pytester.makeconftest(AT_EXIT)
    pytester.makepyfile(test_plain="def test_x():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:opscheck.gcfreeze")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["frozen at exit: False"])
