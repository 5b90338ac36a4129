"""Runbook: "Disk I/O" (performance summary), `iostat -x`: how busy each disk is."""

import pytest

from opscheck.probes import host as probes

pytestmark = [pytest.mark.host, pytest.mark.performance]


@pytest.mark.morning
@pytest.mark.midday
@pytest.mark.applies_to("disks")
def test_disk_busy_below_limit(host, host_target, limits):
    """Disk I/O (`iostat -x` %util): each disk of `disks` busy < 95 % over `io_sample`."""
    limits.check("host.disk_busy_pct", probes.disk_busy_pct(host, host_target))
