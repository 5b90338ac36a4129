"""``opscheck-merge``: one day's report from the reports of a run's shards.

    opscheck-merge                    # every run of today and yesterday in ./reports not merged yet
    opscheck-merge shards/            # the shard reports in a folder (a CI matrix's artifacts)
    opscheck-merge s0.json s1.json --reports-dir /srv/opscheck/reports

Each shard's JSON report (``--shard I/N``, see ``opscheck.shard``) says which shard of which run
it is. The merge refuses reports that do not belong together — another schedule, number of
shards, run id, inventory or thresholds (their SHA-256), other selected checks, another day (a run
id may cross midnight), the same shard twice without a run id — and requires every shard 0 … N-1
(``--partial`` merges without the missing ones, lists them, and exits 1). It joins the tests in
the order of the checks, recomputes the counts, and writes ``<schedule>-<HHMMSS>.{json,xml,html}``
under ``REPORTS_DIR/<day the run started>/`` as ``--archive`` does: a reserved name, each file
complete before it appears. The JSON follows opscheck/schema/report.schema.json, with ``shards``
listing every shard; the JUnit XML holds the shards' test cases, properties and all, in one suite;
the HTML is a static page of the merged records (pytest-html renders live test reports only) that
links to each shard's own pytest-html report.

Exit codes as opscheck's: 0 every check ran and none failed (warnings allowed), 1 a check failed
(or a shard is missing, with ``--partial``), 4 reports that cannot be read or do not belong
together (every problem on its own line), 5 the merged run checked nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import html
import itertools
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from opscheck import archive_index
from opscheck.report import (
    _VERDICT_STYLE,
    HELD,
    OUTCOMES,
    SCHEMA_VERSION,
    Archive,
    _locked_as,
    _take_if_dead,
    _write_atomic,
    by_category,
    counts,
    shown_verdict,
)
from opscheck.shard import file_sha256

USAGE_ERROR, FAILED, NOTHING = 4, 1, 5
_ARCHIVED = "*.shard-*-of-*.json"  # the names --archive gives a shard's JSON report
_DEF = re.compile(r"(?:async )?def (test_\w+)")


class Refused(Exception):
    """Reports that cannot be merged; one line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class Incomplete(Refused):
    """One run's reports, but not of every shard (yet)."""


@dataclass
class Part:
    """One shard's JSON report."""

    path: Path
    doc: dict[str, Any]

    @property
    def index(self) -> int:
        return int(self.doc["shard"]["index"])

    @property
    def count(self) -> int:
        return int(self.doc["shard"]["count"])

    @property
    def run_id(self) -> str:
        return str(self.doc.get("run_id", ""))

    @property
    def schedule(self) -> str:
        return str(self.doc["schedule"])

    @property
    def started(self) -> datetime:
        return _utc(self.doc["started"])

    @property
    def finished(self) -> datetime:
        return _utc(self.doc["finished"])

    @property
    def tests(self) -> list[dict[str, Any]]:
        return list(self.doc["tests"])

    def name(self) -> str:
        return f"{self.path.name} (shard {self.index}/{self.count})"


def _utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass
class Merged:
    """The merged report of one run, before and after it is written."""

    parts: list[Part]
    missing: list[int]
    document: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    archive: Archive | None = None

    def code(self, fail_on_warn: bool = False) -> int:
        summary = self.document["summary"]
        # not_run: checks of a down target, pytest failures (as their connectivity check is)
        if self.missing or summary["failed"] or summary["error"] or summary["not_run"]:
            return FAILED
        if fail_on_warn and summary["warned"]:
            return FAILED
        if not any(summary[o] for o in OUTCOMES if o != "skipped"):
            return NOTHING
        return 0

    def missing_lines(self) -> list[str]:
        """One problem line per shard left out (``--partial``): its targets were not checked."""
        count = self.parts[0].count
        return [
            f"CRIT shard {i}/{count} missing: its targets were not checked" for i in self.missing
        ]

    def describe(self) -> str:
        summary = self.document["summary"]
        rid = self.document.get("run_id")
        head = f"{self.document['schedule']} run" + (f" {rid}" if rid else "")
        cells = ", ".join(f"{summary[o]} {o.replace('_', ' ')}" for o in OUTCOMES)
        where = ""
        if self.archive:
            also = ".xml, .json" if self.archive.final("xml").exists() else ".json"
            where = f": {self.archive.final('html')} (and {also})"
        missing = "".join(f", shard {i}/{self.parts[0].count} MISSING" for i in self.missing)
        return f"{head}, {len(self.parts)} shards{missing}: {cells}{where}"


