"""``json_checks``: assertions on a JSON document in JMESPath (https://jmespath.org), shared by
``[[http]]`` and anything else that reads JSON (a command's stdout)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import field_validator, model_validator

from .base import Direction, InlineLevels, NumberLimit, Strict

JsonScalar = str | int | float | bool
Aggregate = Literal["length", "max", "min", "sum", "avg"]
_FACTS = ("equals", "empty", "any", "all", "none")


def compiled(expression: str) -> Any:
    """The JMESPath expression compiled; a ValueError naming the syntax error."""
    import jmespath
    from jmespath.exceptions import JMESPathError

    if not expression.strip():
        raise ValueError("expected a JMESPath expression such as 'status' or 'items[0].name'")
    try:
        return jmespath.compile(expression)
    except JMESPathError as exc:
        first = str(exc).splitlines()[0]
        why = re.sub(r"^(Invalid|Bad) jmespath expression: |: Parse error at.*$", "", first)
        why = why.rstrip(": ")
        at = getattr(exc, "lex_position", None)
        where = f" at character {at + 1}" if isinstance(at, int) else ""
        why = why[:1].lower() + why[1:]
        raise ValueError(
            f"expected a JMESPath expression, got {expression!r} ({why}{where})"
        ) from None


class JsonCheck(Strict):
    """One assertion: a yes/no one (``equals``, ``empty``, ``any``/``all``/``none``) or a number
    judged with levels (``warn``/``crit``), optionally an aggregate of a list or a ratio."""

    path: str
    name: str | None = None
    equals: JsonScalar | None = None
    empty: bool | None = None
    any: str | None = None
    all: str | None = None
    none: str | None = None
    aggregate: Aggregate | None = None
    of: str | None = None
    warn: float | None = None
    crit: float | None = None
    direction: Direction | None = None

    @field_validator("path", "any", "all", "none", "of")
    @classmethod
    def _expression(cls, expression: str | None) -> str | None:
        if expression is not None:
            compiled(expression)
        return expression

    @model_validator(mode="after")
    def _one_kind(self) -> JsonCheck:
        facts = [key for key in _FACTS if getattr(self, key) is not None]
        levels = self.warn is not None or self.crit is not None
        number_keys = [k for k in ("aggregate", "of", "direction") if getattr(self, k) is not None]
        if len(facts) > 1:
            raise ValueError(f"expected one of {', '.join(_FACTS)}, got {' and '.join(facts)}")
        if facts and (levels or number_keys):
            extra = number_keys + [k for k in ("warn", "crit") if getattr(self, k) is not None]
            raise ValueError(
                f"expected {facts[0]} alone (a yes/no check) or warn/crit levels, "
                f"got {facts[0]} with {', '.join(extra)}"
            )
        if not facts and not levels and number_keys:
            raise ValueError(f"expected warn or crit levels to judge {number_keys[0]} by, got none")
        if not facts and not levels:
            raise ValueError(
                "expected what to check: equals, empty, any, all, none, or warn/crit levels "
                "(with aggregate or of)"
            )
        if self.aggregate is not None and self.of is not None:
            raise ValueError("expected aggregate or of (a ratio of two numbers), not both")
        return self

    @property
    def label(self) -> str:
        """The check in messages: its name, else its path (``errors / total`` for a ratio)."""
        if self.name:
            return self.name
        return f"{self.path} / {self.of}" if self.of is not None else self.path

    @property
    def limit(self) -> NumberLimit | None:
        """The inline levels of a number check; None for a yes/no one."""
        if self.warn is None and self.crit is None:
            return None
        return NumberLimit(warn=self.warn, crit=self.crit, direction=self.direction)


def json_check_levels(
    key: str, where: tuple[int | str, ...], checks: Iterable[JsonCheck]
) -> Iterator[InlineLevels]:
    """The inline levels of the number checks, for the thresholds' validation."""
    for index, check in enumerate(checks):
        if check.limit is not None:
            yield InlineLevels(key, (*where, index), check.limit)
