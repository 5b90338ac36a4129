"""opscheck's own results as Prometheus metrics: ``--pushgateway URL`` and ``--textfile PATH``.

After the run, once its reports are written, the run's records (the JSON report's, redacted
already) become one registry: per record ``opscheck_check_value`` (when it measured a number)
and ``opscheck_check_verdict`` (0 OK, 1 WARN, 2 CRIT: the measured one), labelled ``check``,
``target`` and ``subject`` only, with ``opscheck_check_waived`` 1 beside a WARN/CRIT a waiver
accepts (opscheck/waivers.py) and ``opscheck_check_flaky`` 1 for a CRIT that passed when measured
again (opscheck/recheck.py; its verdict is the second measurement's); per run
``opscheck_run_timestamp_seconds``, ``opscheck_run_duration_seconds`` and ``opscheck_run_checks``
by verdict. Teams alert on them with their own Alertmanager (a waived CRIT:
``opscheck_check_verdict == 2 unless on(check, target, subject) opscheck_check_waived == 1``).

The Pushgateway gets one group per run, ``job="opscheck"`` and ``schedule`` (+ ``shard``), by PUT:
it replaces the group, so the gateway holds the latest run's state. A POST (pushadd) would keep
the series of checks the latest run no longer has (a target removed, a check that could not
measure this time) at their old values: a CRIT fixed or gone would keep firing. The textfile
carries the same labels, so one query serves both. An export that fails (gateway down, a
timeout, a directory gone) is one WARNING line in the summary: the reports are written before
it and the exit code is the run's.
"""

from __future__ import annotations

import os
import time
import urllib.error
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.exposition import (
    basic_auth_handler,
    default_handler,
    push_to_gateway,
    write_to_textfile,
)

from opscheck import redaction
from opscheck import shard as sharding
from opscheck.config.inventory import pushgateway_url

JOB = "opscheck"
TIMEOUT = 10.0  # seconds per connection and per read: a dead gateway delays the end by at most this
TOKEN_ENV = "OPSCHECK_PUSHGATEWAY_TOKEN"
USERNAME_ENV = "OPSCHECK_PUSHGATEWAY_USERNAME"
PASSWORD_ENV = "OPSCHECK_PUSHGATEWAY_PASSWORD"

VERDICTS = {"OK": 0, "WARN": 1, "CRIT": 2}
# opscheck_run_checks{verdict}: every check of the run in exactly one, all always present (0 too).
RUN_VERDICTS = ("ok", "warn", "crit", "flaky", "waived", "failed", "error", "not_run", "skipped")
_LABELS = ("check", "target", "subject")


def run_verdict(entry: dict[str, Any]) -> str:
    """A JSON report entry's word in ``opscheck_run_checks``: its worst verdict when it judged
    something (a CRIT fails the test, a WARN does under --fail-on-warn), ``flaky`` (a CRIT that
    passed when measured again), ``waived`` (its problems accepted by a waiver), else ``failed``
    (it could not measure: a probe error, a target down), ``error``, ``not_run`` (its target is
    down: its connectivity check is the ``failed`` one) or ``skipped``."""
    outcome, verdict = entry.get("outcome", "error"), entry.get("verdict")
    if outcome == "failed":
        return str(verdict).lower() if verdict in ("WARN", "CRIT") else "failed"
    words = {"passed": "ok", "warned": "warn", "not_run": "not_run", "skipped": "skipped"}
    words |= {"flaky": "flaky", "waived": "waived"}
    return words.get(outcome, "error")


