"""Runbook: "Error rate analysis" for Docker - `docker inspect`: restart counts (since the previous
run), exit codes and OOM kills of the target's containers."""

import pytest

from opscheck.probes import docker as probes

pytestmark = [pytest.mark.docker, pytest.mark.errors, pytest.mark.morning]


def test_container_restarts(docker, docker_target, docker_reports, limits):
    """Restarts per container since the previous archived run (`RestartCount`; in all without
    one): any restart is WARN, more than 5 CRIT."""
    previous = probes.previous_run(docker_reports, docker_target.name)
    with limits.batch():
        for measured in probes.restarts(docker, docker_target, previous):
            limits.check("docker.restarts", measured)


def test_stopped_containers_exited_cleanly(docker, docker_target, limits):
    """Stopped containers exited 0 and none was OOM-killed (`.State.ExitCode`, `.OOMKilled`)."""
    limits.check("docker.exit_codes", probes.exit_codes(docker, docker_target))
