"""Trend plots (opscheck/trends.py): one inline SVG per numeric check, drawn from a real history
store filled by ``history.record_run`` with back-dated reports, safe under Jenkins' CSP."""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opscheck import history, trends

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
SVG = "{http://www.w3.org/2000/svg}"
TITLES = {
    "host.disk_used_pct": "disk used below limit",
    "host.memory_used_pct": "memory used below limit",
    "postgres.database_size": "size of the target's database",
    "host.services": "services running",
}
UNITS = {
    "host.disk_used_pct": "percent",
    "postgres.database_size": "size",
    "host.services": "state",
}


def _record(check: str, target: str, value: float | None, subject: str = "", **more: Any) -> dict:
    record = {
        "check": check,
        "title": TITLES.get(check, check),
        "target": target,
        "subject": subject,
        "value": value,
        "unit": UNITS.get(check, "percent"),
        "warn": None,
        "crit": None,
        "direction": "above",
        "verdict": "OK",
        "measured": "",
        "threshold": "",
        "message": "",
        "detail": "",
    }
    return record | more


def _document(days_ago: float, records: list[dict]) -> dict[str, Any]:
    started = (NOW - timedelta(days=days_ago)).isoformat()
    return {"started": started, "schedule": "morning", "tests": [{"records": records}]}


def _store(tmp_path: Path, runs: int, make, start: int = 1) -> Path:
    """A real store holding ``runs`` daily reports before NOW; ``make(day)`` gives the records."""
    store = tmp_path / history.FILENAME
    for day in range(start + runs - 1, start - 1, -1):
        history.record_run(store, _document(day, make(day)))
    return store


def _svgs(section: str) -> list[ET.Element]:
    return [ET.fromstring(s) for s in re.findall(r"<svg\b.*?</svg>", section, re.S)]


def _classes(svg: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in svg.iter() if e.get("class") == name]


def _today(records: list[dict]) -> dict[str, Any]:
    return _document(0, records)


def _fleet(day: int) -> list[dict]:
    """Two disks on two hosts, memory on one, a database with two sizes, a yes/no check."""
    return [
        _record("host.disk_used_pct", "web1", 60 + day, "/", warn=80.0, crit=90.0),
        _record("host.disk_used_pct", "web1", 30 + day, "/var", warn=80.0, crit=90.0),
        _record("host.disk_used_pct", "web2", 50 - day, "/", warn=80.0, crit=90.0),
        _record("host.memory_used_pct", "web1", 40.0),
        _record("postgres.database_size", "main", 4.2e9 + day * 1e8),
        _record("postgres.database_size", "reports", 8.0e8),
        _record("host.services", "web1", 1.0, unit="state"),
    ]


def test_one_plot_per_check_with_a_line_per_target_and_subject(tmp_path: Path) -> None:
    store = _store(tmp_path, 5, _fleet)
    section = trends.section(store, _today(_fleet(0)), days=30)

    assert section.startswith('<section id="opscheck-trends">')
    assert "the last 30 days" in section
    svgs = {svg.get("data-check"): svg for svg in _svgs(section)}
    # The yes/no check is not plotted; every numeric one is, with its own lines.
    assert set(svgs) == {"host.disk_used_pct", "host.memory_used_pct", "postgres.database_size"}
    assert len(_classes(svgs["host.disk_used_pct"], "trend-line")) == 3
    assert len(_classes(svgs["host.memory_used_pct"], "trend-line")) == 1
    assert len(_classes(svgs["postgres.database_size"], "trend-line")) == 2
    legend = " ".join(t.text or "" for t in svgs["host.disk_used_pct"].iter(f"{SVG}text"))
    assert "web1 · /var" in legend and "web2 · /" in legend
    # Each line carries the stored days and this run's value: 6 vertices.
    line = _classes(svgs["host.memory_used_pct"], "trend-line")[0]
    path = next(line.iter(f"{SVG}path")).get("d", "")
    assert path.count("L") == 5


def test_warn_and_crit_levels_are_dashed_lines(tmp_path: Path) -> None:
    store = _store(tmp_path, 5, _fleet)
    svgs = {s.get("data-check"): s for s in _svgs(trends.section(store, _today(_fleet(0))))}

    disk = svgs["host.disk_used_pct"]
    for level, colour in (("trend-warn", "#d68b00"), ("trend-crit", "#c62828")):
        (line,) = _classes(disk, level)
        path = next(line.iter(f"{SVG}path"))
        assert path.get("stroke") == colour and path.get("stroke-dasharray")
    texts = " ".join(t.text or "" for t in disk.iter(f"{SVG}text"))
    assert "warn 80.0 %" in texts and "crit 90.0 %" in texts
    assert "%" in texts  # the y axis says its unit
    assert not _classes(svgs["host.memory_used_pct"], "trend-warn")  # no levels, none drawn


