"""PostgreSQL probes: the runbooks' psql lines, run in a read-only session, as Measurements.

Every probe takes an open connection (autocommit, ``default_transaction_read_only``, timeouts set
by ``open_session``) and returns facts; none asserts or knows a threshold. psycopg is imported
only when a ``[[postgres]]`` target is checked.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from opscheck.config import PostgresTarget, SqlQuery
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.session import Unreachable
from opscheck.units import format_value

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.rows import TupleRow

    Session = Connection[TupleRow]

QUERY_CHARS = 120  # of a query's text in a message: enough to recognise it
DEAD_TUPLES_MIN = 1000  # the runbook's bloat query: WHERE n_dead_tup > 1000
XID_LIMIT = 2**31  # transaction IDs wrap around after 2^31; PostgreSQL stops writes before that
_HINT = "Is the server running on that host and accepting TCP/IP connections?"


def _text(column: str = "query") -> str:
    """SQL for the start of a query's text on one line."""
    return f"left(regexp_replace({column}, '\\s+', ' ', 'g'), {QUERY_CHARS})"


_OTHERS = "pid <> pg_backend_pid() AND backend_type = 'client backend'"


def describe_error(exc: BaseException) -> str:
    """A psycopg error on one line, without libpq's hint and prefixes."""
    text = " ".join(str(exc).replace(_HINT, "").split())
    return text.removeprefix("connection failed: ") or type(exc).__name__


