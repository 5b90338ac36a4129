"""Log probes: the runbooks' ``grep -c ERROR logs/api-$(date +%Y-%m-%d).log``, ``grep
"authentication failed" … | wc -l`` and ``du -sh /logs/*`` lines, as Measurements.

The reading happens on the host that holds the logs: ``_logscan.py`` (stdlib only) is sent through
the target's testinfra connection and run there by the interpreter behind its ``python3`` (found
once per host), bounded by ``timeout``; only counts and the top messages come back. It seeks to
each window's start by binary search, so the last 4 h of a multi-GB log cost a few MB of reading,
and lets GNU grep read the window with the regex ``grep_regex`` turns each pattern into.
fail2ban's status is read here too.
"""

from __future__ import annotations

import base64
import functools
import importlib
import importlib.util
import json
import marshal
import re
import shlex
import threading
import weakref
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opscheck import templates
from opscheck.config import LogPattern, LogsTarget, LogStat, window_seconds
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.probes._logscan import MAX_LINE
from opscheck.session import Unreachable
from opscheck.units import format_value

if TYPE_CHECKING:
    from testinfra.host import Host

SCANNER = Path(__file__).with_name("_logscan.py")
ACTIVE = 86400.0  # a file written in the last 24 h is one a program still appends to
FILES_SHOWN = 5
TOP_SHOWN = 10
_MIN_LITERAL = 3  # shorter literals would find nearly every line: the regex alone is faster


# -- literals: what makes counting fast ---------------------------------------------------------


def required_literals(regex: str) -> tuple[list[str], list[str]] | None:
    """Strings one of which every match of ``regex`` contains: ``(case-sensitive, lowercased
    case-insensitive)``; None when there is no such set of useful length. The scanner finds them
    with ``bytes.find`` at memory speed and runs the regex only on the lines that hold one."""
    parser: Any = importlib.import_module("re._parser")  # the parser re itself uses
    tree = parser.parse(regex)
    icase = bool(tree.state.flags & re.IGNORECASE)
    found = _required(list(tree), icase, parser)
    if not found or min(len(text) for text, _ in found) < _MIN_LITERAL:
        return None
    exact = sorted({text for text, folded in found if not folded})
    folded = sorted({text.lower() for text, folded in found if folded})
    return exact, folded


def _required(items: list[Any], icase: bool, parser: Any) -> list[tuple[str, bool]] | None:
    """The best set of literals (text, case-insensitive) one of which a match of the sequence
    ``items`` must contain, or None. Classes, anchors, lookarounds and optional parts end a run
    of literals and contribute nothing: leaving something out only makes the filter coarser."""
    c = parser  # re._parser re-exports the opcodes of re._constants
    best: list[tuple[str, bool]] | None = None

    def consider(candidate: list[tuple[str, bool]] | None) -> None:
        nonlocal best
        if candidate and (best is None or _score(candidate) > _score(best)):
            best = candidate

    run = ""
    for op, value in items:
        if op is c.LITERAL:
            run += chr(value)
            continue
        consider([(run, icase)] if run else None)
        run = ""
        if op is c.SUBPATTERN:
            _, add, remove, sub = value
            flags = (icase or bool(add & re.IGNORECASE)) and not remove & re.IGNORECASE
            consider(_required(list(sub), flags, parser))
        elif op is c.BRANCH:
            options = [_required(list(seq), icase, parser) for seq in value[1]]
            if all(options):
                consider([lit for option in options if option for lit in option])
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            if value[0] >= 1:
                consider(_required(list(value[2]), icase, parser))
        elif op is getattr(c, "ATOMIC_GROUP", None):
            consider(_required(list(value), icase, parser))
    consider([(run, icase)] if run else None)
    return best


def _score(literals: list[tuple[str, bool]]) -> tuple[int, int]:
    # The rarest set is the one whose shortest literal is longest, then the one with fewest.
    return min(len(text) for text, _ in literals), -len(literals)


# -- the regex GNU grep runs --------------------------------------------------------------------

_ERE_SPECIAL = frozenset(b".[()*+?{|^$\\")
_MAX_COUNT = 255  # a bigger {m,n} grows grep's automaton past what it is worth
_NEWLINE = 10  # no line holds one: grep splits its input there


class _NoEre(Exception):
    """The regex uses something grep's extended regexes cannot say, not even more widely."""


