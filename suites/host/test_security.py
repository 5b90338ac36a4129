"""Runbook: "Security Status Review" - fail2ban (`fail2ban-client status`, `fail2ban-client
status sshd`): the server answers, its jails run, and how many addresses each bans."""

import pytest

from opscheck.probes import logs as probes

pytestmark = [
    pytest.mark.host,
    pytest.mark.security,
    pytest.mark.morning,
    pytest.mark.applies_to("fail2ban"),
]


def test_fail2ban_jails_active(host, host_target, opscheck_run, limits):
    """`fail2ban-client status` answers (read-only) and lists at least one jail."""
    jails = probes.fail2ban_jails(host, opscheck_run.timeout(host_target))
    limits.check("host.fail2ban", jails)


def test_fail2ban_bans_within_limits(host, host_target, opscheck_run, limits):
    """Addresses each jail bans now (`Currently banned`), against host.fail2ban_banned."""
    bans = probes.fail2ban_bans(host, opscheck_run.timeout(host_target))
    limits.check("host.fail2ban_banned", bans)
