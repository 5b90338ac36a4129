"""Waivers: problems an operator accepts for a while (``waivers.toml``), each with a reason, an
owner and an expiry. Also the maintenance window (``check = "*"``).

A WARN/CRIT record a live waiver matches (check key or check id or ``*``, target, subject if
given) keeps its measured verdict, gets ``waived = "waived until 2026-12-15 by alice: new disk
ordered"`` and fails nothing (``opscheck.judge.Limits.check`` asks ``accept``). A failure with no
record behind it (the target down, a check not run, a probe error) is waived by a ``*`` or
check-id waiver without a subject: its report becomes passed. Either way the test report carries
``("waived", why)``. On and after ``expires`` the check fails again, its message ending ``(waiver
expired on 2026-11-30: <reason>, owner alice)``, and the report carries ``("waiver_expired",
text)``.

At the end of the run (the controller, from the reports' records) each waiver has a status:
applied, expired, unused (what it names ran and measured OK: remove it), stale (no such target,
or its check does not run for the target: remove it) or not_checked (its check did not run at all
in this run, as ``-m``, ``-k`` or ``--shard`` left it out, or measured nothing for the target:
quiet, one waivers.toml serves every schedule); ``summary(config)`` lists them, each with its
``note``, for the reports, and the terminal shows the ones to act on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import pytest
from _pytest._code.code import ExceptionRepr

from opscheck import config as cfg
from opscheck import plugin
from opscheck.checks import CHECKS
from opscheck.config import waivers as schema
from opscheck.config.waivers import EVERY_CHECK, Waiver, shown_when
from opscheck.judge import Record, records_of

WAIVED = "waived"  # user property: why the test's problems are accepted
EXPIRED = "waiver_expired"  # user property: an expired waiver matched a problem (which, since)
WAIVED_FAILURE = "waived_failure"  # user property: the failure a maintenance window accepted
_PROBLEMS = ("WARN", "CRIT")
# the status a waiver ends the run with, best first (opscheck/merge.py joins shards' the same way)
_ORDER = ("applied", "expired", "unused", "stale", "not_checked")


@dataclass
class Match:
    index: int  # in waivers.toml
    waiver: Waiver
    state: str  # live | expired

    def why(self) -> str:
        w = self.waiver
        return f"waived until {shown_when(w.expires)} by {w.owner}: {w.reason}"

    def expired(self) -> str:
        w = self.waiver
        return f"waiver expired on {shown_when(w.expires)}: {w.reason}, owner {w.owner}"


@dataclass(eq=False)  # registered as a plugin: hashable, by identity
class Waivers:
    """The run's waivers, the moment they are judged at, and (controller) what each matched."""

    file: str
    entries: list[Waiver]
    now: dt.datetime
    inventory_file: str
    targets: set[str]  # the inventory's target names
    statuses: dict[int, str] = field(default_factory=dict)
    ran: dict[str, set[str]] = field(default_factory=dict)  # check id -> targets it ran for
    keys: dict[str, set[str]] = field(default_factory=dict)  # check key -> check ids measuring it
    measured: set[tuple[str, str]] = field(default_factory=set)  # (check id, target) with records

    def pick(
        self, target: str, check_id: str | None, check: str | None, subject: str = ""
    ) -> Match | None:
        """The waiver that decides a problem: a live one before an expired one, the most
        specific first (a subject, then a check key, a check id, ``*``). ``check`` None: a
        failure without a record, which only a waiver of the whole check (no subject) takes."""
        found = []
        for index, w in enumerate(self.entries):
            state = w.state(self.now)
            if state == "pending" or not _names(w, target, check_id, check, subject):
                continue
            specific = (bool(w.subject), w.check == check, w.check == check_id)
            found.append((state == "live", specific, -index, Match(index, w, state)))
        return max(found, key=lambda f: f[:3])[3] if found else None

    def observe(self, report: pytest.TestReport) -> None:
        """What this check's report says of each waiver (controller; under xdist the workers
        matched, and their reports' records and properties say what the controller needs)."""
        props: dict[str, Any] = dict(report.user_properties)
        check_id, target = str(props.get("check_id") or ""), str(props.get("target") or "")
        if not check_id or not target:
            return
        records = records_of(report.user_properties)
        self.ran.setdefault(check_id, set()).add(target)
        for r in records:
            self.keys.setdefault(r.check, set()).add(check_id)
            self.measured.add((check_id, target))
        if report.when != "call":
            return
        seen: dict[int, str] = {}
        for index, w in enumerate(self.entries):
            whole = not w.subject and w.check in (EVERY_CHECK, check_id)
            if any(_names(w, target, check_id, r.check, r.subject) for r in records) or (
                whole and w.target == target
            ):
                seen[index] = "unused"
        problems = [r for r in records if r.verdict in _PROBLEMS]
        for r in problems:
            match = self.pick(target, check_id, r.check, r.subject)
            if match is not None:
                seen[match.index] = "applied" if match.state == "live" else "expired"
        if not problems and (report.failed or WAIVED in props):
            match = self.pick(target, check_id, None)
            if match is not None:
                seen[match.index] = "applied" if match.state == "live" else "expired"
        for index, status in seen.items():
            old = self.statuses.get(index, _ORDER[-1])
            self.statuses[index] = min(old, status, key=_ORDER.index)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.entries:  # every phase: a check skipped at set-up was selected too
            self.observe(report)

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        """One line per waiver to act on: expired, unused, stale (the waived checks themselves
        are the report's)."""
        if hasattr(config, "workerinput"):
            return
        lines = advice(config)
        if lines:
            terminalreporter.write_sep("-", "opscheck waivers to act on")
            for text in lines:
                terminalreporter.write_line(text)

    def status(self, index: int) -> str:
        return self.statuses.get(index) or self._unmatched(index)[0]

    def _unmatched(self, index: int) -> tuple[str, str]:
        """A waiver that named no report of the run: stale or not_checked, and why. Stale when
        its target or its check cannot be (no such target; the check runs, for other targets
        only; its check measured the target, but not the subject); not_checked when this run
        did not look (its check not selected at all, or nothing measured for the target)."""
        w = self.entries[index]
        if w.target not in self.targets:
            return "stale", f"no target {w.target!r} in {self.inventory_file}"
        if w.check == EVERY_CHECK:
            ids = set(self.ran)
        else:
            ids = {w.check} if w.check in self.ran else self.keys.get(w.check, set())
        if not ids:
            return "not_checked", f"check {w.check!r} did not run"
        if not any(w.target in self.ran[i] for i in ids):
            if not any(w.target in targets for targets in self.ran.values()):
                return "not_checked", f"no check ran for {w.target}"  # not selected: -k, --shard
            return "stale", f"check {w.check!r} does not run for {w.target}"
        if not any((i, w.target) in self.measured for i in ids):  # the target down
            return "not_checked", f"check {w.check!r} measured nothing for {w.target}"
        what = f"{w.subject!r} of " if w.subject else ""  # another mount, table, field ...
        return "stale", f"no {what}check {w.check!r} measured for {w.target}"

    def note(self, index: int) -> str:
        """What a waiver's status means, in words: ``STALE: matches nothing: no target 'web9'
        in inventory.toml; remove it``; "" for an applied one."""
        w, status = self.entries[index], self.status(index)
        state = w.state(self.now)
        if status == "applied":
            return ""
        if status == "expired":
            return (
                "EXPIRED: its problem counts again (a CRIT fails the run); fix it, or renew the "
                "waiver"
            )
        if status == "unused":
            if state == "pending":
                return f"not applied yet: starts {shown_when(w.starts or w.expires)}"
            expired = f"expired on {shown_when(w.expires)}, " if state == "expired" else ""
            return f"UNUSED: {expired}its check measured OK: no longer needed: remove it"
        why = self._unmatched(index)[1]
        if status == "not_checked":
            return f"not checked by this run: {why}"
        return f"STALE: matches nothing: {why}; remove it"

    def advice(self, index: int) -> str | None:
        """The terminal's line for a waiver to act on; None for an applied or not_checked one
        (a waiver of the evening's checks is not news in the morning run)."""
        w, status = self.entries[index], self.status(index)
        if status in ("applied", "not_checked"):
            return None
        head = (
            f"{self.file}: waiver[{index}] {w.label()} ({w.owner}, expires {shown_when(w.expires)})"
        )
        return f"{head}: {self.note(index)}"


