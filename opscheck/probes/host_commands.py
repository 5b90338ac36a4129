"""The operator's own commands on a host (``[[host.commands]]``): run through the host's
testinfra connection, bounded on the host by coreutils' ``timeout``; their exit status, a
number they print, their count of lines or their JSON, as ``Measurement``s.

The command is the operator's and must be read-only: opscheck runs it as written. Excerpts of
its stdout and stderr in messages are redacted (every secret of the run) and cut.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opscheck.judge import Measurement, ProbeError
from opscheck.probes.http import lookup, same_value
from opscheck.redaction import clip

if TYPE_CHECKING:
    from testinfra.host import Host

    from opscheck.config.commands import HostCommand

EXCERPT = 200  # characters of stdout or stderr in a message
TIMED_OUT = 124  # coreutils' `timeout`: the command ran past its time and was stopped
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Output:
    """What a command left: its exit status, stdout and stderr."""

    command: HostCommand
    rc: int
    stdout: str
    stderr: str


def excerpt(text: str, limit: int = EXCERPT) -> str:
    """``text`` on one line, redacted, then cut (``…`` when it was longer)."""
    flat = " ".join(text.split())
    shown = clip(flat, limit)
    return shown + "…" if len(clip(flat, limit + 1)) > limit else shown


def run(host: Host, command: HostCommand, timeout: float) -> Output:
    """Run ``command`` on ``host`` under ``timeout <seconds>`` (its own ``timeout`` or the
    target's): stopped on the host itself, with all it started, past it. The connection's own
    deadline (``fixtures.host``) reads that ``timeout`` and waits for it, plus ssh's margin."""
    seconds = command.timeout or timeout
    wrapped = f"timeout {seconds:g} sh -c {shlex.quote(command.run)}"
    result = host.run(wrapped)
    if result.rc == TIMED_OUT:
        raise ProbeError(
            f"{command.name}: `{excerpt(command.run, 120)}` did not finish within {seconds:g} s; "
            "stopped"
        )
    return Output(command, result.rc, str(result.stdout), str(result.stderr))


def exit_status(output: Output) -> Measurement:
    """The command exited with one of its ``expect_exit`` statuses (0 by default); its stderr
    (or stdout) excerpt when it did not."""
    command = output.command
    expected = " or ".join(str(code) for code in command.expect_exit)
    if output.rc in command.expect_exit:
        return Measurement.fact(True, f"{command.name}: exited {output.rc}", f"exit {expected}")
    said = output.stderr.strip() or output.stdout.strip()
    shown = f": {excerpt(said)}" if said else " (no output)"
    return Measurement.fact(
        False,
        f"{command.name}: `{excerpt(command.run, 120)}` exited {output.rc} (expected "
        f"{expected}){shown}",
        f"exit {expected}",
    )


def value(output: Output) -> Measurement:
    """The number the command printed: the ``regex`` group's first match, or all of stdout."""
    command, stdout = output.command, output.stdout
    if command.regex is not None:
        match = re.search(command.regex, stdout, re.MULTILINE)
        if match is None or match.group(1) is None:
            raise ProbeError(
                f"{command.name}: regex `{command.regex}` matches nothing in stdout: "
                f"{excerpt(stdout) or '(empty)'}"
            )
        text = match.group(1).strip()
    else:
        text = stdout.strip()
    if not _NUMBER.fullmatch(text):
        where = f"regex `{command.regex}` group" if command.regex else "stdout"
        hint = "" if command.regex else " (a regex with one group picks the number)"
        raise ProbeError(
            f"{command.name}: {where} is not a number: {excerpt(text) or '(empty)'}{hint}"
        )
    number = float(text)
    if not math.isfinite(number):
        raise ProbeError(f"{command.name}: {text} is not a finite number")
    return Measurement(number, subject=command.name)


def line_count(output: Output) -> Measurement:
    """The lines the command printed (blank lines not counted); the first ones in the detail."""
    lines = [line for line in output.stdout.splitlines() if line.strip()]
    count = len(lines)
    first = "; ".join(lines[:5])
    detail = f"first lines: {excerpt(first, 400)}" if lines else ""
    noun = "line" if count == 1 else "lines"
    return Measurement(count, subject=output.command.name, text=f"{count} {noun}", detail=detail)


def document(output: Output) -> Any:
    """stdout decoded as JSON; a ProbeError with an excerpt of what came instead."""
    try:
        return json.loads(output.stdout)
    except RecursionError:
        raise ProbeError(f"{output.command.name}: JSON nested too deep to decode") from None
    except json.JSONDecodeError as exc:
        raise ProbeError(
            f"{output.command.name}: stdout is not JSON ({exc.msg} at line {exc.lineno}): "
            f"{excerpt(output.stdout, 120) or '(empty)'}"
        ) from None


def json_fields(output: Output, found: Any) -> Measurement:
    """Each field of ``json`` has its expected value, as HTTP's ``json`` judges a response."""
    command, wrong = output.command, []
    for path, expected in command.json_fields.items():
        try:
            got = lookup(found, path)
        except KeyError:
            wrong.append(f"{path} missing (expected {expected!r})")
            continue
        if not same_value(got, expected):
            wrong.append(f"{path} = {excerpt(repr(got), 120)} (expected {expected!r})")
    fields = ", ".join(f"{p} = {v!r}" for p, v in command.json_fields.items())
    return Measurement.fact(not wrong, "; ".join(wrong) or fields, fields, subject=command.name)


def json_number(output: Output, found: Any, path: str) -> Measurement:
    """The number at ``path`` of the printed JSON; missing or not a finite number: a no."""
    name = output.command.name
    try:
        got = lookup(found, path)
    except KeyError:
        return Measurement.fact(False, f"{path} missing", "a number", subject=name)
    if isinstance(got, bool) or not isinstance(got, int | float) or not math.isfinite(got):
        return Measurement.fact(
            False, f"{path} = {excerpt(repr(got), 120)}", "a number", subject=name
        )
    return Measurement(got, subject=f"{name} {path}")
