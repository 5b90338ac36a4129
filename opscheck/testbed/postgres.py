"""A real PostgreSQL 15 on a free loopback port, with a superuser to break it on purpose.

    with Postgres(tmp_dir) as pg:
        pg.create_database("app")
        pg.create_monitor_role("opscheck", password, databases=["app"])
        inventory = pg.postgres_block("main", "app", "opscheck", password_env="PG_PASSWORD")

The server runs in the foreground as a child of this process (no pg_ctl daemon to lose). The
superuser ``postgres`` logs in over the Unix socket in the cluster's directory without a
password; over TCP every role needs its password (scram-sha-256), as in production.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from opscheck.testbed import free_port
from opscheck.testbed.process import ServerProcess
from opscheck.testbed.sshd import toml_value

BINDIR = Path(os.environ.get("OPSCHECK_PG_BINDIR", "/usr/lib/postgresql/15/bin"))
SUPERUSER = "postgres"
_XIDS_PER_XACT_SEGMENT = 32 * 8192 * 4  # pg_xact: 32 pages of 8 kB, 2 bits per transaction


class PostgresError(RuntimeError):
    """A server command failed or the server did not start; the message holds its log."""


def _as_owner(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: in a new user namespace root becomes "nobody", who
    owns the root-owned data directory as PostgreSQL sees it, and the check passes."""
    return ["unshare", "--user", *command] if os.geteuid() == 0 else command


