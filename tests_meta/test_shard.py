"""One run over N runners (``--shard I/N``, opscheck/shard.py) and their reports joined into the
day's report (``opscheck-merge``, opscheck/merge.py), run as users run them: the real suites on a
generated inventory of local hosts, a host whose ssh port is closed, a real HTTP server with a
healthy and a broken endpoint, and a real log file.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from opscheck.testbed import free_port
from opscheck.testbed.http import HttpTestbed
from tests_meta.conftest import REPO, Suite, validate_reports

SELECT = ("-m", "morning", "-k", "reachable or memory_used or status_expected or source_present")
THRESHOLDS = '[host.memory_used_pct]\nwarn = "0%"\n'  # every host WARNs: three outcomes to count
MERGE = str(Path(sys.executable).with_name("opscheck-merge"))
DEPLOY = REPO / "deploy" / "kubernetes"


def expected_shard(key: str, count: int) -> int:
    """The documented rule, written out again: SHA-256 of ``component/name``, mod N."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % count


def fleet(web: HttpTestbed, folder: Path) -> str:
    """Six local hosts, one whose ssh port is closed, a healthy and a broken endpoint, and a log
    read through host h2 (so it belongs to h2's shard)."""
    log = folder / "app.log"
    log.write_text("2026-11-30T07:00:00Z INFO started\n")
    hosts = "".join(f'[[host]]\nname = "h{i}"\ncpu_sample = "100ms"\n\n' for i in range(6))
    return (
        hosts
        + f'[[host]]\nname = "gone"\nuri = "ssh://opscheck@127.0.0.1:{free_port()}"\n\n'
        + f'[[http]]\nname = "api"\nurl = "{web.url("http", "/health")}"\nsamples = 0\n\n'
        + f'[[http]]\nname = "broken"\nurl = "{web.url("http", "/error")}"\nsamples = 0\n\n'
        + f'[[logs]]\nname = "app"\nhost = "h2"\npath = "{log}"\n'
    )


# Where each target of ``fleet`` must land, by the rule above (the log by its host's name).
KEYS = {
    **{f"h{i}": f"host/h{i}" for i in range(6)},
    "gone": "host/gone",
    "api": "http/api",
    "broken": "http/broken",
    "app": "host/h2",
}
BROKEN = {"gone", "broken"}


def run(suite: Suite, inventory: str, *args: str, **kw: Any) -> tuple[pytest.RunResult, dict]:
    result = suite.run(inventory, THRESHOLDS, *SELECT, *args, **kw)
    return result, json.loads(suite.json_path.read_text())


def output(result: pytest.RunResult) -> str:
    return result.stdout.str() + result.stderr.str()


def merged_reports(root: Path) -> list[Path]:
    """The merged JSON reports under an archive, oldest name first (not the shards' own)."""
    return sorted(p for p in root.rglob("*.json") if re.fullmatch(r"\w+-\d{6}(-\d+)?", p.stem))


def functions(tests: list[dict[str, Any]]) -> list[str]:
    return list(dict.fromkeys(t["id"].split("[")[0] for t in tests))


# -- sharding -------------------------------------------------------------------------------------


