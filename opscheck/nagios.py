"""``--nagios``: the run as one Nagios/Icinga plugin result, so opscheck runs as a check under
Nagios, Icinga, Checkmk (as a classic check or MRPE) or Sensu.

stdout holds the plugin output and nothing else; the exit code is the plugin state::

    OPSCHECK CRITICAL - 1 crit, 1 warn, 41 ok: web1: / 91.2 % > crit 80 % (+1 more) | …
    CRIT web1: / 91.2 % > crit 80 % (test_disk_used_below_limit[web1])
    WARN db1: 172 of 200 connections used (86 %) > warn 80 % (test_connections_below_limit[db1])

The first line is complete by itself (state, counts, the first problem, the performance data of
every numeric record: ``'disk_used_pct_web1_/'=91.2%;70;80;0;100``); each further line is one
problem, CRIT first, which Nagios and Icinga show as the long output. 0 OK, 1 WARNING (a WARN or
FLAKY check), 2 CRITICAL (a check failed, errored or was not run), 3 UNKNOWN (the configuration
is wrong, nothing was checked, the run was interrupted or broke): ``OPSCHECK UNKNOWN -
thresholds.toml: …``. A waived problem is OK and counted (``1 waived``).

pytest's own output is muted (its terminal writes to os.devnull, from before it starts); under
``-n N`` the controller answers, the workers stay silent. The result is worked out at the end of
the session (while the secrets are still known, for the redaction), and printed and returned as
the exit code by the outermost ``pytest_cmdline_main`` wrapper: every plugin's end-of-run work
(notify, heartbeat) sees pytest's own exit status, the process exits with the plugin's.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import re
import sys
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Any, TextIO

import pytest

from opscheck import redaction
from opscheck.junit import first_line

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")
# Nagios units of measure for opscheck's base units; a number or a count of days takes none.
UOM = {"percent": "%", "duration": "s", "size": "B", "number": "", "days": ""}
_FIRST_LINE = 4000  # perfdata past this many characters moves below the long output
_LONG_LINES = 50  # problem lines after the first; the rest are counted


@dataclass
class Result:
    code: int
    text: str  # the whole plugin output, redacted


_RESULT = pytest.StashKey[Result]()
_STREAMS = pytest.StashKey[tuple[TextIO, TextIO]]()  # the real stdout, stderr
_REASON = pytest.StashKey[str]()  # why the run broke: an internal error, a collection error
_printed = [0]  # plugin outputs printed in this process (an in-process rerun prints its own)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--nagios``. pytest-testinfra's plugin has an option of that name too, but opscheck's
    pytest.ini, the only place this module is loaded from, blocks that plugin (``-p
    no:pytest11.testinfra``): the option is added here, unless a plugin already added it (then
    it is the same flag, and this module answers for it). A run outside the checkout parses
    testinfra's ``--nagios`` and is started again from the checkout (opscheck.options)."""
    with contextlib.suppress(ValueError):  # already added
        parser.getgroup("opscheck").addoption(
            "--nagios",
            action="store_true",
            dest="nagios",
            help="print one Nagios/Icinga plugin result (a line with performance data, then one "
            "line per problem) and exit 0/1/2/3 (OK/WARNING/CRITICAL/UNKNOWN) instead of "
            "pytest's output",
        )


def _wanted(config: pytest.Config) -> bool:
    return bool(getattr(config.option, "nagios", False)) and not hasattr(config, "workerinput")


# -- muting pytest --------------------------------------------------------------------------------


def _real(stream: TextIO) -> TextIO:
    """The stream behind redaction and behind an outer --nagios run's mute (a misrooted run
    started again in-process: the outer one muted the streams first)."""
    while isinstance(stream, redaction.RedactingStream):
        stream = stream.stream
    return getattr(stream, "opscheck_real", None) or stream