def open_session(target: PostgresTarget, password: str | None, timeout: float) -> Session:
    """Connect as the target's role: autocommit, read-only, every statement bounded by timeout."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(target.dsn)
    except psycopg.ProgrammingError as exc:
        raise Unreachable(f"invalid dsn: {describe_error(exc)}") from None
    ms = max(1, round(timeout * 1000))
    # A lock wait gives up a little before the statement does, so that a table locked by another
    # session fails with "lock timeout", not with a plain "statement timeout".
    session = (
        f"-c default_transaction_read_only=on -c statement_timeout={ms} "
        f"-c lock_timeout={max(1, ms * 8 // 10)} -c idle_in_transaction_session_timeout={ms}"
    )
    params["options"] = f"{params.get('options', '')} {session}".strip()  # ours win: they come last
    params.setdefault("application_name", "opscheck")
    connect_timeout = max(2, math.ceil(timeout))  # libpq's unit is whole seconds, 2 at least
    params["connect_timeout"] = connect_timeout
    try:
        return psycopg.connect(make_conninfo("", **params), password=password, autocommit=True)
    except psycopg.errors.ConnectionTimeout:
        raise Unreachable(f"no answer within {connect_timeout} s (connect_timeout)") from None
    except psycopg.Error as exc:
        raise Unreachable(describe_error(exc)) from None


def _rows(conn: Session, sql: Any, params: Any = None) -> list[Any]:
    """The rows of a catalog query; a ProbeError in operator words when it fails."""
    import psycopg

    try:
        return list(conn.execute(sql, params).fetchall())
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ProbeError(
            f"permission denied: grant pg_monitor to {conn.info.user} ({describe_error(exc)})"
        ) from None
    except psycopg.Error as exc:
        raise ProbeError(describe_error(exc)) from None


def _require_monitor(conn: Session, why: str) -> None:
    """Without pg_read_all_stats (part of pg_monitor) PostgreSQL hides rather than refuses."""
    [(role, allowed)] = _rows(
        conn, "SELECT current_user, pg_has_role(current_user, 'pg_read_all_stats', 'USAGE')"
    )
    if not allowed:
        raise ProbeError(f"permission denied: grant pg_monitor to {role} (without it {why})")


def _ago(seconds: float) -> str:
    return format_value(seconds, "duration")


def _calls(n: int) -> str:
    return f"{n} call" if n == 1 else f"{n} calls"


def _session(pid: int, user: str | None, app: str | None, age: float, query: str) -> str:
    return f"pid {pid} {user or '?'}/{app or '-'} {_ago(age)}: {query}"


def reachable(conn: Session) -> Measurement:
    """What ``pg_isready`` and ``SELECT 1`` tell: accepting, version, role, database, user."""
    [(version, standby, database, user, uptime)] = _rows(
        conn,
        "SELECT current_setting('server_version'), pg_is_in_recovery(), current_database(), "
        "current_user, extract(epoch FROM now() - pg_postmaster_start_time())::float8",
    )
    role = "standby" if standby else "primary"
    return Measurement.fact(
        True,
        f"accepting connections: PostgreSQL {version.split()[0]} ({role}), database {database} "
        f"as {user}, up {_ago(uptime)}",
        "accepting connections",
    )


def connections_used(conn: Session) -> Measurement:
    """Client connections as % of max_connections, with the top users and applications."""
    _require_monitor(conn, "pg_stat_activity does not say which sessions are clients")
    [(used, limit)] = _rows(
        conn,
        "SELECT count(*) FILTER (WHERE backend_type = 'client backend'), "
        "current_setting('max_connections')::int FROM pg_stat_activity",
    )
    top = _rows(
        conn,
        "SELECT usename, application_name, count(*) FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' GROUP BY 1, 2 ORDER BY 3 DESC, 1 LIMIT 5",
    )
    pct = 100 * used / limit
    return Measurement(
        pct,
        text=f"{used} of {limit} connections used ({pct:.1f} %)",
        detail="by user/application: "
        + ", ".join(f"{user}/{app or '-'} {n}" for user, app, n in top),
    )


def _active(conn: Session) -> list[Any]:
    _require_monitor(conn, "pg_stat_activity hides other sessions' state and queries")
    return _rows(
        conn,
        f"SELECT pid, usename, application_name, "
        f"extract(epoch FROM now() - query_start)::float8, {_text()} "
        f"FROM pg_stat_activity WHERE state = 'active' AND {_OTHERS} ORDER BY query_start",
    )


def long_queries(conn: Session, target: PostgresTarget) -> Measurement:
    """How many queries have been active longer than ``long_query`` seconds."""
    older_than = target.long_query
    slow = [row for row in _active(conn) if row[3] > older_than]
    return Measurement(
        len(slow),
        text=f"{len(slow)} {'query' if len(slow) == 1 else 'queries'} active longer than "
        f"{_ago(older_than)}",
        detail="\n".join(_session(*row) for row in slow[:10]),
    )


def longest_query(conn: Session) -> Measurement:
    """Age of the oldest active query (pid, duration and the start of its text in the detail)."""
    active = _active(conn)
    if not active:
        return Measurement(0, text="no active query")
    pid, user, _, age, _ = active[0]
    return Measurement(
        age,
        text=f"longest active query {_ago(age)} (pid {pid}, {user})",
        detail="\n".join(_session(*row) for row in active[:5]),
    )


def idle_in_transaction(conn: Session) -> Measurement:
    """Age of the oldest session idle inside an open transaction (it holds locks and snapshots)."""
    _require_monitor(conn, "pg_stat_activity hides other sessions' state and queries")
    idle = _rows(
        conn,
        f"SELECT pid, usename, application_name, "
        f"extract(epoch FROM now() - state_change)::float8, {_text()} FROM pg_stat_activity "
        "WHERE state IN ('idle in transaction', 'idle in transaction (aborted)') "
        f"AND {_OTHERS} ORDER BY state_change",
    )
    if not idle:
        return Measurement(0, text="no session idle in transaction")
    pid, user, _, age, _ = idle[0]
    return Measurement(
        age,
        text=f"oldest session idle in transaction for {_ago(age)} (pid {pid}, {user}; "
        f"{len(idle)} idle in transaction)",
        detail="\n".join(
            f"pid {p} {u or '?'}/{a or '-'} idle {_ago(t)}, last query: {q}"
            for p, u, a, t, q in idle[:5]
        ),
    )


def lock_waits(conn: Session) -> Measurement:
    """The longest wait for a lock, with who waits (blocked) and who holds it (blocking)."""
    _require_monitor(conn, "pg_stat_activity hides other sessions' state and queries")
    since = "a.query_start"
    if conn.info.server_version >= 140000:  # pg_locks.waitstart: when the wait began
        since = (
            "coalesce((SELECT min(waitstart) FROM pg_locks l WHERE l.pid = a.pid "
            "AND NOT l.granted), a.query_start)"
        )
    waits = _rows(
        conn,
        f"SELECT pid, usename, application_name, extract(epoch FROM now() - {since})::float8, "
        f"{_text('a.query')}, pg_blocking_pids(pid) FROM pg_stat_activity a "
        "WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid() ORDER BY 4 DESC",
    )
    if not waits:
        return Measurement(0, text="no query waiting for a lock")
    blocking = sorted({pid for row in waits for pid in row[5]})
    holders = _rows(
        conn,
        f"SELECT pid, usename, state, {_text()} FROM pg_stat_activity WHERE pid = ANY(%s)",
        (blocking,),
    )
    pid, _, _, age, _, by = waits[0]
    lines = [
        f"blocked pid {p} {u or '?'} waits {_ago(a)} for pid {', '.join(map(str, b))}: {q}"
        for p, u, _, a, q, b in waits[:5]
    ]
    lines += [f"blocking pid {p} {u or '?'} ({s}): {q}" for p, u, s, q in holders]
    return Measurement(
        age,
        text=f"pid {pid} waits {_ago(age)} for a lock held by pid "
        f"{', '.join(map(str, by))} ({len(waits)} waiting)",
        detail="\n".join(lines),
    )


def database_size(conn: Session) -> Measurement:
    """``pg_database_size`` of the target's database, with its largest tables in the detail."""
    [(name, size)] = _rows(conn, "SELECT current_database(), pg_database_size(current_database())")
    # Estimated from pg_class, which takes no lock: a table locked by a migration cannot stall it.
    largest = _rows(
        conn,
        "SELECT c.relnamespace::regnamespace::text || '.' || c.relname, "
        "(c.relpages + coalesce(t.relpages, 0))::bigint "
        "* current_setting('block_size')::int FROM pg_class c "
        "LEFT JOIN pg_class t ON t.oid = c.reltoastrelid WHERE c.relkind IN ('r', 'm') "
        "AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, "
        "'information_schema'::regnamespace) ORDER BY 2 DESC LIMIT 5",
    )
    return Measurement(
        float(size),
        subject=f"database {name}",
        text=format_value(size, "size"),
        detail="largest tables (estimated): "
        + ", ".join(f"{t} {format_value(s, 'size')}" for t, s in largest),
    )


