"""One life cycle for every testbed server: start, wait until it answers, stop; freeze for faults.

``Service`` is the shape: ``start()`` launches, polls ``ready()`` until a deadline and, when the
server dies or never answers, stops what it started and raises the subclass's error saying why;
``stop()`` is safe twice; ``with`` does both. ``ServerProcess`` is a ``Service`` that runs one
command in the foreground as a child of this process (no daemon to lose, no pid file to trust),
its output in ``log_file``, which a start failure quotes.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Self

LOG_TAIL = 25  # lines of the server's log a start failure quotes


class Service:
    """A server on 127.0.0.1:``port``; subclasses provide ``_launch``, ``ready`` and ``_halt``."""

    kind: ClassVar[str] = "server"  # what messages call it: "redis-server on 127.0.0.1:6379"
    error: ClassVar[type[Exception]] = RuntimeError
    start_timeout: ClassVar[float] = 10.0
    port: int
    _started = False

    def _launch(self) -> None:
        """Start the server (and make what it needs first); ``start()`` then waits for it."""
        raise NotImplementedError

    def ready(self) -> bool:
        """Whether the server answers as its clients need; polled by ``start()``."""
        return True

    def _died(self) -> str | None:
        """Why the server can no longer become ready (it exited), or None while it may."""
        return None

    def _halt(self) -> None:
        """Stop what ``_launch`` started, even half of it."""

    def _diagnosis(self) -> str:
        """What a start failure adds after its reason: the command, the log."""
        return ""

    def __str__(self) -> str:
        return f"{self.kind} on 127.0.0.1:{self.port}"

    def start(self, timeout: float | None = None) -> Self:
        """Launch the server and wait until ``ready()``; on failure stop it and raise ``error``."""
        if self._started:
            raise self.error(f"{self} is running already")
        self._started = True
        try:
            why = self._come_up(self.start_timeout if timeout is None else timeout)
        except OSError as exc:  # a missing binary, a port taken: say which server
            self.stop()
            raise self.error(f"{self} did not start: {exc}{self._diagnosis()}") from exc
        except BaseException:  # Ctrl-C included: leave nothing running
            self.stop()
            raise
        if why is not None:
            self.stop()
            raise self.error(f"{self} did not start: {why}{self._diagnosis()}")
        return self

    def _come_up(self, timeout: float) -> str | None:
        """Launch, then poll until ready (None) or why it never will be."""
        self._launch()
        deadline = time.monotonic() + timeout
        while True:
            why = self._died()
            if why is not None:
                return why
            if self.ready():
                return None
            if time.monotonic() > deadline:
                return f"not ready after {timeout:g} s"
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server; safe to call twice, and after a failed start."""
        if self._started:
            self._started = False
            self._halt()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServerProcess(Service):
    """``command()`` in the foreground, stdout and stderr appended to ``log_file``.

    ``stop()`` sends ``stop_signal``, waits up to ``stop_timeout`` seconds, then kills.
    """

    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    stop_timeout: ClassVar[float] = 5.0

    def __init__(self, log_file: Path, env: Mapping[str, str] | None = None) -> None:
        self.log_file = log_file
        self.env = dict(env or {})  # added to this process's environment
        self.process: subprocess.Popen[bytes] | None = None
        self.argv: list[str] = []  # the command last started
        self._log_start = 0  # where its output begins in log_file (kept over restarts)
        self._paused = False

    def command(self) -> list[str]:
        """The argv to run; read at every start, so settings changed since count."""
        raise NotImplementedError

    def _launch(self) -> None:
        self.argv = self.command()
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self._log_start = log.tell()
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env} if self.env else None,
            )

    def _died(self) -> str | None:
        code = None if self.process is None else self.process.poll()
        if code is None:
            return None
        return f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited {code}"

    def _halt(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            if self._paused:  # a stopped process would not act on the signal until continued
                self._signal_tree(process.pid, signal.SIGCONT)
            process.send_signal(self.stop_signal)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._paused = False

    def output(self) -> str:
        """What the server wrote to ``log_file`` since it last started."""
        with contextlib.suppress(FileNotFoundError), self.log_file.open("rb") as log:
            log.seek(self._log_start)
            return log.read().decode(errors="replace")
        return ""

    def _diagnosis(self) -> str:
        text = f"\ncommand: {shlex.join(self.argv)}" if self.argv else ""
        lines = self.output().splitlines()[-LOG_TAIL:]
        return text + f"\nits log {self.log_file} ends:\n" + "\n".join(lines)

    # -- faults ------------------------------------------------------------------------------------

    def pause(self) -> None:
        """Freeze the server and its children (SIGSTOP): connections open, nothing answered,
        like a host deep in swap, until ``resume()``."""
        assert self.process is not None, "start() the server first"
        stopped = self._signal_tree(self.process.pid, signal.SIGSTOP)
        # SIGSTOP takes effect as each thread next runs: on a busy machine a multi-threaded
        # server (the Go ones) answered requests sent right after the signal. Until all stopped:
        deadline = time.monotonic() + self.stop_timeout
        while running := [task for pid in stopped for task in _running_threads(pid)]:
            if time.monotonic() > deadline:
                raise self.error(f"{self}: threads {running} still running after SIGSTOP")
            time.sleep(0.005)
        self._paused = True

    def resume(self) -> None:
        """Let a paused server and its children run on (SIGCONT)."""
        assert self.process is not None, "start() the server first"
        self._signal_tree(self.process.pid, signal.SIGCONT)
        self._paused = False

    @staticmethod
    def _signal_tree(pid: int, signum: signal.Signals) -> list[int]:
        """Signal ``pid``, then its descendants: PostgreSQL's backends and sshd's sessions are
        its children, each in a session of its own, so a process group would not reach them.
        The processes signalled."""
        todo, done = [pid], []
        while todo:
            current = todo.pop()
            with contextlib.suppress(ProcessLookupError):
                os.kill(current, signum)
                done.append(current)
            todo += _children(current)  # after the signal: a stopped parent forks no more
        return done


def _running_threads(pid: int) -> list[int]:
    """The threads of ``pid`` not stopped (state T), exited (Z, X) or gone."""
    found = []
    for stat in Path(f"/proc/{pid}/task").glob("*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if stat.read_text().rsplit(")", 1)[1].split()[0] not in ("T", "t", "Z", "X"):
                found.append(int(stat.parent.name))
    return found


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces and parentheses
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found
