"""The log scanner opscheck runs WHERE THE LOGS ARE: ``python3 -c <this file> <request JSON>``.

Standard library only, Python 3.7+, read-only: it opens log files for reading (without touching
their access time where the kernel allows), never writes, and prints one JSON document. The
runner sends it through the target's testinfra connection, so gigabytes of logs never cross ssh;
only counts and the few top messages come back.

Two requests:
- ``files``: the files a source matches, their size, modification time, first and last
  timestamp, and the disk usage of the folders holding them;
- ``count``: per pattern, the lines matching it since its window start, with the top messages.

Log files are appended to, so their timestamps are ordered: the byte offset of a window start is
found by binary search (only where the window starts inside the file), and only the part of a
file inside the window is read. GNU grep reads it where the host has one: the runner turns each
pattern into a POSIX extended regex, exact (grep counts: ``grep -c``) or wider (grep finds the
lines that may match, Python confirms them); ``wc -l`` counts the window's lines beside it.
Python folds only the matching lines into the top messages. Without GNU grep, Python reads the
window itself. When a window reaches before a file's first line (or the file was just emptied by
its rotation), its rotated copies beside it (logrotate's names) are read too, newest first, until
one begins before the window; .gz, .bz2 and .xz through Python's own decompressors.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import json
import os
import re
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable

CHUNK = 8 << 20  # bytes read at once while counting
PROBE = 64 << 10  # bytes read at a binary search step
HEAD = 1 << 20  # a file without a timestamp in its first MB is treated as having none
STAMP_SPAN = 200  # a line's timestamp is looked for in its first bytes
FOLD_LIMIT = 100_000  # matching lines folded into the top messages, per pattern
DISTINCT_LIMIT = 5_000  # distinct folded messages kept, per pattern
TOP = 10
EXAMPLE = 300  # characters of an example line
# A line that runs on past MAX_LINE bytes (beyond what one read brings) is held, and matched, on
# its first MAX_LINE bytes: a log with a 200 MB line must not cost 200 MB, several times over, on
# the host it is read on.
MAX_LINE = 1 << 20
# grep holds a whole line, so it runs under this much address space (``ulimit -v``): the worst
# regex measured needs 16 MiB; a longer line makes it fail ("memory exhausted"), and Python,
# which cuts lines, counts that file instead.
GREP_MEMORY = 32 << 20
BATCH = 1 << 20  # bytes of grep's output handed to Python at once
PIPE = 1 << 20  # the size asked for the pipes from grep (Linux; the default is 64 KB)
FEW_SHAPES = 64  # shapes of line in a block of grep's output found by bytes.find, each
COMPRESSED = (".gz", ".xz", ".bz2", ".zst", ".lz4", ".zip")
FILES_SAID = 3  # matches of a glob that are not files, said when no file matched

_MONTHS = {
    m.encode(): i + 1
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    )
}
_ISO = re.compile(
    rb"(\d{4})[-/](\d\d)[-/](\d\d)[T ](\d\d):(\d\d):(\d\d)(?:[.,]\d+)?"
    rb"(Z|[+-]\d\d(?::?\d\d)?(?!\d)| [+-]\d\d:?\d\d(?!\d))?"
)
_CLF = re.compile(rb"\[(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-]\d{4})\]")
_SYSLOG = re.compile(rb"^(?:<\d+>)?([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d)(?!\d)")

# Folding: the parts of a message that differ between repeats of the same event (compiled on
# first use: a scan that finds nothing does not pay for them).
_ISO_TIME = r"\d{4}[-/]\d\d[-/]\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?: ?(?:Z|[+-]\d\d:?\d\d))?"
_FOLD_RULES = [
    (_ISO_TIME, "<time>"),
    (r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]", "<time>"),
    (r"^(?:<\d+>)?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d", "<time>"),
    (r"\b\d\d:\d\d:\d\d(?:[.,]\d+)?\b", "<time>"),
    (r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b", "<uuid>"),
    (r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b", "<ip>"),
    (r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}(?![\w:])", "<ip>"),
    (r"\b0x[0-9a-fA-F]+\b", "<hex>"),
    (r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b", "<hex>"),
    (r"\b\d+(?:\.\d+)?\b", "<n>"),
]  # fmt: skip
_FOLDS: list = []

# journald's PRIORITY, for `level` in patterns of a journald_unit source.
_PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_PRIORITY_ALIASES = {"error": "err", "warn": "warning", "critical": "crit", "emergency": "emerg"}


_ZEROS = str.maketrans("123456789", "000000000")
_ZERO_BYTES = bytes.maketrans(b"123456789", b"000000000")
_FOLDED: dict[str, str] = {}
C_LOCALE = dict(os.environ, LC_ALL="C")  # grep and wc: bytes, as Python's bytes regexes


def fold(message: str) -> str:
    """The message with numbers, ids, addresses and times replaced, so repeats group."""
    text = message[:EXAMPLE]
    # No fold rule tells one digit from another: lines that differ only in their digits fold
    # alike, so the ~30 µs of regexes run once per shape of line, not once per line.
    shape = text.translate(_ZEROS)
    folded = _FOLDED.get(shape)
    if folded is None:
        if not _FOLDS:
            _FOLDS[:] = [(re.compile(rx), placeholder) for rx, placeholder in _FOLD_RULES]
        folded = text
        for rx, placeholder in _FOLDS:
            folded = rx.sub(placeholder, folded)
        folded = folded.strip()
        if len(_FOLDED) < DISTINCT_LIMIT:
            _FOLDED[shape] = folded
    return folded


# -- timestamps --------------------------------------------------------------------------------


def timegm(year: int, month: int, day: int, h: int, m: int, s: int) -> int:
    """``calendar.timegm`` without importing calendar (with datetime and locale, ~3 ms of every
    scan): days from the civil date (proleptic Gregorian), and the same ValueError for a month
    or year that does not exist."""
    if not 1 <= month <= 12 or not 1 <= year <= 9999:
        raise ValueError(f"no such month: {year}-{month}")
    y = year - (month <= 2)
    era = y // 400
    of_era = y - era * 400
    of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    days = era * 146097 + of_era * 365 + of_era // 4 - of_era // 100 + of_year - 719468
    return ((days * 24 + h) * 60 + m) * 60 + s


def _epoch(year: int, month: int, day: int, h: int, m: int, s: int, zone: bytes | None) -> float:
    """Seconds since the epoch; a time without a zone is local time of this host (as syslog)."""
    if zone is None:
        return time.mktime((year, month, day, h, m, s, 0, 0, -1))
    utc = timegm(year, month, day, h, m, s)
    if zone in (b"Z", b"z"):
        return float(utc)
    zone = zone.strip()
    sign = -1 if zone[:1] == b"-" else 1
    digits = zone[1:].replace(b":", b"")
    offset = int(digits[:2]) * 3600 + (int(digits[2:4]) * 60 if len(digits) >= 4 else 0)
    return float(utc - sign * offset)


def stamp_text(head: bytes, now: float) -> float | None:
    """The timestamp of a text line: syslog at its start, else the first ISO 8601 (or nginx
    error log ``2026/11/25 01:02:03``) or nginx/apache common-log time in its first bytes."""
    try:
        m = _SYSLOG.match(head)
        if m and m.group(1) in _MONTHS:
            year = time.localtime(now).tm_year
            month, day = _MONTHS[m.group(1)], int(m.group(2))
            h, mi, s = int(m.group(3)), int(m.group(4)), int(m.group(5))
            found = _epoch(year, month, day, h, mi, s, None)
            if found > now + 2 * 86400:  # syslog has no year: December's lines read in January
                found = _epoch(year - 1, month, day, h, mi, s, None)
            return found
        iso, clf = _ISO.search(head), _CLF.search(head)
        if iso and (clf is None or iso.start() < clf.start()):
            y, mo, d, h, mi, s = (int(iso.group(i)) for i in range(1, 7))
            return _epoch(y, mo, d, h, mi, s, iso.group(7))
        if clf and clf.group(2) in _MONTHS:
            d, y = int(clf.group(1)), int(clf.group(3))
            h, mi, s = int(clf.group(4)), int(clf.group(5)), int(clf.group(6))
            return _epoch(y, _MONTHS[clf.group(2)], d, h, mi, s, clf.group(7))
    except (ValueError, OverflowError):  # 2026-13-45: not a time after all
        return None
    return None


def stamp_value(value: object, now: float) -> float | None:
    """A JSON time field: an ISO 8601 string, or epoch seconds, milliseconds or microseconds."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):  # a tuple, not int | float: hosts may run Python 3.7
        number = float(value)
        if number > 1e14:
            return number / 1e6
        if number > 1e11:
            return number / 1e3
        return number
    if isinstance(value, str):
        return stamp_text(value.encode()[:STAMP_SPAN], now)
    return None


