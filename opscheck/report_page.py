"""The report's first screen: static HTML from a JSON report document, no script, no inline style.

Rendered into pytest-html's summary (``pytest_html_results_summary``), it reads right with
JavaScript off and under a Content-Security-Policy that blocks styles: every verdict is written
out as a word, colours only add to it (classes and one ``<style>`` block).
"""

from __future__ import annotations

import re
from collections import Counter
from html import escape
from typing import Any

from opscheck import units

STATES = ("crit", "warn", "ok", "notrun", "skipped")
WORDS = {"crit": "CRIT", "warn": "WARN", "ok": "OK", "notrun": "not run", "skipped": "skipped"}
# A check of a down target that points to the real error (opscheck/session.py TargetDown): not
# run. TODO(H6): the JSON outcome "not_run" says so directly; the pattern covers reports before it.
_POINTING = re.compile(r"^\S+: unreachable \((see|stopped answering in) ")

STYLE = """<style>
.summary__data{flex:1 1 auto}
#opscheck-headline{font-size:1.6em;font-weight:bold;margin:.3em 0}
.crit{color:#c62828}.warn{color:#b26a00}.ok{color:#2e7d32}.notrun,.skipped{color:#616161}
#opscheck-problems,#opscheck-facts,#opscheck-checklist table{border-collapse:collapse}
#opscheck-problems td,#opscheck-problems th,#opscheck-checklist td,#opscheck-checklist th,
#opscheck-facts td,#opscheck-facts th{border:1px solid #ccc;padding:2px 6px;text-align:left;
vertical-align:top}
tr.problem td.verdict,tr.check td.verdict{font-weight:bold}
tr.jump td.change{font-weight:bold}
#opscheck-show-problems:checked~table tr.check:not(.warn):not(.crit),
#opscheck-show-warn:checked~table tr.check:not(.warn),
#opscheck-show-crit:checked~table tr.check:not(.crit),
#opscheck-show-problems:checked~table tbody.section:not(.has-warn):not(.has-crit),
#opscheck-show-warn:checked~table tbody.section:not(.has-warn),
#opscheck-show-crit:checked~table tbody.section:not(.has-crit){display:none}
span.warned,.warned .col-result{color:#b26a00}
</style>"""


_FILTERS = (("all", "all"), ("problems", "problems"), ("warn", "WARN"), ("crit", "CRIT"))


def state(entry: dict[str, Any]) -> str:
    """crit, warn, ok, notrun or skipped: what a check's entry counts as on the page."""
    outcome = entry.get("outcome", "error")
    if outcome == "not_run" or (outcome == "failed" and _POINTING.match(entry.get("reason") or "")):
        return "notrun"
    if outcome in ("failed", "error"):
        return "warn" if entry.get("verdict") == "WARN" else "crit"
    return {"warned": "warn", "passed": "ok", "skipped": "skipped"}.get(outcome, "crit")


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


def headline(entries: list[dict[str, Any]]) -> str:
    """``2 CRIT · 3 WARN · 41 OK · 4 not run · 6 skipped`` (zero counts left out, OK always)."""
    counts = Counter(state(e) for e in entries)
    parts = [
        f'<span class="{s}">{counts[s]} {WORDS[s]}</span>' for s in STATES if counts[s] or s == "ok"
    ]
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


def problems(entries: list[dict[str, Any]]) -> str:
    """One row per CRIT and WARN record (CRIT first); a down target's row says how many of its
    checks were not run."""
    not_run = Counter(e.get("target", "") for e in entries if state(e) == "notrun")
    told: set[str] = set()
    rows: list[tuple[int, str]] = []
    for entry in entries:
        kind = state(entry)
        if kind not in ("crit", "warn"):
            continue
        target = entry.get("target", "")
        title = entry.get("title") or entry.get("check_id", "")
        bad = [r for r in entry.get("records", []) if r.get("verdict") in ("CRIT", "WARN")]
        lines = [
            (
                r["verdict"].lower(),
                r.get("title") or title,
                r.get("measured", ""),
                r.get("threshold", ""),
                r.get("message", ""),
                change(r),
                bool(r.get("jump")),
            )
            for r in bad
        ] or [
            (
                kind,
                title,
                entry.get("measured", ""),
                entry.get("threshold", ""),
                _first_line(entry.get("reason") or entry.get("message", "")),
                "",
                False,
            )
        ]
        for verdict, name, measured, threshold, message, delta, jump in lines:
            if not_run[target] and target not in told:
                told.add(target)
                message = f"{message} — {not_run[target]} checks not run"
            classes = f"problem {verdict}" + (" jump" if jump else "")
            cells = (
                f'<td class="verdict">{WORDS[verdict]}</td><td class="target">{_e(target)}</td>'
                f'<td class="title">{_e(name)}</td><td class="measured">{_e(measured)}</td>'
                f'<td class="threshold">{_e(threshold)}</td>'
                f'<td class="message">{_e(message)}</td><td class="change">{_e(delta)}</td>'
            )
            rows.append((0 if verdict == "crit" else 1, f'<tr class="{classes}">{cells}</tr>'))
    if not rows:
        return '<p id="opscheck-problems" class="none ok">No problems: no CRIT, no WARN.</p>'
    head = "".join(
        f"<th>{h}</th>"
        for h in ("verdict", "target", "check", "measured", "threshold", "message", "change")
    )
    body = "".join(row for _, row in sorted(rows, key=lambda r: r[0]))
    return f'<table id="opscheck-problems"><tr>{head}</tr>{body}</table>'


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
    return ""


def checklist(entries: list[dict[str, Any]]) -> str:
    """The run as the runbook reads: one table body per section, one row per check, with a
    filter (all / problems / WARN / CRIT) of radio buttons and CSS that works without script."""
    sections: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        sections.setdefault(entry.get("section") or "Other checks", []).append(entry)
    bodies = []
    for section, items in sections.items():
        kinds = [state(e) for e in items]
        has = "".join(f" has-{k}" for k in ("warn", "crit") if k in kinds)
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
        for key, label in (
            ("all", "all"),
            ("problems", "problems"),
            ("warn", "WARN"),
            ("crit", "CRIT"),
        )
    )
    return (
        f'<section id="opscheck-checklist"><h2>Checklist by runbook section</h2>{radios}'
        f"<table>{''.join(bodies)}</table></section>"
    )


def top(document: dict[str, Any], run_facts: dict[str, str], archived: bool) -> str:
    """Style, headline, problems, facts and navigation: what comes before the trends."""
    entries = document.get("tests", [])
    return "".join((STYLE, headline(entries), problems(entries), facts(run_facts), nav(archived)))
