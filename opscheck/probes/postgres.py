"""PostgreSQL probes: the runbooks' psql lines, run in a read-only session, as Measurements.

Every probe takes an open connection (autocommit, ``default_transaction_read_only``, timeouts set
by ``open_session``) and returns facts; none asserts or knows a threshold. psycopg is imported
only when a ``[[postgres]]`` target is checked.

Probes share what a session has read: each catalog view is queried once per run and target, by
the first probe that needs it - the server's settings and the role's privileges in one query,
``pg_stat_activity`` (connections, slow and idle queries, lock waits), ``pg_database`` with
``pg_stat_database`` (size, wraparound, cache hits), ``pg_stat_user_tables`` (dead tuples,
vacuum and analyze ages). All checks of a target cost at most eight queries (and three per user
query), and they judge one moment.
"""

from __future__ import annotations

import contextlib
import math
import re
import threading
from collections import Counter
from collections.abc import Callable, Hashable
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from opscheck.config import PostgresTarget, SqlQuery
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.session import Unreachable
from opscheck.units import format_value

if TYPE_CHECKING:
    from psycopg import Connection
    from psycopg.rows import TupleRow

    Session = Connection[TupleRow]

T = TypeVar("T")

QUERY_CHARS = 120  # of a query's text in a message: enough to recognise it
DEAD_TUPLES_MIN = 1000  # the runbook's bloat query: WHERE n_dead_tup > 1000
XID_LIMIT = 2**31  # transaction IDs wrap around after 2^31; PostgreSQL stops writes before that
_HINT = "Is the server running on that host and accepting TCP/IP connections?"
_HIDDEN = "pg_stat_activity hides other sessions' state and queries"
_VIEWS = "_opscheck_views"  # where open_session keeps a session's _Views

# A name to_regclass() parses: one or two parts (schema.table), each quoted ("My Table") or not.
# Anything else would make it raise, failing every check that shares the query.
_PART = r'\s*(?:"(?:[^"]|"")+"|[^\s."][^\s.]*)\s*'
_RELATION = re.compile(rf"{_PART}(?:\.{_PART})?")


def _text(column: str = "query") -> str:
    """SQL for the start of a query's text on one line."""
    return f"left(regexp_replace({column}, '\\s+', ' ', 'g'), {QUERY_CHARS})"


def describe_error(exc: BaseException) -> str:
    """A psycopg error on one line, without libpq's hint and prefixes."""
    text = " ".join(str(exc).replace(_HINT, "").split())
    return text.removeprefix("connection failed: ") or type(exc).__name__


class _Views:
    """What one session has read this run, and the lock that keeps its statements in order.

    Probes of one target may run at once, in threads: the first to need a view reads it while
    the others wait for that read; a failed read fails them all with its error (one timeout, not
    one per check). The lock is reentrant and also spans a user query's whole transaction."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self._read: dict[Hashable, Any] = {}

    def get(self, key: Hashable, read: Callable[[], T]) -> T:
        with self.lock:
            if key not in self._read:
                try:
                    self._read[key] = read()
                except ProbeError as exc:
                    self._read[key] = exc
            found = self._read[key]
        if isinstance(found, ProbeError):
            raise ProbeError(*found.args)  # a new one per probe: threads must not share a traceback
        result: T = found
        return result


def _views(conn: Session) -> _Views:
    """The session's shared reads; a connection not opened by ``open_session`` shares nothing."""
    views = getattr(conn, _VIEWS, None)
    return views if isinstance(views, _Views) else _Views()


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
        conn = psycopg.connect(make_conninfo("", **params), password=password, autocommit=True)
    except psycopg.errors.ConnectionTimeout:
        raise Unreachable(f"no answer within {connect_timeout} s (connect_timeout)") from None
    except psycopg.Error as exc:
        raise Unreachable(describe_error(exc)) from None
    setattr(conn, _VIEWS, _Views())
    return conn