def open_quietly(path: str) -> int:
    """A read-only descriptor of a regular file that leaves the file's access time alone where
    the kernel allows (O_NOATIME: for the file's owner, or root). Opened non-blocking: a path
    that became a FIFO since it was listed must not wait forever for a writer; it is refused."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        fd = os.open(path, flags)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"is {kind(mode)}, not a regular file")
    fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
    return fd


def kind(mode: int) -> str:
    """What a file that is not a regular file is, as ``ls -l`` and ``stat`` tell."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


class Reader:
    """One log file, opened read-only, with how to find a line's timestamp and message."""

    def __init__(self, path: str, request: dict, now: float) -> None:
        self.path = path
        self.request = request
        self.long = False  # a line longer than MAX_LINE was met (and read in part)
        self.json = request.get("format") == "json"
        self.time_field = request.get("time_field", "timestamp")
        self.message_field = request.get("message_field", "message")
        self.level_field = request.get("level_field", "level")
        self.now = now
        fd = open_quietly(path)
        self.f = os.fdopen(fd, "rb")
        self.size = os.fstat(fd).st_size  # a growing file is read up to here

    def close(self) -> None:
        self.f.close()

    def again(self) -> Reader:
        """The same file opened once more (its own offset), read up to the same size."""
        other = Reader(self.path, self.request, self.now)
        other.size = self.size
        return other

    def line(self) -> tuple:
        """(the line at the current offset, its length in the file): a line longer than
        MAX_LINE as its first MAX_LINE bytes, its rest read past, never held."""
        head = self.f.readline(MAX_LINE + 1)
        length = len(head)
        if length <= MAX_LINE or head.endswith(b"\n"):
            return head, length
        self.long = True
        while True:
            rest = self.f.readline(PROBE)
            length += len(rest)
            if not rest or rest.endswith(b"\n"):
                return head[:MAX_LINE], length

    def past_line(self, position: int) -> tuple:
        """Read on from ``position`` (the current offset) to the end of the line there:
        (the offset after the newline read, the bytes read after it)."""
        self.long = True
        while position < self.size:
            data = self.f.read(min(MAX_LINE, self.size - position))
            if not data:
                break
            position += len(data)
            newline = data.find(b"\n")
            if newline >= 0:
                return position, data[newline + 1 :]
        return position, b""

    def fields(self, line: bytes) -> dict:
        try:
            obj = json.loads(line)
        except ValueError:
            return {}
        return obj if isinstance(obj, dict) else {}

    def stamp(self, line: bytes) -> float | None:
        if self.json:
            found = stamp_value(self.fields(line).get(self.time_field), self.now)
            if found is not None:
                return found
        return stamp_text(line[:STAMP_SPAN], self.now)

    def message(self, line: bytes) -> str:
        if self.json:
            value = self.fields(line).get(self.message_field)
            if isinstance(value, str):
                return value
        return line.decode("utf-8", "replace")

    def line_at(self, offset: int) -> int:
        """The start of the first line at or after ``offset`` (``size`` when there is none)."""
        if offset <= 0:
            return 0
        self.f.seek(offset - 1)
        position = offset - 1
        while position < self.size:
            block = self.f.read(PROBE)
            if not block:
                break
            newline = block.find(b"\n")
            if newline >= 0:
                return position + newline + 1
            position += len(block)
        return self.size

    def stamped(self, start: int, stop: int) -> tuple[int, float] | tuple[None, None]:
        """(offset, time) of the first line with a timestamp starting in [start, stop)."""
        self.f.seek(start)
        position = start
        while position < stop:
            line, length = self.line()
            if not line:
                break
            found = self.stamp(line)
            if found is not None:
                return position, found
            position += length
        return None, None

    def newlines(self, offset: int) -> int:
        """The newlines from ``offset`` to the size the scan began with."""
        self.f.seek(offset)
        found = 0
        while offset < self.size:
            data = self.f.read(min(CHUNK, self.size - offset))
            if not data:
                break
            offset += len(data)
            found += data.count(b"\n")
        return found

    def first_stamp(self) -> float | None:
        return self.stamped(0, min(self.size, HEAD))[1]

    def last_stamp(self) -> float | None:
        """The timestamp of the last line that has one, from the file's last 64 KB."""
        start = max(0, self.size - PROBE)
        self.f.seek(start)
        lines = self.f.read(self.size - start).split(b"\n")
        if start > 0:
            lines = lines[1:]  # the first is cut
        for line in reversed(lines):
            found = self.stamp(line) if line else None
            if found is not None:
                return found
        return None

    def window_offset(self, since: float) -> int:
        """The offset of the first line stamped at or after ``since``; lines without a stamp
        belong to the line before them. Binary search, then a short linear scan."""
        low, high, best = 0, self.size, self.size
        while high - low > PROBE:
            middle = self.line_at((low + high) // 2)
            if middle >= high:
                break
            offset, found = self.stamped(middle, min(high, middle + PROBE))
            if offset is None or found is None:
                high = middle  # no stamp here: look left; `best` still bounds the answer
            elif found < since:
                low = offset
            else:
                high = best = offset
        offset = low
        while offset < best:
            hit, found = self.stamped(offset, best)
            if hit is None or found is None:
                return best
            if found >= since:
                return hit
            self.f.seek(hit)
            offset = hit + self.line()[1]
        return best


# -- matching ---------------------------------------------------------------------------------


class Pattern:
    """One ``[[logs.patterns]]`` entry: its regexes and levels, its window, its tally."""

    def __init__(self, spec: dict, request: dict) -> None:
        self.name = spec["name"]
        self.since = float(spec["since"])
        self.regexes = [re.compile(rx.encode(), re.MULTILINE) for rx in spec.get("regexes", [])]
        self.levels = {str(level).lower() for level in spec.get("levels", [])}
        # What GNU grep looks for (worked out by the runner): a POSIX extended regex over bytes
        # that every matching line matches; ``exact`` when it matches those lines and no other.
        ere = spec.get("ere")
        self.ere = ere.encode("latin-1") if ere else None  # one character per byte
        self.exact = bool(spec.get("exact")) and not (
            self.levels and request.get("format") == "json"
        )
        # Literals one of which every matching line contains: where the host has no GNU grep,
        # found with bytes.find at memory speed, then confirmed by the regexes.
        self.literals = [lit.encode() for lit in spec.get("literals") or []]
        self.iliterals = [lit.encode().lower() for lit in spec.get("iliterals") or []]
        self.count = 0
        self.lines = 0
        self.folded = 0
        self.top: dict[str, list] = {}  # folded message: [count, example]
        self.other = 0  # matches whose folded message was not kept (DISTINCT_LIMIT)
        self.level_field = request.get("level_field", "level")

    def level_rx(self) -> re.Pattern:
        """A cheap pass over raw JSON lines for the levels; each hit is confirmed by parsing."""
        field = re.escape(self.level_field).encode()
        values = b"|".join(re.escape(level.encode()) for level in sorted(self.levels))
        return re.compile(b'"' + field + rb'"\s*:\s*"?(?i:' + values + rb')"?\s*[,}]')

    def matches(self, line: bytes, reader: Reader) -> bool:
        """Whether ``line`` (without its newline) matches every regex and level."""
        for rx in self.regexes:
            if not rx.search(line):
                return False
        if self.levels and reader.json:
            value = reader.fields(line).get(reader.level_field)
            return str(value).lower() in self.levels
        return True

    def tally(self, message: str) -> None:
        """One matching line (a journal entry's message)."""
        self.count += 1
        if self.folded < FOLD_LIMIT:
            self.folded += 1
            self.add(message, 1)

    def tally_lines(self, lines: list, reader: Reader) -> None:
        """Matching lines of a file, in file order: each counts, the first FOLD_LIMIT fold."""
        self.count += len(lines)
        room = FOLD_LIMIT - self.folded
        if room <= 0 or not lines:
            return
        if len(lines) > room:
            lines = lines[:room]
        self.folded += len(lines)
        if reader.json:  # the message is a field: each line is parsed
            for line in lines:
                self.add(reader.message(line), 1)
            return
        self.add_shapes(lines, [line.translate(_ZERO_BYTES) for line in lines])

    def tally_block(self, block: bytes, reader: Reader) -> None:
        """Matching lines, as one block (newlines between them), in file order."""
        lines = block.count(b"\n") + 1
        if reader.json or FOLD_LIMIT - self.folded < lines:
            self.tally_lines(block.split(b"\n"), reader)
            return
        self.count += lines
        self.folded += lines
        shaped = block.translate(_ZERO_BYTES)  # the same length: a shape's offset is its line's
        in_order = shaped.split(b"\n")
        shapes = Counter(in_order)
        if len(shapes) > FEW_SHAPES:
            self.add_shapes(block.split(b"\n"), in_order, shapes)
            return
        bounded = b"\n" + shaped + b"\n"
        for shape, n in shapes.items():  # in the order of their first lines
            at = bounded.find(b"\n" + shape + b"\n")
            self.add(block[at : at + len(shape)].decode("utf-8", "replace"), n)

    def add_shapes(self, lines: list, shapes: list, counted: Counter | None = None) -> None:
        """Fold text lines (``shapes``: the lines with their digits zeroed)."""
        # Lines that differ only in their digits fold alike (see fold), so each shape of line
        # is decoded and folded once, with its count, in the order of its first line: the top
        # messages, their examples and the DISTINCT_LIMIT cut are those of a line-by-line tally.
        first = dict(zip(reversed(shapes), reversed(lines)))  # noqa: B905 (3.7: no strict=)
        for shape, n in (counted or Counter(shapes)).items():
            self.add(first[shape].decode("utf-8", "replace"), n)

    def add(self, message: str, n: int) -> None:
        key = fold(message)
        entry = self.top.get(key)
        if entry is not None:
            entry[0] += n
        elif len(self.top) < DISTINCT_LIMIT:
            self.top[key] = [n, message.strip()[:EXAMPLE]]
        else:
            self.other += n

    def state(self) -> tuple:
        """The tally so far (not ``lines``, which another thread may add to meanwhile)."""
        return self.count, self.folded, self.other, {k: list(v) for k, v in self.top.items()}

    def restore(self, state: tuple) -> None:
        self.count, self.folded, self.other, self.top = state

    def result(self) -> dict:
        ranked = sorted(self.top.items(), key=lambda kv: (-kv[1][0], kv[0]))[:TOP]
        return {
            "count": self.count,
            "lines": self.lines,
            "top": [[key, count, example] for key, (count, example) in ranked],
            "folded": self.folded,
            "other": self.other,
        }


class ScanError(Exception):
    """A tool the scan runs failed: the file's error in the answer."""

    def __init__(self, text: str, status: int = 0) -> None:
        super().__init__(text)
        # grep says so, or (under ulimit -v) dies of SIGABRT or SIGSEGV where it cannot
        self.out_of_memory = "memory exhausted" in text or status in (134, 139)


class Tool:
    """grep or wc run with ``stdin`` (a log file, from its current offset) as its input, in the
    C locale: bytes, no encoding errors, case folding of ASCII only, as Python's bytes regexes.
    Started with posix_spawn where Python has it (3.8+): no ``subprocess`` to import (~5 ms of
    every scan) and no fork of the interpreter."""

    def __init__(self, command: list, stdin: int, memory: int = 0) -> None:
        self.name = command[0].decode()
        if memory:  # by the shell's ulimit: posix_spawn sets no limits (where not, unlimited)
            limit = b'ulimit -S -v %d 2>/dev/null; exec "$0" "$@"' % (memory >> 10)
            command = [b"/bin/sh", b"-c", limit, *command]
        if not hasattr(os, "posix_spawnp"):  # Python 3.7
            import subprocess

            process = subprocess.Popen(command, stdin=stdin, stdout=-1, stderr=-1, env=C_LOCALE)
            assert process.stdout is not None and process.stderr is not None
            self.out, self.err = os.dup(process.stdout.fileno()), os.dup(process.stderr.fileno())
            process.stdout.close()
            process.stderr.close()
            # as a shell shows it: 128 + the signal, not subprocess's minus the signal
            self.wait: Callable[[], int] = lambda: shell_status(process.wait())
            widen(self.out)
            return
        pipes = os.pipe() + os.pipe()  # non-inheritable; dup2 makes 0, 1 and 2 inheritable
        actions = [(os.POSIX_SPAWN_DUP2, stdin, 0)]
        actions += [(os.POSIX_SPAWN_DUP2, pipes[1], 1), (os.POSIX_SPAWN_DUP2, pipes[3], 2)]
        try:
            pid = os.posix_spawnp(command[0], command, C_LOCALE, file_actions=actions)
        except OSError:
            for end in pipes:
                os.close(end)
            raise
        os.close(pipes[1])
        os.close(pipes[3])
        self.out, self.err = pipes[0], pipes[2]
        self.wait = functools.partial(wait_for, pid)
        widen(self.out)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the tool's output (b"" at its end); all of it for -1."""
        if size >= 0:
            return os.read(self.out, size)
        parts: list = []
        while True:
            data = os.read(self.out, 1 << 16)
            if not data:
                return b"".join(parts)
            parts.append(data)

    def finish(self) -> None:
        """Wait for the tool; a ScanError unless it exited 0, or 1 (grep: found nothing)."""
        said = b""
        while True:
            data = os.read(self.err, 1 << 16)
            if not data:
                break
            said += data
        os.close(self.out)
        os.close(self.err)
        code = self.wait()
        if code > 1 or (code == 1 and self.name != "grep"):
            text = said.decode("utf-8", "replace").strip() or f"exit status {code}"
            text = text.splitlines()[-1][:300]
            whose = text if text.startswith(self.name + ":") else f"{self.name}: {text}"
            raise ScanError(whose, code)


def widen(pipe: int) -> None:
    """Ask Linux for a pipe of PIPE bytes: grep need not wait while Python folds a block."""
    if sys.platform.startswith("linux"):
        try:  # noqa: SIM105 (contextlib is not imported)
            fcntl.fcntl(pipe, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE)
        except OSError:
            pass  # past /proc/sys/fs/pipe-max-size: the default will do


def shell_status(code: int) -> int:
    return 128 - code if code < 0 else code


def wait_for(pid: int) -> int:
    """A child's exit status as a shell shows it (os.waitstatus_to_exitcode is 3.9+)."""
    status = os.waitpid(pid, 0)[1]
    return os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status)


