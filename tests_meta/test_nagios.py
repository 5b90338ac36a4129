"""``--nagios`` (opscheck.nagios): one Nagios/Icinga plugin result on stdout and nothing else,
exit 0 OK / 1 WARNING / 2 CRITICAL / 3 UNKNOWN.

Real targets: this machine through ``local://`` (its real disk, inodes and uptime, judged against
levels it meets or breaks), the HTTP testbed for a healthy web target, a loopback port nothing
listens on for a stopped one. Both in-process (pytester) and as the operator's command in a
subprocess, where stdout and the exit code are the real ones Nagios reads.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from opscheck import nagios
from opscheck.testbed import CALM_HOST_THRESHOLDS
from opscheck.testbed.sshd import host_block
from tests_meta.conftest import http_block as http

REPO = Path(__file__).resolve().parents[1]
HOST = ("suites/host/test_resources.py", "suites/host/test_connectivity.py")
CHOSEN = ("-k", "disk_used or inode or reachable or reboot")  # 4 checks, each under a second
ME = host_block("web1", "local://")
# Levels this machine meets: uptime is "below" (a recent reboot warns), so 1 s never warns.
CALM = CALM_HOST_THRESHOLDS + '[host.uptime]\nwarn = "1s"\n'
# A real WARN: no machine has been up for ten years.
UP_TEN_YEARS = CALM_HOST_THRESHOLDS + '[host.uptime]\nwarn = "3650d"\n'
DISK_CRIT = CALM.replace('warn = "99%"\ncrit = "100%"', 'warn = "0%"\ncrit = "0.001%"', 1)
# The Nagios plugin guidelines: 'label'=value[UOM];[warn];[crit];[min];[max]
PERF = re.compile(
    r"'(?P<label>[^'=]+)'=(?P<value>-?[0-9.]+)(?P<uom>[a-zA-Z%]*)"
    r"(;(?P<warn>[~@]?-?[0-9.]*:?-?[0-9.]*))?(;(?P<crit>[~@]?-?[0-9.]*:?-?[0-9.]*))?"
    r"(;(?P<min>-?[0-9.]*))?(;(?P<max>-?[0-9.]*))?"
)


def plugin(result: pytest.RunResult) -> list[str]:
    """The plugin output: everything on stdout, nothing on stderr."""
    assert result.errlines == [], result.errlines
    return result.outlines


def perfdata(line: str) -> dict[str, re.Match[str]]:
    """The perfdata of a first line, each item parsed by the guidelines' grammar."""
    assert line.count(" | ") == 1, line
    items = re.findall(r"'[^']+'=\S+", line.split(" | ", 1)[1])
    parsed = {}
    for item in items:
        match = PERF.fullmatch(item)
        assert match, f"not Nagios perfdata: {item}"
        parsed[match["label"]] = match
    return parsed


def test_healthy_machine_is_ok_exit_0(suite):
    result = suite.run(ME, CALM, "--nagios", *CHOSEN, paths=HOST)
    assert result.ret == nagios.OK
    (line,) = plugin(result)
    assert line.startswith("OPSCHECK OK - 0 crit, 0 warn, 4 ok | "), line
    perf = perfdata(line)
    # host.reachable is a yes/no answer: in the state, not a number to graph
    assert set(perf) == {"disk_used_pct_web1_/", "inode_used_pct_web1_/", "uptime_web1"}
    disk = perf["disk_used_pct_web1_/"]
    assert (disk["uom"], disk["warn"], disk["crit"], disk["min"], disk["max"]) == (
        "%",
        "99",
        "100",
        "0",
        "100",
    )
    assert 0 < float(disk["value"]) < 100
    uptime = perf["uptime_web1"]
    assert uptime["uom"] == "s" and uptime["warn"] == "1:"  # "below": alert under 1 s
    assert float(uptime["value"]) == pytest.approx(
        float(Path("/proc/uptime").read_text().split()[0]), abs=60
    )


