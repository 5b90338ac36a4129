"""The operations log: report columns, a summary by category, JSON results, the dated archive."""

from __future__ import annotations

import fcntl
import html
import importlib.metadata
import json
import os
import re
import secrets
import socket
import sqlite3
import stat
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import asdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opscheck import archive_index, history, outage, report_page
from opscheck import shard as sharding
from opscheck.checks import CATEGORIES, SCHEDULES
from opscheck.config import Config
from opscheck.judge import Record, records_of
from opscheck.measure import MEASURED_SECONDS

SCHEMA_VERSION = 1  # of the JSON report: opscheck/schema/report.schema.json

# not_run: a check of a target that is down (opscheck/outage.py): a pytest failure, counted apart.
# flaky: a CRIT that passed when measured again (opscheck/recheck.py); waived: its problems are
# accepted by a waiver (opscheck/waivers.py). Both pass, and are counted apart.
OUTCOMES = ("passed", "warned", "flaky", "waived", "failed", "error", "not_run", "skipped")
_COLUMNS = ("target", "measured", "threshold", "verdict")
_LABELS = ("check_id", "target", "schedule", "category", "section", "title")
_VERDICTS = ("OK", "WARN", "CRIT")
_VERDICT_STYLE = {
    "OK": "color:#2e7d32",
    "WARN": "color:#b26a00;font-weight:bold",
    "CRIT": "color:#c62828;font-weight:bold",
    "FAIL": "color:#c62828;font-weight:bold",
    "ERROR": "color:#c62828;font-weight:bold",
    "FLAKY": "color:#6a1b9a;font-weight:bold",
    "WAIVED": "color:#1565c0;font-weight:bold",
}
# What the waivers and the recheck (opscheck/waivers.py, recheck.py) put on a test's report:
# its entry keeps them (FLAKY's both values, the waiver that accepted it, the one that expired,
# the failure a maintenance window accepted: a down target's check has no record to show).
_MARKS = ("flaky", "waived", "waiver_expired", "waived_failure")


def _props(report: pytest.TestReport) -> dict[str, Any]:
    """A test's labels and its records, with the records' fields merged into one line each for
    the table views (HTML columns, the JSON entry's ``measured``/``message``/``verdict``)."""
    props: dict[str, Any] = {k: v for k, v in report.user_properties if k in _LABELS}
    for key, value in report.user_properties:
        if key in _MARKS:  # one line each; a test marked twice (two records) says both
            props[key] = "; ".join(filter(None, (props.get(key), str(value))))
    records = records_of(report.user_properties)
    if records:
        props["records"] = [asdict(r) for r in records]
        props["check"] = "; ".join(dict.fromkeys(r.check for r in records))
        props["verdict"] = max((r.verdict for r in records), key=_VERDICTS.index)
        for key in ("measured", "threshold", "message", "detail"):
            texts = _merge(records, key)
            if texts:
                props[key] = texts
    return props


def outcome_of(passed: bool, props: dict[str, Any]) -> str:
    """A test that passed: ``flaky`` (a CRIT that passed when measured again), ``waived`` (its
    problems accepted by waivers, no unwaived WARN beside them), ``warned`` or ``passed``. The
    report's properties say so; its records too (a recheck's first CRIT, a record's waiver)."""
    records = props.get("records", [])
    if not passed:
        return "failed"
    rechecked = any(
        (r.get("recheck") or {}).get("verdict") == "CRIT" and r.get("verdict") != "CRIT"
        for r in records
    )
    if props.get("flaky") or rechecked:
        return "flaky"
    unwaived = [r for r in records if r.get("verdict") in ("WARN", "CRIT") and not r.get("waived")]
    if (props.get("waived") or any(r.get("waived") for r in records)) and not unwaived:
        return "waived"
    warned = any(r.get("verdict") == "WARN" for r in unwaived)  # beside a waived CRIT too
    return "warned" if warned or (props.get("verdict") == "WARN" and not records) else "passed"


def shown_verdict(entry: dict[str, Any]) -> str:
    """The verdict a table row shows: WAIVED and FLAKY for those outcomes (the entry's and its
    records' ``verdict`` stay the measured ones), else the entry's verdict."""
    words = {"waived": "WAIVED", "flaky": "FLAKY"}
    return words.get(entry.get("outcome", ""), "") or str(entry.get("verdict", ""))


