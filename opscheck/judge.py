"""Measure -> judge -> record.

A probe returns ``Measurement``s; ``Limits.check`` judges them against their threshold, records
target, measured value, threshold and verdict on the test's report, and fails the test on CRIT
(or on WARN with ``--fail-on-warn``).
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from opscheck import units

if TYPE_CHECKING:
    from opscheck.config import Config, Limit, Threshold


class Verdict(enum.IntEnum):
    OK = 0
    WARN = 1
    CRIT = 2


@dataclass(frozen=True)
class Measurement:
    """One measured value in its base unit, with what it is about and the facts behind it.

    ``subject`` names the thing measured when a check measures several (a mount, a JSON field);
    ``text`` replaces the bare number in messages ("172 of 200 connections used (86 %)");
    ``detail`` holds the evidence an operator wants next (the top consumers, the slow queries).
    """

    value: float
    subject: str = ""
    text: str = ""
    detail: str = ""

    def describe(self, kind: units.Kind | str) -> str:
        shown = self.text or units.format_value(self.value, kind)
        return f"{self.subject} {shown}" if self.subject else shown


def judge(value: float, threshold: Threshold) -> Verdict:
    def beyond(level: float | None) -> bool:
        if level is None:
            return False
        return value > level if threshold.direction == "above" else value < level

    if beyond(threshold.crit):
        return Verdict.CRIT
    if beyond(threshold.warn):
        return Verdict.WARN
    return Verdict.OK


class ProbeError(Exception):
    """A probe could not measure (a command failed, a field is missing); says which and why.

    The plugin turns it into a one-line failure of the test, without a traceback.
    """


class Limits:
    """The ``limits`` fixture: judge measurements of the current target and record them."""

    def __init__(
        self, config: Config, item: pytest.Item, target: str | None, fail_on_warn: bool
    ) -> None:
        self._config = config
        self._item = item
        self._target = target
        self._fail_on_warn = fail_on_warn
        self._deferred: list[str] | None = None

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Judge several measurements with their own limits; fail once, listing every breach."""
        self._deferred = []
        try:
            yield
        finally:
            failures, self._deferred = self._deferred, None
        if failures:
            pytest.fail("\n".join(failures), pytrace=False)

    def check(
        self, key: str, measured: Measurement | Iterable[Measurement], limit: Limit | None = None
    ) -> Verdict:
        """Judge ``measured`` against the threshold of ``key`` for this target; fail on CRIT."""
        items = [measured] if isinstance(measured, Measurement) else list(measured)
        threshold = self._config.threshold(key, self._target, limit)
        verdicts = [judge(m.value, threshold) for m in items]
        worst = max(verdicts, default=Verdict.OK)
        shown = ", ".join(m.describe(threshold.kind) for m in items) or "nothing to measure"
        bad = [
            f"{m.describe(threshold.kind)} {self._against(v, threshold)}"
            for m, v in zip(items, verdicts, strict=True)
            if v is not Verdict.OK
        ]
        detail = "\n".join(m.detail for m in items if m.detail)
        self._record(
            key,
            shown,
            threshold.describe(),
            worst,
            "; ".join(bad),
            detail,
            values=[m.value for m in items],
        )
        return worst

    def expect(self, key: str, ok: bool, measured: str, expected: str, detail: str = "") -> Verdict:
        """A yes/no check (a service running, a status code): CRIT with ``measured`` when not ok."""
        verdict = Verdict.OK if ok else Verdict.CRIT
        self._record(key, measured, expected, verdict, "" if ok else measured, detail)
        return verdict

    @staticmethod
    def _against(verdict: Verdict, threshold: Threshold) -> str:
        level = threshold.crit if verdict is Verdict.CRIT else threshold.warn
        op = ">" if threshold.direction == "above" else "<"
        name = "crit" if verdict is Verdict.CRIT else "warn"
        assert level is not None
        return f"{op} {name} {units.format_value(level, threshold.kind)}"

    def _record(
        self,
        key: str,
        measured: str,
        threshold: str,
        verdict: Verdict,
        problem: str,
        detail: str,
        values: list[float] | None = None,
    ) -> None:
        props: list[tuple[str, Any]] = self._item.user_properties
        prefix = f"{self._target}: " if self._target else ""
        message = f"{prefix}{problem}" if problem else ""
        props.append(("check", key))
        props.append(("measured", measured))
        props.append(("threshold", threshold))
        props.append(("verdict", verdict.name))
        if values:
            props.append(("values", values))
        if message:
            props.append(("message", message))
        if detail:
            props.append(("detail", detail))
        if verdict is Verdict.CRIT or (verdict is Verdict.WARN and self._fail_on_warn):
            suffix = " (--fail-on-warn)" if verdict is Verdict.WARN else ""
            text = message + suffix + (f"\n{detail}" if detail else "")
            if self._deferred is not None:
                self._deferred.append(text)
            else:
                pytest.fail(text, pytrace=False)
