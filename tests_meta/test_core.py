"""The core as a new user meets it: run from anywhere, never green on nothing, every judged key
registered, one record per measurement, pytest's cache, per-target schedules and selection."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opscheck.checks import CHECKS
from tests_meta.conftest import REPO, validate_reports

BIN = Path(sys.executable).parent
ME = '[[host]]\nname = "me"\nuri = "local://"\ncpu_sample = "100ms"\n'
DEAD = '[[http]]\nname = "dead"\nurl = "http://127.0.0.1:9/health"\nsamples = 0\n'


def _outside(tmp_path: Path, inventory: str = ME) -> Path:
    """Inventory, thresholds and reports in a folder outside the checkout (/etc/opscheck)."""
    etc = tmp_path / "etc-opscheck"
    etc.mkdir()
    (etc / "inventory.toml").write_text(inventory)
    (etc / "thresholds.toml").write_text('[host.memory_used_pct]\nwarn = "0%"\n')
    return etc


def _run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OPSCHECK_", "PYTEST_"))}
    return subprocess.run(
        argv, cwd=cwd, env={**environ, **env}, capture_output=True, text=True, timeout=120
    )


# -- 1. every documented form works from the checkout and from any directory -------------------


@pytest.mark.parametrize(
    "command",
    [
        "pytest in the checkout, space form",
        "pytest in the checkout, = form",
        "pytest elsewhere, space form",
        "opscheck elsewhere, space form",
        "opscheck elsewhere, = form",
    ],
)
def test_runs_with_paths_outside_the_checkout(tmp_path, command):
    etc = _outside(tmp_path)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    runner, where, form = command.replace(",", "").split(" ", 2)
    paths = {"inventory": etc / "inventory.toml", "thresholds": etc / "thresholds.toml"}
    paths["reports-dir"] = etc / "reports"
    options = []
    for name, path in paths.items():
        options += [f"--{name}={path}"] if "=" in form else [f"--{name}", str(path)]
    argv = [str(BIN / "opscheck"), "morning"] if runner == "opscheck" else [str(BIN / "pytest")]
    argv += [] if runner == "opscheck" else ["-m", "morning"]
    argv += [*options, "--archive", "-k", "host_reachable or memory_used", "-p", "no:xdist"]
    done = _run(argv, REPO if "checkout" in where else elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout and "1 warned" in done.stdout, done.stdout
    (day,) = (p for p in (etc / "reports").iterdir() if p.is_dir())  # beside: index.html...
    assert sorted(p.suffix for p in day.iterdir()) == [".html", ".json", ".md", ".xml"]
    assert (etc / "reports" / "index.html").is_file()  # opscheck/archive_index.py
    assert validate_reports(day) == 1


def test_pytest_in_a_folder_with_an_inventory(tmp_path):
    """`pip install -e .`, then `pytest -m morning` where inventory.toml is: the checks run."""
    etc = _outside(tmp_path)
    done = _run([str(BIN / "pytest"), "-m", "morning", "-k", "host_reachable"], etc)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
    assert f"rootdir: {REPO}" in done.stdout


def test_other_projects_are_left_alone(tmp_path):
    """The entry point only adds options: a plain pytest run elsewhere is pytest's own."""
    (tmp_path / "test_x.py").write_text("def test_x():\n    assert True\n")
    done = _run([str(BIN / "pytest"), "-q", "-p", "no:xdist"], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


# -- 2. a run that would check nothing stops with exit 4 -----------------------------------------


def test_missing_default_inventory_stops(tmp_path):
    done = _run([str(BIN / "opscheck"), "morning"], tmp_path)
    assert done.returncode == 4
    assert f"no inventory: {tmp_path / 'inventory.toml'} does not exist" in done.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no target to check"),
        ('[settings]\ntimeout = "3s"\n', "no target to check"),
        (None, "is a directory, not a file"),
    ],
    ids=["empty", "settings only", "directory"],
)
def test_nothing_to_check_stops(pytester, content, message):
    inventory = pytester.path / "inventory.toml"
    if content is None:
        inventory.mkdir()
    else:
        inventory.write_text(content)
    result = pytester.runpytest_inprocess(
        "-c", str(REPO / "pytest.ini"), "--rootdir", str(REPO), "-p", "no:xdist",
        "--inventory", str(inventory), "-m", "morning", str(REPO / "suites"),
    )  # fmt: skip
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.str()
    assert "passed" not in result.stdout.str()


# -- 3. every key a suite judges is registered ---------------------------------------------------


def _judged_keys() -> dict[str, list[str]]:
    """The first argument of every ``limits.check(...)`` in suites/, by where it stands."""
    found: dict[str, list[str]] = {}
    for path in sorted((REPO / "suites").rglob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "limits"
            ):
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                if node.func.attr == "batch":
                    continue
                assert node.func.attr == "check", f"{where}: judge with limits.check"
                key = node.args[0]
                assert isinstance(key, ast.Constant), f"{where}: the key must be a literal"
                found.setdefault(str(key.value), []).append(where)
    return found


def test_every_judged_key_is_registered():
    keys = _judged_keys()
    assert len(keys) > 50
    unknown = {k: w for k, w in keys.items() if k not in CHECKS}
    assert not unknown, f"keys judged but not in opscheck/checks.py: {unknown}"
    unused = sorted(set(CHECKS) - set(keys))
    assert not unused, f"registered keys no suite judges: {unused}"
    untitled = [k for k, spec in CHECKS.items() if not spec.title]
    assert not untitled


