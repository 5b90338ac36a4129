"""The PostgreSQL checks (suites/postgres) against a real PostgreSQL 15 from the testbed.

Every check runs as the least-privilege monitoring role (LOGIN, CONNECT, pg_monitor) with its
password from the environment, passes on a healthy database and fails, with an operator's
message, on a database broken for real: real connections, a real pg_sleep, a real lock, real
dead tuples, a stopped server. One server per xdist worker; each broken state lives in its own
database (or is undone when its test ends), so the tests do not see each other's damage.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opscheck.config import PostgresTarget, SqlQuery
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import postgres as probes
from opscheck.probes._sqltext import shown
from opscheck.session import Lost
from opscheck.testbed.postgres import Postgres
from tests_meta.results import values

PG = ("suites/postgres",)
PASSWORD = "pw-Zr8vQ2xL6tNe"  # the monitoring role's, handed over as $PG_PASSWORD only
MONITOR = "opscheck"  # LOGIN, CONNECT, pg_monitor (and SELECT on orders for a user query)
PLAIN = "opscheck_plain"  # LOGIN, CONNECT, without pg_monitor
SETTINGS = '[settings]\ntimeout = "3s"\n\n'
ORDERS = 10000  # rows in app.public.orders
AGE = r"(?:\d+ ms|[\d.]+ s)"  # a duration as messages show it: "312 ms", "1.2 s" (busy machine)
STATEMENTS = "SELECT query, calls FROM pg_stat_statements"  # what the server saw, and how often


@pytest.fixture(scope="session")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    """A real server for the session (of this xdist worker) with a healthy database ``app``."""
    with Postgres(tmp_path_factory.mktemp("pg")) as server:
        server.create_database("app")
        server.execute(
            "CREATE EXTENSION pg_stat_statements;"
            "CREATE TABLE orders (id serial PRIMARY KEY, status text NOT NULL, note text);"
            "INSERT INTO orders (status, note) SELECT CASE WHEN g % 100 = 0 THEN 'pending' "
            f"ELSE 'done' END, repeat('n', 50) FROM generate_series(1, {ORDERS}) g;"
            "CREATE TABLE secrets (token text);"
            "SELECT pg_stat_reset()",  # forget the reads of the database's creation
            "app",
        )
        server.execute("VACUUM ANALYZE orders", "app")
        for _ in range(20):  # a warm cache, as a database in use has
            server.execute("SELECT count(*) FROM orders", "app")
        server.create_monitor_role(MONITOR, PASSWORD, ["app"])
        server.create_monitor_role(PLAIN, PASSWORD, ["app"], monitor=False)
        server.execute(f"GRANT SELECT ON orders TO {MONITOR}", "app")
        server.execute("SELECT pg_stat_statements_reset()", "app")
        yield server


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_PASSWORD", PASSWORD)


def target(pg: Postgres, name: str, dbname: str = "app", user: str = MONITOR, **keys: Any) -> str:
    return pg.postgres_block(name, dbname, user, password_env="PG_PASSWORD", **keys)


def run(suite: Any, inventory: str, thresholds: str = "", *args: str) -> pytest.RunResult:
    """Run the PostgreSQL suite; the password must appear in no output."""
    result = suite.run(SETTINGS + inventory, thresholds, *args, paths=PG)
    for where, text in (
        ("terminal", result.stdout.str() + result.stderr.str()),
        ("json", suite.json_path.read_text()),
    ):
        assert PASSWORD not in text, f"the password leaked into the {where} output"
    return result


def said(result: dict[str, Any]) -> str:
    """What the operator reads for a test: its recorded message, else its failure text."""
    return str(result.get("message") or result.get("reason") or "")


def outcomes(result: pytest.RunResult) -> dict[str, int]:
    counts = result.parseoutcomes()
    counts.pop("deselected", None)
    return counts


# -- healthy -----------------------------------------------------------------------------------


def test_healthy_database_passes_every_check(suite, pg):
    queries = [
        {"name": "pending", "sql": "SELECT count(*) FROM orders WHERE status = 'pending'"},
        # 1 only in a read-only session with the timeout and name opscheck promises
        {
            "name": "session",
            "sql": "SELECT (current_setting('transaction_read_only') = 'on' "
            "AND current_setting('statement_timeout') = '3s' "
            "AND current_setting('application_name') = 'opscheck')::int",
            "crit": 1,
            "direction": "below",
        },
    ]
    inventory = target(pg, "main", tables=["public.orders"], queries=queries)
    pg.execute("SELECT pg_stat_statements_reset()", "app")
    result = run(suite, inventory)
    res = suite.results()
    assert outcomes(result) == {"passed": 15, "skipped": 1}, [said(r) for r in res.values()]
    # What the server saw: each view read once (server and role, activity, databases, user
    # tables; then the largest tables, table sizes, replication, statements, each for one
    # check), and each user query in its own read-only transaction, always rolled back.
    sent = dict(pg.execute(f"{STATEMENTS} WHERE userid = '{MONITOR}'::regrole", "app"))
    assert sent.pop("BEGIN READ ONLY") == sent.pop("ROLLBACK") == 2, sent
    assert list(sent.values()) == [1] * 10, sent
    assert re.fullmatch(
        r"accepting connections: PostgreSQL 15\.\d+ \(primary\), database app as opscheck, "
        r"up [\d.]+ (ms|s)",
        res["test_postgres_reachable[main]"]["measured"],
    )
    used = res["test_connections_below_limit[main]"]
    assert re.fullmatch(r"\d+ of 20 connections used \([\d.]+ %\)", used["measured"])
    assert "opscheck/opscheck 1" in used["detail"]
    assert res["test_longest_query_below_limit[main]"]["measured"] == "no active query"
    assert res["test_table_sizes_below_limit[main]"]["measured"].startswith("public.orders 1.")
    assert values(res["test_cache_hit_ratio_above_limit[main]"])[0] > 95
    assert values(res["test_query_within_limits[main/pending]"]) == [ORDERS / 100]
    assert values(res["test_query_within_limits[main/session]"]) == [1]
    assert res["test_replication_lag_below_limit[main]"]["reason"] == (
        "main: no replica, no replication slot and not a standby: no replication to measure"
    )


# -- unreachable -------------------------------------------------------------------------------


def test_stopped_server_fails_at_once_and_does_not_slow_a_healthy_one(
    suite, pg, tmp_path, monkeypatch
):
    down = Postgres(tmp_path / "down").start()
    process = down.process
    down.stop()  # a real server that was there and is not any more
    assert process is not None and process.poll() is not None
    blackhole = socket.create_server(("127.0.0.1", 0))  # accepts TCP, never answers
    monkeypatch.setenv("PG_WRONG", "wrong-Hk29xQ")
    inventory = (
        target(pg, "main")
        + down.postgres_block("down", "postgres", MONITOR, "PG_PASSWORD")
        + pg.postgres_block("hung", "app", MONITOR, "PG_PASSWORD", timeout="1s").replace(
            f"port={pg.port}", f"port={blackhole.getsockname()[1]}"
        )
        + pg.postgres_block("badpw", "app", MONITOR, "PG_WRONG")
    )
    start = time.perf_counter()
    with blackhole:
        result = run(suite, inventory, "", "-k", "not query_within")
    elapsed = time.perf_counter() - start
    assert "wrong-Hk29xQ" not in result.stdout.str() + suite.json_path.read_text()
    res = suite.results()
    first = "test_postgres_reachable"
    assert res[f"{first}[down]"]["reason"] == (
        f'down: unreachable: connection to server at "127.0.0.1", port {down.port} failed: '
        "Connection refused"
    )
    assert (
        res[f"{first}[hung]"]["reason"]
        == "hung: unreachable: no answer within 2 s (connect_timeout)"
    )
    assert res[f"{first}[hung]"]["duration"] >= 1.9
    assert res[f"{first}[badpw]"]["reason"].endswith(
        'failed: FATAL: password authentication failed for user "opscheck"'
    )
    for name in ("down", "hung", "badpw"):
        others = [r for t, r in res.items() if t.endswith(f"[{name}]") and first not in t]
        assert len(others) == 11
        for other in others:
            assert other["outcome"] == "not_run"
            assert other["reason"] == f"not run: {name} unreachable (see {first}[{name}])"
            assert other["duration"] < 0.5, other["id"]
    healthy = [r for t, r in res.items() if t.endswith("[main]")]
    assert {r["outcome"] for r in healthy} == {"passed", "skipped"}
    assert max(r["duration"] for r in healthy) < 1.0
    # One wait for the blackhole (2 s), not one per check of the dead targets.
    assert elapsed < 8, f"{elapsed:.1f} s: the dead targets slowed the run"


# -- connections and sessions ------------------------------------------------------------------


def test_connections_nearly_exhausted(suite, pg):
    # The session of an earlier run closes as that run ends; its backend may still be exiting.
    _until(
        pg, "SELECT 1 WHERE NOT EXISTS (SELECT FROM pg_stat_activity WHERE usename = 'opscheck')"
    )
    [(used,)] = pg.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'"
    )
    with pg.connections(17 - used - 1):  # 17 of 20 with opscheck's own: 85 %
        result = run(suite, target(pg, "main"), "", "-k", "connections_below")
    result.assert_outcomes(failed=1)
    failed = suite.results()["test_connections_below_limit[main]"]
    assert failed["message"] == "main: 17 of 20 connections used (85.0 %) > crit 80.0 %"
    assert re.match(r"by user/application: postgres/- 1\d, opscheck/opscheck 1", failed["detail"])


def test_long_running_query(suite, pg):
    thresholds = '[postgres.long_queries]\ncrit = 0\n[postgres.longest_query]\ncrit = "200ms"\n'
    with pg.running("SELECT pg_sleep(60)") as pid:
        time.sleep(0.3)
        result = run(
            suite,
            target(pg, "main", long_query="200ms"),
            thresholds,
            "-k",
            "long_queries or longest",
        )
    result.assert_outcomes(failed=2)
    res = suite.results()
    count = res["test_long_queries_below_limit[main]"]
    assert count["message"] == "main: 1 query active longer than 200 ms > crit 0"
    # Other sessions' literals are masked, as pg_stat_statements masks them (see query_text).
    assert re.fullmatch(rf"pid {pid} postgres/- {AGE}: SELECT pg_sleep\(\?\)", count["detail"])
    longest = res["test_longest_query_below_limit[main]"]["message"]
    assert re.fullmatch(
        rf"main: longest active query {AGE} \(pid {pid}, postgres\) > crit 200 ms", longest
    )


def test_session_idle_in_transaction(suite, pg):
    thresholds = '[postgres.idle_in_transaction]\ncrit = "200ms"\n'
    with pg.idle_in_transaction("app") as pid:
        time.sleep(0.3)
        result = run(suite, target(pg, "main"), thresholds, "-k", "idle")
    result.assert_outcomes(failed=1)
    idle = suite.results()["test_no_long_idle_transactions[main]"]
    assert re.fullmatch(
        rf"main: oldest session idle in transaction for {AGE} \(pid {pid}, postgres; "
        r"1 idle in transaction\) > crit 200 ms",
        idle["message"],
    )
    assert re.fullmatch(rf"pid {pid} postgres/- idle {AGE}, last query: SELECT \?", idle["detail"])


def test_query_waiting_on_a_lock(suite, pg):
    thresholds = '[postgres.lock_wait]\ncrit = "200ms"\n'
    with pg.lock_wait("orders", "app") as (blocked, blocking):
        time.sleep(0.3)
        result = run(suite, target(pg, "main"), thresholds, "-k", "lock")
    result.assert_outcomes(failed=1)
    wait = suite.results()["test_no_long_lock_waits[main]"]
    assert re.fullmatch(
        rf"main: pid {blocked} waits {AGE} for a lock held by pid {blocking} \(1 waiting\) "
        r"> crit 200 ms",
        wait["message"],
    )
    statement = "SELECT * FROM orders LIMIT ? FOR UPDATE"  # its literal masked
    blocked_line, blocking_line = wait["detail"].splitlines()
    assert re.fullmatch(
        rf"blocked pid {blocked} postgres waits {AGE} for pid {blocking}: " + re.escape(statement),
        blocked_line,
    )
    assert blocking_line == f"blocking pid {blocking} postgres (idle in transaction): {statement}"


# -- other sessions' SQL -----------------------------------------------------------------------

EMAIL = "alice.canary@example.com"  # another session's literal: never in a report
ROLE_PASSWORD = "pw-canary-Tq83"  # another session's ALTER ROLE ... PASSWORD
ORDER_ID = 7342911  # another session's number


def reports_hold(suite: Any, result: pytest.RunResult, tmp_path: Any, *canaries: str) -> None:
    """No canary in the terminal, the JSON, the JUnit or the HTML report of the run."""
    written = {
        "terminal": result.stdout.str() + result.stderr.str(),
        "json": suite.json_path.read_text(),
        "junit": (tmp_path / "junit.xml").read_text(),
        "html": (tmp_path / "report.html").read_text(),
    }
    for where, text in written.items():
        for canary in canaries:
            assert canary not in text, f"{canary} in the {where} output"


def test_other_sessions_sql_masked_or_by_tag_only(suite, pg, tmp_path):
    """A long query with an e-mail address in it shows ``?`` in its place; a session idle in a
    transaction after ALTER ROLE ... PASSWORD shows "ALTER ROLE"; ``query_text = false`` shows
    command tags only."""
    pg.execute("CREATE ROLE canary_app")
    thresholds = (
        '[postgres.long_queries]\ncrit = 0\n[postgres.longest_query]\ncrit = "200ms"\n'
        '[postgres.idle_in_transaction]\ncrit = "200ms"\n'
    )
    reports = (f"--junitxml={tmp_path / 'junit.xml'}", f"--html={tmp_path / 'report.html'}")
    slow = (
        f"SELECT count(*) FROM orders WHERE note <> '{EMAIL}' AND id <> {ORDER_ID} "
        "AND pg_sleep(60) IS NOT NULL"
    )
    alter = f"ALTER ROLE canary_app PASSWORD '{ROLE_PASSWORD}'"
    try:
        with pg.running(slow, "app") as busy, pg.idle_in_transaction("app", alter) as idle:
            time.sleep(0.3)
            inventory = target(pg, "masked", long_query="200ms") + target(
                pg, "off", long_query="200ms", query_text=False
            )
            result = run(
                suite, inventory, thresholds, "-k", "long_queries or longest or idle", *reports
            )
    finally:
        pg.execute("DROP ROLE canary_app")
    reports_hold(suite, result, tmp_path, EMAIL, ROLE_PASSWORD, str(ORDER_ID))
    res = suite.results()
    masked = "SELECT count(*) FROM orders WHERE note <> ? AND id <> ? AND pg_sleep(?) IS NOT NULL"
    for test in ("test_long_queries_below_limit", "test_longest_query_below_limit"):
        # (The longest queries' detail goes on with the other target's session reading.)
        first = {
            name: res[f"{test}[{name}]"]["detail"].splitlines()[0] for name in ("masked", "off")
        }
        assert re.fullmatch(rf"pid {busy} postgres/- {AGE}: " + re.escape(masked), first["masked"])
        assert re.fullmatch(rf"pid {busy} postgres/- {AGE}: SELECT", first["off"])
    for name in ("masked", "off"):
        assert re.fullmatch(
            rf"pid {idle} postgres/- idle {AGE}, last query: ALTER ROLE",
            res[f"test_no_long_idle_transactions[{name}]"]["detail"],
        )


def test_utility_statement_in_pg_stat_statements_by_tag_only(suite, pg, tmp_path):
    """The weekly statement check once printed ALTER ROLE ... PASSWORD '...' as
    pg_stat_statements keeps it: now its tag only, beside the other statements' masked text."""
    pg.create_database("leaky")
    pg.execute("CREATE EXTENSION pg_stat_statements; CREATE ROLE canary_stmt", "leaky")
    pg.execute(  # only this database's statements: the other tests' stay
        "SELECT pg_stat_statements_reset(dbid => oid) FROM pg_database WHERE datname = 'leaky'",
        "leaky",
    )
    try:
        pg.execute(f"ALTER ROLE canary_stmt PASSWORD '{ROLE_PASSWORD}'", "leaky")
        pg.execute(f"SELECT pg_sleep(0.2) /* {EMAIL} */", "leaky")
        [(kept,)] = pg.execute(
            "SELECT query FROM pg_stat_statements WHERE query LIKE 'ALTER ROLE canary_stmt%'",
            "leaky",
        )
        assert ROLE_PASSWORD in kept  # what the extension keeps, as the issue found it
        reports = (f"--junitxml={tmp_path / 'junit.xml'}", f"--html={tmp_path / 'report.html'}")
        result = run(suite, target(pg, "main", "leaky"), "", "-k", "statements", *reports)
    finally:
        pg.execute("DROP ROLE canary_stmt")
    reports_hold(suite, result, tmp_path, ROLE_PASSWORD, EMAIL)
    detail = suite.results()["test_statements_mean_time_below_limit[main]"]["detail"]
    lines = detail.splitlines()
    assert re.fullmatch(rf"mean {AGE}, 1 call: SELECT pg_sleep\(\$1\)", lines[0]), detail
    assert any(re.fullmatch(rf"mean {AGE}, 1 call: ALTER ROLE", line) for line in lines), detail


