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


def _jails(host, host_target, opscheck_run):
    jails = probes.fail2ban_status(host, opscheck_run.timeout(host_target))
    if jails is None:
        pytest.skip(f"{host_target.name}: fail2ban = true, but the host has no fail2ban-client")
    return jails


def test_fail2ban_jails_active(host, host_target, opscheck_run, limits):
    """`fail2ban-client status` answers (read-only) and lists at least one jail."""
    jails = _jails(host, host_target, opscheck_run)
    names = ", ".join(j.name for j in jails)
    limits.expect(
        "host.fail2ban",
        bool(jails),
        f"fail2ban jails: {names}" if jails else "fail2ban-server runs no jail",
        "at least one jail",
    )


def test_fail2ban_bans_within_limits(host, host_target, opscheck_run, limits):
    """Addresses each jail bans now (`Currently banned`), against host.fail2ban_banned."""
    limits.check(
        "host.fail2ban_banned", probes.fail2ban_banned(_jails(host, host_target, opscheck_run))
    )