def _devnull(real: TextIO) -> TextIO:
    muted = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed in the cleanup
    muted.opscheck_real = real  # type: ignore[attr-defined]
    return muted


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, args: list[str], parser: pytest.Parser
) -> Generator[None, None, None]:
    """Mute stdout and stderr before pytest's capture and terminal take them: what pytest and
    every plugin print goes to os.devnull; the plugin output goes to the real stdout."""
    known = early_config.known_args_namespace
    if not getattr(known, "nagios", False) or getattr(known, "help", False):
        return (yield)
    real = _real(sys.stdout), _real(sys.stderr)
    muted = _devnull(real[0]), _devnull(real[1])
    sys.stdout, sys.stderr = muted
    early_config.stash[_STREAMS] = real

    def restore() -> None:
        if _real(sys.stdout) is real[0]:
            sys.stdout, sys.stderr = real
        for stream in muted:
            stream.close()

    early_config.add_cleanup(restore)
    yield
    try:  # what pytest parses next: a command-line error is said on the real streams
        parser.parse(args, namespace=copy.copy(early_config.option))
    except pytest.UsageError as error:
        sys.stdout, sys.stderr = real
        said = re.findall(r"error: (.*)", str(error))  # argparse's "prog: error: …" line
        _print(
            real[0],
            f"OPSCHECK UNKNOWN - command line: {said[0] if said else _one_line(str(error))}",
        )
    except Exception:  # PrintHelp and the like: pytest's to deal with
        sys.stdout, sys.stderr = real
    return None


# -- the result -----------------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, None, None]:
    """After every other end-of-run step (the reports written and published): the result, from
    the Reporter's document and pytest's exit status, which stays pytest's here."""
    yield
    config = session.config
    if _wanted(config):
        config.stash[_RESULT] = _redacted(result(config, int(session.exitstatus)))


