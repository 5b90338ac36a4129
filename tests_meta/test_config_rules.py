"""Configuration rules beyond one key: every problem of both files reported at once, levels that
can never fire refused after layering, and which checks and runs each target takes part in."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from opscheck import config as cfg
from opscheck.checks import SCHEDULES

REPO = Path(__file__).resolve().parents[1]
HOST = '[[host]]\nname = "web1"\n'


def check_ids() -> set[str]:
    """The check ids of the suites, as the plugin reads them at start-up."""
    return {
        f"{module.parent.name}.{name}"
        for module in (REPO / "suites").glob("*/test_*.py")
        for name in re.findall(r"^(?:async )?def test_(\w+)", module.read_text(), re.M)
    }


def load(tmp_path: Path, inventory: str, thresholds: str = "", ids: bool = True) -> cfg.Config:
    (tmp_path / "inventory.toml").write_text(textwrap.dedent(inventory))
    (tmp_path / "thresholds.toml").write_text(textwrap.dedent(thresholds))
    return cfg.load(
        tmp_path / "inventory.toml", tmp_path / "thresholds.toml", check_ids() if ids else None
    )


def problems(tmp_path: Path, inventory: str, thresholds: str = "") -> list[str]:
    with pytest.raises(cfg.ConfigError) as raised:
        load(tmp_path, inventory, thresholds)
    assert str(raised.value) == "\n".join(raised.value.lines)
    return raised.value.lines


# -- every problem at once ----------------------------------------------------------------------

SEVERAL_INVENTORY = """\
[settings]
timeout = "5 sec"
schedules = ["morning"]

[[host]]
name = "web1"
sudo = "yes"
service = ["nginx"]

[[host]]
name = "web1"

[[http]]
name = "api"
url = "ftp://api.internal/health"
samples = -1
headers = { Authorization = "Bearer ${OPSCHECK_TEST_UNSET}" }

[[redis]]
name = "cache"
queues = [{ key = "emails", warn = 1000, crit = 100 }]

[[logs]]
name = "app"
path = "/var/log/app.log"
host = "web2"
"""
SEVERAL_THRESHOLDS = """\
[host.disk_used_pct]
crit = "800%"

[host.services]
warn = 1

[http.cert_days]
warn = 7
crit = 14

[http.latency_avg.targets.apl]
crit = "2s"

