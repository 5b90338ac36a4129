"""An application's own ``/metrics``: the runbooks' ``curl -s app:8000/metrics | grep …``, as
Measurements.

The exposition is parsed by ``prometheus_client``'s parsers (the Prometheus text format, or
OpenMetrics when the app answers ``application/openmetrics-text``), never by hand. A limit
selects one metric's series by exact label values and reduces them to values:

    scrape = probes.scrape(api)               # one bounded GET, parsed
    probes.limit_values(api, limit)           # per series, or one aggregate; NaN when none

``rate`` takes two scrapes that far apart (the check waits for it; the config caps it at 2m);
``quantile`` follows PromQL's ``histogram_quantile`` (linear within the bucket it falls in).
"""

from __future__ import annotations

import difflib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opscheck.config import MetricLimit, MetricsTarget
from opscheck.judge import Measurement, ProbeError
from opscheck.probes.api import Api, of_target
from opscheck.redaction import clip
from opscheck.units import Kind, format_value

if TYPE_CHECKING:
    from opscheck.session import Run

# As Prometheus asks: OpenMetrics first, the text format otherwise.
ACCEPT = "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
TOP = 10  # series listed in a detail
Labels = tuple[tuple[str, str], ...]
Series = tuple[str, Labels]  # (sample name, sorted labels)

_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "sum": math.fsum,
    "max": max,
    "min": min,
    "avg": lambda values: math.fsum(values) / len(values),
    "count": len,
}


def open_api(target: MetricsTarget, run: Run) -> Api:
    """The target's client, after a first GET of the exposition (refused or silent: the
    target is unreachable)."""
    return of_target(target, run.timeout(target), {"Accept": ACCEPT}).open("")


@dataclass(frozen=True)
class Scrape:
    """One parsed exposition: every sample's value by series, each sample name's family type."""

    values: dict[Series, float]
    types: dict[str, str]
    families: int
    format: str  # "OpenMetrics" or "text format"
    size: int  # bytes of body
    seconds: float  # the GET's duration
    at: float  # time.monotonic() when the answer arrived


def scrape(api: Api) -> Scrape:
    """GET the exposition and parse it; an error status or a malformed body is a one-line
    ``ProbeError`` quoting the parser."""
    started = time.monotonic()
    response = api.get("")
    at = time.monotonic()
    where = f"GET {api.base_url}"
    if not 200 <= response.status_code < 300:
        said = clip(" ".join(response.text.split()), 200) or response.reason
        raise ProbeError(f"{where}: HTTP {response.status_code}: {said}")
    openmetrics = response.headers.get("Content-Type", "").startswith(
        "application/openmetrics-text"
    )
    text = response.content.decode("utf-8", errors="replace")
    if openmetrics:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
    form = "OpenMetrics" if openmetrics else "text format"
    try:
        families = list(text_string_to_metric_families(text))
    except Exception as exc:  # the parsers raise ValueError, and others on odd input
        said = clip(" ".join(str(exc).split()), 200) or type(exc).__name__
        raise ProbeError(f"{where}: malformed exposition ({form}): {said}") from None
    values: dict[Series, float] = {}
    types: dict[str, str] = {}
    for family in families:
        for sample in family.samples:
            values[sample.name, tuple(sorted(sample.labels.items()))] = float(sample.value)
            types[sample.name] = family.type
    return Scrape(values, types, len(families), form, len(response.content), at - started, at)


def reachable(api: Api) -> Measurement:
    """The exposition answers and parses, with at least one sample."""
    got = scrape(api)
    size = format_value(got.size, "size")
    took = format_value(got.seconds, "duration")
    text = f"{len(got.values)} series in {got.families} metrics ({got.format}, {size}, {took})"
    if not got.values:
        text = f"no metrics ({text})"
    return Measurement.fact(bool(got.values), text, "an exposition with metrics")


