"""What every schema module builds on: strict models, the ``Target`` base every component's
targets share, durations, names, and warn/crit levels as TOML writes them."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from opscheck import units

Direction = Literal["above", "below"]
Schedule = Literal["morning", "midday", "evening", "weekly", "monthly"]  # the built-in ones


def _duration(value: object) -> float:
    seconds = units.parse(value, "duration")
    if seconds <= 0:
        raise ValueError(f"expected a duration above zero such as '5s', got {value!r}")
    return seconds


def _name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:@/-]+", value):
        raise ValueError(
            f"expected a name of letters, digits and _ . : @ / - (it becomes the test id), "
            f"got {value!r}"
        )
    return value


def unique_names(entries: list[Any]) -> list[Any]:
    """Names of a target's list entries become test ids: each must be unique."""
    names = [entry.name for entry in entries]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"duplicate query name {name!r} (it becomes the test id)")
    return entries


def not_empty(what: str, why: str) -> AfterValidator:
    def check(items: list[Any]) -> list[Any]:
        if not items:
            raise ValueError(f"expected at least one {what} ({why})")
        return items

    return AfterValidator(check)


Duration = Annotated[float, BeforeValidator(_duration)]
Name = Annotated[str, AfterValidator(_name)]
# `contains = "ok"` or `contains = ["ok", "ready"]`: one text or a list of them.
Texts = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]


class Strict(BaseModel):
    # strict: TOML has real types, so "10" for a number or "yes" for a boolean is a mistake.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Limit(Strict):
    """warn/crit levels as written in TOML; parsed against the check's unit when resolved."""

    # int beside float keeps a level as written (`-1`, not `-1.0`) in messages about it.
    warn: str | int | float | None = None
    crit: str | int | float | None = None
    direction: Direction | None = None


class LimitWithTargets(Limit):
    targets: dict[str, Limit] = Field(default_factory=dict)


class NumberLimit(Limit):
    """An inline limit in the inventory (``json_limits``): plain numbers, no units."""

    warn: float | None = None
    crit: float | None = None


@dataclass(frozen=True)
class InlineLevels:
    """Levels a target writes in the inventory for one of its entries (a queue, a query ...),
    layered last onto its check key's threshold, as the suite passes them to ``limits.check``."""

    key: str  # the check key: "redis.queue_depth"
    where: tuple[int | str, ...]  # the entry's key path inside the target: ("queues", 0)
    limit: Limit
    keys: Mapping[str, str] = field(default_factory=dict)  # level -> key written: crit -> "min"


class Target(Strict):
    """What every target of every component has: a name (the test id), a timeout and which
    checks of which runs apply to it."""

    name: Name
    timeout: Duration | None = None
    # Which runs include this target (built-in or settings.schedules names); default: all.
    schedules: Annotated[
        list[str] | None,
        not_empty("schedule", "to switch the target off, remove it from the inventory"),
    ] = None
    # Check ids (`host.disk_used_below_limit`) of the target's own component.
    checks: Annotated[
        list[str], not_empty("check id", "leave checks out to run every check of the target")
    ] = Field(default_factory=list)
    skip: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _checks_or_skip(self) -> Target:
        if self.checks and self.skip:
            raise ValueError("expected checks (only these run) or skip (all but these), not both")
        return self

    def inline_levels(self) -> Iterator[InlineLevels]:
        """The levels this target writes for its entries; none by default."""
        return iter(())
