"""The report's first screen (opscheck/report_page.py): static HTML that reads without script.

Real runs of the host checks of this machine (``local://``), with thresholds that force WARN, and
an HTTP endpoint on a port nobody listens on for a target that is down.
"""

from __future__ import annotations

import html
import json
import re
import time
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from opscheck.report import PageChanged, amend_page

HOST = '[[host]]\nname = "me"\nuri = "local://"\ncpu_sample = "100ms"\n'
DOWN = '[[http]]\nname = "api"\nurl = "http://127.0.0.1:1/health"\nsamples = 1\n'
HOST_SUITE = ("suites/host",)
WARN_MEMORY = '[host.memory_used_pct]\nwarn = "0%"\n'


class Node:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag, self.attrs = tag, attrs
        self.children: list[Node] = []
        self.parts: list[Node | str] = []  # text and children in order

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def all(self) -> list[Node]:
        return [self, *(d for c in self.children for d in c.all())]

    def find(self, tag: str = "", cls: str = "", id: str = "") -> list[Node]:
        return [
            n
            for n in self.all()
            if (not tag or n.tag == tag)
            and (not cls or cls in n.classes)
            and (not id or n.attrs.get("id") == id)
        ]

    def words(self) -> str:
        texts = (p if isinstance(p, str) else p.words() for p in self.parts)
        return " ".join(" ".join(texts).split())


class Tree(HTMLParser):
    """The static page as the browser without script sees it (void elements closed)."""

    VOID = frozenset(("input", "br", "meta", "img", "link", "hr"))

    def __init__(self, text: str) -> None:
        super().__init__()
        self.root = Node("root", {})
        self.stack = [self.root]
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        self.stack[-1].parts.append(node)
        if tag not in self.VOID:
            self.stack.append(node)

    def handle_endtag(self, tag: str) -> None:
        while len(self.stack) > 1 and self.stack.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self.stack[-1].tag not in ("style", "script"):
            self.stack[-1].parts.append(data)


def _page(path: Path) -> tuple[Node, dict[str, Any], str]:
    """The prefix of the summary as a tree, pytest-html's JSON data, the whole text."""
    text = path.read_text()
    start = text.index('<div class="additional-summary prefix">')
    prefix = text[start : text.index('<p class="run-count">', start)]
    blob = re.search(r'data-jsonblob="([^"]*)"', text)
    assert blob
    return Tree(prefix).root, json.loads(html.unescape(blob.group(1))), text


def _one(root: Node, id: str) -> Node:
    (node,) = root.find(id=id)
    return node


def _run(suite, tmp_path: Path, inventory: str, thresholds: str, *args: str, paths=HOST_SUITE):
    report = tmp_path / "report.html"
    suite.run(inventory, thresholds, "--html", str(report), *args, paths=paths)
    return _page(report)


def test_healthy_run_headline_ok_only_and_run_facts(suite, tmp_path):
    root, data, text = _run(suite, tmp_path, HOST, "", "-k", "host_reachable")
    headline = _one(root, "opscheck-headline")
    assert [s.classes for s in headline.find("span")] == [{"ok"}]
    assert headline.words() == "1 OK"
    assert _one(root, "opscheck-problems").tag == "p"  # no table: nothing to list
    assert not root.find("tr", cls="problem")
    facts = {
        r.find("th")[0].words(): r.find("td")[0].words()
        for r in root.find("tr")
        if r in _one(root, "opscheck-facts").all()
    }
    assert facts["Schedule"] == "all" and facts["Selection"] == "-k 'host_reachable'"
    assert facts["opscheck version"] and facts["Runner host"] and facts["Inventory"]
    # No plugin versions: pytest-html's script-drawn Environment table is left empty (the
    # static facts above replace it) and its heading is gone.
    assert data["environment"] == {}
    assert "<h2>Environment</h2>" not in text
    nav = _one(root, "opscheck-nav")
    assert not nav.find(id="opscheck-index")  # not archived: no index to link to
    assert _one(nav, "opscheck-prev").words() == "no earlier report"
    assert _one(nav, "opscheck-next").words() == "no later report yet"
    # Checklist grouped by runbook section, titled by the test docstring.
    section = _one(root, "opscheck-checklist").find("tbody", cls="section")[0]
    assert section.find("th")[0].words().startswith('Runbook: "Check overall system status"')
    (row,) = section.find("tr", cls="check")
    assert row.classes == {"check", "ok"}
    assert row.find("td", cls="title")[0].words() == (
        "The host answers a command through its testinfra backend."
    )
    for key in ("all", "problems", "warn", "crit"):
        assert _one(root, f"opscheck-show-{key}").attrs["type"] == "radio"
    assert "There are still tests running" not in text


