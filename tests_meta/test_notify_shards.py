"""A sharded run is one run: one notification and one end ping, for the merged run, sent by the
last shard to finish (``--archive`` and a run id, a shared reports folder) or by
``opscheck-merge`` (a CI matrix); the shards stay silent but for their ``/start``. Against a real
local receiver (opscheck.testbed.demo.Receiver), the HTTP testbed's healthy and failing
endpoints as the two shards' targets."""

from __future__ import annotations

import json
import re
import shutil
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opscheck.testbed.demo import Receiver
from opscheck.testbed.http import HttpTestbed
from tests_meta.test_shard import expected_shard, merged_reports, output

HTTP = ("suites/http",)
CHECK = str(uuid.uuid4())  # the heartbeat check's UUID: a secret
SELECT = ("-m", "morning")
SILENT = (
    "no notification from a shard: the merged run sends one (the last shard to finish merges "
    "with --archive and a run id; else opscheck-merge)"
)


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with Receiver() as got:
        monkeypatch.setenv("TEST_SHARD_HOOK", f"{got.url}/hook")
        monkeypatch.setenv("TEST_SHARD_BEAT", f"{got.url}/ping/{CHECK}")
        yield got


def inventory(web: HttpTestbed) -> str:
    """A webhook and a heartbeat; ``broken`` (HTTP 500) in shard 0, ``api`` in shard 1."""
    assert (expected_shard("http/broken", 2), expected_shard("http/api", 2)) == (0, 1)
    return (
        '[settings.notify]\non = "always"\n'
        '[settings.notify.webhook]\nurl_env = "TEST_SHARD_HOOK"\n'
        '[settings.heartbeat]\nurl_env = "TEST_SHARD_BEAT"\n\n'
        f'[[http]]\nname = "api"\nurl = "{web.url("http", "/health")}"\nsamples = 0\n\n'
        f'[[http]]\nname = "broken"\nurl = "{web.url("http", "/error")}"\nsamples = 0\n'
    )


def shard(suite: Any, web: HttpTestbed, index: int, run_id: str, reports: Path) -> str:
    result = suite.run(
        inventory(web),
        "",
        *SELECT,
        f"--shard={index}/2",
        f"--run-id={run_id}",
        "--archive",
        f"--reports-dir={reports}",
        paths=HTTP,
    )
    assert result.ret == (1 if index == 0 else 0), output(result)
    return output(result)


def sent(receiver: Receiver) -> Counter[str]:
    return Counter(got["path"] for got in receiver.received)


def test_the_last_shard_notifies_and_pings_for_the_merged_run(suite, web, receiver, pytester):
    reports = pytester.path / "reports"
    first = shard(suite, web, 0, "run-7", reports)
    assert f"opscheck: shard 0/2: {SILENT}" in first
    assert sent(receiver) == {f"/ping/{CHECK}/start": 1}  # its failure waits for the merge
    last = shard(suite, web, 1, "run-7", reports)
    assert "opscheck: merged morning run run-7, 2 shards" in last
    assert "opscheck: notified webhook in" in last and SILENT not in last

    # One notification and one end ping for the run, which failed on shard 0's target.
    assert sent(receiver) == {f"/ping/{CHECK}/start": 2, "/hook": 1, f"/ping/{CHECK}/fail": 1}
    (merged_path,) = merged_reports(reports)
    merged = json.loads(merged_path.read_text())
    hook = next(json.loads(got["body"]) for got in receiver.received if got["path"] == "/hook")
    assert hook["status"] == "CRIT" and hook["exit_code"] == 1
    assert hook["counts"] == merged["summary"]  # both shards' checks, not the last one's
    assert hook["report"] == str(merged_path.with_suffix(".html"))
    assert any(line.startswith("CRIT broken:") for line in hook["problems"]), hook["problems"]
    assert re.match(r"1 CRIT · \d+ OK", hook["headline"]), hook["headline"]
    assert merged["notifications"] == [{"channel": "webhook", "sent": True, "error": None}]
    # Both shards' /start and the merge's /fail carry the run's one rid: the switch pairs them.
    pings = [got for got in receiver.received if got["path"].startswith("/ping/")]
    assert len({got["query"] for got in pings}) == 1, pings
    end = pings[-1]
    assert end["path"] == f"/ping/{CHECK}/fail"
    assert end["body"].splitlines()[0] == hook["headline"]
    assert f"report: {merged_path.with_suffix('.html')}" in end["body"]
    assert CHECK not in first + last


