"""Log probes: the runbooks' ``grep -c ERROR logs/api-$(date +%Y-%m-%d).log``, ``grep
"authentication failed" … | wc -l`` and ``du -sh /logs/*`` lines, as Measurements.

The reading happens on the host that holds the logs: ``_logscan.py`` (stdlib only) is sent through
the target's testinfra connection and run there with ``python3 -c``, bounded by ``timeout``; only
counts and the top messages come back. It seeks to each window's start by binary search, so the
last 4 h of a multi-GB log cost a few MB of reading. fail2ban's status is read here too.
"""

from __future__ import annotations

import base64
import importlib
import json
import re
import shlex
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opscheck import templates
from opscheck.config import LogPattern, LogsTarget, window_seconds
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
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


class LogSource:
    """One ``[[logs]]`` target on its host; scans once per run, every check reads the result."""

    def __init__(self, target: LogsTarget, host: Host, host_name: str = "") -> None:
        self.target = target
        self.host = host  # a testinfra host: the target's [[host]], or this machine
        self.host_name = host_name or "this machine"
        self._files: dict[str, Any] | None = None
        self._counts: dict[str, Any] | None = None

    def open(self) -> LogSource:
        """The scanner runs on the host: it needs python3 there."""
        if not self.host.exists("python3"):
            raise Unreachable(
                f"{self.host_name} has no python3: opscheck's log scanner runs there "
                "(Debian: apt-get install python3-minimal)"
            )
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
        if self._files is None:
            self._files = self._scan({"mode": "files", "paths": self.paths()})
        return self._files

    def counts(self) -> dict[str, Any]:
        """Every pattern of the target counted in one pass over the files (or the journal)."""
        if self._counts is None:
            patterns = self.target.patterns
            longest = max((window_seconds(p.window) or 86400.0 for p in patterns), default=86400.0)
            # A date-templated path: the files of every day the longest window touches.
            days = int(longest // 86400) + 2 if self.target.path else 1
            request: dict[str, Any] = {"mode": "count", "paths": self.paths(days)}
            request["patterns"] = [_pattern_request(p, self.target) for p in patterns]
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
        )
        code = base64.b64encode(zlib.compress(SCANNER.read_bytes(), 9)).decode()
        boot = f"import base64,zlib;exec(zlib.decompress(base64.b64decode('{code}')))"
        command = (
            f"timeout {t.scan_timeout:g} python3 -c {shlex.quote(boot)} "
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
    if pattern.regexes:
        found = required_literals(pattern.regexes[0])
        if found:
            spec["literals"], spec["iliterals"] = found
    elif pattern.level and target.format == "json":
        spec["iliterals"] = [level.lower() for level in pattern.level]
    return spec


# -- probes -----------------------------------------------------------------------------------


def _missing(path: str) -> str:
    return f"{path}: no file matches" if any(c in path for c in "*?[") else f"{path}: no such file"


def source_present(source: LogSource) -> Measurement:
    """The source has something to read: its files (listed in the detail), or journal entries."""
    t = source.target
    expected = "log files (or journal entries) to read"
    if t.journald_unit:
        journal = source.counts()["journal"]
        if "error" in journal:
            return Measurement.fact(
                False, f"journal of {t.journald_unit}: {journal['error']}", expected
            )
        since = _when(journal["since"])
        text = f"journal of {t.journald_unit}: {journal['entries']} entries since {since}"
        return Measurement.fact(True, text, expected)
    found = source.files()
    files = found["files"]
    problems = [_missing(path) for path in found["missing"]]
    problems += [f"{f['path']}: {f['error']}" for f in files if "error" in f]
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
    unreadable = [f"{f['path']}: {f['error']}" for f in files if "error" in f]
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
    if t.journald_unit:
        origin = f"journal of {t.journald_unit}"
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
    compressed = [f["path"] for f in files if f.get("skipped") == "compressed"]
    if compressed:
        notes.append(f"compressed, not read: {', '.join(compressed)}")
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
    if not found["files"]:
        missing = "; ".join(_missing(path) for path in found["missing"] or [source.target.path])
        raise ProbeError(f"{missing} (see test_log_source_present)")
    return [f for f in found["files"] if "size" in f]


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