def _rows(conn: Session, sql: Any, params: Any = None) -> list[Any]:
    """The rows of a catalog query; a ProbeError in operator words when it fails."""
    import psycopg

    try:
        with _views(conn).lock:
            return list(conn.execute(sql, params).fetchall())
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ProbeError(
            f"permission denied: grant pg_monitor to {conn.info.user} ({describe_error(exc)})"
        ) from None
    except psycopg.Error as exc:
        raise ProbeError(describe_error(exc)) from None


# -- the shared reads ----------------------------------------------------------------------------


class _Server(NamedTuple):
    version: str
    standby: bool
    database: str
    user: str
    uptime: float
    monitor: bool  # pg_read_all_stats (in pg_monitor): without it PostgreSQL hides, not refuses
    max_connections: int
    statements: str | None  # the schema of pg_stat_statements; None: not installed here


_SERVER = (
    "SELECT current_setting('server_version'), pg_is_in_recovery(), current_database(), "
    "current_user, extract(epoch FROM now() - pg_postmaster_start_time())::float8, "
    "pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'), "
    "current_setting('max_connections')::int, (SELECT n.nspname::text FROM pg_extension e "
    "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'pg_stat_statements')"
)


def _server(conn: Session) -> _Server:
    return _views(conn).get("server", lambda: _Server(*_rows(conn, _SERVER)[0]))


def _require_monitor(conn: Session, why: str) -> _Server:
    server = _server(conn)
    if not server.monitor:
        raise ProbeError(f"permission denied: grant pg_monitor to {server.user} (without it {why})")
    return server


class _Backend(NamedTuple):
    pid: int
    user: str | None
    app: str | None
    client: bool  # a client's session (opscheck's own included), not a background process
    mine: bool  # opscheck's own session
    state: str | None
    running: float | None  # seconds since query_start
    in_state: float | None  # seconds since state_change
    waiting: float | None  # seconds waiting for a lock; None: not waiting for one
    blockers: list[int]  # pg_blocking_pids of a lock wait
    query: str | None


def _activity(conn: Session, why: str = _HIDDEN) -> list[_Backend]:
    """pg_stat_activity, read once: every session with what the activity checks need."""
    _require_monitor(conn, why)
    since = "a.query_start"
    if conn.info.server_version >= 140000:  # pg_locks.waitstart: when the wait began
        since = (
            "coalesce((SELECT min(waitstart) FROM pg_locks l WHERE l.pid = a.pid "
            "AND NOT l.granted), a.query_start)"
        )
    # Only for a session waiting for a lock: pg_blocking_pids takes the lock manager's locks.
    lock = "a.wait_event_type = 'Lock'"
    sql = (
        "SELECT pid, usename, application_name, "
        "coalesce(backend_type = 'client backend', false), pid = pg_backend_pid(), state, "
        "extract(epoch FROM now() - query_start)::float8, "
        "extract(epoch FROM now() - state_change)::float8, "
        f"CASE WHEN {lock} THEN coalesce(extract(epoch FROM now() - {since})::float8, 0) END, "
        f"CASE WHEN {lock} THEN pg_blocking_pids(pid) ELSE '{{}}' END, {_text('a.query')} "
        "FROM pg_stat_activity a"
    )
    return _views(conn).get("activity", lambda: [_Backend(*row) for row in _rows(conn, sql)])


class _Database(NamedTuple):
    name: str
    current: bool
    xid_age: int
    size: int | None  # of the session's database only
    hits: int | None
    reads: int | None


_DATABASES = (
    "SELECT d.datname::text, d.datname = current_database(), age(d.datfrozenxid), "
    "CASE WHEN d.datname = current_database() THEN pg_database_size(d.oid) END, "
    "s.blks_hit, s.blks_read FROM pg_database d LEFT JOIN pg_stat_database s ON s.datid = d.oid "
    "ORDER BY 3 DESC"
)