@pytest.mark.parametrize(
    ("sql", "masked", "tags"),
    [
        ("SELECT * FROM users WHERE email = 'a@b.example' AND id = 42", "SELECT * FROM users "
         "WHERE email = ? AND id = ?", "SELECT"),
        ("select E'it\\'s', $$a@b$$, $fn$ 'x' $fn$, B'01', X'FF', U&'d\\0061', 1.5e3, .5, 0x1F",
         "select ?, ?, ?, ?, ?, ?, ?, ?, ?", "SELECT"),
        ("SELECT t1.c2, a$b, \"it's\" FROM t WHERE a = 'b''c' AND d = $1", "SELECT t1.c2, a$b, "
         "\"it's\" FROM t WHERE a = ? AND d = $1", "SELECT"),
        ("SELECT 1 -- 'note' a@b\nFROM t /* a /* 'x' */ b */ WHERE x = 'y'",
         "SELECT ? FROM t WHERE x = ?", "SELECT"),
        ("SELECT * FROM t WHERE e = 'a@b.exa", "SELECT * FROM t WHERE e = ?", "SELECT"),
        ("SELECT $tag$ cut off 'x'", "SELECT ?", "SELECT"),
        ("WITH x AS (SELECT 'a') SELECT * FROM x", "WITH x AS (SELECT ?) SELECT * FROM x", "WITH"),
        ("alter role app_user with password 'pw'", "ALTER ROLE", "ALTER ROLE"),
        ("CREATE OR REPLACE FUNCTION f() AS $$ SELECT 'x' $$", "CREATE FUNCTION",
         "CREATE FUNCTION"),
        ("COPY users FROM STDIN", "COPY", "COPY"),
        ("BEGIN; SET x = 'y'; SELECT 'z';", "BEGIN; SET; SELECT ?", "BEGIN; SET; SELECT"),
        ("EXPLAIN ANALYZE SELECT 'a'", "EXPLAIN", "EXPLAIN"),
        ("token-Zq8 is not SQL", "(statement not shown)", "(statement not shown)"),
    ],
)  # fmt: skip
def test_sql_text_shown_masked_or_by_tag(sql, masked, tags):
    """What a report shows of another session's SQL (opscheck.probes._sqltext)."""
    assert shown(sql) == masked
    assert shown(sql, text=False) == tags


