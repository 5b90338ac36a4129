"""What every schema module builds on: strict models, the ``Target`` base every component's
targets share, durations, names, and warn/crit levels as TOML writes them."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
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


def at_most(limit: str, why: str) -> BeforeValidator:
    """A duration above zero and at most ``limit``, as written (``'30s'``): past it a check
    would outlive its own bounds, so the run says so at start-up instead of a timeout later."""
    ceiling = units.parse(limit, "duration")

    def check(value: object) -> float:
        seconds = _duration(value)
        if seconds > ceiling:
            raise ValueError(f"expected a duration up to {limit} ({why}), got {value!r}")
        return seconds

    return BeforeValidator(check)


def unique(noun: str, why: str = "", key: Callable[[Any], Any] = lambda entry: entry) -> Any:
    """Each entry of a list once: a second one is a copy-paste slip (``why``: what it breaks)."""

    def check(entries: list[Any]) -> list[Any]:
        seen = [key(entry) for entry in entries]
        for index, value in enumerate(seen):
            if value in seen[:index]:
                first = seen.index(value)
                suffix = f"; {why}" if why else ""
                raise ValueError(
                    f"duplicate {noun} {value!r} (entries {first} and {index}{suffix})"
                )
        return entries

    return AfterValidator(check)


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
# pytest.ini's timeout, the safety net that ends a check stuck past its own bounds with a
# traceback: a bound the inventory sets for one check stays inside it.
CHECK_LIMIT = "a check is stopped after 5m"
# Every network call of a target waits at most this long; a target that stops answering costs
# about one timeout, well inside that safety net.
Timeout = Annotated[float, at_most("2m", "every network call waits up to this long")]
Name = Annotated[str, AfterValidator(_name)]
# `contains = "ok"` or `contains = ["ok", "ready"]`: one text or a list of them.
Texts = Annotated[list[str], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)]


class Strict(BaseModel):
    # strict: TOML has real types, so "10" for a number or "yes" for a boolean is a mistake.
    # allow_inf_nan: TOML has `nan` and `inf`, and a level of nan compares false to everything.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class Limit(Strict):
    """warn/crit levels as written in TOML; parsed against the check's unit when resolved."""

    # int beside float keeps a level as written (`-1`, not `-1.0`) in messages about it.
    warn: str | int | float | None = None
    crit: str | int | float | None = None
    direction: Direction | None = None


def given_levels(entry: BaseModel, seconds: bool) -> Limit:
    """The ``warn``/``crit``/``direction`` an inventory entry wrote, as its key's kind parses
    them: with ``seconds``, a bare number is seconds (``units`` asks durations for a unit)."""
    given = entry.model_fields_set & {"warn", "crit", "direction"}
    values = {field: getattr(entry, field) for field in given}
    for level in ("warn", "crit"):
        value = values.get(level)
        if seconds and isinstance(value, int | float):
            values[level] = f"{value!r}s"
    return Limit(**values)


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
    timeout: Timeout | None = None
    # Which runs include this target (built-in or settings.schedules names); default: all.
    schedules: Annotated[
        list[str] | None,
        not_empty("schedule", "to switch the target off, remove it from the inventory"),
        unique("schedule"),
    ] = None
    # Check ids (`host.disk_used_below_limit`) of the target's own component.
    checks: Annotated[
        list[str],
        not_empty("check id", "leave checks out to run every check of the target"),
        unique("check id"),
    ] = Field(default_factory=list)
    skip: Annotated[list[str], unique("check id")] = Field(default_factory=list)

    @model_validator(mode="after")
    def _checks_or_skip(self) -> Target:
        if self.checks and self.skip:
            raise ValueError("expected checks (only these run) or skip (all but these), not both")
        return self

    def inline_levels(self) -> Iterator[InlineLevels]:
        """The levels this target writes for its entries; none by default."""
        return iter(())

    def __repr_args__(self) -> Iterator[tuple[str, Any]]:
        """``HttpTarget(name='api')``: only the name. Any other value may hold a secret (a
        ``${VAR}`` in a header or a URL), and pytest shows a failed check's arguments, its
        target among them, in the traceback."""
        yield "name", self.name
