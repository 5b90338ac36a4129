"""Measure every check at once, judge in order.

Once collection ends, every check of the run is known, and so is what it needs: its target, the
target's connection (the ``target_fixture`` of its component), a ``for_each`` entry. Each check's
test function then runs ahead in a worker thread with a ``limits`` that only *remembers* what it
is asked to judge; the workers run concurrently, bounded in total and per target, each target's
one connection shared by its checks. When pytest reaches the test, in the usual order, it waits
for that run and replays it on the real ``limits``: the same judgements, records, failures and
skips, in the same order, as if the function had run there. So a run takes about as long as its
slowest check, not the sum of all, and tests still read like their runbook lines.

A test that needs anything else (a fixture this module does not know) runs as pytest runs it.
Threads are daemons: a probe stuck past every timeout cannot keep the process from ending.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from opscheck.judge import Limits, Measurement, Verdict
from opscheck.session import CONNECTIONS, Run, lazy_connection

KEY = pytest.StashKey["Ahead"]()
MEASURED_SECONDS = "measured_seconds"  # user property: how long the check took, ahead

# What the checks of each component import on first use, imported before the threads start: two
# threads importing one package at once can each be handed it half initialised (requests then
# fails with "You can only merge into CookieJar").
IMPORTS = {
    "host": ("testinfra", "testinfra.modules.file", "testinfra.modules.socket",
             "testinfra.modules.service", "testinfra.modules.process"),
    "http": ("requests", "urllib3", "cryptography.x509"),
    "postgres": ("psycopg", "psycopg.sql", "psycopg.conninfo"),
    "redis": ("redis", "redis.retry", "redis.backoff"),
    "sqlite": ("sqlite3", "testinfra"),
    "logs": ("testinfra", "opscheck.probes.logboot"),  # the scanner parsed: see there
    "backup": ("testinfra",),
    "alertmanager": ("requests", "urllib3"),
    "prometheus": ("requests", "urllib3"),
    "metrics": ("requests", "urllib3", "prometheus_client.parser",
                "prometheus_client.openmetrics.parser"),
    "docker": ("docker", "docker.tls", "requests", "urllib3"),
    "kubernetes": ("kubernetes.client", "kubernetes.config", "urllib3"),
    "websocket": ("websockets.sync.client", "requests.utils", "cryptography.x509"),
    "growth": ("sqlite3", "statistics"),  # read in the test, not ahead (fixtures/growth.py)
}  # fmt: skip


class _Recorder:
    """``limits`` as a check sees it while measuring ahead: it keeps the calls, judges nothing."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def check(
        self, key: str, measured: Measurement | list[Measurement], limit: Any = None
    ) -> Verdict:
        if not isinstance(measured, Measurement):
            measured = list(measured)  # a generator must be read here, in the measuring thread
        self.calls.append(("check", (key, measured, limit)))
        return Verdict.OK  # no check uses the verdict it returns

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        self.calls.append(("enter", ()))
        yield
        self.calls.append(("exit", ()))


@dataclass
class _Job:
    item: pytest.Function
    key: tuple[str, str]  # the target: its connection is shared, its concurrency bounded
    kwargs: dict[str, Any]
    recorder: _Recorder = field(default_factory=_Recorder)
    error: BaseException | None = None
    seconds: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)

    def run(self, run: Run) -> None:
        start = time.perf_counter()
        try:
            self.item.obj(**self.kwargs, limits=self.recorder)
        except BaseException as exc:  # kept for the replay, raised where pytest expects it
            # A target that stopped answering is down from now on: its checks still waiting
            # here fail at once instead of each waiting for its own timeout.
            self.error = run.noticed(self.key, self.item.name, exc)
        finally:
            self.seconds = time.perf_counter() - start
            self.done.set()

    def judge(self, limits: Limits, error: BaseException | None = None) -> None:
        """Judge what was measured on ``limits``, in the order the check judged it; then raise
        ``error`` (what the check raised) where the check raised it: inside an open batch, whose
        breaches it then replaces, as they did in the check."""
        with contextlib.ExitStack() as batches:
            for call, args in self.recorder.calls:
                if call == "check":
                    limits.check(*args)
                elif call == "enter":
                    batches.enter_context(limits.batch())
                else:  # the batch ends: it fails now if anything in it was past its level
                    batches.close()
            if error is not None:
                raise error

    def replay(self, limits: Limits) -> None:
        """Judge what was measured on the real ``limits``, then raise what the check raised."""
        self.judge(limits, self.error)


