"""Trend plots: each numeric check's values over the last days, as inline SVG in the report.

One small plot per check (the record's ``check`` key), one line per target/subject, the warn and
crit levels dashed, the y axis in the unit an operator reads (MB, GB, min, %). The values come
from the history store (opscheck/history.py) plus this run's own as the last point. matplotlib
is imported only when something has two points to draw, so a run without history pays nothing.

The SVG is made safe for Jenkins' default Content-Security-Policy (``style-src 'self'`` blocks
``style="..."`` and ``<style>``): matplotlib's style attributes become SVG presentation
attributes, its ``<style>`` and ``<metadata>`` are dropped, and each plot's ids get their own
prefix so several plots live in one HTML page.
"""

from __future__ import annotations

import html
import io
import math
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from opscheck import history, units

MAX_PLOTS = 24  # plots per report: the worst checks first
MAX_LINES = 8  # lines (targets/subjects) per plot: the worst and largest first
_RANK = {"CRIT": 0, "WARN": 1, "OK": 2}
_LEVEL_COLOURS = {"warn": "#d68b00", "crit": "#c62828"}
_SVG = "http://www.w3.org/2000/svg"
_XLINK = "{http://www.w3.org/1999/xlink}href"
# CSS properties matplotlib writes that SVG also accepts as presentation attributes.
_PRESENTATION = frozenset(
    {
        *("fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity"),
        *("stroke-dasharray", "stroke-dashoffset", "stroke-linecap", "stroke-linejoin"),
        *("stroke-miterlimit", "opacity", "font-size", "font-family", "font-weight"),
        *("font-style", "font-variant", "font-stretch", "text-anchor", "dominant-baseline"),
        *("clip-path", "mix-blend-mode", "letter-spacing", "display", "visibility"),
    }
)
_SIZES = (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3))
_DURATIONS = (("d", 86400.0), ("h", 3600.0), ("min", 60.0), ("s", 1.0))


@dataclass
class _Line:
    target: str
    subject: str
    verdict: str
    points: list[tuple[str, float]]

    @property
    def label(self) -> str:
        label = f"{self.target} · {self.subject}" if self.subject else self.target
        return label if len(label) <= 32 else label[:31] + "…"


@dataclass
class _Plot:
    check: str
    title: str
    unit: str
    verdict: str = "OK"
    lines: list[_Line] = field(default_factory=list)
    levels: dict[str, set[float]] = field(default_factory=lambda: {"warn": set(), "crit": set()})
    hidden: int = 0  # lines left out (beyond MAX_LINES)


def section(store: Path | None, document: dict[str, Any], days: int = 30) -> str:
    """The report's ``<section id="opscheck-trends">`` of inline SVG plots, "" when nothing has
    two points yet (no store, no history, or no numeric record). Never raises: a failure to
    draw is said in the section instead."""
    try:
        plots = _plots(store, document, days)
        if not plots:
            return ""
        return _section(plots, days)
    except Exception as error:  # a report extra never costs the report
        return (
            '<section id="opscheck-trends"><h2>Trends</h2>'
            f"<p>Trend plots not drawn: {html.escape(f'{type(error).__name__}: {error}')}</p>"
            "</section>"
        )