def series_name(name: str, labels: Labels | Mapping[str, str]) -> str:
    """``queue_depth{queue="embeddings"}``, as PromQL writes a series."""
    pairs = labels.items() if isinstance(labels, Mapping) else labels
    inside = ",".join(f'{key}="{value}"' for key, value in pairs)
    return f"{name}{{{inside}}}" if inside else name


def _sample_name(got: Scrape, limit: MetricLimit) -> str:
    """The sample name a limit reads: ``<metric>_bucket`` for a quantile, ``<metric>_total``
    for a counter written by its family name (``jobs_processed``)."""
    if limit.quantile is not None:
        return limit.metric.removesuffix("_bucket") + "_bucket"
    total = limit.metric + "_total"
    if limit.metric not in got.types and got.types.get(total) == "counter":
        return total
    return limit.metric


def _matching(got: Scrape, name: str, matchers: Mapping[str, str]) -> dict[Labels, float]:
    return {
        labels: value
        for (sample, labels), value in got.values.items()
        if sample == name and all(dict(labels).get(k) == v for k, v in matchers.items())
    }


def _none_matches(got: Scrape, name: str, limit: MetricLimit) -> str:
    """Why no series matched: the metric is missing (and what is close), or its series'
    labels differ (and which there are)."""
    if name not in got.types:
        close = difflib.get_close_matches(name, sorted(got.types), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"no metric {name} in the exposition ({len(got.types)} names){hint}"
    others = [series_name(name, labels) for (sample, labels) in got.values if sample == name]
    shown = ", ".join(others[:5]) + (f" and {len(others) - 5} more" if len(others) > 5 else "")
    return f"no series of {name} matches {series_name('', limit.labels)}; it has {shown}"


def _increase(first: float, second: float) -> float:
    """A counter's increase; one that went down was reset (a restart) and counts from 0."""
    return second - first if second >= first else second


def limit_values(api: Api, limit: MetricLimit) -> list[Measurement]:
    """The limit's values: one per matching series, or their aggregate; a NaN value (none
    matches, the app exposes NaN, a histogram without observations) says why."""
    first = scrape(api)
    name = _sample_name(first, limit)
    selector = series_name(name, limit.labels)
    values = _matching(first, name, limit.labels)
    seconds = 0.0
    if not values:  # no use waiting for a second scrape
        why = _none_matches(first, name, limit)
        return [Measurement(math.nan, selector, f"no series matches: {why}")]
    if limit.rate is not None:
        kind = first.types.get(name)
        if kind not in ("counter", "histogram", "gaugehistogram", "summary", "unknown"):
            raise ProbeError(f"rate applies to counters and histograms; {name} is a {kind}")
        time.sleep(max(0.0, first.at + limit.rate - time.monotonic()))
        second = scrape(api)
        seconds = second.at - first.at
        later = _matching(second, name, limit.labels)
        values = {k: _increase(v, later[k]) for k, v in values.items() if k in later}
        selector = f"rate({selector}[{limit.rate:g}s])"
    if limit.quantile is not None:
        selector = f"histogram_quantile({limit.quantile:g}, {selector})"
    if not values:
        why = _none_matches(first, name, limit)
        return [Measurement(math.nan, selector, f"no series matches: {why}")]
    if limit.quantile is not None:
        return _quantiles(limit, selector, values)
    per_second = limit.rate is not None
    extra = ""
    if per_second:
        increase = _shown(math.fsum(values.values()), limit.kind)
        extra = f"+{increase} in {format_value(seconds, 'duration')}"
        values = {k: v / seconds for k, v in values.items()}

    def shown(value: float) -> str:
        return _shown(value, limit.kind, per_second)

    items = [(series_name(name, labels), value) for labels, value in sorted(values.items())]
    if limit.aggregate is None:
        said = f" ({extra})" if extra else ""
        return [Measurement(value, subject, shown(value) + said) for subject, value in items]
    return [_aggregate(limit.aggregate, selector, items, shown, extra)]


def _shown(value: float, kind: Kind, per_second: bool = False) -> str:
    if math.isnan(value):
        return "NaN (not a number)"
    return format_value(value, kind) + ("/s" if per_second else "")


def _aggregate(
    how: str,
    selector: str,
    items: list[tuple[str, float]],
    shown: Callable[[float], str],
    extra: str = "",
) -> Measurement:
    """``sum(selector)`` and friends over (series, value); a NaN series makes the result NaN,
    naming it. The detail lists the highest values (NaN first)."""
    ranked = sorted(items, key=lambda item: math.inf if math.isnan(item[1]) else item[1])[::-1]
    lines = [f"{subject} {shown(value)}" for subject, value in ranked[:TOP]]
    more = f"\n… and {len(ranked) - TOP} more series" if len(ranked) > TOP else ""
    detail = "\n".join(lines) + more
    subject = f"{how}({selector})"
    nans = [series for series, value in items if math.isnan(value)]
    if nans and how != "count":
        return Measurement(math.nan, subject, f"NaN ({nans[0]} is not a number)", detail)
    result = float(_AGGREGATES[how]([value for _, value in items]))
    said = f"; {extra}" if extra else ""
    if how == "count":
        return Measurement(result, subject, f"{len(items)} series{said}", detail)
    text = f"{shown(result)} ({how} of {len(items)} series{said})"
    return Measurement(result, subject, text, detail)


def _quantiles(
    limit: MetricLimit, selector: str, buckets: dict[Labels, float]
) -> list[Measurement]:
    """Each histogram's quantile (its series grouped by their labels without ``le``); ``sum``
    merges the buckets first, as ``histogram_quantile(q, sum by (le) (…))`` does."""
    assert limit.quantile is not None
    merge = limit.aggregate == "sum"
    groups: dict[Labels, dict[float, float]] = {}
    for labels, count in buckets.items():
        le = dict(labels).get("le")
        if le is None:
            continue
        key = () if merge else tuple(pair for pair in labels if pair[0] != "le")
        group = groups.setdefault(key, {})
        group[float(le)] = group.get(float(le), 0.0) + count
    base = limit.metric.removesuffix("_bucket")
    label = f"p{limit.quantile * 100:g}"
    results: list[Measurement] = []
    for labels, counts in sorted(groups.items()):
        pairs = sorted(counts.items())
        value, why = histogram_quantile(limit.quantile, pairs)
        text = (
            f"NaN ({why})"
            if why
            else f"{format_value(value, limit.kind)} ({label} of {pairs[-1][1]:g} observations)"
        )
        subject = selector if merge else series_name(base, labels)
        results.append(Measurement(value, subject, text))
    if limit.aggregate in ("max", "min"):
        items = [(m.subject, m.value) for m in results]
        return [_aggregate(limit.aggregate, selector, items, lambda v: _shown(v, limit.kind))]
    return results


def histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> tuple[float, str]:
    """PromQL's ``histogram_quantile``: ``buckets`` are (upper bound, cumulative count) sorted
    by bound, ending at +Inf. The rank ``q × count`` falls in one bucket, where the value is
    interpolated linearly from its lower to its upper bound; in the +Inf bucket it is the
    highest finite bound. NaN, with the reason, when it cannot be computed."""
    if len(buckets) < 2 or not math.isinf(buckets[-1][0]):
        return math.nan, "no +Inf bucket: not a complete histogram"
    fixed: list[tuple[float, float]] = []
    top = 0.0
    for le, count in buckets:  # counts must not fall between buckets (as PromQL fixes them)
        top = max(top, count)
        fixed.append((le, top))
    total = fixed[-1][1]
    if total == 0:
        return math.nan, "no observations"
    rank = q * total
    index = next(i for i, (_, count) in enumerate(fixed) if count >= rank)
    if index == len(fixed) - 1:
        return fixed[-2][0], ""
    upper, count = fixed[index]
    if index == 0 and upper <= 0:
        return upper, ""
    lower, below = (0.0, 0.0) if index == 0 else fixed[index - 1]
    return lower + (upper - lower) * (rank - below) / (count - below), ""
