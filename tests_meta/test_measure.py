"""Every check measured at once, each judged in order: proved with a real server that answers only
when requests arrive together, and by the same verdicts, records and failures as one at a time."""

from __future__ import annotations

from opscheck.testbed.http import HttpTestbed

ME = '[[host]]\nname = "me"\nuri = "local://"\ncpu_sample = "100ms"\n'


def _together(web: HttpTestbed, parties: int, wait: float = 5) -> str:
    """``parties`` endpoints whose server answers 200 only while all of them are asked at once
    (waiting up to ``wait`` seconds for the others)."""
    return "".join(
        f'[[http]]\nname = "shard{n}"\nsamples = 0\n'
        f'url = "{web.url("http", f"/together?parties={parties}&wait={wait}")}"\n'
        for n in range(parties)
    )


def test_targets_are_measured_at_once(suite, web):
    suite.run(_together(web, 3), "", "-k", "status_expected")
    assert {t: r["outcome"] for t, r in suite.results().items()} == {
        f"test_status_expected[shard{n}]": "passed" for n in range(3)
    }


def test_concurrency_1_measures_one_check_at_a_time(suite, web):
    suite.run(_together(web, 2, wait=0.5), "", "-k", "status_expected", "--concurrency", "1")
    results = suite.results()
    assert [r["outcome"] for r in results.values()] == ["failed", "failed"]
    assert "answered 504 Gateway Timeout" in results["test_status_expected[shard0]"]["message"]


def _verdicts(suite) -> dict[str, tuple[str, list[str], list[str]]]:
    """What an operator sees of each check: its outcome, its records' verdicts and checks."""
    return {
        name: (
            result["outcome"],
            [r["verdict"] for r in result.get("records", [])],
            [r["check"] for r in result.get("records", [])],
        )
        for name, result in suite.results().items()
    }


def test_ahead_and_one_at_a_time_agree(suite, web):
    """Numbers, yes/no answers, a batch with a breach, a skip, a dead target: the same outcomes,
    records and failure lines measured ahead as measured in the test."""
    inventory = (
        ME
        + 'services = ["no-such-daemon"]\n'
        + f'[[http]]\nname = "api"\nurl = "{web.url("http", "/health")}"\nsamples = 2\n'
        + 'json_limits = { connections = { warn = 1, crit = 2 }, "missing.field" = { crit = 1 } }\n'
        + '[[http]]\nname = "dead"\nurl = "http://127.0.0.1:9/health"\ncontains = "ok"\n'
    )
    # Host levels no value reaches: the messages compared below must not depend on the load.
    thresholds = "".join(
        f'[host.{key}]\nwarn = "100%"\ncrit = "100%"\n'
        for key in ("cpu_busy_pct", "memory_used_pct", "disk_used_pct", "inode_used_pct")
    )
    thresholds += '[host.load_per_core]\nwarn = 1000\ncrit = 1000\n[host.uptime]\nwarn = "1s"\n'
    suite.run(inventory, thresholds, "--concurrency", "1")
    serial = _verdicts(suite)
    serial_messages = {t: r.get("message") for t, r in suite.results().items()}
    suite.run(inventory, thresholds)
    assert _verdicts(suite) == serial
    assert {t: r.get("message") for t, r in suite.results().items()} == serial_messages
    assert serial["test_json_fields_within_limits[api]"] == (
        "failed",
        ["CRIT", "CRIT"],
        ["http.json_limits", "http.json_limits"],
    )
    assert serial["test_services_running[me]"][0] == "failed"


def test_a_dead_target_fails_its_connectivity_check_with_the_real_error(suite):
    """Whichever of its checks is measured first, the connectivity check says what is wrong and
    the others point to it."""
    dead = '[[http]]\nname = "dead"\nurl = "http://127.0.0.1:9/health"\ncontains = "ok"\n'
    dead += 'json = { status = "ok" }\n'
    suite.run(ME + dead, "", "-k", "dead")
    results = suite.results()
    assert results["test_status_expected[dead]"]["reason"].startswith(
        "dead: unreachable: GET http://127.0.0.1:9/health: "
    )
    for other in ("test_body_contains[dead]", "test_json_fields_expected[dead]"):
        assert results[other]["outcome"] == "not_run", results[other]
        assert results[other]["reason"] == (
            "not run: dead unreachable (see test_status_expected[dead])"
        ), results[other]