def test_recent_reboot_is_warning_exit_1(suite):
    result = suite.run(ME, UP_TEN_YEARS, "--nagios", *CHOSEN, paths=HOST)
    assert result.ret == nagios.WARNING
    first, *long = plugin(result)
    assert re.match(
        r"OPSCHECK WARNING - 0 crit, 1 warn, 3 ok: web1: up [^|]+ < warn 3650\.0 d \| ", first
    ), first
    assert perfdata(first)["uptime_web1"]["warn"] == "315360000:"
    assert long == [
        re.sub(r"^.*?: (web1: up [^|]+?) \| .*$", r"WARN \1", first)
        + " (test_no_recent_reboot[web1])"
    ]


def test_full_disk_and_stopped_server_are_critical_exit_2(suite, web):
    inventory = ME + http("api", web.url()) + http("shop", web.url("refused"))
    paths = (*HOST, "suites/http/test_health.py")
    result = suite.run(inventory, DISK_CRIT, "--nagios", "-k", "disk_used or status", paths=paths)
    assert result.ret == nagios.CRITICAL
    first, *long = plugin(result)
    disk = r"web1: / \d+\.\d % used \([^)]*\) > crit 0\.0 %"
    assert re.match(rf"OPSCHECK CRITICAL - 2 crit, 0 warn, 1 ok: {disk} \(\+1 more\) \| ", first)
    assert long[0] == re.search(rf"({disk})", first)[1].join(  # type: ignore[index]
        ["CRIT ", " (test_disk_used_below_limit[web1])"]
    )
    refused = web.url("refused")
    assert long[1] == (
        f"CRIT shop: unreachable: GET {refused}: connection refused (test_status_expected[shop])"
    )
    assert len(long) == 2
    perf = perfdata(first)
    assert perf["disk_used_pct_web1_/"]["crit"] == "0.001"


def test_a_down_target_counts_its_checks_not_run(suite, web):
    inventory = http("shop", web.url("refused"), 'contains = "healthy"')
    result = suite.run(inventory, "", "--nagios", paths=("suites/http/test_health.py",))
    assert result.ret == nagios.CRITICAL
    first, *long = plugin(result)
    assert first.startswith(
        "OPSCHECK CRITICAL - 1 crit, 0 warn, 1 not run, 0 ok: shop: unreachable"
    )
    assert long == [
        f"CRIT {first.split(': ', 1)[1].removesuffix(' (+1 more)')} (test_status_expected[shop])",
        "NOT RUN shop unreachable (see test_status_expected[shop]) (test_body_contains[shop])",
    ]


def test_config_error_is_unknown_exit_3_with_the_message(suite):
    wrong = CALM + "[host.inodes_used_pct]\nwarn = 1\n"
    result = suite.run(ME, wrong, "--nagios", *CHOSEN, paths=HOST)
    assert result.ret == nagios.UNKNOWN
    (line,) = plugin(result)
    assert line.startswith(
        "OPSCHECK UNKNOWN - thresholds.toml: host.inodes_used_pct: unknown check "
        "(did you mean 'host.inode_used_pct'?"
    ), line


def test_nothing_selected_is_unknown(suite):
    result = suite.run(ME, CALM, "--nagios", "-k", "no_such_check", paths=HOST)
    assert result.ret == nagios.UNKNOWN
    assert plugin(result) == ["OPSCHECK UNKNOWN - nothing was checked: no check selected"]


def test_secrets_are_never_in_the_output(suite, web, monkeypatch):
    canary = "nagios-Canary-9f3K2x"
    monkeypatch.setenv("SHOP_TOKEN", canary)
    inventory = http("shop", web.url("refused", "/health?token=${SHOP_TOKEN}"))
    result = suite.run(inventory, "", "--nagios", "-k", "status", paths=("suites/http",))
    assert result.ret == nagios.CRITICAL
    text = "\n".join(plugin(result))
    assert "/health?token=***: connection refused" in text
    assert canary not in text