def _names(w: Waiver, target: str, check_id: str | None, check: str | None, subject: str) -> bool:
    """Whether waiver ``w`` names this problem (``check`` None: the whole check failed)."""
    if w.target != target:
        return False
    if check is None:
        return not w.subject and w.check in (EVERY_CHECK, check_id)
    return w.check in (EVERY_CHECK, check, check_id) and (not w.subject or w.subject == subject)


KEY = pytest.StashKey[Waivers]()


def pytest_configure(config: pytest.Config) -> None:
    """Read and validate waivers.toml (after opscheck.plugin loaded the inventory)."""
    if plugin.CONFIG_KEY not in config.stash:
        return
    loaded = config.stash[plugin.CONFIG_KEY]
    path = plugin._config_path(config, "waivers", "OPSCHECK_WAIVERS", "waivers.toml")
    now = dt.datetime.now(dt.UTC)
    entries: list[Waiver] = []
    if path is not None:
        policy = schema.Policy(
            today=now.date(),
            max_days=loaded.inventory.settings.waivers.max_days,
            inventory_file=loaded.inventory_file,
            check_keys=CHECKS.keys(),
            check_ids=plugin._suite_check_ids(config),
        )
        try:
            entries = schema.load(path, policy)
        except cfg.ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None
    targets = {t.name for c in cfg.COMPONENTS for t in loaded.targets(c)}
    name = path.name if path else "waivers.toml"
    waivers = Waivers(name, entries, now, loaded.inventory_file, targets)
    config.stash[KEY] = waivers
    config.pluginmanager.register(waivers, "opscheck-waivers")  # its end-of-run hooks