@pytest.mark.parametrize(
    ("entry", "parts"),
    [
        ("orders", (None, "orders")),
        (" Public . ORDERS ", ("public", "orders")),
        ('"My ""Big"" Table"', (None, 'My "Big" Table')),
        ('a"b', (None, 'a"b')),  # an unquoted name may hold a quote, as PostgreSQL reads it
        ("no pe", "'pe' after 'no' (quote a name with spaces)"),
        ("a.b.c", "3 parts, at most 2"),
        ("public.", "an empty name"),
        ('""', "an empty name"),
        ('"open', "a quote is not closed"),
        ("ord\x00ers", "a NUL character"),
    ],
)
def test_table_names_read_as_postgresql_reads_them(entry, parts):
    if isinstance(parts, tuple):
        assert probes.table_name(entry) == parts
    else:
        with pytest.raises(ValueError) as why:
            probes.table_name(entry)
        assert str(why.value) == parts


# -- storage and maintenance -------------------------------------------------------------------


def test_database_and_table_over_size_limits(suite, pg):
    thresholds = '[postgres.database_size]\ncrit = "5MB"\n[postgres.table_size]\ncrit = "100KB"\n'
    inventory = target(pg, "main", tables=["public.orders", "nope", "no pe"])
    result = run(suite, inventory, thresholds, "-k", "size")
    result.assert_outcomes(failed=2)
    res = suite.results()
    database = res["test_database_size_below_limit[main]"]
    assert re.fullmatch(r"main: database app \d\.\d MB > crit 5\.0 MB", database["message"])
    assert database["detail"].startswith("largest tables (estimated): public.orders ")
    tables = res["test_table_sizes_below_limit[main]"]["reason"].splitlines()
    assert re.fullmatch(r"main: public\.orders 1\.\d MB > crit 100\.0 KB", tables[0])
    assert tables[1] == "main: nope: no such table"
    assert tables[2] == (
        "main: no pe: not a table name (schema.table): 'pe' after 'no' (quote a name with spaces)"
    )


