"""The pytest plugin: options, config loading, target parametrization, verdicts in the run."""

from __future__ import annotations

import os
import re
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from opscheck import config as cfg
from opscheck.checks import CATEGORIES, SCHEDULES
from opscheck.judge import Limits, ProbeError
from opscheck.session import Run

CONFIG_KEY = pytest.StashKey[cfg.Config]()
RUN_KEY = pytest.StashKey[Run]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("opscheck", "opscheck operations checks")
    group.addoption(
        "--inventory",
        metavar="PATH",
        help="targets to check (default: $OPSCHECK_INVENTORY, else ./inventory.toml)",
    )
    group.addoption(
        "--thresholds",
        metavar="PATH",
        help="limits (default: $OPSCHECK_THRESHOLDS, else ./thresholds.toml)",
    )
    group.addoption(
        "--fail-on-warn",
        action="store_true",
        help="a WARN verdict fails the test (default: it passes and is reported)",
    )
    group.addoption(
        "--archive",
        action="store_true",
        help="write HTML, JUnit and JSON reports to REPORTS_DIR/YYYY-MM-DD/",
    )
    group.addoption(
        "--reports-dir",
        metavar="DIR",
        default=None,
        help="where --archive writes (default: $OPSCHECK_REPORTS_DIR, else ./reports)",
    )
    group.addoption("--json-report", metavar="PATH", help="also write the results as JSON here")


def _config_path(config: pytest.Config, option: str, env: str, default: str) -> Path | None:
    given = config.getoption(option) or os.environ.get(env)
    if given:
        path = Path(given)
        if not path.is_file():
            source = f"--{option}" if config.getoption(option) else f"${env}"
            raise pytest.UsageError(f"{source}: {given}: no such file")
        return path
    path = config.rootpath / default
    return path if path.is_file() else None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    inventory = _config_path(config, "inventory", "OPSCHECK_INVENTORY", "inventory.toml")
    thresholds = _config_path(config, "thresholds", "OPSCHECK_THRESHOLDS", "thresholds.toml")
    try:
        loaded = cfg.load(inventory, thresholds)
        if loaded.inventory.settings.schedule:
            cfg.check_schedule(loaded, _suite_check_ids(config))
    except cfg.ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None
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
    if RUN_KEY in config.stash:
        config.stash[RUN_KEY].close()


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


def target_of(item: pytest.Item) -> str | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for component in cfg.COMPONENTS:
        target = params.get(f"{component}_target")
        if target is not None:
            return str(target.name)
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Apply ``[settings.schedule]`` before ``-m`` selects, and label every check."""
    moves = config.stash[CONFIG_KEY].inventory.settings.schedule
    for item in items:
        cid = check_id(item)
        if cid is None:
            continue
        if cid in moves:
            item.own_markers[:] = [m for m in item.own_markers if m.name not in SCHEDULES]
            for schedule in moves[cid]:
                item.add_marker(schedule)
        marks = {m.name for m in item.iter_markers()}
        item.user_properties.extend(
            [
                ("check_id", cid),
                ("target", target_of(item) or ""),
                ("schedule", " ".join(s for s in SCHEDULES if s in marks)),
                ("category", " ".join(c for c in CATEGORIES if c in marks)),
            ]
        )


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


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """A probe that cannot measure fails its test with its one-line reason, no traceback."""
    try:
        return (yield)
    except ProbeError as exc:
        target = target_of(item)
        message = f"{target}: {exc}" if target else str(exc)
        raise pytest.fail.Exception(message, pytrace=False) from None  # no chained traceback


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[Any]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Keep secrets out of every report: failure text, skip reason and recorded properties."""
    report = yield
    secrets = item.config.stash[CONFIG_KEY].secrets
    if not secrets:
        return report
    if isinstance(report.longrepr, tuple):  # a skip: (path, line, reason)
        path, line, reason = report.longrepr
        report.longrepr = (path, line, cfg.redact(reason, secrets))
    elif report.longrepr is not None:
        text = str(report.longrepr)
        clean = cfg.redact(text, secrets)
        if clean != text:
            report.longrepr = clean
    report.user_properties = [
        (k, cfg.redact(v, secrets) if isinstance(v, str) else v) for k, v in report.user_properties
    ]
    report.sections = [(k, cfg.redact(v, secrets)) for k, v in report.sections]
    return report


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
