"""Is the newest backup whole? Each file verified by its kind, read-only, where it lies (through
the host's testinfra connection), within ``verify_timeout`` for the whole backup: ``PRAGMA
integrity_check``, ``tar -tf``, ``gzip -t``, ``pg_restore --list`` and every data block, a plain
dump's completion line.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.probes.backup import Backup, File, Found
from opscheck.probes.backup_files import INSTALL, HostFiles, ceil_seconds, tool
from opscheck.units import format_value

if TYPE_CHECKING:
    from opscheck.config import BackupTarget

# By file name, the longest suffix first; kind = "..." in the inventory names it outright.
_KINDS = (
    (".tar.gz", "tar"),
    (".tgz", "tar"),
    (".tar.bz2", "tar"),
    (".tar.xz", "tar"),
    (".tar.zst", "tar"),
    (".tar", "tar"),
    (".sql.gz", "pg_plain"),
    (".sql", "pg_plain"),
    (".dump", "pg_custom"),
    (".pgdump", "pg_custom"),
    (".db", "sqlite"),
    (".sqlite", "sqlite"),
    (".sqlite3", "sqlite"),
    (".gz", "gzip"),
)


def kind_of(name: str, configured: str = "auto") -> str | None:
    """How to verify a file: the configured kind, else by its name; None when unknown."""
    if configured != "auto":
        return configured
    lower = name.lower()
    return next((kind for suffix, kind in _KINDS if lower.endswith(suffix)), None)


@dataclass(frozen=True)
class Verified:
    """The integrity check of one file: its name, the verdict and what the tool said."""

    name: str
    ok: bool
    text: str


# pg_dump writes this line last (since 15.14 / 16.10 / 17.6 followed by `\unrestrict <key>`);
# pg_dumpall writes "database cluster dump complete".
_COMPLETE = re.compile(r"^-- PostgreSQL database (cluster )?dump complete$", re.M)
TAIL_BYTES = 4096


def integrity(store: HostFiles, found: Found, target: BackupTarget) -> list[Measurement]:
    """Each file of the newest backup whose kind is known reads back whole."""
    newest = found.newest
    checked = verify(store, newest, target.kind, target.verify_timeout)
    if not checked:
        names = ", ".join(f.name for f in newest.files[:5]) or f"{newest.name} is empty"
        raise NotApplicable(
            f"no file whose kind its name tells ({names}): set kind = "
            '"sqlite", "tar", "gzip", "pg_custom" or "pg_plain"'
        )
    return [Measurement.fact(f.ok, f"{f.name}: {f.text}", "reads back") for f in checked]


def verify(store: HostFiles, backup: Backup, configured: str, budget: float) -> list[Verified]:
    """Check each file of ``backup`` whose kind is known, read-only, where it lies; all checks
    together within ``budget`` seconds. An empty list: nothing it knows how to verify."""
    files = sorted(
        ((f, k) for f in backup.files if (k := kind_of(f.name, configured))),
        key=lambda pair: pair[0].path,
    )
    deadline = time.monotonic() + budget
    checked: list[Verified] = []
    for file, kind in files:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProbeError(
                f"verify_timeout ({format_value(budget, 'duration')}) spent after "
                f"{len(checked)} of {len(files)} files"
            )
        try:
            checked.append(_CHECKS[kind](store, file, remaining))
        except _TooSlow as exc:
            raise ProbeError(
                f"{file.name}: {exc} gave no answer within {ceil_seconds(remaining)} s "
                "(verify_timeout)"
            ) from None
    return checked


class _TooSlow(Exception):
    """A verification command ran out of time; the message names it."""


def _said(errors: list[str], file: File) -> str:
    text = "; ".join(e.strip() for e in errors[:3]).replace(file.path, file.name)
    return text or "no reason given"


def _sqlite(store: HostFiles, file: File, seconds: float) -> Verified:
    from opscheck.probes import sqlite

    if store.remote and not store.host.exists("sqlite3"):
        raise ProbeError(f"sqlite3: not found on {store.where}{INSTALL['sqlite3']}")
    # Read-only: Python's sqlite3 with mode=ro here, `sqlite3 -readonly` on a host.
    db = sqlite.Database(file.path, store.host if store.remote else None, store.timeout, seconds)
    try:
        checked = sqlite.integrity(db)
    except ProbeError as exc:
        if "no result within" in str(exc):
            raise _TooSlow("PRAGMA integrity_check") from None
        raise
    finally:
        db.close()
    return Verified(file.name, bool(checked.ok), checked.text)


def _tar(store: HostFiles, file: File, seconds: float) -> Verified:
    # GNU tar recognises gzip, bzip2, xz and zstd when it reads a file, and reads it to the end.
    status, out, errors = tool(store, f"tar -tf {shlex.quote(file.path)}", seconds, "wc -l")
    if status == 124:
        raise _TooSlow("tar -tf")
    if status:
        return Verified(file.name, False, f"tar -tf failed: {_said(errors, file)}")
    return Verified(file.name, True, f"tar -tf lists {int(out.split()[0])} entries")


def _gzip(store: HostFiles, file: File, seconds: float) -> Verified:
    status, _, errors = tool(store, f"gzip -t {shlex.quote(file.path)}", seconds)
    if status == 124:
        raise _TooSlow("gzip -t")
    if status:
        return Verified(file.name, False, f"gzip -t failed: {_said(errors, file)}")
    return Verified(file.name, True, "gzip -t: ok")


def _pg_custom(store: HostFiles, file: File, seconds: float) -> Verified:
    deadline = time.monotonic() + seconds
    path = shlex.quote(file.path)
    pipe = "grep -c -v -e '^;' -e '^$'"
    status, out, errors = tool(store, f"pg_restore --list {path}", seconds, pipe)
    if status == 124:
        raise _TooSlow("pg_restore --list")
    if status:
        return Verified(file.name, False, f"pg_restore --list failed: {_said(errors, file)}")
    entries = int(out.split()[0])
    # --list reads the table of contents only, at the start of the file: a dump cut short in
    # its data still lists. Reading every data block (to /dev/null) finds that.
    status, _, errors = tool(
        store, f"pg_restore --file=/dev/null {path}", deadline - time.monotonic()
    )
    if status == 124:
        raise _TooSlow("pg_restore --file=/dev/null")
    if status:
        return Verified(
            file.name,
            False,
            f"pg_restore lists {entries} entries but cannot read the data: {_said(errors, file)}",
        )
    return Verified(file.name, True, f"pg_restore lists {entries} entries, all data readable")


def _pg_plain(store: HostFiles, file: File, seconds: float) -> Verified:
    path = shlex.quote(file.path)
    if file.name.lower().endswith(".gz"):
        status, out, errors = tool(store, f"gzip -dc {path}", seconds, f"tail -c {TAIL_BYTES}")
        what = "gzip -dc"
    else:
        status, out, errors = tool(store, f"tail -c {TAIL_BYTES} {path}", seconds)
        what = "tail"
    if status == 124:
        raise _TooSlow(what)
    if status:
        return Verified(file.name, False, f"{what} failed: {_said(errors, file)}")
    if _COMPLETE.search(out):
        return Verified(file.name, True, "ends with '-- PostgreSQL database dump complete'")
    last = next((line for line in reversed(out.splitlines()) if line.strip()), "")
    return Verified(
        file.name,
        False,
        "no '-- PostgreSQL database dump complete' at its end: the dump was cut short "
        f"(last line: {last[:80]!r})",
    )


_CHECKS = {
    "sqlite": _sqlite,
    "tar": _tar,
    "gzip": _gzip,
    "pg_custom": _pg_custom,
    "pg_plain": _pg_plain,
}