# -- reading ------------------------------------------------------------------------------------


def read(path: Path) -> Part:
    """A shard's JSON report, or ``Refused`` saying why it is not one."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise Refused([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Refused([f"{path}: not a JSON report: {exc}"]) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
        raise Refused([f"{path}: not an opscheck JSON report (no 'tests' list)"])
    if doc.get("schema_version") != SCHEMA_VERSION:
        raise Refused(
            [
                f"{path}: schema_version {doc.get('schema_version')!r}; this opscheck reads "
                f"{SCHEMA_VERSION}"
            ]
        )
    if "shards" in doc:
        raise Refused([f"{path}: already a merged report, not a shard's"])
    shard = doc.get("shard")
    if not isinstance(shard, dict):
        raise Refused([f"{path}: not a shard's report (no 'shard': it ran without --shard I/N)"])
    try:
        part = Part(path, doc)
        if not 0 <= part.index < part.count:
            raise ValueError(f"shard {part.index}/{part.count}")
        _ = (part.started, part.finished, part.schedule)  # these must parse
        for test in part.tests:
            if not isinstance(test, dict) or not isinstance(test.get("id"), str):
                raise ValueError(f"a test without an id: {test!r:.80}")
    except (KeyError, TypeError, ValueError) as exc:
        raise Refused([f"{path}: a damaged shard report: {exc}"]) from None
    return part


def _candidates(paths: Iterable[Path], names: str = "**/*.json") -> Iterator[Part]:
    """Files are read strictly; a folder gives the shard reports in it and below (of those
    ``names``), other files ignored."""
    for path in paths:
        if not path.is_dir():
            yield read(path)
            continue
        for file in sorted(path.glob(names)):
            try:
                yield read(file)
            except Refused:
                continue  # a merged report, an unsharded run's, anything else


# -- checking -----------------------------------------------------------------------------------


def _differ(parts: list[Part], what: str, value: Any) -> list[str]:
    values = {p.path: value(p) for p in parts}
    if len(set(values.values())) <= 1:
        return []
    shown = "; ".join(f"{p.name()}: {values[p.path]!r}" for p in parts)
    return [f"the reports are not of one run: different {what}: {shown}"]


def check(parts: list[Part], partial: bool) -> tuple[list[Part], list[int], list[str]]:
    """The reports of one run, one per shard, its missing shards and notes; ``Refused`` with every
    reason they do not make one run."""
    if not parts:
        raise Refused(["no shard report to merge (files written with --shard I/N)"])

    def shard(key: str) -> Any:
        return lambda part: part.doc["shard"].get(key)

    problems = [
        *_differ(parts, "number of shards", lambda p: p.count),
        *_differ(parts, "schedule", lambda p: p.schedule),
        *_differ(parts, "run id", lambda p: p.run_id),
        *_differ(parts, "inventory (SHA-256)", shard("inventory_sha256")),
        *_differ(parts, "thresholds (SHA-256)", shard("thresholds_sha256")),
        *_differ(parts, "selected checks (options or opscheck version)", shard("selected")),
    ]
    if not parts[0].run_id:
        problems += [
            f"{line}; a run id (--run-id) ties a run that crosses midnight together"
            for line in _differ(parts, "day", lambda p: p.started.date().isoformat())
        ]
    if problems:
        raise Refused(problems)
    notes: list[str] = []
    chosen: dict[int, Part] = {}
    for part in sorted(parts, key=lambda p: p.finished):
        earlier = chosen.get(part.index)
        if earlier is not None and not part.run_id:
            problems.append(
                f"shard {part.index}/{part.count} twice: {earlier.path.name} and "
                f"{part.path.name}: give each run its own --run-id, or name the reports to merge"
            )
        elif earlier is not None:  # the same run's shard again (a retried pod): the last counts
            notes.append(
                f"shard {part.index}/{part.count} twice in run {part.run_id}: "
                f"{part.path.name} finished last and counts, {earlier.path.name} does not"
            )
        chosen[part.index] = part
    count = parts[0].count
    missing = [i for i in range(count) if i not in chosen]
    seen: dict[str, int] = {}
    twice = [
        f"{test['id']} is in shard {other}/{count} and {part.index}/{count}: the shards did "
        "not split the same run"
        for part in chosen.values()
        for test in part.tests
        if (other := seen.setdefault(test["id"], part.index)) != part.index
    ]
    problems += twice[:3] + [f"… and {len(twice) - 3} more tests in two shards"] * (len(twice) > 3)
    if missing and not partial:
        shown = ", ".join(f"{i}/{count}" for i in missing)
        problems.append(
            f"shard {shown} missing: the targets of a missing shard were not checked; "
            "merge without it with --partial"
        )
        if len(problems) == 1:
            raise Incomplete(problems)
    if problems:
        raise Refused(problems)
    return [chosen[i] for i in sorted(chosen)], missing, notes


# -- merging ------------------------------------------------------------------------------------


def _ordered(parts: list[Part]) -> list[dict[str, Any]]:
    """The shards' tests in the order one run lists them: by file as pytest collects them, by
    each test function's line in it, each function's targets by shard.

    Where a suite's file is not in this checkout, the order of its functions comes from the
    shards themselves: each lists them in collection order, so a topological order of all the
    shards' lists restores it."""
    graph: dict[str, set[str]] = {}
    for part in parts:
        names = list(dict.fromkeys(str(t["id"]).split("[")[0] for t in part.tests))
        for name in names:
            graph.setdefault(name, set())
        for before, after in itertools.pairwise(names):
            graph[after].add(before)
    try:
        rank = {name: i for i, name in enumerate(TopologicalSorter(graph).static_order())}
    except CycleError:  # shards of different collection orders (--ff ...): keep shard order
        rank = {}
    lines = _definition_lines()

    def key(test_id: str) -> tuple[tuple[str, ...], int]:
        function = test_id.split("[")[0]
        path, _, name = function.partition("::")
        line = lines(path).get(name)
        return tuple(path.split("/")), line if line is not None else rank.get(function, 0)

    numbered = [
        (key(str(test["id"])), part.index, position, test)
        for part in parts
        for position, test in enumerate(part.tests)
    ]
    return [test for *_, test in sorted(numbered, key=lambda entry: entry[:3])]