def test_two_shards_partition_the_run_and_the_last_merges_it(suite, web, pytester):
    inventory = fleet(web, pytester.path)
    whole, whole_doc = run(suite, inventory)
    reports = pytester.path / "reports"
    shards = [
        run(
            suite,
            inventory,
            f"--shard={i}/2",
            "--run-id=run-1",
            "--archive",
            "--reports-dir",
            str(reports),
        )
        for i in (0, 1)
    ]

    # The shards partition the run exactly, and each test has the outcome it has unsharded.
    outcomes = {t["id"]: t["outcome"] for t in whole_doc["tests"]}
    tests = [{t["id"]: t for t in doc["tests"]} for _, doc in shards]
    assert set(tests[0]).isdisjoint(tests[1])
    assert set(tests[0]) | set(tests[1]) == set(outcomes)
    assert {i: t["outcome"] for by_id in tests for i, t in by_id.items()} == outcomes
    # Every check of a target is in the shard its name hashes to; the log with its host; a check
    # skipped for every target in shard 0 only.
    for index, by_id in enumerate(tests):
        for test_id, test in by_id.items():
            want = expected_shard(KEYS[test["target"]], 2) if test["target"] else 0
            assert want == index, test_id
    assert {t["target"] for t in tests[0].values()} > {"gone", "broken"}  # both shards hold
    assert {t["target"] for t in tests[1].values()} > {"api", "app"}  # targets; these in 1
    # A shard fails when a target of its own is broken, and only then.
    for index, (result, _) in enumerate(shards):
        broken = any(t["target"] in BROKEN for t in tests[index].values())
        assert result.ret == (1 if broken else 0)
    assert whole.ret == 1
    # Each shard's report says which shard it is.
    for index, (_, doc) in enumerate(shards):
        assert doc["run_id"] == "run-1"
        assert doc["shard"]["index"] == index
        assert doc["shard"]["count"] == 2
        assert doc["shard"]["selected"] == len(outcomes)

    # The first shard waits; the last one merges: the day's report is the unsharded run's.
    assert "opscheck: run run-1: waiting for shard 1/2 (the last to finish merges)" in output(
        shards[0][0]
    )
    (merged_path,) = merged_reports(reports)
    merged = json.loads(merged_path.read_text())
    assert "opscheck: merged morning run run-1, 2 shards: " in output(shards[1][0])
    assert str(merged_path.with_suffix(".html")) in output(shards[1][0])
    assert validate_reports(reports) == 3
    assert merged["summary"] == whole_doc["summary"]
    assert merged["by_category"] == whole_doc["by_category"]
    assert {t["id"]: t["outcome"] for t in merged["tests"]} == outcomes
    assert functions(merged["tests"]) == functions(whole_doc["tests"])  # in the runbook's order
    assert merged["run_id"] == "run-1" and "shard" not in merged
    assert [(s["index"], s["tests"]) for s in merged["shards"]] == [
        (0, len(tests[0])),
        (1, len(tests[1])),
    ]
    assert merged["shards"][1]["file"] == next(reports.rglob("*.shard-1-of-2.json")).name
    assert sorted(s["targets"] for s in merged["shards"]) == [4, 6]

    # JUnit: every test case of both shards, with its properties, counted in one suite.
    root = ET.parse(merged_path.with_suffix(".xml")).getroot()
    (junit_suite,) = root.iter("testsuite")
    cases = {f"{c.get('file')}::{c.get('name')}": c for c in junit_suite.iter("testcase")}
    assert set(cases) == set(outcomes)
    assert int(junit_suite.get("tests", "0")) == len(outcomes)
    failed = sum(o in ("failed", "error") for o in outcomes.values())
    assert int(junit_suite.get("failures", "0")) + int(junit_suite.get("errors", "0")) == failed
    case = cases[next(i for i, t in tests[0].items() if t["target"] == "broken")]
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["verdict"] == "CRIT" and props["target"] == "broken"
    facts = junit_suite.find("properties")
    assert facts is not None
    assert {p.get("name"): p.get("value") for p in facts} == {"run_id": "run-1", "shards": "2"}

    # HTML: both shards (with links to their own pytest-html reports) and every test.
    page = merged_path.with_suffix(".html").read_text()
    assert page.count("report</a>") == 2
    for test_id in outcomes:
        assert f"<td>{html.escape(test_id)}</td>" in page
    assert "answered 500" in page