def registry_of(
    document: dict[str, Any], finished: float, duration: float, labels: dict[str, str]
) -> CollectorRegistry:
    """The metrics of a JSON report ``document`` (``opscheck.report``), with ``labels`` added to
    every series (the textfile's ``schedule``/``shard``; a pushed group gets them from its key)."""
    registry = CollectorRegistry()
    extra = tuple(labels)

    def gauge(name: str, doc: str, names: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, (*names, *extra), registry=registry)

    def one(name: str, doc: str, value: float) -> None:
        metric = gauge(name, doc)
        (metric.labels(*labels.values()) if labels else metric).set(value)

    value = gauge(
        "opscheck_check_value",
        "The measured value, in the base unit of the check (seconds, bytes, percent, ...)",
        _LABELS,
    )
    verdict = gauge("opscheck_check_verdict", "The verdict: 0 OK, 1 WARN, 2 CRIT", _LABELS)
    waived = gauge(
        "opscheck_check_waived", "1: its WARN/CRIT is accepted by a waiver (waivers.toml)", _LABELS
    )
    flaky = gauge(
        "opscheck_check_flaky", "1: a CRIT that passed when measured again (--recheck)", _LABELS
    )
    # A (check, target, subject) recorded twice in a run is one series: the worst record.
    worst: dict[tuple[str, str, str], dict[str, Any]] = {}
    for entry in document.get("tests", []):
        for record in entry.get("records", []):
            key = (record["check"], record["target"], record["subject"])
            kept = worst.get(key)
            if kept is None or VERDICTS[record["verdict"]] >= VERDICTS[kept["verdict"]]:
                worst[key] = record
    for key, record in worst.items():
        verdict.labels(*key, *labels.values()).set(VERDICTS[record["verdict"]])
        if isinstance(record.get("value"), int | float):
            value.labels(*key, *labels.values()).set(record["value"])
        if record.get("waived") and record["verdict"] != "OK":
            waived.labels(*key, *labels.values()).set(1)
        if (record.get("recheck") or {}).get("verdict") == "CRIT" and record["verdict"] != "CRIT":
            flaky.labels(*key, *labels.values()).set(1)
    one("opscheck_run_timestamp_seconds", "When the run finished (Unix time)", finished)
    one("opscheck_run_duration_seconds", "How long the run took", duration)
    counts = gauge(
        "opscheck_run_checks",
        "Checks of the run by verdict (ok warn crit; flaky: a CRIT that passed measured again; "
        "waived: accepted by a waiver; failed: could not measure; error; not_run: target down; "
        "skipped)",
        ("verdict",),
    )
    tally = dict.fromkeys(RUN_VERDICTS, 0)
    for entry in document.get("tests", []):
        tally[run_verdict(entry)] += 1
    for word, count in tally.items():
        counts.labels(word, *labels.values()).set(count)
    return registry


def _handler() -> Callable[..., Callable[[], None]]:
    """How to reach the gateway: a bearer token or basic auth from the environment, if set."""
    token = os.environ.get(TOKEN_ENV)
    username, password = os.environ.get(USERNAME_ENV), os.environ.get(PASSWORD_ENV)

    def handle(
        url: str, method: str, timeout: float | None, headers: list[tuple[str, str]], data: bytes
    ) -> Callable[[], None]:
        if token:
            headers = [*headers, ("Authorization", f"Bearer {token}")]
        elif username and password:
            return basic_auth_handler(url, method, timeout, headers, data, username, password)
        return default_handler(url, method, timeout, headers, data)

    return handle


def _why(exc: BaseException) -> str:
    """An export's failure in one line: the gateway's status and what it said (a 400 says which
    metric it refused), or the connection's error (urllib wraps it)."""
    if isinstance(exc, urllib.error.HTTPError):
        try:
            said = exc.read(300).decode(errors="replace")
        except OSError:
            said = ""
        said = said.strip() if said.strip() != exc.reason else ""
        text = f"HTTP {exc.code} {exc.reason}" + (f": {said}" if said else "")
    else:
        reason = getattr(exc, "reason", None) or exc
        text = str(reason) or type(reason).__name__
    return " ".join(text.split())[:300]


