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

Every statement answers within the target's timeout or the session is given up (``_execute``):
a slow statement is the check's own failure (PostgreSQL's ``statement_timeout``), a server that
stopped answering is ``Lost``, and the run marks the target down. Other sessions' SQL reaches a
message only through ``_sqltext.shown``: literals masked, utility statements by their tag.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import string
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from opscheck.config import PostgresTarget, SqlQuery
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.probes._sqltext import shown
from opscheck.session import Lost, Unreachable
from opscheck.units import format_value

if TYPE_CHECKING:
    from psycopg import Connection, Cursor
    from psycopg.rows import TupleRow

    Session = Connection[TupleRow]

T = TypeVar("T")

WATCHDOG = "opscheck-postgres-deadline"  # the name of a statement's watchdog thread
QUERY_CHARS = 120  # of a query's text in a message: enough to recognise it
# Read of a query's text to mask it: a literal cut off at the end is masked to the end.
QUERY_READ = 2000
DEAD_TUPLES_MIN = 1000  # the runbook's bloat query: WHERE n_dead_tup > 1000
XID_LIMIT = 2**31  # transaction IDs wrap around after 2^31; PostgreSQL stops writes before that
_HINT = "Is the server running on that host and accepting TCP/IP connections?"
_HIDDEN = "pg_stat_activity hides other sessions' state and queries"
_GONE = (
    "This probably means the server terminated abnormally before or while processing the request."
)
_STATE = "_opscheck_state"  # where open_session keeps a session's _State


def _text(column: str = "query") -> str:
    """SQL for the start of a query's text, to be masked by ``_shown``."""
    return f"left({column}, {QUERY_READ})"


def _shown(sql: str | None, text: bool) -> str:
    """A query's text as a message shows it: masked (see ``_sqltext``), on one line, short."""
    return shown(sql or "", text)[:QUERY_CHARS]


def describe_error(exc: BaseException) -> str:
    """A psycopg error on one line, without libpq's hints and prefixes."""
    text = " ".join(str(exc).split()).replace(_HINT, "").replace(_GONE, "")
    return text.strip().removeprefix("connection failed: ") or type(exc).__name__


def grace(timeout: float) -> float:
    """How long after ``statement_timeout`` a statement's answer may still come: past it, the
    server is not running at all (see ``_execute``)."""
    return max(1.0, timeout / 2)


class _State:
    """A session's state for the run: what it has read, the lock that keeps its statements in
    order, its deadline per statement, whether it shows query text, and whether it was lost.

    Probes of one target may run at once, in threads: the first to need a view reads it while
    the others wait for that read; a failed read fails them all with its error (one timeout, not
    one per check). The lock is reentrant and also spans a user query's whole transaction."""

    def __init__(self, deadline: float | None = None, query_text: bool = True) -> None:
        self.lock = threading.RLock()
        self.deadline = deadline  # seconds a statement may take before the session is given up
        self.query_text = query_text
        self.lost: str | None = None  # why the server was given up: every later statement says so
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


def _state(conn: Session) -> _State:
    """The session's state; a connection not opened by ``open_session`` shares nothing."""
    state = getattr(conn, _STATE, None)
    return state if isinstance(state, _State) else _State()


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
    # A server whose host vanished (a network partition, a power cut): the kernel gives up on
    # a statement it cannot deliver after tcp_user_timeout, and keepalive probes find the silent
    # peer while a statement runs. The DSN may tune them; _execute's deadline bounds the rest.
    params.setdefault("tcp_user_timeout", ms)
    params.setdefault("keepalives", 1)
    params.setdefault("keepalives_idle", connect_timeout)
    params.setdefault("keepalives_interval", 1)
    params.setdefault("keepalives_count", 3)
    try:
        conn = psycopg.connect(make_conninfo("", **params), password=password, autocommit=True)
    except psycopg.errors.ConnectionTimeout:
        raise Unreachable(f"no answer within {connect_timeout} s (connect_timeout)") from None
    except psycopg.Error as exc:
        raise Unreachable(describe_error(exc)) from None
    setattr(conn, _STATE, _State(timeout + grace(timeout), target.query_text))
    return conn