def _databases(conn: Session) -> list[_Database]:
    """pg_database with pg_stat_database, read once, the oldest transaction IDs first."""
    return _views(conn).get(
        "databases", lambda: [_Database(*row) for row in _rows(conn, _DATABASES)]
    )


def _this_database(conn: Session) -> _Database:
    return next(d for d in _databases(conn) if d.current)


class _Table(NamedTuple):
    name: str
    found: bool
    dead: int | None
    live: int | None
    vacuumed: datetime | None
    vacuum_age: float | None  # seconds
    analyze_age: float | None


# The five most bloated tables (the runbook's bloat query), then each table of ``tables``.
_TABLES = (
    "SELECT false, n, name, true, n_dead_tup, n_live_tup, vacuumed, NULL::float8, NULL::float8 "
    "FROM (SELECT schemaname || '.' || relname AS name, n_dead_tup, n_live_tup, "
    "greatest(last_vacuum, last_autovacuum) AS vacuumed, "
    "row_number() OVER (ORDER BY n_dead_tup::float8 / greatest(n_live_tup, 1) DESC) AS n "
    "FROM pg_stat_user_tables WHERE n_dead_tup > %(dead)s) worst WHERE n <= 5 "
    "UNION ALL SELECT true, t.n, t.name, s.relid IS NOT NULL, s.n_dead_tup, s.n_live_tup, "
    "greatest(s.last_vacuum, s.last_autovacuum), "
    "extract(epoch FROM now() - greatest(s.last_vacuum, s.last_autovacuum))::float8, "
    "extract(epoch FROM now() - greatest(s.last_analyze, s.last_autoanalyze))::float8 "
    "FROM unnest(%(tables)s::text[]) WITH ORDINALITY t(name, n) "
    "LEFT JOIN pg_stat_user_tables s ON s.relid = to_regclass(t.name) ORDER BY 1, 2"
)


def _tables(conn: Session, tables: list[str]) -> tuple[list[_Table], dict[str, _Table]]:
    """pg_stat_user_tables, read once: the five most bloated tables (over 1000 dead tuples),
    the worst first, and each of ``tables`` by name (but for a name to_regclass cannot parse)."""
    names = tuple(dict.fromkeys(t for t in tables if _RELATION.fullmatch(t)))

    def read() -> tuple[list[_Table], dict[str, _Table]]:
        rows = _rows(conn, _TABLES, {"dead": DEAD_TUPLES_MIN, "tables": list(names)})
        worst = [_Table(*row[2:]) for row in rows if not row[0]]
        return worst, {row[2]: _Table(*row[2:]) for row in rows if row[0]}

    return _views(conn).get(("tables", names), read)


# -- the checks ----------------------------------------------------------------------------------


def _ago(seconds: float) -> str:
    return format_value(seconds, "duration")


def _calls(n: int) -> str:
    return f"{n} call" if n == 1 else f"{n} calls"


def _session(b: _Backend, age: float) -> str:
    return f"pid {b.pid} {b.user or '?'}/{b.app or '-'} {_ago(age)}: {b.query}"


def reachable(conn: Session) -> Measurement:
    """What ``pg_isready`` and ``SELECT 1`` tell: accepting, version, role, database, user."""
    server = _server(conn)
    role = "standby" if server.standby else "primary"
    return Measurement.fact(
        True,
        f"accepting connections: PostgreSQL {server.version.split()[0]} ({role}), database "
        f"{server.database} as {server.user}, up {_ago(server.uptime)}",
        "accepting connections",
    )


def connections_used(conn: Session) -> Measurement:
    """Client connections as % of max_connections, with the top users and applications."""
    clients = [
        (b.user, b.app)
        for b in _activity(conn, "pg_stat_activity does not say which sessions are clients")
        if b.client
    ]
    limit = _server(conn).max_connections
    top = sorted(Counter(clients).items(), key=lambda c: (-c[1], c[0][0] or "", c[0][1] or ""))
    pct = 100 * len(clients) / limit
    return Measurement(
        pct,
        text=f"{len(clients)} of {limit} connections used ({pct:.1f} %)",
        detail="by user/application: "
        + ", ".join(f"{user}/{app or '-'} {n}" for (user, app), n in top[:5]),
    )