def _definition_lines() -> Callable[[str], dict[str, int]]:
    """``path`` (relative to opscheck's checkout) -> the line of each ``def test_…`` in it."""
    from opscheck.cli import checkout

    root, known = checkout(), {}

    def lines(path: str) -> dict[str, int]:
        if path not in known:
            try:
                source = (root / path).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                source = []
            known[path] = {
                match[1]: number
                for number, text in enumerate(source)
                if (match := _DEF.match(text))
            }
        return known[path]

    return lines


def _summary(tests: list[dict[str, Any]]) -> dict[str, int]:
    total = counts(tests)
    return {o: total[o] for o in OUTCOMES}


# A waiver the shards saw differently: what it did in the run, best first (a waiver of a target
# of shard 1 matches nothing on shard 0, where it is "stale"; a check none of shard 0's targets
# has is "not_checked" there). Its note goes with the status kept.
_WAIVER_RANK = ("applied", "expired", "unused", "stale", "not_checked")


def _waivers_and_flaky(parts: list[Part]) -> dict[str, list[dict[str, Any]]]:
    """The shards' ``waivers`` (one per waiver, with what it did in the whole run) and their
    ``flaky_history`` call-outs (each target's on its shard); keys left out when no shard has
    them."""
    fields: dict[str, list[dict[str, Any]]] = {}
    waivers: dict[str, dict[str, Any]] = {}
    for part in parts:
        for waiver in part.doc.get("waivers") or []:
            what = {k: v for k, v in waiver.items() if k not in ("status", "note")}
            key = json.dumps(what, sort_keys=True)
            kept = waivers.setdefault(key, waiver)
            rank = _WAIVER_RANK.index
            status, was = waiver.get("status", "stale"), kept.get("status", "stale")
            if status in _WAIVER_RANK and (was not in _WAIVER_RANK or rank(status) < rank(was)):
                waivers[key] = waiver
    if any("waivers" in p.doc for p in parts):
        fields["waivers"] = list(waivers.values())
    if any("flaky_history" in p.doc for p in parts):
        seen: dict[str, dict[str, Any]] = {}
        for part in parts:
            for callout in part.doc.get("flaky_history") or []:
                seen.setdefault(json.dumps(callout, sort_keys=True), callout)
        fields["flaky_history"] = list(seen.values())
    return fields


