"""Backup retention: each of the last ``keep_daily`` days has a backup, and none is older than
``max_age_days`` (the pruning job works: `find /backups -name "*.dump" -mtime +30 -delete`).

With a retention key set, the target's one listing per run is a wide one: the path with each
``{date:FMT}`` as ``*`` (an S3 prefix up to its first date), and a backup's day is read back from
its name. The other backup checks get the backups of their days from it (``Found``), as the
per-day listing gives them. Without a date in the path, a backup's day is its modification time.
"""

from __future__ import annotations

import re
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

from opscheck import templates
from opscheck.config import NumberLimit
from opscheck.judge import Measurement
from opscheck.probes import NotApplicable
from opscheck.probes.backup import Backup, File, Found, Store, Window, find

_FIELD = re.compile(r"\{date(?::([^}]*))?\}")
_GLOB = re.compile(r"(\*|\?|\[!?[A-Za-z0-9_.-]+\])")
# How each strftime field the config allows is written: what its regex matches.
_DIGITS = {"%Y": r"\d{4}", "%y": r"\d{2}", "%m": r"\d{2}", "%d": r"\d{2}", "%j": r"\d{3}"}
_DIGITS |= {"%H": r"\d{2}", "%M": r"\d{2}", "%S": r"\d{2}", "%b": "[A-Za-z]{3}", "%%": "%"}


def _literal(text: str, glob: bool) -> str:
    if not glob:
        return re.escape(text)
    out = []
    for index, part in enumerate(_GLOB.split(text)):
        if not index % 2:
            out.append(re.escape(part))
        elif part == "*":
            out.append("[^/]*")
        elif part == "?":
            out.append("[^/]")
        else:
            out.append("[" + ("^" + part[2:-1] if part[1] == "!" else part[1:-1]) + "]")
    return "".join(out)


def _format_regex(fmt: str) -> str:
    parts = re.split(r"(%.)", fmt)
    return "".join(_DIGITS.get(p, ".+?") if i % 2 else re.escape(p) for i, p in enumerate(parts))


def pattern(template: str, glob: bool) -> tuple[re.Pattern[str], list[str]]:
    """A regex of the template's renderings (a group per date field) and the fields' formats."""
    formats: list[str] = []
    out: list[str] = []
    last = 0
    for match in _FIELD.finditer(template):
        out.append(_literal(template[last : match.start()], glob))
        formats.append(match.group(1) or "%Y-%m-%d")
        out.append(f"({_format_regex(formats[-1])})")
        last = match.end()
    out.append(_literal(template[last:], glob))
    return re.compile("".join(out)), formats


def wide(template: str, glob: bool) -> str:
    """What one listing reads: a host path with each date field as ``*``; an S3 prefix up to
    its first date field."""
    if not glob:
        first = _FIELD.search(template)
        return template[: first.start()] if first else template
    starred = _FIELD.sub(lambda m: re.sub(r"%.", "*", m.group(1) or "%Y-%m-%d"), template)
    return re.sub(r"\*+", "*", starred)


def _day(match: re.Match[str], formats: list[str]) -> date | None:
    for text, fmt in zip(match.groups(), formats, strict=True):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            return None  # "20261399": a name the template matches, not a day
    return None


class Everything:
    """All of a target's backups, from one wide listing, and where they were looked for."""

    def __init__(self, backups: list[Backup], listed: str, problems: list[str]) -> None:
        self.backups = backups  # newest first
        self.listed = listed
        self.problems = problems


