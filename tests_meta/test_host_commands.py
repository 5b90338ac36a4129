"""``[[host.commands]]`` against a real machine, healthy and really broken: this machine through
``local://`` and through ``ssh://`` to a real sshd on 127.0.0.1. The commands run for real: a
non-zero exit, a number past its level, a regex finding nothing, too many lines, an audit's JSON
with vulnerabilities, a command that hangs, a secret it prints."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opscheck.testbed.sshd import Sshd, host_block, toml_value

SUITE = ("suites/host/test_host_commands.py",)
TEST = "test_command_output_expected"
# What `npm audit --json` (npm 7+) prints, in part: the vulnerable packages, counts by severity.
AUDIT = (
    '{"auditReportVersion":2,"vulnerabilities":{%s},"ok":%s,'
    '"metadata":{"vulnerabilities":{"info":0,"low":3,"moderate":1,"high":%d,"critical":0}}}'
)
FOUND = '"minimist":{"name":"minimist","severity":"high"},"qs":{"name":"qs","severity":"high"}'
# JMESPath assertions, as [[http]]'s json_checks: no high or critical ones, none by package.
CHECKS = (
    '[{ path = "metadata.vulnerabilities.high", crit = 0 }, { path = "metadata.vulnerabilities'
    '.critical", crit = 0 }, { path = "values(vulnerabilities)", none = "severity == \'high\'" }]'
)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    """A real OpenSSH server for the session (of this xdist worker)."""
    with Sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


@pytest.fixture(params=["local", "ssh"])
def machine(request: pytest.FixtureRequest, sshd: Sshd) -> Callable[..., str]:
    """Render the ``[[host]]`` table ``me`` through one backend, with the given commands: each a
    dict of keys (a str value that starts with ``{`` or ``[{`` is written as TOML as it is)."""

    def render(*commands: dict[str, Any], **fields: Any) -> str:
        if request.param == "ssh":
            text = sshd.host_block("me", **fields)
        else:
            text = host_block("me", "local://", **fields)
        for command in commands:
            text += "\n[[host.commands]]\n"
            for key, value in command.items():
                raw = isinstance(value, str) and value.startswith(("{", "[{"))
                text += f"{key} = {value if raw else toml_value(value)}\n"
        return text

    return render


def _outcomes(results: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """``{command name: (outcome, message or measured)}``."""
    shown = {}
    for name, result in results.items():
        command = name.split("/", 1)[1].rstrip("]")
        shown[command] = (
            result["outcome"],
            result.get("message") or result.get("reason") or result["measured"],
        )
    return shown


def test_healthy_commands_pass(suite, machine):
    inventory = machine(
        {"name": "true", "run": "test -d /tmp"},
        {"name": "grep-none", "run": "grep -c nothing-here /etc/hostname", "expect_exit": [0, 1]},
        {"name": "count", "run": "echo 3", "warn": 10, "crit": 20},
        {"name": "free", "run": "echo 40", "warn": 20, "crit": 10, "direction": "below"},
        {
            "name": "upgradable",
            "run": "printf 'Listing...\\n12 packages can be upgraded\\n'",
            "regex": r"(\d+) packages can be upgraded",
            "crit": 50,
        },
        {"name": "size", "run": "echo 1500000", "unit": "bytes", "crit": "100MB"},
        {"name": "big-files", "run": "printf '/var/a\\n/var/b\\n'", "count": "lines", "crit": 5},
        {
            "name": "audit",
            "run": f"printf '{AUDIT % ('', 'true', 0)}'",
            "json": '{ ok = true, "metadata.vulnerabilities.critical" = 0 }',
            "json_limits": '{ "metadata.vulnerabilities.low" = { warn = 5 } }',
            "json_checks": CHECKS,
        },
    )
    suite.run(inventory, paths=SUITE)
    shown = _outcomes(suite.results())
    assert shown == {
        "true": ("passed", "true: exited 0"),
        "grep-none": ("passed", "grep-none: exited 1"),
        "count": ("passed", "count 3"),
        "free": ("passed", "free 40"),
        "upgradable": ("passed", "upgradable 12"),
        "size": ("passed", "size 1.5 MB"),
        "big-files": ("passed", "big-files 2 lines"),
        "audit": (
            "passed",
            "audit ok = True, metadata.vulnerabilities.critical = 0; "
            "metadata.vulnerabilities.high = 0; metadata.vulnerabilities.critical = 0; "
            "values(vulnerabilities) 0 of 0 match; audit metadata.vulnerabilities.low 3",
        ),
    }, shown


def test_broken_commands_fail_with_their_reason(suite, machine):
    inventory = machine(
        {"name": "exit3", "run": "echo 'disk not mounted' >&2; exit 3"},
        {"name": "over", "run": "echo 42", "warn": 5, "crit": 10},
        {"name": "nomatch", "run": "echo 'Listing...'", "regex": r"(\d+) upgradable", "crit": 0},
        {"name": "words", "run": "echo 'twelve'", "crit": 10},
        {"name": "lines", "run": "seq 1 7", "count": "lines", "crit": 5},
        {
            "name": "audit",
            "run": f"printf '{AUDIT % (FOUND, 'false', 2)}'",
            "json": "{ ok = true }",
            "json_limits": '{ "vulnerabilities.gone" = { crit = 0 } }',
            "json_checks": CHECKS,
        },
        {"name": "notjson", "run": "echo 'npm ERR! code ENOLOCK'", "json": "{ ok = true }"},
        {"name": "long", "run": "seq 1 5000 >&2; exit 1"},
    )
    suite.run(inventory, paths=SUITE)
    shown = _outcomes(suite.results())
    long = shown.pop("long")
    assert shown == {
        "exit3": (
            "failed",
            "me: exit3: `echo 'disk not mounted' >&2; exit 3` exited 3 (expected 0): "
            "disk not mounted",
        ),
        "over": ("failed", "me: over 42 > crit 10"),
        "nomatch": (
            "failed",
            r"me: nomatch: regex `(\d+) upgradable` matches nothing in stdout: Listing...",
        ),
        "words": (
            "failed",
            "me: words: stdout is not a number: twelve (a regex with one group picks the number)",
        ),
        "lines": ("failed", "me: lines 7 lines > crit 5"),
        "audit": (
            "failed",
            "me: audit ok = False (expected True); me: metadata.vulnerabilities.high = 2 > crit 0; "
            "me: values(vulnerabilities) 2 of 2 match: {'name': 'minimist', 'severity': 'high'}, "
            "{'name': 'qs', 'severity': 'high'}; me: audit vulnerabilities.gone missing",
        ),
        "notjson": (
            "failed",
            "me: notjson: stdout is not JSON (Expecting value at line 1): npm ERR! code ENOLOCK",
        ),
    }, shown
    # stderr is cut: 5,000 lines of it make one line of a message.
    assert long[0] == "failed"
    assert long[1].startswith("me: long: `seq 1 5000 >&2; exit 1` exited 1 (expected 0): 1 2 3 ")
    assert long[1].endswith("…") and len(long[1]) < 300, long


def test_hanging_command_is_stopped_at_its_deadline(suite, machine):
    inventory = machine({"name": "hang", "run": "sleep 61.25; echo done", "timeout": "1s"})
    started = time.perf_counter()
    suite.run(inventory, paths=SUITE)
    elapsed = time.perf_counter() - started
    result = suite.results()[f"{TEST}[me/hang]"]
    assert result["outcome"] == "failed"
    assert (
        result["reason"] == "me: hang: `sleep 61.25; echo done` did not finish within 1 s; stopped"
    )
    assert elapsed < 20, elapsed  # one second, plus the run's start-up on a loaded machine
    # Stopped on the host too, with what it started: no `sleep 61.25` left behind.
    left = subprocess.run(["pgrep", "-f", "sleep 61.25"], capture_output=True, text=True)
    assert left.stdout == "", left.stdout


def test_a_secret_in_the_output_is_masked(suite, machine, monkeypatch):
    secret = "cmdSecret-7f3a91c2e5"
    monkeypatch.setenv("OPS_CMD_TOKEN", secret)
    inventory = machine(
        {"name": "leak", "run": 'echo "login failed for token ${OPS_CMD_TOKEN}" >&2; exit 2'},
        {"name": "leak-value", "run": 'echo "${OPS_CMD_TOKEN}"', "crit": 1},
    )
    suite.run(inventory, paths=SUITE)
    shown = _outcomes(suite.results())
    assert shown == {
        "leak": (
            "failed",
            'me: leak: `echo "login failed for token ***" >&2; exit 2` exited 2 (expected 0): '
            "login failed for token ***",
        ),
        "leak-value": (
            "failed",
            "me: leak-value: stdout is not a number: *** (a regex with one group picks the number)",
        ),
    }, shown
    assert secret not in suite.json_path.read_text()
    assert secret not in json.dumps(suite.results())
