"""Runbook: "Check service status" (`systemctl status nginx`), listening ports, reachability."""

import pytest

from opscheck.probes import host as probes

pytestmark = [pytest.mark.host, pytest.mark.health]


@pytest.mark.morning
@pytest.mark.midday
@pytest.mark.applies_to("services")
def test_services_running(host, host_target, limits):
    """Every service named in `services` is running."""
    states = probes.services_running(host, host_target.services)
    down = [text for ok, text in states if not ok]
    limits.expect(
        "host.services",
        not down,
        "; ".join(down or [text for _, text in states]),
        "running: " + ", ".join(host_target.services),
    )


@pytest.mark.morning
@pytest.mark.applies_to("ports")
def test_ports_listening(host, host_target, limits):
    """Every port named in `ports` has a listener (`ss -tln`)."""
    closed = probes.not_listening(host, host_target.ports)
    limits.expect(
        "host.ports",
        not closed,
        f"not listening: {', '.join(closed)}" if closed else "all listening",
        "listening: " + ", ".join(str(p) for p in host_target.ports),
    )


@pytest.mark.morning
@pytest.mark.applies_to("reachable")
def test_dependencies_reachable(host, host_target, opscheck_run, limits):
    """Every `host:port` in `reachable` accepts a TCP connection from this host (`nc -z`)."""
    timeout = opscheck_run.timeout(host_target)
    states = probes.reachable(host, host_target.reachable, timeout)
    bad = [text for ok, text in states if not ok]
    limits.expect(
        "host.reachable_addresses",
        not bad,
        "; ".join(bad) or f"{len(states)} reachable",
        "reachable",
    )