def test_an_unregistered_key_is_an_error_not_ok(suite):
    """`limits.check("host.disk_usd_pct", …)` (a typo) errors; it is never judged OK."""
    test = suite.pytester.makepyfile(
        test_typo="""
        import pytest
        from opscheck import Measurement

        @pytest.mark.host
        def test_typo(host_target, limits):
            limits.check("host.disk_usd_pct", Measurement(12.0))
        """
    )
    result = suite.run(ME, "", paths=(str(test),))
    result.assert_outcomes(failed=1)
    assert "check key 'host.disk_usd_pct' is not registered" in result.stdout.str()


# -- 4. one record per measurement, with subject and unit ----------------------------------------


def test_a_batch_records_every_measurement(suite):
    test = suite.pytester.makepyfile(
        test_batch="""
        import pytest
        from opscheck import Measurement

        @pytest.mark.host
        def test_three(host_target, limits):
            with limits.batch():
                limits.check("host.log_dir_size", Measurement(6723, subject="/logs/a"))
                limits.check("host.log_dir_size", Measurement(8e9, subject="/logs/b"))
                limits.check("host.uptime", Measurement(357.27))
        """
    )
    result = suite.run(ME, "", paths=(str(test),))
    result.assert_outcomes(failed=1)
    records = suite.results()["test_three[me]"]["records"]
    assert [(r["check"], r["subject"], r["value"], r["unit"], r["verdict"]) for r in records] == [
        ("host.log_dir_size", "/logs/a", 6723, "size", "OK"),
        ("host.log_dir_size", "/logs/b", 8e9, "size", "CRIT"),
        ("host.uptime", "", 357.27, "duration", "WARN"),
    ]
    assert records[1]["message"] == "me: /logs/b 8.0 GB > crit 5.0 GB"
    assert records[1]["crit"] == 5e9 and records[1]["direction"] == "above"
    assert records[2]["title"] == CHECKS["host.uptime"].title


def test_a_yes_no_answer_is_a_record_too(suite):
    suite.run(ME + 'services = ["no-such-daemon"]\n', "", "-k", "services", paths=("suites/host",))
    (record,) = suite.results()["test_services_running[me]"]["records"]
    assert (record["check"], record["unit"], record["value"]) == ("host.services", "state", 0)
    assert record["verdict"] == "CRIT"
    assert record["message"].startswith("me: ") and "no-such-daemon" in record["message"]


# -- 6. pytest's cache: --lf reruns what failed --------------------------------------------------


def test_last_failed_reruns_only_the_failures(suite):
    cache = ("-o", f"cache_dir={suite.pytester.path / '.cache'}")
    first = suite.run(ME + DEAD, "", "-k", "reachable or status", *cache)
    assert (first.parseoutcomes()["failed"], first.parseoutcomes()["passed"]) == (1, 1)
    again = suite.run(ME + DEAD, "", "-k", "reachable or status", "--lf", *cache)
    again.assert_outcomes(failed=1)
    assert list(suite.results()) == ["test_status_expected[dead]"]


# -- per-target schedules and check selection ----------------------------------------------------

TWO = """
[settings]
schedules = ["every-2h"]
skip = ["host.cpu_busy_below_limit"]

[[host]]
name = "daily"
uri = "local://"
cpu_sample = "100ms"

[[host]]
name = "node"
uri = "local://"
schedules = ["monthly", "every-2h"]
skip = ["host.load_per_core_below_limit", "host.no_recent_reboot"]

[[host]]
name = "only-disk"
uri = "local://"
checks = ["host.disk_used_below_limit"]
"""


def test_targets_choose_their_schedules_and_checks(suite):
    suite.run(TWO, "", "-m", "morning", paths=("suites/host",))
    morning = set(suite.results())
    assert "test_disk_used_below_limit[daily]" in morning
    assert "test_cpu_busy_below_limit[daily]" not in morning  # settings.skip: off for all
    assert not [t for t in morning if t.endswith("[node]")]  # node: monthly and every-2h only
    assert [t for t in morning if t.endswith("[only-disk]")] == [
        "test_disk_used_below_limit[only-disk]"
    ]

    suite.run(TWO, "", "-m", "every-2h", paths=("suites/host",))
    custom = set(suite.results())
    assert {t.split("[")[1] for t in custom} == {"node]"}
    assert "test_memory_used_below_limit[node]" in custom  # all of node's checks, on its schedules
    assert "test_load_per_core_below_limit[node]" not in custom  # its own skip
    entry = suite.results()["test_memory_used_below_limit[node]"]
    assert entry["schedule"] == "monthly every-2h"


def test_a_move_applies_to_module_level_schedules(suite):
    """`[settings.schedule]` moves a check whose schedules are set on its module."""
    inventory = ME + DEAD + '\n[settings.schedule]\n"http.status_expected" = ["weekly"]\n'
    suite.run(inventory, "", "-m", "morning")
    assert "test_status_expected[dead]" not in suite.results()
    suite.run(inventory, "", "-m", "weekly")
    assert suite.results()["test_status_expected[dead]"]["outcome"] == "failed"


def test_reports_of_this_module_follow_the_schema(suite):
    suite.run(ME + DEAD, "", "-m", "morning")
    document = json.loads(suite.json_path.read_text())
    assert document["schema_version"] == 1
    assert validate_reports(suite.pytester.path) >= 1


def test_all_skipped_is_not_green(suite):
    """`-m "morning and postgres"` with no [[postgres]] target skips everything: exit 5."""
    result = suite.run(ME, "", "-m", "morning and postgres")
    assert result.ret == pytest.ExitCode.NO_TESTS_COLLECTED
    assert "opscheck: nothing was checked: all" in result.stdout.str()
