"""``[[sqlite]]``: an application's SQLite file, here or on a ``[[host]]``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from pydantic import Field

from .base import CHECK_LIMIT, InlineLevels, NumberLimit, Target, at_most


def table_levels(limit: NumberLimit) -> NumberLimit:
    """A table's levels as judged: ``direction = "above"`` alone drops the default "crit below
    1 row" (``events = { warn = 10000, direction = "above" }`` watches growth only)."""
    if limit.direction == "above" and "crit" not in limit.model_fields_set:
        return limit.model_copy(update={"crit": None})
    return limit


class SqliteTarget(Target):
    path: str = Field(min_length=1)
    host: str | None = None  # a [[host]] target the file lives on; default: this machine
    tables: dict[str, NumberLimit] = Field(default_factory=dict)
    # PRAGMA integrity_check and COUNT(*) read every page: minutes on a big file, not seconds.
    query_timeout: Annotated[float, at_most("4m", CHECK_LIMIT)] = 60.0

    def levels(self, table: str) -> NumberLimit:
        """The levels ``table``'s row count is judged by (see ``table_levels``)."""
        return table_levels(self.tables[table])

    def inline_levels(self) -> Iterator[InlineLevels]:
        for table in self.tables:
            yield InlineLevels("sqlite.table_rows", ("tables", table), self.levels(table))