def grep_blocks(tool: Tool, each: Callable[[bytes], None], long: Callable[[bytes], None]) -> int:
    """Hand what grep prints to ``each`` in blocks of whole lines of about BATCH bytes, the
    last newline removed, while grep goes on reading; the number of lines. A line that runs on
    past MAX_LINE bytes goes alone to ``long``, as its first MAX_LINE bytes (its rest is read
    past, never held: what is held is at most MAX_LINE and a block, however long the line)."""
    total = 0
    pending: list = []  # what was read since the last block, the start of a cut line first
    size = 0
    tail = 0  # bytes of the line being read (after the last newline in pending)
    head = None  # a long line's first bytes, while the rest of it is read past
    while True:
        data = tool.read(PIPE)
        if 0 < len(data) < PIPE // 16:
            time.sleep(0.001)  # grep writes 8 KB at a time: let the pipe fill, wake up less
        if head is not None:
            newline = data.find(b"\n")
            if data and newline < 0:
                continue
            total += 1
            long(head)
            head = None
            data = data[newline + 1 :] if data else data
            if data == b"" and newline >= 0:
                continue  # the long line ended this read: read on
        if data:
            newline = data.rfind(b"\n")
            tail = tail + len(data) if newline < 0 else len(data) - newline - 1
            pending.append(data)
            size += len(data)
            if tail > MAX_LINE:  # the lines before it as a block, then the long line alone
                block = b"".join(pending)
                start = len(block) - tail
                if start:
                    total += block.count(b"\n", 0, start)
                    each(block[: start - 1])
                head = block[start : start + MAX_LINE]
                pending, size, tail = [], 0, 0
                continue
            if size < BATCH or newline < 0:
                continue  # a block ends with a line (a long line is joined once, at its end)
        elif not pending:
            break
        block = b"".join(pending)
        cut = block.rfind(b"\n") + 1
        pending = [block[cut:]] if cut < len(block) else []
        size = tail = len(block) - cut
        if cut:
            total += block.count(b"\n", 0, cut)
            each(block[: cut - 1])
        if not data:
            if pending:  # grep ends every line it prints with a newline: only if cut short
                total += 1
                each(pending[0])
            break
    return total


