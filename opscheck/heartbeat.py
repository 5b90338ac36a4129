"""``[settings.heartbeat]``: pings to a dead-man's switch (healthchecks.io, or any service with its
URL scheme), so that a run that never happens, hangs or dies is noticed by the switch.

``<url>/start`` as soon as the run's configuration is loaded (sent in the background: the run
does not wait for it), then when the run ends ``<url>`` (exit status 0) or ``<url>/fail``
(anything else: a CRIT, an error, nothing checked, an interrupted run, a usage error found after
the start) - with ``exit_code = true``: ``<url>/<exit status>``. Each ping is a POST whose body
is the run's headline and its problems, one a line. Every ping of a run carries the same
``rid`` (healthchecks.io's run id), so the switch pairs each start with its end.

The URL is a secret (healthchecks.io's is its check's UUID): read from the variable ``url_env``
names, redacted everywhere. A ping that fails never fails the run: one line says so
(``heartbeat ping /start failed: connection refused (2 attempts)``). ``--no-notify`` sends none.

A sharded run is one run: each shard pings ``/start`` with the run's one ``rid`` (from its run
id); the end is pinged once for the merged run, by the shard that merges it or by
``opscheck-merge`` (opscheck.merge). A shard that ends otherwise than 0, 1 or 5 pings ``/fail``.
"""

from __future__ import annotations

import importlib.metadata
import sys
import threading
import time
import uuid
from collections.abc import Generator
from typing import Any
from urllib.parse import urlsplit

import pytest

from opscheck import redaction
from opscheck import shard as sharding
from opscheck.config.notify import HeartbeatSettings
from opscheck.plugin import CONFIG_KEY

RETRY_PAUSE = 1.0  # seconds before the one retry of a ping that failed on the way
BODY_LIMIT = 10_000  # characters: healthchecks.io keeps the first 100 kB of a body
PROBLEM_LINES = 50
# Options that make pytest show something and run no checks: no heartbeat for them.
NOT_A_RUN = ("help", "version", "collectonly", "showfixtures", "show_fixtures_per_test", "markers")


class Heartbeat:
    """One run's pings: ``start()`` at its start, ``finish(exit status, body)`` at its end."""

    def __init__(self, url: str, settings: HeartbeatSettings, run: str = "") -> None:
        self.url = url.rstrip("/")
        self.settings = settings
        self.run_id = rid(run) if run else str(uuid.uuid4())
        self.finished = False
        self.problems: list[str] = []  # the lines saying which ping failed, and why
        self._starting: threading.Thread | None = None
        try:
            version = importlib.metadata.version("opscheck")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        self.user_agent = f"opscheck/{version}"

    def start(self) -> None:
        """Ping ``/start`` in the background."""
        self._starting = threading.Thread(
            target=self._ping, args=("/start", ""), name="opscheck-heartbeat", daemon=True
        )
        self._starting.start()

    def finish(self, exitstatus: int, body: str) -> None:
        """Ping the end of the run: success, ``/fail`` or ``/<exitstatus>``; after ``/start``."""
        if self.finished:
            return
        self.finished = True
        if self._starting is not None:
            # A /start still on its way has its two attempts' time: then the end goes anyway.
            self._starting.join(2 * self.settings.timeout + RETRY_PAUSE)
        self._ping(self.suffix(exitstatus), body)

    def suffix(self, exitstatus: int) -> str:
        if self.settings.exit_code:
            return f"/{exitstatus}"
        return "" if exitstatus == 0 else "/fail"

    def _ping(self, suffix: str, body: str) -> None:
        """POST ``<url><suffix>``: once more after a second when it failed on the way (no
        answer, a 5xx or 429); a failure is kept as one line in ``problems``."""
        error = ""
        for attempt in (1, 2):
            error, again = self._post(suffix, body)
            if not error:
                return
            if not again or attempt == 2:
                break
            time.sleep(RETRY_PAUSE)
        tries = f" ({attempt} attempts)" if attempt > 1 else ""
        label = suffix or "(success)"
        self.problems.append(redaction.redact(f"heartbeat ping {label} failed: {error}{tries}"))

    def _post(self, suffix: str, body: str) -> tuple[str, bool]:
        """One POST: ("", False) when answered 2xx, else (why, whether to try again)."""
        from opscheck.notify import NotifyError, post

        headers = {"User-Agent": self.user_agent, "Content-Type": "text/plain; charset=utf-8"}
        url = f"{self.url}{suffix}?rid={self.run_id}"
        try:
            post(url, body.encode(), headers, self.settings.timeout)
        except NotifyError as error:
            return str(error), error.again
        return "", False


