"""Runbook: "Resource Utilization Check" - disk, inodes, memory, CPU and load within limits."""

import pytest

from opscheck.probes import host as probes

pytestmark = [pytest.mark.host, pytest.mark.capacity]


@pytest.mark.morning
@pytest.mark.midday
def test_disk_used_below_limit(host, host_target, limits):
    """Disk usage < 80 % on every mount (`df -h`)."""
    limits.check("host.disk_used_pct", probes.disk_used_pct(host, host_target))


@pytest.mark.morning
def test_inodes_used_below_limit(host, host_target, limits):
    """Inodes used < 90 % on every mount (`df -i`): a disk can be full with space left."""
    limits.check("host.inode_used_pct", probes.inode_used_pct(host, host_target))


@pytest.mark.morning
@pytest.mark.midday
def test_memory_used_below_limit(host, limits):
    """Memory utilization < 85 % (`free`, counting MemAvailable)."""
    limits.check("host.memory_used_pct", probes.memory_used_pct(host))


@pytest.mark.morning
@pytest.mark.midday
def test_load_per_core_below_limit(host, limits):
    """System load acceptable (`uptime`): 1-minute load per core below 2."""
    limits.check("host.load_per_core", probes.load_per_core(host))


@pytest.mark.morning
@pytest.mark.midday
def test_cpu_busy_below_limit(host, host_target, limits):
    """CPU utilization < 80 % (`top -bn1`), sampled over `cpu_sample` seconds."""
    limits.check("host.cpu_busy_pct", probes.cpu_busy_pct(host, host_target))