def _numeric(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for test in document.get("tests", []):
        for record in test.get("records") or []:
            value, unit = record.get("value"), record.get("unit")
            if value is not None and math.isfinite(value) and unit != "state":
                yield record


def _plots(store: Path | None, document: dict[str, Any], days: int) -> list[_Plot]:
    """The plots worth drawing (some line has two points), worst verdict first."""
    records = list(_numeric(document))
    if store is None or not records:
        return []
    started = document["started"]
    since = datetime.fromisoformat(started) - timedelta(days=days)
    past = history.series(
        store, {r["check"] for r in records}, since=since.isoformat(), before=started
    )
    if not past:
        return []
    plots: dict[str, _Plot] = {}
    for r in records:
        plot = plots.setdefault(r["check"], _Plot(r["check"], r["title"], r["unit"]))
        stored = past.get((r["check"], r["target"], r["subject"]), [])
        points = [*((t, v) for t, v in stored if math.isfinite(v)), (started, r["value"])]
        plot.lines.append(_Line(r["target"], r["subject"], r["verdict"], points))
    drawn = []
    for plot in plots.values():
        if max(len(line.points) for line in plot.lines) < 2:
            continue
        plot.lines.sort(key=lambda line: (_RANK.get(line.verdict, 2), -abs(line.points[-1][1])))
        plot.hidden = max(0, len(plot.lines) - MAX_LINES)
        plot.lines = sorted(plot.lines[:MAX_LINES], key=lambda line: line.label)
        plot.verdict = min((line.verdict for line in plot.lines), key=lambda v: _RANK.get(v, 2))
        drawn.append(plot)
    for r in records:  # the levels of the lines drawn
        plot = plots[r["check"]]
        if any(line.target == r["target"] and line.subject == r["subject"] for line in plot.lines):
            for level in ("warn", "crit"):
                if r.get(level) is not None:
                    plot.levels[level].add(r[level])
    return sorted(drawn, key=lambda p: (_RANK.get(p.verdict, 2), p.check))


def _section(plots: list[_Plot], days: int) -> str:
    shown = plots[:MAX_PLOTS]
    figures = [_svg(plot, days, f"opscheck-trend{n}-") for n, plot in enumerate(shown)]
    more = len(plots) - len(shown)
    note = (
        f'<p class="trend-more">{more} more check{"s" if more != 1 else ""} not plotted '
        f"(the first {MAX_PLOTS}, worst first, are shown).</p>"
        if more
        else ""
    )
    return (
        f'<section id="opscheck-trends"><h2>Trends: the last {days} days</h2>\n'
        + "\n".join(figures)
        + f"\n{note}</section>"
    )


def _scale(unit: str, peak: float) -> tuple[float, str]:
    """Divisor and axis label that show ``unit`` values near ``peak`` as an operator reads them."""
    if unit == "size":
        return next(((f, name) for name, f in _SIZES if peak >= f), (1.0, "bytes"))
    if unit == "duration":
        return next(((f, name) for name, f in _DURATIONS if peak >= 2 * f), (0.001, "ms"))
    return 1.0, {"percent": "%", "days": "days"}.get(unit, "")


def _svg(plot: _Plot, days: int, prefix: str) -> str:
    """One plot drawn by matplotlib, as CSP-safe inline SVG."""
    import matplotlib  # lazily: only a run with trends to draw pays for it
    from matplotlib import dates
    from matplotlib.figure import Figure

    with matplotlib.rc_context(
        {
            "svg.fonttype": "none",  # text stays text: no glyph paths, no font files
            "svg.hashsalt": "opscheck",  # ids the same from run to run
            "font.family": "sans-serif",
            "font.sans-serif": ["DejaVu Sans", "Arial"],
            "font.size": 8,
            "timezone": "UTC",
        }
    ):
        figure = Figure(figsize=(5.6, 2.4))
        axes = figure.add_axes((0.11, 0.2, 0.53, 0.68))
        peak = max(abs(v) for line in plot.lines for _, v in line.points)
        peak = max([peak, *plot.levels["warn"], *plot.levels["crit"]])
        factor, label = _scale(plot.unit, peak)
        for n, line in enumerate(plot.lines):
            x = dates.date2num([datetime.fromisoformat(t).astimezone(UTC) for t, _ in line.points])
            y = [v / factor for _, v in line.points]
            (drawn,) = axes.plot(
                x, y, label=line.label, linewidth=1.3, marker="o" if len(x) == 1 else ""
            )
            drawn.set_gid(f"line-{n}")
        for level, values in plot.levels.items():
            for n, value in enumerate(sorted(values)):
                shown = f"{level} {units.format_value(value, plot.unit)}"
                drawn = axes.axhline(
                    value / factor,
                    color=_LEVEL_COLOURS[level],
                    linestyle="--",
                    linewidth=1,
                    label=shown if n < 2 else None,
                )
                drawn.set_gid(f"{level}-{n}")
        locator = dates.AutoDateLocator(minticks=3, maxticks=7)
        axes.xaxis.set_major_locator(locator)
        axes.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))
        axes.set_ylabel(label)
        axes.grid(True, linewidth=0.3, color="#cccccc")
        verdict = "" if plot.verdict == "OK" else f"{plot.verdict}: "
        colour = _LEVEL_COLOURS.get(plot.verdict.lower(), "#000000")
        axes.set_title(f"{verdict}{plot.title}", loc="left", fontsize=9, color=colour)
        if plot.hidden:
            axes.text(
                1.0,
                1.02,
                f"+{plot.hidden} more not shown",
                transform=axes.transAxes,
                ha="right",
                va="bottom",
                fontsize=7,
                color="#555555",
            )
        axes.legend(  # beside the plot; 8 lines and 2 levels fit its height
            loc="upper left",
            bbox_to_anchor=(1.02, 1.02),
            fontsize=7,
            labelspacing=0.25,
            handlelength=1.6,
            frameon=False,
        )
        out = io.StringIO()
        with warnings.catch_warnings():  # a tick-picking hint is no news for an operator
            warnings.simplefilter("ignore")
            figure.savefig(out, format="svg", metadata={"Date": None})
    name = f"{plot.title} ({plot.check}), last {days} days"
    return _csp_safe(out.getvalue(), prefix, name, plot.check)


