"""Runbook: "High Resource Processes" (`ps aux --sort=-%cpu | head -10`), "No
resource-intensive runaway processes", "Check for memory leaks: `ps aux --sort=-%mem | head`",
and the network a host needs: interfaces up (`ip -s link`) with their error and drop counters,
no listener beyond the expected ones (`ss -tln`)."""

import pytest

from opscheck.probes import host_net as probes

pytestmark = [pytest.mark.host]


@pytest.mark.health
@pytest.mark.morning
@pytest.mark.midday
@pytest.mark.applies_to("interfaces")
def test_interfaces_up(host, host_target, limits):
    """Every interface in `interfaces` exists and is up (`ip link`)."""
    limits.check("host.interfaces", probes.interfaces_up(host, host_target))


@pytest.mark.errors
@pytest.mark.morning
@pytest.mark.applies_to("interfaces")
def test_interface_errors_below_limit(host, host_target, limits):
    """Receive and transmit errors per interface (`ip -s link`), totals since boot."""
    limits.check("host.interface_errors", probes.interface_errors(host, host_target))


@pytest.mark.errors
@pytest.mark.morning
@pytest.mark.applies_to("interfaces")
def test_interface_drops_below_limit(host, host_target, limits):
    """Receive and transmit drops per interface (`ip -s link`), totals since boot."""
    limits.check("host.interface_drops", probes.interface_drops(host, host_target))


@pytest.mark.security
@pytest.mark.morning
@pytest.mark.applies_to("listening")
def test_no_unexpected_listeners(host, host_target, limits):
    """No TCP port listens beyond those in `listening` (`ss -tln`)."""
    limits.check("host.listening", probes.listening_expected(host, host_target))


@pytest.mark.capacity
@pytest.mark.morning
@pytest.mark.midday
@pytest.mark.applies_to("processes")
def test_processes_within_limits(host, host_target, limits):
    """Each process in `processes` runs within its memory and CPU limits (`ps aux`)."""
    limits.check("host.processes", probes.processes_within_limits(host, host_target))