def merge(parts: list[Part], missing: list[int], notes: list[str]) -> Merged:
    """The run's JSON report from its shards' (already ``check``-ed)."""
    tests = _ordered(parts)
    first = parts[0]
    document: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "started": min(p.started for p in parts).isoformat(timespec="seconds"),
        "finished": max(p.finished for p in parts).isoformat(timespec="seconds"),
        "schedule": first.schedule,
        "inventory": first.doc.get("inventory", ""),
        "thresholds": first.doc.get("thresholds", ""),
        "summary": _summary(tests),
        "by_category": {c: dict(n) for c, n in by_category(tests).items()},
        "tests": tests,
    }
    if first.run_id:
        document["run_id"] = first.run_id
    document.update(_waivers_and_flaky(parts))
    document["shards"] = [
        {
            **p.doc["shard"],
            "tests": len(p.tests),
            "summary": _summary(p.tests),
            "started": p.doc["started"],
            "finished": p.doc["finished"],
            "file": str(p.path),
        }
        for p in parts
    ]
    selected = first.doc["shard"].get("selected")
    if selected is not None and len(tests) != selected:
        notes.append(
            f"the shards reported {len(tests)} of the run's {selected} selected checks "
            "(a shard stopped early: -x, --maxfail, interrupted?)"
        )
    return Merged(parts, missing, document, notes)


def _case_key(case: ET.Element) -> str:
    return f"{case.get('file')}::{case.get('name')}"


def _one_warnings_case(cases: list[ET.Element], totals: dict[str, int]) -> list[ET.Element]:
    """Each shard's ``--junit-warnings`` case (opscheck.junit) joined into one: viewers keep
    one case of a name (GitLab the first), which would show one shard's warnings only. The
    joined case is a failure if one was, else skipped if one was (listing them all)."""
    from opscheck.junit import CLASSNAME, NAME

    own = [c for c in cases if c.get("classname") == CLASSNAME and c.get("name") == NAME]
    if len(own) < 2:
        return cases
    tags = {"failure": "failures", "skipped": "skipped"}
    joined = ET.Element("testcase", own[0].attrib)
    found: dict[str, list[ET.Element]] = {}
    for case in own:
        totals["tests"] -= 1
        for child in case:
            found.setdefault(child.tag, []).append(child)
            if child.tag in tags:
                totals[tags[child.tag]] -= 1
    totals["tests"] += 1
    properties = ET.SubElement(joined, "properties")
    for node in found.get("properties", []):
        properties.extend(node)
    tag = next((t for t in tags if t in found), None)
    if tag is not None:
        messages = [n.get("message", "") for n in found[tag]]
        node = ET.SubElement(joined, tag, type=found[tag][0].get("type", ""))
        node.set("message", "; ".join(m for m in messages if m))
        node.text = "\n".join(n.text or "" for n in found[tag] if n.text)
        totals[tags[tag]] += 1
    out = ET.SubElement(joined, "system-out")
    texts = [n.text for n in found.get("system-out", []) if n.text]
    listed = [t for t in texts if not t.startswith("no WARN")]
    out.text = "\n".join(listed) if listed else (texts[0] if texts else "")
    first = cases.index(own[0])
    rest = [c for c in cases if c not in own]
    return [*rest[:first], joined, *rest[first:]]


def junit(merged: Merged) -> str | None:
    """The shards' JUnit XML (beside their JSON, same name) as one suite, in the tests' order;
    ``None`` (and a note) when a shard has none."""
    cases: list[ET.Element] = []
    totals = dict.fromkeys(("tests", "errors", "failures", "skipped"), 0)
    seconds, stamps, hosts = 0.0, [], []
    for part in merged.parts:
        path = part.path.with_suffix(".xml")
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            merged.notes.append(f"no merged JUnit XML: {path}: {exc}")
            return None
        for suite in root.iter("testsuite"):
            for key in totals:
                totals[key] += int(suite.get(key, "0"))
            seconds = max(seconds, float(suite.get("time", "0")))
            stamps.append(suite.get("timestamp", ""))
            hosts.append(suite.get("hostname", ""))
            cases += suite.findall("testcase")
    cases = _one_warnings_case(cases, totals)
    order = {str(t["id"]): i for i, t in enumerate(merged.document["tests"])}
    cases.sort(key=lambda case: order.get(_case_key(case), len(order)))
    suites = ET.Element("testsuites", name="pytest tests")
    attributes = {
        "name": "opscheck",
        **{k: str(v) for k, v in totals.items()},
        "time": f"{seconds:.3f}",
        "timestamp": min((s for s in stamps if s), default=""),
        "hostname": " ".join(dict.fromkeys(h for h in hosts if h)),
    }
    suite = ET.SubElement(suites, "testsuite", attributes)
    properties = ET.SubElement(suite, "properties")
    facts = {"run_id": merged.document.get("run_id", ""), "shards": str(merged.parts[0].count)}
    if merged.missing:
        facts["missing_shards"] = " ".join(str(i) for i in merged.missing)
    for name, value in facts.items():
        if value:
            ET.SubElement(properties, "property", name=name, value=value)
    suite.extend(cases)
    return '<?xml version="1.0" encoding="utf-8"?>' + ET.tostring(suites, encoding="unicode")


