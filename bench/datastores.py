"""PostgreSQL and Redis checks on the demo stack: opscheck vs psql/redis-cli and check_postgres.

    .venv/bin/python bench/datastores.py [--runs 5]

Times, best and median of N runs, on the same servers and the same least-privilege users:
- ``pytest suites/postgres suites/redis`` (every schedule: all PostgreSQL and Redis checks);
- the runbook way: one ``psql -c`` / ``redis-cli`` process per check, as an operator types them;
- check_postgres (Debian ``check-postgres``), one process per equivalent action, if installed.
Prints a Markdown table for bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys

from _timing import demo_stack, print_table, timed

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


def scripts(s: Stack) -> dict[str, str]:
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
        found["check_postgres, one process per action (PostgreSQL only)"] = "\n".join(actions)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with demo_stack() as (s, path, env):
        command = [sys.executable, "-m", "pytest", "-q", "suites/postgres", "suites/redis"]
        rows = {
            "opscheck: pytest suites/postgres suites/redis (all schedules)": timed(
                [*command, "--inventory", str(path)], args.runs, env
            )
        }
        for name, script in scripts(s).items():
            rows[name] = timed(["bash", "-c", script], args.runs, env)
    print_table(rows)


if __name__ == "__main__":
    main()
