"""One connection per target per run, and a target that cannot be reached is tried only once.

A component's fixture is one ``target_fixture`` call: the fixture hands each test a stand-in for
its target's connection that opens it on first use, inside the test, through the run's cache.
"""

from __future__ import annotations

import contextlib
import inspect
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


class Unreachable(Exception):
    """Connecting to a target failed; the message is the real error, redacted."""


class Run:
    """What a test run shares: the validated config and the live connections of each target."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._clients: dict[tuple[str, str], Any] = {}
        self._errors: dict[tuple[str, str], str] = {}
        self._closers: list[Callable[[], None]] = []
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        # Probes may one day measure ahead of the tests, several at once: a target still opens
        # once. Reentrant: opening a target may open the [[host]] it lives on.
        self._lock = threading.RLock()

    @property
    def tmpdir(self) -> Path:
        """A private scratch folder for the run (ssh control sockets and the like)."""
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="opscheck-")
        return Path(self._tmp.name)

    def timeout(self, target: Target) -> float:
        return float(target.timeout or self.config.inventory.settings.timeout)

    def connect(
        self, component: str, target: TargetT, opener: Opener[TargetT, T], connectivity_test: str
    ) -> T:
        """Return the cached client of a target, opening it once (and closing it, when it has a
        ``close()``, at the end of the run); fail at once if opening it failed."""
        key = (component, target.name)
        with self._lock:
            if key in self._errors:
                pytest.fail(
                    f"{target.name}: unreachable (see {connectivity_test}[{target.name}]): "
                    f"{self._errors[key]}",
                    pytrace=False,
                )
            if key not in self._clients:
                try:
                    opened = opener(target, self)
                except Unreachable as exc:
                    self._errors[key] = str(exc)
                    message = f"{target.name}: unreachable: {exc}"
                    raise pytest.fail.Exception(message, pytrace=False) from None  # not chained
                self._clients[key] = opened
                close = getattr(opened, "close", None)
                if callable(close):  # a session, a client, a database: closed at the end
                    self.on_close(close)
            client: T = self._clients[key]
            return client

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


def target_fixture(
    component: str,
    opener: Opener[TargetT, T],
    connectivity_test: str,
    doc: str,
    *,
    name: str | None = None,
) -> Any:
    """The fixture ``name`` (default: the component): this test's ``[[component]]`` connection,
    as ``opener`` makes it, opened once per run on first use; ``connectivity_test`` is the check
    whose failure the target's other tests point to. As pytest-postgresql's factories::

        redis = target_fixture("redis", _open, "test_redis_reachable", "This test's client.")
    """
    argname = f"{component}_target"

    def fixture(opscheck_run: Run, **targets: TargetT) -> T:
        target = targets[argname]
        lazy = _Lazy(lambda: opscheck_run.connect(component, target, opener, connectivity_test))
        return cast(T, lazy)

    # pytest reads a fixture's arguments from its signature: naming ``<component>_target`` there
    # is what parametrizes the test over the component's targets (plugin.pytest_generate_tests).
    keyword = inspect.Parameter.KEYWORD_ONLY
    fixture.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(arg, keyword) for arg in ("opscheck_run", argname)]
    )
    fixture.__name__ = fixture.__qualname__ = name or component
    fixture.__doc__ = doc
    return pytest.fixture(fixture, name=name or component)