def _where(target: Path, folder: Path, uri: bool = False) -> str:
    """A shard's file as the merged report in ``folder`` names it: its name when beside it."""
    if target.parent.resolve() == folder.resolve():
        return target.name
    return target.resolve().as_uri() if uri else str(target.resolve())


_STYLE = """body{font-family:Helvetica,Arial,sans-serif;font-size:14px;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 7px;
text-align:left;vertical-align:top}th{background:#f2f2f2}.detail{white-space:pre-wrap;color:#555}
.failed,.error{color:#c62828;font-weight:bold}.warned{color:#b26a00;font-weight:bold}
.flaky{color:#6a1b9a;font-weight:bold}.waived{color:#1565c0;font-weight:bold}
.passed{color:#2e7d32}.skipped,.not_run{color:#777}"""


def page(merged: Merged, folder: Path) -> str:
    """A static HTML page of the merged run: its shards, the checklist by category, every test."""
    doc, e = merged.document, html.escape
    started = datetime.fromisoformat(doc["started"])
    title = f"opscheck {doc['schedule']} {started:%Y-%m-%d %H:%M} UTC"
    count = merged.parts[0].count
    rid = f", run {e(doc['run_id'])}" if doc.get("run_id") else ""
    head = "".join(f"<th>{o}</th>" for o in OUTCOMES)
    shards = []
    for entry, part in zip(doc["shards"], merged.parts, strict=True):
        report = part.path.with_suffix(".html")
        link = (
            f'<a href="{e(_where(report, folder, uri=True))}">report</a>'
            if report.is_file()
            else ""
        )
        cells = "".join(f"<td>{entry['summary'][o]}</td>" for o in OUTCOMES)
        targets = entry["targets"] or "no target"
        shards.append(
            f"<tr><td>{entry['index']}/{count}</td><td>{targets}</td><td>{entry['tests']}</td>"
            f"{cells}<td>{e(entry['started'])}</td><td>{e(entry['finished'])}</td>"
            f"<td>{link}</td></tr>"
        )
    for index in merged.missing:
        shards.append(
            f'<tr><td>{index}/{count}</td><td colspan="{len(OUTCOMES) + 5}" class="failed">'
            "MISSING: its targets were not checked</td></tr>"
        )
    categories = "".join(
        f"<tr><td>{e(c)}</td>" + "".join(f"<td>{n.get(o, 0)}</td>" for o in OUTCOMES) + "</tr>"
        for c, n in doc["by_category"].items()
    )
    rows = []
    for test in doc["tests"]:
        outcome, verdict = test.get("outcome", "error"), shown_verdict(test)
        # FLAKY: both values and its call-out; WAIVED: the waiver beside what was measured.
        marks = (test.get("flaky"), test.get("flaky_history"), test.get("waived"))
        say = "\n".join(t for t in (test.get("message") or test.get("reason") or "", *marks) if t)
        detail = "\n".join(t for t in (say, test.get("detail", "")) if t)
        rows.append(
            f'<tr><td class="{e(outcome)}">{e(outcome)}</td><td>{e(test["id"])}</td>'
            f"<td>{e(test.get('target', ''))}</td><td>{e(test.get('measured', ''))}</td>"
            f"<td>{e(test.get('threshold', ''))}</td>"
            f'<td style="{_VERDICT_STYLE.get(verdict, "")}">{e(verdict)}</td>'
            f"<td>{test.get('duration', 0):.2f} s</td></tr>"
        )
        if detail:
            rows.append(f'<tr><td></td><td colspan="6" class="detail">{e(detail)}</td></tr>')
    summary = ", ".join(f"{doc['summary'][o]} {o.replace('_', ' ')}" for o in OUTCOMES)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title><style>{_STYLE}</style>
