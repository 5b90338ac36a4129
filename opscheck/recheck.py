"""Flaky checks, reported not hidden: ``--recheck`` (or ``[settings.recheck] enabled``).

A check that fails on a CRIT record is measured once more, ``delay`` seconds later, by calling its
test function anew on fresh connections (an HTTP target's first response, a backup listing, a
client's state are not reused; a ``[[host]]``'s one ssh master is, its commands run again). If it
then passes, the test passes with the user property ``("flaky", "<first> > crit X, then <second>
N s later")``: outcome FLAKY in every report, never plain OK. If it fails again, its failure says
both values. Either way its records are the second measurement's, each carrying the first in
``recheck``. Failures without a CRIT record (a probe that could not measure, a target that is
down, a WARN failing by ``--fail-on-warn``) are not measured again.

Checks measured ahead (opscheck.measure) are judged as soon as their measurement ends, in a thread
of this module; one past its crit level is measured again ``delay`` seconds later in its own
thread, while the run goes on. So fifty CRITs cost about one ``delay`` of wall time, not fifty;
a test that reaches its turn first (or is not measured ahead: ``-n``, ``--concurrency 1``)
waits ``delay`` there.

``callouts(config, document)`` calls out the checks FLAKY on ``flaky_runs`` of the last
``of_last`` runs of the schedule (the history store, opscheck/history.py).
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import inspect
import itertools
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from opscheck import history, measure
from opscheck.judge import RECORD, Limits, ProbeError, Record, records_of
from opscheck.probes import NotApplicable
from opscheck.session import CONNECTIONS, LOST, Lost, Run, TargetDown, Unreachable

FLAKY = "flaky"  # the user property of a CRIT that passed when measured again
# The properties Limits records per judged value (judge.Limits._record): the first attempt's go.
_RECORDED = frozenset((RECORD, "check", "measured", "threshold", "verdict", "message", "detail"))
# Connections that keep no measurement: reused (a [[host]] has one ssh master per run, whose
# control socket a second one could not take).
_REUSED = ("host",)
KEY = pytest.StashKey["Rechecks"]()


def enabled(config: pytest.Config) -> bool:
    """``--recheck`` when given, else ``[settings.recheck] enabled``."""
    from opscheck.plugin import CONFIG_KEY

    option = config.getoption("recheck", None)
    if option is not None:
        return bool(option)
    loaded = config.stash.get(CONFIG_KEY, None)
    return bool(loaded and loaded.inventory.settings.recheck.enabled)


def _delay(config: pytest.Config) -> float:
    from opscheck.plugin import CONFIG_KEY

    return float(config.stash[CONFIG_KEY].inventory.settings.recheck.delay)


def _target_key(item: pytest.Item) -> tuple[str, str] | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for name, value in params.items():
        if name.endswith("_target") and value is not None:
            return name.removesuffix("_target"), str(value.name)
    return None


def _is_down(item: pytest.Item, run: Run, exc: BaseException) -> bool:
    """The failure is a down or lost target's: nothing to measure again."""
    key = _target_key(item)
    if isinstance(exc, (TargetDown, Lost, Unreachable)):
        return True
    if key is None:
        return False
    if run.down(key) is not None:
        return True
    classify = LOST.get(key[0])
    return classify is not None and classify(exc) is not None


def _crit(records: list[Record]) -> bool:
    """A CRIT that fails the test: not one a waiver accepts (opscheck/waivers.py)."""
    return any(r.verdict == "CRIT" and not r.waived for r in records)


# -- measuring again -------------------------------------------------------------------------