def _no_table(table: str) -> Measurement:
    return Measurement.fact(False, f"{table}: no such table", "an existing table")


def table_sizes(conn: Session, target: PostgresTarget) -> list[Measurement]:
    """``pg_total_relation_size`` (data, indexes, TOAST) of each table of ``tables``."""
    sizes = []
    for table in target.tables:
        [(size,)] = _rows(conn, "SELECT pg_total_relation_size(to_regclass(%s))", (table,))
        sizes.append(_no_table(table) if size is None else Measurement(float(size), subject=table))
    return sizes


def dead_tuples(conn: Session) -> Measurement:
    """The runbook's bloat query: the worst dead/live ratio among tables over 1000 dead tuples."""
    worst = _rows(
        conn,
        "SELECT schemaname || '.' || relname, n_dead_tup, n_live_tup, "
        "greatest(last_vacuum, last_autovacuum) FROM pg_stat_user_tables "
        "WHERE n_dead_tup > %s ORDER BY n_dead_tup::float8 / greatest(n_live_tup, 1) DESC "
        "LIMIT 5",
        (DEAD_TUPLES_MIN,),
    )
    if not worst:
        return Measurement(0, text=f"no table with more than {DEAD_TUPLES_MIN} dead tuples")

    def line(table: str, dead: int, live: int, vacuumed: Any) -> str:
        when = f"last vacuum {vacuumed:%Y-%m-%d %H:%M}" if vacuumed else "never vacuumed"
        return f"{table} {100 * dead / max(live, 1):.1f} % dead ({dead} dead, {live} live; {when})"

    table, dead, live, _ = worst[0]
    return Measurement(
        100 * dead / max(live, 1),  # no live tuple left: as if one, the ratio stays finite
        subject=table,
        text=f"{100 * dead / max(live, 1):.1f} % dead tuples ({dead} dead, {live} live)",
        detail="\n".join(line(*row) for row in worst),
    )