def _csp_safe(text: str, prefix: str, name: str, check: str) -> str:
    """matplotlib's SVG document as an inline ``<svg>`` element without ``style`` anywhere:
    presentation attributes instead, ids prefixed, a ``<title>`` and aria-label naming it."""
    root = ET.fromstring(text)  # drops the XML prolog and DOCTYPE
    ns = f"{{{_SVG}}}"
    base: dict[str, str] = {}
    for parent in list(root.iter()):
        for child in list(parent):
            if child.tag in (f"{ns}style", f"{ns}metadata"):
                if child.tag == f"{ns}style":  # the `*{...}` rule: inherited from the root
                    base.update(_declarations(re.sub(r"^[^{]*\{|\}\s*$", "", child.text or "")))
                parent.remove(child)
    used = set(re.findall(r'(?:url\(#|href="#)([^)"]+)', text))
    for element in root.iter():
        style = element.attrib.pop("style", None)
        if style is not None:
            element.attrib.update(_declarations(style))
        if element.attrib.get("transform", "").startswith("rotate(-0 "):
            del element.attrib["transform"]  # matplotlib's "no rotation"
        old = element.attrib.pop("id", None)
        if old is not None and re.fullmatch(r"(line|warn|crit)-\d+", old):
            element.set("class", f"trend-{old.split('-')[0]}")
        if (
            old is not None and old in used
        ):  # ids that nothing refers to are left out: one page, many plots
            element.set("id", prefix + old)
        href = element.attrib.pop(_XLINK, None)  # SVG 2 `href`: no xlink namespace inline
        if href is not None:
            element.set("href", "#" + prefix + href.lstrip("#"))
        for key, value in element.attrib.items():
            if "url(#" in value:
                element.set(key, value.replace("url(#", "url(#" + prefix))
        if "d" in element.attrib:  # path data: one line (a newline would be written as &#10;)
            element.set("d", " ".join(element.attrib["d"].split()))
    parents = {child: parent for parent in root.iter() for child in parent}
    for defs in [d for d in root.iter(f"{ns}defs") if len(d) == 0]:
        parents[defs].remove(defs)
    root.attrib.update(base)
    families = {e.attrib.get("font-family") for e in root.iter(f"{ns}text")}
    if len(families) == 1:  # said once, on the root
        root.set("font-family", str(families.pop()))
        for element in root.iter(f"{ns}text"):
            del element.attrib["font-family"]
    root.attrib.update(
        {"role": "img", "aria-label": name, "class": "opscheck-trend", "data-check": check}
    )
    title = ET.Element(f"{ns}title")
    title.text = name
    root.insert(0, title)
    for element in root.iter():  # plain names: the HTML parser puts <svg> in its namespace
        element.tag = element.tag.removeprefix(ns)
    root.set("xmlns", _SVG)
    ET.indent(root, space="")
    return ET.tostring(root, encoding="unicode")


def _declarations(style: str) -> dict[str, str]:
    """``fill: #fff; stroke-width: 0.8`` as attributes; properties SVG takes no attribute for
    are dropped (none that matplotlib writes today)."""
    out = {}
    for declaration in style.split(";"):
        name, _, value = declaration.partition(":")
        name, value = name.strip(), value.strip()
        if name in _PRESENTATION and value:
            out[name] = value
    return out