def grep_regex(regex: str) -> tuple[str, bool] | None:
    """A POSIX extended regex for ``LC_ALL=C grep -E`` (over bytes) matching every line that
    the Python regex ``regex`` matches: ``(ere, exact)``, exact when it matches no other line.
    None when there is none worth running. The ERE is a ``str`` of one character per byte
    (latin-1): a pattern may hold any byte but NUL and newline.

    Translated from Python's own parse of the bytes regex, construct by construct: literals and
    classes as byte sets (``(?i)`` as ``[Ee]``: Python folds ASCII only on bytes, as grep in the
    C locale, and grep's ``-i`` is slower than the sets), groups, alternatives, repeats, anchors.
    What an ERE cannot say is dropped, which widens the match: lookarounds, backreferences (as
    ``.*``), possessive repeats and atomic groups, and word boundaries where grep's slower matcher
    would run for them (see ``_keep_boundaries``); then the scanner confirms each line grep finds
    with the Python regex, and the count stays the regex's."""
    parser: Any = importlib.import_module("re._parser")
    try:
        tree = parser.parse(regex.encode())
    except (re.error, UnicodeError):
        return None
    if tree.state.flags & re.LOCALE:
        return None  # (?L): case and classes as the host's locale has them
    icase = bool(tree.state.flags & re.IGNORECASE)
    for keep in (_keep_boundaries(regex), False):
        ere = _Ere(parser, keep)
        try:
            text, nullable = ere.sequence(list(tree), icase)
        except _NoEre:
            return None
        if ere.exact or not keep:
            break
    if nullable and not ere.exact:
        return None  # every line would be confirmed: the literals, or Python alone, do better
    return text, ere.exact


def _keep_boundaries(regex: str) -> bool:
    r"""Whether grep checks ``\b`` cheaply here: when the regex has one case-sensitive literal
    that every match contains, grep looks for it first. Without one (``(?i)\b(?:error|fatal)\b``)
    its automaton runs for the boundaries: on 500 MB the errors preset took grep 0.57 s of CPU
    with them, 0.39 s without them, and Python's check of the lines found adds ~0.03 s."""
    found = required_literals(regex)
    return bool(found) and len(found[0]) == 1 and not found[1]  # type: ignore[index]


class _Ere:
    """One translation: the ERE, and whether it is still exact."""

    def __init__(self, parser: Any, keep_boundaries: bool) -> None:
        self.c = parser
        self.keep_boundaries = keep_boundaries
        self.exact = True

    def sequence(self, items: list[Any], icase: bool) -> tuple[str, bool]:
        """(ERE, whether it matches the empty string) of a sequence of parsed items."""
        parts, nullable = [], True
        for op, value in items:
            text, empty = self.item(op, value, icase)
            parts.append(text)
            nullable = nullable and empty
        return "".join(parts), nullable

    def item(self, op: Any, value: Any, icase: bool) -> tuple[str, bool]:
        c = self.c
        if op is c.LITERAL:
            return _byte_set({value}, icase, negate=False), False
        if op is c.NOT_LITERAL:
            return _byte_set({value}, icase, negate=True), False
        if op is c.ANY:
            return ".", False  # with or without DOTALL: a line holds no newline
        if op is c.IN:
            members, negate = _class_members(value, c)
            return _byte_set(members, icase, negate), False
        if op is c.BRANCH:
            options = [self.sequence(list(seq), icase) for seq in value[1]]
            return "(" + "|".join(text for text, _ in options) + ")", any(e for _, e in options)
        if op is c.SUBPATTERN:
            _, add, remove, sub = value
            if (add | remove) & re.LOCALE:
                raise _NoEre
            inner = (icase or bool(add & re.IGNORECASE)) and not remove & re.IGNORECASE
            text, empty = self.sequence(list(sub), inner)
            return ("(" + text + ")" if text else ""), empty
        if op is getattr(c, "ATOMIC_GROUP", None):
            self.exact = False  # (?>…) can fail where (…) matches: wider
            text, empty = self.sequence(list(value), icase)
            return ("(" + text + ")" if text else ""), empty
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, getattr(c, "POSSESSIVE_REPEAT", None)):
            low, high, sub = value
            if op is not c.MAX_REPEAT and op is not c.MIN_REPEAT:
                self.exact = False  # possessive: wider as a greedy repeat
            text, empty = self.sequence(list(sub), icase)
            if not text or text in ("^", "$", "\\b"):
                return "", True  # a repeat of nothing, or of an anchor, matches where it is
            atom = text if _is_atom(text) else "(" + text + ")"
            return atom + _quantifier(low, high, c.MAXREPEAT), empty or low == 0
        if op is c.AT:
            if value in (c.AT_BEGINNING, c.AT_BEGINNING_STRING):
                return "^", True  # the start of the line: grep and Python see one line each
            if value in (c.AT_END, c.AT_END_STRING):
                return "$", True
            if value is c.AT_BOUNDARY and self.keep_boundaries:
                return "\\b", True  # \w is [A-Za-z0-9_] for both (bytes, C locale)
            if value in (c.AT_BOUNDARY, c.AT_NON_BOUNDARY):
                self.exact = False
                return "", True
            raise _NoEre
        if op in (c.ASSERT, c.ASSERT_NOT):
            self.exact = False  # a lookaround only narrows: dropped, wider
            return "", True
        if op is c.GROUPREF:
            self.exact = False  # what a group matched: some text of the line
            return ".*", True
        raise _NoEre  # (?(1)…|…) and whatever a later Python adds