def vacuum_ages(conn: Session, target: PostgresTarget) -> list[Measurement]:
    """Time since each table of ``tables`` was last vacuumed, by hand or by autovacuum."""
    return _maintenance_ages(conn, target.tables, "vacuum", "vacuumed")


def analyze_ages(conn: Session, target: PostgresTarget) -> list[Measurement]:
    """Time since each table of ``tables`` was last analyzed (a missing table: see vacuum)."""
    return _maintenance_ages(conn, target.tables, "analyze", "analyzed")


def _maintenance_ages(conn: Session, tables: list[str], what: str, done: str) -> list[Measurement]:
    ages = []
    for table in tables:
        rows = _rows(
            conn,
            f"SELECT extract(epoch FROM now() - greatest(last_{what}, last_auto{what}))::float8 "
            "FROM pg_stat_user_tables WHERE relid = to_regclass(%s)",
            (table,),
        )
        if not rows:
            if what == "vacuum":  # said once, with the vacuum ages
                ages.append(_no_table(table))
        elif rows[0][0] is None:
            ages.append(Measurement.fact(False, f"{table} never {done}", f"{done} at least once"))
        else:
            age = rows[0][0]
            ages.append(Measurement(age, subject=table, text=f"{done} {_ago(age)} ago"))
    return ages


def cache_hit(conn: Session) -> Measurement:
    """Share of block reads of this database served by shared buffers (since stats reset)."""
    [(name, hits, reads)] = _rows(
        conn,
        "SELECT datname, blks_hit, blks_read FROM pg_stat_database "
        "WHERE datname = current_database()",
    )
    total = hits + reads
    pct = 100 * hits / total if total else 100.0
    return Measurement(
        pct,
        text=f"cache hit ratio {pct:.1f} % ({hits} hits, {reads} reads in database {name})",
    )


def xid_age(conn: Session) -> Measurement:
    """The oldest unfrozen transaction ID of any database, as % of the wraparound limit."""
    ages = _rows(conn, "SELECT datname, age(datfrozenxid) FROM pg_database ORDER BY 2 DESC")
    name, age = ages[0]
    pct = 100 * age / XID_LIMIT
    return Measurement(
        pct,
        text=f"transaction ID age {age} in {name} ({pct:.1f} % of the wraparound limit)",
        detail="age(datfrozenxid): " + ", ".join(f"{n} {a}" for n, a in ages[:5]),
    )