</head><body><h1>{e(title)}</h1>
<p>Merged from {len(merged.parts)} of {count} shards{rid}: {e(summary)}.</p>
<h2>Shards</h2><table id="opscheck-shards"><tr><th>shard</th><th>targets</th><th>tests</th>
{head}<th>started</th><th>finished</th><th>pytest-html</th></tr>{"".join(shards)}</table>
<h2>Checklist by category</h2><table id="opscheck-categories"><tr><th>category</th>{head}</tr>
{categories}</table>
<h2>Results</h2><table id="results-table"><tr><th>Result</th><th>Test</th><th>Target</th>
<th>Measured</th><th>Threshold</th><th>Verdict</th><th>Duration</th></tr>{"".join(rows)}
</table></body></html>
"""


# -- writing ------------------------------------------------------------------------------------


def _marker(root: Path, parts: list[Part]) -> Path:
    """The file that says a run is merged, in the folder of the day it started."""
    started = min(p.started for p in parts).astimezone(UTC)
    key = parts[0].run_id or "|".join(sorted(str(p.path.resolve()) for p in parts))
    digest = hashlib.sha256(f"{parts[0].schedule}|{key}".encode()).hexdigest()[:16]
    return root / f"{started:%Y-%m-%d}" / f".merged-{digest}"


def write(merged: Merged, root: Path) -> Merged:
    """File the merged reports under ``root/<day the run started>/`` as ``--archive`` does."""
    started = min(p.started for p in merged.parts).astimezone(UTC)
    archive = Archive(root, merged.document["schedule"], when=started)
    try:
        for entry, part in zip(merged.document["shards"], merged.parts, strict=True):
            entry["file"] = _where(part.path, archive.day)
        xml = junit(merged)
        if xml is not None:
            archive.partial("xml").write_text(xml, encoding="utf-8")
        archive.partial("html").write_text(page(merged, archive.day), encoding="utf-8")
        _write_atomic(archive.final("json"), json.dumps(merged.document, indent=2))
        archive.publish()
    except BaseException:
        archive.discard()
        raise
    merged.archive = archive
    with contextlib.suppress(OSError):  # the index and day log (opscheck/archive_index.py)
        archive_index.rebuild(root, {archive.day.name})
    return merged


def _claim(marker: Path) -> tuple[int, Path] | None:
    """Take a run's merge for this process: its ``.merging-`` file, created and locked (the lock
    dies with the process: one killed mid-merge leaves a claim the next merger takes over).
    None when the run is merged (``marker``) or another live process is merging it."""
    lock = marker.with_name(marker.name.replace(".merged-", ".merging-", 1))
    marker.parent.mkdir(parents=True, exist_ok=True)
    fd: int | None = None
    while fd is None and not marker.exists():
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            fd = _take_if_dead(lock)  # None: a live process merges it
            if fd is None:
                return None
            break
        if not _locked_as(fd, lock, wait=True):
            os.close(fd)  # swept in the instant before it was locked: again
            fd = None
    if fd is None:
        return None
    HELD.add(lock)
    if marker.exists():  # merged meanwhile
        _release(fd, lock)
        return None
    return fd, lock


def _release(fd: int, lock: Path) -> None:
    lock.unlink(missing_ok=True)  # while still locked: no one else can take it meanwhile
    os.close(fd)
    HELD.discard(lock)


def _mark_merged(marker: Path) -> None:
    marker.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(marker, os.O_CREAT | os.O_WRONLY, 0o644))


def _merge_once(
    root: Path, parts: list[Part], missing: list[int], notes: list[str]
) -> Merged | None:
    """Merge and write a run unless another process has or is doing it (``None``); the marker,
    made once the reports are written, keeps a run from being merged twice."""
    marker = _marker(root, parts)
    claim = _claim(marker)
    if claim is None:
        return None
    try:
        merged = write(merge(parts, missing, notes), root)
        _mark_merged(marker)
        return merged
    finally:
        _release(*claim)


# -- the last shard of a run ---------------------------------------------------------------------


def _archived(day: Path) -> list[Path]:
    """A day's folder of the archive and the day's before, where they exist: the shards of a run
    may start on either side of midnight."""
    try:
        before = datetime.strptime(day.name, "%Y-%m-%d") - timedelta(days=1)
    except ValueError:
        return [day]
    return [f for f in (day.parent / f"{before:%Y-%m-%d}", day) if f.is_dir()]


def when_complete(root: Path, report: Path, run_id: str) -> tuple[list[str], Merged | None]:
    """Called by a shard that archived ``report``: merge its run once every shard is in.

    Each shard writes its report before it looks, so the last to finish sees them all; the
    marker file lets one shard merge, once. The lines to show, and the merged run when this
    shard merged it (it then sends the run's notifications and end heartbeat)."""
    try:
        mine = read(report)
        parts = [
            p
            for p in _candidates(_archived(report.parent), f"*.shard-*-of-{mine.count}.json")
            if p.run_id == run_id and p.schedule == mine.schedule
        ]
        indexes = {p.index for p in parts if p.count == mine.count}
        waiting = [f"{i}/{mine.count}" for i in range(mine.count) if i not in indexes]
        if waiting:
            shown = ", ".join(waiting)
            return [f"run {run_id}: waiting for shard {shown} (the last to finish merges)"], None
        merged = _merge_once(root, *check(parts, partial=False))
    except Refused as refused:
        lines = [f"run {run_id}: cannot merge its shards: {line}" for line in refused.problems]
        return lines, None
    except OSError as exc:
        return [f"run {run_id}: cannot write its merged report: {exc}"], None
    if merged is None:
        return [], None  # another shard of the run merged it
    return [*merged.notes, f"merged {merged.describe()}"], merged


# -- the command --------------------------------------------------------------------------------


def _pending(root: Path, args: argparse.Namespace) -> tuple[list[Merged], list[str], int]:
    """Without paths: every run of today and yesterday in ``root`` not merged yet."""
    today = root / f"{datetime.now(UTC):%Y-%m-%d}"
    found = [p for p in _candidates(_archived(today), _ARCHIVED) if _wanted(p, args)]
    runs: dict[tuple[Any, ...], list[Part]] = {}
    for part in found:
        key = (part.run_id or part.started.date(), part.schedule, part.count)
        runs.setdefault(key, []).append(part)
    done: list[Merged] = []
    lines: list[str] = []
    code = 0
    for parts in runs.values():
        label = f"{parts[0].schedule} run" + (f" {parts[0].run_id}" if parts[0].run_id else "")
        try:
            chosen, missing, notes = check(parts, args.partial)
        except Refused as refused:
            lines += [f"{label}: {line}" for line in refused.problems]
            code = max(code, FAILED if isinstance(refused, Incomplete) else USAGE_ERROR)
            continue
        merged = _merge_once(root, chosen, missing, notes)
        if merged is not None:  # else merged before
            done.append(merged)
    if not done and not lines:
        lines.append(f"nothing to merge in {root}: no sharded run of today or yesterday waits")
    return done, lines, code


def _wanted(part: Part, args: argparse.Namespace) -> bool:
    return (not args.run_id or part.run_id == args.run_id) and (
        not args.schedule or part.schedule == args.schedule
    )


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="opscheck-merge",
        description="Merge the reports of a run's shards (--shard I/N) into one day's report.",
    )
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="shard JSON reports, or folders holding them at any depth (their .xml and .html "
        "beside them); "
        "default: every run of today and yesterday in REPORTS_DIR not merged yet",
    )
    parser.add_argument(
        "--reports-dir",
        type=Path,
        default=Path(os.environ.get("OPSCHECK_REPORTS_DIR") or "reports"),
        help="where the merged reports go, in YYYY-MM-DD/ (default: $OPSCHECK_REPORTS_DIR, "
        "else ./reports)",
    )
    parser.add_argument("--run-id", help="merge only the shards of this run")
    parser.add_argument("--schedule", help="merge only the shards of this schedule")
    parser.add_argument(
        "--partial", action="store_true", help="merge even with shards missing (exit code 1)"
    )
    parser.add_argument("--fail-on-warn", action="store_true", help="a WARN makes exit code 1")
    parser.add_argument(
        "--inventory",
        type=Path,
        help="the run's inventory, for its [settings.notify] and [settings.heartbeat]: the merge "
        "sends the run's notifications and end ping (default: $OPSCHECK_INVENTORY, else "
        "./inventory.toml when there is one)",
    )
    parser.add_argument(
        "--no-notify", action="store_true", help="send no notification and no heartbeat ping"
    )
    return parser.parse_args(argv)