def find_all(store: Store, template: str, window: Window) -> tuple[Found, Everything]:
    """One listing for the whole target: every backup with its day, and the recent ones as
    ``probes.backup.find`` gives them to the other checks."""
    if not templates.has_date(template):
        found = find(store, template, window)
        return found, Everything(found.backups, found.looked[0][1], found.problems)
    glob = store.noun == "files"
    regex, formats = pattern(template, glob)
    listed = wide(template, glob)
    per_path, problems = store.find([listed])
    dated: list[Backup] = []
    odd: list[Backup] = []
    if glob:
        for backup in per_path[0]:
            match = regex.fullmatch(backup.location) or regex.fullmatch(backup.location + "/")
            when = _day(match, formats) if match else None
            if when is not None:
                (odd if backup.not_file else dated).append(replace(backup, day=when))
    else:  # S3: one backup per rendered prefix, the objects under it
        groups: dict[str, tuple[date, list[File]]] = {}
        for backup in per_path[0]:
            for file in backup.files:
                match = regex.match(file.path)
                when = _day(match, formats) if match else None
                if match and when is not None:
                    groups.setdefault(match.group(0), (when, []))[1].append(file)
        for prefix, (when, files) in groups.items():
            location = store.show(prefix)
            dated.append(Backup(location, location, tuple(files), True, day=when))
    dated.sort(key=lambda b: (b.mtime, b.day or date.min), reverse=True)
    looked: list[tuple[date | None, str]] = []
    for day in window.days:
        rendered = store.show(templates.render(template, day))
        if rendered not in [path for _, path in looked]:
            looked.append((day, rendered))
    days = set(window.days)
    recent_odd = [b for b in odd if b.day in days]
    said = [f"{b.location} {b.not_file}" for b in recent_odd] + problems
    found = Found([b for b in dated if b.day in days], looked, window, said, recent_odd)
    return found, Everything(dated, store.show(listed), problems)


def day_of(backup: Backup) -> date:
    """The day a backup is of: the date in its name, else its modification time's (UTC)."""
    if backup.day is not None:
        return backup.day
    return datetime.fromtimestamp(backup.mtime, UTC).date()


def _counted(backup: Backup) -> bool:
    return bool(backup.files)  # an empty folder holds no backup


def _span(days: list[date]) -> str:
    return ", ".join(d.isoformat() for d in days)


def days_covered(
    everything: Everything, keep_daily: int | None, today: date | None = None
) -> Measurement:
    """How many of the last ``keep_daily`` days have a backup; the missing days named. The days
    end today when today's backup is there, else yesterday (tonight's may not have run yet)."""
    if keep_daily is None:
        raise NotApplicable("keep_daily is not set")
    today = today or datetime.now(UTC).date()
    have: dict[date, list[Backup]] = {}
    for backup in everything.backups:
        if _counted(backup):
            have.setdefault(day_of(backup), []).append(backup)
    end = today if today in have else today - timedelta(days=1)
    days = [end - timedelta(days=n) for n in range(keep_daily)]
    missing = [d for d in days if d not in have]
    covered = keep_daily - len(missing)
    text = f"{covered} of the last {keep_daily} days ({days[-1]} to {end}) have a backup"
    if missing:
        shown = _span(sorted(missing)[:10]) + (" ..." if len(missing) > 10 else "")
        text += f"; none for {shown}"
    lines = [f"{d}: " + (", ".join(b.name for b in have[d]) if d in have else "-") for d in days]
    detail = "\n".join([f"listed {everything.listed}", *lines, *everything.problems])
    return Measurement(covered, text=text, detail=detail)


def oldest(
    everything: Everything, max_age_days: int | None, now: float | None = None
) -> Measurement:
    """Age in days of the oldest backup kept: a day from its name counts whole days, a
    modification time exact days."""
    if max_age_days is None:
        raise NotApplicable("max_age_days is not set")
    now = now or time.time()
    today = datetime.fromtimestamp(now, UTC).date()
    if not everything.backups:
        raise NotApplicable(f"no backup at {everything.listed}: nothing to prune")

    def age(backup: Backup) -> float:
        if backup.day is not None:
            return float((today - backup.day).days)
        return max(0.0, (now - backup.mtime) / 86400)

    ages = sorted(((age(b), b) for b in everything.backups), key=lambda p: p[0], reverse=True)
    days, backup = ages[0]
    kind = f"dated {backup.day}" if backup.day else f"modified {day_of(backup)}"
    text = f"oldest backup {backup.name} ({kind}) is {days:.1f} days old"
    over = [b for a, b in ages if a > max_age_days]
    if over:
        text += f"; {len(over)} of {len(ages)} backups older than {max_age_days} days kept"
    else:
        text += f"; {len(ages)} backups kept"
    detail = "\n".join(f"{b.location} {a:.1f} days" for a, b in ages[:20])
    return Measurement(days, text=text, detail=detail)


def at_least(days: int) -> NumberLimit:
    """``keep_daily`` as the level: crit below it."""
    return NumberLimit(crit=days, direction="below")


def at_most(days: int) -> NumberLimit:
    """``max_age_days`` as the level: crit above it."""
    return NumberLimit(crit=days, direction="above")