def test_an_explicit_merge_of_collected_artifacts(suite, web, pytester, tmp_path):
    """A CI matrix: each shard's reports land in their own artifact, merged by the command."""
    inventory = fleet(web, pytester.path)
    artifacts = tmp_path / "artifacts"
    for index in (0, 1):
        reports = tmp_path / f"runner{index}"
        run(
            suite,
            inventory,
            f"--shard={index}/2",
            "--run-id=77",
            "--archive",
            "--reports-dir",
            str(reports),
        )
        shutil.copytree(reports, artifacts / f"shard-{index}")  # as CI downloads artifacts
    # Each runner saw only its own shard: no merge happened on either.
    assert merged_reports(tmp_path) == []

    out = tmp_path / "merged"
    done = subprocess.run(
        [MERGE, str(artifacts), "--reports-dir", str(out)], capture_output=True, text=True
    )
    assert done.returncode == 1, done.stderr  # "broken" and "gone" failed
    (merged_path,) = merged_reports(out)
    assert re.search(
        r"^opscheck-merge: morning run 77, 2 shards: \d+ passed, \d+ warned, 0 flaky, "
        r"0 waived, 2 failed, 0 error, "
        r"1 not run, \d+ skipped: "  # "gone" is down: its connectivity check failed, 1 not run
        rf"{re.escape(str(merged_path.with_suffix('.html')))} \(and \.xml, \.json\)$",
        done.stdout,
        re.M,
    ), done.stdout
    assert validate_reports(out) == 1
    assert merged_path.with_suffix(".xml").is_file()
    # Merged once: without paths, the same reports dir has nothing left to merge.
    again = subprocess.run([MERGE, "--reports-dir", str(out)], capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to merge" in again.stdout


def _collected(result: pytest.RunResult) -> dict[str, str]:
    """``--collect-only -q`` output: test id -> its target."""
    ids = [line for line in result.outlines if "::" in line and not line.endswith("[-]")]
    return {i: i.rsplit("[", 1)[1].rstrip("]") for i in ids}


def _subprocess_collect(pytester: pytest.Pytester, inventory: str, *args: str) -> dict[str, str]:
    path = pytester.path / "inventory.toml"
    path.write_text(inventory)
    result = pytester.runpytest_subprocess(
        "-c",
        str(REPO / "pytest.ini"),
        "--rootdir",
        str(REPO),
        "--inventory",
        str(path),
        "-p",
        "no:xdist",
        "--collect-only",
        "-q",
        *args,
        str(REPO / "suites" / "host"),
        str(REPO / "suites" / "http"),
    )
    assert result.ret == 0, output(result)
    return _collected(result)


def test_a_target_keeps_its_shard(pytester, web, monkeypatch):
    """Across processes (Python's own hash() differs per process), inventory order and new
    targets: only the name and N decide."""
    url = web.url("http", "/health")
    first = "".join(f'[[host]]\nname = "h{i}"\n' for i in range(6))
    first += f'[[http]]\nname = "api"\nurl = "{url}"\n'
    later = f'[[http]]\nname = "new-api"\nurl = "{url}"\n[[http]]\nname = "api"\nurl = "{url}"\n'
    later += "".join(f'[[host]]\nname = "{n}"\n' for n in ["n1", "h5", "h4", "n2", "h3", "h2"])
    later += "".join(f'[[host]]\nname = "{n}"\n' for n in ["h1", "n3", "h0"])
    found = {}
    for seed, inventory in (("1", first), ("2", later)):
        monkeypatch.setenv("PYTHONHASHSEED", seed)
        found[seed] = set(_subprocess_collect(pytester, inventory, "--shard=2/3").values())
    originals = {f"h{i}" for i in range(6)} | {"api"}
    ours = {
        t for t in originals if expected_shard(f"{'http' if t == 'api' else 'host'}/{t}", 3) == 2
    }
    assert ours and ours != originals  # some of the first inventory's targets, not all
    assert found["1"] == ours
    assert found["2"] & originals == ours  # the new targets moved none of the old
    assert found["2"] == {
        t
        for t in originals | {"new-api", "n1", "n2", "n3"}
        if expected_shard(f"{'http' if 'api' in t else 'host'}/{t}", 3) == 2
    }


# -- shards with nothing to check ---------------------------------------------------------------


def test_empty_shards_pass_and_the_merge_shows_every_shard(suite, merge, pytester):
    """One host, four shards: three have no target. Each says so and exits 0; the merged report
    lists all four, and the run checked its one host."""
    reports = pytester.path / "reports"
    results = [
        suite.run(
            '[[host]]\nname = "solo"\n',
            "",
            "-m",
            "morning",
            "-k",
            "host_reachable",
            f"--shard={i}/4",
            "--run-id=r4",
            "--archive",
            "--reports-dir",
            str(reports),
            paths=("suites/host",),
        )
        for i in range(4)
    ]
    owner = expected_shard("host/solo", 4)
    for index, result in enumerate(results):
        assert result.ret == 0, output(result)
        said = "none of the run's 1 selected checks is in this shard (0 of the inventory's "
        assert (said in output(result)) == (index != owner)
    (merged_path,) = merged_reports(reports)
    merged = json.loads(merged_path.read_text())
    assert [s["targets"] for s in merged["shards"]] == [int(i == owner) for i in range(4)]
    assert merged["summary"]["passed"] == 1
    assert merged_path.with_suffix(".html").read_text().count("<td>no target</td>") == 3
    done = merge(merged_path.parent, "--reports-dir", reports)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_run_that_checked_nothing_fails_at_the_merge(suite, merge, pytester):
    """Every selected check skipped (no host sets ``reachable``): the shard holding it exits 5 as
    an unsharded run would, the empty one 0, and the merged run 5."""
    reports = pytester.path / "reports"
    results = [
        suite.run(
            '[[host]]\nname = "solo"\n',
            "",
            "-k",
            "dependencies_reachable",
            f"--shard={i}/2",
            "--archive",
            "--reports-dir",
            str(reports),
            paths=("suites/host",),
        )
        for i in range(2)
    ]
    assert [r.ret for r in results] == [5, 0]  # a check skipped for every target is shard 0's
    assert "opscheck: nothing was checked: all 1 selected checks were skipped" in output(results[0])
    done = merge("--reports-dir", reports)
    assert done.returncode == 5, done.stdout + done.stderr
    assert "nothing was checked" in done.stdout
    # A selection that matches nothing at all is nothing on every shard.
    none = suite.run(
        '[[host]]\nname = "solo"\n',
        "",
        "-k",
        "no_such_check",
        "--shard=1/2",
        paths=("suites/host",),
    )
    assert none.ret == pytest.ExitCode.NO_TESTS_COLLECTED


def test_a_shard_whose_checks_all_skipped_passes_when_others_checked(suite, merge, pytester):
    """Shard 0 holds only the check skipped for every target; h2's shard checks h2. Shard 0 says
    so and exits 0: the merged run checked something."""
    reports = pytester.path / "reports"
    args = ("-k", "dependencies_reachable or host_reachable", "--archive", "--reports-dir")
    results = [
        suite.run(
            '[[host]]\nname = "h2"\n',
            "",
            *args,
            str(reports),
            f"--shard={i}/2",
            paths=("suites/host",),
        )
        for i in range(2)
    ]
    assert expected_shard("host/h2", 2) == 1
    assert [r.ret for r in results] == [0, 0]
    said = "opscheck: shard 0/2: its 1 checks were all skipped; the other shards hold 1 more"
    assert said in output(results[0])
    assert "nothing was checked" not in output(results[0])
    done = merge("--reports-dir", reports)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_shard_with_xdist_workers(pytester):
    """Under xdist the controller collects nothing: the workers tell it what the run selected."""
    inventory = pytester.path / "inventory.toml"
    inventory.write_text('[[host]]\nname = "solo"\n')
    empty = 1 - expected_shard("host/solo", 2)
    result = pytester.runpytest_subprocess(
        "-c",
        str(REPO / "pytest.ini"),
        "--rootdir",
        str(REPO),
        "--inventory",
        str(inventory),
        "-n",
        "2",
        "-k",
        "host_reachable",
        f"--shard={empty}/2",
        "--json-report",
        str(pytester.path / "r.json"),
        str(REPO / "suites" / "host"),
    )
    assert result.ret == 0, output(result)
    assert "none of the run's 1 selected checks is in this shard" in output(result)
    document = json.loads((pytester.path / "r.json").read_text())
    assert document["shard"] == {**document["shard"], "index": empty, "selected": 1, "targets": 0}
    assert document["tests"] == []


# -- wrong shards ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["--shard=2/2"], {}, "--shard: 2/2: shards count from 0, as $JOB_COMPLETION_INDEX does"),
        (["--shard=-1/2"], {}, "--shard: expected I/N, shard I of N counted from 0"),
        (["--shard=1/0"], {}, "--shard: 1/0: a run has at least 1 shard, not 0"),
        (["--shard=one/two"], {}, "--shard: expected I/N"),
        ([], {"OPSCHECK_SHARD": "3/3"}, "$OPSCHECK_SHARD: 3/3: shards count from 0"),
        ([], {"OPSCHECK_SHARD_COUNT": "4"}, "$OPSCHECK_SHARD_COUNT=4 needs this shard's index"),
        (
            [],
            {"OPSCHECK_SHARD_COUNT": "2", "JOB_COMPLETION_INDEX": "2"},
            "$JOB_COMPLETION_INDEX/$OPSCHECK_SHARD_COUNT: 2/2: shards count from 0",
        ),
        (["--shard=0/2", "--run-id=a b"], {}, "--run-id: 'a b': up to 200 letters"),
    ],
)
def test_nonsense_shards_stop_the_run(suite, monkeypatch, args, env, said):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = suite.run('[[host]]\nname = "solo"\n', "", *args, paths=("suites/host",))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert said in output(result)