def test_locked_table_bounds_the_size_check_by_the_timeout(suite, pg):
    """A table locked by a stuck migration: the check gives up after the target's timeout."""
    with pg.idle_in_transaction("app", "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"):
        inventory = target(pg, "main", tables=["public.orders"], timeout="1s")
        result = run(suite, inventory, "", "-k", "size")
    result.assert_outcomes(passed=1, failed=1)
    res = suite.results()
    locked = res["test_table_sizes_below_limit[main]"]
    assert locked["reason"] == "main: canceling statement due to lock timeout"
    assert 0.7 < locked["duration"] < 2.5  # lock_timeout: 80 % of the target's timeout
    # The database size and its largest tables come from pg_class: no lock, no wait.
    assert res["test_database_size_below_limit[main]"]["duration"] < 0.5


def test_malformed_table_names_reported_per_entry(suite, pg):
    """Each entry of ``tables`` gets its own answer in both table checks: a name PostgreSQL
    cannot parse (a no-break space pasted after it, an unclosed quote) says why, and the other
    entries still measure. Before, to_regclass() raised on it and failed both checks, naming
    no entry."""
    tables = [
        "public.orders",
        "public.orders \u00a0",  # PostgreSQL: "invalid name syntax", for the whole query
        'public."orders',
        "Public.ORDERS",  # folded to lower case, as PostgreSQL does
        '"public"."orders"',
        "public.nope",
    ]
    thresholds = '[postgres.table_size]\ncrit = "1GB"\n[postgres.vacuum_age]\ncrit = "1d"\n'
    result = run(suite, target(pg, "main", tables=tables), thresholds, "-k", "table")
    result.assert_outcomes(failed=2)
    res = suite.results()
    measured = {
        test: [(r["verdict"], r["measured"]) for r in res[f"{test}[main]"]["records"]]
        for test in ("test_table_sizes_below_limit", "test_tables_vacuumed_recently")
    }
    not_names = [
        (
            "CRIT",
            "'public.orders \\xa0': not a table name (schema.table): '\\xa0' after 'orders' "
            "(quote a name with spaces)",
        ),
        ("CRIT", 'public."orders: not a table name (schema.table): a quote is not closed'),
    ]
    missing = ("CRIT", "public.nope: no such table")
    sizes = measured["test_table_sizes_below_limit"]
    assert sizes[1:3] == not_names and sizes[5] == missing, sizes
    for found in (0, 3, 4):
        assert sizes[found][0] == "OK"
        assert re.fullmatch(rf"{re.escape(tables[found])} 1\.\d MB", sizes[found][1]), sizes
    ages = measured["test_tables_vacuumed_recently"]  # the vacuum ages, then the analyze ages
    assert ages[1:3] == not_names and ages[5] == missing, ages
    for found, (verdict, age) in zip(
        (0, 3, 4, 0, 3, 4), ages[:1] + ages[3:5] + ages[6:], strict=True
    ):
        assert verdict == "OK"
        assert re.fullmatch(rf"{re.escape(tables[found])} (vacuum|analyz)ed {AGE} ago", age), ages