[hosts.disk_used_pct]
crit = "80%"
"""
SEVERAL_LINES = [
    "inventory.toml: http[0].headers.Authorization: environment variable OPSCHECK_TEST_UNSET "
    "is not set",
    "inventory.toml: settings.timeout: expected a duration such as '500ms', '5s', '26h' or '7d', "
    "got '5 sec' (unknown unit 'sec'; known: ms, s, m, min, h, d, w)",
    "inventory.toml: settings.schedules[0]: expected a new schedule name, got 'morning' "
    "(a built-in schedule)",
    "inventory.toml: host[0].sudo: expected true or false, got 'yes'",
    "inventory.toml: host[0].service: unknown key (did you mean 'services'?)",
    "inventory.toml: http[0].url: expected an http:// or https:// URL, "
    "got 'ftp://api.internal/health'",
    "inventory.toml: http[0].samples: expected a number >= 0, got -1",
    "inventory.toml: logs[0].host: no [[host]] target named 'web2' (known: web1)",
    "thresholds.toml: hosts: unknown component (did you mean 'host'? "
    "known: host, http, postgres, redis, sqlite, logs, backup, prometheus, alertmanager, "
    "metrics, docker, kubernetes, websocket, growth)",
    "thresholds.toml: http.latency_avg.targets.apl: no http target named 'apl' in "
    "inventory.toml (did you mean 'api'?)",
    "thresholds.toml: host.disk_used_pct.crit: 800 % can never be reached: "
    "host.disk_used_pct is a share of capacity (0-100 %)",
    "thresholds.toml: host.services: host.services is a yes/no check: it takes no warn/crit",
    "thresholds.toml: http.cert_days: warn 7 days is below crit 14 days: warn must be above "
    'crit (direction "below": lower is worse)',
    "inventory.toml: redis[0].queues[0]: warn 1000 is above crit 100: warn must be below crit",
]


def test_every_problem_of_both_files_at_once(tmp_path, monkeypatch):
    monkeypatch.delenv("OPSCHECK_TEST_UNSET", raising=False)
    assert problems(tmp_path, SEVERAL_INVENTORY, SEVERAL_THRESHOLDS) == SEVERAL_LINES


def test_every_problem_stops_the_run_at_once(suite, monkeypatch):
    """As the operator sees them: exit code 4, nothing run, one line per problem."""
    monkeypatch.delenv("OPSCHECK_TEST_UNSET", raising=False)
    result = suite.run(SEVERAL_INVENTORY, SEVERAL_THRESHOLDS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stdout.str() == ""
    shown = [line.removeprefix("ERROR: ") for line in result.stderr.lines if line.strip()]
    assert shown == SEVERAL_LINES


def test_each_target_is_checked_even_when_another_is_wrong(tmp_path):
    """A mistake in one target leaves the others validated: their own mistakes show too."""
    inventory = HOST + 'sudo = "yes"\n[[host]]\nname = "web1"\n[[host]]\nname = "web1"\n'
    assert problems(tmp_path, inventory) == [
        "inventory.toml: host[0].sudo: expected true or false, got 'yes'",
        "inventory.toml: host[2].name: duplicate target name 'web1' (also host[1])",
    ]


def test_check_selection_problems_join_the_others(tmp_path):
    inventory = (
        '[settings]\nskip = ["host.cpu_busy"]\n' + HOST + 'skip = ["http.status_expected"]\n'
    )
    assert problems(tmp_path, inventory, "[host.uptime]\nwarn = -1\n") == [
        "inventory.toml: settings.skip[0]: no such check (did you mean "
        "'host.cpu_busy_below_limit'?)",
        "inventory.toml: host[0].skip[0]: http.status_expected is a check of [[http]] targets, "
        "not [[host]]",
        "thresholds.toml: host.uptime.warn: expected a duration such as '500ms', '5s', '26h' or "
        "'7d' (with a unit), got -1",
    ]


def test_unset_variable_is_one_line_not_two(tmp_path, monkeypatch):
    """The ``${VAR}`` left as written is not also reported as a bad URL."""
    monkeypatch.delenv("OPSCHECK_TEST_UNSET", raising=False)
    inventory = '[[http]]\nname = "api"\nurl = "${OPSCHECK_TEST_UNSET}"\n'
    assert problems(tmp_path, inventory) == [
        "inventory.toml: http[0].url: environment variable OPSCHECK_TEST_UNSET is not set"
    ]


def test_secrets_are_redacted_from_every_line(tmp_path, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "s3cr3t-t0ken")
    inventory = (
        '[[http]]\nname = "a"\nurl = "ftp://x/?k=${API_TOKEN}"\n'
        '[[http]]\nname = "b"\nurl = "gopher://${API_TOKEN}"\n'
    )
    lines = problems(tmp_path, inventory)
    assert len(lines) == 2
    assert all("***" in line and "s3cr3t" not in line for line in lines)


# -- levels: accepted --------------------------------------------------------------------------


def test_levels_that_can_fire_are_accepted(tmp_path):
    loaded = load(
        tmp_path,
        HOST
        + """
        [[redis]]
        name = "cache"
        queues = [{ key = "emails", crit = 500 }, { key = "jobs", warn = 10, crit = 10 }]

        [[sqlite]]
        name = "app"
        path = "/app.db"
        tables = { orders = {}, events = { warn = 10000, direction = "above" } }

        [[logs]]
        name = "app"
        path = "/var/log/app.log"
        [[logs.patterns]]
        name = "errors"
        preset = "errors"
        crit = 0
        """,
        """
        [host.disk_used_pct]
        warn = "100%"
        crit = "100%"

        [host.memory_used_pct]
        crit = "50%"
        warn = "40%"

        [http.cert_days]
        warn = 30
        crit = 3

        [redis.queue_depth]
        warn = 400

        [redis.evicted_keys.targets.cache]
        crit = 0
        """,
    )
    disk = loaded.threshold("host.disk_used_pct", "web1")
    assert (disk.warn, disk.crit) == (100, 100)  # a warn equal to crit: no separate warning
    queue = loaded.targets("redis")[0].queues[0]
    assert loaded.threshold("redis.queue_depth", "cache", queue).describe() == (
        "warn > 400, crit > 500"
    )


def test_levels_of_a_share_stay_within_0_and_100(tmp_path):
    assert problems(tmp_path, HOST, '[host.cpu_busy_pct.targets.web1]\nwarn = "101%"\n') == [
        "thresholds.toml: host.cpu_busy_pct.targets.web1.warn: 101 % can never be reached: "
        "host.cpu_busy_pct is a share of capacity (0-100 %)"
    ]


def test_a_conflict_in_the_file_is_reported_once_not_per_target(tmp_path):
    inventory = HOST + '[[host]]\nname = "db1"\n'
    thresholds = (
        '[host.disk_used_pct]\nwarn = "70%"\ncrit = "60%"\n'
        '[host.disk_used_pct.targets.db1]\nwarn = "50%"\n'
    )
    assert problems(tmp_path, inventory, thresholds) == [
        "thresholds.toml: host.disk_used_pct: warn 70 % is above crit 60 %: warn must be below crit"
    ]


def test_a_crit_below_the_default_warn_drops_that_warn(tmp_path):
    """`crit = "60%"` alone: the default warn 70 % could never fire, so it is dropped, not an
    error; a warn you wrote yourself beyond your crit is refused (above)."""
    inventory = HOST + '[[host]]\nname = "db1"\n'
    thresholds = '[host.disk_used_pct.targets.db1]\ncrit = "60%"\n'
    loaded = load(tmp_path, inventory, thresholds)
    dropped = loaded.threshold("host.disk_used_pct", "db1")
    assert (dropped.warn, dropped.crit, dropped.describe()) == (None, 60, "crit > 60.0 %")
    assert loaded.threshold("host.disk_used_pct", "web1").warn == 70


def test_inline_levels_are_judged_after_the_targets_override(tmp_path):
    inventory = '[[redis]]\nname = "cache"\nqueues = [{ key = "emails", warn = 300 }]\n'
    thresholds = "[redis.queue_depth.targets.cache]\ncrit = 200\n"
    assert problems(tmp_path, inventory, thresholds) == [
        "inventory.toml: redis[0].queues[0].warn: warn 300 is above crit 200 (thresholds.toml "
        "redis.queue_depth.targets.cache): warn must be below crit"
    ]


# -- schedules and check selection -------------------------------------------------------------

SELECTION = """\
[settings]
schedules = ["every-2h", "nightly_batch"]
skip = ["host.cpu_busy_below_limit"]