# -- the merge refuses what does not belong together --------------------------------------------


@pytest.fixture
def pair(suite: Suite, pytester: pytest.Pytester) -> dict[str, Path]:
    """Two real shard reports (h0 is in shard 0, h2 in shard 1), with their JUnit XML."""
    inventory = '[[host]]\nname = "h0"\n[[host]]\nname = "h2"\n'
    files = {}
    for index in (0, 1):
        stem = pytester.path / f"s{index}"
        result = suite.run(
            inventory,
            "",
            "-m",
            "morning",
            "-k",
            "host_reachable",
            f"--shard={index}/2",
            f"--json-report={stem}.json",
            f"--junitxml={stem}.xml",
            paths=("suites/host",),
        )
        assert result.ret == 0
        files[f"s{index}"] = stem.with_suffix(".json")
    return files


def edited(path: Path, name: str, change: dict[str, Any]) -> Path:
    document = json.loads(path.read_text())
    for key, value in change.items():
        if key.startswith("shard."):
            document["shard"][key.removeprefix("shard.")] = value
        else:
            document[key] = value
    new = path.with_name(name)
    new.write_text(json.dumps(document))
    return new


def test_the_merge_of_a_complete_pair(pair, merge, tmp_path):
    done = merge(pair["s0"], pair["s1"], "--reports-dir", tmp_path)
    assert done.returncode == 0, done.stderr
    (merged_path,) = merged_reports(tmp_path)
    merged = json.loads(merged_path.read_text())
    assert merged["summary"]["passed"] == 2 and "run_id" not in merged
    assert len(list(ET.parse(merged_path.with_suffix(".xml")).getroot().iter("testcase"))) == 2


