"""Prometheus probes: the runbooks' PromQL lines and "is every target up", as Measurements.

Read-only GET endpoints only: ``/-/ready``, ``/api/v1/status/{buildinfo,runtimeinfo,tsdb}``,
``/api/v1/targets``, ``/api/v1/rules``, ``/api/v1/query``, ``/api/v1/query_range``. No admin API,
no POST (Prometheus accepts queries as POST too; a GET is what read-only proxies let through).
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opscheck.config import PrometheusTarget, PromQuery
from opscheck.config.base import Limit
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.probes.api import Api, of_target
from opscheck.units import format_value

_KINDS = {"number": "number", "seconds": "duration", "bytes": "size", "percent": "percent"}
_POINTS = 250  # samples per series a `for` window is read at (Prometheus allows 11,000)
_HUGE = sys.float_info.max  # +Inf judged (and recorded in JSON, which has no Infinity) as this


def open_api(target: PrometheusTarget, timeout: float) -> Api:
    """The target's API, auth from the environment; ``/-/ready`` answered (any status)."""
    return of_target(target, timeout).open("/-/ready")


def _data(api: Api, path: str, params: dict[str, Any] | None = None) -> Any:
    """``data`` of a JSON answer; Prometheus's own error on one line otherwise."""
    try:
        document = api.get_json(path, params)
    except ProbeError as exc:
        raise ProbeError(" ".join(str(exc).split())) from None
    if not isinstance(document, dict) or document.get("status") != "success":
        raise ProbeError(f"GET {api.base_url}{path}: not a Prometheus API answer")
    return document.get("data")


def _ago(stamp: str) -> str:
    """``2026-11-30T19:09:52.49Z`` as how long ago (Prometheus's clock against ours)."""
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return format_value(max(0.0, (datetime.now(UTC) - when).total_seconds()), "duration") + " ago"


def _n(count: int, noun: str) -> str:
    """``1 rule``, ``2 rules``; ``series`` stays."""
    return f"{count} {noun}{'' if count == 1 or noun.endswith('s') else 's'}"


def reachable(api: Api) -> Measurement:
    """``/-/ready`` says 200; the version (``/api/v1/status/buildinfo``) in the text."""
    build = _data(api, "/api/v1/status/buildinfo") or {}
    which = f"Prometheus {build.get('version', '?')}"
    ready = api.get("/-/ready")
    if ready.status_code != 200:
        said = " ".join(ready.text.split())[:200] or ready.reason
        text = f"{which} answers but is not ready (/-/ready: HTTP {ready.status_code} {said})"
        return Measurement.fact(False, text, "ready")
    return Measurement.fact(True, f"{which} ready", "ready")


def targets_down(api: Api) -> tuple[list[Measurement], list[Measurement]]:
    """Per scrape job: its targets down, as a count and as a share, each down target with its
    ``lastError`` in the text (the first) and the detail (all)."""
    data = _data(api, "/api/v1/targets", {"state": "active"}) or {}
    jobs: dict[str, list[dict[str, Any]]] = {}
    for target in data.get("activeTargets", []):
        jobs.setdefault(target.get("scrapePool") or target["labels"].get("job", "?"), []).append(
            target
        )
    if not jobs:
        raise NotApplicable("Prometheus scrapes no target (no active targets)")
    counts, shares = [], []
    for job, targets in sorted(jobs.items()):
        down = [t for t in targets if t.get("health") == "down"]
        pct = 100.0 * len(down) / len(targets)
        text = f"{len(down)} of {_n(len(targets), 'target')} down"
        if down:
            first = down[0]
            text += f": {first.get('scrapeUrl')}: {first.get('lastError') or 'no error given'}"
        detail = "\n".join(
            f"{t.get('scrapeUrl')}: {t.get('lastError') or 'down'} (last scrape "
            f"{_ago(t.get('lastScrape', ''))})"
            for t in down
        )
        counts.append(Measurement(len(down), subject=job, text=text, detail=detail))
        shares.append(
            Measurement(pct, subject=job, text=f"{pct:.1f} % of {_n(len(targets), 'target')} down")
        )
    return counts, shares


def rule_groups(api: Api) -> list[Measurement]:
    """Each rule group evaluates without error (``/api/v1/rules``: ``health``/``lastError``)."""
    groups = (_data(api, "/api/v1/rules") or {}).get("groups", [])
    if not groups:
        raise NotApplicable("no rule groups loaded")
    found = []
    for group in groups:
        rules = group.get("rules", [])
        failing = [r for r in rules if r.get("health") == "err" or r.get("lastError")]
        # The file's name, not its path: group names repeat across files, paths are long.
        name = f"{os.path.basename(group.get('file', '?'))}:{group.get('name', '?')}"
        if not failing:
            text = f"{_n(len(rules), 'rule')} evaluate without error"
            found.append(Measurement.fact(True, text, "no evaluation error", subject=name))
            continue
        first = failing[0]
        text = (
            f"{len(failing)} of {_n(len(rules), 'rule')} fail to evaluate: "
            f"{first.get('name')}: {' '.join(str(first.get('lastError', '')).split())}"
        )
        detail = "\n".join(
            f"{r.get('name')} ({r.get('query')}): {r.get('lastError') or r.get('health')}"
            for r in failing
        )
        found.append(
            Measurement.fact(False, text, "no evaluation error", subject=name, detail=detail)
        )
    return found


