"""Runbook: "Check service status" (`systemctl status nginx`), listening ports, reachability."""

import pytest

from opscheck.probes import host as probes

pytestmark = [pytest.mark.host, pytest.mark.health]


@pytest.mark.morning
@pytest.mark.midday
def test_services_running(host, host_target, limits):
    """Every service named in `services` is running."""
    if not host_target.services:
        pytest.skip(f"no services listed for host {host_target.name}")
    states = [probes.service_running(host, name) for name in host_target.services]
    down = [text for ok, text in states if not ok]
    limits.expect("host.services", not down, "; ".join(down) or f"{len(states)} running",
                  "running: " + ", ".join(host_target.services))


@pytest.mark.morning
def test_ports_listening(host, host_target, limits):
    """Every port named in `ports` has a listener (`ss -tln`)."""
    if not host_target.ports:
        pytest.skip(f"no ports listed for host {host_target.name}")
    closed = [str(p) for p in host_target.ports if not probes.listening(host, p)]
    limits.expect("host.ports", not closed,
                  f"not listening: {', '.join(closed)}" if closed else "all listening",
                  "listening: " + ", ".join(str(p) for p in host_target.ports))


@pytest.mark.morning
def test_dependencies_reachable(host, host_target, opscheck_run, limits):
    """Every `host:port` in `reachable` accepts a TCP connection from this host (`nc -z`)."""
    if not host_target.reachable:
        pytest.skip(f"no reachable addresses listed for host {host_target.name}")
    timeout = opscheck_run.timeout(host_target)
    states = [probes.reachable(host, address, timeout) for address in host_target.reachable]
    bad = [text for ok, text in states if not ok]
    limits.expect("host.reachable_addresses", not bad,
                  "; ".join(bad) or f"{len(states)} reachable", "reachable")
