"""Runbook: "Scheduled jobs" - `kubectl get jobs,cronjobs -A`: no Job failed, every CronJob ran
successfully within its limit, none is suspended."""

import pytest

from opscheck.probes import kubernetes_jobs as probes

pytestmark = [pytest.mark.kubernetes, pytest.mark.errors, pytest.mark.morning]


@pytest.mark.evening
def test_jobs_not_failed(kubernetes, limits):
    """No Job failed (backoff limit or deadline exceeded); of a CronJob's Jobs only the newest
    finished one counts."""
    limits.check("kubernetes.jobs_failed", probes.jobs_failed(kubernetes))


def test_cronjob_last_success(kubernetes, limits):
    """Time since each CronJob last succeeded < 26 h (set the level to its schedule); one that
    never succeeded is judged by its age."""
    with limits.batch():
        limits.check("kubernetes.cronjob_last_success", probes.cronjob_last_success(kubernetes))


@pytest.mark.weekly
def test_cronjobs_not_suspended(kubernetes, limits):
    """No CronJob is suspended (`kubectl get cronjobs`: SUSPEND False)."""
    limits.check("kubernetes.cronjobs_suspended", probes.cronjobs_suspended(kubernetes))
