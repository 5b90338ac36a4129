"""Runbook: "Check Alertmanager" - it answers (`amtool check-config`, the status page) and its
cluster sees its peers (`amtool cluster show`)."""

import pytest

from opscheck.probes import alertmanager as probes

pytestmark = [pytest.mark.alertmanager, pytest.mark.health, pytest.mark.morning]


@pytest.mark.midday
@pytest.mark.evening
def test_alertmanager_reachable(alertmanager, limits):
    """Alertmanager answers `/-/ready` and `/api/v2/status`; the version is in the measurement."""
    limits.check("alertmanager.reachable", probes.reachable(alertmanager))


def test_cluster_healthy(alertmanager, alertmanager_target, limits):
    """`cluster.status` is ready with >= `min_peers` peers, or clustering is off (one instance)."""
    measured = probes.cluster(alertmanager, alertmanager_target.min_peers)
    limits.check("alertmanager.cluster", measured)