def test_warning_run_lists_the_warn_first_and_warned_is_an_outcome(suite, tmp_path):
    root, data, text = _run(
        suite, tmp_path, HOST, WARN_MEMORY, "-k", "memory_used or host_reachable"
    )
    assert _one(root, "opscheck-headline").words() == "1 WARN · 1 OK"
    (row,) = root.find("tr", cls="problem")
    assert row.classes == {"problem", "warn"}
    cells = {c.attrs["class"]: c.words() for c in row.find("td")}
    assert cells["verdict"] == "WARN" and cells["target"] == "me"
    assert cells["threshold"] == "warn > 0.0 %, crit > 85.0 %"
    assert cells["message"].startswith("me: ") and "> warn 0.0 %" in cells["message"]
    assert cells["change"] == "no history kept"  # not archived: no store
    # pytest-html's table: Warned with its own count, checkbox and filter.
    (memory,) = [t for i, t in data["tests"].items() if "memory_used" in i]
    assert memory[-1]["result"] == "Warned"
    assert re.search(r'data-test-result="warned"\s*>\s*<span class="warned">1 Warned', text)
    assert "    'passed',\n    'warned',\n" in text
    checks = _one(root, "opscheck-checklist").find("tr", cls="check")
    assert sorted(r.find("td", cls="verdict")[0].words() for r in checks) == ["OK", "WARN"]


def test_broken_run_one_problem_per_down_target_and_readable_skips(suite, tmp_path):
    root, data, text = _run(suite, tmp_path, DOWN, "", paths=("suites/http",))
    document = json.loads(suite.json_path.read_text())
    outcomes = [t["outcome"] for t in document["tests"]]
    pointing = [t for t in document["tests"] if "unreachable (see" in t.get("reason", "")]
    skipped = outcomes.count("skipped")
    assert pointing and skipped
    headline = _one(root, "opscheck-headline").words()
    assert headline == f"1 CRIT · 0 OK · {len(pointing)} not run · {skipped} skipped"
    (row,) = root.find("tr", cls="problem")
    assert row.classes == {"problem", "crit"}
    message = row.find("td", cls="message")[0].words()
    assert message.startswith("api: unreachable: GET http://127.0.0.1:1/health")
    assert message.endswith(f"— {len(pointing)} checks not run")
    notes = [r.find("td", cls="note")[0].words() for r in root.find("tr", cls="check")]
    assert notes.count("not run: api unreachable") == len(pointing)
    skips = [n for n in notes if n.startswith("skipped: ")]
    assert len(skips) == skipped and not any("(" in n and "'" in n for n in skips), skips
    # pytest-html's rows and logs say the skip in one line, not as a Python tuple.
    logs = [runs[-1]["log"] for runs in data["tests"].values() if runs[-1]["result"] == "Skipped"]
    assert logs and all(log.startswith("skipped: ") and "\n" not in log for log in logs)
    # ... and the down target's other checks as NotRun, counted apart from the one failure.
    results = [runs[-1]["result"] for runs in data["tests"].values()]
    assert results.count("NotRun") == len(pointing) and results.count("Failed") == 1
    assert re.search(
        rf'data-test-result="notrun"\s*>\s*<span class="notrun">{len(pointing)} Not', text
    )
    assert re.search(r'data-test-result="failed"\s*>\s*<span class="failed">1 Failed', text)


def test_second_archived_run_shows_the_change(suite, tmp_path):
    reports = tmp_path / "reports"
    args = ("--archive", "--reports-dir", str(reports), "-k", "memory_used")
    suite.run(HOST, WARN_MEMORY, *args, paths=("suites/host",))
    first = max(reports.glob("*/*.html"))
    root, _, _ = _page(first)
    change = root.find("tr", cls="problem")[0].find("td", cls="change")[0].words()
    assert change == "first run on record"
    assert _one(root, "opscheck-index").attrs["href"] == "../index.html"
    time.sleep(1.1)  # runs are ordered by their start second
    suite.run(HOST, WARN_MEMORY, *args, paths=("suites/host",))
    second = max(reports.glob("*/*.html"))
    assert second != first
    root, _, _ = _page(second)
    change = root.find("tr", cls="problem")[0].find("td", cls="change")[0].words()
    # A share changes in points (a relative "+3 %" of 4.4 % would read as 7.4 %).
    assert re.fullmatch(r"[+-]\d+\.\d pt \(was \d+\.\d %\)( — jump)?", change), change


def test_a_changed_pytest_html_page_fails_loudly():
    with pytest.raises(PageChanged, match="possibleFilters"):
        amend_page("<html>no app.js here</html>")
