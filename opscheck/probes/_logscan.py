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
found by binary search, and only the part of a file inside the window is read.
"""

from __future__ import annotations

import calendar
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

CHUNK = 8 << 20  # bytes read at once while counting
PROBE = 64 << 10  # bytes read at a binary search step
HEAD = 1 << 20  # a file without a timestamp in its first MB is treated as having none
STAMP_SPAN = 200  # a line's timestamp is looked for in its first bytes
FOLD_LIMIT = 100_000  # matching lines folded into the top messages, per pattern
DISTINCT_LIMIT = 5_000  # distinct folded messages kept, per pattern
TOP = 10
EXAMPLE = 300  # characters of an example line
COMPRESSED = (".gz", ".xz", ".bz2", ".zst", ".lz4", ".zip")

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

# Folding: the parts of a message that differ between repeats of the same event.
_ISO_TIME = r"\d{4}[-/]\d\d[-/]\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?(?: ?(?:Z|[+-]\d\d:?\d\d))?"
_FOLDS = [
    (re.compile(_ISO_TIME), "<time>"),
    (re.compile(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]"), "<time>"),
    (re.compile(r"^(?:<\d+>)?[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"), "<time>"),
    (re.compile(r"\b\d\d:\d\d:\d\d(?:[.,]\d+)?\b"), "<time>"),
    (re.compile(r"\b[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\b"), "<uuid>"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"), "<ip>"),
    (re.compile(r"(?<![\w:])(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}(?![\w:])"), "<ip>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "<n>"),
]  # fmt: skip

# journald's PRIORITY, for `level` in patterns of a journald_unit source.
_PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_PRIORITY_ALIASES = {"error": "err", "warn": "warning", "critical": "crit", "emergency": "emerg"}


_ZEROS = str.maketrans("123456789", "000000000")
_FOLDED: dict[str, str] = {}


def fold(message: str) -> str:
    """The message with numbers, ids, addresses and times replaced, so repeats group."""
    text = message[:EXAMPLE]
    # No fold rule tells one digit from another: lines that differ only in their digits fold
    # alike, so the ~30 µs of regexes run once per shape of line, not once per line.
    shape = text.translate(_ZEROS)
    folded = _FOLDED.get(shape)
    if folded is None:
        folded = text
        for rx, placeholder in _FOLDS:
            folded = rx.sub(placeholder, folded)
        folded = folded.strip()
        if len(_FOLDED) < DISTINCT_LIMIT:
            _FOLDED[shape] = folded
    return folded


# -- timestamps --------------------------------------------------------------------------------


def _epoch(year: int, month: int, day: int, h: int, m: int, s: int, zone: bytes | None) -> float:
    """Seconds since the epoch; a time without a zone is local time of this host (as syslog)."""
    if zone is None:
        return time.mktime((year, month, day, h, m, s, 0, 0, -1))
    utc = calendar.timegm((year, month, day, h, m, s, 0, 0, 0))
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
    """A read-only descriptor that leaves the file's access time alone where the kernel allows
    (O_NOATIME: for the file's owner, or root)."""
    try:
        return os.open(path, os.O_RDONLY | getattr(os, "O_NOATIME", 0))
    except PermissionError:
        return os.open(path, os.O_RDONLY)


class Reader:
    """One log file, opened read-only, with how to find a line's timestamp and message."""

    def __init__(self, path: str, request: dict, now: float) -> None:
        self.path = path
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
            line = self.f.readline()
            if not line:
                break
            found = self.stamp(line)
            if found is not None:
                return position, found
            position += len(line)
        return None, None

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
            offset = hit + len(self.f.readline())
        return best


# -- matching ---------------------------------------------------------------------------------


class Pattern:
    """One ``[[logs.patterns]]`` entry: its regexes and levels, its window, its tally."""

    def __init__(self, spec: dict, request: dict) -> None:
        self.name = spec["name"]
        self.since = float(spec["since"])
        self.regexes = [re.compile(rx.encode(), re.MULTILINE) for rx in spec.get("regexes", [])]
        self.levels = {str(level).lower() for level in spec.get("levels", [])}
        # Literals one of which every matching line contains (worked out by the runner from the
        # first regex): found with bytes.find at memory speed, then confirmed by the regexes.
        self.literals = [lit.encode() for lit in spec.get("literals") or []]
        self.iliterals = [lit.encode().lower() for lit in spec.get("iliterals") or []]
        self.count = 0
        self.lines = 0
        self.folded = 0
        self.top: dict[str, list] = {}  # folded message: [count, example]
        self.other = 0  # matches whose folded message was not kept (DISTINCT_LIMIT)
        field = re.escape(request.get("level_field", "level")).encode()
        values = b"|".join(re.escape(level.encode()) for level in sorted(self.levels))
        # A cheap pass over raw JSON lines; each hit is confirmed by parsing the line.
        self.level_rx = re.compile(b'"' + field + rb'"\s*:\s*"?(?i:' + values + rb')"?\s*[,}]')

    def tally(self, message: str) -> None:
        self.count += 1
        if self.folded >= FOLD_LIMIT:
            return
        self.folded += 1
        key = fold(message)
        entry = self.top.get(key)
        if entry is not None:
            entry[0] += 1
        elif len(self.top) < DISTINCT_LIMIT:
            self.top[key] = [1, message.strip()[:EXAMPLE]]
        else:
            self.other += 1

    def result(self) -> dict:
        ranked = sorted(self.top.items(), key=lambda kv: (-kv[1][0], kv[0]))[:TOP]
        return {
            "count": self.count,
            "lines": self.lines,
            "top": [[key, count, example] for key, (count, example) in ranked],
            "folded": self.folded,
            "other": self.other,
        }


def confirm(pattern: Pattern, line: bytes, reader: Reader) -> None:
    """Tally ``line`` if it matches every regex and level of ``pattern``."""
    if not all(rx.search(line) for rx in pattern.regexes):
        return
    if pattern.levels and reader.json:
        value = reader.fields(line).get(reader.level_field)
        if str(value).lower() not in pattern.levels:
            return
    pattern.tally(reader.message(line))


def count_block(pattern: Pattern, block: Block, start: int, reader: Reader) -> None:
    """Count the lines of the block from ``start`` on that match ``pattern``, each line once."""
    data = block.data
    for line_start, line_end in candidates(pattern, block, start):
        confirm(pattern, data[line_start:line_end], reader)


class Grep:
    """GNU grep finding the lines that hold one of a pattern's literals (``grep -F``, many
    literals at once, GB/s), from the window start on; each line is confirmed in Python."""

    def __init__(self, reader: Reader, pattern: Pattern, begin: int) -> None:
        self.pattern, self.begin = pattern, begin
        literals = pattern.literals + pattern.iliterals
        command: list[bytes] = [b"grep", b"-a", b"-b", b"-F", b"-i"]  # -i: a superset is fine
        for literal in literals:
            command += [b"-e", literal]
        fd = open_quietly(reader.path)
        try:
            os.lseek(fd, begin, os.SEEK_SET)  # grep reads its stdin from here on
            env = dict(os.environ, LC_ALL="C")  # bytes, and -i folding only ASCII, as Python
            self.process = subprocess.Popen(command, stdin=fd, stdout=subprocess.PIPE, env=env)
        finally:
            os.close(fd)

    def collect(self, reader: Reader, start: int) -> None:
        """Confirm and tally the lines grep found at or after ``start``, up to the file size
        the scan began with."""
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            offset, _, line = raw.partition(b":")
            at = self.begin + int(offset)
            if at >= reader.size:
                break  # appended since the scan began
            if at >= start:
                confirm(self.pattern, line[:-1] if line.endswith(b"\n") else line, reader)
        self.process.stdout.close()
        self.process.kill()
        self.process.wait()


def gnu_grep() -> bool:
    """Whether this host's grep is GNU grep (-a, -b, -F, -i and LC_ALL=C as used here)."""
    if shutil.which("grep") is None:
        return False
    try:
        found = subprocess.run(["grep", "--version"], stdout=subprocess.PIPE, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return b"GNU grep" in found.stdout


def candidates(pattern: Pattern, block: Block, start: int) -> list[tuple[int, int]]:
    """(start, end) of the lines that may match: those holding one of the pattern's literals,
    else those its first regex (or its level) finds; every one is confirmed by the caller."""
    data, end = block.data, block.end
    lines: dict[int, int] = {}
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
    search = pattern.regexes[0] if pattern.regexes else pattern.level_rx
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


def count_file(reader: Reader, patterns: list[Pattern], stats: dict, grep: bool) -> dict:
    """Seek to the earliest window start of ``patterns`` in the file and count forward."""
    info: dict = {"path": reader.path, "size": reader.size}
    if reader.size == 0 or not patterns:
        info["read"] = 0
        return info
    stamped = reader.first_stamp() is not None
    offsets = {}
    for since in sorted({p.since for p in patterns}):
        offsets[since] = reader.window_offset(since) if stamped else 0
    if not stamped:
        info["unstamped"] = True  # no timestamps: the whole file counts (it was written lately)
    begin = min(offsets.values())
    info["read"] = reader.size - begin
    greps = {}
    if grep:
        for pattern in patterns:
            if pattern.literals or pattern.iliterals:
                greps[pattern.name] = Grep(reader, pattern, begin)
    reader.f.seek(begin)
    position, carry = begin, b""
    while position < reader.size:
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
        base = position - len(buffer)
        # A last line without its newline still counts as a line.
        unended = 1 if end and buffer[end - 1 : end] != b"\n" else 0
        total = buffer.count(b"\n", 0, end) + unended
        stats["lines"] += total
        block = Block(buffer, end)
        for since, offset in offsets.items():
            local = max(0, offset - base)
            if local >= end:
                continue
            lines = total if local == 0 else buffer.count(b"\n", local, end) + unended
            for pattern in patterns:
                if pattern.since == since:
                    pattern.lines += lines
                    if pattern.name not in greps:
                        count_block(pattern, block, local, reader)
    for pattern in patterns:
        if pattern.name in greps:
            greps[pattern.name].collect(reader, offsets[pattern.since])
    stats["bytes"] += info["read"]
    return info


def count_journal(request: dict, patterns: list[Pattern], stats: dict) -> dict:
    """``journalctl -u UNIT --since @T -o json``: the entries' MESSAGE, matched per pattern."""
    unit = request["journald_unit"]
    if shutil.which("journalctl") is None:
        return {"unavailable": "no journalctl on this host (journald_unit needs systemd's journal)"}
    directories = [request["journald_directory"]] if request.get("journald_directory") else []
    if not has_journal_files(directories or ["/var/log/journal", "/run/log/journal"]):
        where = ", ".join(directories or ["/var/log/journal", "/run/log/journal"])
        return {"unavailable": f"no journal files in {where} (journald not running here?)"}
    since = min((p.since for p in patterns), default=time.time() - 86400)
    command = ["journalctl", "--no-pager", "-q", "-o", "json", "--since", f"@{int(since)}"]
    command += ["-u", unit]
    if request.get("journald_directory"):
        command += ["-D", request["journald_directory"]]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    entries = 0
    for raw in process.stdout:
        try:
            entry = json.loads(raw)
        except ValueError:
            continue
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
    stats["lines"] += entries
    if process.returncode != 0:
        return {"error": f"journalctl exited {process.returncode}: {error[:300]}"}
    return {"unit": unit, "entries": entries, "since": since}


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


# -- files -------------------------------------------------------------------------------------


def expand(paths: list[str]) -> tuple[list[str], list[str]]:
    """(files matched, paths or globs that matched no file), without duplicates."""
    found: list[str] = []
    missing: list[str] = []
    for path in paths:
        path = os.path.expanduser(path)
        matched = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        matched = [m for m in matched if os.path.isfile(m)]
        if not matched:
            missing.append(path)
        for item in matched:
            if item not in found:
                found.append(item)
    return found, missing


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
    files, missing = expand(request["paths"])
    out: dict = {"files": [], "missing": missing, "dirs": []}
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
    if request.get("journald_unit"):
        out["journal"] = count_journal(request, patterns, stats)
    else:
        files, out["missing"] = expand(request["paths"])
        earliest = min((p.since for p in patterns), default=now)
        grep = request.get("grep", True) and gnu_grep()
        out["grep"] = grep
        for path in files:
            if path.endswith(COMPRESSED):
                out["files"].append({"path": path, "skipped": "compressed"})
                continue
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
            finally:
                reader.close()
    out["patterns"] = {p.name: p.result() for p in patterns}
    out.update(stats)
    return out


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
