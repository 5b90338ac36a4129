"""Reading the JSON results of a run: each test's records, one per judged value."""

from __future__ import annotations

from typing import Any


def values(result: dict[str, Any]) -> list[Any]:
    """The measured values of one test's records, in their base units, in judging order (None
    where a record holds no number)."""
    return [record["value"] for record in result["records"]]