def _class_members(items: list[Any], c: Any) -> tuple[set[int], bool]:
    """The bytes a parsed ``[…]`` lists (before case folding), and whether it is negated."""
    members: set[int] = set()
    negate = False
    for op, value in items:
        if op is c.NEGATE:
            negate = True
        elif op is c.LITERAL:
            members.add(value)
        elif op is c.RANGE:
            members.update(range(value[0], value[1] + 1))
        elif op is c.CATEGORY:
            members |= _CATEGORIES[str(value).upper()]
        else:
            raise _NoEre
    return members, negate


def _category(escape: bytes) -> frozenset[int]:
    compiled = re.compile(escape)
    return frozenset(b for b in range(256) if compiled.fullmatch(bytes([b])))


# \d, \s, \w and their opposites as Python's bytes regexes have them (ASCII)
_CATEGORIES = {
    "CATEGORY_DIGIT": _category(rb"\d"),
    "CATEGORY_NOT_DIGIT": _category(rb"\D"),
    "CATEGORY_SPACE": _category(rb"\s"),
    "CATEGORY_NOT_SPACE": _category(rb"\S"),
    "CATEGORY_WORD": _category(rb"\w"),
    "CATEGORY_NOT_WORD": _category(rb"\W"),
}


def _byte_set(members: set[int], icase: bool, negate: bool) -> str:
    """The ERE of one byte out of ``members`` (out of all others when ``negate``)."""
    chosen = set(members)
    if icase:  # Python's IGNORECASE on bytes: ASCII letters only
        chosen |= {b ^ 0x20 for b in chosen if 65 <= b <= 90 or 97 <= b <= 122}
    if negate:
        chosen = set(range(256)) - chosen
    chosen.discard(_NEWLINE)
    if not chosen:
        raise _NoEre  # only a newline: never within a line
    if len(chosen) == 255:
        return "."  # every byte but the newline (NUL too, with grep -a)
    if len(chosen) == 1 and 0 not in chosen:
        byte = chosen.pop()
        return ("\\" if byte in _ERE_SPECIAL else "") + chr(byte)
    if 0 in chosen:  # NUL cannot be written in an argument: say which bytes are not wanted
        return "[^" + _bracket(set(range(1, 256)) - chosen - {_NEWLINE}) + "]"
    return "[" + _bracket(chosen) + "]"


def _bracket(members: set[int]) -> str:
    """The inside of a bracket expression listing ``members`` (no NUL, no newline): ``]``
    first, ``^`` never first, ``-`` last, the rest as ranges in byte order (so no ``[`` is
    followed by ``:``, ``.`` or ``=``)."""
    plain = sorted(members - {ord("]"), ord("^"), ord("-")})
    parts: list[str] = ["]"] if ord("]") in members else []
    start = 0
    while start < len(plain):
        end = start
        while end + 1 < len(plain) and plain[end + 1] == plain[end] + 1:
            end += 1
        low, high = plain[start], plain[end]
        if high - low >= 2:
            parts.append(chr(low) + "-" + chr(high))
        else:
            parts.extend(chr(b) for b in plain[start : end + 1])
        start = end + 1
    if ord("^") in members:
        if not parts and ord("-") in members:
            return "-^"  # "^-" would negate
        parts.append("^")
    if ord("-") in members:
        parts.append("-")
    return "".join(parts)


def _is_atom(text: str) -> bool:
    """Whether a quantifier may follow ``text`` without parentheses: one byte, one class."""
    if len(text) == 1 or (len(text) == 2 and text[0] == "\\"):
        return text not in ("^", "$")
    return text.startswith("[") and text.endswith("]") and text.count("[") == 1 == text.count("]")


def _quantifier(low: int, high: Any, unbounded: Any) -> str:
    if low > _MAX_COUNT or (high is not unbounded and high > _MAX_COUNT):
        raise _NoEre
    if high is unbounded:
        return {0: "*", 1: "+"}.get(low, f"{{{low},}}")
    if (low, high) == (0, 1):
        return "?"
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


def _literals_ere(exact: list[str], folded: list[str]) -> str:
    """An ERE matching the lines that hold one of the literals (``folded``: any case)."""
    options = [
        "".join(_byte_set({b}, icase, negate=False) for b in text.encode())
        for texts, icase in ((exact, False), (folded, True))
        for text in texts
    ]
    return "|".join(options)


# -- the source -------------------------------------------------------------------------------