class Ahead:
    """The run's measuring threads: ``workers`` in total, ``per_target`` at once per target."""

    # Checks of one PostgreSQL or SQLite target share a connection that runs one statement at
    # a time, and some probes run several in a row (a transaction): one check at a time there.
    ONE_AT_A_TIME = ("postgres", "sqlite")

    def __init__(self, run: Run, workers: int, per_target: int) -> None:
        self.run = run
        self.workers = workers
        self.per_target = per_target
        self.jobs: dict[str, _Job] = {}
        self._pending: dict[tuple[str, str], deque[_Job]] = {}
        self._busy: dict[tuple[str, str], int] = {}
        self._opened: set[tuple[str, str]] = set()  # targets whose first check has run
        self._lock = threading.Condition()
        self._stopped = False

    def plan(self, items: list[pytest.Item]) -> None:
        for item in items:
            job = self._job(item)
            if job is not None:
                self.jobs[item.nodeid] = job
                self._pending.setdefault(job.key, deque()).append(job)
        for component in {job.key[0] for job in self.jobs.values()}:
            for module in IMPORTS.get(component, ()):
                importlib.import_module(module)
        if any(getattr(t, "s3", None) for t in self.run.config.targets("backup")):
            importlib.import_module("boto3")
        for _ in range(min(self.workers, len(self.jobs))):
            threading.Thread(target=self._work, name="opscheck-measure", daemon=True).start()

    def _job(self, item: pytest.Item) -> _Job | None:
        """What ``item`` needs to run ahead, or None when it must run as pytest runs it."""
        if not isinstance(item, pytest.Function) or item.get_closest_marker("skip"):
            return None
        if item.get_closest_marker("skipif") or item.get_closest_marker("usefixtures"):
            return None
        callspec = getattr(item, "callspec", None)
        params: dict[str, Any] = callspec.params if callspec is not None else {}
        found = [(k.removesuffix("_target"), v) for k, v in params.items() if k.endswith("_target")]
        if not found or found[0][1] is None:
            return None  # no target, or the one skipped placeholder of a check with none
        component, target = found[0]
        arguments = list(inspect.signature(item.obj).parameters)
        if "limits" not in arguments:
            return None
        kwargs: dict[str, Any] = {}
        for name in arguments:
            if name == "limits":
                continue
            if name in params:
                kwargs[name] = params[name]
            elif name == "opscheck_run":
                kwargs[name] = self.run
            elif name in CONNECTIONS:
                kwargs[name] = lazy_connection(self.run, name, params)
            else:
                return None  # a fixture of its own: pytest sets it up, in the test
        return _Job(item, (component, str(target.name)), kwargs)

    def _work(self) -> None:
        while True:
            with self._lock:
                job = self._next()
                while job is None and not self._stopped:
                    if not any(self._pending.values()):
                        return
                    self._lock.wait()
                    job = self._next()
                if job is None:
                    return
                self._busy[job.key] = self._busy.get(job.key, 0) + 1
            try:
                job.run(self.run)
            finally:
                with self._lock:
                    self._busy[job.key] -= 1
                    self._opened.add(job.key)
                    self._lock.notify_all()

    def _next(self) -> _Job | None:
        """The first waiting check, in test order, whose target has a free slot. A target's
        first check (its connectivity check, first in every suite) runs alone: it opens the
        connection, and a dead target fails it with the real error while the others, released
        after it, fail at once."""
        for key, queue in self._pending.items():
            if not queue:
                continue
            limit = 1 if key[0] in self.ONE_AT_A_TIME or key not in self._opened else None
            if self._busy.get(key, 0) < (limit or self.per_target):
                return queue.popleft()
        return None

    def take(self, item: pytest.Item) -> _Job | None:
        return self.jobs.pop(item.nodeid, None)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for queue in self._pending.values():
                queue.clear()
            self._lock.notify_all()


def start(config: pytest.Config, run: Run, items: list[pytest.Item]) -> None:
    """Measure ``items`` ahead, unless the run asks for one check at a time."""
    workers = int(config.getoption("measure_workers"))
    if workers < 2 or hasattr(config, "workerinput"):
        return  # under xdist the controller hands items out one by one: measured in the test
    # Checks start commands (ssh, pg_restore) from these threads while pytest's main thread
    # rewrites $PYTEST_CURRENT_TEST at every test phase: a child that inherits the live
    # environment can read it mid-change ("Bad address: '/bin/sh'", ~1 start in 1,000), so every
    # command a probe starts is given its own copy (fixtures/host.py, probes/restore.py).
    ahead = Ahead(run, workers, int(config.getoption("measure_per_target")))
    config.stash[KEY] = ahead
    ahead.plan(items)


def stop(config: pytest.Config) -> None:
    ahead = config.stash.get(KEY, None)
    if ahead is not None:
        ahead.stop()


def call(item: pytest.Function) -> bool:
    """Replay ``item``'s measurement if it ran ahead (True), else let pytest call it (False)."""
    ahead = item.config.stash.get(KEY, None)
    job = ahead.take(item) if ahead is not None else None
    if job is None:
        return False
    job.done.wait()
    item.user_properties.append((MEASURED_SECONDS, round(job.seconds, 3)))
    job.replay(item.funcargs["limits"])  # type: ignore[arg-type]
    return True
