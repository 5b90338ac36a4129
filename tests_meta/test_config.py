"""Configuration: every mistake stops the run before any test, with one line naming the file, the
key and what was expected; units, threshold layers and verdicts behave as documented."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from opscheck import config as cfg
from opscheck import plugin, units
from opscheck.checks import CHECKS
from opscheck.judge import Verdict, judge

REPO = Path(__file__).resolve().parents[1]
HOST = '[[host]]\nname = "web1"\n'
HTTP = '[[http]]\nname = "api"\nurl = "http://127.0.0.1:1/health"\n'
REDIS = '[[redis]]\nname = "cache"\n'
# thresholds.toml sets levels of numeric checks only: yes/no checks take none.
HOST_CHECKS = ", ".join(
    sorted(k for k, spec in CHECKS.items() if k.startswith("host.") and spec.kind != "state")
)
BUILT_IN = "'morning', 'midday', 'evening', 'weekly', 'monthly'"


def assert_usage_error(result: pytest.RunResult, message: str) -> None:
    """Exit code 4, nothing run, and exactly ``ERROR: <message>`` on stderr (no traceback)."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stdout.str() == ""  # not even the session header: no test started
    assert result.stderr.str().strip() == f"ERROR: {message}"


# (inventory.toml, thresholds.toml, the one line the operator reads)
BAD_CONFIGS = {
    "unknown key, did you mean": (
        HTTP + "expected_status = [200]\n",
        "",
        "inventory.toml: http[0].expected_status: unknown key (did you mean 'expect_status'?)",
    ),
    "unknown key in a host": (
        HOST + HOST.replace("web1", "web2") + 'service = ["nginx"]\n',
        "",
        "inventory.toml: host[1].service: unknown key (did you mean 'services'?)",
    ),
    "unknown key, known keys": (
        "[settings]\nretries = 3\n",
        "",
        "inventory.toml: settings.retries: unknown key (expected one of: timeout, schedules, "
        "schedule, skip)",
    ),
    "unknown top-level table": (
        '[[hosts]]\nname = "web1"\n',
        "",
        "inventory.toml: hosts: unknown table (did you mean 'host'?)",
    ),
    "wrong type": (
        HTTP + 'samples = "ten"\n',
        "",
        "inventory.toml: http[0].samples: expected an integer, got 'ten'",
    ),
    "no lax coercion of strings": (
        HOST + 'sudo = "yes"\n',
        "",
        "inventory.toml: host[0].sudo: expected true or false, got 'yes'",
    ),
    "negative samples": (
        HTTP + "samples = -1\n",
        "",
        "inventory.toml: http[0].samples: expected a number >= 0, got -1",
    ),
    "unparsable duration": (
        HTTP + 'timeout = "5 sec"\n',
        "",
        "inventory.toml: http[0].timeout: expected a duration such as '500ms', '5s', '26h' or "
        "'7d', got '5 sec' (unknown unit 'sec'; known: ms, s, m, min, h, d, w)",
    ),
    "bare number for a duration": (
        "[settings]\ntimeout = 5\n",
        "",
        "inventory.toml: settings.timeout: expected a duration such as '500ms', '5s', '26h' or "
        "'7d' (with a unit), got 5",
    ),
    "zero duration": (
        HOST + 'cpu_sample = "0s"\n',
        "",
        "inventory.toml: host[0].cpu_sample: expected a duration above zero such as '5s', got '0s'",
    ),
    "union field, list item": (
        HOST + "ports = [22, 1.5]\n",
        "",
        "inventory.toml: host[0].ports[1]: expected an integer or a string, got 1.5",
    ),
    "union field, scalar": (
        HTTP + "verify = 3\n",
        "",
        "inventory.toml: http[0].verify: expected a boolean (true/false) or a string, got 3",
    ),
    "duplicate target names": (
        HOST + HOST,
        "",
        "inventory.toml: host[1].name: duplicate target name 'web1' (also host[0])",
    ),
    "name unusable as a test id": (
        '[[host]]\nname = "web 1"\n',
        "",
        "inventory.toml: host[0].name: expected a name of letters, digits and _ . : @ / - "
        "(it becomes the test id), got 'web 1'",
    ),
    "missing required key": (
        '[[http]]\nname = "api"\n',
        "",
        "inventory.toml: http[0].url: required key is missing",
    ),
    "non-http URL": (
        '[[http]]\nname = "api"\nurl = "ftp://files.example.com/"\n',
        "",
        "inventory.toml: http[0].url: expected an http:// or https:// URL, "
        "got 'ftp://files.example.com/'",
    ),
    "bad testinfra URI": (
        '[[host]]\nname = "web1"\nuri = "web1.example.com"\n',
        "",
        "inventory.toml: host[0].uri: expected a testinfra URI such as 'local://' or "
        "'ssh://user@host', got 'web1.example.com'",
    ),
    "invalid TOML": (
        HOST + 'uri = "local://\n',
        "",
        "inventory.toml: not valid TOML: Illegal character '\\n' (at line 3, column 16)",
    ),
    "bad schedule name": (
        HOST + '[settings.schedule]\n"host.disk_used_below_limit" = ["dayly"]\n',
        "",
        'inventory.toml: settings.schedule."host.disk_used_below_limit"[0]: expected a schedule: '
        f"{BUILT_IN} or one declared in settings.schedules, got 'dayly'",
    ),
    "empty schedule list": (
        HOST + '[settings.schedule]\n"host.disk_used_below_limit" = []\n',
        "",
        'inventory.toml: settings.schedule."host.disk_used_below_limit": expected at least one '
        "schedule (to switch a check off, list it in settings.skip)",
    ),
    "custom schedule named like a built-in one": (
        '[settings]\nschedules = ["every-2h", "morning"]\n' + HOST,
        "",
        "inventory.toml: settings.schedules[1]: expected a new schedule name, got 'morning' "
        "(a built-in schedule)",
    ),
    "custom schedule named like a component": (
        '[settings]\nschedules = ["http"]\n' + HOST,
        "",
        "inventory.toml: settings.schedules[0]: expected a new schedule name, got 'http' "
        "(a component)",
    ),
    "custom schedule named like a category": (
        '[settings]\nschedules = ["security"]\n' + HOST,
        "",
        "inventory.toml: settings.schedules[0]: expected a new schedule name, got 'security' "
        "(a category)",
    ),
    "custom schedule name unusable as a marker": (
        '[settings]\nschedules = ["Every 2h"]\n' + HOST,
        "",
        "inventory.toml: settings.schedules[0]: expected a schedule name of lowercase letters, "
        "digits, - and _ (it becomes a marker: pytest -m NAME), got 'Every 2h'",
    ),
    "custom schedule declared twice": (
        '[settings]\nschedules = ["every-2h", "every-2h"]\n' + HOST,
        "",
        "inventory.toml: settings.schedules: duplicate schedule 'every-2h'",
    ),
    "custom schedule used, not declared": (
        HOST + 'schedules = ["every-2h"]\n',
        "",
        f"inventory.toml: host[0].schedules[0]: expected a schedule: {BUILT_IN} or one declared "
        "in settings.schedules, got 'every-2h'",
    ),
    "custom schedule typo": (
        '[settings]\nschedules = ["every-2h"]\n'
        + HOST
        + '[settings.schedule]\n"host.disk_used_below_limit" = ["every-2hr"]\n',
        "",
        'inventory.toml: settings.schedule."host.disk_used_below_limit"[0]: expected a schedule: '
        f"{BUILT_IN}, 'every-2h' or one declared in settings.schedules, got 'every-2hr' "
        "(did you mean 'every-2h'?)",
    ),
    "target in no schedule": (
        HOST + "schedules = []\n",
        "",
        "inventory.toml: host[0].schedules: expected at least one schedule (to switch the target "
        "off, remove it from the inventory)",
    ),
    "target with checks and skip": (
        HOST + 'checks = ["host.host_reachable"]\nskip = ["host.disk_used_below_limit"]\n',
        "",
        "inventory.toml: host[0]: expected checks (only these run) or skip (all but these), "
        "not both",
    ),
    "target with an empty checks list": (
        HOST + "checks = []\n",
        "",
        "inventory.toml: host[0].checks: expected at least one check id (leave checks out to run "
        "every check of the target)",
    ),
    "unknown check in settings.skip": (
        '[settings]\nskip = ["host.cpu_busy_below_limt"]\n' + HOST,
        "",
        "inventory.toml: settings.skip[0]: no such check "
        "(did you mean 'host.cpu_busy_below_limit'?)",
    ),
    "check skipped twice": (
        '[settings]\nskip = ["host.cpu_busy_below_limit", "host.cpu_busy_below_limit"]\n' + HOST,
        "",
        "inventory.toml: settings.skip: duplicate check id 'host.cpu_busy_below_limit'",
    ),
    "target skips a check of another component": (
        HOST + 'skip = ["http.status_expected"]\n',
        "",
        "inventory.toml: host[0].skip[0]: http.status_expected is a check of [[http]] targets, "
        "not [[host]]",
    ),
    "target checks typo": (
        HTTP + 'checks = ["http.status_expected", "http.latency_p59_below_limit"]\n',
        "",
        "inventory.toml: http[0].checks[1]: no such check "
        "(did you mean 'http.latency_p95_below_limit'?)",
    ),
    "unknown check in schedule": (
        HOST + '[settings.schedule]\n"host.disk_below_limit" = ["weekly"]\n',
        "",
        'inventory.toml: settings.schedule."host.disk_below_limit": no such check '
        "(did you mean 'host.disk_used_below_limit'?)",
    ),
    "json_limits level with a unit": (
        HTTP + '[http.json_limits.queue]\nwarn = "100 items"\n',
        "",
        "inventory.toml: http[0].json_limits.queue.warn: expected a number, got '100 items'",
    ),
    "json_limits key typo": (
        HTTP + "[http.json_limits.queue]\nwran = 100\n",
        "",
        "inventory.toml: http[0].json_limits.queue.wran: unknown key (did you mean 'warn'?)",
    ),
    "bad percent level": (
        HOST,
        '[host.disk_used_pct]\ncrit = "80 percent"\n',
        "thresholds.toml: host.disk_used_pct.crit: expected a percentage such as '80%', "
        "got '80 percent' (unknown unit 'percent'; known: %)",
    ),
    "bad size level": (
        HOST,
        '[host.log_dir_size]\nwarn = "2 gigs"\n',
        "thresholds.toml: host.log_dir_size.warn: expected a size such as '512KB', '10MB', "
        "'2GiB', got '2 gigs' (unknown unit 'gigs'; known: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
    ),
    "negative level": (
        HOST,
        '[host.memory_used_pct]\nwarn = "-5%"\n',
        "thresholds.toml: host.memory_used_pct.warn: expected a percentage such as '80%', "
        "got '-5%' (negative)",
    ),
    "level of the wrong type": (
        HOST,
        "[host.disk_used_pct]\nwarn = [70]\n",
        "thresholds.toml: host.disk_used_pct.warn: expected a string or a number, got [70]",
    ),
    "bad direction": (
        HOST,
        '[host.disk_used_pct]\ndirection = "up"\n',
        "thresholds.toml: host.disk_used_pct.direction: expected 'above' or 'below', got 'up'",
    ),
    "unknown check in thresholds": (
        HOST,
        '[host.disk_usage]\ncrit = "80%"\n',
        f"thresholds.toml: host.disk_usage: unknown check (did you mean 'host.disk_used_pct'? "
        f"known: {HOST_CHECKS})",
    ),
    "unknown component in thresholds": (
        HOST,
        '[hosts.disk_used_pct]\ncrit = "80%"\n',
        "thresholds.toml: hosts: unknown component (did you mean 'host'? "
        "known: host, http, postgres, redis, sqlite, logs, backup)",
    ),
    "check written as a key, not a table": (
        HOST,
        '[host]\ndisk_used_pct = "80%"\n',
        "thresholds.toml: host.disk_used_pct: expected a table such as [host.disk_used_pct] "
        "with warn and crit levels, got '80%'",
    ),
    "override for an unknown target": (
        HOST,
        '[host.disk_used_pct.targets.web2]\ncrit = "90%"\n',
        "thresholds.toml: host.disk_used_pct.targets.web2: no host target named 'web2' in "
        "inventory.toml (did you mean 'web1'?)",
    ),
    "override key typo": (
        HOST,
        '[host.disk_used_pct.targets.web1]\ncrti = "90%"\n',
        "thresholds.toml: host.disk_used_pct.targets.web1.crti: unknown key (did you mean 'crit'?)",
    ),
    "level above 100 % of a capacity": (
        HOST,
        '[host.disk_used_pct]\ncrit = "800%"\n',
        "thresholds.toml: host.disk_used_pct.crit: 800 % can never be reached: "
        "host.disk_used_pct is a share of capacity (0-100 %)",
    ),
    "level above 100 % for a share that looks below": (
        REDIS,
        '[redis.hit_ratio]\nwarn = "150%"\n',
        "thresholds.toml: redis.hit_ratio.warn: 150 % would fire on every value: "
        "redis.hit_ratio is a share of capacity (0-100 %)",
    ),
    "negative level of a count": (
        HOST,
        "[host.load_per_core]\nwarn = -1\n",
        "thresholds.toml: host.load_per_core.warn: -1 would fire on every value: "
        "host.load_per_core is never negative",
    ),
    "negative inline queue level": (
        REDIS + 'queues = [{ key = "emails", warn = -5 }]\n',
        "",
        "inventory.toml: redis[0].queues[0].warn: -5 would fire on every value: "
        "redis.queue_depth is never negative",
    ),
    "negative restore minimum": (
        '[[backup]]\nname = "pg"\npath = "/backups/*.dump"\n'
        '[backup.restore]\ndsn = "host=staging-db"\n'
        '[[backup.restore.queries]]\nname = "orders"\nsql = "SELECT 1"\nmin = -1\n',
        "",
        "inventory.toml: backup[0].restore.queries[0].min: -1 can never be reached: "
        "backup.restore_rows is never negative",
    ),
    "warn above crit": (
        HOST,
        '[host.disk_used_pct]\nwarn = "90%"\ncrit = "80%"\n',
        "thresholds.toml: host.disk_used_pct: warn 90 % is above crit 80 %: "
        "warn must be below crit",
    ),
    "warn below crit where lower is worse": (
        HTTP,
        "[http.cert_days]\nwarn = 7\ncrit = 14\n",
        "thresholds.toml: http.cert_days: warn 7 days is below crit 14 days: warn must be above "
        'crit (direction "below": lower is worse)',
    ),
    "override warn above the file's crit": (
        HOST,
        '[host.disk_used_pct]\ncrit = "85%"\n[host.disk_used_pct.targets.web1]\nwarn = "90%"\n',
        "thresholds.toml: host.disk_used_pct.targets.web1.warn: warn 90 % is above crit 85 % "
        "(host.disk_used_pct): warn must be below crit",
    ),
    "direction flipped under the default levels": (
        HOST,
        '[host.load_per_core]\ndirection = "below"\n',
        "thresholds.toml: host.load_per_core.direction: warn 1 is below crit 2 (the default): "
        'warn must be above crit (direction "below": lower is worse)',
    ),
    "inverted queue levels": (
        REDIS + 'queues = [{ key = "emails", warn = 1000, crit = 100 }]\n',
        "",
        "inventory.toml: redis[0].queues[0]: warn 1000 is above crit 100: warn must be below crit",
    ),
    "inline crit below the thresholds file's warn": (
        REDIS + 'queues = [{ bullmq = "mail", crit = 10 }]\n',
        "[redis.queue_depth]\nwarn = 50\ncrit = 60\n",
        "inventory.toml: redis[0].queues[0].crit: crit 10 is below warn 50 (thresholds.toml "
        "redis.queue_depth): warn must be below crit",
    ),
    "inverted json_limits": (
        HTTP + "[http.json_limits.connections]\nwarn = 90\ncrit = 80\n",
        "",
        "inventory.toml: http[0].json_limits.connections: warn 90 is above crit 80: "
        "warn must be below crit",
    ),
    "inverted user query levels": (
        '[[postgres]]\nname = "main"\ndsn = "host=db"\n'
        '[[postgres.queries]]\nname = "pending"\nsql = "SELECT 1"\nwarn = 100\ncrit = 50\n',
        "",
        "inventory.toml: postgres[0].queries[0]: warn 100 is above crit 50: "
        "warn must be below crit",
    ),
    "inverted table row levels": (
        '[[sqlite]]\nname = "app"\npath = "/app.db"\n'
        "[sqlite.tables.orders]\nwarn = 10\ncrit = 100\n",
        "",
        "inventory.toml: sqlite[0].tables.orders: warn 10 is below crit 100: warn must be above "
        'crit (direction "below": lower is worse)',
    ),
    "inverted log pattern levels": (
        '[[logs]]\nname = "app"\npath = "/var/log/app.log"\n'
        '[[logs.patterns]]\nname = "errors"\npreset = "errors"\nwarn = 50\ncrit = 10\n',
        "",
        "inventory.toml: logs[0].patterns[0]: warn 50 is above crit 10: warn must be below crit",
    ),
    "levels for a yes/no check": (
        HOST,
        "[host.services]\nwarn = 1\n",
        "thresholds.toml: host.services: host.services is a yes/no check: it takes no warn/crit",
    ),
    "override levels for a yes/no check": (
        HTTP,
        "[http.status.targets.api]\ncrit = 1\n",
        "thresholds.toml: http.status.targets.api: http.status is a yes/no check: "
        "it takes no warn/crit",
    ),
    "header variable not set": (
        HTTP + '[http.headers]\nAuthorization = "Bearer ${API_TOKEN}"\n',
        "",
        "inventory.toml: http[0].headers.Authorization: environment variable API_TOKEN is not set",
    ),
}