def test_the_merge_refuses_a_missing_shard_unless_partial(pair, merge, tmp_path):
    done = merge(pair["s0"], "--reports-dir", tmp_path)
    assert done.returncode == 4
    assert "shard 1/2 missing: the targets of a missing shard were not checked" in done.stderr
    assert merged_reports(tmp_path) == []
    done = merge(pair["s0"], "--partial", "--reports-dir", tmp_path)
    assert done.returncode == 1  # the run is written, and it is not green
    assert "shard 1/2 MISSING" in done.stdout
    (merged_path,) = merged_reports(tmp_path)
    assert "MISSING: its targets were not checked" in merged_path.with_suffix(".html").read_text()


def test_the_merge_refuses_reports_of_other_runs(suite, pair, merge, pytester, tmp_path):
    # Really another run: the evening schedule, on an inventory with one more host.
    suite.run(
        '[[host]]\nname = "h0"\n[[host]]\nname = "h2"\n[[host]]\nname = "h9"\n',
        "",
        "-m",
        "evening",
        "-k",
        "host_reachable",
        "--shard=1/2",
        f"--json-report={pytester.path / 'evening.json'}",
        paths=("suites/host",),
    )
    done = merge(pair["s0"], pytester.path / "evening.json", "--reports-dir", tmp_path)
    assert done.returncode == 4
    lines = done.stderr.splitlines()
    assert len(lines) == 3, lines
    assert lines[0].startswith(
        "opscheck-merge: the reports are not of one run: different schedule: "
        "s0.json (shard 0/2): 'morning'; evening.json (shard 1/2): 'evening'"
    )
    assert "different inventory (SHA-256)" in lines[1]
    assert "different selected checks" in lines[2]

    yesterday = (
        datetime.fromisoformat(json.loads(pair["s1"].read_text())["started"]) - timedelta(days=1)
    ).isoformat()
    cases = [
        ([edited(pair["s1"], "day.json", {"started": yesterday})], "different day"),
        ([edited(pair["s1"], "rid.json", {"run_id": "other"})], "different run id: "),
        ([edited(pair["s1"], "n.json", {"shard.count": 3})], "different number of shards"),
        ([pair["s1"], edited(pair["s1"], "again.json", {})], "shard 1/2 twice: "),
    ]
    for files, said in cases:
        done = merge(pair["s0"], *files, "--reports-dir", tmp_path)
        assert done.returncode == 4 and said in done.stderr, (said, done.stderr)
    assert merged_reports(tmp_path) == []

    # The same shard twice within one run id (a retried pod): the later report counts.
    first = edited(pair["s1"], "first.json", {"run_id": "r"})
    later = edited(
        pair["s1"], "later.json", {"run_id": "r", "finished": "2999-01-01T00:00:00+00:00"}
    )
    done = merge(
        edited(pair["s0"], "zero.json", {"run_id": "r"}), first, later, "--reports-dir", tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "later.json finished last and counts, first.json does not" in done.stdout


def test_the_merge_refuses_what_is_no_shard_report(suite, pair, merge, tmp_path):
    damaged = tmp_path / "damaged.json"  # not under pytester.path: suite.run validates those
    damaged.write_text(pair["s1"].read_text()[:200])
    done = merge(pair["s0"], damaged, "--reports-dir", tmp_path)
    assert done.returncode == 4 and f"{damaged}: not a JSON report" in done.stderr
    suite.run('[[host]]\nname = "h0"\n', "", "-k", "host_reachable", paths=("suites/host",))
    done = merge(pair["s0"], suite.json_path, "--reports-dir", tmp_path)
    assert done.returncode == 4
    assert "not a shard's report (no 'shard': it ran without --shard I/N)" in done.stderr
    assert merge(tmp_path / "absent.json").returncode == 4


# -- the Kubernetes manifests ----------------------------------------------------------------------


def _documents() -> dict[str, dict[str, Any]]:
    yaml = pytest.importorskip("yaml")
    return {
        f"{doc['kind']}/{doc['metadata']['name']}": doc
        for path in sorted(DEPLOY.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc and "metadata" in doc
    }


def test_the_indexed_job_shards_the_run_by_itself(suite, monkeypatch, pytester):
    """The CronJob's Job is Indexed; its pods' environment alone picks their shard: every test
    of the ConfigMap's inventory exactly once over the indexes, a host's logs with the host."""
    docs = _documents()
    job = docs["CronJob/opscheck-morning"]["spec"]["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    count = int(env["OPSCHECK_SHARD_COUNT"]["value"])
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == count
    assert pod["restartPolicy"] == "Never"
    assert env["OPSCHECK_RUN_ID"]["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['batch.kubernetes.io/job-name']"
    )
    rules = {
        r["action"]: r["onExitCodes"]["values"]
        for r in job["podFailurePolicy"]["rules"]
        if "onExitCodes" in r
    }
    assert rules == {"FailIndex": [1], "FailJob": [4]}  # a failed check is not re-run
    assert container["args"][:2] == ["morning", "--archive"]
    assert docs["ServiceAccount/opscheck"]["automountServiceAccountToken"] is False
    assert docs["PersistentVolumeClaim/opscheck-reports"]["spec"]["accessModes"] == [
        "ReadWriteMany"
    ]
    (merger,) = docs["CronJob/opscheck-merge"]["spec"]["jobTemplate"]["spec"]["template"]["spec"][
        "containers"
    ]
    assert merger["command"] == ["opscheck-merge"]
    # The safety-net merge notifies with the shards' inventory and variables.
    merge_env = {e["name"]: e.get("value") for e in merger["env"]}
    assert merge_env["OPSCHECK_INVENTORY"] == env["OPSCHECK_INVENTORY"]["value"]
    assert merger["envFrom"] == container["envFrom"]

    data = dict(docs["ConfigMap/opscheck-config"]["data"])
    key = pytester.path / "id_ed25519"  # the pod's mounted key, which must exist
    key.write_text("key\n")
    data["inventory.toml"] = data["inventory.toml"].replace(
        "/etc/opscheck-ssh/id_ed25519", str(key)
    )
    monkeypatch.setenv("API_TOKEN", "token")
    monkeypatch.setenv("PG_PASSWORD", "password")
    monkeypatch.setenv("OPSCHECK_SHARD_COUNT", str(count))
    seen: dict[str, int] = {}
    for index in range(count):
        monkeypatch.setenv("JOB_COMPLETION_INDEX", str(index))
        result = suite.run(
            data["inventory.toml"], data["thresholds.toml"], "-m", "morning", "--collect-only", "-q"
        )
        assert result.ret == 0, output(result)
        for test_id, target in _collected(result).items():
            assert seen.setdefault(test_id, index) == index
            if target == "web1-nginx" or target.startswith("web1-nginx/"):
                assert index == expected_shard("host/web1", count)
    monkeypatch.delenv("JOB_COMPLETION_INDEX")
    monkeypatch.delenv("OPSCHECK_SHARD_COUNT")
    whole = suite.run(
        data["inventory.toml"], data["thresholds.toml"], "-m", "morning", "--collect-only", "-q"
    )
    assert set(seen) == set(_collected(whole))
    assert os.environ.get("JOB_COMPLETION_INDEX") is None


def test_the_merge_joins_the_shards_junit_warnings_cases(suite, merge, pytester, tmp_path):
    """Each shard's --junit-warnings case lists its own WARNs; the merged XML has one such case
    listing both (a viewer keeps one case of a name)."""
    inventory = '[[host]]\nname = "h0"\n[[host]]\nname = "h2"\n'
    thresholds = "[host.disk_used_pct]\nwarn = 0.001\ncrit = 100\n"  # this disk: WARN on both
    files = []
    for index in (0, 1):
        stem = pytester.path / f"w{index}"
        result = suite.run(
            inventory,
            thresholds,
            "-k",
            "disk_used",
            f"--shard={index}/2",
            "--junit-warnings",
            f"--json-report={stem}.json",
            f"--junitxml={stem}.xml",
            paths=("suites/host",),
        )
        assert result.ret == 0, "\n".join(result.outlines)
        files.append(stem.with_suffix(".json"))
    done = merge(*files, "--reports-dir", tmp_path)
    assert done.returncode == 0, done.stderr
    (merged_path,) = merged_reports(tmp_path)
    root = ET.parse(merged_path.with_suffix(".xml")).getroot()
    (case,) = [c for c in root.iter("testcase") if c.get("name") == "warnings"]
    (skipped,) = case.findall("skipped")
    assert skipped.text and "h0" in skipped.text and "h2" in skipped.text, skipped.text
    suite_node = next(root.iter("testsuite"))
    cases = list(root.iter("testcase"))
    assert suite_node.get("tests") == str(len(cases))
    assert suite_node.get("skipped") == str(sum(1 for c in cases if c.find("skipped") is not None))
