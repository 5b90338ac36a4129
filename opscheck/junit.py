"""What CI shows of a run: JUnit failure messages that are the verdict, and ``--junit-warnings``.

Every ``<failure message=…>`` is the one-line verdict with its value and threshold
(``web1: / 91.2 % > crit 80 %``; several breaches ``; ``-joined), never pytest's ``Failed: ``
and never a traceback; the element text, which GitLab shows instead of the message, starts with
that line and keeps the whole failure (details, evidence). A setup or teardown error keeps
pytest's ``failed on setup with "…"`` in one line.

JUnit has no warning. ``--junit-warnings`` adds one test case, ``opscheck`` / ``warnings``, that
lists every WARN, FLAKY and WAIVED check and every expired or stale waiver, one line each (what,
where, measured, threshold). It is written as ``<skipped>``: the one state besides a failure
whose text GitLab shows, and which every viewer counts and none calls a failure; the same list
is its ``<system-out>`` (Jenkins' Standard Output) and its properties. With ``--fail-on-warn``
and a WARN it is a ``<failure message="2 WARN: …">``; with nothing to list it passes. Under
``-n N`` the controller writes it (it writes the file).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from opscheck import redaction
from opscheck.judge import records_of

CLASSNAME, NAME = "opscheck", "warnings"  # the summary test case
_MESSAGE = 480  # characters of the summary's message (pytest cuts messages at 500)


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # xdist workers write no JUnit
        verdicts = JUnitVerdicts(config)
        config.pluginmanager.register(verdicts, "opscheck-junit")
        config.pluginmanager.register(_After(verdicts), "opscheck-junit-after")


def verdict(report: pytest.TestReport, fail_on_warn: bool = False) -> str:
    """The one-line verdict of a failed check: its failing records' messages, else the first
    line of the failure, without pytest's ``Failed: ``."""
    records = records_of(report.user_properties)
    failing = [r for r in records if r.verdict == "CRIT" and not r.waived]
    if fail_on_warn:
        failing += [r for r in records if r.verdict == "WARN" and not r.waived]
    messages = [r.message + (" (--fail-on-warn)" if r.verdict == "WARN" else "") for r in failing]
    line = "; ".join(dict.fromkeys(m for m in messages if m)) or first_line(_crash(report))
    for key, value in report.user_properties:
        if key == "waiver_expired" and str(value) not in line:
            line += f" ({value})"
    return line


def _crash(report: pytest.TestReport) -> str:
    crash = getattr(report.longrepr, "reprcrash", None)
    text = getattr(crash, "message", None)
    return str(text) if text else str(report.longrepr)


def first_line(text: str) -> str:
    """The first line that says something: not xdist's ``[gw0] linux -- Python …`` header."""
    for line in text.splitlines():
        line = line.strip()
        if line and not _xdist_header(line):
            return line.removeprefix("Failed: ").removeprefix("E   ").strip()
    return ""