def pytest_internalerror(excrepr: Any) -> None:
    _set_reason(_CONFIG, "internal error: " + _last_line(str(excrepr)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed and _CONFIG:
        text = _last_line(str(report.longrepr)) or "collection failed"
        _set_reason(_CONFIG, f"collection error in {report.nodeid or 'the suites'}: {text}")


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    value = excinfo.value
    why = getattr(value, "msg", "") or type(value).__name__
    _set_reason(_CONFIG, f"run interrupted: {why}")


_CONFIG: list[pytest.Config] = []  # the run's config, for hooks that are not given it


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if _wanted(config):
        _CONFIG.append(config)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config in _CONFIG:
        _CONFIG.remove(config)


def _set_reason(configs: list[pytest.Config], reason: str) -> None:
    for config in configs[-1:]:
        config.stash.setdefault(_REASON, redaction.redact(reason))


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> Generator[None, Any, Any]:
    """Print the plugin output and return its state as the exit code (pytest.main's result)."""
    if not _wanted(config):
        return (yield)
    printed = _printed[0]
    try:
        code = yield
    except pytest.UsageError as error:  # the configuration, refused at start-up (or no suites)
        found = Result(UNKNOWN, f"OPSCHECK UNKNOWN - {_one_line(str(error))}")
    else:
        if _printed[0] != printed:  # an in-process rerun (opscheck.options) printed its own
            return code
        found = config.stash.get(_RESULT, None) or _broken(config, int(code))
        if int(code) == pytest.ExitCode.INTERNAL_ERROR and found.code != UNKNOWN:
            found = _broken(config, int(code))  # broke after the result was worked out
    real = config.stash.get(_STREAMS, None)
    _print(real[0] if real else sys.stdout, found.text)
    return found.code


def _print(stream: TextIO, text: str) -> None:
    stream.write(text + "\n")
    stream.flush()
    _printed[0] += 1


def _broken(config: pytest.Config, code: int) -> Result:
    """UNKNOWN: the run ended before there was a result to give."""
    reason = config.stash.get(_REASON, None) or {
        int(pytest.ExitCode.INTERRUPTED): "run interrupted",
        int(pytest.ExitCode.INTERNAL_ERROR): "internal error",
        int(pytest.ExitCode.NO_TESTS_COLLECTED): "nothing was checked: no check selected",
    }.get(code, f"pytest ended with exit code {code}")
    return Result(UNKNOWN, f"OPSCHECK UNKNOWN - {redaction.redact(reason)}")


def _redacted(found: Result) -> Result:
    return Result(found.code, redaction.redact(found.text))


def result(config: pytest.Config, exitstatus: int) -> Result:
    """The plugin result of a finished run."""
    reason = config.stash.get(_REASON, None)
    if reason or exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR):
        return _broken(config, exitstatus)
    document = _document(config.pluginmanager.get_plugin("opscheck-reporter"))
    if document is None or not document.get("tests"):
        return _broken(config, int(pytest.ExitCode.NO_TESTS_COLLECTED))
    return output(document, exitstatus)


def _document(reporter: Any) -> dict[str, Any] | None:
    """The run's final JSON document (the Reporter's ``document``; its build before that)."""
    if reporter is None:
        return None
    document = getattr(reporter, "document", None) or getattr(reporter, "_built", None)
    if document is None and hasattr(reporter, "_document"):
        document = reporter._document()
    return document if isinstance(document, dict) else None


def output(document: dict[str, Any], exitstatus: int = 0) -> Result:
    """The plugin output for a run's JSON document (opscheck.report)."""
    summary = document.get("summary", {})
    n = {k: int(summary.get(k, 0)) for k in summary}
    crit, not_run = n.get("failed", 0) + n.get("error", 0), n.get("not_run", 0)
    warn, flaky, waived, ok = (n.get(k, 0) for k in ("warned", "flaky", "waived", "passed"))
    if not crit + not_run + warn + flaky + waived + ok:
        skipped = n.get("skipped", 0)
        return Result(
            UNKNOWN,
            f"OPSCHECK UNKNOWN - nothing was checked: all {skipped} selected checks were skipped",
        )
    problems = problem_lines(document.get("tests", []))
    if crit or not_run or exitstatus == pytest.ExitCode.TESTS_FAILED:
        code = CRITICAL
    elif warn or flaky:
        code = WARNING
    else:
        code = OK
    counts = [f"{crit} crit", f"{warn} warn"]
    counts += [f"{v} {k}" for k, v in (("flaky", flaky), ("not run", not_run)) if v]
    counts.append(f"{ok} ok")
    counts += [f"{waived} waived"] if waived else []
    text = f"OPSCHECK {STATES[code]} - {', '.join(counts)}"
    shown = [p for p in problems if not p.startswith("WAIVED")]
    if code != OK and shown:
        first = _without_id(shown[0].split(" ", 1)[1])
        more = f" (+{len(shown) - 1} more)" if len(shown) > 1 else ""
        text += f": {first}{more}"
    elif code == CRITICAL:
        text += ": a test outside the checks failed (see pytest's output)"
    perf = perfdata(document.get("tests", []))
    first_line, rest = _fit(text, perf)
    lines = [first_line, *problems[:_LONG_LINES]]
    if len(problems) > _LONG_LINES:
        lines.append(f"... and {len(problems) - _LONG_LINES} more")
    if rest:
        lines[-1] += " | " + rest[0]
        lines += rest[1:]
    return Result(code, "\n".join(lines))


def _fit(text: str, perf: list[str]) -> tuple[str, list[str]]:
    """The first line with as much perfdata as fits; the rest, for after the long output."""
    line, room = text, _FIRST_LINE - len(text) - 3
    kept = 0
    for item in perf:
        if room - len(item) - 1 < 0:
            break
        room -= len(item) + 1
        kept += 1
    if kept:
        line += " | " + " ".join(perf[:kept])
    return line, perf[kept:]


# -- problems, one line each ----------------------------------------------------------------------

_ORDER = ("CRIT", "NOT RUN", "WARN", "FLAKY", "WAIVED")


def problem_lines(tests: Iterable[dict[str, Any]]) -> list[str]:
    """One line per problem of the run, CRIT first: ``CRIT <verdict> (<test>)``."""
    found: list[tuple[int, str]] = []
    for entry in tests:
        outcome = entry.get("outcome")
        test = entry.get("id", "").rsplit("::", 1)[-1]
        records = entry.get("records") or []
        if outcome in ("failed", "error"):
            messages = [r["message"] for r in records if r.get("verdict") == "CRIT"]
            messages = messages or [r["message"] for r in records if r.get("message")]
            text = "; ".join(messages) or first_line(entry.get("reason", "")) or "failed"
            found.append((0, f"CRIT {text} ({test})"))
        elif outcome == "not_run":
            reason = first_line(entry.get("reason", "")).removeprefix("not run: ")
            found.append((1, f"NOT RUN {reason} ({test})"))
        elif outcome == "warned":
            messages = [r["message"] for r in records if r.get("verdict") == "WARN"]
            found.append((2, f"WARN {'; '.join(messages)} ({test})"))
        elif outcome == "flaky":
            found.append((3, f"FLAKY {_flaky(records)} ({test})"))
        elif outcome == "waived":
            messages = [f"{r['message']} ({r['waived']})" for r in records if r.get("waived")]
            hidden = entry.get("waived_failure")  # a failure without records (target down)
            hidden = f"{first_line(hidden)} ({entry.get('waived')})" if hidden else ""
            text = "; ".join(messages) or hidden or first_line(entry.get("reason", "")) or "waived"
            found.append((4, f"WAIVED {text} ({test})"))
    return [line for _, line in sorted(found, key=lambda pair: pair[0])]


def _flaky(records: list[dict[str, Any]]) -> str:
    """``web1: / 92.0 % > crit 80 %, then 41.0 % 5 s later`` from the re-measured records."""
    texts = []
    for record in records:
        first = record.get("recheck")
        if first:
            delay = first.get("delay")
            later = f" {delay:g} s later" if isinstance(delay, int | float) else " later"
            said = first.get("message") or first.get("measured", "")
            texts.append(f"{said}, then {record.get('measured', '')}{later}")
    return "; ".join(texts) or "passed when measured again"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return re.sub(r"^(INTERNALERROR>|E)\s+", "", lines[-1]) if lines else ""


def _one_line(text: str) -> str:
    """Several errors (the loader reports each it finds) in one line, "; "-joined."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def _without_id(line: str) -> str:
    return re.sub(r" \([^()]*\)$", "", line)


# -- performance data -----------------------------------------------------------------------------


def perfdata(tests: Iterable[dict[str, Any]]) -> list[str]:
    """``'label'=value[UOM];warn;crit[;min;max]`` for every numeric record (plugin guidelines):
    the label is the check key without its component, the target and the subject; the value in
    the record's base unit; a "below" threshold as the range ``level:``."""
    items: list[str] = []
    owner: dict[str, str] = {}  # label -> the check key it was first given to
    for entry in tests:
        for record in entry.get("records") or []:
            value, unit = record.get("value"), record.get("unit")
            if unit not in UOM or not isinstance(value, int | float) or not math.isfinite(value):
                continue
            check = str(record.get("check", ""))
            where = [record.get("target") or "", record.get("subject") or ""]
            label = _label("_".join(p for p in [check.split(".", 1)[-1], *where] if p))
            if owner.get(label, check) != check:  # the same name in two components
                label = _label("_".join(p for p in [check, *where] if p))
            base, number = label, 2
            while label in owner:  # measured twice (two tests judge one key): kept apart
                label, number = f"{base}_{number}", number + 1
            owner[label] = check
            below = record.get("direction") == "below"
            levels = [_level(record.get(k), below) for k in ("warn", "crit")]
            bounds = ["0", "100"] if unit == "percent" else []
            fields = [f"{_number(value)}{UOM[unit]}", *levels, *bounds]
            items.append(f"'{label}'=" + ";".join(fields).rstrip(";"))
    return items


def _label(text: str) -> str:
    """A perfdata label: no quote, no ``=`` (the guidelines), no line break or ``|``."""
    return re.sub(r"['=|\s]", "_", text)


def _level(level: Any, below: bool) -> str:
    if not isinstance(level, int | float) or not math.isfinite(level):
        return ""
    if below:
        return f"{_number(level)}:"  # alert when the value is below: outside level..infinity
    return _number(level) if level >= 0 else f"~:{_number(level)}"


def _number(value: float) -> str:
    """Plain decimal, no exponent (the guidelines allow [-0-9.] only)."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")