def _announcer(args: argparse.Namespace) -> tuple[Callable[[Merged], None] | None, list[str]]:
    """What sends a merged run's notifications and end ping, as ``[settings.notify]`` and
    ``[settings.heartbeat]`` of the inventory say (their variables read now, as a run reads them
    at its start); else ``None``. The second item: the mistakes, one line each."""
    given = args.inventory or os.environ.get("OPSCHECK_INVENTORY")
    source = "--inventory" if args.inventory else "$OPSCHECK_INVENTORY"
    path = Path(given) if given else Path("inventory.toml")
    if args.no_notify:
        return None, []
    if given and not path.is_file():
        return None, [f"{source}: {given}: no such file"]
    if not path.is_file():
        return None, []
    from opscheck import heartbeat, notify, redaction
    from opscheck.config import ConfigError
    from opscheck.config.loading import load_settings

    try:
        settings, secrets = load_settings(path)
    except ConfigError as error:
        return None, str(error).splitlines()
    redaction.register(secrets)
    found, problems = notify.read_secrets(settings, path.name, secrets)
    if problems or (settings.notify is None and settings.heartbeat is None):
        return None, problems

    def say(text: str, red: bool = True) -> None:
        text = redaction.redact(text).removeprefix("opscheck: ")
        print(f"opscheck-merge: {text}", file=sys.stderr if red else sys.stdout)

    digest = file_sha256(path)

    def announce(merged: Merged) -> None:
        document = merged.document
        schedule = str(document.get("schedule", ""))
        if merged.parts[0].doc["shard"].get("inventory_sha256") not in ("", None, digest):
            print(
                f"opscheck-merge: note: {path} is not the inventory the shards ran with (its "
                "SHA-256 differs): its [settings] say where this run's notification goes"
            )
        if settings.notify is not None:
            plan = notify._Plan(settings.notify, found, schedule)
            notify.notify_merged(plan, merged, args.fail_on_warn, say)
        if settings.heartbeat is not None:
            url = found["heartbeat", "url_env"]
            secrets.update(heartbeat.url_secrets(url))
            run = f"{schedule} {document['run_id']}" if document.get("run_id") else ""
            beat = heartbeat.Heartbeat(url, settings.heartbeat, run)
            body = heartbeat.body_of(document, merged.archive, merged.missing_lines())
            beat.finish(merged.code(args.fail_on_warn), body)
            for line in beat.problems:
                say(line)

    return announce, []


