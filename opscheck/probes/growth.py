"""Growth from the history store: days until full from a linear fit over a window, and growth
since the value a day or a week before. Reads what earlier runs recorded (this run's values are
appended at its end); a series with too little history is not judged, and says so."""

from __future__ import annotations

import sqlite3
import statistics
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from pathlib import Path

from opscheck import history
from opscheck.config import GrowthTarget
from opscheck.judge import Measurement, ProbeError
from opscheck.units import format_value

from . import NotApplicable

DAY = 86400.0
# "Since yesterday" is the newest value at least ~a day older: runs a few hours apart each day
# still compare with the day before (a 10 % slack), and nothing older than two periods.
SLACK = 0.9


class History:
    """The ``growth`` fixture: a ``[[growth]]`` entry's series read from the store (read only)."""

    def __init__(self, target: GrowthTarget, path: Path | None, why_none: str) -> None:
        self.target = target
        self.path = path
        self.why_none = why_none  # why the run has no store, when path is None
        self.now = datetime.now(UTC)

    def series(self, days: float) -> dict[str, list[tuple[float, float]]]:
        """The entry's series of the last ``days``: ``"<target> <subject>"`` -> (days since the
        first point, value), oldest first. No store or no history of the check: a skip saying
        so; history that matches nothing of the entry: a failure naming what was looked for."""
        t = self.target
        if self.path is None:
            raise NotApplicable(self.why_none)
        if not self.path.exists():
            raise NotApplicable(
                f"no history yet: {self.path} does not exist (the first archived run writes it)"
            )
        since = (self.now - timedelta(days=days)).isoformat(timespec="seconds")
        try:
            found = history.series(self.path, [t.check], since=since)
        except sqlite3.Error as exc:
            raise ProbeError(f"history store {self.path} cannot be read: {exc}") from None
        if not found:
            raise NotApplicable(f"no history of {t.check} in the last {days:g} days in {self.path}")
        kept = {
            key: points
            for key, points in found.items()
            if fnmatchcase(key[1], t.target) and fnmatchcase(key[2], t.subject)
        }
        if not kept:
            have = ", ".join(sorted(_label(k[1], k[2]) for k in found))
            raise ProbeError(
                f"no history of {t.check} for target {t.target!r} subject {t.subject!r} "
                f"(the store has: {have})"
            )
        first = min(points[0][0] for points in kept.values())
        start = datetime.fromisoformat(first)
        return {
            _label(k[1], k[2]): [
                ((datetime.fromisoformat(when) - start).total_seconds() / DAY, value)
                for when, value in points
            ]
            for k, points in sorted(kept.items())
        }


def _label(target: str, subject: str) -> str:
    return f"{target} {subject}".strip()


def _span(points: list[tuple[float, float]]) -> float:
    return points[-1][0] - points[0][0]


def _too_little(points: list[tuple[float, float]], target: GrowthTarget) -> bool:
    span = _span(points)
    return len(points) < target.min_runs or span < target.min_span_days or span <= 0


def _not_yet(points: list[tuple[float, float]], needs: str) -> str:
    runs = f"{len(points)} run{'s' if len(points) != 1 else ''}"
    return f"{runs} over {_span(points):.1f} days in history (needs {needs})"


def _finish(measured: list[Measurement], waiting: dict[str, str]) -> list[Measurement]:
    """The judged measurements, each noting the series not judged yet; none judged: a skip."""
    notes = [f"not judged yet: {label}: {why}" for label, why in waiting.items()]
    if not measured:
        if len(notes) == 1:
            raise NotApplicable(f"not judged yet: {next(iter(waiting.values()))}")
        raise NotApplicable("; ".join(notes))
    note = "\n".join(notes)
    return [
        Measurement(m.value, m.subject, m.text, "\n".join(filter(None, (m.detail, note))), m.ok)
        if note
        else m
        for m in measured
    ]


def days_until_full(growth: History) -> list[Measurement]:
    """Days until each series reaches ``full`` at the slope of a linear fit over the window."""
    t = growth.target
    full, kind = t.capacity, t.kind
    assert full is not None  # the test applies to entries with a capacity only
    measured, waiting = [], {}
    for label, points in growth.series(t.window_days).items():
        if _too_little(points, t):
            needs = f"{t.min_runs} over {t.min_span_days:g} days"
            waiting[label] = _not_yet(points, needs)
            continue
        x, y = zip(*points, strict=True)
        slope = statistics.linear_regression(x, y).slope
        latest = y[-1]
        now = (
            f"{latest:.1f} % used"
            if kind == "percent" and t.full is None
            else f"{format_value(latest, kind)} of {format_value(full, kind)}"
        )
        rate = f"{format_value(slope, kind)}/day"
        detail = f"linear fit over {len(points)} runs in {_span(points):.1f} days"
        if latest >= full:
            text = f"{now}: full already (growing {rate})"
            measured.append(Measurement(0.0, label, text, detail))
        elif slope <= 0:
            text = f"{now}, not growing ({rate} over {_span(points):.0f} days)"
            measured.append(Measurement.fact(True, text, "judged while growing", subject=label))
        else:
            days = (full - latest) / slope
            text = f"{now}, growing {rate}: full in {days:.0f} days"
            measured.append(Measurement(days, label, text, detail))
    return _finish(measured, waiting)


def per_period(growth: History, period_days: float) -> list[Measurement]:
    """Growth in % of each series since its newest value at least ~``period_days`` older."""
    t, kind = growth.target, growth.target.kind
    name = "a day" if period_days == 1 else "a week"
    measured, waiting = [], {}
    for label, points in growth.series(max(t.window_days, 3 * period_days)).items():
        newest_at, newest = points[-1]
        older = [
            (at, value)
            for at, value in points
            if period_days * SLACK <= newest_at - at <= 2 * period_days
        ]
        if not older:
            needs = f"a value {name} before the newest"
            waiting[label] = _not_yet(points, needs)
            continue
        before_at, before = older[-1]
        if not before:
            waiting[label] = f"the value {name} before is 0: no growth in % from it"
            continue
        pct = 100.0 * (newest - before) / abs(before)
        gap = newest_at - before_at
        since = (
            ("since yesterday" if period_days == 1 else "since a week ago")
            if gap <= period_days * 1.5
            else f"in {gap:.1f} days"
        )
        shown = f"{pct:+.0f}" if abs(pct) >= 10 else f"{pct:+.1f}"
        text = f"{format_value(newest, kind)}, {shown} % {since}"
        detail = f"{format_value(before, kind)} -> {format_value(newest, kind)}"
        measured.append(Measurement(pct, label, text, detail))
    return _finish(measured, waiting)
