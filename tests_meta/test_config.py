"""Configuration: secrets kept out of errors, the files found or refused, and units, threshold
layers and verdicts as documented. Bad files, one line each: tests_meta/test_config_bad.py."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from opscheck import config as cfg
from opscheck import plugin, units
from opscheck.judge import Verdict, judge

REPO = Path(__file__).resolve().parents[1]
HOST = '[[host]]\nname = "web1"\n'
HTTP = '[[http]]\nname = "api"\nurl = "http://127.0.0.1:1/health"\n'


def assert_usage_error(result: pytest.RunResult, message: str) -> None:
    """Exit code 4, nothing run, and exactly ``ERROR: <message>`` on stderr (no traceback)."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stdout.str() == ""  # not even the session header: no test started
    assert result.stderr.str().strip() == f"ERROR: {message}"


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
