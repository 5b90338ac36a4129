"""opscheck's command-line options, loaded by pytest before it reads any file.

Registered as a ``pytest11`` entry point (``pip install -e .``), so pytest knows ``--inventory
PATH`` while it parses the command line: without it, pytest takes ``PATH`` for a test path, roots
the run there and never finds opscheck's pytest.ini. A plain ``pytest`` run that is plainly an
opscheck run (an opscheck option or ``$OPSCHECK_INVENTORY`` given, or an ``inventory.toml`` in a
folder without a pytest configuration of its own) but was rooted elsewhere is run again with
opscheck's checkout as its root, exactly as the ``opscheck`` command runs it. Nothing else
happens in other projects' runs.
"""

from __future__ import annotations

import os

import pytest

_OPTIONS = (
    "inventory",
    "thresholds",
    "reports_dir",
    "json_report",
    "archive",
    "fail_on_warn",
    "shard",
    "run_id",
    "pushgateway",
    "textfile",
    "waivers",
    "recheck",
    "nagios",
    "junit_warnings",
    "no_notify",
)


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
        help="limits (default: $OPSCHECK_THRESHOLDS, else ./thresholds.toml when present)",
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
    group.addoption(
        "--shard",
        metavar="I/N",
        help="check only shard I of N (0 <= I < N) of the targets, for N runners of one run "
        "(default: $OPSCHECK_SHARD, else $JOB_COMPLETION_INDEX of $OPSCHECK_SHARD_COUNT); "
        "opscheck-merge joins their reports",
    )
    group.addoption(
        "--run-id",
        metavar="ID",
        help="the same on every shard of one run, recorded in its reports "
        "(default: $OPSCHECK_RUN_ID)",
    )
    group.addoption(
        "--concurrency",
        metavar="N",
        type=int,
        default=16,
        dest="measure_workers",
        help="checks measured at once, ahead of their tests (default 16; 1: one at a time)",
    )
    group.addoption(
        "--concurrency-per-target",
        metavar="N",
        type=int,
        default=4,
        dest="measure_per_target",
        help="checks of one target measured at once, over its one connection (default 4)",
    )
    group.addoption(
        "--pushgateway",
        metavar="URL",
        help="after the run, push its results as metrics to this Prometheus Pushgateway "
        "(default: [settings] pushgateway; auth: $OPSCHECK_PUSHGATEWAY_TOKEN, or "
        "$OPSCHECK_PUSHGATEWAY_USERNAME and $OPSCHECK_PUSHGATEWAY_PASSWORD)",
    )
    group.addoption(
        "--textfile",
        metavar="PATH",
        help="after the run, write its results as metrics to PATH (*.prom, for node_exporter's "
        "textfile collector), atomically",
    )
    group.addoption(
        "--waivers",
        metavar="PATH",
        help="accepted problems with an expiry (default: $OPSCHECK_WAIVERS, else ./waivers.toml "
        "when present)",
    )
    group.addoption(
        "--recheck",
        action="store_true",
        default=None,
        help="measure a CRIT again once after a short delay; one that then passes is FLAKY "
        "(default: [settings.recheck] enabled)",
    )
    # --nagios: added by opscheck.nagios (pytest-testinfra's plugin has one of that name too).
    group.addoption(
        "--junit-warnings",
        action="store_true",
        help="add one JUnit test case listing the run's WARN, FLAKY and WAIVED checks (it "
        "fails only with --fail-on-warn)",
    )
    group.addoption(
        "--no-notify",
        action="store_true",
        help="send no notification and no heartbeat ([settings.notify], [settings.heartbeat]) "
        "for this run",
    )


def _is_opscheck_run(config: pytest.Config) -> bool:
    if any(config.getoption(name, None) for name in _OPTIONS) or os.environ.get(
        "OPSCHECK_INVENTORY"
    ):
        return True
    here = config.invocation_params.dir
    return config.inipath is None and (here / "inventory.toml").is_file()


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """Re-run a misrooted opscheck run from opscheck's checkout (see the module docstring)."""
    if hasattr(config, "workerinput"):
        return None  # an xdist worker: its controller chose the root
    from opscheck import cli

    ini = cli.checkout_ini()
    if ini is None or config.inipath == ini or not _is_opscheck_run(config):
        return None
    return cli.run(list(config.invocation_params.args), rerun=True)