@pytest.mark.parametrize(
    ("inventory", "thresholds", "message"), BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys()
)
def test_bad_config_stops_the_run(suite, monkeypatch, inventory, thresholds, message):
    monkeypatch.delenv("API_TOKEN", raising=False)
    assert_usage_error(suite.run(inventory, thresholds), message)


def test_secret_value_never_appears_in_an_error(suite, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "s3cr3t-t0ken")
    inventory = '[[http]]\nname = "api"\nurl = "ftp://example.com/?key=${API_TOKEN}"\n'
    result = suite.run(inventory)
    assert_usage_error(
        result,
        "inventory.toml: http[0].url: expected an http:// or https:// URL, "
        "got 'ftp://example.com/?key=***'",
    )


def test_secret_in_a_header_is_accepted(suite, monkeypatch):
    monkeypatch.setenv("API_TOKEN", "s3cr3t-t0ken")
    inventory = HTTP + '[http.headers]\nAuthorization = "Bearer ${API_TOKEN}"\n'
    result = suite.run(inventory, "", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    assert "s3cr3t" not in result.stdout.str() + result.stderr.str()


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    """Run the suites without the ``suite`` fixture's own --inventory and -p no:xdist."""
    ini = ("-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO))
    return pytester.runpytest_inprocess(*ini, *args, str(REPO / "suites"))


def test_missing_inventory_option_file(pytester):
    result = _run(pytester, "-p", "no:xdist", "--inventory", "nowhere.toml")
    assert_usage_error(result, "--inventory: nowhere.toml: no such file")


def test_missing_inventory_from_environment(pytester, monkeypatch):
    monkeypatch.setenv("OPSCHECK_INVENTORY", "/nonexistent/inventory.toml")
    result = _run(pytester, "-p", "no:xdist")
    assert_usage_error(result, "$OPSCHECK_INVENTORY: /nonexistent/inventory.toml: no such file")


def test_missing_thresholds_option_file(pytester):
    result = _run(pytester, "-p", "no:xdist", "--thresholds", "strict.toml")
    assert_usage_error(result, "--thresholds: strict.toml: no such file")


def test_bad_config_under_xdist(pytester):
    """The controller validates before it starts workers: same single line, no INTERNALERROR."""
    inventory, message = BAD_CONFIGS["unknown check in schedule"][::2]
    (pytester.path / "inventory.toml").write_text(inventory)
    result = _run(pytester, "-n", "2", "--inventory", str(pytester.path / "inventory.toml"))
    assert_usage_error(result, message)


def test_schedule_accepts_exactly_the_collected_checks(pytester):
    """``[settings.schedule]`` is checked against ids read from the suites' source at start-up;
    they must be the ids the collected tests carry."""
    (pytester.path / "inventory.toml").write_text(HOST + HTTP)
    ini = ("-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO), "-p", "no:xdist")
    items, _ = pytester.inline_genitems(
        *ini, "--inventory", str(pytester.path / "inventory.toml"), str(REPO / "suites")
    )
    collected = {plugin.check_id(item) for item in items}
    assert collected == plugin._suite_check_ids(items[0].config)


# -- units ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("500ms", "duration", 0.5),
        ("5s", "duration", 5),
        ("2 m", "duration", 120),
        ("10min", "duration", 600),
        ("26h", "duration", 93600),
        ("7d", "duration", 604800),
        ("1w", "duration", 604800),
        ("512KB", "size", 512_000),
        ("10MB", "size", 10_000_000),
        ("2GiB", "size", 2 * 1024**3),
        ("1.5TB", "size", 1.5e12),
        ("100b", "size", 100),
        (4096, "size", 4096),
        ("80%", "percent", 80),
        ("12.5 %", "percent", 12.5),
        (80, "percent", 80),
        (14, "days", 14),
        ("14d", "days", 14),
        (100, "number", 100),
        ("-3", "number", -3),
        (0.5, "number", 0.5),
    ],
)
def test_units_parse(text, kind, value):
    assert units.parse(text, kind) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "kind", "message"),
    [
        (
            "5 sec",
            "duration",
            "expected a duration such as '500ms', '5s', '26h' or '7d', got '5 sec' "
            "(unknown unit 'sec'; known: ms, s, m, min, h, d, w)",
        ),
        (
            5,
            "duration",
            "expected a duration such as '500ms', '5s', '26h' or '7d' (with a unit), got 5",
        ),
        (".5s", "duration", "expected a duration such as '500ms', '5s', '26h' or '7d', got '.5s'"),
        (
            "-5s",
            "duration",
            "expected a duration such as '500ms', '5s', '26h' or '7d', got '-5s' (negative)",
        ),
        (
            "10 megs",
            "size",
            "expected a size such as '512KB', '10MB', '2GiB', got '10 megs' "
            "(unknown unit 'megs'; known: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)",
        ),
        (
            "80 percent",
            "percent",
            "expected a percentage such as '80%', got '80 percent' "
            "(unknown unit 'percent'; known: %)",
        ),
        (True, "percent", "expected a percentage such as '80%', got True"),
        (
            "2w",
            "days",
            "expected a number of days such as 14 or '14d', got '2w' (unknown unit 'w'; known: d)",
        ),
        (
            "100ms",
            "number",
            "expected a number such as 100, got '100ms' (unknown unit 'ms'; write no unit)",
        ),
        (None, "number", "expected a number such as 100, got None"),
        ([80], "percent", "expected a percentage such as '80%', got [80]"),
    ],
)
def test_units_parse_rejects(text, kind, message):
    with pytest.raises(units.UnitError) as error:
        units.parse(text, kind)
    assert str(error.value) == message