def grep_count(reader: Reader, pattern: Pattern, offset: int) -> None:
    """Count ``pattern`` in the file from ``offset`` on with GNU grep; in Python (lines cut at
    MAX_LINE) where grep runs out of memory: on a line of many MB, which it holds whole."""
    saved = pattern.state()
    try:
        grep_lines(reader, pattern, offset)
    except ScanError as exc:
        if not exc.out_of_memory:
            raise
        pattern.restore(saved)
        with FALLBACK:
            alone = reader.again()  # other patterns' threads read from the reader's offset
            try:
                windows = {pattern.since: offset}
                python_count(alone, [pattern], [pattern], windows, offset, {}, False)
            finally:
                alone.close()
        if alone.long:
            reader.long = True


def grep_lines(reader: Reader, pattern: Pattern, offset: int) -> None:
    """Count ``pattern`` in the file from ``offset`` on with GNU grep.

    Exact patterns: ``grep -m N`` prints the first lines to fold (N = what FOLD_LIMIT leaves) and
    stops right after the Nth, where ``grep -c`` goes on counting the rest: grep reads the
    window once, and nothing but the folded lines crosses into Python. Other patterns: grep
    prints the lines that may match, and each is confirmed in Python. A line longer than
    MAX_LINE is confirmed on its first MAX_LINE bytes, as Python matches it."""
    command = [b"grep", b"-a", b"-E", b"-e", pattern.ere]
    fd = open_quietly(reader.path)

    def long(head: bytes) -> None:
        reader.long = True
        pattern.tally_lines([head] if pattern.matches(head, reader) else [], reader)

    try:
        # grep reads its stdin from here to the end of the file as it is then: lines appended
        # meanwhile count too (they are in the window).
        os.lseek(fd, offset, os.SEEK_SET)
        if not pattern.exact:

            def confirm(block: bytes) -> None:
                lines = block.split(b"\n")
                pattern.tally_lines(
                    [line for line in lines if pattern.matches(line, reader)], reader
                )

            tool = Tool(command, fd, GREP_MEMORY)
            grep_blocks(tool, confirm, long)
            tool.finish()
            return
        room = FOLD_LIMIT - pattern.folded
        if room > 0:
            tool = Tool([*command[:2], b"-m", b"%d" % room, *command[2:]], fd, GREP_MEMORY)
            printed = grep_blocks(tool, lambda block: pattern.tally_block(block, reader), long)
            tool.finish()
            if printed < room:
                return  # grep read to the end of the file
        # Standard input from a regular file: grep -m left it just after the last line printed.
        tool = Tool([*command[:2], b"-c", *command[2:]], fd, GREP_MEMORY)
        counted = tool.read()
        tool.finish()
        pattern.count += int(counted.strip() or b"0")
    finally:
        os.close(fd)


class _Fallback:
    """One Python count at a time for the patterns grep gave up on (a lock made on first use:
    threading is imported only by a scan that runs greps side by side)."""

    def __enter__(self) -> None:
        if not _FALLBACK_LOCK:
            import threading

            _FALLBACK_LOCK.append(threading.Lock())
        _FALLBACK_LOCK[0].acquire()

    def __exit__(self, *_: object) -> None:
        _FALLBACK_LOCK[0].release()


_FALLBACK_LOCK: list = []
FALLBACK = _Fallback()


class LineCount:
    """The lines from each window start to the end of the file, counted by ``wc -l`` (GB/s)
    beside the greps; by Python where the host has no ``wc``."""

    def __init__(self, reader: Reader, offsets: set) -> None:
        self.reader = reader
        self.tools: dict = {}
        self.counted: dict = {}
        for offset in offsets:
            if offset >= reader.size:
                continue
            fd = open_quietly(reader.path)
            try:
                os.lseek(fd, offset, os.SEEK_SET)
                self.tools[offset] = Tool([b"wc", b"-l"], fd)
            except OSError:
                pass  # no wc: counted in Python
            finally:
                os.close(fd)
        # A last line without its newline still counts as a line, as the Python count has it.
        reader.f.seek(max(0, reader.size - 1))
        self.unended = 1 if reader.size and reader.f.read(1) != b"\n" else 0

    def lines(self, offset: int) -> int:
        if offset >= self.reader.size:
            return 0
        if offset not in self.counted:
            tool = self.tools.pop(offset, None)
            if tool is None:
                found = self.reader.newlines(offset)
            else:
                found = int(tool.read().split()[0])
                tool.finish()
            self.counted[offset] = found + self.unended
        return int(self.counted[offset])


class GnuGrep:
    """Whether this host's grep is GNU grep (-a, -c, -E, -m and LC_ALL=C as used here): asked
    at once, answered when needed."""

    def __init__(self) -> None:
        nothing = os.open(os.devnull, os.O_RDONLY)
        try:
            self.tool: Tool | None = Tool([b"grep", b"--version"], nothing)
        except OSError:
            self.tool = None
        finally:
            os.close(nothing)

    def __bool__(self) -> bool:
        if self.tool is None:
            return False
        said = self.tool.read()
        try:
            self.tool.finish()
        except ScanError:
            return False
        return b"GNU grep" in said


def candidates(pattern: Pattern, block: Block, start: int) -> list:
    """(start, end) of the lines that may match: those holding one of the pattern's literals,
    else those its first regex (or its level) finds; every one is confirmed by the caller."""
    data, end = block.data, block.end
    lines: dict = {}
    searches = [(lit, data) for lit in pattern.literals]
    if pattern.iliterals:
        searches += [(lit, block.lowered()) for lit in pattern.iliterals]
    for literal, haystack in searches:
        hit = haystack.find(literal, start, end)
        while hit >= 0:
            line_start = data.rfind(b"\n", 0, hit) + 1
            line_end = data.find(b"\n", hit, end)
            line_end = end if line_end < 0 else line_end
            lines[line_start] = line_end
            hit = haystack.find(literal, line_end + 1, end)
    if searches:
        return sorted(lines.items())
    search = pattern.regexes[0] if pattern.regexes else pattern.level_rx()
    position = start
    while position < end:
        found = search.search(data, position, end)
        if found is None:
            break
        line_start = data.rfind(b"\n", 0, found.start()) + 1
        line_end = data.find(b"\n", found.start(), end)
        line_end = end if line_end < 0 else line_end
        lines[line_start] = line_end
        position = line_end + 1
    return sorted(lines.items())


