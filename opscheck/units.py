"""Quantities with units as operators write them: "500ms", "26h", "10MB", "80%".

Every quantity is kept in a base unit: seconds, bytes, percent, or a plain number.
"""

from __future__ import annotations

import re
from typing import Literal

# "state": a yes/no answer (1 yes, 0 no) that takes no levels.
Kind = Literal["duration", "size", "percent", "number", "days", "state"]

_DURATION = {"ms": 0.001, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = {
    "B": 1,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}
_EXAMPLES: dict[Kind, str] = {
    "duration": "a duration such as '500ms', '5s', '26h' or '7d'",
    "size": "a size such as '512KB', '10MB', '2GiB'",
    "percent": "a percentage such as '80%'",
    "number": "a number such as 100",
    "days": "a number of days such as 14 or '14d'",
    "state": "no level (a yes/no check)",
}
_UNITS: dict[Kind, tuple[str, ...]] = {
    "duration": tuple(_DURATION),
    "size": tuple(_SIZE),
    "percent": ("%",),
    "number": (),
    "days": ("d",),
    "state": (),
}
_QUANTITY = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*([A-Za-z%]*)\s*$")


class UnitError(ValueError):
    """A value that does not parse as the quantity a setting expects."""


def parse(value: object, kind: Kind) -> float:
    """Parse ``value`` as a quantity of ``kind`` and return it in the base unit."""
    if isinstance(value, bool) or kind == "state":
        raise UnitError(f"expected {_EXAMPLES[kind]}, got {value!r}")
    if isinstance(value, int | float):
        if kind == "duration":
            # A bare number for a duration is ambiguous (ms or s?): demand a unit.
            raise UnitError(f"expected {_EXAMPLES[kind]} (with a unit), got {value!r}")
        number, factor = float(value), 1.0
    elif isinstance(value, str) and (match := _QUANTITY.match(value)):
        number, unit = float(match.group(1)), match.group(2)
        found = _factor(kind, unit)
        if found is None:
            known = f"known: {', '.join(_UNITS[kind])}" if _UNITS[kind] else "write no unit"
            raise UnitError(
                f"expected {_EXAMPLES[kind]}, got {value!r} (unknown unit {unit!r}; {known})"
            )
        factor = found
    else:
        raise UnitError(f"expected {_EXAMPLES[kind]}, got {value!r}")
    # Only plain numbers may be negative: a negative size, duration or percentage is a typo.
    if number < 0 and kind != "number":
        raise UnitError(f"expected {_EXAMPLES[kind]}, got {value!r} (negative)")
    return number * factor


def _factor(kind: Kind, unit: str) -> float | None:
    if kind == "duration":
        return _DURATION.get(unit)
    if kind == "size":
        return _SIZE.get(unit if unit != "b" else "B") if unit else 1
    if kind == "percent":
        return 1 if unit in ("%", "") else None
    if kind == "days":
        return 1 if unit in ("d", "") else None
    return 1 if unit == "" else None


def format_value(value: float, kind: Kind | str) -> str:
    """Render a base-unit value the way an operator reads it."""
    if kind == "duration":
        if abs(value) < 1:
            return f"{value * 1000:.0f} ms"
        if abs(value) < 120:
            return f"{value:.1f} s"
        if abs(value) < 7200:
            return f"{value / 60:.0f} min"
        if abs(value) < 172800:
            return f"{value / 3600:.1f} h"
        return f"{value / 86400:.1f} d"
    if kind == "size":
        for unit in ("TB", "GB", "MB", "KB"):
            if abs(value) >= _SIZE[unit]:
                return f"{value / _SIZE[unit]:.1f} {unit}"
        return f"{value:.0f} B"
    if kind == "percent":
        return f"{value:.1f} %"
    if kind == "days":
        return f"{value:.1f} days"
    if kind == "state":
        return "yes" if value else "no"
    return f"{value:g}"