def test_dead_tuples_and_tables_never_vacuumed(suite, pg):
    pg.create_database("bloat")
    pg.execute(
        "CREATE TABLE events (id int, payload text) WITH (autovacuum_enabled = off);"
        "INSERT INTO events SELECT g, 'new' FROM generate_series(1, 5000) g;"
        "CREATE TABLE archive (id int);",
        "bloat",
    )
    pg.execute("VACUUM ANALYZE archive", "bloat")
    pg.execute("UPDATE events SET payload = 'processed'", "bloat")  # 5000 dead row versions
    time.sleep(0.25)
    thresholds = '[postgres.vacuum_age]\ncrit = "200ms"\n'
    # A name to_regclass() cannot parse is said once; the checks sharing the read still measure.
    tables = ["public.events", "public.archive", "a.b.events"]
    inventory = target(pg, "main", "bloat", tables=tables)
    result = run(suite, inventory, thresholds, "-k", "dead or vacuumed")
    result.assert_outcomes(failed=2)
    res = suite.results()
    assert res["test_dead_tuples_below_limit[main]"]["message"] == (
        "main: public.events 100.0 % dead tuples (5000 dead, 5000 live) > crit 50.0 %"
    )
    assert "never vacuumed" in res["test_dead_tuples_below_limit[main]"]["detail"]
    vacuum = res["test_tables_vacuumed_recently[main]"]["reason"].splitlines()
    assert vacuum[0] == "main: public.events never vacuumed"
    assert re.fullmatch(rf"main: public\.archive vacuumed {AGE} ago > crit 200 ms", vacuum[1])
    assert vacuum[2] == "main: a.b.events: not a table name (schema.table): 3 parts, at most 2"
    assert vacuum[3] == "main: public.events never analyzed"  # the vacuum ages, then analyze
    assert len(vacuum) == 4  # archive was analyzed 0.3 s ago: within the default 7 days


