"""The weekly restore test: `pg_restore -d test_restore latest_backup.dump` on a scratch server.

THIS IS THE ONLY CHECK THAT WRITES, and only to the server of ``restore.dsn``, which must never
be production. It creates one database there (``opscheck_restore_<target>_<UTC time>_<random>``),
restores the target's newest PostgreSQL dump into it with ``pg_restore --no-owner
--no-privileges`` (a plain dump with ``psql -v ON_ERROR_STOP=1 --single-transaction``), runs the
``restore.queries`` in a read-only session, and drops the database again in a ``finally``: also
when the copy, the restore or a query fails. It drops no other database.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import re
import secrets
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from opscheck.config import BackupTarget, NumberLimit, RestoreQuery, RestoreTest, secret
from opscheck.judge import Measurement, ProbeError
from opscheck.probes.backup import File, Found, Store
from opscheck.probes.backup_integrity import kind_of
from opscheck.probes.postgres import describe_error
from opscheck.session import environment
from opscheck.units import format_value

if TYPE_CHECKING:
    from collections.abc import Callable

    from psycopg import Connection
    from psycopg.rows import TupleRow

PREFIX = "opscheck_restore_"
ERRORS_SHOWN = 5
_DUMPS = ("pg_custom", "pg_plain")


@dataclass
class Restored:
    """What the restore test did; ``error`` empty when the dump restored."""

    dump: str = ""
    size: int = 0
    server: str = ""
    database: str = ""  # the scratch database ("" when none was created)
    seconds: float = 0.0
    error: str = ""
    errors: list[str] = field(default_factory=list)  # what pg_restore / psql said
    counts: list[tuple[RestoreQuery, float | None, str]] = field(default_factory=list)
    dropped: bool = False
    drop_error: str = ""
    leftovers: list[str] = field(default_factory=list)  # scratch databases of earlier runs

    @property
    def summary(self) -> str:
        if self.error:
            return self.error
        took = format_value(self.seconds, "duration")
        return (
            f"{self.dump} ({format_value(self.size, 'size')}) restored into {self.database} "
            f"on {self.server} in {took}"
        )

    @property
    def cleanup(self) -> str:
        if self.dropped:
            return f"scratch database {self.database} dropped"
        return (
            f"scratch database {self.database} NOT dropped ({self.drop_error}): "
            f"DROP DATABASE {self.database} on {self.server} by hand"
        )

    @property
    def detail(self) -> str:
        lines = self.errors[:ERRORS_SHOWN]
        if len(self.errors) > ERRORS_SHOWN:
            lines.append(f"... and {len(self.errors) - ERRORS_SHOWN} more")
        if self.leftovers:
            lines.append(
                "scratch databases left by earlier runs (drop them by hand): "
                + ", ".join(self.leftovers)
            )
        return "\n".join(lines)


def outcome(restored: Restored) -> Measurement:
    """The dump restored (what, where, how long), or why not; what the tools said in detail."""
    error = bool(restored.error)
    return Measurement.fact(not error, restored.summary, "restores", detail=restored.detail)


def dropped(restored: Restored) -> Measurement:
    """The scratch database is gone again."""
    return Measurement.fact(restored.dropped, restored.cleanup, "dropped")


def query_results(restored: Restored) -> list[tuple[Measurement, NumberLimit | None]]:
    """Each query's value with its level (at least ``min``), or the error it met as a no."""
    results: list[tuple[Measurement, NumberLimit | None]] = []
    for query, value, error in restored.counts:
        if value is None:
            results.append((Measurement.fact(False, f"{query.name}: {error}", "a number"), None))
            continue
        limit = None if query.min is None else NumberLimit(crit=query.min, direction="below")
        results.append((Measurement(value, subject=query.name, text=f"= {value:g}"), limit))
    return results


def newest_dump(found: Found, configured: str) -> File | None:
    """The newest file of a PostgreSQL dump kind among the backups found."""
    for backup in found.backups:
        dumps = [f for f in backup.files if kind_of(f.name, configured) in _DUMPS]
        if dumps:
            return max(dumps, key=lambda f: f.mtime)
    return None


def restore_newest(store: Store, found: Found, target: BackupTarget, timeout: float) -> Restored:
    """Copy the newest dump here when it lies elsewhere, restore it, query it, drop it."""
    settings = target.restore
    assert settings is not None
    deadline = time.monotonic() + settings.timeout
    dump = newest_dump(found, target.kind)
    if dump is None:
        names = ", ".join(b.name for b in found.backups[:3]) or "none"
        return Restored(error=f"no PostgreSQL dump among the backups found ({names})")
    with tempfile.TemporaryDirectory(prefix="opscheck-restore-") as folder:
        path = store.fetch(dump, Path(folder), deadline)
        kind = kind_of(dump.name, target.kind) or "pg_custom"
        password = secret(settings, "password")
        restored = restore(path, kind, settings, password, target.name, timeout, deadline)
    restored.dump, restored.size = dump.name, dump.size
    return restored


def scratch_name(target: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "_", target.lower()).strip("_")[:20]
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    return f"{PREFIX}{slug}_{stamp}_{secrets.token_hex(2)}"