class Block:
    """Whole lines read from a file: ``data[:end]`` (no copy), lowered once when asked."""

    def __init__(self, data: bytes, end: int) -> None:
        self.data = data
        self.end = end
        self._lowered: bytes | None = None

    def lowered(self) -> bytes:
        if self._lowered is None:
            self._lowered = self.data[: self.end].lower()
        return self._lowered


def count_block(pattern: Pattern, block: Block, start: int, reader: Reader) -> None:
    """Count the lines of the block from ``start`` on that match ``pattern``, each line once."""
    data = block.data
    found = [data[s:e] for s, e in candidates(pattern, block, start)]
    pattern.tally_lines([line for line in found if pattern.matches(line, reader)], reader)


def python_count(
    reader: Reader,
    patterns: list,
    counted: list,
    offsets: dict,
    begin: int,
    stats: dict,
    lines: bool = True,
) -> None:
    """Read the file from ``begin`` in Python: count the lines of every window (unless
    ``lines`` is False), and the ``counted`` patterns (those GNU grep does not count) in theirs.
    A line that runs on past MAX_LINE bytes unended is matched on its first MAX_LINE bytes."""

    def count(buffer: bytes, end: int, base: int) -> None:
        # A last line without its newline still counts as a line.
        unended = 1 if end and buffer[end - 1 : end] != b"\n" else 0
        total = buffer.count(b"\n", 0, end) + unended
        if lines:
            stats["lines"] += total
        block = Block(buffer, end)
        for since, offset in offsets.items():
            local = max(0, offset - base)
            if local >= end:
                continue
            found = total if local == 0 else buffer.count(b"\n", local, end) + unended
            for pattern in patterns:
                if pattern.since == since:
                    if lines:
                        pattern.lines += found
                    if pattern in counted:
                        count_block(pattern, block, local, reader)

    reader.f.seek(begin)
    position, carry = begin, b""
    while position < reader.size:
        if len(carry) > MAX_LINE:  # a line this long: its head counts, its rest is read past
            start = position - len(carry)
            head = carry[:MAX_LINE]
            position, carry = reader.past_line(position)
            count(head, len(head), start)
            continue
        data = reader.f.read(min(CHUNK, reader.size - position))
        if not data:
            break
        position += len(data)
        buffer = carry + data if carry else data
        end = len(buffer)
        if position < reader.size:
            end = buffer.rfind(b"\n") + 1
            if end == 0:  # one line longer than a chunk: keep reading
                carry = buffer
                continue
        carry = buffer[end:]
        count(buffer, end, position - len(buffer))
    if carry:  # the file shrank while it was read: its last line as it was read
        if len(carry) > MAX_LINE:
            reader.long = True
        count(carry[:MAX_LINE], min(len(carry), MAX_LINE), position - len(carry))


def count_file(reader: Reader, patterns: list, stats: dict, grep: bool) -> dict:
    """Find each window's start in the file and count its patterns from there: with GNU grep
    where the host has it (and the pattern has a grep regex), else in Python."""
    info: dict = {"path": reader.path, "size": reader.size}
    if reader.size == 0 or not patterns:
        info["read"] = 0
        return info
    first_offset, first = reader.stamped(0, min(reader.size, HEAD))
    if first_offset is None or first is None:
        first_offset = 0
        info["unstamped"] = True  # no timestamps: the whole file counts (it was written lately)
    offsets = {}
    for since in sorted({p.since for p in patterns}):
        if first is None or first >= since:
            offsets[since] = first_offset  # the whole file is in the window: nothing to search
            if reader.request.get("whole"):  # container logs, cut to the window already: lines
                offsets[since] = 0  # before the first one with the program's own stamp count
        else:
            offsets[since] = reader.window_offset(since)
    begin = min(offsets.values())
    info["read"] = reader.size - begin
    greped = [p for p in patterns if grep and p.ere is not None]
    rest = [p for p in patterns if p not in greped]
    counter = None if rest else LineCount(reader, set(offsets.values()))
    errors: list = []

    def run(pattern: Pattern) -> None:
        try:
            grep_count(reader, pattern, offsets[pattern.since])
        except (OSError, ScanError) as exc:
            errors.append(exc)

    # One grep per pattern, each from its window start, side by side (grep runs outside the
    # GIL; the threads only hand its output to Python).
    threads: list = []
    if len(greped) > 1 or (greped and rest):
        import threading

        threads = [threading.Thread(target=run, args=(pattern,)) for pattern in greped]
    for thread in threads:
        thread.start()
    if greped and not threads:
        run(greped[0])
    if rest:
        python_count(reader, patterns, rest, offsets, begin, stats)
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    if counter is not None:
        for pattern in patterns:
            pattern.lines += counter.lines(offsets[pattern.since])
        stats["lines"] += counter.lines(begin)
    stats["bytes"] += info["read"]
    if reader.long:
        info["long_lines"] = True  # a line past MAX_LINE bytes was matched on its first bytes
    return info


def count_journal(request: dict, patterns: list[Pattern], stats: dict) -> dict:
    """``journalctl -u UNIT --since @T -o json``: the entries' MESSAGE, matched per pattern."""
    import shutil

    unit = request.get("journald_unit")
    if shutil.which("journalctl") is None:
        return {"unavailable": "no journalctl on this host (journald_unit needs systemd's journal)"}
    directories = [request["journald_directory"]] if request.get("journald_directory") else []
    if not has_journal_files(directories or ["/var/log/journal", "/run/log/journal"]):
        where = ", ".join(directories or ["/var/log/journal", "/run/log/journal"])
        return {"unavailable": f"no journal files in {where} (journald not running here?)"}
    since = min((p.since for p in patterns), default=time.time() - 86400)
    entries = 0
    for command, skip_kernel in journal_commands(request, since):
        entries += read_journal(command, skip_kernel, patterns, stats)
    stats["lines"] += entries
    if "error" in stats:
        return {"error": stats.pop("error")}
    return {"unit": unit, "entries": entries, "since": since}


def journal_commands(request: dict, since: float) -> list:
    """The journalctl runs a journal source needs, each with whether to pass over kernel entries
    (read by a run of their own): ``-u UNIT``, ``_TRANSPORT=kernel`` (journalctl cannot OR a
    unit with another match: a unit and the kernel are two runs), ``-p PRIORITY`` on each, and
    the whole journal when there is neither a unit nor the kernel."""
    base = ["journalctl", "--no-pager", "-q", "-o", "json", "--since", f"@{int(since)}"]
    if request.get("journald_directory"):
        base += ["-D", request["journald_directory"]]
    if request.get("journald_priority"):
        base += ["-p", str(request["journald_priority"])]
    unit, kernel = request.get("journald_unit"), request.get("journald_kernel")
    runs = []
    if unit:
        runs.append(([*base, "-u", unit], bool(kernel)))
    if kernel:
        runs.append(([*base, "_TRANSPORT=kernel"], False))
    return runs or [(base, False)]


