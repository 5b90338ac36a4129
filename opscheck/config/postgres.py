"""``[[postgres]]``: a PostgreSQL server, reached read-only, and the runbook's own queries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from pydantic import AfterValidator, Field

from .base import Duration, InlineLevels, Name, NumberLimit, Target, unique_names


class SqlQuery(NumberLimit):
    """A user-defined check: a read-only query returning one number, judged against its levels
    (``warn``, ``crit``, ``direction``, as ``thresholds.toml`` writes them for ``postgres.query``).
    """

    name: Name
    sql: str = Field(min_length=1)
    description: str = ""


# A password written into the DSN would end up in the inventory file and in libpq's errors.
_DSN_PASSWORD = re.compile(r"(^|\s)password\s*=|^postgres(?:ql)?://[^/@]*:[^/@]*@|[?&]password=")


def _dsn_without_password(dsn: str) -> str:
    if _DSN_PASSWORD.search(dsn):
        raise ValueError(
            "expected a DSN without a password (name the variable that holds it in password_env)"
        )
    return dsn


Dsn = Annotated[str, AfterValidator(_dsn_without_password)]


class PostgresTarget(Target):
    # libpq "host=… port=… dbname=… user=…" or a postgresql:// URI, without the password.
    dsn: Annotated[Dsn, Field(min_length=1)]
    password_env: str | None = None
    tables: list[str] = Field(default_factory=list)
    queries: Annotated[list[SqlQuery], AfterValidator(unique_names)] = Field(default_factory=list)
    # Runbook: "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query_start <
    # now() - interval '5 seconds'": the age at which an active query counts as long-running.
    long_query: Duration = 5.0

    def inline_levels(self) -> Iterator[InlineLevels]:
        for index, query in enumerate(self.queries):
            yield InlineLevels("postgres.query", ("queries", index), query)