def _merge(records: list[Record], key: str) -> str:
    """One field of a test's records as one line ("; "-separated; details one per line)."""
    texts = dict.fromkeys(text for r in records if (text := getattr(r, key)))
    return ("\n" if key == "detail" else "; ").join(texts)


def _reason(report: pytest.TestReport) -> str:
    if reason := outage.not_run(report):  # not run: web1 unreachable (see test_…[web1])
        return reason
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    # xdist heads a worker's failure with "[gw0] linux -- Python 3.11 ...": not the reason.
    text = re.sub(r"^\[gw\d+\] .*\n", "", report.longreprtext).strip()
    return text[-2000:]


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all: into a partial file of this writer's own (pid and
    random: runs sharing a path never share one), locked while written, then renamed over
    ``path``. Partials that writers killed mid-write left in the folder are removed first."""
    sweep_partials(path)
    fd, partial = _create_locked(
        lambda: path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.partial")
    )
    try:
        with os.fdopen(os.dup(fd), "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        HELD.discard(partial)
        os.close(fd)


# -- files of writers that died ------------------------------------------------------------------
# A writer holds an flock on its lock or partial file while it lives; the kernel releases it when
# the process ends, however it ends (SIGKILL too). So a file nobody holds, found under a name only
# writers use, was left by a dead one. A sweeper takes the lock itself before it deletes, and a
# writer checks after locking that the name is still its file: neither can delete the other's.
# (Where flock is emulated by POSIX record locks, as on NFS, a process does not conflict with its
# own locks: HELD keeps a process from sweeping its own files.)

HELD: set[Path] = set()  # the lock and partial files this process holds


def _create_locked(name: Callable[[], Path]) -> tuple[int, Path]:
    """Create a new file at ``name()`` and lock it: (descriptor, path)."""
    while True:
        path = name()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        if _locked_as(fd, path, wait=True):
            HELD.add(path)
            return fd, path
        os.close(fd)  # swept in the instant before it was locked: another name


def _locked_as(fd: int, path: Path, wait: bool = False) -> bool:
    """Lock ``fd`` (or find it held by another process: False), then check that ``path`` still
    names its file. A filesystem without locks (some NFS mounts) counts as held: never swept."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:
        return wait  # no locks here: the writer goes on, a sweeper leaves the file alone
    try:
        now, held = os.stat(path, follow_symlinks=False), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)


def _take_if_dead(path: Path) -> int | None:
    """The locked descriptor of ``path`` when no live process holds it, else None."""
    if path in HELD:
        return None
    try:  # for writing: NFS takes a write lock only on such; non-blocking: a FIFO planted
        fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK)  # there must not hang
    except OSError:
        return None
    if stat.S_ISREG(os.fstat(fd).st_mode) and _locked_as(fd, path):
        return fd
    os.close(fd)
    return None


def _remove_if_dead(path: Path, *with_it: Path) -> int:
    """Delete ``path`` (and ``with_it`` first) when its writer is dead; how many files."""
    fd = _take_if_dead(path)
    if fd is None:
        return 0
    removed = 0
    try:
        for gone in (*with_it, path):
            try:
                gone.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    finally:
        os.close(fd)
    return removed


_PARTIAL = re.compile(r"\.(?P<name>.+)\.\d+-[0-9a-f]{8}\.partial")


def sweep_partials(path: Path) -> int:
    """Remove the partials of ``path`` that dead writers left; how many."""
    try:
        names = os.listdir(path.parent)
    except OSError:
        return 0
    prefix = f".{path.name}."
    stale = [
        path.parent / n
        for n in names
        if n.startswith(prefix) and (m := _PARTIAL.fullmatch(n)) and m["name"] == path.name
    ]
    return sum(_remove_if_dead(p) for p in stale)


def sweep_archive(root: Path, today: date, days: int = 8) -> int:
    """Remove what dead runs left in the day folders of the last ``days`` days: a name's lock
    and the partial reports under it, and the partials of JSON reports; how many files."""
    removed = 0
    for back in range(days):
        folder = root / f"{today - timedelta(days=back):%Y-%m-%d}"
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if name.startswith(".") and name.endswith(".lock"):
                stem = name[1 : -len(".lock")]
                # html and xml are written by pytest-html and junitxml, which take no lock: the
                # name's lock stands for them (and for the JSON partial of older versions).
                partials = [folder / f".{stem}.{ext}.partial" for ext in ("html", "xml", "json")]
                removed += _remove_if_dead(folder / name, *partials)
            elif name.startswith(".merging-") or (
                name.endswith(".partial") and _PARTIAL.fullmatch(name)
            ):  # opscheck-merge's claim on a run (opscheck.merge), a JSON report's partial
                removed += _remove_if_dead(folder / name)
    return removed


