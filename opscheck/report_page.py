"""The report's first screen: static HTML from a JSON report document, no script, no inline style.

Rendered into pytest-html's summary (``pytest_html_results_summary``), it reads right with
JavaScript off and under a Content-Security-Policy that blocks styles: every verdict is written
out as a word, colours only add to it (classes and one ``<style>`` block).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from html import escape
from typing import Any

from opscheck import units

# flaky: a CRIT that passed when measured again (opscheck/recheck.py), a problem shown with both
# values; waived: problems a waiver accepts (opscheck/waivers.py), shown, never a problem.
STATES = ("crit", "warn", "flaky", "waived", "ok", "notrun", "skipped")
WORDS = {
    "crit": "CRIT",
    "warn": "WARN",
    "flaky": "FLAKY",
    "waived": "WAIVED",
    "ok": "OK",
    "notrun": "not run",
    "skipped": "skipped",
}
PROBLEMS = ("crit", "warn", "flaky")  # the states listed as problems, in this order
# A check of a down target that points to the real error (opscheck/session.py TargetDown): not
# run. TODO(H6): the JSON outcome "not_run" says so directly; the pattern covers reports before it.
_POINTING = re.compile(r"^\S+: unreachable \((see|stopped answering in) ")

STYLE = """<style>
.summary__data{flex:1 1 auto}
#opscheck-headline{font-size:1.6em;font-weight:bold;margin:.3em 0}
.crit{color:#c62828}.warn{color:#b26a00}.ok{color:#2e7d32}.notrun,.skipped{color:#616161}
.flaky{color:#6a1b9a}.waived{color:#1565c0}
#opscheck-problems,#opscheck-facts,#opscheck-checklist table,#opscheck-waived table,
#opscheck-waivers table{border-collapse:collapse}
#opscheck-problems td,#opscheck-problems th,#opscheck-checklist td,#opscheck-checklist th,
#opscheck-waived td,#opscheck-waived th,#opscheck-waivers td,#opscheck-waivers th,
#opscheck-facts td,#opscheck-facts th{border:1px solid #ccc;padding:2px 6px;text-align:left;
vertical-align:top}
tr.problem td.verdict,tr.check td.verdict{font-weight:bold}
tr.jump td.change{font-weight:bold}
#opscheck-show-problems:checked~table tr.check:not(.warn):not(.crit):not(.flaky),
#opscheck-show-warn:checked~table tr.check:not(.warn),
#opscheck-show-crit:checked~table tr.check:not(.crit),
#opscheck-show-flaky:checked~table tr.check:not(.flaky),
#opscheck-show-waived:checked~table tr.check:not(.waived),
#opscheck-show-problems:checked~table tbody.section:not(.has-warn):not(.has-crit):not(.has-flaky),
#opscheck-show-warn:checked~table tbody.section:not(.has-warn),
#opscheck-show-crit:checked~table tbody.section:not(.has-crit),
#opscheck-show-flaky:checked~table tbody.section:not(.has-flaky),
#opscheck-show-waived:checked~table tbody.section:not(.has-waived){display:none}
span.warned,.warned .col-result{color:#b26a00}
span.flaky,.flaky .col-result{color:#6a1b9a}span.waived,.waived .col-result{color:#1565c0}
</style>"""


_FILTERS = (
    ("all", "all"),
    ("problems", "problems"),
    ("warn", "WARN"),
    ("crit", "CRIT"),
    ("flaky", "FLAKY"),
    ("waived", "WAIVED"),
)


def state(entry: dict[str, Any]) -> str:
    """crit, warn, flaky, waived, ok, notrun or skipped: what a check's entry counts as."""
    outcome = entry.get("outcome", "error")
    if outcome == "not_run" or (outcome == "failed" and _POINTING.match(entry.get("reason") or "")):
        return "notrun"
    if outcome in ("failed", "error"):
        return "warn" if entry.get("verdict") == "WARN" else "crit"
    words = {"flaky": "flaky", "waived": "waived", "warned": "warn", "passed": "ok"}
    return {**words, "skipped": "skipped"}.get(outcome, "crit")


def _e(value: Any) -> str:
    return escape(str(value if value is not None else ""))


def _first_line(text: str) -> str:
    return (text or "").strip().split("\n")[0]


_SENTENCE = re.compile(r"(.+?[.?!])(?=\s+[A-Z]|$)")


def lead(docstring: str) -> str:
    """A docstring's first sentence on one line: a runbook section's or a check's title
    (docstrings wrap mid-sentence; their first line alone would be cut)."""
    paragraph = " ".join((docstring or "").strip().split("\n\n")[0].split())
    found = _SENTENCE.match(paragraph)
    return found.group(1) if found else paragraph


def headline_counts(entries: list[dict[str, Any]]) -> list[tuple[str, int]]:
    """(state, count) of the headline, in its order: zero counts left out, OK always."""
    counts = Counter(state(e) for e in entries)
    return [(s, counts[s]) for s in STATES if counts[s] or s == "ok"]


def headline_text(entries: list[dict[str, Any]]) -> str:
    """``1 CRIT · 3 WARN · 1 FLAKY · 1 WAIVED · 41 OK · 2 not run · 6 skipped``: the page's
    headline in words (notifications, heartbeat bodies: Reporter.headline())."""
    return " · ".join(f"{n} {WORDS[s]}" for s, n in headline_counts(entries))


def headline(entries: list[dict[str, Any]]) -> str:
    """The headline, each count in its state's colour (the words are the same without it)."""
    parts = [f'<span class="{s}">{n} {WORDS[s]}</span>' for s, n in headline_counts(entries)]
    return f'<p id="opscheck-headline">{" · ".join(parts)}</p>'


def change(record: dict[str, Any]) -> str:
    """The change since the previous run, as an operator reads it."""
    if "previous" not in record:
        return "no history kept"
    previous = record.get("previous")
    if previous is None:
        return "first run on record"
    was = units.format_value(previous, record.get("unit", "number"))
    if record.get("unit") == "percent" and record.get("change") is not None:
        # A share's change in points: "+3 %" of 4.4 % would read as 7.4 %.
        text = f"{record['change']:+.1f} pt (was {was})"
    elif record.get("change_pct") is not None:
        text = f"{record['change_pct']:+.0f} % (was {was})"
    elif record.get("change") is not None:
        text = f"{units.format_value(record['change'], record.get('unit', 'number'))} (was {was})"
    else:
        text = f"was {was}"
    return text + (" — jump" if record.get("jump") else "")


@dataclass
class Problem:
    """One row of the problems list (CRIT, WARN, FLAKY) or of the waived block (WAIVED)."""

    kind: str  # crit, warn, flaky or waived
    target: str
    title: str
    measured: str
    threshold: str
    message: str
    change: str = ""
    jump: bool = False
    note: str = ""  # FLAKY: its history call-out; WAIVED: the waiver (until, owner, reason)

    def line(self) -> str:
        """The problem in one line, as notifications and the terminal say it."""
        word, target = WORDS[self.kind], self.target
        if self.kind == "flaky":
            text = f"{target}: {self.title}: {self.measured}"
        else:
            said = self.message or self.measured
            text = said if not target or said.startswith(f"{target}:") else f"{target}: {said}"
        return f"{word} {text}" + (f" — {self.note}" if self.note else "")


def _flaky_measured(entry: dict[str, Any], record: dict[str, Any] | None) -> str:
    """Both values of a FLAKY check: the recheck's text, else built from its record."""
    if entry.get("flaky"):
        return str(entry["flaky"])
    first = (record or {}).get("recheck") or {}
    if not record or not first:
        return str(entry.get("measured", ""))
    delay = first.get("delay")
    later = f" {delay:g} s later" if isinstance(delay, int | float) else " when measured again"
    was = f"{first.get('measured', '')} ({first.get('verdict', 'CRIT')})"
    return f"{was}, then {record.get('measured', '')}{later}"


def problem_list(entries: list[dict[str, Any]]) -> list[Problem]:
    """The run's problems, CRIT first, then WARN, then FLAKY; then the WAIVED ones (accepted, not
    problems). One per CRIT/WARN record; a down target's row says how many of its checks were
    not run; one per FLAKY check, with both values."""
    not_run = Counter(e.get("target", "") for e in entries if state(e) == "notrun")
    told: set[str] = set()
    found: list[Problem] = []
    for entry in entries:
        kind = state(entry)
        if kind not in (*PROBLEMS, "waived"):
            continue
        target = entry.get("target", "")
        title = entry.get("title") or entry.get("check_id", "")
        records = entry.get("records", [])
        if kind == "flaky":
            rechecked = [r for r in records if (r.get("recheck") or {}).get("verdict") == "CRIT"]
            record = rechecked[0] if rechecked else None
            found.append(
                Problem(
                    "flaky",
                    target,
                    (record or {}).get("title") or title,
                    _flaky_measured(entry, record),
                    (record or {}).get("threshold") or entry.get("threshold", ""),
                    "CRIT, then passed when measured again",
                    note=str(entry.get("flaky_history") or ""),
                )
            )
            continue
        bad = [r for r in records if r.get("verdict") in ("CRIT", "WARN")]
        if kind == "waived":
            bad = [r for r in bad if r.get("waived")] or bad
        rows = [
            Problem(
                # a waived record beside an unwaived WARN is listed as WAIVED, after the WARN
                "waived" if kind == "waived" or r.get("waived") else r["verdict"].lower(),
                target,
                r.get("title") or title,
                r.get("measured", ""),
                r.get("threshold", ""),
                r.get("message", ""),
                change(r),
                bool(r.get("jump")),
                note=str(r.get("waived") or entry.get("waived", "")),
            )
            for r in bad
        ] or [
            Problem(
                kind,
                target,
                title,
                entry.get("measured", ""),
                entry.get("threshold", ""),
                # a waived down target: no record, the failure its maintenance window accepted
                # the failure's one line (a crash: its exception, not the traceback's tail)
                entry.get("message")
                or _first_line(entry.get("reason") or entry.get("waived_failure", "")),
                note=str(entry.get("waived", "")) if kind == "waived" else "",
            )
        ]
        for row in rows:
            if row.kind != "waived" and not_run[target] and target not in told:
                told.add(target)
                row.message = f"{row.message} — {not_run[target]} checks not run"
        found += rows
    order = (*PROBLEMS, "waived")
    return sorted(found, key=lambda p: order.index(p.kind))


_HEAD = ("verdict", "target", "check", "measured", "threshold", "message", "change")


def _problem_row(p: Problem) -> str:
    classes = f"problem {p.kind}" + (" jump" if p.jump else "")
    message = f"{p.message} — {p.note}" if p.kind == "flaky" and p.note else p.message
    last = ("waiver", p.note) if p.kind == "waived" else ("change", p.change)
    return (
        f'<tr class="{classes}"><td class="verdict">{WORDS[p.kind]}</td>'
        f'<td class="target">{_e(p.target)}</td><td class="title">{_e(p.title)}</td>'
        f'<td class="measured">{_e(p.measured)}</td><td class="threshold">{_e(p.threshold)}</td>'
        f'<td class="message">{_e(message)}</td><td class="{last[0]}">{_e(last[1])}</td></tr>'
    )


def problems(entries: list[dict[str, Any]]) -> str:
    """One row per CRIT and WARN record (CRIT first), then one per FLAKY check (both values, its
    history call-out: "FLAKY on 3 of the last 10 runs"); a down target's row says how many of its
    checks were not run."""
    rows = [_problem_row(p) for p in problem_list(entries) if p.kind != "waived"]
    if not rows:
        return '<p id="opscheck-problems" class="none ok">No problems: no CRIT, no WARN.</p>'
    head = "".join(f"<th>{h}</th>" for h in _HEAD)
    return f'<table id="opscheck-problems"><tr>{head}</tr>{"".join(rows)}</table>'


def waived(entries: list[dict[str, Any]]) -> str:
    """The WAIVED checks: what was measured and the waiver that accepts it (until, owner, why)."""
    rows = [p for p in problem_list(entries) if p.kind == "waived"]
    if not rows:
        return ""
    head = "".join(
        f"<th>{h}</th>"
        for h in ("verdict", "target", "check", "measured", "threshold", "message", "waiver")
    )
    body = "".join(_problem_row(p) for p in rows)
    return (
        '<section id="opscheck-waived"><h2>Waived: accepted until their expiry</h2>'
        f"<table><tr>{head}</tr>{body}</table></section>"
    )


WAIVER_STATUS = {
    "applied": "applied",
    "expired": "EXPIRED: its problem counts again",
    "stale": "stale: matches no check",
    "unused": "unused: its check had no problem",
    "not_checked": "not checked by this run",
}


def waivers(document: dict[str, Any]) -> str:
    """The waivers file's waivers that need a look: expired, stale (match nothing) and unused
    (nothing to accept this run), each with opscheck/waivers.py's words (its ``note``); applied
    ones are in the WAIVED block, not_checked ones (their check not in this run) left out."""
    quiet = ("applied", "not_checked")
    rows = [w for w in document.get("waivers") or [] if w.get("status") not in quiet]
    if not rows:
        return ""
    cells = ("status", "check", "target", "subject", "reason", "owner", "expires")
    head = "".join(f"<th>{h}</th>" for h in cells)
    body = "".join(
        f'<tr class="waiver {_e(status)}"><td class="status">{_e(said)}</td>'
        + "".join(f'<td class="{c}">{_e(w.get(c, ""))}</td>' for c in cells[1:])
        + "</tr>"
        for w in rows
        for status in [str(w.get("status", ""))]
        for said in [w.get("note") or WAIVER_STATUS.get(status, status)]
    )
    return (
        '<section id="opscheck-waivers"><h2>Waivers to look at</h2>'
        f"<table><tr>{head}</tr>{body}</table></section>"
    )


def facts(values: dict[str, str]) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in values.items())
    return f'<table id="opscheck-facts">{rows}</table>'


def nav(archived: bool) -> str:
    """Links to the index and the neighbour reports; the archive step (opscheck/archive_index.py)
    replaces the two placeholders with links once the neighbours exist."""
    index = '<a id="opscheck-index" href="../index.html">index of days</a> · ' if archived else ""
    return (
        f'<nav id="opscheck-nav">{index}'
        '<span id="opscheck-prev">no earlier report</span> · '
        '<span id="opscheck-next">no later report yet</span></nav>'
    )


def _row_note(entry: dict[str, Any], kind: str) -> str:
    if kind == "skipped":
        return f"skipped: {_first_line(entry.get('reason', ''))}"
    if kind == "notrun":
        return f"not run: {entry.get('target', '')} unreachable"
    if kind in ("crit", "warn"):
        return _first_line(entry.get("message") or entry.get("reason", ""))
    if kind == "flaky":
        callout = entry.get("flaky_history")
        return _flaky_measured(entry, None) + (f" — {callout}" if callout else "")
    if kind == "waived":
        return _first_line(entry.get("waived") or "")
    return ""


def checklist(entries: list[dict[str, Any]]) -> str:
    """The run as the runbook reads: one table body per section, one row per check, with a
    filter (all / problems / WARN / CRIT / FLAKY / WAIVED) of radio buttons and CSS that works
    without script."""
    sections: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        sections.setdefault(entry.get("section") or "Other checks", []).append(entry)
    bodies = []
    for section, items in sections.items():
        kinds = [state(e) for e in items]
        has = "".join(f" has-{k}" for k in ("warn", "crit", "flaky", "waived") if k in kinds)
        rows = "".join(
            f'<tr class="check {k}"><td class="verdict">{WORDS[k]}</td>'
            f'<td class="title">{_e(e.get("title") or e.get("check_id", ""))}</td>'
            f'<td class="target">{_e(e.get("target", ""))}</td>'
            f'<td class="measured">{_e(e.get("measured", "") if k != "notrun" else "")}</td>'
            f'<td class="note">{_e(_row_note(e, k))}</td></tr>'
            for e, k in zip(items, kinds, strict=True)
        )
        bodies.append(
            f'<tbody class="section{has}"><tr><th colspan="5">{_e(section)}</th></tr>{rows}</tbody>'
        )
    radios = "".join(
        f'<input type="radio" name="opscheck-show" id="opscheck-show-{key}"'
        f'{" checked" if key == "all" else ""}><label for="opscheck-show-{key}">{label}</label> '
        for key, label in _FILTERS
    )
    return (
        f'<section id="opscheck-checklist"><h2>Checklist by runbook section</h2>{radios}'
        f"<table>{''.join(bodies)}</table></section>"
    )


def top(document: dict[str, Any], run_facts: dict[str, str], archived: bool) -> str:
    """Style, headline, problems, the waived checks and the waivers to look at, facts and
    navigation: what comes before the trends."""
    entries = document.get("tests", [])
    return "".join(
        (
            STYLE,
            headline(entries),
            problems(entries),
            waived(entries),
            waivers(document),
            facts(run_facts),
            nav(archived),
        )
    )