def window_text(window: str) -> str:
    seconds = window_seconds(window)
    if seconds is None:
        return "today (since 00:00 UTC)"
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds % size == 0 and seconds >= size * (2 if unit == "days" else 1):
            return f"in the last {seconds / size:g} {unit}"
    return f"in the last {format_value(seconds, 'duration')}"


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


# What python3 stands for on the host is found by starting it once: a version manager's shim
# (pyenv's is a bash script that runs `pyenv exec`) costs ~80 ms at every start, the interpreter
# itself ~10 ms. -S: the scanner needs no site-packages, whose .pth files can cost ~40 ms more.
_WHICH_PYTHON = "command -v python3 || exit 3"
# Its path and its bytecode's magic number: where that is this Python's, the scanner is sent
# compiled (marshal), which spares the host compiling it at every scan (~10 ms).
_FIND_PYTHON = (
    f"{_WHICH_PYTHON}; python3 -S -c "
    "'import sys, importlib.util; print(sys.executable); print(importlib.util.MAGIC_NUMBER.hex())'"
)
_NO_PYTHON = 3


@dataclass(frozen=True)
class _Python:
    path: str  # what to run: the interpreter itself, or python3 where it cannot tell
    magic: str  # importlib.util.MAGIC_NUMBER, hex


class _Interpreters:
    """The interpreter behind each host's ``python3``, started once per host and ``python3``
    (``command -v python3`` is asked again at each source's open: PATH may have changed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: weakref.WeakKeyDictionary[Any, dict[str, _Python]] = (
            weakref.WeakKeyDictionary()
        )
        self._host_locks: weakref.WeakKeyDictionary[Any, threading.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def python(self, host: Host, host_name: str) -> _Python | None:
        """The host's python3; None where it has none. One command per call."""
        with self._lock:
            host_lock = self._host_locks.setdefault(host, threading.Lock())
        with host_lock:  # one start per host and python3; other threads wait for it
            with self._lock:
                known = self._found.setdefault(host, {})
            if known:
                result = host.run(_WHICH_PYTHON)
                lines = result.stdout.strip().splitlines()
                if result.rc != 0 or not lines:
                    return None
                if lines[0].strip() in known:
                    return known[lines[0].strip()]
            result = host.run(_FIND_PYTHON)  # `command -v python3`, then what it runs
            lines = [line.strip() for line in result.stdout.strip().splitlines()]
            if result.rc == _NO_PYTHON or not lines:
                return None
            if result.rc != 0 or len(lines) < 3:
                said = result.stderr.strip().splitlines() or [f"exit status {result.rc}"]
                raise Unreachable(f"python3 on {host_name} does not start: {said[-1][:300]}")
            shim, path, magic = lines[0], lines[-2], lines[-1]
            found = _Python(path if path.startswith("/") else "python3", magic)
            with self._lock:
                known[shim] = found
            return found


_INTERPRETERS = _Interpreters()
_MAGIC = importlib.util.MAGIC_NUMBER.hex()


@functools.cache
def _boot(magic: str | None = None) -> str:
    """The ``python3 -S -c`` program that unpacks and runs the scanner, built once per process:
    compiled (marshal) for a host whose Python has this one's bytecode ``magic``, else its
    source, without the docstrings and comments (opscheck/probes/logboot.py)."""
    from opscheck.probes.logboot import SOURCE

    if magic == _MAGIC:
        packed = marshal.dumps(compile(SOURCE, "<opscheck log scanner>", "exec"))
        unpack = "marshal.loads(zlib.decompress(base64.b64decode('{}')))"
    else:
        packed, unpack = SOURCE.encode(), "zlib.decompress(base64.b64decode('{}'))"
    code = base64.b64encode(zlib.compress(packed, 9)).decode()
    return "import base64,marshal,zlib;exec(" + unpack.format(code) + ")"


