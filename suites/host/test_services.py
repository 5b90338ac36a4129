"""Runbook: "Check service status" (`systemctl status nginx`), listening ports, reachability."""

import pytest

from opscheck.probes import host as probes

pytestmark = [pytest.mark.host, pytest.mark.health]


@pytest.mark.morning
@pytest.mark.midday
@pytest.mark.applies_to("services")
def test_services_running(host, host_target, limits):
    """Every service named in `services` is running."""
    limits.check("host.services", probes.services_running(host, host_target))


@pytest.mark.morning
@pytest.mark.applies_to("ports")
def test_ports_listening(host, host_target, limits):
    """Every port named in `ports` has a listener (`ss -tln`)."""
    limits.check("host.ports", probes.ports_listening(host, host_target))


@pytest.mark.morning
@pytest.mark.applies_to("reachable")
def test_dependencies_reachable(host, host_target, opscheck_run, limits):
    """Every `host:port` in `reachable` accepts a TCP connection from this host (`nc -z`)."""
    timeout = opscheck_run.timeout(host_target)
    limits.check("host.reachable_addresses", probes.reachable_addresses(host, host_target, timeout))
