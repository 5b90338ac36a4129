"""Runbook: "Resource utilization check" for Docker - `docker stats --no-stream`: memory of each
container with a limit, against that limit."""

import pytest

from opscheck.probes import docker as probes

pytestmark = [pytest.mark.docker, pytest.mark.capacity, pytest.mark.morning, pytest.mark.midday]


def test_container_memory_below_limit(docker, docker_target, limits):
    """Memory used (less page cache) < 80 % of the container's limit (containers with one)."""
    with limits.batch():
        for measured in probes.memory_used_pct(docker, docker_target):
            limits.check("docker.memory_used_pct", measured)
