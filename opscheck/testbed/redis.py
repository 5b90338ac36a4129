"""A real ``redis-server`` on a free loopback port, and ways to break it for real.

    with RedisServer(tmp_dir, maxmemory="4mb") as server:
        server.add_reader("opscheck", password)          # the read-only ACL user of the checks
        inventory = server.redis_block("cache", username="opscheck", password_env="REDIS_PW")
        server.fill(0.95)                                 # used memory at 95 % of maxmemory

Set-up and breaking go through ``admin()`` (the ``default`` user); the checks never use it.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any

from opscheck.testbed import free_port
from opscheck.testbed.process import ServerProcess
from opscheck.testbed.sshd import toml_value

REDIS_SERVER = "redis-server"
# What the checks run, and all the read-only user may: no key is written, no config is read
# (CONFIG GET would hand out requirepass and masterauth), nothing is flushed or saved.
READ_ONLY_COMMANDS = ("ping", "info", "type", "llen", "zcard", "xlen", "select")
READ_ONLY_ACL = (
    "ACL SETUSER opscheck on >PASSWORD resetkeys resetchannels -@all "
    "+ping +info +type +llen +zcard +xlen +select %R~*"
)


class RedisError(RuntimeError):
    """redis-server did not start or did not reach the state asked for; says why."""


class RedisServer(ServerProcess):
    """``redis-server`` in the foreground, with its data and log in ``directory``.

    ``settings`` are redis.conf directives (``{"maxmemory": "4mb", "save": "3600 1"}``), added
    to the testbed's defaults: loopback only, no snapshots, no AOF.
    """

    kind = "redis-server"
    error = RedisError
    stop_signal = signal.SIGKILL  # a throw-away server needs no last snapshot

    def __init__(
        self, directory: Path, port: int | None = None, **settings: str | int | None
    ) -> None:
        self.directory = Path(directory)
        super().__init__(self.directory / "redis.log")
        self.port = port or free_port()
        self.data_dir = self.directory / "data"
        self.settings = {"save": "", "appendonly": "no", **settings}
        self._admin: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        # The log file is its stdout's too: config errors go there before the log is open.
        argv = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--dir", str(self.data_dir), "--logfile", str(self.log_file)]
        for key, value in self.settings.items():
            if value is not None:
                argv += [f"--{key.replace('_', '-')}", *str(value).split(" ")]
        return argv

    def _launch(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        super()._launch()

    def ready(self) -> bool:
        """It answers, and it is this server (another on the port would answer too)."""
        import redis

        try:  # first plain TCP: redis-py retries a refused connection for seconds
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        try:
            pid = int(self.admin().info("server")["process_id"])
        except redis.RedisError:  # still starting, or loading its data
            return False
        return self.process is not None and pid == self.process.pid

    def admin(self) -> Any:
        """A client as the ``default`` user, to set up and break the server."""
        if self._admin is None:
            import redis

            self._admin = redis.Redis(
                port=self.port, socket_timeout=5, decode_responses=True, protocol=2
            )
        return self._admin

    def stop(self) -> None:
        """Kill the server (SIGKILL: a throw-away server needs no last snapshot); idempotent."""
        if self._admin is not None:
            self._admin.close()
            self._admin = None
        super().stop()

    # -- the checks' view ------------------------------------------------------------------

    def add_reader(self, username: str, password: str) -> str:
        """Create the read-only user of ``READ_ONLY_ACL``; returns the line run (password shown
        as PASSWORD)."""
        line = READ_ONLY_ACL.replace("opscheck", username, 1)
        args = line.split()[1:]
        self.admin().execute_command("ACL", *[a.replace("PASSWORD", password) for a in args])
        return line

    def redis_block(self, name: str, url: str | None = None, **fields: object) -> str:
        """A ``[[redis]]`` inventory table for this server (or ``url``); ``None`` fields are
        left out."""
        lines = ["[[redis]]", f"name = {toml_value(name)}", f"url = {toml_value(url or self.url)}"]
        for key, value in fields.items():
            if isinstance(value, list) and value and isinstance(value[0], dict):
                items = (
                    "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in item.items()) + " }"
                    for item in value
                )
                lines.append(f"{key} = [{', '.join(items)}]")
            elif value is not None:
                lines.append(f"{key} = {toml_value(value)}")
        return "\n".join(lines) + "\n"

    def info(self, section: str = "default") -> dict[str, Any]:
        return dict(self.admin().info(section))

    def wait_for(self, what: str, ready: Any, timeout: float = 10.0) -> dict[str, Any]:
        """Poll INFO until ``ready(info)`` holds; RedisError naming ``what`` if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.info("everything")
            if ready(info):
                return info
            if time.monotonic() > deadline:
                raise RedisError(f"redis on port {self.port}: {what} did not happen")
            time.sleep(0.02)

    # -- broken states -----------------------------------------------------------------------

    def fill(self, fraction: float, value_size: int = 4096) -> int:
        """Write keys until used memory reaches ``fraction`` of maxmemory; returns the count."""
        maxmemory = int(self.info("memory")["maxmemory"])
        if not maxmemory:
            raise RedisError("fill() needs a server started with maxmemory")
        count = 0
        while int(self.info("memory")["used_memory"]) < fraction * maxmemory:
            count = self._write(count, 16, value_size)
        return count

    def evict(self, value_size: int = 4096) -> int:
        """Write twice maxmemory's worth of keys (needs an eviction policy); returns evictions."""
        maxmemory = int(self.info("memory")["maxmemory"])
        count = 0
        while count * value_size < 2 * maxmemory:
            count = self._write(count, 16, value_size)
        return int(self.wait_for("evictions", lambda i: i["evicted_keys"] > 0)["evicted_keys"])

    def _write(self, start: int, count: int, value_size: int) -> int:
        with self.admin().pipeline(transaction=False) as pipe:
            for number in range(start, start + count):
                pipe.set(f"fill:{number}", "x" * value_size)
            pipe.execute()
        return start + count

    def hold_clients(self) -> list[socket.socket]:
        """Open connections until Redis rejects two at ``maxclients``, then free one slot.

        Returns the sockets still open (the caller closes them): the server is full but for the
        one connection the checks need, and ``rejected_connections`` is 2.
        """
        maxclients = int(self.info("clients")["maxclients"])
        held = [socket.create_connection(("127.0.0.1", self.port), timeout=5)]
        for _ in range(maxclients + 1):  # the admin connection holds one slot already
            held.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
        self.wait_for("2 rejected connections", lambda i: i["rejected_connections"] >= 2)
        for sock in held:  # the rejected ones were told "-ERR max number of clients reached"
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                if sock.recv(100).startswith(b"-ERR max number of clients"):
                    sock.close()
        open_ = [s for s in held if s.fileno() != -1]
        open_.pop().close()
        self.wait_for("a free client slot", lambda i: i["connected_clients"] < maxclients)
        return open_

    def fail_snapshot(self) -> None:
        """Remove the data directory and ask for a snapshot: it fails even as root."""
        shutil.rmtree(self.data_dir)
        self.admin().bgsave()
        self.wait_for(
            "a failed background save",
            lambda i: not i["rdb_bgsave_in_progress"] and i["rdb_last_bgsave_status"] == "err",
        )

    def snapshot(self) -> None:
        """Take a snapshot now and wait until it is written."""
        before = int(self.info("persistence")["rdb_saves"])
        self.admin().bgsave()
        self.wait_for(
            "a background save",
            lambda i: not i["rdb_bgsave_in_progress"] and int(i["rdb_saves"]) > before,
        )

    def fragment(self, keys: int = 150_000, value_size: int = 1000) -> None:
        """Real fragmentation: fill ~160 MB, then delete 3 keys in 4, scattered over every page.

        jemalloc cannot hand back a page with one live value on it, so RSS stays while the data
        shrinks to a quarter. Needs ``enable-debug-command`` (DEBUG POPULATE).
        """
        admin = self.admin()
        admin.execute_command("DEBUG", "POPULATE", keys, "frag", value_size)
        script = "for i=0,ARGV[1]-1 do if i%4~=0 then redis.call('unlink','frag:'..i) end end"
        admin.eval(script, 0, keys)

    def fail_aof_rewrite(self) -> None:
        """Remove the data directory and ask for an AOF rewrite (needs ``appendonly yes``)."""
        import redis

        shutil.rmtree(self.data_dir)
        with contextlib.suppress(redis.ResponseError):  # "Can't execute an AOF background ..."
            self.admin().bgrewriteaof()
        self.wait_for("a failed AOF rewrite", lambda i: i["aof_last_bgrewrite_status"] == "err")
