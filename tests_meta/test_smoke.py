import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from opscheck.config.loading import load
from opscheck.testbed import demo
from opscheck.testbed.demo import monitoring, monitoring_inventory
from opscheck.testbed.http import HttpTestbed

REPO = Path(__file__).resolve().parents[1]
# Each example inventory with the thresholds it is written for (None: the repository's).
EXAMPLES = {
    "ai-media-search.toml": None,
    "fossawork.toml": None,
    "paperless-maverick.toml": "thresholds-strict.toml",
}
MONITORING = ("suites/prometheus", "suites/alertmanager", "suites/metrics")


def test_default_inventory_runs(suite):
    result = suite.run('[[host]]\nname = "me"\nuri = "local://"\n', "", "-m", "morning")
    assert result.ret in (0, 1)
    assert suite.results()["test_host_reachable[me]"]["outcome"] == "passed"


def test_every_example_is_listed():
    found = {p.name for p in (REPO / "examples").glob("*.toml") if "thresholds" not in p.name}
    assert found == set(EXAMPLES)


@pytest.mark.parametrize("inventory", sorted(EXAMPLES))
def test_examples_validate(inventory, monkeypatch, tmp_path):
    """An example is a working inventory once its variables are set and its SSH key exists."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    (tmp_path / ".ssh" / "opscheck_ed25519").write_text("")
    monkeypatch.setenv("MATARESIT_HEALTH_TOKEN", "example-token-of-some-length")
    paired = EXAMPLES[inventory]
    config = load(REPO / "examples" / inventory, REPO / "examples" / paired if paired else None)
    if inventory == "paperless-maverick.toml":  # the runbook's Prometheus and /metrics lines
        (prom,) = config.inventory.prometheus
        assert len(prom.queries) == 6
        assert [a.name for a in config.inventory.alertmanager] == ["alerts"]
        (app,) = config.inventory.metrics
        assert [m.metric for m in app.limits] == [
            "queue_depth",
            "queue_processing_time_seconds",
            "active_users_1h",
            "receipts_processed_1h",
            "total_users",
        ]
        (cluster,) = config.inventory.kubernetes  # the runbook's kubectl lines
        assert cluster.namespaces == ["paperless-maverick", "database"]
        sources = [log.kubernetes for log in config.inventory.logs if log.kubernetes]
        assert [k.deployment for k in sources] == ["paperless-maverick", "embedding-queue-workers"]
    if inventory == "ai-media-search.toml":  # the runbook's docker ps / docker logs lines
        (app,) = config.inventory.docker
        assert app.project == "ai-media-search"
        assert app.containers == ["api-container", "worker-container"]
        assert [log.name for log in config.inventory.logs if log.docker] == [
            "api-container",
            "worker",
        ]


def test_demo_monitoring_is_green_with_one_warning(suite, tmp_path):
    """The demo's Prometheus, Alertmanager and /metrics checks: all pass but the PromQL line
    deliberately past its warn level (the offsite copy 30 h old)."""
    with monitoring(tmp_path / "monitoring") as watch:
        watch.wait()
        result = suite.run(monitoring_inventory(watch), "", "-m", "morning", paths=MONITORING)
    assert result.ret == 0
    results = suite.results()
    not_ok = {name: r["verdict"] for name, r in results.items() if r["verdict"] != "OK"}
    assert not_ok == {"test_query_within_limits[prom/offsite-sync-age]": "WARN"}
    warned = results["test_query_within_limits[prom/offsite-sync-age]"]
    assert "30.0 h > warn 26.0 h" in warned["message"]
    assert len(results) == 18
    firing = results["test_no_alerts_firing[alerts]"]
    assert "Watchdog" in str(firing)  # the rule fired and reached Alertmanager


def test_demo_waives_one_warning_and_notifies_its_receiver(suite, tmp_path, monkeypatch):
    """`make demo`'s waivers.toml and end-of-run settings on its API endpoint: the connections
    WARN is WAIVED with its reason, and the local receiver gets the webhook's JSON and the
    heartbeat's /start and success (opscheck.testbed.demo.Receiver, a real HTTP server)."""
    waivers = tmp_path / "waivers.toml"
    waivers.write_text(demo.waivers_toml(datetime.now(UTC).date()))
    with HttpTestbed() as bed, demo.Receiver() as receiver:
        monkeypatch.setenv(demo.WEBHOOK_ENV, receiver.url + demo.WEBHOOK_PATH)
        monkeypatch.setenv(demo.HEARTBEAT_ENV, receiver.url + demo.HEARTBEAT_PATH)
        inventory = demo.api_health(bed) + demo.notify_inventory()
        result = suite.run(inventory, "", f"--waivers={waivers}", paths=("suites/http",))
    assert result.ret == 0, "\n".join(result.outlines)
    waived = suite.results()["test_json_fields_within_limits[api-health]"]
    assert waived["outcome"] == "waived"
    (record,) = waived["records"]
    assert record["verdict"] == "WARN" and record["measured"] == "connections 12"
    assert record["waived"].endswith(f"by alice: {demo.WAIVER_REASON}")
    ping = demo.HEARTBEAT_PATH
    assert receiver.paths() == [f"{ping}/start", demo.WEBHOOK_PATH, ping]
    sent = json.loads(receiver.received[1]["body"])
    assert sent["status"] == "OK" and "1 WAIVED" in sent["headline"], sent
    assert sent["problems"] == []  # a waived WARN is not a problem, but it is said
    (said,) = sent["waived"]
    assert said.startswith("WAIVED api-health: connections 12 > warn 10"), said
    assert said.endswith(f"by alice: {demo.WAIVER_REASON}"), said
