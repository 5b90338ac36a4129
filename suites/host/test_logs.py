"""Runbook: "Check log file sizes" (`du -sh /logs/*`) - logs are not eating the disk."""

import pytest

from opscheck.probes import host as probes

pytestmark = [pytest.mark.host, pytest.mark.capacity]


@pytest.mark.morning
@pytest.mark.evening
def test_log_dirs_below_size_limit(host, host_target, limits):
    """Each directory in `log_dirs` stays below its size limit (default warn 1 GB, crit 5 GB)."""
    if not host_target.log_dirs:
        pytest.skip(f"no log_dirs listed for host {host_target.name}")
    limits.check("host.log_dir_size", [probes.dir_size(host, d) for d in host_target.log_dirs])