class Exporter:
    """Exports the run's results when it ends; says how it went in the terminal summary."""

    def __init__(self, config: pytest.Config, gateway: str | None, textfile: Path | None) -> None:
        self._config = config
        self._gateway = gateway
        self._textfile = textfile
        self._started = time.monotonic()
        self.lines: list[tuple[str, bool]] = []  # (line, is a warning)
        self._document: dict[str, Any] = {}
        self._took = 0.0
        shard = sharding.of(config)
        from opscheck.report import schedule_name

        self.grouping_key = {"schedule": schedule_name(config.option.markexpr or "")}
        if shard is not None:
            self.grouping_key["shard"] = str(shard)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Iterator[None]:
        # Outside opscheck.report's (trylast) wrapper: it has written the reports when we resume;
        # inside the terminal's, whose summary is printed after.
        yield
        reporter = self._config.pluginmanager.get_plugin("opscheck-reporter")
        if reporter is None:
            return
        if session.exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR):
            # Half a run is not the latest state: a push would resolve alerts it never checked.
            # The last whole run's metrics stay, and their timestamp ages.
            why = "interrupted" if session.exitstatus == pytest.ExitCode.INTERRUPTED else "failed"
            self.lines.append((f"WARNING: the run {why}: its results were not exported", True))
            return
        self._document = reporter.document  # the JSON report's own data, not derived again
        self._took = time.monotonic() - self._started
        if self._gateway:
            labels: dict[str, str] = {}  # the group's key labels every series it holds
            self._export(f"pushed the results to {self._gateway}", self._push, labels)
        if self._textfile:
            labels = self.grouping_key
            self._export(f"wrote the results as metrics to {self._textfile}", self._write, labels)

    def _export(
        self, done: str, how: Callable[[CollectorRegistry], None], labels: dict[str, str]
    ) -> None:
        try:
            how(registry_of(self._document, time.time(), self._took, labels))
        except Exception as exc:  # never lose the run over its export: one line
            failed = done.replace("pushed", "push").replace("wrote", "write")
            self.lines.append((f"WARNING: could not {failed}: {_why(exc)}", True))
        else:
            self.lines.append((done, False))

    def _push(self, registry: CollectorRegistry) -> None:
        assert self._gateway
        push_to_gateway(
            self._gateway,
            job=JOB,
            registry=registry,
            grouping_key=self.grouping_key,
            timeout=TIMEOUT,
            handler=_handler(),
        )

    def _write(self, registry: CollectorRegistry) -> None:
        # A temporary file beside it, renamed over it: node_exporter reads it whole or the old one
        # (it reads *.prom only, so never the temporary file).
        write_to_textfile(str(self._textfile), registry)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        for line, warning in self.lines:
            terminalreporter.write_line(f"opscheck: {line}", yellow=warning, bold=warning)


def _textfile(given: str) -> Path:
    path = Path(given)
    if path.suffix != ".prom":
        raise pytest.UsageError(
            f"--textfile: {given}: expected a file name ending in .prom (node_exporter's "
            "textfile collector reads only those)"
        )
    if not path.parent.is_dir():
        raise pytest.UsageError(f"--textfile: {given}: no such directory: {path.parent}")
    return path


def pytest_configure(config: pytest.Config) -> None:
    """Export from the controller only (xdist workers hold a part of the run's results)."""
    if hasattr(config, "workerinput"):
        return
    from opscheck.plugin import CONFIG_KEY

    loaded = config.stash.get(CONFIG_KEY, None)
    given = config.getoption("pushgateway", None)
    if given:
        try:
            gateway: str | None = pushgateway_url(given)
        except ValueError as exc:
            raise pytest.UsageError(f"--pushgateway: {exc}") from None
    else:
        gateway = loaded.inventory.settings.pushgateway if loaded else None
    textfile = config.getoption("textfile", None)
    if not gateway and not textfile:
        return
    secrets = {v for e in (TOKEN_ENV, PASSWORD_ENV) if (v := os.environ.get(e))}
    redaction.register(secrets)
    config.add_cleanup(lambda: redaction.unregister(secrets))
    exporter = Exporter(config, gateway, _textfile(textfile) if textfile else None)
    config.pluginmanager.register(exporter, "opscheck-exporter")
