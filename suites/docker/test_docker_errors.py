"""Runbook: "Error rate analysis" for Docker - `docker inspect`: restart counts, exit codes and
OOM kills of the target's containers."""

import pytest

from opscheck.probes import docker as probes

pytestmark = [pytest.mark.docker, pytest.mark.errors, pytest.mark.morning]


def test_container_restarts(docker, docker_target, limits):
    """`RestartCount` per container: any restart is WARN, more than 5 CRIT."""
    with limits.batch():
        for measured in probes.restarts(docker, docker_target):
            limits.check("docker.restarts", measured)


def test_stopped_containers_exited_cleanly(docker, docker_target, limits):
    """Stopped containers exited 0 and none was OOM-killed (`.State.ExitCode`, `.OOMKilled`)."""
    limits.check("docker.exit_codes", probes.exit_codes(docker, docker_target))
