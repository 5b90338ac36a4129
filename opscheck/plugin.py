"""The pytest plugin: options, config loading, target parametrization, verdicts in the run."""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from opscheck import config as cfg
from opscheck import measure, redaction
from opscheck.checks import CATEGORIES, SCHEDULES
from opscheck.judge import RECORD, Limits, ProbeError, Record
from opscheck.probes import NotApplicable
from opscheck.session import Run, TargetDown

# The fixtures that hand tests their targets, one module per component (in the checkout).
pytest_plugins = [
    "fixtures.host",
    "fixtures.http",
    "fixtures.postgres",
    "fixtures.redis",
    "fixtures.sqlite",
    "fixtures.logs",
    "fixtures.backup",
    "fixtures.alertmanager",
    "fixtures.prometheus",
    "fixtures.metrics",
    "fixtures.docker",
    "fixtures.kubernetes",
    "fixtures.websocket",
    "fixtures.growth",
    "opscheck.shard",  # --shard I/N: this runner's slice of the targets
    "opscheck.xdist_target",  # -n N: a target's tests on one worker
    "opscheck.outage",  # a mass outage: one line per unreachable target, printed in seconds
    "opscheck.export",  # --pushgateway, --textfile: the results as Prometheus metrics
    "opscheck.waivers",  # waivers.toml: accepted problems, each with an expiry
    "opscheck.recheck",  # --recheck: a CRIT measured again; one that then passes is FLAKY
    "opscheck.notify",  # [settings.notify]: Slack, webhook, e-mail at the end of a run
    "opscheck.heartbeat",  # [settings.heartbeat]: start/success/fail pings to a dead-man's switch
    "opscheck.nagios",  # --nagios: one plugin line and the plugin exit code
    "opscheck.junit",  # JUnit: one-line failure messages, --junit-warnings
]

CONFIG_KEY = pytest.StashKey[cfg.Config]()
RUN_KEY = pytest.StashKey[Run]()
TOLD_KEY = pytest.StashKey[set[str]]()  # targets down whose real error a failure has given
RUNS_KEY = pytest.StashKey[set[tuple[str, str | None]]]()


def _config_path(config: pytest.Config, option: str, env: str, default: str) -> Path | None:
    """The file given by ``--option`` or ``$ENV``, else ``./default`` where pytest was run."""
    given = config.getoption(option) or os.environ.get(env)
    source = f"--{option}" if config.getoption(option) else f"${env}"
    path = Path(given) if given else config.invocation_params.dir / default
    if path.is_dir():
        raise pytest.UsageError(
            f"{source if given else default}: {path} is a directory, not a file"
        )
    if given and not path.is_file():
        raise pytest.UsageError(f"{source}: {given}: no such file")
    return path if path.is_file() else None


def _nothing_to_check(loaded: cfg.Config, config: pytest.Config) -> str | None:
    """Why this run would check nothing, if it would: a green run must have checked something."""
    if loaded.inventory_path is None:
        here = config.invocation_params.dir
        return (
            f"no inventory: {here / 'inventory.toml'} does not exist; give --inventory PATH "
            "or set $OPSCHECK_INVENTORY (README: The inventory)"
        )
    if not any(loaded.targets(component) for component in cfg.COMPONENTS):
        return (
            f"{loaded.inventory_path}: no target to check: add at least one "
            f"{', '.join(f'[[{c}]]' for c in cfg.COMPONENTS)} table (README: The inventory)"
        )
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    inventory = _config_path(config, "inventory", "OPSCHECK_INVENTORY", "inventory.toml")
    thresholds = _config_path(config, "thresholds", "OPSCHECK_THRESHOLDS", "thresholds.toml")
    try:
        loaded = cfg.load(inventory, thresholds, _suite_check_ids(config))
    except cfg.ConfigError as exc:
        raise pytest.UsageError(redaction.redact(str(exc))) from None
    redaction.register(loaded.secrets)  # before anything can print one
    for name in loaded.schedules:
        if name not in SCHEDULES:  # custom ([settings] schedules): a marker like the built-ins
            config.addinivalue_line("markers", f"{name}: schedule declared in the inventory")
    empty = _nothing_to_check(loaded, config)
    if empty:
        raise pytest.UsageError(empty)
    if config.args_source is pytest.Config.ArgsSource.INVOCATION_DIR:
        # Run from another folder (the `opscheck` command): the suites, not that folder.
        config.args = [str(config.rootpath / p) for p in config.getini("testpaths")]
    config.stash[CONFIG_KEY] = loaded
    config.stash[RUN_KEY] = Run(loaded)
    from opscheck import report

    config.pluginmanager.register(report.Reporter(config, loaded), "opscheck-reporter")