class JUnitVerdicts:
    """Rewrites pytest's JUnit ``<failure>``/``<error>`` messages as junitxml writes them, and
    adds the ``--junit-warnings`` summary test case before the file is written."""

    def __init__(self, config: pytest.Config) -> None:
        self._config = config
        self._fail_on_warn = bool(config.getoption("fail_on_warn", False))
        self._reporters: dict[tuple[Any, ...], Any] = {}
        self._listed: list[tuple[str, str]] = []  # (kind, line) for --junit-warnings

    def _logxml(self) -> Any:
        from _pytest.junitxml import xml_key

        return self._config.stash.get(xml_key, None)  # None: no --junitxml

    @staticmethod
    def _key(report: pytest.TestReport) -> tuple[Any, ...]:
        return report.nodeid, getattr(report, "node", None), report.when

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Before junitxml: keep the test case's writer, which junitxml closes (``finalize``)
        at the teardown, before a trylast hook could see a teardown error."""
        self._collect(report)
        logxml = self._logxml()
        if logxml is None or not report.failed:
            return
        reporter = logxml.node_reporters.get((report.id, getattr(report, "node", None)))
        if reporter is not None:
            self._reporters[self._key(report)] = reporter

    def _rewrite(self, report: pytest.TestReport) -> None:
        logxml = self._logxml()
        if logxml is None or not report.failed:
            return
        from _pytest.junitxml import bin_xml_escape

        reporter = self._reporters.pop(self._key(report), None) or logxml.node_reporters.get(
            (report.id, getattr(report, "node", None))
        )
        if reporter is None:
            return
        # A finalized writer holds its finished <testcase> (to_xml() returns it).
        nodes = reporter.nodes if "nodes" in vars(reporter) else list(reporter.to_xml())
        tag = "failure" if report.when == "call" else "error"
        found = [node for node in nodes if node.tag == tag]
        if not found:
            return  # not a failure junitxml wrote (an xfail, a not-run check made a skip)
        node = found[-1]
        if tag == "failure":
            said = verdict(report, self._fail_on_warn)
        else:
            said = f'failed on {report.when} with "{first_line(_crash(report))}"'
        if not said.strip('"'):
            return  # nothing better to say than pytest's message
        line = bin_xml_escape(redaction.redact(said))
        node.set("message", line)
        if tag == "failure":  # GitLab shows the text, not the message: it starts with the line
            text = node.text or ""
            body = "\n".join(t for t in text.splitlines() if not _xdist_header(t)).strip("\n")
            node.text = body if body.startswith(line) else f"{line}\n\n{body}"

    # -- --junit-warnings --------------------------------------------------------------------

    def _collect(self, report: pytest.TestReport) -> None:
        """The report's WARN, FLAKY and WAIVED lines, for the summary test case."""
        if report.when != "call" or not self._config.getoption("junit_warnings", False):
            return
        test = report.nodeid.rsplit("::", 1)[-1]
        props = report.user_properties
        records = records_of(props)
        for record in records:
            if record.waived:
                self._listed.append(("WAIVED", f"{record.message}: {record.waived} ({test})"))
            elif record.verdict == "WARN":
                self._listed.append(("WARN", f"{record.message} ({test})"))
        waived = [str(v) for k, v in props if k == "waived"]
        if waived and not any(r.waived for r in records):  # a failure a maintenance window took
            reason = first_line(_crash(report)) if report.longrepr else report.nodeid
            self._listed.append(("WAIVED", f"{reason}: {waived[0]} ({test})"))
        for key, value in props:
            if key == "flaky":
                target = next((str(v) for k, v in props if k == "target" and v), "")
                where = f"{target}: " if target and not str(value).startswith(target) else ""
                self._listed.append(("FLAKY", f"{where}{value} ({test})"))

    def _waivers(self) -> list[tuple[str, str]]:
        """Expired and stale waivers (opscheck.waivers.summary), one line each."""
        try:
            from opscheck import waivers

            listed = waivers.summary(self._config)
        except Exception:  # the waivers' own report says why; the summary case goes on
            return []
        lines = []
        for w in listed:
            status = w.get("status")
            if status not in ("expired", "stale"):
                continue
            what = " ".join(p for p in (w.get("check"), w.get("target"), w.get("subject")) if p)
            owner = f"owner {w.get('owner')}, expires {w.get('expires')}: {w.get('reason')}"
            # the terminal's words (opscheck.waivers), without the status it is listed under
            note = str(w.get("note") or status).removeprefix(f"{str(status).upper()}: ")
            lines.append((status.upper(), f"waiver {what} ({owner}): {note}"))
        return lines

    @pytest.hookimpl(tryfirst=True)  # before junitxml writes the file
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        logxml = self._logxml()
        if logxml is None or not self._config.getoption("junit_warnings", False):
            return
        from _pytest.junitxml import bin_xml_escape

        listed = self._listed + self._waivers()
        order = ("WARN", "FLAKY", "WAIVED", "EXPIRED", "STALE")
        listed.sort(key=lambda pair: order.index(pair[0]))
        lines = [redaction.redact(f"{kind} {line}") for kind, line in listed]
        counts = {kind: sum(1 for k, _ in listed if k == kind) for kind in order}
        said = ", ".join(
            f"{n} {kind if kind in ('WARN', 'FLAKY', 'WAIVED') else kind.lower() + ' waiver'}"
            + ("s" if n > 1 and kind in ("EXPIRED", "STALE") else "")
            for kind, n in counts.items()
            if n
        )
        reporter = logxml.node_reporter(f"{CLASSNAME}::{NAME}")
        reporter.attrs.update(classname=CLASSNAME, name=NAME)
        for kind, n in counts.items():
            reporter.add_property(kind.lower(), n)
        for line in lines:
            reporter.add_property("line", line)
        if not lines:
            out = "no WARN, FLAKY or WAIVED check and no expired or stale waiver in this run"
            logxml.add_stats("passed")
        else:
            out = "\n".join(lines)
            message = _clip(f"{said}: " + "; ".join(line.split(" ", 1)[1] for line in lines))
            tag, kind = "skipped", "opscheck.warnings"
            if self._fail_on_warn and counts["WARN"]:
                tag = "failure"
            node = ET.Element(tag, type=kind, message=bin_xml_escape(message))
            node.text = bin_xml_escape(out)
            reporter.append(node)  # counted as skipped (or failure) in the suite's totals
        system_out = ET.Element("system-out")
        system_out.text = bin_xml_escape(out)
        reporter.append(system_out)


class _After:
    """The trylast half: one plugin object holds one implementation of a hook."""

    def __init__(self, owner: JUnitVerdicts) -> None:
        self._owner = owner

    @pytest.hookimpl(trylast=True)  # after junitxml wrote the <failure> or <error>
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        self._owner._rewrite(report)


def _xdist_header(line: str) -> bool:
    return line.startswith("[gw") and " -- Python " in line


def _clip(text: str) -> str:
    return text if len(text) <= _MESSAGE else text[: _MESSAGE - 1] + "…"