@contextlib.contextmanager
def _watchdog(conn: Session, seconds: float | None) -> Iterator[threading.Event]:
    """Within the block, a call on ``conn`` waiting past ``seconds`` returns with an error: the
    session's socket is shut down (the event says so). The statement ending just then is safe:
    once the block ends, the socket is left alone."""
    cut = threading.Event()
    if seconds is None:
        yield cut
        return
    guard = threading.Lock()
    ended = False

    def shut() -> None:
        with guard:
            if ended:
                return
            cut.set()
            # A duplicate of libpq's descriptor: shutdown() reaches the connection it shares,
            # close() only the duplicate; libpq still owns (and later closes) its own.
            with (
                contextlib.suppress(Exception),  # closed already: nothing waits on it
                socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock,
            ):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(seconds, shut)
    timer.name, timer.daemon = WATCHDOG, True
    timer.start()
    try:
        yield cut
    finally:
        with guard:
            ended = True
        timer.cancel()


def _execute(conn: Session, sql: Any, params: Any = None, **kwargs: Any) -> Cursor[TupleRow]:
    """Run one statement; raise ``Lost`` when the server stopped answering or went away.

    ``statement_timeout`` bounds a slow statement on the server: PostgreSQL cancels it and says
    so, and the check fails with that (its own failure; the session lives on). A frozen server
    (stopped, a host deep in swap) runs no timer, its kernel still acknowledges every packet
    (TCP keepalives and ``tcp_user_timeout`` stay quiet), and a cancel request would wait for
    its frozen postmaster too: so past the timeout and a grace, the session's socket is shut
    down, the waiting call returns, and the target is lost. The run marks it down; its other
    checks fail at once, each later statement of the session with the same error."""
    import psycopg

    state = _state(conn)
    if state.lost is not None:
        raise Lost(state.lost)
    with _watchdog(conn, state.deadline) as cut:
        try:
            return conn.execute(sql, params, **kwargs)
        except psycopg.Error as exc:
            if cut.is_set():
                error = f"no answer within {state.deadline:g} s"
            elif conn.broken or conn.closed:  # the server closed it, or the kernel gave up
                error = describe_error(exc)
            else:
                raise
    state.lost = error
    raise Lost(error)


def _rows(conn: Session, sql: Any, params: Any = None) -> list[Any]:
    """The rows of a catalog query; a ProbeError in operator words when it fails."""
    import psycopg

    try:
        with _state(conn).lock:
            return list(_execute(conn, sql, params).fetchall())
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
    return _state(conn).get("server", lambda: _Server(*_rows(conn, _SERVER)[0]))


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
    state = _state(conn)

    def read() -> list[_Backend]:
        rows = _rows(conn, sql)
        return [_Backend._make([*row[:-1], _shown(row[-1], state.query_text)]) for row in rows]

    return state.get("activity", read)


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
    return _state(conn).get(
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


_SPACE = " \t\n\r\f\v"  # the only spaces PostgreSQL's name parser skips
_FOLD = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)  # it folds ASCII only
# A table of ``tables`` as the server finds it: from its parts, each quoted by the server.
_REGCLASS = "to_regclass(concat_ws('.', quote_ident(t.schema), quote_ident(t.name)))"
Parts = tuple[str | None, str]  # (schema or None, table) of a name, quotes removed


def table_name(entry: str) -> Parts:
    """``entry`` of ``tables`` read as PostgreSQL reads ``schema.table`` or ``table``: quoted
    parts as written, others folded to lower case; ValueError says why it is not a name.

    Read here, the server gets parts it quotes itself: to_regclass() raises on a name it cannot
    parse (and a NUL cannot be sent at all), which would fail every table of the query."""
    parts: list[str] = []
    pos = 0
    while True:
        while pos < len(entry) and entry[pos] in _SPACE:
            pos += 1
        if entry.startswith('"', pos):
            end = pos + 1
            while (end := entry.find('"', end)) >= 0 and entry.startswith('""', end):
                end += 2
            if end < 0:
                raise ValueError("a quote is not closed")
            part, pos = entry[pos + 1 : end].replace('""', '"'), end + 1
        else:
            end = pos
            while end < len(entry) and entry[end] != "." and entry[end] not in _SPACE:
                end += 1
            part, pos = entry[pos:end].translate(_FOLD), end
        if not part:
            raise ValueError("an empty name")
        if "\0" in part:
            raise ValueError("a NUL character")
        parts.append(part)
        while pos < len(entry) and entry[pos] in _SPACE:
            pos += 1
        if pos == len(entry):
            break
        if entry[pos] != ".":
            raise ValueError(f"{entry[pos:]!r} after {parts[-1]!r} (quote a name with spaces)")
        pos += 1
    if len(parts) > 2:
        raise ValueError(f"{len(parts)} parts, at most 2")
    return (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])


def _names(tables: list[str]) -> dict[str, Parts | ValueError]:
    """Each entry of ``tables``: its parts, or why it is not a table name."""
    names: dict[str, Parts | ValueError] = {}
    for entry in tables:
        try:
            names[entry] = table_name(entry)
        except ValueError as exc:
            names[entry] = exc
    return names