def run(argv: list[str]) -> int:
    """``opscheck-merge`` with these arguments; the exit code."""
    args = _arguments(argv)
    announce, mistakes = _announcer(args)
    if mistakes:  # before anything is merged, as a run stops before its checks
        for line in [*mistakes, "(--no-notify merges without notifying)"]:
            print(f"opscheck-merge: {line}", file=sys.stderr)
        return USAGE_ERROR
    lines: list[str] = []
    code = 0
    try:
        if args.paths:
            parts = [p for p in _candidates(args.paths) if _wanted(p, args)]
            chosen, missing, notes = check(parts, args.partial)
            merged = [write(merge(chosen, missing, notes), args.reports_dir)]
            _mark_merged(_marker(args.reports_dir, chosen))  # a later run without paths skips it
        else:
            merged, lines, code = _pending(args.reports_dir, args)
    except Refused as refused:
        for line in refused.problems:
            print(f"opscheck-merge: {line}", file=sys.stderr)
        return USAGE_ERROR
    for line in lines:
        print(f"opscheck-merge: {line}", file=sys.stderr if code else sys.stdout)
    for run_ in merged:
        for note in run_.notes:
            print(f"opscheck-merge: note: {note}")
        print(f"opscheck-merge: {run_.describe()}")
        if run_.code(args.fail_on_warn) == NOTHING:
            print("opscheck-merge: nothing was checked: every check of the run was skipped")
        if announce is not None:
            announce(run_)
    return max([code, *(m.code(args.fail_on_warn) for m in merged)], key=_severity)


def _severity(code: int) -> int:
    """Which exit code wins when several runs are merged: a refusal, a failure, nothing checked."""
    return {USAGE_ERROR: 3, FAILED: 2, NOTHING: 1}.get(code, 0)


def main() -> None:
    sys.exit(run(sys.argv[1:]))