@pytest.mark.parametrize(
    ("value", "kind", "text"),
    [
        (0.2345, "duration", "234 ms"),
        (5, "duration", "5.0 s"),
        (600, "duration", "10 min"),
        (93600, "duration", "26.0 h"),
        (604800, "duration", "7.0 d"),
        (512, "size", "512 B"),
        (512_000, "size", "512.0 KB"),
        (10_000_000, "size", "10.0 MB"),
        (24.4e9, "size", "24.4 GB"),
        (2e12, "size", "2.0 TB"),
        (86.04, "percent", "86.0 %"),
        (13.25, "days", "13.2 days"),
        (172, "number", "172"),
        (0.105, "number", "0.105"),
    ],
)
def test_units_format(value, kind, text):
    assert units.format_value(value, kind) == text


# -- thresholds: code default -> thresholds.toml -> per-target override -> inline ------------


def _load(tmp_path: Path, inventory: str, thresholds: str) -> cfg.Config:
    (tmp_path / "inventory.toml").write_text(textwrap.dedent(inventory))
    (tmp_path / "thresholds.toml").write_text(textwrap.dedent(thresholds))
    return cfg.load(tmp_path / "inventory.toml", tmp_path / "thresholds.toml")


def test_threshold_layers(tmp_path):
    loaded = _load(
        tmp_path,
        HOST + '[[host]]\nname = "db1"\n',
        """
        [host.disk_used_pct]
        warn = "60%"

        [host.disk_used_pct.targets.db1]
        crit = "95%"
        """,
    )
    code = loaded.threshold("host.memory_used_pct", "web1")
    assert (code.warn, code.crit, code.direction) == (75, 85, "above")  # opscheck/checks.py
    file = loaded.threshold("host.disk_used_pct", "web1")
    assert (file.warn, file.crit) == (60, 80)  # warn from the file, crit still the code's
    target = loaded.threshold("host.disk_used_pct", "db1")
    assert (target.warn, target.crit) == (60, 95)  # the override changes only what it sets
    inline = loaded.threshold("host.disk_used_pct", "db1", cfg.NumberLimit(crit=99))
    assert (inline.warn, inline.crit) == (60, 99)
    assert inline.describe() == "warn > 60.0 %, crit > 99.0 %"