def restore(
    dump: Path,
    kind: str,
    settings: RestoreTest,
    password: str | None,
    target: str,
    timeout: float,
    deadline: float,
) -> Restored:
    """Restore ``dump`` into a new scratch database, run the queries, drop it (always)."""
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(settings.dsn)
    except psycopg.ProgrammingError as exc:
        raise ProbeError(f"restore.dsn: {describe_error(exc)}") from None
    params["connect_timeout"] = max(2, math.ceil(timeout))
    params["application_name"] = "opscheck-restore"
    result = Restored(server=f"{params.get('host', 'localhost')}:{params.get('port', 5432)}")
    # CREATE and DROP DATABASE: dropping a big restored copy removes many files, so they get
    # the restore's own time, not a query's.
    ms = round(settings.timeout * 1000)
    admin_options = f"{params.get('options', '')} -c statement_timeout={ms}".strip()

    def connect() -> Connection[TupleRow]:
        return psycopg.connect(
            make_conninfo("", **{**params, "options": admin_options}),
            password=password,
            autocommit=True,
        )

    try:
        admin = connect()
    except psycopg.Error as exc:
        raise ProbeError(f"scratch server {result.server}: {describe_error(exc)}") from None
    with admin:
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s ORDER BY 1",
            (PREFIX.replace("_", r"\_") + "%",),
        ).fetchall()
        result.leftovers = [r[0] for r in rows]
        name = scratch_name(target)
        try:
            admin.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))
            )
        except psycopg.Error as exc:
            hint = " (the role needs CREATEDB)" if "permission denied" in str(exc) else ""
            result.error = f"CREATE DATABASE on {result.server}: {describe_error(exc)}{hint}"
            return result
        result.database = name
        scratch = {**params, "dbname": name}
        query_ms = round(settings.query_timeout * 1000)
        read_only = f"-c default_transaction_read_only=on -c statement_timeout={query_ms}"
        reader = {**scratch, "options": f"{params.get('options', '')} {read_only}".strip()}
        try:
            start = time.monotonic()
            _load(dump, kind, make_conninfo("", **scratch), password, deadline, result)
            result.seconds = time.monotonic() - start
            if not result.error:
                _query(make_conninfo("", **reader), password, settings, result)
        finally:
            _drop(admin, name, result, connect)
    return result


def _load(
    dump: Path, kind: str, conninfo: str, password: str | None, deadline: float, result: Restored
) -> None:
    env = {**environment(), "PGAPPNAME": "opscheck-restore"}
    if password is not None:
        env["PGPASSWORD"] = password  # the child's environment: never its command line
    gz = dump.name.lower().endswith(".gz")
    if kind == "pg_plain":
        with gzip.open(dump) if gz else dump.open("rb") as head:
            # pg_dump --create writes CREATE DATABASE and \connect: the rest would go elsewhere.
            if re.search(rb"^\\c(onnect)? ", head.read(65536), re.M):
                result.error = (
                    f"{dump.name} was made with pg_dump --create (it switches databases with "
                    "\\connect): restore it by hand, or dump without --create"
                )
                return
        tool = "psql"
        argv = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction"]
        argv += [f"--dbname={conninfo}", "-f", "-" if gz else str(dump)]
    else:
        tool = "pg_restore"
        argv = ["pg_restore", "--no-owner", "--no-privileges", f"--dbname={conninfo}", str(dump)]
    seconds = max(1.0, deadline - time.monotonic())
    try:
        with contextlib.ExitStack() as stack:
            stdin = None
            if gz and kind == "pg_plain":  # streamed: a dump may be bigger than this memory
                unzip = stack.enter_context(
                    subprocess.Popen(["gzip", "-dc", str(dump)], stdout=subprocess.PIPE, env=env)
                )
                stack.callback(unzip.kill)  # psql gone (done, failed, timed out): stop gzip too
                stdin = unzip.stdout
            done = subprocess.run(
                argv, stdin=stdin, capture_output=True, env=env, timeout=seconds, check=False
            )
    except subprocess.TimeoutExpired:
        took = format_value(seconds, "duration")
        result.error = f"{tool} of {dump.name} did not finish within {took} (restore.timeout)"
        return
    except FileNotFoundError:
        raise ProbeError(
            f"{tool}: not found here (Debian: apt-get install postgresql-client)"
        ) from None
    text = done.stderr.decode(errors="replace")
    result.errors = [line for line in text.splitlines() if "error" in line.lower()]
    if done.returncode:
        first = result.errors[0] if result.errors else text.strip()[:300]
        result.error = f"{tool} of {dump.name} failed (exit {done.returncode}): {first}"


def _query(conninfo: str, password: str | None, settings: RestoreTest, result: Restored) -> None:
    """Each query in a read-only session bounded by ``query_timeout`` (set in ``conninfo``)."""
    import psycopg

    try:
        conn = psycopg.connect(conninfo, password=password, autocommit=True)
    except psycopg.Error as exc:
        result.error = f"cannot connect to {result.database}: {describe_error(exc)}"
        return
    with conn:
        for query in settings.queries:
            try:
                rows = conn.execute(query.sql).fetchall()
            except psycopg.Error as exc:
                result.counts.append((query, None, describe_error(exc)))
                continue
            value = rows[0][0] if len(rows) == 1 and len(rows[0]) == 1 else None
            if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
                result.counts.append((query, None, "expected one row of one number"))
            else:
                result.counts.append((query, float(value), ""))


def _drop(
    admin: Connection[TupleRow],
    name: str,
    result: Restored,
    reconnect: Callable[[], Connection[TupleRow]],
) -> None:
    """DROP the scratch database (WITH FORCE: a restore cut short may still be connected); on a
    new connection when the first one was lost on the way."""
    import psycopg
    from psycopg import sql

    drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    for attempt in range(2):
        try:
            conn = admin if attempt == 0 else reconnect()
            conn.execute(drop)
            left = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchall()
            result.dropped, result.drop_error = not left, "still there after DROP" if left else ""
            return
        except psycopg.OperationalError as exc:  # the connection: try a new one once
            result.drop_error = describe_error(exc)
        except psycopg.Error as exc:
            result.drop_error = describe_error(exc)
            return
