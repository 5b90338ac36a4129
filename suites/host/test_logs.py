"""Runbook: "Check log file sizes" (`du -sh /logs/*`) - logs are not eating the disk."""

import pytest

from opscheck.probes import host as probes

pytestmark = [pytest.mark.host, pytest.mark.capacity]


@pytest.mark.morning
@pytest.mark.evening
@pytest.mark.applies_to("log_dirs")
def test_log_dirs_below_size_limit(host, host_target, limits):
    """Each directory in `log_dirs` stays below its size limit (default warn 1 GB, crit 5 GB)."""
    limits.check("host.log_dir_size", probes.log_dir_sizes(host, host_target))
