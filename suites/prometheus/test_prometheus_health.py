"""Runbook: "Check Prometheus" - it answers and is ready, every target is up (Status > Targets),
rules evaluate (Status > Rules), the last config reload worked, and how many series it holds."""

import pytest

from opscheck.probes import prometheus as probes

pytestmark = [pytest.mark.prometheus, pytest.mark.health, pytest.mark.morning]


@pytest.mark.midday
@pytest.mark.evening
def test_prometheus_reachable(prometheus, limits):
    """`/-/ready` answers 200; the version (`/api/v1/status/buildinfo`) is in the measurement."""
    limits.check("prometheus.reachable", probes.reachable(prometheus))


@pytest.mark.midday
def test_scrape_targets_up(prometheus, limits):
    """`up == 0`: no scrape target down per job, each down one with its `lastError`."""
    counts, shares = probes.targets_down(prometheus)
    with limits.batch():
        limits.check("prometheus.targets_down", counts)
        limits.check("prometheus.targets_down_pct", shares)


def test_rule_groups_evaluate(prometheus, limits):
    """Every rule group's rules evaluate without error (`/api/v1/rules` health, lastError)."""
    limits.check("prometheus.rule_groups", probes.rule_groups(prometheus))


def test_config_reload_succeeded(prometheus, limits):
    """`prometheus_config_last_reload_successful` is 1 (runtimeinfo `reloadConfigSuccess`)."""
    limits.check("prometheus.config_reload", probes.config_reload(prometheus))


@pytest.mark.weekly
@pytest.mark.capacity
def test_head_series(prometheus, limits):
    """Series in the TSDB head (`/api/v1/status/tsdb`), for the trend; levels if set."""
    limits.check("prometheus.head_series", probes.head_series(prometheus))