def test_transaction_id_wraparound_near(suite, pg, tmp_path):
    aged = Postgres(
        tmp_path / "aged", autovacuum=False, settings={"autovacuum_freeze_max_age": "2000000000"}
    )
    aged.start().stop()
    aged.advance_xid(1_700_000_000)  # 79 % of the way to wraparound, as years of traffic go
    with aged:
        aged.create_monitor_role(MONITOR, PASSWORD, ["postgres"])
        old = aged.postgres_block("old", "postgres", MONITOR, "PG_PASSWORD")
        result = run(suite, target(pg, "main") + old, "", "-k", "wraparound")
    result.assert_outcomes(passed=1, failed=1)
    res = suite.results()
    assert values(res["test_transaction_ids_far_from_wraparound[main]"])[0] < 1
    assert re.fullmatch(
        r"old: transaction ID age 1[67]\d{8} in \w+ \(79\.2 % of the wraparound limit\) "
        r"> crit 75\.0 %",
        res["test_transaction_ids_far_from_wraparound[old]"]["message"],
    )


# -- performance -------------------------------------------------------------------------------


def test_cache_misses_on_a_cold_database(suite, pg):
    pg.create_database("cold")
    # Scans of a table over shared_buffers / 4 (4 MB here) read through a small ring of buffers.
    pg.execute(
        "CREATE TABLE big AS SELECT g, repeat('x', 200) AS filler FROM generate_series(1, 30000) g",
        "cold",
    )
    pg.execute("SELECT pg_stat_reset()", "cold")  # count only the reads of the scans below
    for _ in range(3):
        pg.execute("SELECT count(*) FROM big", "cold")
    result = run(suite, target(pg, "main", "cold"), "", "-k", "cache_hit")
    result.assert_outcomes(failed=1)
    message = suite.results()["test_cache_hit_ratio_above_limit[main]"]["message"]
    match = re.fullmatch(
        r"main: cache hit ratio ([\d.]+) % \(\d+ hits, \d+ reads in database cold\) < crit 90\.0 %",
        message,
    )
    assert match and float(match.group(1)) < 50, message


def test_pg_stat_statements_absent_then_slow_statement(suite, pg):
    pg.create_database("nostats")
    pg.create_database("stmts")
    pg.execute("CREATE EXTENSION pg_stat_statements", "stmts")
    for _ in range(2):
        pg.execute("SELECT pg_sleep(0.15)", "stmts")
    inventory = (
        target(pg, "bare", "nostats") + target(pg, "busy", "stmts") + target(pg, "strict", "stmts")
    )
    thresholds = '[postgres.statement_mean_time.targets.strict]\ncrit = "100ms"\n'
    result = run(suite, inventory, thresholds, "-k", "statements")
    assert outcomes(result) == {"skipped": 1, "warned": 1, "failed": 1}
    res = suite.results()
    assert res["test_statements_mean_time_below_limit[bare]"]["reason"] == (
        "bare: pg_stat_statements is not installed in database nostats (CREATE EXTENSION "
        "pg_stat_statements; it needs shared_preload_libraries = 'pg_stat_statements')"
    )
    busy = res["test_statements_mean_time_below_limit[busy]"]
    assert re.fullmatch(
        r"busy: slowest statement: mean 1\d\d ms over 2 calls > warn 100 ms", busy["message"]
    )
    strict = res["test_statements_mean_time_below_limit[strict]"]
    assert strict["message"].endswith("over 2 calls > crit 100 ms")
    assert re.search(r"mean 1\d\d ms, 2 calls: SELECT pg_sleep\(\$1\)", strict["detail"])


# -- replication -------------------------------------------------------------------------------