class LogSource:
    """One ``[[logs]]`` target on its host; scans once per run, every check reads the result.
    Thread-safe: checks measured side by side share the one scan."""

    def __init__(self, target: LogsTarget, host: Host, host_name: str = "") -> None:
        self.target = target
        self.host = host  # a testinfra host: the target's [[host]], or this machine
        self.host_name = host_name or "this machine"
        self.python = _Python("python3", "")
        self._files_lock = threading.Lock()
        self._counts_lock = threading.Lock()
        self._files: dict[str, Any] | None = None
        self._counts: dict[str, Any] | None = None

    def open(self) -> LogSource:
        """The scanner runs on the host: it needs python3 there, found once per host."""
        python = _INTERPRETERS.python(self.host, self.host_name)
        if python is None:
            raise Unreachable(
                f"{self.host_name} has no python3: opscheck's log scanner runs there "
                "(Debian: apt-get install python3-minimal)"
            )
        self.python = python
        return self

    def paths(self, days: int = 1) -> list[str]:
        """The path (or glob) rendered for today and the ``days - 1`` days before, newest first."""
        path = self.target.path
        if path is None:
            return []
        if not templates.has_date(path):
            return [path]
        return [templates.render(path, day) for day in templates.recent_days(days)]

    def files(self) -> dict[str, Any]:
        """Today's files of the source: size, modification time, first and last timestamp."""
        with self._files_lock:
            if self._files is None:
                self._files = self._scan({"mode": "files", "paths": self.paths()})
            return self._files

    def counts(self) -> dict[str, Any]:
        """Every pattern of the target counted in one scan of the files (or the journal)."""
        with self._counts_lock:
            return self._count()

    def _count(self) -> dict[str, Any]:
        if self._counts is None:
            patterns = self.target.patterns
            windows = [p.window for p in patterns] + [s.window for s in self.target.stats]
            longest = max((window_seconds(w) or 86400.0 for w in windows), default=86400.0)
            # A date-templated path: the files of every day the longest window touches.
            days = int(longest // 86400) + 2 if self.target.path else 1
            request: dict[str, Any] = {"mode": "count", "paths": self.paths(days)}
            request["patterns"] = [_pattern_request(p, self.target) for p in patterns]
            if self.target.stats:
                request["stats"] = [_stat_request(s) for s in self.target.stats]
            self._counts = self._scan(request)
        return self._counts

    def _scan(self, request: dict[str, Any]) -> dict[str, Any]:
        t = self.target
        request.update(
            format=t.format,
            level_field=t.level_field,
            time_field=t.time_field,
            message_field=t.message_field,
            journald_unit=t.journald_unit,
            journald_directory=t.journald_directory,
            journald_priority=t.journald_priority,
            journald_kernel=t.journald_kernel,
        )
        command = (
            f"timeout {t.scan_timeout:g} {shlex.quote(self.python.path)} -S -c "
            f"{shlex.quote(_boot(self.python.magic))} "
            f"{shlex.quote(json.dumps(request))}"
        )
        result = self.host.run(command)
        if result.rc == 124:
            raise ProbeError(
                f"the log scan did not finish within {t.scan_timeout:g} s (scan_timeout)"
            )
        if result.rc != 0:
            said = result.stderr.strip().splitlines() or [f"exit status {result.rc}"]
            raise ProbeError(f"the log scanner failed on {self.host_name}: {said[-1][:300]}")
        answer: dict[str, Any] = json.loads(result.stdout)
        return answer


def _pattern_request(pattern: LogPattern, target: LogsTarget) -> dict[str, Any]:
    seconds = window_seconds(pattern.window)
    spec: dict[str, Any] = {
        "name": pattern.name,
        "window": "today" if seconds is None else seconds,
        "regexes": pattern.regexes,
        "levels": pattern.level,
    }
    literals = None
    if pattern.regexes:
        literals = required_literals(pattern.regexes[0])
        if literals:
            spec["literals"], spec["iliterals"] = literals
    elif pattern.level and target.format == "json":
        spec["iliterals"] = [level.lower() for level in pattern.level]
        literals = [], spec["iliterals"]
    # What GNU grep runs on the host: the first regex (exact when it is the only criterion), else
    # the literals one of which a match holds; every line it finds is then confirmed.
    found = grep_regex(pattern.regexes[0]) if pattern.regexes else None
    if found is not None:
        spec["ere"] = found[0]
        spec["exact"] = found[1] and len(pattern.regexes) == 1 and not pattern.level
    elif literals:
        spec["ere"] = _literals_ere(*literals)
    return spec


# -- probes -----------------------------------------------------------------------------------


def _missing(path: str) -> str:
    return f"{path}: no file matches" if any(c in path for c in "*?[") else f"{path}: no such file"


def _problem(entry: dict[str, Any]) -> str:
    """A file entry the scanner could not read: "… is a FIFO (named pipe), not a regular file",
    "…: Permission denied"."""
    return f"{entry['path']}{'' if entry.get('not_file') else ':'} {entry['error']}"


def source_present(source: LogSource) -> Measurement:
    """The source has something to read: its files (listed in the detail), or journal entries."""
    t = source.target
    if t.container is not None:  # docker / kubernetes: the containers (pods) to read
        from opscheck.probes import container_logs

        return container_logs.source_present(source)  # type: ignore[arg-type]
    expected = "log files (or journal entries) to read"
    if t.journal:
        journal = source.counts()["journal"]
        if "error" in journal:
            return Measurement.fact(False, f"{t.journal_what}: {journal['error']}", expected)
        since = _when(journal["since"])
        text = f"{t.journal_what}: {journal['entries']} entries since {since}"
        return Measurement.fact(True, text, expected)
    found = source.files()
    files = found["files"]
    problems = [_missing(path) for path in found["missing"]]
    problems += [_problem(f) for f in files if "error" in f]
    if problems:
        return Measurement.fact(False, "; ".join(problems), expected)
    size = sum(f["size"] for f in files)
    newest = max(f["mtime"] for f in files)
    age = format_value(max(0.0, found["now"] - newest), "duration")
    count = f"{len(files)} file{'s' if len(files) > 1 else ''}"
    text = f"{t.path}: {count}, {format_value(size, 'size')}, last written {age} ago"
    listing = sorted(files, key=lambda f: -f["mtime"])
    detail = "\n".join(f"{f['path']} {format_value(f['size'], 'size')}" for f in listing[:20])
    return Measurement.fact(True, text, expected, detail=detail if len(files) > 1 else "")


def pattern_lines(source: LogSource, pattern: LogPattern) -> Measurement:
    """Lines matching ``pattern`` within its window, with the most repeated messages."""
    counted = source.counts()
    t = source.target
    files = counted["files"]
    read = [f for f in files if "read" in f]
    not_files = [_problem(f) for f in files if f.get("not_file")]
    if not_files:
        raise ProbeError(f"{'; '.join(not_files)}: not read (see test_log_source_present)")
    unreadable = [_problem(f) for f in files if "error" in f]
    if unreadable:
        hint = " (readable by root only? sudo = true on its [[host]] runs the scan as root)"
        raise ProbeError(f"cannot read {'; '.join(unreadable)}{hint if t.host else ''}")
    if t.path and not files:
        raise ProbeError(f"no log file matches {t.path} (see test_log_source_present)")
    result = counted["patterns"][pattern.name]
    count, lines = result["count"], result["lines"]
    what = " and ".join(filter(None, [pattern.pattern, pattern.preset]))
    level = f"at level {'|'.join(pattern.level)}" if pattern.level else ""
    matching = " ".join(filter(None, [f"matching {what}" if what else "", level]))
    text = f"{count} line{'' if count == 1 else 's'} {matching} {window_text(pattern.window)}"
    seconds = window_seconds(pattern.window)
    now = counted["now"]
    since = now - now % 86400 if seconds is None else now - seconds
    share = f" ({100.0 * count / lines:.2g} %)" if lines and count else ""
    if t.journal:
        origin = t.journal_what
    elif "origin" in counted:  # container logs: the containers (pods) read
        origin = counted["origin"]
    else:
        names = [f["path"] for f in read]
        origin = f"{len(names)} file{'s' if len(names) != 1 else ''}"
        if names:
            origin += ": " + ", ".join(names[:FILES_SHOWN])
            origin += f" and {len(names) - FILES_SHOWN} more" if len(names) > FILES_SHOWN else ""
    notes = [
        f"{count} of {lines} lines{share} since {_when(since)}; read "
        f"{format_value(counted['bytes'], 'size')} in {counted['seconds']:.2f} s from {origin}"
    ]
    unstamped = [f["path"] for f in read if f.get("unstamped")]
    if unstamped:
        notes.append(f"no timestamps found, counted whole: {', '.join(unstamped)}")
    long = [f["path"] for f in read if f.get("long_lines")]
    if long:
        most = format_value(MAX_LINE, "size")
        notes.append(f"lines over {most} matched on their first {most}: {', '.join(long)}")
    compressed = [f["path"] for f in files if f.get("skipped") == "compressed"]
    if compressed:
        notes.append(f"compressed, not read: {', '.join(compressed)}")
    notes += counted.get("notes", {}).get(pattern.name, [])  # container logs: each one's count
    if result["top"]:
        folded = result["folded"]
        scope = f" (of the first {folded})" if folded < count else ""
        notes.append(f"top messages{scope}, numbers, ids, addresses and times folded:")
        notes += [f"{n:>7}  {message}" for message, n, _ in result["top"][:TOP_SHOWN]]
        if result["other"]:
            notes.append(f"{result['other']:>7}  (other messages, past the distinct ones kept)")
    return Measurement(count, text=text, detail="\n".join(notes))


def _today(source: LogSource) -> list[dict[str, Any]]:
    found = source.files()
    readable = [f for f in found["files"] if "size" in f]
    if not readable:
        problems = [_missing(path) for path in found["missing"]]
        problems += [_problem(f) for f in found["files"] if "error" in f]
        said = "; ".join(problems or [_missing(source.target.path or "")])
        raise ProbeError(f"{said} (see test_log_source_present)")
    return readable


def file_sizes(source: LogSource) -> list[Measurement]:
    """Size of each file of the source (runbook: `find /logs -name "*.jsonl" -size +100M`)."""
    return [
        Measurement(f["size"], subject=f["path"], text=format_value(f["size"], "size"))
        for f in sorted(_today(source), key=lambda f: -f["size"])
    ]


def dir_sizes(source: LogSource) -> list[Measurement]:
    """Disk used by each folder holding the source's files (`du -sh /logs/*`)."""
    _today(source)
    measured = []
    for folder in source.files()["dirs"]:
        if folder["size"] is None:
            raise ProbeError(f"{folder['path']}: too many files to add up within 30 s")
        size = folder["size"]
        measured.append(Measurement(size, subject=folder["path"], text=format_value(size, "size")))
    return measured


def file_spans(source: LogSource) -> list[Measurement]:
    """How much time each file written in the last 24 h holds, first line to last: a file
    rotated daily holds at most a day; one that is never rotated holds ever more."""
    now = source.files()["now"]
    measured = []
    for f in _today(source):
        if now - f["mtime"] > ACTIVE or f.get("first") is None or f.get("last") is None:
            continue  # an archive no longer written, or lines without timestamps
        span = max(0.0, f["last"] - f["first"])
        text = (
            f"holds {format_value(span, 'duration')} of lines "
            f"({_when(f['first'])} to {_when(f['last'])})"
        )
        measured.append(Measurement(span, subject=f["path"], text=text))
    return measured


# -- fail2ban ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Jail:
    name: str
    currently_failed: int
    total_failed: int
    currently_banned: int
    total_banned: int
    banned: list[str]


def parse_fail2ban(text: str) -> dict[str, str]:
    """``fail2ban-client status [jail]`` output as ``{"Currently banned": "1", ...}``: the tree
    (``|- Filter``, `` `- Banned IP list:``) flattened to its ``key: value`` lines."""
    fields = {}
    for line in text.splitlines():
        key, colon, value = re.sub(r"^[\s|`-]+", "", line).partition(":")
        if colon:
            fields[key.strip()] = value.strip()
    return fields


def fail2ban_status(host: Host, timeout: float) -> list[Jail]:
    """Every jail of the host's fail2ban-server (``fail2ban-client status``, read-only)."""
    if not host.exists("fail2ban-client"):
        raise NotApplicable("fail2ban = true, but the host has no fail2ban-client")

    def status(*args: str) -> dict[str, str]:
        command = " ".join(shlex.quote(a) for a in ["fail2ban-client", "status", *args])
        result = host.run(f"timeout {timeout:g} {command}")
        if result.rc != 0:
            said = " ".join((result.stderr.strip() or result.stdout.strip()).split())[:300]
            why = f"no answer within {timeout:g} s" if result.rc == 124 else said
            raise ProbeError(f"`{command}` exited {result.rc}: {why}")
        return parse_fail2ban(result.stdout)

    names = [n.strip() for n in status().get("Jail list", "").split(",") if n.strip()]
    jails = []
    for name in names:
        fields = status(name)

        def number(key: str, fields: dict[str, str] = fields) -> int:
            value = fields.get(key, "0")
            return int(value) if value.isdigit() else 0

        jails.append(
            Jail(
                name,
                number("Currently failed"),
                number("Total failed"),
                number("Currently banned"),
                number("Total banned"),
                fields.get("Banned IP list", "").split(),
            )
        )
    return jails


def fail2ban_jails(host: Host, timeout: float) -> Measurement:
    """fail2ban-server answers and runs at least one jail."""
    jails = fail2ban_status(host, timeout)
    names = ", ".join(j.name for j in jails)
    text = f"fail2ban jails: {names}" if jails else "fail2ban-server runs no jail"
    return Measurement.fact(bool(jails), text, "at least one jail")


def fail2ban_bans(host: Host, timeout: float) -> list[Measurement]:
    """Addresses each jail bans now (``Currently banned``)."""
    return fail2ban_banned(fail2ban_status(host, timeout))


def fail2ban_banned(jails: list[Jail]) -> list[Measurement]:
    return [
        Measurement(
            j.currently_banned,
            subject=j.name,
            text=f"{j.currently_banned} IPs banned ({j.total_banned} since start; "
            f"{j.currently_failed} failing now)",
            detail=f"{j.name}: banned {' '.join(j.banned[:20])}" if j.banned else "",
        )
        for j in jails
    ]


# -- ratios and stats (item: [[logs.patterns]] ratio_of, [[logs.stats]]) ---------------------


def pattern_ratio(source: LogSource, pattern: LogPattern) -> Measurement:
    """The share, in percent, of the window's lines (``ratio_of = "all"``) or of another
    pattern's lines that match ``pattern``."""
    counted = pattern_lines(source, pattern)  # the same checks of the files read, and detail
    result = source.counts()["patterns"][pattern.name]
    count = result["count"]
    if pattern.ratio_of == "all":
        total, of = result["lines"], "lines"
    else:
        total = source.counts()["patterns"][pattern.ratio_of]["count"]
        of = f"lines matching {pattern.ratio_of!r}"
    window = window_text(pattern.window)
    if not total:
        raise NotApplicable(f"no {of} {window}: no share to judge")
    share = 100.0 * count / total
    text = f"{share:.3g} % ({count} of {total} {of}) match {pattern.name!r} {window}"
    return Measurement(share, text=text, detail=counted.detail)


def _stat_request(stat: LogStat) -> dict[str, Any]:
    seconds = stat.seconds
    return {
        "name": stat.name,
        "window": "today" if seconds is None else seconds,
        "stat": stat.stat,
        "field": stat.field,
        "group_by": stat.group_by,
        "pattern": stat.pattern,
        "direction": stat.direction or "above",
    }


_STAT_WORDS = {
    "avg": "average",
    "median": "median",
    "p95": "95th percentile",
    "p99": "99th percentile",
    "max": "maximum",
    "min": "minimum",
    "sum": "sum",
    "count": "lines",
    "distinct": "distinct values",
}


def stat_values(source: LogSource, stat: LogStat) -> list[Measurement]:
    """The stat of the field over the window's JSON lines; with ``group_by``, one measurement
    per top group (the worst first), every group ranked in the detail."""
    aggregated = source.counts().get("aggregated")
    if aggregated is None:
        raise ProbeError("the log scanner on the host answered no stats (an older opscheck?)")
    problems = [_missing(path) for path in aggregated["missing"]]
    problems += [_problem(f) for f in aggregated["files"] if "error" in f]
    if problems:
        raise ProbeError(f"cannot read {'; '.join(problems)} (see test_log_source_present)")
    result = aggregated["stats"][stat.name]
    scale = 0.001 if stat.unit == "ms" else 1.0
    kind = {"ms": "duration", "s": "duration", "bytes": "size"}.get(stat.unit, "number")
    what = _STAT_WORDS[stat.stat]
    of = f"{what} of {stat.field}" if stat.field else what
    where = f" matching {stat.pattern!r}" if stat.pattern else ""
    window = window_text(stat.window)
    read = [f for f in aggregated["files"] if "read" in f]
    notes = [
        f"{result['lines']} lines{where} {window}; read "
        f"{format_value(aggregated['bytes'], 'size')} in {aggregated['seconds']:.2f} s from "
        f"{len(read)} file{'s' if len(read) != 1 else ''}: {', '.join(f['path'] for f in read)}"
    ]
    skipped = []
    if result["unparsed"]:
        skipped.append(f"{result['unparsed']} not JSON objects")
    if result["missing"]:
        skipped.append(f"{result['missing']} without {stat.field}")
    if result["non_numeric"]:
        bad = ", ".join(result["bad"])
        skipped.append(f"{result['non_numeric']} with a {stat.field} that is not a number ({bad})")
    if skipped:
        notes.append("lines left out: " + "; ".join(skipped))
    if result["capped"]:
        notes.append("distinct values counted up to 1,000,000: at least that many")
    compressed = [f["path"] for f in aggregated["files"] if f.get("skipped") == "compressed"]
    if compressed:
        notes.append(f"compressed, not read: {', '.join(compressed)}")

    def shown(value: float) -> str:
        return format_value(value * scale, kind)

    if stat.group_by is None:
        if stat.stat == "distinct" and result["value"] is not None:
            text = f"{result['value']:.0f} distinct values of {stat.field} in {result['n']} lines"
            text += f"{where} {window}"
            return [Measurement(result["value"], text=text, detail="\n".join(notes))]
        if result["value"] is None:
            said = "; ".join(skipped) or "no lines"
            raise ProbeError(f"no {stat.field} value to judge {window}{where} ({said})")
        value = result["value"] * scale
        text = f"{of} {shown(result['value'])} over {result['n']} lines{where} {window}"
        return [Measurement(value, text=text, detail="\n".join(notes))]
    groups = result["groups"]
    if not groups:
        said = "; ".join(skipped) or "no lines"
        raise ProbeError(f"no {stat.group_by} group to judge {window}{where} ({said})")
    total = result["group_count"]
    ranked = "lines" if stat.stat == "count" else f"{of}, lines"
    notes.append(f"top {stat.group_by} of {total} ({ranked}):")
    notes += [f"{shown(v):>10}  {g}  ({n} lines)" for g, v, n in groups[: max(stat.top, 10)]]
    if result["other"]:
        notes.append(f"{result['other']} lines of groups past the first 100,000 not grouped")
    detail = "\n".join(notes)
    return [
        Measurement(
            value * scale,
            subject=f"{stat.group_by}={group}",
            text=(
                f"{n} lines{where} {window}"
                if stat.stat == "count"
                else f"{of} {shown(value)} ({n} lines{where} {window})"
            ),
            detail=detail,
        )
        for group, value, n in groups[: stat.top]
    ]
