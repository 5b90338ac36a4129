"""``[[host.commands]]``: the operator's own read-only command on a ``[[host]]``, and what to
judge of it: its exit status, a number it prints, its count of output lines, or its JSON."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from .base import CHECK_LIMIT, InlineLevels, Limit, Name, NumberLimit, at_most, given_levels
from .http import JsonValue
from .json_checks import JsonCheck, json_check_levels

# What a printed number is, and the check key judging it (the key's kind formats the value and
# parses the levels), as `[[metrics.limits]]` has them.
VALUE_UNITS: dict[str, str] = {
    "number": "host.command_value",
    "seconds": "host.command_value_seconds",
    "bytes": "host.command_value_bytes",
    "percent": "host.command_value_percent",
}
Unit = Literal["number", "seconds", "bytes", "percent"]


def _exit(code: int) -> int:
    if not 0 <= code <= 255:
        raise ValueError(f"expected an exit status 0-255, got {code}")
    return code


def _one_group(pattern: str) -> str:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"expected a regular expression, got {pattern!r} ({exc})") from None
    if compiled.groups != 1:
        raise ValueError(
            f"expected a regex with exactly one group around the number, such as "
            f"'(\\d+) upgradable', got {pattern!r} ({compiled.groups} groups)"
        )
    return pattern


def _one_line_command(run: str) -> str:
    if "\x00" in run or not run.strip():
        raise ValueError(f"expected a shell command such as 'df -h /', got {run!r}")
    return run


ExitCodes = Annotated[
    list[Annotated[int, AfterValidator(_exit)]],
    BeforeValidator(lambda v: [v] if isinstance(v, int) and not isinstance(v, bool) else v),
]


class HostCommand(Limit):
    """A shell command run on the host through its connection (read-only: the operator's own),
    and what to judge of it. Without ``count``, ``json``, ``json_limits``, ``regex`` or levels,
    only the exit status is judged."""

    name: Name
    run: Annotated[str, AfterValidator(_one_line_command)]
    # Stopped on the host (coreutils `timeout`) past this; default: the target's timeout.
    timeout: Annotated[float, at_most("4m", CHECK_LIMIT)] | None = None
    expect_exit: ExitCodes = Field(default_factory=lambda: [0], min_length=1)
    regex: Annotated[str, AfterValidator(_one_group)] | None = Field(default=None, min_length=1)
    unit: Unit = "number"
    count: Literal["lines"] | None = None
    json_fields: dict[str, JsonValue] = Field(default_factory=dict, alias="json")
    json_limits: dict[str, NumberLimit] = Field(default_factory=dict)
    json_checks: list[JsonCheck] = Field(default_factory=list)  # JMESPath, as [[http]]'s

    @field_validator("warn", "crit")
    @classmethod
    def _no_boolean(cls, level: object) -> object:
        if isinstance(level, bool):
            raise ValueError(f"expected a number or a quantity such as '1GB', got {level!r}")
        return level

    @model_validator(mode="after")
    def _one_judgement(self) -> HostCommand:
        levels = self.model_fields_set & {"warn", "crit", "direction"}
        json = self.judges_json
        if json and (levels or self.regex or self.count or "unit" in self.model_fields_set):
            raise ValueError(
                "expected json/json_limits/json_checks or a number (warn, crit, regex, unit, "
                "count), not both"
            )
        if self.count and (self.regex or "unit" in self.model_fields_set):
            raise ValueError('expected count = "lines" or a number parsed by regex/unit, not both')
        if self.judges_number and not self.model_fields_set & {"warn", "crit"}:
            raise ValueError(
                "expected warn and/or crit for a number printed by the command (or leave out "
                "regex, unit and count to judge the exit status only)"
            )
        return self

    @property
    def judges_number(self) -> bool:
        """A number (parsed from stdout, or the count of lines) is judged with levels."""
        given = self.model_fields_set & {"warn", "crit", "direction", "regex", "unit", "count"}
        return bool(given)

    @property
    def judges_json(self) -> bool:
        return bool(self.json_fields or self.json_limits or self.json_checks)

    @property
    def key(self) -> str:
        """The check key judging this command's number."""
        return "host.command_lines" if self.count else VALUE_UNITS[self.unit]

    def levels(self) -> Limit:
        return given_levels(self, seconds=self.unit == "seconds")

    def inline_levels(self, index: int) -> Iterator[InlineLevels]:
        if self.judges_number:
            yield InlineLevels(self.key, ("commands", index), self.levels())
        for path, limit in self.json_limits.items():
            yield InlineLevels(
                "host.command_json_limits", ("commands", index, "json_limits", path), limit
            )
        where = ("commands", index, "json_checks")
        yield from json_check_levels("host.command_json_value", where, self.json_checks)
