"""``[[growth]]``: growth of a check's values judged from the history store: days until full
(a linear fit over a window) and growth per day or per week against limits in %."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator, model_validator

from opscheck import units
from opscheck.checks import CHECKS

from .base import InlineLevels, Limit, Strict, Target
from .errors import close_to

# The checks whose history can be judged: every key with a numeric value. Growth's own keys and
# yes/no checks (1/0) have no capacity that fills.
# Growth key -> the entry's key holding its levels.
GROWTH_KEYS = {
    "growth.days_until_full": "days_until_full",
    "growth.per_day_pct": "per_day",
    "growth.per_week_pct": "per_week",
}
_FULL_EXAMPLE = {"size": "500GB", "duration": "30d", "days": "365d"}
FITTED = tuple(k for k, s in CHECKS.items() if s.kind != "state" and not k.startswith("growth."))


class GrowthLevels(Strict):
    """``{warn = 14, crit = 7}``: levels as written, parsed in the growth key's unit."""

    warn: str | int | float | None = None
    crit: str | int | float | None = None

    def limit(self) -> Limit:
        return Limit(**{level: getattr(self, level) for level in self.model_fields_set})


class GrowthTarget(Target):
    # The check key whose records are judged: "host.disk_used_pct", "postgres.database_size".
    check: str
    # Which of its series: the target and subject names, as globs ("web*", "/var*").
    target: str = Field(default="*", min_length=1)
    subject: str = Field(default="*", min_length=1)
    window_days: Annotated[float, Field(gt=0, le=3650)] = 14
    # Not judged before the history holds this many runs over this many days.
    min_runs: Annotated[int, Field(ge=2)] = 3
    min_span_days: Annotated[float, Field(ge=0)] = 2
    # The capacity in the check's unit ("500GB"); a percentage fills at 100 %.
    full: str | int | float | None = None
    days_until_full: GrowthLevels | None = None
    per_day: GrowthLevels | None = None  # % since the newest value at least a day older
    per_week: GrowthLevels | None = None  # % since the newest value at least a week older

    @field_validator("check")
    @classmethod
    def _known(cls, check: str) -> str:
        spec = CHECKS.get(check)
        if spec is not None and spec.kind == "state":
            raise ValueError(f"{check} is a yes/no check: its records have no value that grows")
        if check not in FITTED:
            close = close_to(check, FITTED)
            hint = f" (did you mean {close!r}?)" if close else ""
            raise ValueError(
                "expected the check key of a measured value, such as 'host.disk_used_pct' or "
                f"'postgres.database_size', got {check!r}{hint}"
            )
        return check

    @field_validator("full")
    @classmethod
    def _capacity(cls, full: str | int | float | None, info: ValidationInfo) -> Any:
        check = info.data.get("check")  # absent: its own mistake is reported
        if full is None or check is None:
            return full
        if units.parse(full, CHECKS[check].kind) <= 0:  # a UnitError is a ValueError
            raise ValueError(f"expected a capacity above zero, got {full!r}")
        return full

    @model_validator(mode="after")
    def _judged(self) -> GrowthTarget:
        kind = CHECKS[self.check].kind
        if self.full is None and self.days_until_full is not None and kind != "percent":
            raise ValueError(
                f"days_until_full needs full: the capacity of {self.check} in its unit "
                f"(such as {_FULL_EXAMPLE.get(kind, '1000')!r})"
            )
        if self.capacity is None and self.per_day is None and self.per_week is None:
            raise ValueError(
                f"expected full (for days until full), per_day or per_week: nothing to judge of "
                f"{self.check}"
            )
        return self

    @property
    def kind(self) -> units.Kind:
        return CHECKS[self.check].kind

    @property
    def capacity(self) -> float | None:
        """``full`` in the check's base unit; 100 for a percentage; None: not judged."""
        if self.full is not None:
            return units.parse(self.full, self.kind)
        return 100.0 if self.kind == "percent" else None

    @property
    def judges_days(self) -> bool:
        return self.capacity is not None

    def levels(self, name: str) -> Limit | None:
        """The levels written for ``days_until_full``, ``per_day`` or ``per_week``, if any."""
        written: GrowthLevels | None = getattr(self, name)
        return None if written is None else written.limit()

    def inline_levels(self) -> Iterator[InlineLevels]:
        for key, name in GROWTH_KEYS.items():
            levels = self.levels(name)
            if levels is not None:
                yield InlineLevels(key, (name,), levels)