def test_replica_behind_and_slot_retaining_wal(suite, pg, tmp_path):
    replica = pg.standby(tmp_path / "replica").start()
    pg.execute("CHECKPOINT")  # the new slot keeps WAL from the last checkpoint on
    pg.execute("SELECT pg_create_physical_replication_slot('forgotten', true)")
    try:
        _caught_up(pg, replica)
        inventory = target(pg, "primary") + replica.postgres_block(
            "replica", "app", MONITOR, "PG_PASSWORD"
        )
        thresholds = '[postgres.replication_lag]\ncrit = "8MB"\n'
        run(suite, inventory, thresholds, "-k", "replication").assert_outcomes(passed=2)
        healthy = suite.results()["test_replication_lag_below_limit[primary]"]["measured"]
        assert re.fullmatch(
            r"replica replica1 [\d.]+ K?B behind "
            r"\(streaming from local socket(, replay lag .*)?\); "
            r"slot forgotten retains [\d.]+ K?B of WAL \(physical, inactive\)",
            healthy,
        ), healthy

        replica.execute("SELECT pg_wal_replay_pause()")
        for _ in range(2):  # two new WAL segments (16 MB each) the replica does not replay
            pg.execute("CREATE TEMP TABLE t AS SELECT 1; DROP TABLE t; SELECT pg_switch_wal()")
        _received(pg, replica)
        result = run(suite, inventory, thresholds, "-k", "replication")
    finally:
        replica.stop()
        pg.execute("SELECT pg_drop_replication_slot('forgotten')")
    result.assert_outcomes(failed=2)
    res = suite.results()
    primary = res["test_replication_lag_below_limit[primary]"]["reason"]
    assert re.search(r"primary: replica replica1 \d\d\.\d MB behind \(streaming", primary)
    assert re.search(r"slot forgotten retains \d\d\.\d MB of WAL \(physical, inactive\)", primary)
    standby = res["test_replication_lag_below_limit[replica]"]["message"]
    assert re.match(r"replica: this standby \d\d\.\d MB received but not replayed", standby)


def _caught_up(primary: Postgres, replica: Postgres) -> None:
    _until(
        primary,
        "SELECT 1 FROM pg_stat_replication WHERE replay_lsn = pg_current_wal_lsn()",
    )


def _received(primary: Postgres, replica: Postgres) -> None:
    [(lsn,)] = primary.execute("SELECT pg_current_wal_lsn()::text")
    _until(replica, f"SELECT 1 WHERE pg_last_wal_receive_lsn() >= '{lsn}'")


