"""``waivers.toml``: problems an operator accepts for a while, each with a reason, an owner and
an expiry, validated like the inventory: one line per mistake, ``waivers.toml: waiver[0].expires:
...``. The plugin that applies them is ``opscheck.waivers``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, Field, PlainValidator, ValidationError

from .base import Name, Strict
from .errors import ConfigError, Loc, close_to, line, shown, translate
from .reading import read_toml

EVERY_CHECK = "*"  # every check of the target: a maintenance window


def _when(value: object) -> dt.date:
    """A TOML date (``2026-12-15``) or an offset datetime (``2026-12-14T22:00:00Z``)."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError(
                f"expected a date such as 2026-12-15 or a datetime with its offset such as "
                f"2026-12-14T22:00:00Z, got {value.isoformat()} (no offset: the run could not "
                "tell in which time zone it ends)"
            )
        return value
    if isinstance(value, dt.date):
        return value
    quoted = " (write it without quotes: a TOML date)" if isinstance(value, str) else ""
    raise ValueError(
        f"expected a date such as 2026-12-15 or a datetime with its offset such as "
        f"2026-12-14T22:00:00Z, got {shown(value)}{quoted}"
    )


def _text(value: str) -> str:
    if not value.strip():
        raise ValueError(f"expected a non-empty string, got {shown(value)}")
    return value


When = Annotated[dt.date, PlainValidator(_when)]
Text = Annotated[str, AfterValidator(_text)]


class Waiver(Strict):
    """One ``[[waiver]]``: which problem (check, target, subject), why, whose, until when."""

    check: Text  # a check key (host.disk_used_pct), a check id (host.disk_used_below_limit), "*"
    target: Name
    subject: str = ""  # only this mount, table, queue ...; "" = every subject
    reason: Text
    owner: Text
    expires: When  # a date: it fails again on that day (UTC); a datetime: from that moment
    starts: When | None = None  # not before (a maintenance window that is planned)

    def begins(self) -> dt.datetime | None:
        return None if self.starts is None else _moment(self.starts)

    def ends(self) -> dt.datetime:
        return _moment(self.expires)

    def state(self, now: dt.datetime) -> str:
        """``live``; ``expired`` (at or after ``expires``); ``pending`` (before ``starts``)."""
        if now >= self.ends():
            return "expired"
        begins = self.begins()
        if begins is not None and now < begins:
            return "pending"
        return "live"

    def label(self) -> str:
        """``host.disk_used_pct web1 /var``: what it waives."""
        return " ".join(p for p in (self.check, self.target, self.subject) if p)


class WaiversFile(Strict):
    waiver: list[Any] = Field(default_factory=list)  # each entry validated on its own


def _moment(when: dt.date) -> dt.datetime:
    """A date means its midnight UTC; a datetime is kept (with its offset)."""
    if isinstance(when, dt.datetime):
        return when
    return dt.datetime(when.year, when.month, when.day, tzinfo=dt.UTC)


def shown_when(when: dt.date) -> str:
    """``2026-12-15``, or ``2026-12-14T22:00:00Z`` for a datetime."""
    if isinstance(when, dt.datetime):
        text = when.isoformat()
        return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text
    return when.isoformat()


@dataclass(frozen=True)
class Policy:
    """What a waiver is checked against: the run's day, the longest allowed, the known checks."""

    today: dt.date
    max_days: int
    inventory_file: str
    check_keys: Collection[str]
    check_ids: Collection[str]


_MISSING_WHY = {
    "expires": "a waiver without an expiry is refused: give the day it ends, at most {days} days "
    "ahead, e.g. expires = {example}",
    "reason": 'say why the problem is accepted, e.g. reason = "new disk ordered, INC-4711"',
    "owner": 'say who answers for it, e.g. owner = "alice"',
    "check": 'a check key (host.disk_used_pct), a check id (host.disk_used_below_limit) or "*" '
    "for every check of the target",
    "target": "the inventory name of the target it applies to",
}