def replication(conn: Session) -> list[Measurement]:
    """Bytes each replica has yet to replay, WAL each slot retains, and on a standby the WAL
    received but not replayed."""
    [(standby,)] = _rows(conn, "SELECT pg_is_in_recovery()")
    found: list[Measurement] = []
    if standby:
        [(behind, last)] = _rows(
            conn,
            "SELECT coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
            "pg_last_wal_replay_lsn()), 0)::float8, "
            "extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
        )
        seen = f", last replayed transaction {_ago(last)} ago" if last is not None else ""
        found.append(
            Measurement(
                behind,
                subject="this standby",
                text=f"{format_value(behind, 'size')} received but not replayed{seen}",
            )
        )
    now = "pg_last_wal_receive_lsn()" if standby else "pg_current_wal_lsn()"
    replicas = _rows(conn, "SELECT count(*) FROM pg_stat_replication")[0][0]
    if replicas:
        _require_monitor(conn, "pg_stat_replication hides the replicas' positions")
    for name, address, state, behind, lag in _rows(
        conn,
        "SELECT application_name, coalesce(client_addr::text, 'local socket'), state, "
        f"coalesce(pg_wal_lsn_diff({now}, coalesce(replay_lsn, flush_lsn, sent_lsn)), 0)"
        "::float8, extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication "
        "ORDER BY 4 DESC",
    ):
        replay = f", replay lag {_ago(lag)}" if lag is not None else ""
        found.append(
            Measurement(
                behind,
                subject=f"replica {name or address}",
                text=f"{format_value(behind, 'size')} behind ({state} from {address}{replay})",
            )
        )
    for slot, kind, active, retained in _rows(
        conn,
        f"SELECT slot_name, slot_type, active, coalesce(pg_wal_lsn_diff({now}, restart_lsn), 0)"
        "::float8 FROM pg_replication_slots ORDER BY 4 DESC",
    ):
        state = "active" if active else "inactive"
        found.append(
            Measurement(
                retained,
                subject=f"slot {slot}",
                text=f"retains {format_value(retained, 'size')} of WAL ({kind}, {state})",
            )
        )
    if not found:
        raise NotApplicable(
            "no replica, no replication slot and not a standby: no replication to measure"
        )
    return found


def slow_statements(conn: Session) -> Measurement:
    """The runbook's weekly pg_stat_statements query: the slowest mean time in this database,
    the top five in the detail."""
    schema = _rows(
        conn,
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'pg_stat_statements'",
    )
    if not schema:
        raise NotApplicable(
            f"pg_stat_statements is not installed in database {conn.info.dbname} (CREATE "
            "EXTENSION pg_stat_statements; it needs shared_preload_libraries = "
            "'pg_stat_statements')"
        )
    _require_monitor(conn, "pg_stat_statements hides other roles' statements")
    from psycopg import sql

    top = _rows(
        conn,
        sql.SQL(
            "SELECT mean_exec_time / 1000, calls, {} FROM {}.pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "ORDER BY mean_exec_time DESC LIMIT 5"
        ).format(sql.SQL(_text()), sql.Identifier(schema[0][0])),
    )
    if not top:
        return Measurement(0, text="no statement recorded in this database")
    mean, calls, _ = top[0]
    return Measurement(
        mean,
        text=f"slowest statement: mean {_ago(mean)} over {_calls(calls)}",
        detail="\n".join(f"mean {_ago(m)}, {_calls(c)}: {q}" for m, c, q in top),
    )


def user_query(conn: Session, query: SqlQuery) -> Measurement:
    """Run a user's query read-only; its result must be one number."""
    import psycopg

    where = f"query {query.name}"
    try:
        # Binary results force the extended protocol, which runs exactly one statement: a
        # "COMMIT; DELETE ..." cannot step out of the read-only transaction, always rolled back.
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ ONLY")
            cursor = conn.execute(query.sql, binary=True)
            columns = len(cursor.description or ())
            rows = cursor.fetchmany(2) if columns else []
    except psycopg.errors.ReadOnlySqlTransaction as exc:
        raise ProbeError(
            f"{where}: rejected, the session is read-only ({describe_error(exc)}); "
            "opscheck runs queries read-only: measure with a SELECT"
        ) from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ProbeError(
            f"{where}: permission denied ({describe_error(exc)}): grant {conn.info.user} "
            "SELECT on what the query reads"
        ) from None
    except psycopg.Error as exc:
        raise ProbeError(f"{where} failed: {describe_error(exc)}") from None
    expected = "expected one row with one number"
    if not rows:
        raise ProbeError(f"{where}: returned no rows ({expected})")
    if len(rows) > 1 or columns > 1:
        shape = "more than one row" if len(rows) > 1 else f"{columns} columns"
        raise ProbeError(f"{where}: returned {shape} ({expected})")
    value = rows[0][0]
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        shown = "NULL" if value is None else f"{type(value).__name__} {str(value)[:60]!r}"
        raise ProbeError(f"{where}: returned {shown} ({expected})")
    return Measurement(float(value), subject=query.name, detail=query.description)
