"""SQLite probes: the runbooks' ``sqlite3 app.db "PRAGMA integrity_check"`` and ``SELECT
COUNT(*)`` lines, opened read-only, as Measurements.

A ``Database`` reads a file on this machine through Python's sqlite3 (``file:…?mode=ro``), or on a
``[[host]]`` through that host's testinfra connection and its ``sqlite3 -readonly`` command.
"""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import quote

from opscheck.judge import Measurement, ProbeError
from opscheck.session import Unreachable
from opscheck.units import format_value

if TYPE_CHECKING:
    from testinfra.host import Host

PROBLEMS_SHOWN = 10  # lines of integrity_check output in the detail
_CORRUPT = ("database disk image is malformed", "file is not a database")


class FileState(NamedTuple):
    kind: str  # "file", "directory", ...
    size: int
    mtime: float
    wal_size: int


class Corrupt(Exception):
    """SQLite refused the file as damaged (SQLITE_CORRUPT, SQLITE_NOTADB); ``lines`` holds the
    rows it gave before it stopped (the first problems of an integrity check)."""

    def __init__(self, message: str, lines: list[str]) -> None:
        super().__init__(message)
        self.lines = lines


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Database:
    """One SQLite file, only ever read; every statement bounded by ``query_timeout``."""

    def __init__(
        self,
        path: str,
        host: Host | None = None,
        busy_timeout: float = 5.0,
        query_timeout: float = 60.0,
        host_name: str = "",
    ) -> None:
        self.path = path
        self.host = host  # a testinfra host, or None for this machine
        self.host_name = host_name
        self.busy_timeout = busy_timeout  # waiting for a writer's lock
        self.query_timeout = query_timeout
        self._conn: sqlite3.Connection | None = None
        self._reading = threading.Lock()  # one statement at a time on the one connection

    def open(self) -> Database:
        """Check that the host can read SQLite files at all (a missing file is not an error)."""
        if self.host is not None and not self.host.exists("sqlite3"):
            raise Unreachable(
                f"host {self.host_name} has no sqlite3 command (Debian: apt-get install sqlite3)"
            )
        return self

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def stat(self) -> FileState | None:
        """The file's type, size and age, and its WAL's size; None when there is no such path."""
        if self.host is None:
            try:
                st = os.stat(self.path)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise ProbeError(f"{self.path}: {exc.strerror}") from None
            kind = "file" if os.path.isfile(self.path) else "directory or special file"
            if os.path.isdir(self.path):
                kind = "directory"
            wal = os.path.getsize(self.path + "-wal") if os.path.exists(self.path + "-wal") else 0
            return FileState(kind, st.st_size, st.st_mtime, wal)
        # One command for the file and its WAL (testinfra's file module takes one per attribute).
        paths = " ".join(shlex.quote(p) for p in (self.path, self.path + "-wal"))
        result = self.host.run(f"stat -L -c '%F|%s|%Y|%n' -- {paths}")
        found = {}
        for line in result.stdout.splitlines():
            kind, size, mtime, name = line.split("|", 3)
            found[name] = (kind, int(size), float(mtime))
        if self.path not in found:
            error = result.stderr.strip()
            if "No such file" in error or not error:
                return None
            raise ProbeError(f"{self.path}: {error.splitlines()[0]}")
        kind, size, mtime = found[self.path]
        wal = found.get(self.path + "-wal", ("", 0, 0.0))[1]
        if kind not in ("regular file", "regular empty file"):
            return FileState(kind, 0, 0.0, 0)
        return FileState("file", size, mtime, wal)

    def _require_file(self) -> None:
        state = self.stat()
        if state is None:
            raise ProbeError(f"{self.path}: no such file")
        if state.kind != "file":
            raise ProbeError(f"{self.path}: not a file ({state.kind})")

    def query(self, sql: str) -> list[str]:
        """The rows of ``sql`` as text lines; Corrupt when SQLite calls the file damaged."""
        self._require_file()
        return self._local(sql) if self.host is None else self._remote(self.host, sql)

    def _local(self, sql: str) -> list[str]:
        with self._reading:
            return self._read(sql)

    def _read(self, sql: str) -> list[str]:
        if self._conn is None:
            uri = f"file:{quote(os.path.abspath(self.path))}?mode=ro"
            # Opened by whichever check reads first, in its thread; used by the others in theirs.
            self._conn = sqlite3.connect(
                uri, uri=True, timeout=self.busy_timeout, check_same_thread=False
            )
        deadline = time.monotonic() + self.query_timeout
        # sqlite3 has no statement timeout: the progress handler interrupts a statement past it.
        self._conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        lines: list[str] = []
        try:
            for row in self._conn.execute(sql):  # row by row: keep what comes before an error
                lines.append("|".join(map(str, row)))
            return lines
        except sqlite3.DatabaseError as exc:
            if getattr(exc, "sqlite_errorname", "") in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                raise Corrupt(str(exc), lines) from None
            if str(exc) == "interrupted":
                raise ProbeError(self._too_slow(sql)) from None
            raise ProbeError(f"{self.path}: {exc}") from None

    def _remote(self, host: Host, sql: str) -> list[str]:
        timeout = f"{self.query_timeout:g}"
        command = (
            f"timeout {timeout} sqlite3 -readonly -batch -bail "
            f"-cmd {shlex.quote(f'.timeout {round(self.busy_timeout * 1000)}')} "
            f"{shlex.quote(self.path)} {shlex.quote(sql)}"
        )
        result = host.run(command)
        if result.rc == 124:
            raise ProbeError(self._too_slow(sql))
        # sqlite3's "Error: stepping, database disk image is malformed (11)" as SQLite says it
        error = " ".join(result.stderr.split()).removeprefix("Error: ")
        error = re.sub(r" \(\d+\)$", "", re.sub(r"^(in prepare|stepping), ", "", error))
        lines = [line for line in result.stdout.splitlines() if line]
        if any(marker in error for marker in _CORRUPT):
            raise Corrupt(error, lines)
        if result.rc != 0:
            raise ProbeError(f"{self.path}: {error or f'sqlite3 exited {result.rc}'}")
        return lines

    def _too_slow(self, sql: str) -> str:
        return f"{sql}: no result within {self.query_timeout:g} s (query_timeout)"