def read_journal(command: list, skip_kernel: bool, patterns: list, stats: dict) -> int:
    """One journalctl run: its entries' MESSAGE matched per pattern; the entries read. A failed
    run leaves its error in ``stats["error"]``."""
    import subprocess

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    entries = 0
    for raw in process.stdout:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
        if skip_kernel and entry.get("_TRANSPORT") == "kernel":
            continue  # counted by the kernel's own run
        entries += 1
        stats["bytes"] += len(raw)
        at = int(entry.get("__REALTIME_TIMESTAMP", 0)) / 1e6
        message = entry.get("MESSAGE") or ""
        if isinstance(message, list):  # journald sends non-UTF-8 messages as a byte array
            message = bytes(message).decode("utf-8", "replace")
        line = str(message).encode("utf-8", "replace")
        priority = entry.get("PRIORITY")
        levels = set()
        if priority is not None and str(priority).isdigit() and int(priority) < 8:
            levels = {str(priority), _PRIORITIES[int(priority)]}
        for pattern in patterns:
            if at < pattern.since:
                continue
            pattern.lines += 1
            if not all(rx.search(line) for rx in pattern.regexes):
                continue
            wanted = {_PRIORITY_ALIASES.get(level, level) for level in pattern.levels}
            if pattern.levels and not wanted & levels:
                continue
            pattern.tally(str(message))
    error = process.stderr.read().decode("utf-8", "replace").strip()
    process.wait()
    if process.returncode != 0:
        stats.setdefault("error", f"journalctl exited {process.returncode}: {error[:300]}")
    return entries


def has_journal_files(directories: list[str]) -> bool:
    """Whether journalctl has anything to read (it says nothing when it has not); True when a
    folder cannot be listed, so a permission problem shows as journalctl's own error."""
    for directory in directories:
        denied: list[OSError] = []
        for _root, _dirs, files in os.walk(directory, onerror=denied.append):
            if any(name.endswith((".journal", ".journal~")) for name in files):
                return True
        if any(isinstance(error, PermissionError) for error in denied):
            return True
    return False


# -- stats of JSON fields ([[logs.stats]]) -------------------------------------------------------

STAT_VALUES = 5_000_000  # numbers kept per stat (and group) for a median or percentile
STAT_GROUPS = 100_000  # groups kept per stat; lines of further groups are counted, not grouped
STAT_DISTINCT = 1_000_000  # distinct values kept per stat (and group): past it, "at least"
STAT_TOP = 50  # groups sent back, ranked by their value


class Stat:
    """One ``[[logs.stats]]`` entry: the values of its field in its window, per group."""

    def __init__(self, spec: dict, now: float) -> None:
        self.name = spec["name"]
        window = spec["window"]
        self.since = now - now % 86400 if window == "today" else now - float(window)
        self.stat = spec["stat"]
        self.field = spec["field"].split(".") if spec.get("field") else None
        self.group_by = spec["group_by"].split(".") if spec.get("group_by") else None
        self.pattern = re.compile(spec["pattern"]) if spec.get("pattern") else None
        self.below = spec.get("direction") == "below"
        self.distinct = self.stat == "distinct"
        self.ranked = self.stat in ("median", "p95", "p99")
        self.lines = 0  # lines in the window (matching ``pattern``), JSON or not
        self.unparsed = 0  # lines that are not a JSON object
        self.missing = 0  # JSON lines without the field
        self.non_numeric = 0  # the field there, but not a number
        self.bad: list = []  # a few of the values that are not numbers
        self.other = 0  # lines of groups past STAT_GROUPS
        self.groups: dict = {}  # group -> [count, sum, max, min, values or distinct set]
        self.capped = False

    def add(self, line: JsonLine) -> None:
        if self.pattern is not None and not self.pattern.search(line.text):
            return
        self.lines += 1
        if line.text[0] != "{":
            self.unparsed += 1
            return
        group = None
        if self.group_by is not None:
            group = line.get(self.group_by)
            group = "(none)" if group is None else str(group)[:EXAMPLE]
        entry = self.groups.get(group)
        if entry is None:
            if len(self.groups) >= STAT_GROUPS:
                self.other += 1
                return
            entry = self.groups[group] = [0, 0.0, None, None, set() if self.distinct else []]
        if self.field is None:  # count: lines per group
            entry[0] += 1
            return
        value = line.get(self.field)
        if value is None:
            self.missing += 1
            return
        if self.distinct:
            entry[0] += 1
            if len(entry[4]) < STAT_DISTINCT:
                entry[4].add(value if isinstance(value, (str, int, float)) else str(value))
            else:
                self.capped = True
            return
        number = _number(value)
        if number is None:
            self.non_numeric += 1
            if len(self.bad) < 3 and repr(value)[:40] not in self.bad:
                self.bad.append(repr(value)[:40])
            return
        entry[0] += 1
        entry[1] += number
        if entry[2] is None or number > entry[2]:
            entry[2] = number
        if entry[3] is None or number < entry[3]:
            entry[3] = number
        if self.ranked and len(entry[4]) < STAT_VALUES:
            entry[4].append(number)

    def value(self, entry: list) -> float | None:
        n, total, high, low, kept = entry
        if self.stat == "count":
            return float(n)
        if self.distinct:
            return float(len(kept))
        if not n:
            return None
        if self.stat == "sum":
            return total
        if self.stat == "avg":
            return total / n
        if self.stat == "max":
            return high
        if self.stat == "min":
            return low
        return quantile(kept, {"median": 0.5, "p95": 0.95, "p99": 0.99}[self.stat])

    def result(self) -> dict:
        ranked = []
        for group, entry in self.groups.items():
            value = self.value(entry)
            if value is not None:
                ranked.append([group, value, entry[0]])
        ranked.sort(key=lambda g: (g[1] if self.below else -g[1], str(g[0])))
        out = {
            "lines": self.lines,
            "unparsed": self.unparsed,
            "missing": self.missing,
            "non_numeric": self.non_numeric,
            "bad": self.bad,
            "capped": self.capped,
            "other": self.other,
        }
        if self.group_by is None:
            entry = self.groups.get(None)
            out["value"] = ranked[0][1] if ranked else None
            out["n"] = entry[0] if entry else 0
        else:
            out["groups"] = ranked[:STAT_TOP]
            out["group_count"] = len(self.groups)
        return out