def rid(run: str) -> str:
    """The ``rid`` of a sharded run named ``run`` (``<schedule> <run id>``): the same UUID on
    every shard's ``/start`` and on the merge's end ping, so the switch pairs them."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"opscheck-run:{run}"))


HEARTBEAT_KEY = pytest.StashKey[Heartbeat]()


def url_secrets(url: str) -> set[str]:
    """The ping URL and, when it is long enough to be one, its path: a UUID (36), a ping key,
    also where a library names only the path."""
    path = urlsplit(url).path.rstrip("/")
    return {url, path} if len(path) >= 16 else {url}


def pytest_configure(config: pytest.Config) -> None:
    """Read the URL and ping ``/start``: in the controller, after opscheck.plugin loaded the
    configuration (it is tryfirst), before the other plugins' checks of theirs (a usage error
    they raise ends the run after the start: it is a ``/fail``)."""
    if hasattr(config, "workerinput") or config.getoption("no_notify"):
        return
    if any(getattr(config.option, name, False) for name in NOT_A_RUN):
        return
    loaded = config.stash.get(CONFIG_KEY, None)
    settings = loaded.inventory.settings.heartbeat if loaded is not None else None
    if loaded is None or settings is None:
        return
    from opscheck import notify

    found, problems = notify.settings_problems(config)  # notify's mistakes too, all at once
    if problems:
        raise pytest.UsageError("\n".join(problems))
    url = found["heartbeat", "url_env"]
    loaded.secrets.update(url_secrets(url))  # the run's registered set: redacted from now on
    run = ""
    if sharding.of(config) is not None and sharding.run_id(config):
        from opscheck.report import schedule_name

        run = f"{schedule_name(config.option.markexpr or '')} {sharding.run_id(config)}"
    beat = Heartbeat(url, settings, run)
    config.stash[HEARTBEAT_KEY] = beat
    beat.start()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> Generator[None, Any, Any]:
    """The end ping, once every report is written (opscheck.report's wrapper is trylast)."""
    beat = session.config.stash.get(HEARTBEAT_KEY, None)
    try:
        return (yield)
    finally:
        if beat is not None:
            config = session.config
            exitstatus = int(session.exitstatus)
            if sys.exc_info()[0] is not None and exitstatus == 0:
                exitstatus = int(pytest.ExitCode.INTERNAL_ERROR)
            merged = config.stash.get(sharding.MERGED_KEY, None)
            if merged is not None:  # this shard merged its run: the run's end
                code = merged.code(bool(config.getoption("fail_on_warn")))
                beat.finish(code, body_of(merged.document, merged.archive, merged.missing_lines()))
            elif sharding.of(config) is not None and exitstatus in SHARD_ENDS:
                beat.finished = True  # the merge pings the run's end (opscheck.merge)
            else:
                beat.finish(exitstatus, _body(config, exitstatus))
            _say(config, beat)


# A shard that ends with one of these leaves the run's end ping to the merge; any other (an
# interrupted shard, an internal error) pings /fail at once: the run went wrong.
SHARD_ENDS = (0, 1, 5)


def pytest_unconfigure(config: pytest.Config) -> None:
    """A run that ended before its session did (a usage error after ``/start``): ``/fail``."""
    beat = config.stash.get(HEARTBEAT_KEY, None)
    if beat is None or beat.finished:
        return
    session = config.pluginmanager.get_plugin("session")
    exitstatus = int(getattr(session, "exitstatus", 0) or pytest.ExitCode.USAGE_ERROR)
    beat.finish(exitstatus, f"opscheck stopped before its checks ran (exit status {exitstatus})")
    _say(config, beat)


def _body(config: pytest.Config, exitstatus: int) -> str:
    """The headline, then the problems (CRIT first) and the archived report, from the report
    plugin; what pytest counted when it has none."""
    reporter: Any = config.pluginmanager.get_plugin("opscheck-reporter")
    try:
        document = reporter.document
    except Exception:  # no report plugin, or no document to build
        document = None
    if isinstance(document, dict) and "tests" in document:
        try:
            return body_of(document, getattr(reporter, "archive", None))
        except Exception:
            pass
    summary = (document or {}).get("summary") or {}
    if not summary:  # what the terminal counted
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        stats = getattr(terminal, "stats", {})
        summary = {k: len(v) for k, v in stats.items() if k and k != "warnings"}
    counted = [f"{n} {k}" for k, n in summary.items() if isinstance(n, int) and n]
    line = " · ".join(counted) or f"opscheck run ended with exit status {exitstatus}"
    return redaction.clip(line, BODY_LIMIT)


def body_of(document: dict[str, Any], archive: Any, missing: list[str] | None = None) -> str:
    """A ping's body: the run's headline, its problems (CRIT first; ``missing``: the shards a
    partial merge left out), its archived report."""
    from opscheck.report import headline_of, problem_lines

    problems = [*(missing or []), *problem_lines(document)]
    lines = [headline_of(document), *problems[:PROBLEM_LINES]]
    if len(problems) > PROBLEM_LINES:
        lines.append(f"… and {len(problems) - PROBLEM_LINES} more")
    if archive is not None:
        lines.append(f"report: {archive.final('html')}")
    return redaction.clip("\n".join(lines), BODY_LIMIT)


def _say(config: pytest.Config, beat: Heartbeat) -> None:
    """Each failed ping in one line, in the terminal (stderr without one)."""
    terminal = config.pluginmanager.get_plugin("terminalreporter")
    for line in beat.problems:
        if terminal is not None:
            terminal.write_line(redaction.redact(line), yellow=True)
        else:
            sys.stderr.write(redaction.redact(line) + "\n")
    beat.problems.clear()
