"""PostgreSQL and Redis checks on the demo stack: opscheck vs check_postgres and psql/redis-cli.

    .venv/bin/python bench/datastores.py [--runs 5]

Whole processes on the same servers, as the same least-privilege users, run in turn (one of each
per round, so that a busy machine slows every side alike):
- ``pytest suites/postgres`` (every schedule: all PostgreSQL checks) against check_postgres
  (Debian ``check-postgres``), one process per equivalent action: the issue's goal is a ratio
  of at most 0.3;
- ``pytest suites/postgres suites/redis`` against the runbook way, one ``psql -c`` /
  ``redis-cli`` process per line, as an operator types them.
Prints a Markdown table for bench/RESULTS.md (wall time best and median, CPU time median), the
ratio of the medians, and how many statements opscheck sent PostgreSQL.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import statistics
import sys

from _timing import demo_stack, interleaved, with_plugin

from opscheck.testbed.demo import Stack

PSQL_LINES = [
    "SELECT count(*) FROM pg_stat_activity",
    "SELECT usename, application_name, count(*) FROM pg_stat_activity GROUP BY 1, 2",
    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
    " AND query_start < now() - interval '5 seconds'",
    "SELECT max(now() - query_start) FROM pg_stat_activity WHERE state = 'active'",
    "SELECT max(now() - xact_start) FROM pg_stat_activity WHERE state = 'idle in transaction'",
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'",
    "SELECT pg_size_pretty(pg_database_size(current_database()))",
    "SELECT pg_size_pretty(pg_total_relation_size('public.receipts'))",
    "SELECT relname, n_dead_tup, n_live_tup FROM pg_stat_user_tables WHERE n_dead_tup > 1000",
    "SELECT last_autovacuum, last_autoanalyze FROM pg_stat_user_tables",
    "SELECT sum(blks_hit) / nullif(sum(blks_hit + blks_read), 0) FROM pg_stat_database",
    "SELECT max(age(datfrozenxid)) FROM pg_database",
    "SELECT * FROM pg_stat_replication",
    "SELECT count(*) FROM receipts WHERE status = 'pending'",
]
REDIS_LINES = [
    "ping",
    "info server",
    "info memory",
    "info clients",
    "info stats",
    "info persistence",
    "info replication",
    "info keyspace",
    "llen queue:embeddings",
]
CHECK_POSTGRES_ACTIONS = {  # action -> its warning level, set loose: we time, not judge
    "connection": "",
    "backends": "90%",
    "query_time": "'5 minutes'",
    "txn_idle": "'5 minutes'",
    "locks": "100",
    "database_size": "'100 GB'",
    "table_size": "'10 GB'",
    "bloat": "'10 GB'",
    "last_autovacuum": "'7 days'",
    "hitratio": "90%",
    "txn_wraparound": "1300000000",
}
OPSCHECK_PG = "opscheck: pytest suites/postgres (all schedules)"
CHECK_POSTGRES = "check_postgres, one process per action (11 actions)"

# Counts the statements the checks send (a plugin of the timed-once extra run, not of the timed).
_COUNTER = """\
import psycopg

SENT = []
_execute = psycopg.Connection.execute


def _counted(self, query, *args, **kwargs):
    SENT.append(query)
    return _execute(self, query, *args, **kwargs)


psycopg.Connection.execute = _counted


def pytest_unconfigure(config):
    print(f"statements sent: {len(SENT)}")
"""


def scripts(s: Stack) -> dict[str, str]:
    """The shell scripts to time against opscheck: the runbook lines and check_postgres."""
    pg = f"-h 127.0.0.1 -p {s.pg.port} -U opscheck"
    redis = f'redis-cli -p {s.redis.port} --user opscheck --pass "$OPSCHECK_DEMO_REDIS_PASSWORD"'
    runbook = [f"psql {pg} -d app -Atc {shlex.quote(q)}" for q in PSQL_LINES]
    runbook += [f"{redis} --no-auth-warning {line}" for line in REDIS_LINES]
    found = {"runbook lines: psql -c / redis-cli, one process each": "\n".join(runbook)}
    if shutil.which("check_postgres"):
        connect = f"--host=127.0.0.1 --port={s.pg.port} --dbuser=opscheck --dbname=app"
        actions = [
            f"check_postgres --action={a} {connect}" + (f" --warning={w}" if w else "")
            for a, w in CHECK_POSTGRES_ACTIONS.items()
        ]
        found[CHECK_POSTGRES] = "\n".join(actions)
    return found


def statements(command: list[str], env: dict[str, str]) -> str:
    """How many statements one run of the PostgreSQL checks sends (psycopg's execute calls)."""
    stdout = with_plugin(command, env, "opscheck_bench_counter", _COUNTER)
    return next((line for line in stdout.splitlines() if "statements sent" in line), "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with demo_stack() as (s, path, env):
        pytest = [sys.executable, "-m", "pytest", "-q", "--inventory", str(path)]
        commands = {
            OPSCHECK_PG: [*pytest, "suites/postgres"],
            "opscheck: pytest suites/postgres suites/redis (all schedules)": [
                *pytest,
                "suites/postgres",
                "suites/redis",
            ],
        }
        commands |= {name: ["bash", "-c", script] for name, script in scripts(s).items()}
        times = interleaved(commands, args.runs, env)
        sent = statements(commands[OPSCHECK_PG], env)
    print("| what | runs | best | median | CPU (median) |")
    print("|---|---|---|---|---|")
    for name, (wall, cpu) in times.items():
        print(
            f"| {name} | {len(wall)} | {min(wall):.2f} s | {statistics.median(wall):.2f} s "
            f"| {statistics.median(cpu):.2f} s |"
        )
    print()
    print(f"PostgreSQL checks: {sent}")
    if CHECK_POSTGRES in times:
        ours, theirs = (statistics.median(times[n][0]) for n in (OPSCHECK_PG, CHECK_POSTGRES))
        print(
            f"opscheck {ours:.2f} s / check_postgres {theirs:.2f} s = {ours / theirs:.2f} "
            "(medians; goal <= 0.3)"
        )
    else:
        print("check_postgres is not installed (apt-get install check-postgres): no ratio")


if __name__ == "__main__":
    main()
