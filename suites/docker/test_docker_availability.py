"""Runbook: "Check Docker" - `docker version` answers, `docker ps` shows every expected container
up and healthy."""

import pytest

from opscheck.probes import docker as probes

pytestmark = [pytest.mark.docker, pytest.mark.health, pytest.mark.morning, pytest.mark.midday]


@pytest.mark.evening
def test_docker_reachable(docker, limits):
    """The Engine API answers `/_ping`; the Engine and API versions are in the measurement."""
    limits.check("docker.reachable", probes.reachable(docker))


@pytest.mark.evening
def test_expected_containers_running(docker, docker_target, limits):
    """`containers`, the project's `services` (else all its containers) exist and run."""
    limits.check("docker.running", probes.expected_running(docker, docker_target))


def test_containers_healthy(docker, docker_target, limits):
    """Containers with a HEALTHCHECK are `healthy`; the unhealthy show their last check output."""
    limits.check("docker.healthy", probes.health(docker, docker_target))