def test_perfdata_labels_units_and_ranges():
    """The guidelines' rules on documents as the Reporter writes them: no quote or '=' in a
    label, bytes in B, a "below" level as a range, one label per series."""

    def record(check, target, subject, value, unit, warn, crit, direction="above"):
        return {"check": check, "target": target, "subject": subject, "value": value,
                "unit": unit, "warn": warn, "crit": crit, "direction": direction}  # fmt: skip

    tests = [
        {"records": [record("backup.size", "db'1", "a=b", 1500.0, "size", None, 1, "below")]},
        {"records": [record("http.latency_avg", "api", "", 0.0125, "duration", 0.3, 0.5)]},
        {"records": [record("redis.latency_avg", "api", "", 0.002, "duration", 0.01, None)]},
        {"records": [record("http.reachable", "api", "", 1.0, "state", None, None)]},
        {"records": [record("growth.per_day", "x", "", -3.5, "number", -1.0, None)]},
    ]
    assert nagios.perfdata(tests) == [
        "'size_db_1_a_b'=1500B;;1:",
        "'latency_avg_api'=0.0125s;0.3;0.5",
        "'redis.latency_avg_api'=0.002s;0.01",
        "'per_day_x'=-3.5;~:-1",
    ]


# -- as the operator runs it: the `opscheck` command, its real stdout and exit code --------------


def opscheck(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).with_name("opscheck")), "--nagios", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSCHECK_", "PYTEST_"))}
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one process", "xdist -n 2"])
def test_the_command_prints_only_the_plugin_output(tmp_path, workers):
    (tmp_path / "inventory.toml").write_text(ME)
    (tmp_path / "thresholds.toml").write_text(DISK_CRIT)
    run = opscheck(tmp_path, *workers, *CHOSEN)
    assert run.returncode == nagios.CRITICAL, run.stdout + run.stderr
    assert run.stderr == ""
    first, *long = run.stdout.splitlines()
    assert first.startswith("OPSCHECK CRITICAL - 1 crit, 0 warn, 3 ok: web1: / "), run.stdout
    assert len(perfdata(first)) == 3
    assert long == [next(line for line in long if line.startswith("CRIT web1: / "))]
    (tmp_path / "thresholds.toml").write_text(CALM)
    run = opscheck(tmp_path, *workers, *CHOSEN)
    assert (run.returncode, run.stderr) == (nagios.OK, "")
    assert run.stdout.startswith("OPSCHECK OK - 0 crit, 0 warn, 4 ok | ")
    assert run.stdout.count("\n") == 1


def test_the_command_says_a_config_error_and_a_wrong_option(tmp_path):
    (tmp_path / "inventory.toml").write_text(ME + 'colour = "red"\n[[http]]\nname = "api"\n')
    run = opscheck(tmp_path, *CHOSEN)
    assert (run.returncode, run.stderr) == (nagios.UNKNOWN, "")
    # Every error the loader found, in the one line: "; "-joined.
    assert re.fullmatch(
        r"OPSCHECK UNKNOWN - inventory\.toml: host\[0\]\.colour: unknown key \(expected [^;]*\); "
        r"inventory\.toml: http\[0\]\.url: required key is missing\n",
        run.stdout,
    ), run.stdout
    (tmp_path / "inventory.toml").write_text(ME)
    run = opscheck(tmp_path, "--no-such-option")
    # pytest refuses the command line before a plugin can answer: exit 4, which Nagios and
    # Icinga show as UNKNOWN; the line says why.
    assert run.returncode == pytest.ExitCode.USAGE_ERROR
    assert (
        run.stdout == "OPSCHECK UNKNOWN - command line: unrecognized arguments: --no-such-option\n"
    )


# -- waived and flaky -----------------------------------------------------------------------------


def test_a_waived_crit_is_ok_and_said(suite, tmp_path):
    until = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=14)
    waivers = tmp_path / "waivers.toml"
    waivers.write_text(
        '[[waiver]]\ncheck = "host.disk_used_pct"\ntarget = "web1"\n'
        f'reason = "new disk ordered, INC-4711"\nowner = "alice"\nexpires = {until}\n'
    )
    result = suite.run(ME, DISK_CRIT, "--nagios", "--waivers", str(waivers), *CHOSEN, paths=HOST)
    assert result.ret == nagios.OK
    first, waived = plugin(result)
    assert first.startswith("OPSCHECK OK - 0 crit, 0 warn, 3 ok, 1 waived | "), first
    assert re.fullmatch(
        r"WAIVED web1: / [^|]+ > crit 0\.0 % \(waived until \S+ by alice: new disk ordered, "
        r"INC-4711\) \(test_disk_used_below_limit\[web1\]\)",
        waived,
    ), waived