def _waivers(config: pytest.Config) -> Waivers | None:
    found = config.stash.get(KEY, None)
    return found if found is not None and found.entries else None


def accept(item: pytest.Item, record: Record) -> tuple[Record, str]:
    """``record`` with ``waived`` set when a live waiver accepts its problem, and the suffix for
    the failure message when an expired one matched (else ""). Called by ``Limits.check``."""
    config = getattr(item, "config", None)  # opscheck.recheck judges on a stand-in item
    waivers = _waivers(config) if config is not None else None
    if waivers is None or record.verdict not in _PROBLEMS:
        return record, ""
    match = waivers.pick(record.target, plugin.check_id(item), record.check, record.subject)
    if match is None:
        return record, ""
    if match.state == "live":
        return dataclasses.replace(record, waived=match.why()), ""
    _add(item, None, EXPIRED, match.expired())
    return record, f" ({match.expired()})"


def _add(item: pytest.Item, report: pytest.TestReport | None, key: str, value: str) -> None:
    """A user property on the item (JUnit writes the item's) and the report, once each."""
    for props in (item.user_properties, *([report.user_properties] if report else [])):
        if (key, value) not in props:
            props.append((key, value))


# tryfirst, and registered after opscheck.outage (opscheck.plugin's pytest_plugins): this wrapper
# is outside outage's, so a failure it marks not run is one this sees, as failed.
@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    waivers = _waivers(item.config)
    if waivers is None or call.when != "call":
        return report
    records = records_of(report.user_properties)
    problems = [r for r in records if r.verdict in _PROBLEMS]
    if report.passed and problems and all(r.waived for r in problems):
        _add(item, report, WAIVED, "; ".join(dict.fromkeys(r.waived for r in problems)))
    elif report.failed and all(r.waived for r in problems):  # no record explains it
        _whole(waivers, item, report)
    return report


def _whole(waivers: Waivers, item: pytest.Item, report: pytest.TestReport) -> None:
    """A failure no record explains (the target down, a check not run, a probe error): a
    waiver of the whole check (``*`` or its check id, no subject) for the target accepts it."""
    target = plugin.target_of(item)
    match = waivers.pick(target, plugin.check_id(item), None) if target else None
    if match is None:
        return
    if match.state == "expired":
        _add(item, report, EXPIRED, match.expired())
        if isinstance(report.longrepr, ExceptionRepr):  # shown under the failure, and in its text
            report.longrepr.addsection("waiver", match.expired())
        return
    failure = report.longreprtext.strip().splitlines()
    report.outcome = "passed"
    report.longrepr = None
    _add(item, report, WAIVED, match.why())
    if failure:
        _add(item, report, WAIVED_FAILURE, failure[0])


def summary(config: pytest.Config) -> list[dict[str, Any]]:
    """Every waiver with its status after the run (applied, expired, unused, stale or
    not_checked) and its ``note``: the terminal's words for it ("" when applied)."""
    waivers = _waivers(config)
    if waivers is None:
        return []
    return [
        {
            "check": w.check,
            "target": w.target,
            "subject": w.subject,
            "reason": w.reason,
            "owner": w.owner,
            "expires": shown_when(w.expires),
            "status": waivers.status(index),
            "note": waivers.note(index),
        }
        for index, w in enumerate(waivers.entries)
    ]


def advice(config: pytest.Config) -> list[str]:
    """One line per waiver to act on (expired, unused, stale; not not_checked), saying why:
    what the terminal shows after the run."""
    waivers = _waivers(config)
    if waivers is None:
        return []
    return [text for i in range(len(waivers.entries)) if (text := waivers.advice(i))]
