"""Garbage collection in a run: what lives to its end is frozen, so no collection walks it.

A run builds its long-lived objects first (modules, the configuration, one item per check and
target) and keeps them to the end, where CPython walks every one of them again: in each full
collection during the tests, in the two pytest makes at the end (to report unraisable
exceptions) and in the interpreter's last one at exit. ``gc.freeze()`` once collection is
done takes them out of the collector's way; what the tests make is collected as usual. The
freeze is undone when the run's configuration is cleaned up, so an in-process run (pytester's)
leaves its host process collecting as before, and done again at interpreter exit, where
nothing is left to free: the process ends. Reports are written and closed by then; nothing is
cut short (no ``os._exit``).

On Python 3.11.0-3.11.7 (and 3.12.0-3.12.1) the collector does not run by itself during the
tests: the main thread collects between tests what it would have collected (``AST_RACE``).
Those versions count the AST constructor's recursion in state every thread shares
(CPython gh-106905, fixed in 3.11.8): a collection inside one thread's ``ast.parse`` runs
finalizers, another thread takes the GIL and parses too, and one of them fails with
"SystemError: AST constructor recursion depth mismatch". A run parses in several threads at
once: pytest rewrites the asserts of each module of a plugin's distribution (opscheck's,
testinfra's) as it is first imported, checks measured ahead import lazily in their threads, and
3.11's traceback formatting parses the failing line. Without a collection inside a parse no
thread can interleave with it; garbage is still freed, at the next test's end.

Loaded with ``-p opscheck.gcfreeze`` (pytest.ini). Figures: bench/RESULTS.md, issue 8.
"""

from __future__ import annotations

import atexit
import gc
import sys

import pytest

AST_RACE = (3, 11) <= sys.version_info < (3, 11, 8) or (3, 12) <= sys.version_info < (3, 12, 2)

_exit_registered = False
_deferred = False  # the collector is off, and collections are due between tests (AST_RACE)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # tryfirst: this cleanup is registered before that of pytest's unraisableexception plugin,
    # so it runs after that plugin's closing gc.collect(), which then skips the frozen objects.
    config.add_cleanup(gc.unfreeze)
    global _exit_registered
    if not _exit_registered:
        atexit.register(gc.freeze)
        _exit_registered = True


def pytest_collection_finish(session: pytest.Session) -> None:
    gc.freeze()
    global _deferred
    if AST_RACE and gc.isenabled():  # not when an outer run (pytester's host) already did
        gc.disable()
        _deferred = True
        session.config.add_cleanup(_collect_by_itself_again)


def pytest_runtest_logfinish() -> None:
    if _deferred:
        collect_as_due()


def collect_as_due() -> None:
    """Collect the oldest generation the collector would have collected by itself by now (its
    thresholds against its counts, which count on while it is off), from the main thread."""
    counts, thresholds = gc.get_count(), gc.get_threshold()
    for generation in (2, 1, 0):
        if thresholds[generation] and counts[generation] > thresholds[generation]:
            gc.collect(generation)
            return


def _collect_by_itself_again() -> None:
    global _deferred
    _deferred = False
    gc.enable()