[settings.schedule]
"host.disk_used_below_limit" = ["every-2h", "evening"]

[[host]]
name = "web1"
schedules = ["every-2h"]
skip = ["host.load_per_core_below_limit"]

[[http]]
name = "api"
url = "http://127.0.0.1:1/health"
checks = ["http.status_expected", "http.latency_p95_below_limit"]
schedules = ["morning", "nightly_batch"]
"""


def test_schedules_and_check_selection_are_accepted(tmp_path):
    loaded = load(tmp_path, SELECTION)
    assert loaded.schedules == (*SCHEDULES, "every-2h", "nightly_batch")
    settings = loaded.inventory.settings
    assert settings.skip == ["host.cpu_busy_below_limit"]
    assert settings.schedule["host.disk_used_below_limit"] == ["every-2h", "evening"]
    host, http = loaded.targets("host")[0], loaded.targets("http")[0]
    assert (host.schedules, host.checks, host.skip) == (
        ["every-2h"],
        [],
        ["host.load_per_core_below_limit"],
    )
    assert (http.schedules, http.skip) == (["morning", "nightly_batch"], [])
    assert http.checks == ["http.status_expected", "http.latency_p95_below_limit"]


def test_targets_run_everywhere_by_default(tmp_path):
    loaded = load(tmp_path, HOST)
    assert loaded.schedules == SCHEDULES
    target = loaded.targets("host")[0]
    assert (target.schedules, target.checks, target.skip) == (None, [], [])


def test_check_selection_reports_every_unknown_id(tmp_path):
    """``load`` with the suites' check ids (as the plugin calls it): every id the inventory
    names, checked at once."""
    inventory = SELECTION.replace("host.load_per", "host.loads_per").replace(
        '"http.status_expected"', '"http.status_expect"'
    )
    assert problems(tmp_path, inventory) == [
        "inventory.toml: host[0].skip[0]: no such check (did you mean "
        "'host.load_per_core_below_limit'?)",
        "inventory.toml: http[0].checks[0]: no such check (did you mean 'http.status_expected'?)",
    ]
