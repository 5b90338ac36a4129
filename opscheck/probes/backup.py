"""Backup probes: the evening "Daily Backup Verification" (`/backups/daily/$TODAY`, "Backup sizes
reasonable") as Measurements.

Backups are found where they land, once per run: files on a host (through its testinfra
connection; ``local://`` for this machine) or objects under an S3 prefix (``probes.s3``), in the
renderings of the path's date template for the recent days. Which days? "Last night's" backup of
a 09:00 check is in today's folder (or yesterday's, not yet replaced); at 00:30 it is in
yesterday's. So every day whose folder could hold a backup younger than the ``backup.age`` limit
counts, and the age check judges what was found. The day before that is read too, for the
previous backup the shrink check compares with, and tomorrow's: a host east of UTC names its
folder with its own date.
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Protocol

from opscheck import templates
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.units import format_value

MAX_LOOKBACK_DAYS = 62


@dataclass(frozen=True)
class File:
    path: str  # a path on the host, or an object's key
    size: int
    mtime: float  # seconds since the epoch (an object's LastModified)

    @property
    def name(self) -> str:
        return posixpath.basename(self.path)


@dataclass(frozen=True)
class Backup:
    """One backup: a file, or a folder (a directory, an S3 prefix) and the files in it."""

    location: str  # "/backups/daily/20261125/app.db", "s3://bucket/postgres/2026/11/25/"
    name: str  # how messages call it: "app.db", "20261125/", "postgres/2026/11/25/"
    files: tuple[File, ...]
    folder: bool = False
    own_mtime: float = 0.0  # a folder's own time: its age while it is empty
    day: date | None = None  # the day whose rendering found it (None: no date in the path)
    not_file: str = ""  # what the path is instead of a file: "is a FIFO (named pipe), not ..."

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def mtime(self) -> float:
        return max([f.mtime for f in self.files], default=self.own_mtime)

    @property
    def newest_name(self) -> str:
        """The file that makes the backup's age: a folder's newest file."""
        if not self.folder or not self.files:
            return self.name
        newest = max(self.files, key=lambda f: f.mtime)
        return f"{self.name.rstrip('/')}/{newest.path.rsplit('/', 1)[-1]}"

    def contents(self, noun: str = "files") -> str:
        if not self.folder:
            return format_value(self.size, "size")
        count = len(self.files)
        if not count:
            return f"empty (no {noun})"
        return f"{format_value(self.size, 'size')} in {count} {noun if count > 1 else noun[:-1]}"


class Store(Protocol):
    """Where a target's backups live; ``find`` answers per rendered path or prefix."""

    where: str  # "this machine", "host box", "s3://bucket"
    noun: str  # "files" or "objects"

    def show(self, rendered: str) -> str:
        """A rendered path or prefix as an operator writes it (``s3://bucket/prefix``)."""
        ...

    def find(self, rendered: Sequence[str]) -> tuple[list[list[Backup]], list[str]]:
        """The backups at each rendering, and the problems met (permission denied ...)."""
        ...

    def fetch(self, file: File, folder: Path, deadline: float) -> Path:
        """A local copy of ``file`` in ``folder`` (the file itself when it is on this machine)."""
        ...


@dataclass(frozen=True)
class Window:
    """The days whose renderings are read, newest first, and those that count as last night."""

    today: date
    days: list[date]
    recent: set[date]


def lookback(age_limit: float | None, now: datetime | None = None) -> Window:
    """A day is recent when a backup written at its very end would still be younger than the
    age limit now: at 09:00 with 26 h, today and yesterday; at 00:30, the day before too."""
    now = now or datetime.now(UTC)
    limit = age_limit if age_limit is not None else 26 * 3600
    today = now.date()
    recent = {today + timedelta(days=1), today}
    back = 1
    while back <= MAX_LOOKBACK_DAYS:
        day = today - timedelta(days=back)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), UTC)
        if (now - end).total_seconds() >= limit:
            break
        recent.add(day)
        back += 1
    # tomorrow, today, the recent days and one more: the previous backup to compare with
    days = [today + timedelta(days=1 - n) for n in range(back + 2)]
    return Window(today, days, recent)