def load(path: Path, policy: Policy) -> list[Waiver]:
    """The waivers of ``path``; ``ConfigError`` with one line per mistake."""
    file = path.name
    problems: list[str] = []
    raw = read_toml(path, problems)
    waivers: list[tuple[int, Waiver]] = []
    if raw is not None and isinstance(raw.get("waiver"), dict):
        message = "expected [[waiver]] tables (a list), got a single [waiver] table"
        problems.append(line(file, ("waiver",), message))
    elif raw is not None:
        try:
            top = WaiversFile.model_validate(raw)
        except ValidationError as exc:
            problems += translate(file, WaiversFile, exc)
            top = WaiversFile()
        for index, entry in enumerate(top.waiver):
            loc: Loc = ("waiver", index)
            if not isinstance(entry, dict):
                problems.append(line(file, loc, f"expected a [[waiver]] table, got {shown(entry)}"))
                continue
            try:
                waivers.append((index, Waiver.model_validate(entry)))
            except ValidationError as exc:
                problems += _explained(file, loc, exc, policy)
            problems += _rules(file, loc, entry, policy)
        problems += _duplicates(file, waivers)
    if problems:
        raise ConfigError("\n".join(dict.fromkeys(problems)))
    return [waiver for _, waiver in waivers]


def _explained(file: str, loc: Loc, exc: ValidationError, policy: Policy) -> list[str]:
    """pydantic's lines, a missing key's saying what to write."""
    lines = translate(file, Waiver, exc, loc)
    example = (policy.today + dt.timedelta(days=min(30, policy.max_days))).isoformat()
    for key, why in _MISSING_WHY.items():
        missing = line(file, (*loc, key), "required key is missing")
        if missing in lines:
            text = f"{missing} ({why.format(days=policy.max_days, example=example)})"
            lines[lines.index(missing)] = text
    return lines


def _rules(file: str, loc: Loc, entry: dict[str, Any], policy: Policy) -> Iterator[str]:
    """What a single waiver's fields cannot say alone: its check exists, its length is allowed,
    it starts before it ends. Read from the table as written, so an entry with another mistake
    is checked for these too."""
    check = entry.get("check")
    known = {*policy.check_keys, *policy.check_ids}
    if isinstance(check, str) and check.strip() and check != EVERY_CHECK and check not in known:
        close = close_to(check, sorted(known))
        hint = f" (did you mean {close!r}?)" if close else ""
        yield line(
            file,
            (*loc, "check"),
            f"no such check key or check id {check!r}{hint}; expected a check key "
            '(host.disk_used_pct), a check id (host.disk_used_below_limit) or "*"',
        )
    expires, starts = _valid_when(entry.get("expires")), _valid_when(entry.get("starts"))
    if expires is None:
        return
    latest = policy.today + dt.timedelta(days=policy.max_days)
    ends = _moment(expires).astimezone(dt.UTC)
    if ends.date() > latest or (ends.date() == latest and ends.time() != dt.time(0)):
        yield line(
            file,
            (*loc, "expires"),
            f"expected a date at most {policy.max_days} days ahead (on or before "
            f"{latest.isoformat()}), got {shown_when(expires)} (a longer maximum: "
            f"[settings.waivers] max_days in {policy.inventory_file})",
        )
    if starts is not None and _moment(starts) >= _moment(expires):
        yield line(
            file,
            (*loc, "starts"),
            f"expected a start before expires ({shown_when(expires)}), got {shown_when(starts)}",
        )


def _valid_when(value: object) -> dt.date | None:
    try:
        return _when(value) if value is not None else None
    except ValueError:
        return None


def _duplicates(file: str, waivers: list[tuple[int, Waiver]]) -> Iterator[str]:
    """Two waivers for one check, target and subject whose times overlap: one would hide the
    other's expiry. (Two maintenance windows at different times are fine.)"""
    for n, (index, waiver) in enumerate(waivers):
        for earlier, other in waivers[:n]:
            same = (waiver.check, waiver.target, waiver.subject) == (
                other.check,
                other.target,
                other.subject,
            )
            if same and _overlap(waiver, other):
                yield line(
                    file,
                    ("waiver", index),
                    f"duplicate waiver for {waiver.label()} (also waiver[{earlier}], their "
                    "times overlap; keep one, with the later expiry if that is meant)",
                )
                break


def _overlap(a: Waiver, b: Waiver) -> bool:
    floor = dt.datetime.min.replace(tzinfo=dt.UTC)
    return (a.begins() or floor) < b.ends() and (b.begins() or floor) < a.ends()