def _active(conn: Session) -> list[_Backend]:
    """Other clients' active queries, the oldest first."""
    active = [b for b in _activity(conn) if b.state == "active" and b.client and not b.mine]
    return sorted(active, key=lambda b: -(b.running or 0))


def long_queries(conn: Session, target: PostgresTarget) -> Measurement:
    """How many queries have been active longer than ``long_query`` seconds."""
    older_than = target.long_query
    slow = [b for b in _active(conn) if (b.running or 0) > older_than]
    return Measurement(
        len(slow),
        text=f"{len(slow)} {'query' if len(slow) == 1 else 'queries'} active longer than "
        f"{_ago(older_than)}",
        detail="\n".join(_session(b, b.running or 0) for b in slow[:10]),
    )


def longest_query(conn: Session) -> Measurement:
    """Age of the oldest active query (pid, duration and the start of its text in the detail)."""
    active = _active(conn)
    if not active:
        return Measurement(0, text="no active query")
    first = active[0]
    age = first.running or 0
    return Measurement(
        age,
        text=f"longest active query {_ago(age)} (pid {first.pid}, {first.user})",
        detail="\n".join(_session(b, b.running or 0) for b in active[:5]),
    )


def idle_in_transaction(conn: Session) -> Measurement:
    """Age of the oldest session idle inside an open transaction (it holds locks and snapshots)."""
    states = ("idle in transaction", "idle in transaction (aborted)")
    idle = [b for b in _activity(conn) if b.state in states and b.client and not b.mine]
    if not idle:
        return Measurement(0, text="no session idle in transaction")
    idle.sort(key=lambda b: -(b.in_state or 0))
    first = idle[0]
    age = first.in_state or 0
    return Measurement(
        age,
        text=f"oldest session idle in transaction for {_ago(age)} (pid {first.pid}, {first.user}; "
        f"{len(idle)} idle in transaction)",
        detail="\n".join(
            f"pid {b.pid} {b.user or '?'}/{b.app or '-'} idle {_ago(b.in_state or 0)}, "
            f"last query: {b.query}"
            for b in idle[:5]
        ),
    )


def lock_waits(conn: Session) -> Measurement:
    """The longest wait for a lock, with who waits (blocked) and who holds it (blocking)."""
    activity = _activity(conn)
    waits = sorted(
        (b for b in activity if b.waiting is not None and not b.mine),
        key=lambda b: -(b.waiting or 0),
    )
    if not waits:
        return Measurement(0, text="no query waiting for a lock")
    blocking = {pid for b in waits for pid in b.blockers}
    first = waits[0]
    lines = [
        f"blocked pid {b.pid} {b.user or '?'} waits {_ago(b.waiting or 0)} for pid "
        f"{', '.join(map(str, b.blockers))}: {b.query}"
        for b in waits[:5]
    ]
    lines += [
        f"blocking pid {b.pid} {b.user or '?'} ({b.state}): {b.query}"
        for b in activity
        if b.pid in blocking
    ]
    return Measurement(
        first.waiting or 0,
        text=f"pid {first.pid} waits {_ago(first.waiting or 0)} for a lock held by pid "
        f"{', '.join(map(str, first.blockers))} ({len(waits)} waiting)",
        detail="\n".join(lines),
    )


def database_size(conn: Session) -> Measurement:
    """``pg_database_size`` of the target's database, with its largest tables in the detail."""
    this = _this_database(conn)
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
    size = this.size or 0
    return Measurement(
        float(size),
        subject=f"database {this.name}",
        text=format_value(size, "size"),
        detail="largest tables (estimated): "
        + ", ".join(f"{t} {format_value(s, 'size')}" for t, s in largest),
    )


