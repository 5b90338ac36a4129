"""``[[postgres]]``: a PostgreSQL server, reached read-only, and the runbook's own queries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated

from pydantic import AfterValidator, Field

from .base import Duration, InlineLevels, Name, NumberLimit, Target, unique, unique_names


class SqlQuery(NumberLimit):
    """A user-defined check: a read-only query returning one number, judged against its levels
    (``warn``, ``crit``, ``direction``, as ``thresholds.toml`` writes them for ``postgres.query``).
    """

    name: Name
    sql: str = Field(min_length=1)
    description: str = ""


# A password written into the DSN would end up in the inventory file and in libpq's errors.
_DSN_PASSWORD = re.compile(r"(^|\s)password\s*=|^postgres(?:ql)?://[^/@]*:[^/@]*@|[?&]password=")


_NO_PASSWORD = "expected a DSN without a password (name the variable that holds it in password_env)"
# Options libpq reads as a choice or a number, checked here: libpq parses them only when it
# connects, and the first check would fail with what start-up can say.
_DSN_CHOICES = {
    "sslmode": ("disable", "allow", "prefer", "require", "verify-ca", "verify-full"),
    "target_session_attrs": (
        "any", "read-write", "read-only", "primary", "standby", "prefer-standby",
    ),
}  # fmt: skip


def _dsn_without_password(dsn: str) -> str:
    """A DSN without a password, parsed at start-up by libpq's own parser (through psycopg), as
    the connection will read it; its errors never show a password (one is refused first)."""
    if _DSN_PASSWORD.search(dsn):
        raise ValueError(_NO_PASSWORD)
    from psycopg import ProgrammingError
    from psycopg.conninfo import conninfo_to_dict

    try:
        options = conninfo_to_dict(dsn)
    except ProgrammingError as exc:
        raise ValueError(
            "expected a libpq DSN such as 'host=db port=5432 dbname=app user=opscheck' or a "
            f"postgresql:// URI, got {dsn!r} ({str(exc).strip()})"
        ) from None
    if "password" in options:
        raise ValueError(_NO_PASSWORD)
    for port in str(options.get("port", "")).split(","):  # one per host: "5432,5433"
        if port and not (port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"expected port 1-65535 in the DSN, got {port!r}")
    for key, choices in _DSN_CHOICES.items():
        value = options.get(key)
        if value is not None and value not in choices:
            listed = ", ".join(choices)
            raise ValueError(f"expected {key} = one of {listed} in the DSN, got {value!r}")
    return dsn


Dsn = Annotated[str, AfterValidator(_dsn_without_password)]


class PostgresTarget(Target):
    # libpq "host=… port=… dbname=… user=…" or a postgresql:// URI, without the password.
    dsn: Annotated[Dsn, Field(min_length=1)]
    password_env: str | None = None
    tables: Annotated[list[str], unique("table")] = Field(default_factory=list)
    queries: Annotated[list[SqlQuery], AfterValidator(unique_names)] = Field(default_factory=list)
    # Runbook: "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query_start <
    # now() - interval '5 seconds'": the age at which an active query counts as long-running.
    long_query: Duration = 5.0
    # Other sessions' SQL in messages: shown with literals masked (`WHERE email = ?`), utility
    # statements (ALTER ROLE ... PASSWORD) by their command tag; false: only command tags.
    query_text: bool = True

    def inline_levels(self) -> Iterator[InlineLevels]:
        for index, query in enumerate(self.queries):
            yield InlineLevels("postgres.query", ("queries", index), query)
