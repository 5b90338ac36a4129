"""Runbook: "Resource utilization check" for Docker - `docker stats --no-stream`: memory and CPU of
each container against its limit; `docker system df`: disk used by images, volumes, build cache."""

import pytest

from opscheck.probes import docker as probes

pytestmark = [pytest.mark.docker, pytest.mark.capacity, pytest.mark.morning, pytest.mark.midday]


def test_container_memory_below_limit(docker, docker_target, limits):
    """Memory used (less page cache) < 80 % of the container's limit (containers with one)."""
    with limits.batch():
        for measured in probes.memory_used_pct(docker, docker_target):
            limits.check("docker.memory_used_pct", measured)


def test_container_cpu_below_limit(docker, docker_target, limits):
    """CPU used < 80 % of the container's CPU limit (`--cpus`, quota, cpuset), else of the
    host's CPUs, over a 1 s sample."""
    with limits.batch():
        for measured in probes.cpu_used_pct(docker, docker_target):
            limits.check("docker.cpu_used_pct", measured)


@pytest.mark.weekly
def test_docker_disk_use(docker, docker_target, limits):
    """`docker system df` (opt-in, `system_df = true`): images, volumes and build cache below
    their size levels; what a prune would reclaim in the text."""
    disk = probes.system_df(docker, docker_target)
    with limits.batch():
        limits.check("docker.images_size", disk.images)
        limits.check("docker.volumes_size", disk.volumes)
        limits.check("docker.build_cache_size", disk.build_cache)