def _until(server: Postgres, sql: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not server.execute(sql):
        assert time.monotonic() < deadline, f"not within {timeout} s: {sql}"
        time.sleep(0.02)


# -- one read per view, shared by the checks --------------------------------------------------


def test_checks_measured_at_once_share_each_read(pg):
    """Checks of one target measured at the same time in threads (as opscheck measures ahead):
    each view is read once, and no check's statement lands in a user query's transaction."""
    spec = PostgresTarget(name="main", dsn=pg.dsn("app", MONITOR), tables=["public.orders"])
    pending = SqlQuery(name="pending", sql="SELECT count(*) FROM orders WHERE status = 'pending'")
    broken = SqlQuery(name="broken", sql="SELECT 1 / 0")  # its transaction aborts
    checks: list[Callable[[Any], Any]] = [
        probes.reachable,
        probes.connections_used,
        lambda s: probes.long_queries(s, spec),
        probes.longest_query,
        probes.idle_in_transaction,
        probes.lock_waits,
        probes.database_size,
        probes.cache_hit,
        probes.xid_age,
        lambda s: probes.dead_tuples(s, spec),
        lambda s: probes.vacuum_ages(s, spec),
        lambda s: probes.analyze_ages(s, spec),
    ]
    checks += [lambda s: probes.user_query(s, broken), lambda s: probes.user_query(s, pending)] * 4
    pg.execute("SELECT pg_stat_statements_reset()", "app")
    session = probes.open_session(spec, PASSWORD, 3.0)
    start = threading.Barrier(len(checks))
    found: list[Any] = [None] * len(checks)

    def measure(index: int) -> None:
        start.wait()
        try:
            found[index] = checks[index](session)
        except ProbeError as exc:
            found[index] = exc

    threads = [threading.Thread(target=measure, args=(i,)) for i in range(len(checks))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        session.close()
    failed = [str(f) for f in found if isinstance(f, ProbeError)]
    assert failed == ["query broken failed: division by zero"] * 4
    assert all(isinstance(f, Measurement | list | ProbeError) for f in found)
    assert found[-1].value == ORDERS / 100
    sent = dict(pg.execute(f"{STATEMENTS} WHERE userid = '{MONITOR}'::regrole", "app"))
    assert sent.pop("BEGIN READ ONLY") == sent.pop("ROLLBACK") == 8, sent
    assert sent.pop("SELECT count(*) FROM orders WHERE status = $1") == 4
    # server and role, pg_stat_activity, pg_database, pg_stat_user_tables, largest tables
    assert list(sent.values()) == [1] * 5, sent


def test_server_gone_mid_run_fails_the_checks_sharing_a_read_alike(tmp_path):
    """A server gone mid-run is lost: every later check of the session says the same error
    (the run then marks the target down, see test_faults_postgres.py)."""
    gone = Postgres(tmp_path / "gone").start()
    try:
        gone.create_monitor_role(MONITOR, PASSWORD, ["postgres"])
        spec = PostgresTarget(name="gone", dsn=gone.dsn("postgres", MONITOR))
        session = probes.open_session(spec, PASSWORD, 3.0)
        assert probes.reachable(session).ok
        gone.stop()  # a real server going away between two checks
        errors = []
        for check in (probes.connections_used, probes.longest_query, probes.database_size):
            with pytest.raises(Lost) as failed:
                check(session)
            errors.append(str(failed.value))
        session.close()
    finally:
        gone.stop()
    assert len(set(errors)) == 1, errors
    assert errors[0] == "terminating connection due to administrator command", errors


# -- privileges --------------------------------------------------------------------------------


def test_role_without_pg_monitor_is_told_what_to_grant(suite, pg):
    result = run(suite, target(pg, "plain", user=PLAIN), "", "-k", "not replication")
    res = suite.results()
    grant = "plain: permission denied: grant pg_monitor to opscheck_plain (without it "
    needs_monitor = [
        "test_connections_below_limit[plain]",
        "test_long_queries_below_limit[plain]",
        "test_longest_query_below_limit[plain]",
        "test_no_long_idle_transactions[plain]",
        "test_no_long_lock_waits[plain]",
        "test_statements_mean_time_below_limit[plain]",
    ]
    for test in needs_monitor:
        assert res[test]["outcome"] == "failed", test
        assert res[test]["reason"].startswith(grant), res[test]["reason"]
    assert res["test_postgres_reachable[plain]"]["outcome"] == "passed"
    assert res["test_query_within_limits[-]"]["reason"] == (
        "no [[postgres]] target in inventory.toml sets queries"
    )
    assert outcomes(result) == {"passed": 5, "failed": 6, "skipped": 3}


# -- user-defined queries ----------------------------------------------------------------------


def test_user_queries_over_limit_wrong_shape_and_writes(suite, pg):
    queries = [
        {"name": "pending", "sql": "SELECT count(*) FROM orders WHERE status = 'pending'"},
        {"name": "backlog", "sql": "SELECT count(*) FROM orders", "warn": 50, "crit": 100},
        {"name": "label", "sql": "SELECT 'abc'"},
        {"name": "empty", "sql": "SELECT 1 WHERE false"},
        {"name": "null", "sql": "SELECT NULL::int"},
        {"name": "many", "sql": "SELECT generate_series(1, 3)"},
        {"name": "secret", "sql": "SELECT count(*) FROM secrets"},
        # Turning the session's read-only default off is undone with the query's transaction...
        {
            "name": "unlock",
            "sql": "SELECT length(set_config('default_transaction_read_only', 'off', false))",
        },
        # ...so the writes that follow are still refused.
        {"name": "purge", "sql": "DELETE FROM orders WHERE id < 10"},
        {"name": "escape", "sql": "COMMIT; DELETE FROM orders"},
    ]
    result = run(suite, target(pg, "main", queries=queries), "", "-k", "query_within")
    assert outcomes(result) == {"passed": 2, "failed": 8}
    res = {t.split("[")[1].rstrip("]"): r for t, r in suite.results().items()}
    assert res["main/pending"]["outcome"] == "passed"
    assert res["main/unlock"]["outcome"] == "passed"
    assert res["main/backlog"]["message"] == f"main: backlog {ORDERS} > crit 100"
    shape = "(expected one row with one number)"
    assert said(res["main/label"]) == f"main: query label: returned str 'abc' {shape}"
    assert said(res["main/empty"]) == f"main: query empty: returned no rows {shape}"
    assert said(res["main/null"]) == f"main: query null: returned NULL {shape}"
    assert said(res["main/many"]) == f"main: query many: returned more than one row {shape}"
    assert said(res["main/secret"]) == (
        "main: query secret: permission denied (permission denied for table secrets): "
        "grant opscheck SELECT on what the query reads"
    )
    assert said(res["main/purge"]) == (
        "main: query purge: rejected, the session is read-only (cannot execute DELETE in a "
        "read-only transaction); opscheck runs queries read-only: measure with a SELECT"
    )
    assert said(res["main/escape"]) == (
        "main: query escape failed: cannot insert multiple commands into a prepared statement"
    )
    assert pg.execute("SELECT count(*) FROM orders", "app") == [(ORDERS,)]  # nothing written


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "error"),
    [
        (
            '[[postgres]]\nname = "main"\ndsn = "host=db user=ops password=hunter2"\n',
            "inventory.toml: postgres[0].dsn: expected a DSN without a password (name the "
            "variable that holds it in password_env)",
        ),
        (
            '[[postgres]]\nname = "main"\ndsn = "host=db"\n'
            '[[postgres.queries]]\nname = "q"\nsql = "SELECT 1"\n'
            '[[postgres.queries]]\nname = "q"\nsql = "SELECT 2"\n',
            "inventory.toml: postgres[0].queries: duplicate query name 'q' (it becomes the "
            "test id)",
        ),
        (
            '[[postgres]]\nname = "main"\ndsn = "host=db"\npassword_env = "PG_NOT_SET"\n',
            "inventory.toml: postgres[0].password_env: environment variable PG_NOT_SET is not set",
        ),
    ],
    ids=["password in dsn", "duplicate query", "password variable unset"],
)
def test_configuration_mistakes_stop_the_run(suite, block, error):
    result = suite.run(block, "", paths=PG)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"ERROR: {error}" in result.stderr.str()
    assert "hunter2" not in result.stderr.str()