@dataclass
class Found:
    """The backups of a target, newest first, and where they were looked for."""

    backups: list[Backup]
    looked: list[tuple[date | None, str]]  # (day, rendered path), newest day first
    window: Window
    problems: list[str] = field(default_factory=list)
    not_files: list[Backup] = field(default_factory=list)  # matches that are no file (a FIFO)

    @property
    def newest(self) -> Backup:
        if not self.backups:
            raise ProbeError(f"no backup found (see test_backup_exists): {self.nothing()}")
        return self.backups[0]

    def is_recent(self, backup: Backup) -> bool:
        return backup.day is None or backup.day in self.window.recent

    def nothing(self) -> str:
        """Where nothing was found: today's path or yesterday's ..., and why if a reason came."""
        tomorrow = self.window.today + timedelta(days=1)
        paths = [
            p for d, p in self.looked if d is None or (d in self.window.recent and d != tomorrow)
        ]
        if len(paths) == 1:
            shown = paths[0]
        elif len(paths) == 2:
            shown = f"{paths[0]} (today) or {paths[1]} (yesterday)"
        else:
            shown = f"{paths[0]} (today) or the {len(paths) - 1} days before (to {paths[-1]})"
        problems = f" ({'; '.join(self.problems[:3])})" if self.problems else ""
        return f"nothing at {shown}{problems}"

    def label(self, backup: Backup) -> str:
        if backup.day is None:
            return ""
        if backup.day == self.window.today:
            return " (today's)"
        if backup.day == self.window.today - timedelta(days=1):
            return " (yesterday's)"
        return f" (dated {backup.day.isoformat()})"


def find(store: Store, template: str, window: Window) -> Found:
    """Every backup in the renderings of ``template`` for the window's days, newest first."""
    looked: list[tuple[date | None, str]] = []
    if templates.has_date(template):
        for day in window.days:
            rendered = templates.render(template, day)
            if rendered not in [path for _, path in looked]:
                looked.append((day, rendered))
    else:
        looked.append((None, template))
    per_path, problems = store.find([path for _, path in looked])
    looked = [(when, store.show(path)) for when, path in looked]
    backups: dict[str, Backup] = {}
    not_files: dict[str, Backup] = {}
    for (when, _), found in zip(looked, per_path, strict=True):
        for b in found:
            kept = not_files if b.not_file else backups
            kept.setdefault(b.location, replace(b, day=when))
    ordered = sorted(backups.values(), key=lambda b: (b.mtime, b.day or date.min), reverse=True)
    problems = [f"{b.location} {b.not_file}" for b in not_files.values()] + problems
    return Found(ordered, looked, window, problems, list(not_files.values()))


# -- the checks ------------------------------------------------------------------------------


def exists(found: Found, noun: str = "files") -> Measurement:
    """Last night's backup is there: what was found, or where nothing was (and what went wrong
    looking, in the detail)."""
    expected, problems = "a backup of last night", "\n".join(found.problems)
    recent = [b for b in found.backups if found.is_recent(b)]
    odd = [b for b in found.not_files if found.is_recent(b)]
    if odd:  # where a backup should be, something that cannot be one: say what it is
        text = "; ".join(f"{b.location} {b.not_file}" for b in odd[:3])
        if recent:
            text += f"; found {recent[0].name}{found.label(recent[0])}"
        return Measurement.fact(False, text, expected, detail=problems)
    if not recent:
        older = ""
        if found.backups:
            older = f"; the newest is {found.newest.name}{found.label(found.newest)}"
        text = f"no backup of last night: {found.nothing()}{older}"
        return Measurement.fact(False, text, expected, detail=problems)
    backup = recent[0]
    if backup.folder:
        text = f"found {backup.location}{found.label(backup)}: {backup.contents(noun)}"
    else:
        where = posixpath.dirname(backup.location)
        text = f"found {backup.name}{found.label(backup)} in {where}"
    today = [p for d, p in found.looked if d == found.window.today]
    if backup.day is not None and backup.day < found.window.today and today:
        text += f"; nothing yet for today ({today[0]})"
    return Measurement.fact(True, text, expected, detail=problems)


def age(found: Found, now: float | None = None) -> Measurement:
    """Age of the newest backup (its newest file's modification time)."""
    backup = found.newest
    seconds = max(0.0, (now or time.time()) - backup.mtime)
    stamp = datetime.fromtimestamp(backup.mtime, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return Measurement(
        seconds,
        text=f"newest backup {backup.newest_name} is {format_value(seconds, 'duration')} old",
        detail=f"{backup.location} modified {stamp}",
    )


def size(found: Found, noun: str = "files") -> Measurement:
    """Size of the newest backup (the sum of a folder's files)."""
    backup = found.newest
    return Measurement(
        backup.size,
        text=f"newest backup {backup.name} is {backup.contents(noun)}",
        detail=backup.location,
    )


def shrink(found: Found) -> Measurement:
    """How much smaller the newest backup is than the one before it."""
    if len(found.backups) < 2:
        only = found.newest.name
        raise NotApplicable(f"only one backup found ({only}): nothing to compare")
    new, old = found.backups[0], found.backups[1]
    pct = 100.0 * (old.size - new.size) / old.size if old.size else 0.0
    sizes = f"{new.name} {format_value(new.size, 'size')}"
    before = f"{old.name} {format_value(old.size, 'size')}"
    if pct > 0:
        text = f"{sizes} is {pct:.1f} % smaller than {before}"
    elif pct < 0:
        text = f"{sizes} grew {-pct:.1f} % from {before}"
    else:
        text = f"{sizes}, the same as {before}"
    return Measurement(max(pct, 0.0), text=text, detail=f"{new.location}\n{old.location}")
