"""opscheck.gcfreeze: a run's long-lived objects are frozen after collection and at exit, and an
in-process run leaves its host process collecting as before. The time it saves is measured by
bench/morning.py, not asserted here. On the Pythons whose AST constructor is not thread-safe
(gcfreeze.AST_RACE, this machine's 3.11.7 among them) threads parse at once in a run without
failing, and garbage is still collected, between tests."""

from __future__ import annotations

import gc
import xml.etree.ElementTree as ET

import pytest

from opscheck import gcfreeze

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


# Three threads parse a module's source while dropping cycles whose finalizer is Python code, as
# a run's measuring threads import lazily (pytest rewrites, so parses, what they import) while
# connections and responses become garbage. With the collector running by itself, one parse
# fails within milliseconds on an affected Python (a collection inside one thread's parse lets
# another thread parse); the loop is bounded at 3 s.
PARSING_THREADS = """
import ast, gc, inspect, threading, time

SOURCE = inspect.getsource(ast)
stop = time.monotonic() + 3


class Finalized:
    def __del__(self):
        pass


def test_threads_parse_at_once():
    errors = []

    def parse():
        while time.monotonic() < stop and not errors:
            try:
                ast.parse(SOURCE)
            except SystemError as error:
                errors.append(error)
            for _ in range(100):
                cycle = Finalized()
                cycle.self = cycle

    threads = [threading.Thread(target=parse) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[0]
"""


COLLECTOR_AT_EXIT = """
import atexit, gc

atexit.register(lambda: print(f"collector on at exit: {gc.isenabled()}", flush=True))
"""

needs_the_race = pytest.mark.skipif(
    not gcfreeze.AST_RACE, reason="this Python's AST constructor is thread-safe (3.11.8+)"
)


@needs_the_race
def test_threads_parsing_during_a_run_do_not_collide(pytester):
    pytester.makeconftest(COLLECTOR_AT_EXIT)
    pytester.makepyfile(test_parsing=PARSING_THREADS)
    result = pytester.runpytest_subprocess("-p", "opscheck.gcfreeze")  # a process of its own:
    result.assert_outcomes(passed=1)  # this session, a run of the plugin too, has it off
    result.stdout.fnmatch_lines(["collector on at exit: True"])  # the run gave it back


@needs_the_race
def test_without_the_plugin_threads_parsing_collide(pytester):
    """The broken case: the same run with the collector running by itself."""
    pytester.makepyfile(test_parsing=PARSING_THREADS)
    result = pytester.runpytest_subprocess("-p", "no:opscheck.gcfreeze")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*SystemError('AST constructor recursion depth mismatch*"])


GARBAGE_BETWEEN_TESTS = """
import gc, weakref

from opscheck import gcfreeze

refs = []


class Node:
    pass


def test_makes_cycles():
    assert not gc.isenabled()  # off while the tests run
    for _ in range(5000):
        node = Node()
        node.self = node
        refs.append(weakref.ref(node))


def test_they_were_collected_after_the_previous_test():
    assert refs and all(ref() is None for ref in refs)
"""


@needs_the_race
def test_garbage_is_collected_between_tests(pytester):
    pytester.makeconftest(COLLECTOR_AT_EXIT)
    pytester.makepyfile(test_garbage=GARBAGE_BETWEEN_TESTS)
    result = pytester.runpytest_subprocess("-p", "opscheck.gcfreeze")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["collector on at exit: True"])