def test_threshold_direction_and_units(tmp_path):
    loaded = _load(
        tmp_path,
        HOST,
        """
        [host.uptime]
        warn = "2h"
        crit = "10min"

        [host.load_per_core]
        direction = "below"
        warn = 0.5
        crit = 0.1
        """,
    )
    uptime = loaded.threshold("host.uptime", "web1")
    assert (uptime.warn, uptime.crit, uptime.direction) == (7200, 600, "below")
    assert uptime.describe() == "warn < 2.0 h, crit < 10 min"
    load = loaded.threshold("host.load_per_core", "web1")
    assert (load.warn, load.crit, load.direction) == (0.5, 0.1, "below")


def test_json_limits_are_inline_numbers(tmp_path):
    loaded = _load(tmp_path, HTTP + "[http.json_limits.connections]\nwarn = 50\ncrit = 80.5\n", "")
    limit = loaded.inventory.http[0].json_limits["connections"]
    threshold = loaded.threshold("http.json_limits", "api", limit)
    assert (threshold.warn, threshold.crit, threshold.kind) == (50, 80.5, "number")


def test_no_files_means_code_defaults():
    loaded = cfg.load(None, None)
    assert loaded.targets("host") == []
    assert loaded.threshold("http.latency_avg").crit == 0.5


