"""The archive as a log: ``reports/index.html`` and ``reports/YYYY-MM-DD/ops-log.md``.

Real archived runs of this machine's host checks (``local://``): a WARN run (memory above
``warn = "0%"``) and a CRIT run (disk above ``crit = "0%"``), plus an older day made from a real
run's JSON report, as the archive files it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from opscheck import archive_index, history
from opscheck.testbed.demo import file_as_yesterday
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


# A report page's links as the report page (opscheck/report.py) writes its placeholders.
PLACEHOLDERS = (
    '<nav id="opscheck-nav"><a id="opscheck-index" href="../index.html">index</a> '
    '<span id="opscheck-prev">no earlier report</span> '
    '<span id="opscheck-next">no later report yet</span></nav>'
)
PAGE = f"<!DOCTYPE html>\n<html><body>{PLACEHOLDERS}<p>{'x' * 200_000}</p></body></html>\n"


def links(page: Path) -> dict[str, tuple[str | None, bool]]:
    """The page's previous/next: (href or None while a placeholder, whether the target exists)."""
    found = {}
    text = page.read_text()
    for name in ("opscheck-prev", "opscheck-next"):
        m = re.search(rf'<a id="{name}" href="([^"]*)">[^<]*</a>', text)
        href = m[1] if m else None
        found[name] = (href, href is not None and (page.parent / href).is_file())
        if m is None:
            assert f'<span id="{name}">' in text
    return found


def with_placeholders(page: Path) -> None:
    """Give a real report page the link placeholders, when it has none of its own yet."""
    text = page.read_text()
    if 'id="opscheck-prev"' not in text:
        page.write_text(text.replace("<body>", f"<body>{PLACEHOLDERS}", 1))


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
        (day / "morning-070000.html").write_text(PAGE)
    code = "import sys, pathlib; from opscheck import archive_index as a; "
    code += "a.rebuild(pathlib.Path(sys.argv[1]))"
    writers = [
        subprocess.Popen([sys.executable, "-c", code, str(root)], cwd=REPO) for _ in range(6)
    ]
    pages = sorted(root.glob("*/morning-070000.html"))
    while any(w.poll() is None for w in writers):
        index = root / "index.html"
        if index.exists():
            assert index.read_text().endswith("</html>\n")  # never a half-written file
        for page in pages[::7]:
            assert page.read_text().endswith("</html>\n")
    assert all(w.wait(timeout=120) == 0 for w in writers)
    assert len(parse(root / "index.html").rows) == 31
    assert not [p for p in root.rglob("*.partial")]  # no temporary file left
    for before, page, after in zip(pages, pages[1:], pages[2:], strict=False):
        assert links(page) == {
            "opscheck-prev": (f"../{before.parent.name}/morning-070000.html", True),
            "opscheck-next": (f"../{after.parent.name}/morning-070000.html", True),
        }
    assert links(pages[0])["opscheck-prev"] == (None, False)  # still "no earlier report"
    assert links(pages[-1])["opscheck-next"] == (None, False)
    for day in root.iterdir():
        if day.is_dir():
            assert (day / "ops-log.md").read_text().count(archive_index.END) == 1


def _pages(root: Path) -> dict[Path, tuple[bytes, int, int]]:
    return {
        p: (p.read_bytes(), p.stat().st_ino, p.stat().st_mtime_ns) for p in root.glob("*/*.html")
    }


def test_reports_link_the_previous_and_next_report_of_their_schedule(suite, tmp_path):
    root = tmp_path / "reports"
    a = archived_run(suite, root, "morning", "memory_used").with_suffix(".html")
    today = a.parent.name
    with_placeholders(a)  # (the report page's own, once it has them)
    # Two older days filed as the archive files them, from this real run's report; the oldest
    # page is an older version's: no placeholders.
    for day, placeholders in (("2020-01-01", False), ("2020-01-02", True)):
        document = json.loads(a.with_suffix(".json").read_text())
        document["started"] = f"{day}T07:00:00+00:00"
        (root / day).mkdir()
        (root / day / "morning-070000.json").write_text(json.dumps(document))
        text = a.read_text()
        if not placeholders:
            text = re.sub(r'<(span|a) id="opscheck-(prev|next)"[^>]*>[^<]*</\1>', "", text)
        (root / day / "morning-070000.html").write_text(text)
    old, older = root / "2020-01-02/morning-070000.html", root / "2020-01-01/morning-070000.html"
    untouched = older.read_bytes()
    m = archived_run(suite, root, "midday", "disk_used").with_suffix(".html")
    with_placeholders(m)
    b = archived_run(suite, root, "morning", "memory_used").with_suffix(".html")
    with_placeholders(b)
    archive_index.rebuild(root, {today})  # what each archived run does for its day

    assert links(a) == {
        "opscheck-prev": ("../2020-01-02/morning-070000.html", True),
        "opscheck-next": (f"../{today}/{b.name}", True),
    }
    assert links(b) == {
        "opscheck-prev": (f"../{today}/{a.name}", True),
        "opscheck-next": (None, False),
    }
    assert links(m) == {"opscheck-prev": (None, False), "opscheck-next": (None, False)}  # midday
    assert links(old)["opscheck-next"] == (f"../{today}/{a.name}", True)
    assert links(old)["opscheck-prev"] == (None, False)  # 2020-01-01 was not rebuilt
    assert '">← morning 2020-01-02 07:00</a>' in a.read_text()
    assert f'">morning {today} {a.stem[-6:-4]}:{a.stem[-4:-2]} →</a>' in old.read_text()

    archive_index.rebuild(root)  # every day: the old days link too, the older version's page not
    assert links(old)["opscheck-prev"] == ("../2020-01-01/morning-070000.html", True)
    assert older.read_bytes() == untouched
    # Again, for a day and for all: nothing rewritten (same bytes, same file, same mtime).
    before = _pages(root)
    archive_index.rebuild(root, {today})
    archive_index.rebuild(root)
    assert _pages(root) == before
    assert not list(root.rglob("*.partial"))