def _no_table(table: str) -> Measurement:
    return Measurement.fact(False, f"{table}: no such table", "an existing table")


def _not_a_name(table: str) -> Measurement:
    return Measurement.fact(False, f"{table}: not a table name (schema.table)", "an existing table")


def table_sizes(conn: Session, target: PostgresTarget) -> list[Measurement]:
    """``pg_total_relation_size`` (data, indexes, TOAST) of each table of ``tables``."""
    names = [t for t in target.tables if _RELATION.fullmatch(t)]
    # Its own query: a table locked by a migration times out this check, and only this one.
    found = dict(
        _rows(
            conn,
            "SELECT t.name, pg_total_relation_size(to_regclass(t.name)) "
            "FROM unnest(%s::text[]) t(name)",
            (names,),
        )
        if names
        else []
    )
    sizes = []
    for table in target.tables:
        size = found.get(table)
        if table not in found:
            sizes.append(_not_a_name(table))
        elif size is None:
            sizes.append(_no_table(table))
        else:
            sizes.append(Measurement(float(size), subject=table))
    return sizes


def dead_tuples(conn: Session, target: PostgresTarget | None = None) -> Measurement:
    """The runbook's bloat query: the worst dead/live ratio among tables over 1000 dead tuples.

    With the ``target``, the same read also serves its tables' vacuum and analyze ages."""
    worst, _ = _tables(conn, target.tables if target else [])
    if not worst:
        return Measurement(0, text=f"no table with more than {DEAD_TUPLES_MIN} dead tuples")

    def line(t: _Table) -> str:
        dead, live = t.dead or 0, t.live or 0
        when = f"last vacuum {t.vacuumed:%Y-%m-%d %H:%M}" if t.vacuumed else "never vacuumed"
        return f"{t.name} {100 * dead / max(live, 1):.1f} % dead ({dead} dead, {live} live; {when})"

    dead, live = worst[0].dead or 0, worst[0].live or 0
    return Measurement(
        100 * dead / max(live, 1),  # no live tuple left: as if one, the ratio stays finite
        subject=worst[0].name,
        text=f"{100 * dead / max(live, 1):.1f} % dead tuples ({dead} dead, {live} live)",
        detail="\n".join(line(t) for t in worst),
    )


def vacuum_ages(conn: Session, target: PostgresTarget) -> list[Measurement]:
    """Time since each table of ``tables`` was last vacuumed, by hand or by autovacuum."""
    return _maintenance_ages(conn, target.tables, "vacuum", "vacuumed")


def analyze_ages(conn: Session, target: PostgresTarget) -> list[Measurement]:
    """Time since each table of ``tables`` was last analyzed (a missing table: see vacuum)."""
    return _maintenance_ages(conn, target.tables, "analyze", "analyzed")


def _maintenance_ages(conn: Session, tables: list[str], what: str, done: str) -> list[Measurement]:
    _, listed = _tables(conn, tables)
    ages = []
    for name in tables:
        table = listed.get(name)
        if table is None or not table.found:
            if what == "vacuum":  # said once, with the vacuum ages
                ages.append(_not_a_name(name) if table is None else _no_table(name))
            continue
        age = table.vacuum_age if what == "vacuum" else table.analyze_age
        if age is None:
            ages.append(Measurement.fact(False, f"{name} never {done}", f"{done} at least once"))
        else:
            ages.append(Measurement(age, subject=name, text=f"{done} {_ago(age)} ago"))
    return ages


def cache_hit(conn: Session) -> Measurement:
    """Share of block reads of this database served by shared buffers (since stats reset)."""
    this = _this_database(conn)
    hits, reads = this.hits or 0, this.reads or 0
    total = hits + reads
    pct = 100 * hits / total if total else 100.0
    return Measurement(
        pct,
        text=f"cache hit ratio {pct:.1f} % ({hits} hits, {reads} reads in database {this.name})",
    )