def _suite_check_ids(config: pytest.Config) -> set[str]:
    """The check ids of the suites, read from their source: ``[settings.schedule]`` is validated
    at start-up, before collection (which xdist runs only in the workers, too late to stop)."""
    ids = set()
    for folder in config.getini("testpaths"):
        for module in (config.rootpath / folder).glob("*/test_*.py"):
            if module.parent.name in cfg.COMPONENTS:
                for name in re.findall(r"^(?:async )?def test_(\w+)", module.read_text(), re.M):
                    ids.add(f"{module.parent.name}.{name}")
    return ids


def pytest_unconfigure(config: pytest.Config) -> None:
    measure.stop(config)
    if RUN_KEY in config.stash:
        config.stash[RUN_KEY].close()
    if CONFIG_KEY in config.stash:
        redaction.unregister(config.stash[CONFIG_KEY].secrets)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config) -> Generator[None, None, None]:
    """``sys.stdout`` and ``sys.stderr`` redact, from before pytest's capture starts: it keeps
    them as the streams it restores between tests, so what a library or a measuring thread
    prints outside a test's capture passes the redaction layer too. Put back at the very end
    (the capture's clean-up, registered after this one, runs first)."""
    streams = sys.stdout, sys.stderr
    early_config.add_cleanup(lambda: _restore(*streams))
    if not isinstance(sys.stdout, redaction.RedactingStream):
        sys.stdout = redaction.RedactingStream(sys.stdout)
    if not isinstance(sys.stderr, redaction.RedactingStream):
        sys.stderr = redaction.RedactingStream(sys.stderr)
    return (yield)


def _restore(stdout: Any, stderr: Any) -> None:
    sys.stdout, sys.stderr = stdout, stderr


def pytest_plugin_registered(plugin: object, plugin_name: str) -> None:
    """Every line the terminal writes passes the redaction layer, from the first one on: what
    reports carry is redacted already (``pytest_runtest_logreport``), this also covers the rest
    (warnings, live logs, internal errors, other plugins' summary lines)."""
    if plugin_name == "terminalreporter" and isinstance(plugin, pytest.TerminalReporter):
        writer = plugin.config.get_terminal_writer()
        writer.write = redaction.redacting(writer.write)  # type: ignore[method-assign]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    loaded = metafunc.config.stash[CONFIG_KEY]
    for component in cfg.COMPONENTS:
        argname = f"{component}_target"
        if argname not in metafunc.fixturenames:
            continue
        targets = loaded.targets(component)
        source = loaded.inventory_path.name if loaded.inventory_path else "no inventory file"
        reason = f"no [[{component}]] target in {source}"
        # A check that needs a setting (services, json, samples ...) runs only for the targets
        # that have it, instead of reporting a skip per target that does not.
        each = metafunc.definition.get_closest_marker("for_each")  # implies applies_to(setting)
        for mark in [*metafunc.definition.iter_markers("applies_to"), *([each] if each else [])]:
            setting, what = mark.args[0], mark.kwargs.get("what", f"sets {mark.args[0]}")
            kept = [t for t in targets if getattr(t, setting)]
            if targets and not kept:
                reason = f"no [[{component}]] target in {source} {what}"
            targets = kept
        if each is not None:
            _parametrize_each(metafunc, argname, targets, reason, *each.args)
        elif targets:
            metafunc.parametrize(argname, targets, ids=[t.name for t in targets])
        else:
            skipped = pytest.param(None, marks=pytest.mark.skip(reason=reason))
            metafunc.parametrize(argname, [skipped], ids=["-"])