class JsonLine:
    """A JSON line, its fields found without parsing the whole object where that is safe: a
    top-level key (``"duration_ms":``, which no JSON string can hold unescaped) met once, with
    no ``{`` before it but the object's own, is read by parsing its value alone; any other
    field (nested, repeated key) parses the line whole, once."""

    __slots__ = ("obj", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.obj: object = _UNPARSED

    def get(self, path: list) -> object:
        if len(path) == 1:
            key = '"' + path[0] + '"'
            text = self.text
            at = text.find(key)
            if at < 0:
                return None  # the key appears nowhere: the field is missing
            if text.find(key, at + 1) < 0 and text.count("{", 0, at) == 1:
                at += len(key)
                while at < len(text) and text[at] in " \t":
                    at += 1
                if text[at : at + 1] == ":":
                    at += 1
                    while at < len(text) and text[at] in " \t":
                        at += 1
                    try:
                        return _SCAN(text, at)[0]
                    except (StopIteration, ValueError):
                        return None
        if self.obj is _UNPARSED:
            try:
                self.obj = json.loads(self.text)
            except ValueError:
                self.obj = None
        return _field(self.obj, path) if isinstance(self.obj, dict) else None


_UNPARSED = object()
_SCAN = json.JSONDecoder().scan_once  # type: ignore[attr-defined]  # the C scanner, one value


def _field(obj: dict, path: list) -> object:
    """The value at a dotted path of a JSON object; None where it is not there."""
    value: object = obj.get(path[0])
    for part in path[1:]:
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _number(value: object) -> float | None:
    """A number, or a number sent as a string (``"0.0975"``); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if number == number and abs(number) != float("inf") else None
    return None


def quantile(values: list, q: float) -> float:
    """The q-quantile, linearly interpolated between the closest ranks (numpy's default)."""
    values.sort()
    at = (len(values) - 1) * q
    low = int(at)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (at - low)


def aggregate(request: dict, now: float) -> dict:
    """Every stat of the request over the JSON files of the source, in one read of each file's
    window (from the earliest window start of the stats on): the stats' answer, and the files."""
    started = time.time()
    stats = [Stat(spec, now) for spec in request["stats"]]
    files, missing, others = expand(request["paths"])
    out: dict = {"files": list(others), "missing": missing, "bytes": 0}
    earliest = min(s.since for s in stats)
    for path in files:
        if path.endswith(COMPRESSED):
            out["files"].append({"path": path, "skipped": "compressed"})
            continue
        try:
            if os.stat(path).st_mtime < earliest:
                out["files"].append({"path": path, "skipped": "older than the window"})
                continue
            reader = Reader(path, request, now)
        except OSError as exc:
            out["files"].append({"path": path, "error": exc.strerror or str(exc)})
            continue
        try:
            out["files"].append(aggregate_file(reader, stats))
            out["bytes"] += out["files"][-1]["read"]
        except OSError as exc:
            out["files"].append({"path": path, "error": exc.strerror or str(exc)})
        finally:
            reader.close()
    out["stats"] = {s.name: s.result() for s in stats}
    out["seconds"] = time.time() - started
    return out


def aggregate_file(reader: Reader, stats: list) -> dict:
    """Read the file's window once, in CHUNK reads decoded whole: each line's fields read once
    (see JsonLine), handed to the stats whose window it is in (known by its offset: the file's
    lines are in time order)."""
    info: dict = {"path": reader.path, "size": reader.size, "read": 0}
    if reader.size == 0:
        return info
    first_offset, first = reader.stamped(0, min(reader.size, HEAD))
    if first_offset is None or first is None:
        first_offset = 0
        info["unstamped"] = True
    starts: dict = {}
    for since in sorted({s.since for s in stats}):
        if first is None or first >= since:
            starts[since] = first_offset
        else:
            starts[since] = reader.window_offset(since)
    begin = min(starts.values())
    info["read"] = reader.size - begin
    # window starts after the first: (offset, the stats whose window holds the lines from it)
    bounds = sorted({offset for offset in starts.values() if offset > begin})
    pending = [(b, [s for s in stats if starts[s.since] <= b]) for b in bounds]
    current = [s for s in stats if starts[s.since] <= begin]

    def feed(data: bytes) -> None:
        for text in data.decode("utf-8", "replace").split("\n"):
            text = text.strip()
            if text:
                line = JsonLine(text)
                for entry in current:
                    entry.add(line)

    def fed(data: bytes, base: int) -> None:
        nonlocal current
        while pending and pending[0][0] < base + len(data):
            cut = max(0, pending[0][0] - base)  # a window start: a line start
            feed(data[:cut])
            data, base = data[cut:], base + cut
            current = pending.pop(0)[1]
        feed(data)

    reader.f.seek(begin)
    position, carry = begin, b""
    while position < reader.size:
        if len(carry) > MAX_LINE:  # a line this long is no JSON object worth parsing: read past
            start = position - len(carry)
            position, carry = reader.past_line(position)
            fed(b"\x00", start)  # one line, not JSON
            continue
        data = reader.f.read(min(CHUNK, reader.size - position))
        if not data:
            break
        position += len(data)
        buffer = carry + data if carry else data
        end = len(buffer)
        if position < reader.size:
            end = buffer.rfind(b"\n") + 1
            if end == 0:
                carry = buffer
                continue
        carry = buffer[end:]
        fed(buffer[:end], position - len(buffer))
    if carry:
        fed(carry[:MAX_LINE], position - len(carry))
    if reader.long:
        info["long_lines"] = True
    return info


# -- files -------------------------------------------------------------------------------------


def expand(paths: list[str]) -> tuple[list[str], list[str], list[dict]]:
    """(files matched, paths or globs that matched nothing, what a path names that is no file):
    a path that exists but is a FIFO, a directory, a socket or a device is said so, never opened
    (reading a FIFO waits for a writer forever); a glob's matches that are not files are passed
    over, and said only when nothing else matched. Known by ``stat``, without duplicates."""
    found: list[str] = []
    missing: list[str] = []
    others: list[dict] = []
    for path in paths:
        path = os.path.expanduser(path)
        globbed = bool(re.search("[*?[]", path))  # glob.has_magic
        if globbed:  # glob is imported only for a glob
            import glob

            matched = sorted(glob.glob(path))
        else:
            matched = [path]
        regular, odd = [], []
        for item in matched:
            what = not_a_file(item)
            if what is None:
                regular.append(item)
            elif what:  # "is a FIFO (named pipe), ...", or why stat failed ("Permission denied")
                odd.append({"path": item, "error": what, "not_file": what.startswith("is ")})
        if not regular and not odd:
            missing.append(path)
        elif not regular:
            others += [entry for entry in odd[:FILES_SAID] if entry not in others]
        for item in regular:
            if item not in found:
                found.append(item)
    return found, missing, others


def not_a_file(path: str) -> str | None:
    """None for a regular file; "" for nothing there; else what there is instead."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        if os.path.islink(path):
            return f"is a symbolic link to {os.readlink(path)}, which does not exist"
        return ""
    except NotADirectoryError:
        return ""
    except OSError as exc:  # a folder on the way that may not be searched, ...
        return exc.strerror or str(exc)
    if stat.S_ISREG(mode):
        return None
    return f"is {kind(mode)}, not a regular file"


def disk_usage(path: str, deadline: float) -> int | None:
    """Bytes on disk under ``path`` (as ``du -s``); None when it takes too long."""
    total = 0
    seen = set()
    for root, dirs, files in os.walk(path):
        if time.time() > deadline:
            return None
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(root, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def describe_files(request: dict, now: float) -> dict:
    files, missing, others = expand(request["paths"])
    out: dict = {"files": list(others), "missing": missing, "dirs": []}
    for path in files:
        entry: dict = {"path": path}
        try:
            st = os.stat(path)
            entry.update(size=st.st_size, mtime=st.st_mtime)
            if path.endswith(COMPRESSED):
                entry["compressed"] = True
            else:
                reader = Reader(path, request, now)
                try:
                    entry.update(first=reader.first_stamp(), last=reader.last_stamp())
                finally:
                    reader.close()
        except OSError as exc:
            entry["error"] = exc.strerror or str(exc)
        out["files"].append(entry)
    deadline = time.time() + float(request.get("du_seconds", 30))
    for folder in sorted({os.path.dirname(os.path.abspath(p)) for p in files}):
        out["dirs"].append({"path": folder, "size": disk_usage(folder, deadline)})
    return out


def count(request: dict, now: float) -> dict:
    patterns = [Pattern(spec, request) for spec in request["patterns"]]
    stats = {"bytes": 0, "lines": 0}
    out: dict = {"files": [], "missing": []}
    if any(request.get(k) for k in ("journald_unit", "journald_priority", "journald_kernel")):
        out["journal"] = count_journal(request, patterns, stats)
    else:
        wanted = request.get("grep", True) and any(p.ere is not None for p in patterns)
        asked = GnuGrep() if wanted else None  # while the paths are expanded
        files, out["missing"], others = expand(request["paths"])
        out["files"] += others
        earliest = min((p.since for p in patterns), default=now)
        grep = bool(files and asked)
        out["grep"] = grep
        for path in files:
            if path.endswith(COMPRESSED):
                out["files"].append(count_packed(path, request, patterns, stats, now, earliest))
                continue
            before = False  # whether the window reaches before the file's first line
            try:
                if os.stat(path).st_mtime < earliest:  # last written before every window
                    out["files"].append({"path": path, "skipped": "older than the window"})
                    continue
                reader = Reader(path, request, now)
            except OSError as exc:
                out["files"].append({"path": path, "error": exc.strerror or str(exc)})
                continue
            try:
                out["files"].append(count_file(reader, patterns, stats, grep))
                before = reaches_before(reader, earliest)
            except (OSError, ScanError) as exc:
                said = getattr(exc, "strerror", None) or str(exc)
                out["files"].append({"path": path, "error": said})
            finally:
                reader.close()
            if before:
                out["files"] += count_rotated(path, files, request, patterns, stats, grep, now)
    if request.get("stats"):  # [[logs.stats]]: fields of JSON lines, read in Python
        out["aggregated"] = aggregate(request, now)
    out["patterns"] = {p.name: p.result() for p in patterns}
    out.update(stats)
    return out


# -- rotated files -------------------------------------------------------------------------------

# logrotate's names for the rotated copies of NAME: NAME.1, NAME.2.gz (rotate N), NAME-20261129,
# NAME-2026112913.gz, NAME-2026-11-29.gz (dateext, dateformat); .bz2 and .xz as well.
_ROTATED = r"(?:\.\d+|-\d{8,10}|-\d{4}-\d\d-\d\d)(?:\.gz|\.bz2|\.xz)?"
_OPENERS = {".gz": "gzip", ".bz2": "bz2", ".xz": "lzma"}
# Decompressed bytes handled at once: the block where a window begins is read line by line
# (~40 MB/s), the others are passed over or searched whole, so it is kept small.
PACKED_BLOCK = 1 << 20


def reaches_before(reader: Reader, earliest: float) -> bool:
    """Whether a window starts before the file's first line (or the file is empty, just
    rotated): the lines before it are in the rotated copies. A file without timestamps, counted
    whole, says nothing of its copies."""
    if reader.size == 0:
        return True
    first = reader.first_stamp()
    return first is not None and first > earliest


def rotated_siblings(path: str) -> list:
    """The rotated copies of ``path`` beside it (logrotate's names), newest first."""
    folder, name = os.path.split(path)
    pattern = re.compile(re.escape(name) + _ROTATED + "$")
    try:
        names = [n for n in os.listdir(folder or ".") if pattern.match(n)]
    except OSError:
        return []
    found = []
    for sibling in names:
        full = os.path.join(folder, sibling)
        try:
            st = os.stat(full)
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            found.append((-st.st_mtime, sibling, full))
    return [full for _, _, full in sorted(found)]


def count_rotated(
    path: str, listed: list, request: dict, patterns: list, stats: dict, grep: bool, now: float
) -> list:
    """Count the patterns in the rotated copies of ``path``, newest first, until one begins
    before every window (its older copies hold nothing of them); copies the path's glob listed
    itself are counted there, not again."""
    earliest = min((p.since for p in patterns), default=now)
    out = []
    for sibling in rotated_siblings(path):
        if sibling in listed:
            continue
        try:
            if os.stat(sibling).st_mtime < earliest:
                break  # last written before every window: so were the older ones
        except OSError:
            continue
        if sibling.endswith(tuple(_OPENERS)):
            entry = count_packed(sibling, request, patterns, stats, now, earliest)
            out.append(entry)
            if entry.get("first") is not None and entry["first"] <= earliest:
                break
            continue
        try:
            reader = Reader(sibling, request, now)
        except OSError as exc:
            out.append({"path": sibling, "error": exc.strerror or str(exc)})
            continue
        try:
            out.append(count_file(reader, patterns, stats, grep))
            if not reaches_before(reader, earliest):
                break
        except (OSError, ScanError) as exc:
            out.append({"path": sibling, "error": getattr(exc, "strerror", None) or str(exc)})
        finally:
            reader.close()
    return out


class PackedReader(Reader):
    """A compressed log, decompressed as it is read (no offsets to search: read from its
    start); what a line's timestamp and message are, as for a plain file."""

    def __init__(self, path: str, request: dict, now: float, stream: object) -> None:
        self.path = path
        self.request = request
        self.long = False
        self.json = request.get("format") == "json"
        self.time_field = request.get("time_field", "timestamp")
        self.message_field = request.get("message_field", "message")
        self.level_field = request.get("level_field", "level")
        self.now = now
        self.f = stream  # type: ignore[assignment]
        self.size = 0


def count_packed(
    path: str, request: dict, patterns: list, stats: dict, now: float, earliest: float
) -> dict:
    """A .gz (.bz2, .xz) log read through Python's own decompressor, line by line: a line
    without a timestamp belongs to the one before it; each counts for the windows it is in."""
    entry: dict = {"path": path}
    opener = next((m for suffix, m in _OPENERS.items() if path.endswith(suffix)), None)
    try:
        if opener is None:
            raise ImportError(opener)
        module = __import__(opener)
        if os.stat(path).st_mtime < earliest:
            return {"path": path, "skipped": "older than the window"}
        fd = open_quietly(path)
    except ImportError:  # .zst, .lz4, .zip, or a Python built without the module
        return {"path": path, "skipped": "compressed"}
    except OSError as exc:
        return {"path": path, "error": exc.strerror or str(exc)}
    raw = os.fdopen(fd, "rb")
    entry["size"] = os.fstat(fd).st_size
    read = 0
    state: dict = {"at": None, "first": None, "lines": 0}
    latest = max((p.since for p in patterns), default=earliest)
    try:
        stream = module.open(raw, "rb")
        reader = PackedReader(path, request, now, stream)
        carry = b""
        while True:
            data = stream.read(PACKED_BLOCK)
            buffer = carry + data if carry else data
            if not buffer:
                break
            end = buffer.rfind(b"\n") + 1 if data else len(buffer)
            if end == 0:  # no line ends in it yet
                if len(buffer) <= MAX_LINE:
                    carry = buffer
                    continue
                reader.long = True  # a line this long is cut where the read ended
                end = len(buffer)
            carry = buffer[end:]
            read += end
            packed_block(reader, buffer[:end], patterns, state, earliest, latest)
    except Exception as exc:  # a corrupt archive: OSError, EOFError, zlib.error, LZMAError...
        entry["error"] = f"cannot decompress: {exc}"
        return entry
    finally:
        raw.close()
    stats["bytes"] += read
    stats["lines"] += state["lines"]
    entry.update(read=read, first=state["first"])
    if state["first"] is None and read:
        entry["unstamped"] = True
    if reader.long:
        entry["long_lines"] = True
    return entry


def packed_block(
    reader: Reader, block: bytes, patterns: list, state: dict, earliest: float, latest: float
) -> None:
    """Whole lines of a compressed log: passed over when they all come before every window,
    searched as one block (as python_count does) when all are in every window, else line by
    line (the block where a window begins); ``state`` carries the last timestamp seen."""
    body = block[:-1] if block.endswith(b"\n") else block
    head = reader.stamp(body[: body.find(b"\n")] if b"\n" in body else body)
    last = reader.stamp(body[body.rfind(b"\n") + 1 :])
    if state["first"] is None and head is not None:
        state["first"] = head
    begins = head if head is not None else state["at"]
    if last is not None and last < earliest:
        state["at"] = last
        return
    if (begins is None and last is None) or (begins is not None and begins >= latest):
        count = body.count(b"\n") + 1
        state["lines"] += count
        state["at"] = last if last is not None else state["at"]
        whole = Block(body, len(body))
        for pattern in patterns:
            pattern.lines += count
            count_block(pattern, whole, 0, reader)
        return
    for line in body.split(b"\n"):
        found = reader.stamp(line)
        if found is not None:
            state["at"] = found
            if state["first"] is None:
                state["first"] = found
        at = state["at"]
        state["lines"] += at is None or at >= earliest
        for pattern in patterns:
            if at is not None and at < pattern.since:
                continue
            pattern.lines += 1
            if pattern.matches(line, reader):
                pattern.tally_lines([line], reader)


def main() -> None:
    request = json.loads(sys.argv[1])
    started = time.time()
    now = float(request.get("now") or started)
    for spec in request.get("patterns", []):
        window = spec.pop("window")
        spec["since"] = now - now % 86400 if window == "today" else now - float(window)
    out = describe_files(request, now) if request["mode"] == "files" else count(request, now)
    out["now"] = now
    out["seconds"] = time.time() - started
    sys.stdout.write(json.dumps(out))


if __name__ == "__main__":
    main()