class Archive:
    """Reserve ``<dir>/YYYY-MM-DD/<schedule>-<HHMMSS><suffix>`` (UTC) without ever reusing a name.

    ``suffix`` names a shard's files (``.shard-1-of-4``); ``when`` files a merged run under the
    time it started (default: now). The name's ``.lock`` stays locked while this process lives;
    what runs killed mid-write left (their locks and partial files) is removed first."""

    def __init__(
        self, root: Path, schedule: str, suffix: str = "", when: datetime | None = None
    ) -> None:
        now = when or datetime.now(UTC)
        self.day = root / now.strftime("%Y-%m-%d")
        self.day.mkdir(parents=True, exist_ok=True)
        self.swept = sweep_archive(root, datetime.now(UTC).date())
        base, number = f"{schedule}-{now:%H%M%S}", 1
        self._fd: int | None = None
        while self._fd is None:
            self.stem = (base if number == 1 else f"{base}-{number}") + suffix
            self._lock = self.day / f".{self.stem}.lock"
            if any(self.final(ext).exists() for ext in ("html", "xml", "json")):
                number += 1
                continue
            try:
                fd = os.open(self._lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            except FileExistsError:
                number += 1
                continue
            if _locked_as(fd, self._lock, wait=True):
                self._fd = fd
                HELD.add(self._lock)
            else:
                os.close(fd)  # swept in the instant before it was locked: try the name again

    def final(self, ext: str) -> Path:
        return self.day / f"{self.stem}.{ext}"

    def partial(self, ext: str) -> Path:
        return self.day / f".{self.stem}.{ext}.partial"

    def publish(self) -> None:
        for ext in ("html", "xml"):
            if self.partial(ext).exists():
                os.replace(self.partial(ext), self.final(ext))
        self._release()

    def discard(self) -> None:
        """Release the name of a run that ended before its reports were written."""
        if self._fd is None:
            return
        for ext in ("html", "xml"):
            self.partial(ext).unlink(missing_ok=True)
        self._release()

    def _release(self) -> None:
        if self._fd is not None:  # unlocked only once gone: a sweeper never sees it unheld
            self._lock.unlink(missing_ok=True)
            os.close(self._fd)
            self._fd = None
            HELD.discard(self._lock)


def counts(results: Iterable[dict[str, Any]]) -> Counter[str]:
    """Tests per outcome, from JSON report entries."""
    return Counter(r.get("outcome", "error") for r in results)


def by_category(results: Iterable[dict[str, Any]]) -> dict[str, Counter[str]]:
    """Tests per outcome per category (the runbooks' checklist), from JSON report entries."""
    table: dict[str, Counter[str]] = defaultdict(Counter)
    for result in results:
        for category in (result.get("category") or "uncategorised").split():
            table[category][result.get("outcome", "error")] += 1
    order = [*CATEGORIES, "uncategorised"]
    return {c: table[c] for c in order if c in table}


def schedule_name(markexpr: str) -> str:
    words = markexpr.replace("(", " ").replace(")", " ").split()
    chosen = [w for w in words if w in SCHEDULES]
    return chosen[0] if len(chosen) == 1 and "not" not in words else ("-".join(chosen) or "all")


def headline_of(document: dict[str, Any]) -> str:
    """``1 CRIT · 3 WARN · 1 FLAKY · 1 WAIVED · 41 OK · 2 not run · 6 skipped``: the words of the
    page's headline, for a run's JSON document (a merged sharded run's too)."""
    return report_page.headline_text(document.get("tests", []))


def problem_lines(document: dict[str, Any], waived: bool = True) -> list[str]:
    """One line per problem, CRIT first, then WARN, then FLAKY (both values, its history
    call-out); then, with ``waived``, the WAIVED checks (each with its waiver) and the waivers
    to act on (expired, stale, unused; not the ones this run did not check), in
    opscheck/waivers.py's words: listed as such, not problems."""
    lines = [
        p.line()
        for p in report_page.problem_list(document.get("tests", []))
        if waived or p.kind != "waived"
    ]
    if waived:
        lines += [
            waiver_line(w)
            for w in document.get("waivers") or []
            if w.get("status") in ("stale", "unused", "expired")
        ]
    return lines


def waiver_line(waiver: dict[str, Any]) -> str:
    """A waiver to look at in one line, in opscheck/waivers.py's words (its ``note``): ``WAIVER
    host.disk_used_pct web9 /var (alice, expires 2026-12-15): STALE: matches nothing: no target
    'web9' in inventory.toml; remove it``."""
    status = str(waiver.get("status", ""))
    what = " ".join(str(waiver[k]) for k in ("check", "target", "subject") if waiver.get(k))
    whose = f"({waiver.get('owner', '')}, expires {waiver.get('expires', '')})"
    note = waiver.get("note") or report_page.WAIVER_STATUS.get(status, status)
    return f"WAIVER {what} {whose}: {note}"


class PageChanged(Exception):
    """pytest-html's page no longer has the text opscheck amends (a new pytest-html)."""


# pytest-html's app.js filters by a fixed list of outcomes: Warned, Flaky, Waived, NotRun join it.
_FILTERS = "const possibleFilters = [\n    'passed',\n"
_SORT_ORDER = "'Skipped', 'Passed']"
# "There are still tests running": hidden by a class, which a CSP that blocks styles undoes.
# (outcome, label, the pytest-html outcome it is counted under otherwise)
_OWN_OUTCOMES = (
    ("warned", "Warned", "passed"),
    ("flaky", "Flaky", "passed"),
    ("waived", "Waived", "passed"),
    ("notrun", "Not run", "failed"),
)
_RELOAD = re.compile(r'\s*<div class="summary__reload">.*?</div>\s*</div>\s*</div>', re.S)
_ENVIRONMENT = re.compile(r'(<div id="environment-header">)\s*<h2>Environment</h2>\s*')


def amend_page(text: str) -> str:
    """pytest-html's finished page with Warned as a filter and sort order, without the reload
    box; PageChanged when the text to amend is not there."""
    for anchor in (_FILTERS, _SORT_ORDER):
        if anchor not in text:
            raise PageChanged(f"pytest-html's page has no {anchor!r}")
    own = "".join(f"    '{o}',\n" for o in ("warned", "flaky", "waived", "notrun"))
    text = text.replace(_FILTERS, _FILTERS + own, 1)
    text = text.replace(_SORT_ORDER, "'NotRun', 'Warned', 'Flaky', 'Waived', " + _SORT_ORDER, 1)
    text, found = _RELOAD.subn("", text, count=1)
    if not found:
        raise PageChanged("pytest-html's page has no reload box")
    # Its heading goes; the (empty) header and table stay: the script looks for them.
    return _ENVIRONMENT.sub(r"\1", text, count=1)


def _finish_page(path: Path, atomic: bool) -> None:
    text = amend_page(path.read_text(encoding="utf-8"))
    if atomic:
        _write_atomic(path, text)
    else:  # the archive's partial file, published (renamed) afterwards
        path.write_text(text, encoding="utf-8")


class Reporter:
    """Collects each test's outcome and numbers; writes the summary, JSON and archive."""

    def __init__(self, config: pytest.Config, loaded: Config) -> None:
        self._config = config
        self._loaded = loaded
        self._results: dict[str, dict[str, Any]] = {}
        self._started = datetime.now(UTC)
        self._controller = not hasattr(config, "workerinput")
        self.archive: Archive | None = None
        self.history_note = ""  # why the history store was not written (opscheck/history.py)
        self._html: Any = None  # pytest-html's report data (pytest_html_report_title)
        self._built: dict[str, Any] | None = None  # built before pytest-html renders
        # rows of pytest-html's table shown as Warned (else Passed) and NotRun (else Failed)
        self._moved_rows: Counter[str] = Counter()
        json_path = config.getoption("json_report")
        self._json_path = Path(json_path) if json_path else None
        if self._controller and config.getoption("archive"):
            # Relative to where opscheck was started; absolute, as pytest-html shows it (file://).
            root = config.invocation_params.dir / (
                config.getoption("reports_dir")
                or os.environ.get("OPSCHECK_REPORTS_DIR")
                or "reports"
            )
            self.archive = Archive(
                root,
                schedule_name(config.option.markexpr or ""),
                suffix=shard.suffix if (shard := sharding.of(config)) else "",
            )
            config.option.htmlpath = str(self.archive.partial("html"))
            config.option.self_contained_html = True
            config.option.xmlpath = str(self.archive.partial("xml"))

    # -- collecting -------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[Any]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        """The runbook section (the module docstring's first sentence) and the check title (the
        test docstring's first sentence) travel with the report, to xdist's controller too."""
        report = yield
        if call.when != "teardown" and any(k == "check_id" for k, _ in report.user_properties):
            module = getattr(getattr(item, "module", None), "__doc__", None) or ""
            function = getattr(getattr(item, "function", None), "__doc__", None) or ""
            report.user_properties += [
                ("section", report_page.lead(module)),
                ("title", report_page.lead(function)),
            ]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not any(k == "check_id" for k, _ in report.user_properties):
            return  # not an opscheck check (e.g. a plain test beside the suites)
        entry = self._results.setdefault(report.nodeid, {"id": report.nodeid, "duration": 0.0})
        # A check measured ahead (opscheck.measure): its call waited for the measurement; the
        # time the check took is the measurement's.
        took = dict(report.user_properties).get(MEASURED_SECONDS) if report.when == "call" else None
        entry["duration"] = round(entry["duration"] + (took or report.duration), 3)
        props = _props(report)
        for key in _LABELS:
            entry.setdefault(key, props.get(key, ""))
        keys = ("check", "measured", "threshold", "verdict", "message", "detail", "records")
        for key in (*keys, *_MARKS):
            if key in props:
                entry[key] = props[key]
        if report.when == "call" or (report.when == "setup" and not report.passed):
            entry["outcome"] = self._outcome(report, props)
            if entry["outcome"] == "warned":
                self._junit_warning(report, props)
        elif report.when == "teardown" and report.failed:
            entry["outcome"] = "error"
        if (report.failed or report.skipped) and "reason" not in entry:
            entry["reason"] = _reason(report)
        if report.failed and "message" not in entry and entry.get("outcome") != "not_run":
            # No record says it (a probe error, a crash): the one line JUnit's failure gives,
            # ("SystemError: …"), where the reason is the traceback's tail.
            from opscheck.junit import verdict

            entry["message"] = verdict(report)

    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> Any:
        """pytest's own line and letters: ``1 flaky`` (~) and ``1 waived`` (v), not passed or
        warned (opscheck.plugin's W)."""
        if report.when != "call" or not report.passed:
            return None
        if not any(k in _MARKS or k == "record" for k, _ in report.user_properties):
            return None
        outcome = outcome_of(True, _props(report))
        if outcome == "flaky":
            return "flaky", "~", ("FLAKY", {"purple": True})
        if outcome == "waived":
            return "waived", "v", ("WAIVED", {"blue": True})
        return None

    @staticmethod
    def _outcome(report: pytest.TestReport, props: dict[str, Any]) -> str:
        if report.skipped:
            return "skipped"
        if outage.not_run(report):  # its target is down: one problem, its connectivity check's
            return "not_run"
        if report.failed:
            return "error" if report.when != "call" else "failed"
        return outcome_of(True, props)

    def _junit_warning(self, report: pytest.TestReport, props: dict[str, Any]) -> None:
        """JUnit has no warning state: write the WARN line to the test case's system-out, which CI
        viewers show (Jenkins, GitLab), beside the verdict property."""
        from _pytest.junitxml import bin_xml_escape, xml_key

        logxml = self._config.stash.get(xml_key, None)
        if logxml is None:
            return
        node = ET.Element("system-out")
        lines = [f"WARN {props.get('message') or props.get('measured', '')}", props.get("detail")]
        node.text = bin_xml_escape("\n".join(line for line in lines if line))
        logxml.node_reporter(report).append(node)

    def counts(self) -> Counter[str]:
        return counts(self._results.values())

    def by_category(self) -> dict[str, Counter[str]]:
        return by_category(self._results.values())

    # -- the terminal -----------------------------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self._controller or not self._results:
            return
        warned = [r for r in self._results.values() if r.get("outcome") == "warned"]
        if warned:
            terminalreporter.write_sep("=", "opscheck warnings", yellow=True)
            for result in warned:
                terminalreporter.write_line(f"WARN {result['id']} - {result.get('message', '')}")
        self._flaky_and_waived(terminalreporter)
        terminalreporter.write_sep("-", "opscheck summary by category")
        for category, counts in self.by_category().items():
            cells = ", ".join(f"{counts[o]} {o.replace('_', ' ')}" for o in OUTCOMES if counts[o])
            terminalreporter.write_line(f"{category:<14} {cells}")
        if self.checked_nothing() and not sharding.excused(self._config):
            terminalreporter.write_line(
                f"opscheck: nothing was checked: all {len(self._results)} selected checks were "
                "skipped (exit code 5)",
                red=True,
            )
        if self.history_note:
            terminalreporter.write_line(self.history_note, red=True)
        if self.archive:
            terminalreporter.write_line(
                f"opscheck: reports archived to {self.archive.final('html')} (and .xml, .json)"
            )
            if self.archive.swept:
                terminalreporter.write_line(
                    f"opscheck: removed {self.archive.swept} lock and partial files that runs "
                    f"killed mid-write left in {self.archive.day.parent}"
                )

    def _flaky_and_waived(self, terminalreporter: Any) -> None:
        """FLAKY checks with both values, WAIVED ones with their waiver, the checks an expired
        waiver no longer accepts. The waivers to act on (stale, unused, expired) are
        opscheck/waivers.py's own section."""
        document = self.document
        entries = document.get("tests", [])
        lines: list[str] = []
        for entry in entries:
            outcome = entry.get("outcome")
            if outcome == "flaky":
                callout = entry.get("flaky_history")
                text = report_page.problem_list([entry])[0].measured
                lines.append(f"FLAKY {entry['id']} - {text}" + (f" — {callout}" if callout else ""))
            elif outcome == "waived":
                for problem in report_page.problem_list([entry]):
                    said = problem.message or problem.measured
                    lines.append(f"WAIVED {entry['id']} - {said} — {problem.note}")
            if entry.get("waiver_expired"):
                lines.append(f"WAIVER EXPIRED {entry['id']} - {entry['waiver_expired']}")
        if not lines:
            return
        terminalreporter.write_sep("=", "opscheck flaky and waived", purple=True)
        for line in lines:
            terminalreporter.write_line(line)

    # -- the run's words, for the end-of-run helpers (notify, heartbeat, nagios) ----------------

    @property
    def document(self) -> dict[str, Any]:
        """The run's JSON document: the final one (as written) once the run has ended."""
        return self._built or self._document()

    def headline(self) -> str:
        """``1 CRIT · 3 WARN · 1 FLAKY · 1 WAIVED · 41 OK · 2 not run · 6 skipped``: the words
        of the page's headline."""
        return headline_of(self.document)

    def problems(self, waived: bool = True) -> list[str]:
        """The run's problem lines (``problem_lines``)."""
        return problem_lines(self.document, waived)

    # -- pytest-html ------------------------------------------------------------------------

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_header(self, cells: list[str]) -> None:
        cells[2:2] = [
            f'<th class="sortable" data-column-type="{c}">{c.title()}</th>' for c in _COLUMNS
        ]

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_row(self, report: pytest.TestReport, cells: list[str]) -> None:
        props = _props(report)
        verdict = props.get("verdict") or {"failed": "FAIL", "skipped": "SKIP"}.get(
            report.outcome, ""
        )
        outcome = outcome_of(report.passed, props) if report.when == "call" else ""
        if outcome in ("flaky", "waived"):
            verdict = outcome.upper()
        if report.failed and report.when != "call":
            verdict = "ERROR"
        values = {
            "target": props.get("target", ""),
            "measured": props.get("measured", ""),
            "threshold": props.get("threshold", ""),
        }
        if report.skipped:
            values["measured"] = f"skipped: {_reason(report)}"
        not_run = outage.not_run(report)
        if not_run:
            values["measured"], verdict = not_run, "NOT RUN"
        new = [f'<td class="col-{k}">{html.escape(str(v))}</td>' for k, v in values.items()]
        style = _VERDICT_STYLE.get(verdict, "")
        new.append(f'<td class="col-verdict" style="{style}">{verdict}</td>')
        cells[2:2] = new
        if outcome in ("warned", "flaky", "waived"):  # their own outcomes: see _own_outcomes
            cells[0] = f'<td class="col-result">{outcome.title()}</td>'
            self._moved_rows[outcome] += 1
        elif not_run:
            cells[0] = '<td class="col-result">NotRun</td>'
            self._moved_rows["notrun"] += 1

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_table_html(self, report: pytest.TestReport, data: list[str]) -> None:
        """A skip's log is its reason in one line, not the Python tuple pytest keeps."""
        if report.skipped:
            data[:] = [html.escape(f"skipped: {_reason(report)}")]

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_results_summary(
        self, prefix: list[str], summary: list[str], postfix: list[str], session: pytest.Session
    ) -> None:
        rows = "".join(
            f"<tr><td>{c}</td>" + "".join(f"<td>{n[o]}</td>" for o in OUTCOMES) + "</tr>"
            for c, n in self.by_category().items()
        )
        head = "".join(f"<th>{o}</th>" for o in OUTCOMES)
        document = self._built or self._document()
        prefix.append(report_page.top(document, self.facts(), self.archive is not None))
        prefix.append(self._trends(document))
        prefix.append(report_page.checklist(document.get("tests", [])))
        prefix.append(
            "<h2>Checklist by category</h2>"
            f'<table id="opscheck-categories"><tr><th>category</th>{head}</tr>{rows}</table>'
        )

    def _trends(self, document: dict[str, Any]) -> str:
        """opscheck/trends.py's plots; a one-line note when they cannot be drawn."""
        settings = self._loaded.inventory.settings.history
        if not settings.trends:
            return ""
        try:
            from opscheck import trends

            store = history.store_path(self._config, settings)
            return str(trends.section(store, document, settings.trend_days))
        except Exception as error:  # a report extra never fails a run
            return f'<p class="opscheck-note">Trends not drawn: {html.escape(str(error))}</p>'

    def facts(self) -> dict[str, str]:
        """The run's facts: shown first, in place of pytest-metadata's plugin versions."""
        option = self._config.option
        try:
            version = importlib.metadata.version("opscheck")
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        took = (datetime.now(UTC) - self._started).total_seconds()
        selection = " ".join(
            f"{flag} {value!r}"
            for flag, value in (("-m", option.markexpr), ("-k", option.keyword))
            if value
        )
        return {
            "Schedule": schedule_name(option.markexpr or ""),
            "Inventory": str(self._loaded.inventory_path or ""),
            "Runner host": socket.gethostname(),
            "opscheck version": version,
            "Started (UTC)": f"{self._started:%Y-%m-%d %H:%M:%S}",
            "Duration": f"{took:.0f} s",
            "Selection": selection or "all checks (no -m, no -k)",
        }

    def _own_outcomes(self) -> None:
        """pytest-html counts a WARN, FLAKY or WAIVED row as passed and a not-run row as failed:
        give Warned, Flaky, Waived and NotRun their own counts and checkboxes."""
        if self._html is None:
            return
        outcomes = self._html.outcomes
        order = list(outcomes.items())
        outcomes.clear()
        for key, value in order:
            outcomes[key] = value
            for own, label, was in _OWN_OUTCOMES:
                if key == was:
                    moved = min(self._moved_rows[own], value["value"])
                    value["value"] -= moved
                    outcomes[own] = {"label": label, "value": moved}
        # The facts are the static #opscheck-facts table (which renders without JavaScript and
        # under a CSP); pytest-html's script-drawn Environment table would only repeat them.
        self._html.set_data("environment", {})

    @pytest.hookimpl(optionalhook=True)
    def pytest_html_report_title(self, report: Any) -> None:
        self._html = report
        report.title = (
            f"opscheck {schedule_name(self._config.option.markexpr or '')} "
            f"{self._started:%Y-%m-%d %H:%M} UTC"
        )

    # -- files --------------------------------------------------------------------------------

    def checked_nothing(self) -> bool:
        """Every check selected was skipped: such a run must not end green."""
        counts = self.counts()
        return bool(self._results) and not any(counts[o] for o in OUTCOMES if o != "skipped")

    @pytest.hookimpl(trylast=True, hookwrapper=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> Iterator[None]:
        nothing = self.checked_nothing() and not sharding.excused(self._config)  # see shard.py
        if self._controller and nothing and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.NO_TESTS_COLLECTED
        if self._controller:
            # Before pytest-html renders its page (its sessionfinish runs inside this wrapper):
            # the page shows each record's previous value and change.
            self._built = document = self._document()
            self._record_history(document)  # opscheck/history.py: previous values, then append
            self._waivers_and_flaky_history(document)
            self._own_outcomes()
        # Innermost wrapper: pytest-html and junitxml have written their files when we resume,
        # and the terminal summary (which prints their paths) has not run yet.
        yield
        if not self._controller:
            return
        document = self._built or self._document()
        html_path = self._config.option.htmlpath
        if html_path and Path(html_path).exists():
            try:
                _finish_page(Path(html_path), atomic=self.archive is None)
            except (OSError, PageChanged) as error:
                note = f"opscheck: {html_path}: WARN filter not added: {error}"
                self.history_note = "\n".join(filter(None, (self.history_note, note)))
        targets = [p for p in (self._json_path,) if p]
        if self.archive:
            targets.append(self.archive.final("json"))
        for path in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, json.dumps(document, indent=2, default=str))
        if self.archive:
            self.archive.publish()
            self._point_plugins_at_final_paths()
            try:  # reports/index.html and the day's ops-log.md (opscheck/archive_index.py)
                archive_index.rebuild(self.archive.day.parent, {self.archive.day.name})
            except OSError as error:
                note = f"opscheck: archive index not written in {self.archive.day.parent}: {error}"
                self.history_note = "\n".join(filter(None, (self.history_note, note)))

    def _waivers_and_flaky_history(self, document: dict[str, Any]) -> None:
        """The waivers file's waivers with their status (opscheck/waivers.py ``summary``) and the
        checks FLAKY on N of the last M runs (opscheck/recheck.py ``callouts``, which may add
        ``flaky_history`` to entries; the history store holds this run already). Either missing
        or failing leaves its key out and is one line in the summary, never a failed run."""
        import importlib

        for key, module, name in (
            ("waivers", "opscheck.waivers", "summary"),
            ("flaky_history", "opscheck.recheck", "callouts"),
        ):
            try:
                function = getattr(importlib.import_module(module), name, None)
                if function is None:
                    continue
                args = (self._config,) if key == "waivers" else (self._config, document)
                found = function(*args)
            except Exception as error:  # a report extra never fails a run
                note = f"opscheck: {key} not reported: {type(error).__name__}: {error}"
                self.history_note = "\n".join(filter(None, (self.history_note, note)))
                continue
            if found is not None:
                document[key] = list(found)

    def _record_history(self, document: dict[str, Any]) -> None:
        """Append the run's records to the history store; a failure is reported, never raised."""
        settings = self._loaded.inventory.settings.history
        path = history.store_path(self._config, settings)
        if path is None:
            return
        document["host"] = socket.gethostname()
        try:
            added = history.record_run(path, document, settings.jump)
        except (sqlite3.Error, OSError) as error:
            self.history_note = f"opscheck: history not written to {path}: {error}"
            document["history"] = {"path": str(path), "error": str(error)}
        else:
            document["history"] = {"path": str(path), "added": added}

    def pytest_unconfigure(self) -> None:
        if self.archive:
            self.archive.discard()

    def _point_plugins_at_final_paths(self) -> None:
        assert self.archive
        from _pytest.junitxml import xml_key

        logxml = self._config.stash.get(xml_key, None)
        if logxml is not None:
            logxml.logfile = str(self.archive.final("xml"))
        # By name: get_plugins() makes a set, which an unhashable plugin object would break.
        for _, plugin in self._config.pluginmanager.list_name_plugin():
            if hasattr(plugin, "_report_path") and hasattr(plugin, "_generate_report"):
                plugin._report_path = self.archive.final("html")

    def _document(self) -> dict[str, Any]:
        counts = self.counts()
        return {
            "schema_version": SCHEMA_VERSION,
            "started": self._started.isoformat(timespec="seconds"),
            "finished": datetime.now(UTC).isoformat(timespec="seconds"),
            "schedule": schedule_name(self._config.option.markexpr or ""),
            "inventory": str(self._loaded.inventory_path or ""),
            "thresholds": str(self._loaded.thresholds_path or ""),
            "summary": {o: counts[o] for o in OUTCOMES},
            "by_category": {c: dict(n) for c, n in self.by_category().items()},
            "tests": list(self._results.values()),
            **sharding.report_fields(self._config),  # run_id, shard: opscheck.shard
        }