def test_a_down_target_in_its_maintenance_window_is_ok_and_says_why(suite, web, tmp_path):
    until = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    waivers = tmp_path / "waivers.toml"
    waivers.write_text(
        '[[waiver]]\ncheck = "*"\ntarget = "shop"\n'
        f'reason = "kernel upgrade, CHG-7"\nowner = "bob"\nexpires = {until}\n'
    )
    inventory = http("shop", web.url("refused"), 'contains = "healthy"')
    args = ("--nagios", "--waivers", str(waivers))
    result = suite.run(inventory, "", *args, paths=("suites/http/test_health.py",))
    assert result.ret == nagios.OK
    first, *long = plugin(result)
    assert first == "OPSCHECK OK - 0 crit, 0 warn, 0 ok, 2 waived", first
    refused = web.url("refused")
    assert long == [
        f"WAIVED shop: unreachable: GET {refused}: connection refused (waived until {until} by "
        "bob: kernel upgrade, CHG-7) (test_status_expected[shop])",
        f"WAIVED shop: unreachable (see test_status_expected[shop]): GET {refused}: connection "
        f"refused (waived until {until} by bob: kernel upgrade, CHG-7) (test_body_contains[shop])",
    ]


def test_a_check_that_passes_when_measured_again_is_warning(suite, flaky):
    recheck = "[settings.recheck]\nenabled = true\ndelay = 0.2\n"
    inventory = recheck + http("api", flaky, "samples = 0")
    result = suite.run(inventory, "", "--nagios", "-k", "status", paths=("suites/http",))
    assert result.ret == nagios.WARNING
    first, line = plugin(result)
    said = (
        f"api: GET {flaky} answered 500 Internal Server Error (expected 2xx), then GET {flaky} "
        "answered 200 OK (expected 2xx) 0.2 s later"
    )
    assert first == f"OPSCHECK WARNING - 0 crit, 0 warn, 1 flaky, 0 ok: {said}"
    assert line == f"FLAKY {said} (test_status_expected[api])"


@pytest.mark.parametrize(
    ("hook", "said"),
    [
        (
            "raise RuntimeError('the plugin broke')",
            "internal error: RuntimeError: the plugin broke",
        ),
        ("pytest.exit('maintenance window')", "run interrupted: maintenance window"),
    ],
    ids=["internal error", "interrupted"],
)
def test_a_run_that_breaks_is_unknown_with_the_reason(suite, hook, said):
    suite.pytester.makepyfile(
        breaks=f"import pytest\n\ndef pytest_collection_finish(session):\n    {hook}\n"
    )
    suite.pytester.syspathinsert()
    result = suite.run(ME, CALM, "--nagios", "-p", "breaks", *CHOSEN, paths=HOST)
    assert result.ret == nagios.UNKNOWN
    assert plugin(result) == [f"OPSCHECK UNKNOWN - {said}"]


def test_plain_pytest_in_the_inventorys_folder_answers_the_same(tmp_path):
    """A plain ``pytest --nagios`` there: pytest-testinfra's plugin (loaded outside opscheck's
    pytest.ini) owns the option name; opscheck re-runs the run in its checkout, which answers."""
    (tmp_path / "inventory.toml").write_text(ME)
    (tmp_path / "thresholds.toml").write_text(DISK_CRIT)
    command = [str(Path(sys.executable).with_name("pytest")), "--nagios", *CHOSEN]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSCHECK_", "PYTEST_"))}
    run = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
    )
    assert (run.returncode, run.stderr) == (nagios.CRITICAL, ""), run.stdout + run.stderr
    assert run.stdout.startswith("OPSCHECK CRITICAL - 1 crit, 0 warn, 3 ok: web1: / ")
    assert run.stdout.count("\n") == 2