# -- judge --------------------------------------------------------------------------------------


def _threshold(direction: cfg.Direction, warn: float | None, crit: float | None) -> cfg.Threshold:
    return cfg.Threshold("test.value", "number", direction, warn, crit)


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (10, Verdict.OK),
        (70, Verdict.OK),
        (70.1, Verdict.WARN),
        (80, Verdict.WARN),
        (80.1, Verdict.CRIT),
        (1e9, Verdict.CRIT),
    ],
)
def test_judge_above(value, verdict):
    assert judge(value, _threshold("above", 70, 80)) is verdict


@pytest.mark.parametrize(
    ("value", "verdict"),
    [
        (90, Verdict.OK),
        (30, Verdict.OK),
        (29, Verdict.WARN),
        (14, Verdict.WARN),
        (13.9, Verdict.CRIT),
        (-2, Verdict.CRIT),
    ],
)
def test_judge_below(value, verdict):
    """Days until a certificate expires: fewer is worse."""
    assert judge(value, _threshold("below", 30, 14)) is verdict


def test_judge_missing_levels():
    assert judge(1e9, _threshold("above", None, None)) is Verdict.OK
    assert judge(75, _threshold("above", None, 80)) is Verdict.OK
    assert judge(75, _threshold("above", 70, None)) is Verdict.WARN
