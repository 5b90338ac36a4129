"""Judge a decoded JSON document by ``json_checks`` (JMESPath paths): values, empty lists,
``any``/``all``/``none`` of a list, aggregates and ratios of numbers. Used by ``[[http]]`` and by
any check that reads JSON; it never raises for a wrong document, it answers with a failed fact."""

from __future__ import annotations

import math
import reprlib
from collections.abc import Sequence
from typing import Any

from opscheck.config.base import NumberLimit
from opscheck.config.json_checks import JsonCheck, compiled
from opscheck.judge import Measurement

_SHOWN = reprlib.Repr()  # a JSON value in a message: bounded in depth and length
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother, _SHOWN.maxlist, _SHOWN.maxdict = (
    3,
    120,
    120,
    5,
    5,
)
_LISTED = 3  # elements named in a message (the first firing alerts)


class _NotNumber(Exception):
    """The value is not a finite number; the message says what it is."""


def json_checks(
    document: Any, checks: Sequence[JsonCheck]
) -> list[tuple[Measurement, NumberLimit | None]]:
    """Each check measured on ``document``: a yes/no Measurement.fact with limit None, or a
    number with its inline levels (``warn``/``crit``/``direction``)."""
    return [(json_check(document, check), check.limit) for check in checks]


def json_check(document: Any, check: JsonCheck) -> Measurement:
    found = compiled(check.path).search(document)
    if check.limit is not None:
        return _number_check(document, check, found)
    if check.equals is not None:
        return _equals(check, found)
    if check.empty is not None:
        return _empty(check, found)
    return _matching(check, found)


def number(value: Any, what: str = "") -> float:
    """A JSON number, or a string holding one (``"0.0975"``); finite, not a boolean. ``what``
    names the value in the message when it is not the check's own path (``[2]``, ``of total``)."""
    what = f"{what} " if what else ""
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
        except ValueError:
            raise _NotNumber(f"{what}= {_SHOWN.repr(value)} (not a number)") from None
        value = parsed
    elif value is None:
        raise _NotNumber(f"{what}missing or null")
    elif isinstance(value, bool) or not isinstance(value, int | float):
        raise _NotNumber(f"{what}= {_SHOWN.repr(value)} (not a number)")
    if math.isnan(value) or math.isinf(value):
        raise _NotNumber(f"{what}= {value} (not a finite number)")
    return float(value)


def _shown(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e15 else repr(value)


def _equals(check: JsonCheck, found: Any) -> Measurement:
    expected = check.equals
    wanted = f"= {expected!r}"
    if found is None:
        return Measurement.fact(False, "missing or null", wanted, subject=check.label)
    ok = found == expected and isinstance(found, bool) == isinstance(expected, bool)
    if not ok and isinstance(expected, int | float) and not isinstance(expected, bool):
        try:  # "12" sent for 12
            ok = isinstance(found, str) and number(found) == expected
        except _NotNumber:
            ok = False
    return Measurement.fact(ok, f"= {_SHOWN.repr(found)}", wanted, subject=check.label)


def _empty(check: JsonCheck, found: Any) -> Measurement:
    wanted = "empty" if check.empty else "not empty"
    if found is None:
        is_empty = True
        text = "missing or null"
    elif isinstance(found, list | dict | str):
        is_empty = not found
        kind = {list: "item", dict: "key", str: "character"}[type(found)]
        text = f"{len(found)} {kind}{'' if len(found) == 1 else 's'}"
        if found and isinstance(found, list):
            text += ": " + ", ".join(_SHOWN.repr(item) for item in found[:_LISTED])
            text += ", ..." if len(found) > _LISTED else ""
    else:
        return Measurement.fact(
            False,
            f"= {_SHOWN.repr(found)} (not a list, object or string)",
            wanted,
            subject=check.label,
        )
    return Measurement.fact(is_empty == check.empty, text, wanted, subject=check.label)


def _matching(check: JsonCheck, found: Any) -> Measurement:
    quantifier, condition = next(
        (key, getattr(check, key)) for key in ("any", "all", "none") if getattr(check, key)
    )
    wanted = f"{quantifier} items match {condition}"
    if not isinstance(found, list):
        shown = "missing or null" if found is None else f"= {_SHOWN.repr(found)} (not a list)"
        return Measurement.fact(False, shown, wanted, subject=check.label)
    test = compiled(condition)
    matches = [item for item in found if _truthy(test.search(item))]
    others = [item for item in found if not _truthy(test.search(item))]
    total = len(found)
    if quantifier == "any":
        ok, shown, listed = bool(matches), f"{len(matches)} of {total} match", []
    elif quantifier == "all":
        ok, shown, listed = not others, f"{len(others)} of {total} do not match", others
    else:
        ok, shown, listed = not matches, f"{len(matches)} of {total} match", matches
    if listed:
        shown += ": " + ", ".join(_SHOWN.repr(item) for item in listed[:_LISTED])
        shown += ", ..." if len(listed) > _LISTED else ""
    return Measurement.fact(ok, shown, wanted, subject=check.label)


def _truthy(value: Any) -> bool:
    """JMESPath's truth: false, null and empty lists, objects and strings are false."""
    return value is not None and value is not False and value not in ("", [], {})


def _number_check(document: Any, check: JsonCheck, found: Any) -> Measurement:
    subject = check.label
    try:
        if check.of is not None:
            return _ratio(document, check, found)
        if check.aggregate is None:
            value = number(found)
            return Measurement(value, subject=subject, text=f"= {_shown(value)}")
        return _aggregate(check, found)
    except _NotNumber as exc:
        return Measurement.fact(False, str(exc), "a number", subject=subject)


def _aggregate(check: JsonCheck, found: Any) -> Measurement:
    how, subject = check.aggregate, check.label
    if how == "length":
        if found is None:
            raise _NotNumber("missing or null")
        if not isinstance(found, list | dict | str):
            raise _NotNumber(f"= {_SHOWN.repr(found)} (has no length)")
        return Measurement(len(found), subject=subject, text=f"length {len(found)}")
    if not isinstance(found, list):
        shown = "missing or null" if found is None else f"= {_SHOWN.repr(found)} (not a list)"
        raise _NotNumber(shown)
    values = [number(item, f"[{i}]") for i, item in enumerate(found)]
    if not values and how != "sum":
        raise _NotNumber(f"an empty list (no {how})")
    if how == "max":
        value = max(values)
    elif how == "min":
        value = min(values)
    else:
        value = math.fsum(values) / (len(values) if how == "avg" else 1)
    n = len(values)
    return Measurement(
        value, subject=subject, text=f"{how} {_shown(value)} of {n} value{'' if n == 1 else 's'}"
    )


def _ratio(document: Any, check: JsonCheck, found: Any) -> Measurement:
    assert check.of is not None
    part = number(found, check.path)
    whole = number(compiled(check.of).search(document), check.of)
    if whole == 0:
        raise _NotNumber(f"= {_shown(part)} / 0 (no ratio of a zero {check.of})")
    value = part / whole * 100
    return Measurement(
        value, subject=check.label, text=f"{value:.4g} % ({_shown(part)} / {_shown(whole)})"
    )