def _parametrize_each(
    metafunc: pytest.Metafunc, argname: str, targets: list[Any], reason: str, setting: str, as_: str
) -> None:
    """``for_each(setting, as_)``: one test per entry of each target's list ``setting`` (its SQL
    queries, its queues ...), handed to the test as ``as_``, with the id ``<target>/<entry>``."""
    pairs = [(t, e) for t in targets for e in getattr(t, setting)]
    if pairs:
        ids = [f"{t.name}/{getattr(e, 'name', None) or getattr(e, 'key', e)}" for t, e in pairs]
        metafunc.parametrize([argname, as_], pairs, ids=ids)
    else:
        skipped = pytest.param(None, None, marks=pytest.mark.skip(reason=reason))
        metafunc.parametrize([argname, as_], [skipped], ids=["-"])


def check_id(item: pytest.Item) -> str | None:
    """``<component>.<test name without test_>``, the name ``[settings.schedule]`` uses.

    ``None`` for tests that are not opscheck checks (no component marker).
    """
    component = next((c for c in cfg.COMPONENTS if item.get_closest_marker(c)), None)
    name = getattr(item, "originalname", item.name)
    return f"{component}.{name.removeprefix('test_')}" if component else None


def _target(item: pytest.Item) -> cfg.Target | None:
    """The inventory target a test runs for (its ``<component>_target`` parameter), if any."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return next((t for c in cfg.COMPONENTS if (t := params.get(f"{c}_target")) is not None), None)


def _target_key(item: pytest.Item) -> tuple[str, str] | None:
    """(component, name) of the item's target, if it has one."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    for component in cfg.COMPONENTS:
        target = params.get(f"{component}_target")
        if target is not None:
            return component, str(target.name)
    return None


def target_of(item: pytest.Item) -> str | None:
    target = _target(item)
    return None if target is None else str(target.name)