def file_present(db: Database) -> Measurement:
    """A regular file is there (its size and age), or what is there instead."""
    state = db.stat()
    if state is None:
        return Measurement.fact(False, f"{db.path} does not exist", "a database file")
    if state.kind != "file":
        text = f"{db.path} is a {state.kind}, not a database file"
        return Measurement.fact(False, text, "a database file")
    age = format_value(max(0.0, time.time() - state.mtime), "duration")
    text = f"{db.path} present ({format_value(state.size, 'size')}, modified {age} ago)"
    return Measurement.fact(True, text, "a database file")


def file_size(db: Database) -> Measurement:
    """Size of the database file; a write-ahead log beside it is in the detail."""
    state = db.stat()
    if state is None or state.kind != "file":
        raise ProbeError(f"{db.path}: no such file")
    wal = f"write-ahead log {format_value(state.wal_size, 'size')}" if state.wal_size else ""
    return Measurement(
        state.size, subject=db.path, text=format_value(state.size, "size"), detail=wal
    )


def integrity(db: Database) -> Measurement:
    """``PRAGMA integrity_check`` answers ``ok``; else its first problem, the next in the detail."""
    try:
        lines = db.query("PRAGMA integrity_check")
    except Corrupt as exc:  # SQLite gave up on the file part way: that is the check's answer too
        lines = [*exc.lines, str(exc)]
    found = [line for line in lines if not line.startswith("*** in database")]  # a heading
    if found == ["ok"]:
        return Measurement.fact(True, "PRAGMA integrity_check: ok", "ok")
    more = f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
    shown = found[:PROBLEMS_SHOWN]
    rest = len(found) - len(shown)
    return Measurement.fact(
        False,
        f"PRAGMA integrity_check: {found[0]}{more}",
        "ok",
        detail="\n".join(shown) + (f"\n... and {rest} more" if rest else ""),
    )


def tables(db: Database) -> list[str]:
    return db.query("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') ORDER BY 1")


def row_count(db: Database, table: str) -> Measurement:
    """``SELECT COUNT(*)`` of a table; a no, with the tables there are, when it is missing."""
    try:
        known = tables(db)
        if table not in known:
            missing = f"{table}: no such table (tables: {', '.join(known) or 'none'})"
            return Measurement.fact(False, missing, f"a table {table}")
        rows = db.query(f"SELECT COUNT(*) FROM {_identifier(table)}")
    except Corrupt as exc:
        raise ProbeError(f"{db.path}: {exc} (see test_integrity_check_ok)") from None
    count = int(rows[0])
    return Measurement(count, subject=table, text=f"{count} rows")
