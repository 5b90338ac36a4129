"""One connection per target per run, and a target that cannot be reached is tried only once."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from opscheck.config import Config

T = TypeVar("T")


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

    @property
    def tmpdir(self) -> Path:
        """A private scratch folder for the run (ssh control sockets and the like)."""
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="opscheck-")
        return Path(self._tmp.name)

    def timeout(self, target: Any) -> float:
        return float(target.timeout or self.config.inventory.settings.timeout)

    def connect(
        self, component: str, name: str, opener: Callable[[], T], connectivity_test: str
    ) -> T:
        """Return the cached client of a target, opening it once; fail at once if that failed."""
        key = (component, name)
        if key in self._errors:
            pytest.fail(
                f"{name}: unreachable (see {connectivity_test}[{name}]): {self._errors[key]}",
                pytrace=False,
            )
        if key not in self._clients:
            try:
                self._clients[key] = opener()
            except Unreachable as exc:
                self._errors[key] = str(exc)
                message = f"{name}: unreachable: {exc}"
                raise pytest.fail.Exception(message, pytrace=False) from None  # not chained
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