def _selected(cid: str, target: cfg.Target | None, settings: cfg.Settings) -> bool:
    """Whether the inventory's ``skip``/``checks`` lists keep this check for this target."""
    if cid in settings.skip:
        return False
    if target is None:
        return True
    return cid not in target.skip and (not target.checks or cid in target.checks)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Before ``-m`` selects: drop the checks the inventory switches off, give each check its
    schedules (its own, moved by ``[settings.schedule]``, or its target's ``schedules``), and
    label every check for the reports."""
    loaded = config.stash[CONFIG_KEY]
    settings = loaded.inventory.settings
    schedules = loaded.schedules
    kept, off, chosen = [], [], {}
    for item in items:
        cid = check_id(item)
        if cid is None:
            kept.append(item)
            continue
        target = _target(item)
        if not _selected(cid, target, settings):
            off.append(item)
            continue
        kept.append(item)
        own = [s for s in schedules if item.get_closest_marker(s)]
        moved = settings.schedule.get(cid, own)
        chosen[item] = (target and target.schedules) or moved
    # Schedule marks may sit on the module (pytestmark): -m sees every parent's marks, so they
    # move onto each check, where they can differ per target.
    for item in chosen:
        for node in item.listchain():
            node.own_markers[:] = [m for m in node.own_markers if m.name not in schedules]
    for item, names in chosen.items():
        for name in names:
            item.add_marker(name)
        marks = {m.name for m in item.iter_markers()}
        item.user_properties.extend(
            [
                ("check_id", check_id(item)),
                ("target", target_of(item) or ""),
                ("schedule", " ".join(names)),
                ("category", " ".join(c for c in CATEGORIES if c in marks)),
            ]
        )
    if off:
        config.hook.pytest_deselected(items=off)
        items[:] = kept


@pytest.fixture(scope="session")
def opscheck_run(pytestconfig: pytest.Config) -> Run:
    """The run's shared state: validated config and one cached connection per target."""
    return pytestconfig.stash[RUN_KEY]


@pytest.fixture
def limits(request: pytest.FixtureRequest, opscheck_run: Run) -> Limits:
    """Judge measurements of this test's target and record them on its report."""
    return Limits(
        opscheck_run.config,
        request.node,
        target_of(request.node),
        bool(request.config.getoption("fail_on_warn")),
    )


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> None:
    """Start measuring every collected check at once (opscheck.measure); pytest then runs the
    tests in order, each judging its value as it arrives."""
    if session.config.option.collectonly or session.testsfailed:
        return
    measure.start(session.config, session.config.stash[RUN_KEY], session.items)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """A check measured ahead judges what was measured instead of running again."""
    return True if measure.call(pyfuncitem) else None


def _checks_run(session: pytest.Session) -> set[tuple[str, str | None]]:
    """(test function, target) of every test of the run, worked out once."""
    if RUNS_KEY not in session.stash:
        session.stash[RUNS_KEY] = {
            (getattr(i, "originalname", i.name), target_of(i)) for i in session.items
        }
    return session.stash[RUNS_KEY]


def _down(item: pytest.Item, down: TargetDown) -> str:
    """The failure line of a check whose target is down. Its connectivity check gives the real
    error and the others point to it; when that check is not in the run (``-k``, one suite),
    the first of them in the run gives the real error instead."""
    if down.lost:  # the check that noticed gives the error, by its id; the others point to it
        return down.message(item.name)
    name = getattr(item, "originalname", item.name)
    told = item.config.stash.setdefault(TOLD_KEY, set())
    first = name != down.connectivity_test and down.name not in told
    if first and (down.connectivity_test, down.name) not in _checks_run(item.session):
        name = down.connectivity_test
    told.add(down.name)
    return down.message(name)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A probe that cannot measure fails its test with its one-line reason, no traceback; one
    that finds nothing to measure (no replica, AOF off) skips it with the reason."""
    try:
        try:
            return (yield)
        except Exception as exc:  # measured here (not ahead): did its target stop answering?
            key = _target_key(item)
            if key is None:
                raise
            noticed = item.config.stash[RUN_KEY].noticed(key, item.name, exc)
            if noticed is exc:
                raise
            raise noticed from None
    except TargetDown as down:
        raise pytest.fail.Exception(_down(item, down), pytrace=False) from None
    except (ProbeError, NotApplicable) as exc:
        target = target_of(item)
        message = f"{target}: {exc}" if target else str(exc)
        if isinstance(exc, NotApplicable):
            # Reported at the test, as a skip mark is (not at this line of the plugin).
            raise pytest.skip.Exception(message, _use_item_location=True) from None
        raise pytest.fail.Exception(message, pytrace=False) from None  # no chained traceback


# What identifies a report, as pytest, xdist and the reports match them: not redacted.
_IDENTITY = frozenset(("nodeid", "location", "keywords", "when", "outcome", "result"))


def _redact_report(report: pytest.TestReport | pytest.CollectReport) -> None:
    """Every text a report carries, redacted: the failure with its traceback (pytest's display
    of the arguments and locals included), the skip reason, captured output and logs, recorded
    properties (a record's fields, its JSON kept valid), what other plugins attach (extras)."""
    for key, value in list(vars(report).items()):
        if key == "user_properties" and isinstance(report, pytest.TestReport):
            report.user_properties = [(k, _redact_property(k, v)) for k, v in value]
        elif key not in _IDENTITY:
            setattr(report, key, redaction.scrub(value))


def _redact_property(key: str, value: Any) -> Any:
    clean = redaction.scrub(value)
    if key == RECORD and clean != value:  # the record's fields, not its JSON text
        clean = redaction.scrub(Record.from_json(value)).to_json()
    return clean


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep secrets out of every test report before anything reads it: the terminal, JUnit,
    pytest-html, the JSON report and archive, xdist's controller. (``makereport`` is too
    early: wrappers around it still add to the report.)"""
    _redact_report(report)


@pytest.hookimpl(tryfirst=True)
def pytest_collectreport(report: pytest.CollectReport) -> None:
    """A collection error's traceback, redacted before it is shown or written."""
    _redact_report(report)


@pytest.hookimpl(tryfirst=True)
def pytest_warning_recorded(warning_message: warnings.WarningMessage) -> None:
    """A warning's text, redacted before the warnings summary (or, under xdist, the controller,
    which does not know the secrets a worker added) gets it."""
    text = str(warning_message.message)
    clean = redaction.redact(text)
    if clean != text:
        warning_message.message = UserWarning(clean)  # its category stays the warning's own


def verdict_of(report: pytest.TestReport) -> str | None:
    """The worst verdict recorded on a report, if the test judged anything."""
    verdicts = [v for k, v in report.user_properties if k == "verdict"]
    for name in ("CRIT", "WARN", "OK"):
        if name in verdicts:
            return name
    return None


def pytest_report_teststatus(report: pytest.TestReport, config: pytest.Config) -> Any:
    if report.when == "call" and report.passed and verdict_of(report) == "WARN":
        return "warned", "W", ("WARN", {"yellow": True})
    return None
