"""Measure -> judge -> record.

A probe returns ``Measurement``s; ``Limits.check`` judges each against the threshold of its check
key, records one ``Record`` per measurement on the test's report, and fails the test on CRIT (or
on WARN with ``--fail-on-warn``). The HTML columns, the JUnit properties, the terminal and the
JSON report are all views of these records.
"""

from __future__ import annotations

import contextlib
import enum
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pytest

from opscheck import units
from opscheck.checks import CHECKS

if TYPE_CHECKING:
    from opscheck.config import Config, Limit, Threshold

RECORD = "record"  # the user_properties key of a Record (as JSON text, which JUnit keeps as is)


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
    ``ok`` makes it a yes/no answer (see ``fact``), judged by itself instead of by levels.
    """

    value: float
    subject: str = ""
    text: str = ""
    detail: str = ""
    ok: bool | None = None
    expected: str = ""  # a yes/no answer: what "yes" is ("running: nginx"), shown as threshold

    @classmethod
    def fact(
        cls, ok: bool, text: str, expected: str = "", *, subject: str = "", detail: str = ""
    ) -> Measurement:
        """A yes/no answer (a service running, a table present): CRIT when ``ok`` is false.

        ``text`` says what was found either way ("nginx: not running", "PRAGMA integrity_check:
        ok"); ``expected`` what was wanted.
        """
        return cls(1.0 if ok else 0.0, subject, text, detail, ok, expected)

    def describe(self, kind: units.Kind | str) -> str:
        shown = self.text or units.format_value(self.value, kind)
        return f"{self.subject} {shown}" if self.subject else shown


@dataclass(frozen=True)
class Record:
    """One judged measurement: what every report shows and the history keeps.

    ``value`` is in the base unit of ``unit`` (seconds, bytes, percent, days, a number, or 1/0
    for a yes/no ``state``); ``None`` when the check could not measure a number (a table
    missing, a field not numeric), which ``message`` then says.
    """

    check: str
    title: str
    target: str
    subject: str
    value: float | None
    unit: str
    warn: float | None
    crit: float | None
    direction: str
    verdict: str
    measured: str
    threshold: str
    message: str
    detail: str
    # A WARN/CRIT accepted by a waiver (opscheck/waivers.py): who, until when, why. The verdict
    # stays the measured one; the test passes and its outcome is "waived".
    waived: str = ""
    # Measured again (opscheck/recheck.py): the first measurement, {"value", "measured",
    # "verdict", "message", "delay"}; this record is the second. Passed then: outcome "flaky".
    recheck: dict[str, Any] | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Record:
        return cls(**json.loads(text))


def judge(value: float, threshold: Threshold) -> Verdict:
    if math.isnan(value):
        return Verdict.CRIT  # NaN passes no comparison: not a number is never OK

    def beyond(level: float | None) -> bool:
        if level is None:
            return False
        return value > level if threshold.direction == "above" else value < level

    if beyond(threshold.crit):
        return Verdict.CRIT
    if beyond(threshold.warn):
        return Verdict.WARN
    return Verdict.OK


class UnknownCheck(LookupError):
    """A suite judged a key that ``opscheck.checks.CHECKS`` does not register: a programming
    error (a typo such as ``host.disk_usd_pct``), never judged OK."""


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
        """Judge ``measured`` against the threshold of ``key`` for this target; fail on CRIT.

        Each measurement becomes one record; the test fails once, naming every one past its
        crit level (or warn level with ``--fail-on-warn``).
        """
        from opscheck import waivers  # it imports this module

        spec = CHECKS.get(key)
        if spec is None:
            raise UnknownCheck(f"check key {key!r} is not registered in opscheck/checks.py")
        items = [measured] if isinstance(measured, Measurement) else list(measured)
        if spec.kind == "state" and any(m.ok is None for m in items):
            raise TypeError(f"{key} is a yes/no check: judge a Measurement.fact(ok, ...)")
        threshold = self._config.threshold(key, self._target, limit)
        prefix = f"{self._target}: " if self._target else ""
        worst = Verdict.OK
        problems: list[str] = []
        for m in items:
            verdict = judge(m.value, threshold) if m.ok is None else Verdict(2 * (not m.ok))
            worst = max(worst, verdict)
            shown = m.describe(threshold.kind)
            if m.ok is not None or math.isnan(m.value):
                against, problem = m.expected or "yes", shown
                value = m.value if threshold.kind == "state" else None
            else:
                against, value = threshold.describe(), m.value
                problem = f"{shown} {self._against(verdict, threshold)}"
            message = f"{prefix}{problem}" if verdict is not Verdict.OK else ""
            record = Record(
                check=key,
                title=spec.title,
                target=self._target or "",
                subject=m.subject,
                value=value,
                unit=threshold.kind,
                warn=threshold.warn,
                crit=threshold.crit,
                direction=threshold.direction,
                verdict=verdict.name,
                measured=shown,
                threshold=against,
                message=message,
                detail=m.detail,
            )
            # A live waiver accepts the problem (record.waived); an expired one says so.
            record, expired = waivers.accept(self._item, record)
            self._record(record)
            if record.waived:
                continue
            if verdict is Verdict.CRIT or (verdict is Verdict.WARN and self._fail_on_warn):
                suffix = " (--fail-on-warn)" if verdict is Verdict.WARN else ""
                problems.append(message + suffix + expired + (f"\n{m.detail}" if m.detail else ""))
        if not items:  # nothing to measure is said, not silently passed
            self._record(
                Record(key, spec.title, self._target or "", "", None, threshold.kind,
                       threshold.warn, threshold.crit, threshold.direction, "OK",
                       "nothing to measure", threshold.describe(), "", "")
            )  # fmt: skip
        if problems:
            text = "\n".join(problems)
            if self._deferred is not None:
                self._deferred.append(text)
            else:
                pytest.fail(text, pytrace=False)
        return worst

    @staticmethod
    def _against(verdict: Verdict, threshold: Threshold) -> str:
        if verdict is Verdict.OK:
            return ""
        level = threshold.crit if verdict is Verdict.CRIT else threshold.warn
        op = ">" if threshold.direction == "above" else "<"
        name = "crit" if verdict is Verdict.CRIT else "warn"
        assert level is not None
        return f"{op} {name} {units.format_value(level, threshold.kind)}"

    def _record(self, record: Record) -> None:
        """The record for the reports, and its readable fields as JUnit properties."""
        props: list[tuple[str, Any]] = self._item.user_properties
        props.append((RECORD, record.to_json()))
        props.append(("check", record.check))
        props.append(("measured", record.measured))
        props.append(("threshold", record.threshold))
        props.append(("verdict", record.verdict))
        if record.message:
            props.append(("message", record.message))
        if record.detail:
            props.append(("detail", record.detail))


def records_of(user_properties: Iterable[tuple[str, Any]]) -> list[Record]:
    """The records a test report carries, in the order they were judged."""
    return [Record.from_json(value) for key, value in user_properties if key == RECORD]