def config_reload(api: Api) -> Measurement:
    """The last configuration (re)load succeeded (``reloadConfigSuccess``, which is
    ``prometheus_config_last_reload_successful``)."""
    info = _data(api, "/api/v1/status/runtimeinfo") or {}
    loaded = f"config loaded {_ago(str(info.get('lastConfigTime', '')))}"
    if info.get("reloadConfigSuccess", True):
        return Measurement.fact(True, f"last config load succeeded ({loaded})", "succeeded")
    text = (
        f"the last config reload failed: Prometheus still runs the {loaded}; the reason is in "
        "its log (promtool check config tells it too)"
    )
    return Measurement.fact(False, text, "succeeded")


def head_series(api: Api) -> Measurement:
    """Series in the TSDB head (``/api/v1/status/tsdb``): cardinality, for the trend."""
    data = _data(api, "/api/v1/status/tsdb") or {}
    series = int(data.get("headStats", {}).get("numSeries", 0))
    top = ", ".join(
        f"{m['name']} {m['value']}" for m in data.get("seriesCountByMetricName", [])[:5]
    )
    return Measurement(
        series, text=f"{_n(series, 'series')} in the head", detail=f"most series: {top}"
    )


# -- a runbook's PromQL ------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryResult:
    """What a query measured: its worst series (``empty`` when none came back)."""

    measurement: Measurement
    empty: bool = False


def _labels(metric: dict[str, str]) -> str:
    """``up{job="node"}`` as PromQL writes a series; ``""`` for one without labels."""
    name = metric.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest else name


def _number(sample: Any) -> float:
    """A sample's value: Prometheus sends strings, ``"NaN"``, ``"+Inf"`` and ``"-Inf"``
    included."""
    try:
        return float(sample[1])
    except (TypeError, ValueError, IndexError):
        raise ProbeError(f"a sample that is not a number: {sample!r}") from None


def _shown(value: float, kind: str) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return format_value(value, kind)


def _series(data: dict[str, Any], ranged: bool, above: bool) -> list[tuple[str, float]]:
    """``(labels, value)`` per series: the instant value, or over a window the value the
    condition held throughout (the lowest for levels above, the highest for levels below)."""
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return [("", _number(result))]
    if kind == "string":
        raise ProbeError(f"the query returns a string ({result!r}), not a number to judge")
    if kind == "matrix" and not ranged:
        raise ProbeError(
            "the query returns a range vector: wrap it in a function such as max_over_time()"
        )
    found = []
    for item in result or []:
        if not ranged:
            found.append((_labels(item["metric"]), _number(item["value"])))
            continue
        values = [_number(v) for v in item.get("values", [])]
        numbers = [v for v in values if not math.isnan(v)] or [math.nan]
        best = min(numbers) if above else max(numbers)
        found.append((_labels(item["metric"]), best))
    return found


def _worst_first(found: list[tuple[str, float]], above: bool) -> list[tuple[str, float]]:
    """NaN first (not a number is never OK), then the highest (or lowest) value."""
    return sorted(found, key=lambda s: (not math.isnan(s[1]), -s[1] if above else s[1]))


def run_query(api: Api, query: PromQuery, direction: str = "above") -> QueryResult:
    """The query's worst series, judged by the caller; over ``for`` the value that held for the
    whole window, read with one range query (``/api/v1/query_range``), not by waiting."""
    above = (query.direction or direction) == "above"
    if query.for_ is None:
        data = _data(api, "/api/v1/query", {"query": query.query})
    else:
        end = time.time()
        step = max(1.0, query.for_ / _POINTS)
        params = {"query": query.query, "start": end - query.for_, "end": end, "step": step}
        data = _data(api, "/api/v1/query_range", params)
    found = _worst_first(_series(data or {}, query.for_ is not None, above), above)
    described = [query.description] if query.description else []
    described.append(f"PromQL: {query.query}")
    if not found:
        text = "0 series: the query returned nothing (an exporter down? a label renamed?)"
        return QueryResult(Measurement(0, text=text, detail="\n".join(described)), empty=True)
    kind = _KINDS[query.unit]
    labels, value = found[0]
    shown = _shown(value, kind)
    if math.isnan(value):
        shown += " (not a number: 0/0, or a rate or ratio of nothing)"
    if query.for_ is not None:
        window = format_value(query.for_, "duration")
        shown += f" {'or more' if above else 'or less'} for the whole last {window}"
    if len(found) > 1:
        shown += f" (worst of {len(found)} series)"
    listed = [f"{s[0] or '{}'} {_shown(s[1], kind)}" for s in found[: query.top]]
    if len(found) > query.top:
        listed.append(f"… and {len(found) - query.top} more")
    detail = "\n".join([*described, f"top {min(query.top, len(found))} series:", *listed])
    judged = value if not math.isinf(value) else math.copysign(_HUGE, value)
    return QueryResult(Measurement(judged, subject=labels, text=shown, detail=detail))


def empty_levels(query: PromQuery) -> Limit:
    """The levels of an empty result's series count, from ``empty``: fewer than one series is
    WARN, CRIT or fine."""
    return Limit(
        warn=1 if query.empty == "warn" else None,
        crit=1 if query.empty == "crit" else None,
        direction="below",
    )