def test_opscheck_merge_notifies_for_a_ci_matrix(suite, web, receiver, pytester, merge, tmp_path):
    """Each runner archives its own shard (no merge there); the merge job notifies and pings."""
    artifacts = tmp_path / "artifacts"
    for index in (0, 1):
        said = shard(suite, web, index, "ci-41", tmp_path / f"runner{index}")
        assert f"opscheck: shard {index}/2: {SILENT}" in said
        shutil.copytree(tmp_path / f"runner{index}", artifacts / f"shard-{index}")
    assert sent(receiver) == {f"/ping/{CHECK}/start": 2}

    out = tmp_path / "merged"
    done = merge(artifacts, "--reports-dir", out, "--inventory", pytester.path / "inventory.toml")
    assert done.returncode == 1, done.stderr
    assert re.search(r"^opscheck-merge: notified webhook in \d+ ms$", done.stdout, re.M)
    assert sent(receiver) == {f"/ping/{CHECK}/start": 2, "/hook": 1, f"/ping/{CHECK}/fail": 1}
    (merged_path,) = merged_reports(out)
    hook = next(json.loads(got["body"]) for got in receiver.received if got["path"] == "/hook")
    assert hook["counts"] == json.loads(merged_path.read_text())["summary"]
    assert len({got["query"] for got in receiver.received if "/ping/" in got["path"]}) == 1

    # Merged once: a second merge of the same folder sends nothing more.
    again = merge("--reports-dir", out, "--inventory", pytester.path / "inventory.toml")
    assert again.returncode == 0 and "nothing to merge" in again.stdout
    assert sum(sent(receiver).values()) == 4


def test_opscheck_merge_checks_the_notification_settings_first(
    suite, web, receiver, pytester, merge, tmp_path, monkeypatch
):
    for index in (0, 1):
        shard(suite, web, index, "ci-42", tmp_path / "runner")  # one folder: shard 1 merged it
    assert sent(receiver)["/hook"] == 1
    files = sorted((tmp_path / "runner").rglob("*.shard-*.json"))
    inventory_path = pytester.path / "inventory.toml"

    # A variable the merge job lacks: refused before anything is merged, as a run refuses.
    monkeypatch.delenv("TEST_SHARD_HOOK")
    out = tmp_path / "merged"
    done = merge(*files, "--reports-dir", out, "--inventory", inventory_path)
    assert done.returncode == 4
    assert done.stderr == (
        "opscheck-merge: inventory.toml: settings.notify.webhook.url_env: environment variable "
        "TEST_SHARD_HOOK is not set\nopscheck-merge: (--no-notify merges without notifying)\n"
    )
    assert not out.exists()
    nope = tmp_path / "nope.toml"
    missing = merge(*files, "--reports-dir", out, "--inventory", nope)
    assert missing.returncode == 4
    assert missing.stderr.startswith(f"opscheck-merge: --inventory: {nope}: no such file\n")

    # Another inventory than the shards' (edited since): merged and sent, with a note.
    monkeypatch.setenv("TEST_SHARD_HOOK", f"{receiver.url}/hook")
    edited = tmp_path / "edited.toml"
    edited.write_text(inventory_path.read_text() + "# edited after the run\n")
    noted = merge(*files, "--reports-dir", out, "--inventory", edited)
    assert noted.returncode == 1 and sent(receiver)["/hook"] == 2
    assert (
        f"opscheck-merge: note: {edited} is not the inventory the shards ran with (its SHA-256 "
        "differs): its [settings] say where this run's notification goes\n"
    ) in noted.stdout

    # --no-notify merges and sends nothing.
    quiet = merge(*files, "--reports-dir", out, "--inventory", inventory_path, "--no-notify")
    assert quiet.returncode == 1 and merged_reports(out)
    assert sent(receiver)["/hook"] == 2 and "notified" not in quiet.stdout


def test_a_partial_merge_says_the_missing_shard_first(
    suite, web, receiver, pytester, merge, tmp_path
):
    """Shard 0 (the broken target's) never reported: merged with --partial, the run is CRIT for
    its missing shard first, though every check that ran passed."""
    shard(suite, web, 1, "ci-43", tmp_path / "runner1")
    (mine,) = (tmp_path / "runner1").rglob("*.shard-1-of-2.json")
    inventory_path = pytester.path / "inventory.toml"
    out = tmp_path / "merged"
    done = merge(mine, "--partial", "--reports-dir", out, "--inventory", inventory_path)
    assert done.returncode == 1, done.stderr
    hook = next(json.loads(got["body"]) for got in receiver.received if got["path"] == "/hook")
    assert hook["status"] == "CRIT", hook
    assert hook["problems"] == ["CRIT shard 0/2 missing: its targets were not checked"]
    end = receiver.received[-1]
    assert end["path"] == f"/ping/{CHECK}/fail"
    assert end["body"].splitlines()[1] == "CRIT shard 0/2 missing: its targets were not checked"
