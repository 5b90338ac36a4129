"""One connection per target per run, and a target that cannot be reached is tried only once.

A component's fixture is one ``target_fixture`` call: the fixture hands each test a stand-in for
its target's connection that opens it on first use, inside the test, through the run's cache.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest

from opscheck.config import Config, Target, secret

T = TypeVar("T")
TargetT = TypeVar("TargetT", bound=Target)
Opener = Callable[[TargetT, "Run"], T]
"""Opens the connection of a target: raises ``Unreachable`` with the real error when it cannot."""


def environment() -> dict[str, str]:
    """A copy of the environment for a command a check starts: taken while pytest's main thread
    may be changing it (``$PYTEST_CURRENT_TEST``), and handed to the child, which then never
    reads the live one (see opscheck.measure)."""
    while True:
        try:
            env = dict(os.environ.items())
        except (KeyError, RuntimeError):  # a variable went away while it was copied: again
            continue
        env.pop("PYTEST_CURRENT_TEST", None)
        return env


class Unreachable(Exception):
    """Connecting to a target failed; the message is the real error, redacted."""


class Lost(Exception):
    """A target stopped answering mid-run: a deadline passed or its connection broke. Raised by
    a connection or a probe with the real error; ``key`` is the (component, target) it belongs
    to when that is not the check's own (the ``[[host]]`` a log file lives on)."""

    def __init__(self, error: str, key: tuple[str, str] | None = None) -> None:
        super().__init__(error)
        self.error, self.key = error, key


Classifier = Callable[[BaseException], "str | None"]
"""A component's test of an exception: the real error if it means the target stopped answering
(a timeout, a broken connection), else None (a refused command, a bad reply: the check's own)."""

LOST: dict[str, Classifier] = {}


class TargetDown(Exception):
    """A check needed a target that cannot be reached: the target's connectivity test fails with
    the real error, its other checks at once, pointing to it (see ``message``).

    A target that stopped answering mid-run (``lost``) is down from then on: the check that
    noticed gives the real error (``connectivity_test`` is then that check) and the others point
    to it."""

    def __init__(
        self,
        name: str,
        error: str,
        connectivity_test: str,
        *,
        lost: bool = False,
        seen: str | None = None,
    ) -> None:
        super().__init__(f"{name}: unreachable: {error}")
        self.name, self.error, self.connectivity_test = name, error, connectivity_test
        self.lost = lost
        # The id of the check that noticed: another target's when it lives on this one (the
        # logs of a [[host]]).
        self.seen = seen or f"{connectivity_test}[{name}]"

    def message(self, test: str) -> str:
        """The failure line of ``test`` of this target: a test function's name, or for a lost
        target the test's id (``test_x[web1]``), as checks of one function may be several."""
        see = self.seen
        if self.lost:
            if test == self.seen:
                return f"{self.name}: stopped answering mid-run: {self.error}"
            return f"{self.name}: unreachable (stopped answering in {see}): {self.error}"
        if test == self.connectivity_test:
            return f"{self.name}: unreachable: {self.error}"
        return f"{self.name}: unreachable (see {see}): {self.error}"

    @property
    def first(self) -> str:
        """The failure line that gives the real error (the others point to it)."""
        return self.message(self.seen if self.lost else self.connectivity_test)


