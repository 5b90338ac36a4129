"""The archive as a log: ``reports/index.html`` and ``reports/YYYY-MM-DD/ops-log.md``.

Real archived runs of this machine's host checks (``local://``): a WARN run (memory above
``warn = "0%"``) and a CRIT run (disk above ``crit = "0%"``), plus an older day made from a real
run's JSON report, as the archive files it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from opscheck import archive_index
from tests_meta.test_reports import HOST_ONLY, INVENTORY, THRESHOLDS

REPO = Path(__file__).resolve().parents[1]


class Page(HTMLParser):
    """The index's links, day rows (cells with their class) and any script or external resource."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []
        self.rows: list[list[tuple[str, str]]] = []
        self.latest: list[str] = []
        self.forbidden: list[str] = []
        self._in_latest = False
        self._row: list[tuple[str, str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" or (tag in {"link", "img", "iframe"}) or "src" in a:
            self.forbidden.append(tag)
        if tag == "p" and a.get("class") == "latest":
            self._in_latest = True
        if tag == "tr":
            self._row = []
        if tag in {"td", "th"} and self._row is not None:
            self._row.append((tag, a.get("class") or ""))
        if tag == "a":
            href = a.get("href") or ""
            self.links.append(href)
            if self._in_latest:
                self.latest.append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag == "p":
            self._in_latest = False
        if tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text())
    return page


def archived_run(suite, root: Path, schedule: str, checks: str) -> Path:
    result = suite.run(
        INVENTORY,
        THRESHOLDS,
        "--archive",
        "--reports-dir",
        str(root),
        "-m",
        schedule,
        "-k",
        checks,
        paths=HOST_ONLY,
    )
    assert result.ret in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED), result.stdout.str()
    return max(root.glob(f"*/{schedule}-*.json"), key=lambda p: p.stat().st_mtime)


def test_index_and_day_log_over_two_days(suite, tmp_path):
    root = tmp_path / "reports"
    warn = archived_run(suite, root, "morning", "memory_used")
    day = warn.parent
    # An older day, filed as the archive files it, from this real run's report.
    old_day = root / "2020-01-02"
    old_day.mkdir()
    document = json.loads(warn.read_text())
    document["started"] = "2020-01-02T07:00:00+00:00"
    (old_day / "morning-070000.json").write_text(json.dumps(document))
    shutil.copy(warn.with_suffix(".html"), old_day / "morning-070000.html")
    # The operator writes in today's log between runs.
    log = day / "ops-log.md"
    assert "**WARN** host.memory_used_pct [me]: me: " in log.read_text()
    notes = "\n- 08:10 cleared /var/tmp on me; ticket OPS-42\n  trailing spaces kept   \n"
    log.write_text(log.read_text() + notes)
    above = "Shift: night team.\n\n"
    log.write_text(above + log.read_text())
    crit = archived_run(suite, root, "midday", "disk_used")
    assert crit.parent == day  # (a run across midnight would file it elsewhere: not here)

    text = log.read_text()
    assert text.startswith(above) and text.endswith(notes)  # the operator's text, byte for byte
    assert text.count(archive_index.BEGIN) == 1 and "## Operator actions and notes" in text
    assert re.search(r"\| \d\d:\d\d:\d\d \| morning \| WARN \|", text)
    assert re.search(r"\| \d\d:\d\d:\d\d \| midday \| CRIT \|", text)
    assert re.search(r"\*\*CRIT\*\* host.disk_used_pct \[me\]: me: / .* > crit 0.0 % \(limit", text)
    assert (old_day / "ops-log.md").exists() is False  # only the run's own day is regenerated

    page = parse(root / "index.html")
    assert page.forbidden == []  # static: no script, no external resource
    for href in page.links:
        assert "://" not in href and (root / href).is_file(), href
    assert f"{day.name}/ops-log.md" in page.links
    header, *days = page.rows
    assert [c for c in header if c[0] == "th"][1:] == [("th", ""), ("th", "")]  # midday, morning
    assert [len(r) for r in days] == [3, 3]  # newest day first: a row per day
    assert days[0][1:] == [("td", "CRIT"), ("td", "WARN")]
    assert days[1][1:] == [("td", "none"), ("td", "WARN")]
    assert page.latest == [
        crit.with_suffix(".html").relative_to(root).as_posix(),
        warn.with_suffix(".html").relative_to(root).as_posix(),
    ]
    # Rebuilt from the JSON reports alone, all days: the same index, and the old day's log.
    before = (root / "index.html").read_text()
    (root / "index.html").unlink()
    done = subprocess.run(
        [sys.executable, "-m", "opscheck.archive_index", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        check=True,
    )
    assert "index rebuilt" in done.stdout
    after = (root / "index.html").read_text()  # the old day now links its new day log
    assert after == before.replace(
        "<th>2020-01-02</th>", '<th><a href="2020-01-02/ops-log.md">2020-01-02</a></th>'
    )
    assert "| 07:00:00 | morning | WARN |" in (old_day / "ops-log.md").read_text()
    assert log.read_text() == text


def test_concurrent_rebuilds_leave_a_whole_index(tmp_path):
    root = tmp_path / "reports"
    for n in range(30):
        day = root / f"2021-03-{n + 1:02d}"
        day.mkdir(parents=True)
        summary = {"passed": 3, "warned": n % 2, "failed": int(n % 3 == 0), "error": 0}
        report = {"schedule": "morning", "started": f"{day.name}T07:00:00+00:00"}
        (day / "morning-070000.json").write_text(json.dumps({**report, "summary": summary}))
    code = "import sys, pathlib; from opscheck import archive_index as a; "
    code += "a.rebuild(pathlib.Path(sys.argv[1]))"
    writers = [
        subprocess.Popen([sys.executable, "-c", code, str(root)], cwd=REPO) for _ in range(6)
    ]
    while any(w.poll() is None for w in writers):
        index = root / "index.html"
        if index.exists():
            assert index.read_text().endswith("</html>\n")  # never a half-written file
    assert all(w.wait(timeout=120) == 0 for w in writers)
    assert len(parse(root / "index.html").rows) == 31
    assert not [p for p in root.rglob("*.partial")]  # no temporary file left
    for day in root.iterdir():
        if day.is_dir():
            assert (day / "ops-log.md").read_text().count(archive_index.END) == 1
