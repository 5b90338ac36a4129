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

Loaded with ``-p opscheck.gcfreeze`` (pytest.ini). Figures: bench/RESULTS.md, issue 8.
"""

from __future__ import annotations

import atexit
import gc

import pytest

_exit_registered = False


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