class Run:
    """What a test run shares: the validated config and the live connections of each target."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._clients: dict[tuple[str, str], Any] = {}
        self._down: dict[tuple[str, str], TargetDown] = {}
        self._closers: list[Callable[[], None]] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        # Checks measure ahead of their tests, several at once (opscheck.measure): each target
        # still opens once, under its own lock; opening one may open the [[host]] it lives on.
        self._lock = threading.Lock()
        self._opening: dict[tuple[str, str], threading.Lock] = {}

    @property
    def tmpdir(self) -> Path:
        """A private scratch folder for the run (ssh control sockets and the like)."""
        with self._lock:  # hosts opening at once must not make two (one would be deleted)
            if self._tmp is None:
                self._tmp = tempfile.TemporaryDirectory(prefix="opscheck-")
            return Path(self._tmp.name)

    def timeout(self, target: Target) -> float:
        return float(target.timeout or self.config.inventory.settings.timeout)

    def connect(
        self, component: str, target: TargetT, opener: Opener[TargetT, T], connectivity_test: str
    ) -> T:
        """Return the cached client of a target, opening it once (and closing it, when it has a
        ``close()``, at the end of the run); raise ``TargetDown`` if opening it failed.

        Checks of different targets open theirs at the same time; checks of one target wait for
        its one opening (a dead target costs one timeout, not one per check)."""
        key = (component, target.name)
        with self._lock:
            opening = self._opening.setdefault(key, threading.Lock())
        with opening:
            if key in self._down:
                raise self._down[key]
            if key not in self._clients:
                try:
                    opened = opener(target, self)
                except Unreachable as exc:
                    self._down[key] = TargetDown(target.name, str(exc), connectivity_test)
                    raise self._down[key] from None
                self._clients[key] = opened
                close = getattr(opened, "close", None)
                if callable(close):  # a session, a client, a database: closed at the end
                    self.on_close(close)
            client: T = self._clients[key]
            return client

    def down(self, key: tuple[str, str]) -> TargetDown | None:
        """Why the target ``key`` (component, name) cannot be reached, if it cannot."""
        return self._down.get(key)

    def noticed(self, key: tuple[str, str], test: str, exc: BaseException) -> BaseException:
        """What a check of target ``key`` (component, name), the test ``test`` (its id with
        its parameters: ``test_queue_depth[cache/emails]``), raises
        for ``exc``: if it means the target stopped answering (``Lost``, or what the component's
        ``LOST`` classifier recognises), the target is down for the rest of the run, its other
        checks fail at once (``connect`` raises), and this check says so; else ``exc``."""
        if isinstance(exc, TargetDown):
            return exc
        seen = test
        if isinstance(exc, Lost):
            error: str | None = exc.error
            key = exc.key or key
        else:
            classify = LOST.get(key[0])
            error = classify(exc) if classify is not None else None
        if error is None:
            return exc
        with self._lock:  # several checks in flight may notice it at once: the first is told
            if key not in self._down:
                function = test.split("[", 1)[0]
                self._down[key] = TargetDown(key[1], error, function, lost=True, seen=seen)
            return self._down[key]

    def on_close(self, closer: Callable[[], None]) -> None:
        self._closers.append(closer)

    def close(self) -> None:
        for closer in reversed(self._closers):
            with contextlib.suppress(Exception):  # closing is best effort at the end of the run
                closer()
        self._closers.clear()
        self._clients.clear()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


def with_password(open_: Callable[[TargetT, str | None, float], T]) -> Opener[TargetT, T]:
    """The opener of a client library's ``open_(target, password, timeout)``: the password from
    the variable the target's ``password_env`` names, its timeout or the settings' one."""
    return lambda target, run: open_(target, secret(target, "password"), run.timeout(target))


class _Lazy:
    """Stands in for a target's connection until a test first uses it, so that a dead target
    fails inside the test with its real error (and its other tests at once), not in setup."""

    __slots__ = ("_open",)

    def __init__(self, open_: Callable[[], object]) -> None:
        self._open = open_

    def __getattr__(self, name: str) -> Any:
        return getattr(self._open(), name)


# Fixture name -> (component, opener, connectivity test) of every ``target_fixture``: what
# opscheck.measure needs to hand a check its connection without pytest's fixture machinery.
CONNECTIONS: dict[str, tuple[str, Opener[Any, Any], str]] = {}


def lazy_connection(run: Run, name: str, params: dict[str, Any]) -> Any:
    """The stand-in the fixture ``name`` hands a test with these parameters (its target)."""
    component, opener, connectivity_test = CONNECTIONS[name]
    target = params[f"{component}_target"]
    return _Lazy(lambda: run.connect(component, target, opener, connectivity_test))


def target_fixture(
    component: str,
    opener: Opener[TargetT, T],
    connectivity_test: str,
    doc: str,
    *,
    name: str | None = None,
    lost: Classifier | None = None,
) -> Any:
    """The fixture ``name`` (default: the component): this test's ``[[component]]`` connection,
    as ``opener`` makes it, opened once per run on first use; ``connectivity_test`` is the check
    whose failure the target's other tests point to; ``lost`` recognises the exceptions that
    mean the target stopped answering mid-run (see ``Run.noticed``). As pytest-postgresql's
    factories::

        redis = target_fixture("redis", _open, "test_redis_reachable", "This test's client.")
    """
    argname = f"{component}_target"
    name = name or component
    CONNECTIONS[name] = (component, opener, connectivity_test)
    if lost is not None:
        LOST[component] = lost

    def fixture(opscheck_run: Run, **targets: TargetT) -> T:
        return cast(T, lazy_connection(opscheck_run, name, targets))

    # pytest reads a fixture's arguments from its signature: naming ``<component>_target`` there
    # is what parametrizes the test over the component's targets (plugin.pytest_generate_tests).
    keyword = inspect.Parameter.KEYWORD_ONLY
    fixture.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(arg, keyword) for arg in ("opscheck_run", argname)]
    )
    fixture.__name__ = fixture.__qualname__ = name
    fixture.__doc__ = doc
    return pytest.fixture(fixture, name=name)
