"""Date templates in paths and prefixes: ``logs/api-{date:%Y-%m-%d}.log``, ``{date:%Y/%m/%d}/``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

_FIELD = re.compile(r"\{date(?::([^}]*))?\}")


def render(template: str, day: date | None = None) -> str:
    """Fill each ``{date:FMT}`` (strftime; ``{date}`` is ISO) with ``day`` (default: today UTC)."""
    day = day or datetime.now(UTC).date()
    return _FIELD.sub(lambda m: day.strftime(m.group(1) or "%Y-%m-%d"), template)


def has_date(template: str) -> bool:
    return bool(_FIELD.search(template))


def recent_days(count: int, today: date | None = None) -> list[date]:
    """Today and the ``count - 1`` days before it, newest first."""
    today = today or datetime.now(UTC).date()
    return [today - timedelta(days=n) for n in range(count)]