class Postgres(ServerProcess):
    """One cluster in ``directory`` (data, socket, log); ``start()`` runs initdb when needed."""

    kind = "PostgreSQL"
    error = PostgresError
    start_timeout = 15.0
    stop_signal = signal.SIGINT  # fast shutdown: roll back, disconnect everyone
    stop_timeout = 15.0

    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        *,
        name: str = "opscheck",
        autovacuum: bool = True,
        max_connections: int = 20,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        super().__init__(self.directory / "postgres.log")
        self.data = self.directory / "data"
        self.port = port or free_port()
        self.name = name
        # Small on purpose: a few real connections exhaust the server, a 6 MB table misses the
        # cache (sequential scans of tables over shared_buffers / 4 go through a small ring).
        self.settings = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.directory),
            "cluster_name": name,
            "max_connections": str(max_connections),
            "shared_buffers": "16MB",
            "shared_preload_libraries": "pg_stat_statements",
            "autovacuum": "on" if autovacuum else "off",
            "fsync": "off",  # a throw-away cluster: speed over durability
            "full_page_writes": "off",
            **(settings or {}),
        }
        self._admin: dict[str, Any] = {}

    # -- life cycle ------------------------------------------------------------------------------

    def _run(self, *command: str, as_owner: bool = True) -> None:
        argv = [str(BINDIR / command[0]), *command[1:]]
        done = subprocess.run(
            _as_owner(argv) if as_owner else argv, capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise PostgresError(f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr}")

    def command(self) -> list[str]:
        options = [f"--{key}={value}" for key, value in self.settings.items()]
        return _as_owner(
            [str(BINDIR / "postgres"), "-D", str(self.data), "-p", str(self.port), *options]
        )

    def _launch(self) -> None:
        """Create the cluster if needed, then start the server."""
        self.directory.mkdir(parents=True, exist_ok=True)
        if not (self.data / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.data),
                "-U",
                SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            )
        super()._launch()

    def ready(self) -> bool:
        """It accepts queries (over its own socket: no other server can answer there)."""
        import psycopg

        try:
            with psycopg.connect(self.admin_dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Fast shutdown (SIGINT: roll back, disconnect everyone); safe to call twice."""
        for conn in self._admin.values():
            conn.close()
        self._admin.clear()
        super().stop()

    # -- superuser access --------------------------------------------------------------------------

    def admin_dsn(self, dbname: str = "postgres") -> str:
        """The superuser over the Unix socket (trusted, no password)."""
        return f"host={self.directory} port={self.port} dbname={dbname} user={SUPERUSER}"

    def dsn(self, dbname: str, user: str) -> str:
        """A role over TCP on 127.0.0.1: what an inventory names (the password comes apart)."""
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"

    def connect(self, dbname: str = "postgres", autocommit: bool = True) -> Any:
        """A new superuser connection (the caller closes it)."""
        import psycopg

        return psycopg.connect(self.admin_dsn(dbname), autocommit=autocommit, connect_timeout=5)

    def execute(self, sql: Any, dbname: str = "postgres", params: Any = None) -> list[Any]:
        """Run ``sql`` as the superuser in ``dbname``; its statistics are visible at once."""
        if dbname not in self._admin:
            self._admin[dbname] = self.connect(dbname)
        conn = self._admin[dbname]
        cursor = conn.execute(sql, params)
        rows = cursor.fetchall() if cursor.description else []
        # Backends flush table statistics at most once a second; the checks read them next.
        conn.execute("SELECT pg_stat_force_next_flush()")
        return rows

    def create_database(self, name: str) -> None:
        from psycopg import sql

        self.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def create_monitor_role(
        self, role: str, password: str, databases: list[str], monitor: bool = True
    ) -> None:
        """The least-privilege role opscheck logs in as: LOGIN, a password, CONNECT, pg_monitor."""
        from psycopg import sql

        # Keep the password out of pg_stat_statements, which the slow-statement check reads.
        self.execute("SET pg_stat_statements.track_utility = off")
        self.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        self.execute("RESET pg_stat_statements.track_utility")
        for database in databases:
            self.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                    sql.Identifier(database), sql.Identifier(role)
                )
            )
        if monitor:
            self.execute(sql.SQL("GRANT pg_monitor TO {}").format(sql.Identifier(role)))

    def postgres_block(
        self, name: str, dbname: str, user: str, password_env: str | None = None, **fields: Any
    ) -> str:
        """One ``[[postgres]]`` inventory table; lists of tables (``queries``) become
        ``[[postgres.<key>]]`` sub-tables; ``None`` fields are left out."""
        lines = ["[[postgres]]", f"name = {toml_value(name)}"]
        lines.append(f"dsn = {toml_value(self.dsn(dbname, user))}")
        if password_env:
            lines.append(f"password_env = {toml_value(password_env)}")
        tables: list[str] = []
        for key, value in fields.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                for entry in value:
                    tables.append(f"[[postgres.{key}]]")
                    tables += [f"{k} = {toml_value(v)}" for k, v in entry.items()]
            elif value is not None:
                lines.append(f"{key} = {toml_value(value)}")
        return "\n".join([*lines, *tables]) + "\n\n"

    # -- other servers -----------------------------------------------------------------------------

    def standby(self, directory: Path, name: str = "replica1") -> Postgres:
        """A streaming replica of this server (``pg_basebackup -R``), not started yet."""
        own = ("unix_socket_directories", "cluster_name")
        settings = {k: v for k, v in self.settings.items() if k not in own}
        replica = Postgres(directory, name=name, settings=settings)
        replica.directory.mkdir(parents=True, exist_ok=True)
        self._run(
            "pg_basebackup",
            *("-D", str(replica.data), "-R", "--checkpoint=fast", "-X", "stream"),
            *("-h", str(self.directory), "-p", str(self.port), "-U", SUPERUSER),
            as_owner=False,
        )
        return replica

    def advance_xid(self, next_xid: int) -> None:
        """Move a stopped cluster's next transaction ID far ahead, as years of traffic would:
        every database's ``datfrozenxid`` is then that many transactions old."""
        assert self.process is None, "stop() the server first"
        # The commit log must have the page of the new ID, as pg_resetwal's manual explains.
        segment = self.data / "pg_xact" / f"{next_xid // _XIDS_PER_XACT_SEGMENT:04X}"
        segment.write_bytes(bytes(_XIDS_PER_XACT_SEGMENT // 4))
        self._run("pg_resetwal", "-x", str(next_xid), "-D", str(self.data))

    # -- faulty states -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def running(self, sql: str, dbname: str = "postgres") -> Iterator[int]:
        """A backend busy with ``sql`` (``SELECT pg_sleep(60)``) until the block ends: its pid."""
        conn = self.connect(dbname)
        try:
            conn.pgconn.send_query(sql.encode())  # returns at once; the server keeps running it
            self._wait_for(f"state = 'active' AND pid = {conn.info.backend_pid}")
            yield conn.info.backend_pid
        finally:
            self._end(conn)

    @contextlib.contextmanager
    def idle_in_transaction(self, dbname: str = "postgres", sql: str = "SELECT 1") -> Iterator[int]:
        """A session that ran ``sql`` in a transaction and went quiet: its pid. With ``LOCK TABLE
        t``, a migration that holds its lock while the deploy script hangs."""
        conn = self.connect(dbname, autocommit=False)
        try:
            conn.execute(sql)
            yield conn.info.backend_pid
        finally:
            self._end(conn)

    @contextlib.contextmanager
    def lock_wait(self, table: str, dbname: str = "postgres") -> Iterator[tuple[int, int]]:
        """One session holds a row of ``table`` locked, a second waits for it: (blocked, blocking).

        ``table`` is trusted SQL (the tests' own table names)."""
        blocker = self.connect(dbname, autocommit=False)
        blocked = self.connect(dbname)
        try:
            statement = f"SELECT * FROM {table} LIMIT 1 FOR UPDATE"
            blocker.execute(statement)
            blocked.pgconn.send_query(statement.encode())
            self._wait_for(f"wait_event_type = 'Lock' AND pid = {blocked.info.backend_pid}")
            yield blocked.info.backend_pid, blocker.info.backend_pid
        finally:
            self._end(blocked, blocker)

    @contextlib.contextmanager
    def connections(self, count: int, dbname: str = "postgres") -> Iterator[list[Any]]:
        """``count`` more idle superuser connections until the block ends."""
        opened: list[Any] = []
        try:
            for _ in range(count):
                opened.append(self.connect(dbname))
            yield opened
        finally:
            self._end(*opened)

    def _wait_for(self, condition: str, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.execute(f"SELECT 1 FROM pg_stat_activity WHERE {condition}"):
            if time.monotonic() > deadline:
                raise PostgresError(f"no backend with {condition} after {timeout} s")
            time.sleep(0.01)

    def _end(self, *conns: Any) -> None:
        """Close ``conns`` and wait until their backends are gone: one still exiting would count
        in the next check of connections or activity."""
        pids = [conn.info.backend_pid for conn in conns]
        with contextlib.suppress(Exception):  # the server may be gone already
            self.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM unnest(%s::int[]) AS pid",
                params=(pids,),
            )
        for conn in conns:
            conn.close()


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory(prefix="opscheck-pg-") as tmp, Postgres(Path(tmp)) as pg:
        print(f"superuser: psql '{pg.admin_dsn()}'")
        print("Ctrl-C to stop.")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