def _parts(names: dict[str, Parts | ValueError]) -> tuple[list[str], dict[str, list[Any]]]:
    """The entries that are names, and their schemas and tables as the queries' parameters."""
    valid = [(entry, p) for entry, p in names.items() if not isinstance(p, ValueError)]
    schemas, tables = [p[0] for _, p in valid], [p[1] for _, p in valid]
    return [entry for entry, _ in valid], {"schemas": schemas, "tables": tables}


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
    "FROM unnest(%(schemas)s::text[], %(tables)s::text[]) WITH ORDINALITY t(schema, name, n) "
    f"LEFT JOIN pg_stat_user_tables s ON s.relid = {_REGCLASS} ORDER BY 1, 2"
)


def _tables(conn: Session, tables: list[str]) -> tuple[list[_Table], dict[str, _Table]]:
    """pg_stat_user_tables, read once: the five most bloated tables (over 1000 dead tuples),
    the worst first, and each entry of ``tables`` that is a table name (see ``table_name``)."""
    entries, params = _parts(_names(tables))

    def read() -> tuple[list[_Table], dict[str, _Table]]:
        rows = _rows(conn, _TABLES, {"dead": DEAD_TUPLES_MIN, **params})
        worst = [_Table(*row[2:]) for row in rows if not row[0]]
        listed = [row for row in rows if row[0]]
        return worst, {entries[row[1] - 1]: _Table(entries[row[1] - 1], *row[3:]) for row in listed}

    return _state(conn).get(("tables", tuple(entries)), read)


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


def _entry(table: str) -> str:
    """An entry of ``tables`` in a message: as written, or escaped if it holds what cannot be
    seen (a no-break space pasted from a wiki, a control character)."""
    return table if table.isprintable() else repr(table)


def _no_table(table: str) -> Measurement:
    return Measurement.fact(False, f"{_entry(table)}: no such table", "an existing table")


def _not_a_name(table: str, why: ValueError) -> Measurement:
    return Measurement.fact(
        False, f"{_entry(table)}: not a table name (schema.table): {why}", "an existing table"
    )


def table_sizes(conn: Session, target: PostgresTarget) -> list[Measurement]:
    """``pg_total_relation_size`` (data, indexes, TOAST) of each table of ``tables``."""
    names = _names(target.tables)
    entries, params = _parts(names)
    # Its own query: a table locked by a migration times out this check, and only this one.
    sql = (
        f"SELECT t.n, pg_total_relation_size({_REGCLASS}) FROM unnest(%(schemas)s::text[], "
        "%(tables)s::text[]) WITH ORDINALITY t(schema, name, n)"
    )
    found = {entries[n - 1]: size for n, size in (_rows(conn, sql, params) if entries else [])}
    sizes = []
    for table in target.tables:
        parts, size = names[table], found.get(table)
        if isinstance(parts, ValueError):
            sizes.append(_not_a_name(table, parts))
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
    names = _names(tables)
    _, listed = _tables(conn, tables)
    ages = []
    for name in tables:
        parts, table = names[name], listed.get(name)
        if isinstance(parts, ValueError) or table is None or not table.found:
            if what == "vacuum":  # said once, with the vacuum ages
                ages.append(
                    _not_a_name(name, parts) if isinstance(parts, ValueError) else _no_table(name)
                )
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
    text = _state(conn).query_text
    return Measurement(
        mean,
        text=f"slowest statement: mean {_ago(mean)} over {_calls(calls)}",
        detail="\n".join(f"mean {_ago(m)}, {_calls(c)}: {_shown(q, text)}" for m, c, q in top),
    )


def user_query(conn: Session, query: SqlQuery) -> Measurement:
    """Run a user's query read-only; its result must be one number."""
    import psycopg

    where = f"query {query.name}"
    # The session's lock spans the transaction: another probe's statement cannot land inside it.
    with _state(conn).lock:
        try:
            # Binary results force the extended protocol, which runs exactly one statement: a
            # "COMMIT; DELETE ..." cannot step out of the read-only transaction, always rolled
            # back (which also undoes a set_config() of the session's read-only default).
            _execute(conn, "BEGIN READ ONLY", prepare=False)  # nothing a pooler could lose
            cursor = _execute(conn, query.sql, binary=True)
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
            # A failed statement left the session usable: roll back. A lost one: Lost, again.
            with contextlib.suppress(psycopg.Error):
                _execute(conn, "ROLLBACK", prepare=False)
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
