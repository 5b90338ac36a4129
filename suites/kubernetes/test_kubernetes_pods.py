"""Runbook: "Pod health" - `kubectl get pods -A`: every pod Running (or Completed), READY n/n,
no RESTARTS since yesterday, no STATUS CrashLoopBackOff / ImagePullBackOff / ErrImageNeverPull /
CreateContainerConfigError, no OOMKilled in `kubectl describe pod`. Each problem is told once per
owning Deployment, StatefulSet, DaemonSet, Job/CronJob (or bare pod), with its pods listed."""

import pytest

from opscheck.probes import kubernetes_workloads as probes

pytestmark = [pytest.mark.kubernetes, pytest.mark.morning]


@pytest.mark.health
@pytest.mark.midday
@pytest.mark.evening
def test_pods_running(kubernetes, limits):
    """`kubectl get pods`: every pod Running or Succeeded; Pending/Failed/Unknown with why."""
    limits.check("kubernetes.pods_running", probes.pods_running(kubernetes))


@pytest.mark.health
@pytest.mark.midday
def test_pods_ready(kubernetes, limits):
    """READY n/n: every Running pod passes its readiness probes."""
    limits.check("kubernetes.pods_ready", probes.pods_ready(kubernetes))


@pytest.mark.errors
@pytest.mark.midday
@pytest.mark.evening
def test_pods_not_stuck_waiting(kubernetes, limits):
    """No container in CrashLoopBackOff, ImagePullBackOff, ErrImagePull, ErrImageNeverPull,
    CreateContainerConfigError, CreateContainerError or InvalidImageName."""
    limits.check("kubernetes.pods_waiting", probes.pods_waiting(kubernetes))


@pytest.mark.errors
def test_pod_restarts(kubernetes, limits):
    """RESTARTS within `restarts_window` (default 24h): the most of one pod, WARN at 1, CRIT
    above 5."""
    limits.check("kubernetes.pod_restarts", probes.pod_restarts(kubernetes))


@pytest.mark.errors
def test_no_oom_kills(kubernetes, limits):
    """No container terminated OOMKilled within `restarts_window`."""
    limits.check("kubernetes.oom_killed", probes.oom_killed(kubernetes))
