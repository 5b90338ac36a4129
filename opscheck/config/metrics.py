"""``[[metrics]]``: an application's own ``/metrics`` (Prometheus text format or OpenMetrics)
and limits on the metrics it exposes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from opscheck import units

from .api import ApiTarget
from .base import CHECK_LIMIT, InlineLevels, Limit, Name, at_most, given_levels, unique

Aggregate = Literal["sum", "max", "min", "avg", "count"]
# What a limit's number is, and the check key judging it (the key's kind formats the value and
# parses the levels): Prometheus's base units, as `[[prometheus.queries]]` has them.
LIMIT_UNITS: dict[str, str] = {
    "number": "metrics.limit",
    "seconds": "metrics.limit_seconds",
    "bytes": "metrics.limit_bytes",
    "percent": "metrics.limit_percent",
}
_KINDS: dict[str, units.Kind] = {
    "number": "number",
    "seconds": "duration",
    "bytes": "size",
    "percent": "percent",
}
Unit = Literal["number", "seconds", "bytes", "percent"]
# Two scrapes `rate` apart, each up to the timeout, stay inside the check's own limit.
RATE_LIMIT = "2m"
_CHECK_SECONDS = 300


class MetricLimit(Limit):
    """One metric of the exposition, its matching series reduced to values, with levels in
    its ``unit`` (``warn = 0.5`` or ``"500ms"`` for seconds, ``"1GB"`` for bytes)."""

    name: Name
    metric: str = Field(min_length=1)
    labels: dict[str, str] = Field(default_factory=dict)  # exact values: { queue = "emails" }
    aggregate: Aggregate | None = None  # none: each matching series judged on its own
    unit: Unit = "number"
    # A counter's increase per second between two scrapes this far apart.
    rate: Annotated[float | None, at_most(RATE_LIMIT, "the check waits this long")] = None
    # A quantile of a histogram (its `_bucket` series), as PromQL's histogram_quantile.
    quantile: float | None = Field(default=None, gt=0, lt=1)

    @field_validator("metric")
    @classmethod
    def _metric_name(cls, metric: str) -> str:
        if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", metric):
            raise ValueError(
                f"expected a metric name such as 'http_requests_total' (letters, digits, _ "
                f"and :), got {metric!r}; write label matchers in labels"
            )
        return metric

    @field_validator("warn", "crit")
    @classmethod
    def _no_boolean(cls, level: object) -> object:
        if isinstance(level, bool):
            raise ValueError(f"expected a number or a quantity such as '350ms', got {level!r}")
        return level

    @model_validator(mode="after")
    def _quantiles_combine(self) -> MetricLimit:
        if self.quantile is not None and self.aggregate not in (None, "sum", "max", "min"):
            raise ValueError(
                f"aggregate {self.aggregate!r} does not combine quantiles: use sum (merges the "
                "series' buckets first), max or min"
            )
        return self

    @property
    def key(self) -> str:
        """The check key judging this limit's values (its unit's)."""
        return LIMIT_UNITS[self.unit]

    @property
    def kind(self) -> units.Kind:
        return _KINDS[self.unit]

    def levels(self) -> Limit:
        return given_levels(self, seconds=self.unit == "seconds")


class MetricsTarget(ApiTarget):
    url: str  # the exposition's full URL: http://app:8000/metrics
    # A limit's name is its test id (`app/queue_depth`): the same name twice would be one test.
    limits: Annotated[
        list[MetricLimit], unique("limit name", "it becomes the test id", key=lambda m: m.name)
    ] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rate_in_time(self) -> MetricsTarget:
        timeout = self.timeout or 0
        for index, limit in enumerate(self.limits):
            if limit.rate is not None and limit.rate + 2 * timeout > _CHECK_SECONDS:
                raise ValueError(
                    f"limits[{index}]: rate {limit.rate:g} s plus two scrapes of timeout "
                    f"{timeout:g} s exceeds 5m ({CHECK_LIMIT})"
                )
        return self

    def inline_levels(self) -> Iterator[InlineLevels]:
        for index, limit in enumerate(self.limits):
            yield InlineLevels(limit.key, ("limits", index), limit.levels())
