"""``[[prometheus]]``: a Prometheus server, read through its HTTP API, and the runbooks' PromQL."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from .api import ApiTarget
from .base import Duration, InlineLevels, Limit, Name, unique_names

# What a query's number is, and the check key judging it (the key's kind formats the value and
# parses the levels): Prometheus's own base units, seconds and bytes.
QUERY_UNITS = {
    "number": "prometheus.query",
    "seconds": "prometheus.query_seconds",
    "bytes": "prometheus.query_bytes",
    "percent": "prometheus.query_percent",
}
Unit = Literal["number", "seconds", "bytes", "percent"]


class PromQuery(Limit):
    """A runbook's PromQL line: every series it returns judged against ``warn``/``crit``.

    Levels are numbers in the query's own unit (``warn = 0.35`` for 350 ms of a ``seconds``
    query, as PromQL compares them) or quantities (``warn = "350ms"``, ``crit = "2GB"``).
    """

    name: Name
    query: str = Field(min_length=1)
    unit: Unit = "number"
    description: str = ""
    # The condition held for this whole window (a range query up to now), not just now.
    for_: Duration | None = Field(default=None, alias="for")
    # An empty result often means the exporter died: CRIT unless said otherwise.
    empty: Literal["ok", "warn", "crit"] = "crit"
    top: int = Field(default=5, ge=1, le=100)  # series listed in the detail

    @field_validator("warn", "crit")
    @classmethod
    def _no_boolean(cls, level: object) -> object:
        if isinstance(level, bool):
            raise ValueError(f"expected a number or a quantity such as '350ms', got {level!r}")
        return level

    @model_validator(mode="after")
    def _window_fits(self) -> PromQuery:
        if self.for_ is not None and self.for_ > 7 * 86400:
            raise ValueError("expected for up to 7d (a range query over longer is too heavy)")
        return self

    @property
    def key(self) -> str:
        """The check key judging this query's values (its unit's)."""
        return QUERY_UNITS[self.unit]

    def levels(self) -> Limit:
        """``warn``/``crit`` as the key's kind parses them: a bare number of a ``seconds`` query
        is seconds (``units`` asks durations for a unit)."""
        given = self.model_fields_set & {"warn", "crit", "direction"}
        values = {field: getattr(self, field) for field in given}
        for level in ("warn", "crit"):
            value = values.get(level)
            if self.unit == "seconds" and isinstance(value, int | float):
                values[level] = f"{value!r}s"
        return Limit(**values)


class PrometheusTarget(ApiTarget):
    url: str = "http://127.0.0.1:9090"
    queries: Annotated[list[PromQuery], AfterValidator(unique_names)] = Field(default_factory=list)

    def inline_levels(self) -> Iterator[InlineLevels]:
        for index, query in enumerate(self.queries):
            yield InlineLevels(query.key, ("queries", index), query.levels())