def xid_age(conn: Session) -> Measurement:
    """The oldest unfrozen transaction ID of any database, as % of the wraparound limit."""
    ages = _databases(conn)
    pct = 100 * ages[0].xid_age / XID_LIMIT
    return Measurement(
        pct,
        text=f"transaction ID age {ages[0].xid_age} in {ages[0].name} ({pct:.1f} % of the "
        "wraparound limit)",
        detail="age(datfrozenxid): " + ", ".join(f"{d.name} {d.xid_age}" for d in ages[:5]),
    )


def replication(conn: Session) -> list[Measurement]:
    """Bytes each replica has yet to replay, WAL each slot retains, and on a standby the WAL
    received but not replayed."""
    server = _server(conn)
    now = "pg_last_wal_receive_lsn()" if server.standby else "pg_current_wal_lsn()"
    parts = [
        "SELECT 1, application_name, coalesce(client_addr::text, 'local socket'), state, "
        f"coalesce(pg_wal_lsn_diff({now}, coalesce(replay_lsn, flush_lsn, sent_lsn)), 0)"
        "::float8, extract(epoch FROM replay_lag)::float8 FROM pg_stat_replication",
        "SELECT 2, slot_name::text, slot_type, CASE WHEN active THEN 'active' ELSE 'inactive' "
        f"END, coalesce(pg_wal_lsn_diff({now}, restart_lsn), 0)::float8, NULL "
        "FROM pg_replication_slots",
    ]
    if server.standby:
        parts.insert(
            0,
            "SELECT 0, NULL, NULL, NULL, coalesce(pg_wal_lsn_diff(pg_last_wal_receive_lsn(), "
            "pg_last_wal_replay_lsn()), 0)::float8, "
            "extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
        )
    rows = sorted(_rows(conn, " UNION ALL ".join(parts)), key=lambda r: (r[0], -r[4]))
    if any(kind == 1 for kind, *_ in rows):
        _require_monitor(conn, "pg_stat_replication hides the replicas' positions")
    found: list[Measurement] = []
    for kind, name, where, state, behind, seconds in rows:
        if kind == 0:
            seen = f", last replayed transaction {_ago(seconds)} ago" if seconds is not None else ""
            text = f"{format_value(behind, 'size')} received but not replayed{seen}"
            found.append(Measurement(behind, subject="this standby", text=text))
        elif kind == 1:
            replay = f", replay lag {_ago(seconds)}" if seconds is not None else ""
            text = f"{format_value(behind, 'size')} behind ({state} from {where}{replay})"
            found.append(Measurement(behind, subject=f"replica {name or where}", text=text))
        else:
            text = f"retains {format_value(behind, 'size')} of WAL ({where}, {state})"
            found.append(Measurement(behind, subject=f"slot {name}", text=text))
    if not found:
        raise NotApplicable(
            "no replica, no replication slot and not a standby: no replication to measure"
        )
    return found


def slow_statements(conn: Session) -> Measurement:
    """The runbook's weekly pg_stat_statements query: the slowest mean time in this database,
    the top five in the detail."""
    server = _server(conn)
    if server.statements is None:
        raise NotApplicable(
            f"pg_stat_statements is not installed in database {server.database} (CREATE "
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
        ).format(sql.SQL(_text()), sql.Identifier(server.statements)),
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
    # The session's lock spans the transaction: another probe's statement cannot land inside it.
    with _views(conn).lock:
        try:
            # Binary results force the extended protocol, which runs exactly one statement: a
            # "COMMIT; DELETE ..." cannot step out of the read-only transaction, always rolled
            # back (which also undoes a set_config() of the session's read-only default).
            conn.execute("BEGIN READ ONLY", prepare=False)  # nothing a pooler could lose
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
        finally:
            with contextlib.suppress(psycopg.Error):  # a broken session: the next probe says so
                conn.execute("ROLLBACK", prepare=False)
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
