"""Runbook: "Check overall system status" - can we reach the machine at all?"""

import pytest

from opscheck.probes import host as probes

pytestmark = [pytest.mark.host, pytest.mark.health]


@pytest.mark.morning
@pytest.mark.midday
@pytest.mark.evening
def test_host_reachable(host, host_target, limits):
    """The host answers a command through its testinfra backend."""
    limits.check("host.reachable", probes.reachable(host, host_target))


@pytest.mark.morning
def test_no_recent_reboot(host, limits):
    """An unplanned reboot overnight shows as uptime below 24 h (a warning by default)."""
    limits.check("host.uptime", probes.uptime(host))