def test_svg_is_csp_safe_inline_xml_with_a_title(tmp_path: Path) -> None:
    """Jenkins' CSP (`style-src 'self'`) blocks style attributes and <style>: none may remain."""
    store = _store(tmp_path, 5, _fleet)
    section = trends.section(store, _today(_fleet(0)))

    assert "style=" not in section and "<style" not in section
    assert "<?xml" not in section and "<!DOCTYPE" not in section and "<metadata" not in section
    assert "http://" not in section.replace('xmlns="http://www.w3.org/2000/svg"', "")
    ids = re.findall(r'\bid="([^"]+)"', section)
    assert len(ids) == len(set(ids)), "ids repeat between plots of one page"
    for svg in _svgs(section):  # each parses as XML on its own
        title = svg.find(f"{SVG}title")
        assert title is not None and svg.get("data-check", "?") in (title.text or "")
        assert svg.get("role") == "img" and svg.get("aria-label") == title.text
        for element in svg.iter():
            href = element.get("href")
            assert href is None or href.lstrip("#") in ids  # only links inside the page
        paths = list(svg.iter(f"{SVG}path"))
        assert any(p.get("stroke") for p in paths) and any(p.get("fill") for p in paths)
    html = ET.fromstring(f"<div>{section.replace('&', '&amp;')}</div>")  # one well-formed block
    assert html.find("section") is not None


def test_sizes_read_in_mb_or_gb(tmp_path: Path) -> None:
    store = _store(tmp_path, 5, _fleet)
    svgs = {s.get("data-check"): s for s in _svgs(trends.section(store, _today(_fleet(0))))}

    texts = [t.text or "" for t in svgs["postgres.database_size"].iter(f"{SVG}text")]
    assert "GB" in texts  # the y axis label
    assert not any("e+" in t or "1e9" in t or "×10" in t for t in texts), texts


def test_worst_check_first_and_says_so(tmp_path: Path) -> None:
    def make(day: int) -> list[dict]:
        crit = {"verdict": "CRIT"} if day == 0 else {}
        return [
            _record("host.disk_used_pct", "web1", 50.0),
            _record("host.memory_used_pct", "web1", 95.0 - day, crit=90.0, **crit),
        ]

    store = _store(tmp_path, 3, make)
    svgs = _svgs(trends.section(store, _today(make(0))))

    assert [s.get("data-check") for s in svgs] == ["host.memory_used_pct", "host.disk_used_pct"]
    assert any((t.text or "").startswith("CRIT: memory used") for t in svgs[0].iter(f"{SVG}text"))


def test_many_checks_and_targets_are_capped_with_a_note(tmp_path: Path) -> None:
    def make(day: int) -> list[dict]:
        many = [_record(f"host.check_{n:02}", "web1", float(n + day)) for n in range(30)]
        # The disks warn: they are plotted first, with the 8 worst and largest of 10 lines.
        warn: dict[str, Any] = {"warn": 15.0, "verdict": "WARN"}
        return many + [
            _record("host.disk_used_pct", f"web{n}", 10.0 * n, **warn) for n in range(10)
        ]

    store = _store(tmp_path, 2, make)
    section = trends.section(store, _today(make(0)))

    svgs = _svgs(section)
    assert len(svgs) == trends.MAX_PLOTS == 24
    assert "7 more checks not plotted" in section
    disk = next(s for s in svgs if s.get("data-check") == "host.disk_used_pct")
    assert svgs[0] is disk
    assert len(_classes(disk, "trend-line")) == trends.MAX_LINES == 8
    legend = {t.text for t in disk.iter(f"{SVG}text")}
    assert "web9" in legend and "web0" not in legend and "web1" not in legend
    assert any(t.text == "+2 more not shown" for t in disk.iter(f"{SVG}text"))


def test_nothing_to_plot_is_empty_and_never_imports_matplotlib(tmp_path: Path) -> None:
    """No store, an empty store, only yes/no checks, or only this run's point: no section, and
    the run does not pay for importing matplotlib."""
    today = _today(_fleet(0))
    assert trends.section(None, today) == ""
    assert trends.section(tmp_path / "missing.sqlite", today) == ""
    states = _store(tmp_path / "states", 3, lambda d: [_record("host.services", "w", 1.0)])
    assert trends.section(states, _today([_record("host.services", "w", 1.0)])) == ""
    # A point 40 days ago is outside the last 30 days, inside the last 90.
    old = _store(tmp_path / "old", 1, _fleet, start=40)
    assert trends.section(old, today, days=30) == ""
    assert trends.section(old, today, days=90).count("<svg") == 3

    script = (
        "import sys; from pathlib import Path; from opscheck import trends;"
        f"doc = {today!r};"
        f"assert trends.section(Path({str(tmp_path / 'missing.sqlite')!r}), doc) == '';"
        f"assert trends.section(Path({str(states)!r}), doc) == '';"
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr


def test_the_same_history_draws_the_same_svg(tmp_path: Path) -> None:
    store = _store(tmp_path, 3, _fleet)
    assert trends.section(store, _today(_fleet(0))) == trends.section(store, _today(_fleet(0)))


def test_an_unreadable_store_is_said_not_raised(tmp_path: Path) -> None:
    broken = tmp_path / history.FILENAME
    broken.write_text("not a database\n" * 100)

    section = trends.section(broken, _today(_fleet(0)))

    assert section.startswith('<section id="opscheck-trends">')
    assert "Trend plots not drawn: DatabaseError: file is not a database" in section


@pytest.mark.parametrize("days", [2, 366])
def test_trend_days_bounds_load(days: int) -> None:
    from opscheck.config.inventory import HistorySettings

    assert HistorySettings(trend_days=days).trend_days == days
    assert HistorySettings().trends is True and HistorySettings().trend_days == 30