HOLD_PARTIAL = """
import os, secrets, sys, time, pathlib
from opscheck.report import _create_locked
path = pathlib.Path(sys.argv[1])
fd, partial = _create_locked(
    lambda: path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
)
os.write(fd, b"half a file")
print(partial, flush=True)
time.sleep(600)
"""


def _writer(path: Path) -> tuple[subprocess.Popen[str], Path]:
    """A real writer of ``path`` holding its partial file, stopped before it renames it."""
    writer = subprocess.Popen(
        [sys.executable, "-c", HOLD_PARTIAL, str(path)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    return writer, Path(writer.stdout.readline().strip())


def test_partials_of_killed_writers_are_swept(tmp_path):
    root = tmp_path / "reports"
    day = root / "2021-03-01"
    day.mkdir(parents=True)
    summary = {"passed": 3, "warned": 0, "failed": 0, "error": 0, "skipped": 0}
    report = {"schedule": "morning", "started": "2021-03-01T07:00:00+00:00", "summary": summary}
    (day / "morning-070000.json").write_text(json.dumps(report))
    killed, killed_partial = _writer(day / "ops-log.md")
    live, live_partial = _writer(root / "index.html")
    try:
        os.kill(killed.pid, signal.SIGKILL)
        killed.wait(timeout=30)
        # What older versions' killed writers left (tempfile's names, never locked).
        legacy = [day / ".ops-log.md.k2j4h5g6.partial", root / ".index.html.a_b9c8d7.partial"]
        for path in legacy:
            path.write_text("half")
        archive_index.rebuild(root)
        assert not killed_partial.exists() and not any(p.exists() for p in legacy)
        assert live_partial.exists()  # its writer still lives: not swept
        assert (day / "ops-log.md").read_text().count(archive_index.END) == 1
    finally:
        live.kill()
        live.wait(timeout=30)
    archive_index.rebuild(root)
    assert not list(root.rglob("*.partial"))


def test_an_all_skipped_run_is_nothing_checked_not_ok(suite, tmp_path):
    """`-m "morning and postgres"` without a [[postgres]] target skips everything (exit 5): the
    index and the day log say "nothing checked", in grey, not OK in green."""
    root = tmp_path / "reports"
    result = suite.run(
        INVENTORY, "", "--archive", "--reports-dir", str(root), "-m", "morning and postgres"
    )
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    (run,) = root.glob("*/*.json")
    page = parse(root / "index.html")
    assert page.rows[1][1:] == [("td", "NONE")]
    text = (root / "index.html").read_text()
    assert re.search(r">\d\d:\d\d:\d\d nothing checked</a>", text) and " OK</a>" not in text
    log = (run.parent / "ops-log.md").read_text()
    assert re.search(r"\| \d\d:\d\d:\d\d \| morning \| nothing checked \| \d+ skipped \|", log)
    # A down target's checks (outcome not_run) are counted as such, once.
    summary = {"passed": 2, "failed": 1, "not_run": 4, "skipped": 0}
    later = {"schedule": "morning", "started": "2021-03-01T07:00:00+00:00", "summary": summary}
    (root / "2021-03-01").mkdir()
    (root / "2021-03-01/morning-070000.json").write_text(json.dumps(later))
    archive_index.rebuild(root, {"2021-03-01"})
    text = (root / "2021-03-01/ops-log.md").read_text()
    assert "| 07:00:00 | morning | CRIT | 2 passed, 1 failed, 4 not run |" in text


def test_demo_files_a_real_reading_as_yesterday(suite, tmp_path):
    """`make demo`'s first reading filed as yesterday (opscheck.testbed.demo.file_as_yesterday),
    then a real run: the index shows two days, today's records have yesterday's values as
    previous, the pages link each other, and yesterday's page and log say what was done."""
    root = tmp_path / "reports"
    taken = archived_run(suite, tmp_path / "earlier", "morning", "memory_used")
    with_placeholders(taken.with_suffix(".html"))
    yesterday = file_as_yesterday(taken, root)
    earlier = json.loads(taken.read_text())
    filed = json.loads(yesterday.with_suffix(".json").read_text())
    assert filed["started"][:10] < earlier["started"][:10] and filed["history"]["added"] == 1
    assert "filed as yesterday" in yesterday.read_text()
    assert "filed as yesterday" in (yesterday.parent / "ops-log.md").read_text()

    today = archived_run(suite, root, "morning", "memory_used")
    with_placeholders(today.with_suffix(".html"))
    archive_index.rebuild(root, {today.parent.name})
    (days_row_today, days_row_yesterday) = parse(root / "index.html").rows[1:]
    assert days_row_today[1:] == [("td", "WARN")] and days_row_yesterday[1:] == [("td", "WARN")]
    records = [r for t in json.loads(today.read_text())["tests"] for r in t.get("records", [])]
    assert records and all(r["previous"] is not None for r in records)
    assert records == [r for r in records if "change" in r]
    before = {r["subject"]: r["value"] for t in filed["tests"] for r in t.get("records", [])}
    assert {r["subject"]: r["previous"] for r in records} == before
    assert links(yesterday)["opscheck-next"] == (f"../{today.parent.name}/{today.stem}.html", True)
    assert links(today.with_suffix(".html"))["opscheck-prev"][1] is True
    series = history.series(root / history.FILENAME, ["host.memory_used_pct"])
    assert [len(points) for points in series.values()] == [2]