@contextlib.contextmanager
def _fresh(item: pytest.Function, run: Run, given: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The test function's arguments from ``given``, its target's connection opened anew (and
    closed after): what the check reads is read again, with the target's timeouts."""
    params: dict[str, Any] = getattr(getattr(item, "callspec", None), "params", {})
    kwargs = dict(given)
    opened: list[Any] = []
    try:
        for name in kwargs:
            if name not in CONNECTIONS:
                continue
            component, opener, _ = CONNECTIONS[name]
            target = params.get(f"{component}_target")
            if target is None or component in _REUSED:
                continue
            try:
                kwargs[name] = opener(target, run)
            except Unreachable as exc:
                raise ProbeError(f"unreachable: {exc}") from None
            opened.append(kwargs[name])
        yield kwargs
    finally:
        for connection in opened:
            close = getattr(connection, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()


class _Again:
    """A second measurement taken ahead, by the recheck workers: replayed when its test fails."""

    def __init__(self, job: measure._Job) -> None:
        self.job = measure._Job(job.item, job.key, dict(job.kwargs))
        self.seconds = 0.0

    def run(self, run: Run, bound: threading.Semaphore) -> None:
        with bound:
            start = time.perf_counter()
            try:
                with _fresh(self.job.item, run, self.job.kwargs) as kwargs:
                    self.job.kwargs = kwargs
                    self.job.run(run)  # errors kept for the replay, as a check measured ahead
            except BaseException as exc:  # opening anew failed: said where the test fails
                self.job.error = exc
            finally:
                self.seconds = time.perf_counter() - start
                self.job.done.set()


class _Scratch:
    """The item as ``Limits`` (and the waivers it asks) see it, with properties of its own: a
    measurement judged ahead leaves nothing on the test."""

    def __init__(self, item: pytest.Item) -> None:
        self._item = item
        self.user_properties: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._item, name)


class Rechecks:
    """The run's second measurements of checks measured ahead: each due ``delay`` seconds after
    its first ended past its crit level, taken by at most ``--concurrency`` daemon threads (and
    ``--concurrency-per-target`` per target), however many are due at once."""

    def __init__(self, config: pytest.Config, run: Run, ahead: measure.Ahead) -> None:
        from opscheck.plugin import CONFIG_KEY

        self.config, self.run, self.delay = config, run, _delay(config)
        self.loaded = config.stash[CONFIG_KEY]
        self.again: dict[str, _Again] = {}
        self.claimed: set[str] = set()  # tests that reached their turn first: measured there
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.pending = list(ahead.jobs.values())
        self.due: list[tuple[float, int, _Again]] = []  # a heap: when, order, what
        self.order = itertools.count()
        self.ready: queue.SimpleQueue[_Again | None] = queue.SimpleQueue()
        self.workers, self.per_target = max(1, ahead.workers), max(1, ahead.per_target)
        self.started = 0  # worker threads, started as second measurements fall due
        self.bounds: dict[tuple[str, str], threading.Semaphore] = {}
        threading.Thread(target=self._watch, name="opscheck-recheck", daemon=True).start()

    def _watch(self) -> None:
        while (self.pending or self.due) and not self.stopped.is_set():
            waiting = []
            for job in self.pending:
                if not job.done.is_set():
                    waiting.append(job)
                elif self._past_crit(job):
                    self._schedule(job)
            self.pending = waiting
            now = time.monotonic()
            while self.due and self.due[0][0] <= now:
                self._hand_out(heapq.heappop(self.due)[2])
            self.stopped.wait(0.02)

    def _past_crit(self, job: measure._Job) -> bool:
        if job.error is not None and _is_down(job.item, self.run, job.error):
            return False
        scratch = _Scratch(job.item)
        limits = Limits(self.loaded, scratch, job.key[1], False)  # type: ignore[arg-type]
        with contextlib.suppress(BaseException):
            job.judge(limits)  # its error is raised once, in the test
        return _crit(records_of(scratch.user_properties))

    def _schedule(self, job: measure._Job) -> None:
        with self.lock:
            if job.item.nodeid in self.claimed:
                return
            again = self.again[job.item.nodeid] = _Again(job)
        heapq.heappush(self.due, (time.monotonic() + self.delay, next(self.order), again))

    def _hand_out(self, again: _Again) -> None:
        self.ready.put(again)
        if self.started < self.workers:
            self.started += 1
            threading.Thread(
                target=self._work, name="opscheck-recheck-measure", daemon=True
            ).start()

    def _work(self) -> None:
        while (again := self.ready.get()) is not None:
            key = again.job.key
            with self.lock:
                one = key[0] in measure.Ahead.ONE_AT_A_TIME
                bound = self.bounds.setdefault(
                    key, threading.Semaphore(1 if one else self.per_target)
                )
            again.run(self.run, bound)

    def take(self, item: pytest.Item) -> _Again | None:
        """The second measurement taken ahead for ``item``, if any; else none will be."""
        with self.lock:
            self.claimed.add(item.nodeid)
            return self.again.pop(item.nodeid, None)

    def stop(self) -> None:
        self.stopped.set()
        for _ in range(self.started):
            self.ready.put(None)


def pytest_runtestloop(session: pytest.Session) -> None:
    """After opscheck.plugin started measuring ahead (its hook is tryfirst): watch those
    measurements, to measure the CRIT ones again while the run goes on."""
    config = session.config
    ahead = config.stash.get(measure.KEY, None)
    if ahead is None or not enabled(config):
        return
    from opscheck.plugin import RUN_KEY

    config.stash[KEY] = Rechecks(config, config.stash[RUN_KEY], ahead)


def pytest_unconfigure(config: pytest.Config) -> None:
    rechecks = config.stash.get(KEY, None)
    if rechecks is not None:
        rechecks.stop()


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> Generator[None, object, object]:
    """A check that failed on a CRIT is measured again once, ``delay`` seconds later."""
    item = pyfuncitem
    props: list[tuple[str, Any]] = item.user_properties
    start = len(props)
    try:
        return (yield)
    except (pytest.fail.Exception, Exception) as exc:
        if isinstance(exc, NotApplicable) or not enabled(item.config):
            raise
        from opscheck.plugin import RUN_KEY

        first = records_of(props[start:])
        if not _crit(first) or _is_down(item, item.config.stash[RUN_KEY], exc):
            raise
        _measure_again(item, props, start, first)
        return True


def _measure_again(
    item: pytest.Function, props: list[tuple[str, Any]], start: int, first: list[Record]
) -> None:
    """Measure ``item`` again (or replay what was measured again ahead); raise its failure,
    annotated with the first values, or mark it FLAKY."""
    from opscheck.plugin import RUN_KEY

    config = item.config
    delay = _delay(config)
    run = config.stash[RUN_KEY]
    limits: Limits = item.funcargs["limits"]  # type: ignore[assignment]
    removed = [p for p in props[start:] if p[0] in _RECORDED]
    props[start:] = [p for p in props[start:] if p[0] not in _RECORDED]
    again_at = len(props)
    rechecks = config.stash.get(KEY, None)
    ahead = rechecks.take(item) if rechecks is not None else None
    seconds = 0.0
    error: BaseException | None = None
    try:
        if ahead is not None:
            ahead.job.done.wait()
            seconds = ahead.seconds
            ahead.job.replay(limits)
        else:
            time.sleep(delay)
            began = time.perf_counter()
            try:
                names = [n for n in inspect.signature(item.obj).parameters if n != "limits"]
                given = {n: item.funcargs[n] for n in names}
                with _fresh(item, run, given) as kwargs:
                    item.obj(**kwargs, limits=limits)
            finally:
                seconds = time.perf_counter() - began
    except (pytest.fail.Exception, Exception) as exc:
        error = exc
    second = records_of(props[again_at:])
    _annotate(props, again_at, first, delay)
    _add_seconds(props, start, delay + seconds)
    if not second:
        props[again_at:again_at] = removed  # nothing measured the second time: keep the first
    firsts = "; ".join(r.measured for r in first if r.verdict == "CRIT")
    if error is None:
        text = _flaky_text(first, second, delay)
        props.append((FLAKY, text))
        return
    if isinstance(error, pytest.fail.Exception):
        worst = max((r.verdict for r in second), key=("OK", "WARN", "CRIT").index, default="")
        now = "still CRIT" if _crit(second) else f"now {worst}" if worst else "no value"
        lines = str(error.msg).split("\n")
        lines[0] += f" (measured again after {delay:g} s: {now}; first {firsts})"
        raise pytest.fail.Exception("\n".join(lines), pytrace=False) from None
    if isinstance(error, ProbeError) and not isinstance(error, NotApplicable):
        raise ProbeError(f"measured again after {delay:g} s: {error} (first {firsts})") from None
    raise error


def _annotate(props: list[tuple[str, Any]], at: int, first: list[Record], delay: float) -> None:
    """Each record of the second measurement carries the first of the same check and subject."""
    firsts = {(r.check, r.subject): r for r in first}
    for index in range(at, len(props)):
        key, value = props[index]
        if key != RECORD:
            continue
        record = Record.from_json(value)
        before = firsts.get((record.check, record.subject))
        if before is None:
            continue
        recheck = {
            "value": before.value,
            "measured": before.measured,
            "verdict": before.verdict,
            "message": before.message,
            "delay": delay,
        }
        props[index] = (RECORD, dataclasses.replace(record, recheck=recheck).to_json())


def _add_seconds(props: list[tuple[str, Any]], start: int, seconds: float) -> None:
    """A check measured ahead reports its measurement's time: both measurements and the wait."""
    for index in range(start, len(props)):
        key, value = props[index]
        if key == measure.MEASURED_SECONDS:
            props[index] = (key, round(float(value) + seconds, 3))


def _flaky_text(first: list[Record], second: list[Record], delay: float) -> str:
    """``<first> > crit X, then <second> N s later``, per value that was CRIT."""
    now = {(r.check, r.subject): r for r in second}
    parts = []
    for record in first:
        if record.verdict != "CRIT":
            continue
        problem = record.message.removeprefix(f"{record.target}: ") or record.measured
        later = now.get((record.check, record.subject))
        then = later.measured if later is not None else "no value"
        parts.append(f"{problem}, then {then} {delay:g} s later")
    return "; ".join(parts)


# -- history ---------------------------------------------------------------------------------


def callouts(config: pytest.Config, document: dict[str, Any]) -> list[dict[str, Any]]:
    """The checks FLAKY on at least ``flaky_runs`` of the last ``of_last`` runs of this run's
    schedule, this run included: ``{"check_id", "target", "flaky", "of", "text"}`` each, and
    ``entry["flaky_history"] = text`` on their test entries.

    Reads the history store (read only). Correct whether this run was appended to it already or
    not: the store's copy of this run (same started, host, run id, shard) is left out and the
    document's records counted instead. Without a store, or with recheck off for this run: [].
    """
    from opscheck.plugin import CONFIG_KEY

    loaded = config.stash.get(CONFIG_KEY, None)
    if loaded is None or not enabled(config):
        return []
    settings = loaded.inventory.settings
    path = history.store_path(config, settings.history)
    if path is None:
        return []
    shard = document.get("shard")
    current = (
        str(document.get("started", "")),
        str(document.get("host") or socket.gethostname()),  # as Reporter._record_history sets
        str(document.get("run_id", "")),
        f"{shard['index']}/{shard['count']}" if shard else "",
    )
    schedule = str(document.get("schedule", ""))
    try:
        runs, earlier = history.flaky_runs(path, schedule, settings.recheck.of_last - 1, current)
    except (sqlite3.Error, OSError):
        return []  # history is an extra: never fails the run
    tests = document.get("tests", [])
    now = history.flaky_keys(r for t in tests for r in t.get("records", []))
    of, out, seen = runs + 1, [], set()
    for entry in tests:
        keys = {(r["check"], r["target"]) for r in entry.get("records", [])}
        if not keys:
            continue
        flaky_in = set().union(*(earlier.get(k, set()) for k in keys))
        flaky = len(flaky_in) + bool(keys & now)
        if flaky < settings.recheck.flaky_runs:
            continue
        text = f"FLAKY on {flaky} of the last {of} runs"
        entry["flaky_history"] = text
        label = (entry.get("check_id", ""), entry.get("target", ""))
        if label not in seen:
            seen.add(label)
            out.append(
                {"check_id": label[0], "target": label[1], "flaky": flaky, "of": of, "text": text}
            )
    return out
