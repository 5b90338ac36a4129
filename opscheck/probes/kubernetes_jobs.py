"""Kubernetes Jobs and CronJobs: the runbooks' ``kubectl get jobs,cronjobs -A`` (failed jobs, the
last successful run, SUSPEND). CronJobs come from ``batch/v1``, else ``batch/v1beta1`` (1.20),
chosen by discovery in ``Kube.version``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from opscheck.judge import Measurement
from opscheck.probes import NotApplicable
from opscheck.probes.kubernetes import Kube, listing, now, parse_time, plural, ref, verdict
from opscheck.probes.kubernetes_resources import condition, created
from opscheck.units import format_value

# -- jobs and cronjobs ---------------------------------------------------------------------------


def _owner(obj: dict[str, Any], kind: str) -> str | None:
    for owner in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == kind:
            return f"{obj['metadata'].get('namespace')}/{owner.get('name')}"
    return None


def _finished(job: dict[str, Any]) -> tuple[str, datetime] | None:
    """``("Complete" | "Failed", when)`` for a finished Job, None while it runs."""
    for kind in ("Complete", "Failed"):
        found = condition(job, kind)
        if found.get("status") == "True":
            status = job.get("status") or {}
            when = parse_time(
                status.get("completionTime") if kind == "Complete" else None
            ) or parse_time(found.get("lastTransitionTime"))
            return kind, when or created(job)
    return None


def jobs_failed(kube: Kube) -> Measurement:
    """No Job has failed (condition ``Failed``: backoff limit or deadline exceeded). For the Jobs
    of a CronJob only its newest finished one counts: a failure a later run has made good is
    history, not a problem."""
    jobs = kube.items("jobs")
    if not jobs:
        raise NotApplicable("no Jobs in the target's namespaces")
    judged: list[dict[str, Any]] = []
    newest: dict[str, tuple[tuple[datetime, datetime], dict[str, Any]]] = {}
    for job in jobs:
        done = _finished(job)
        if done is None:
            continue
        cronjob = _owner(job, "CronJob")
        when = (created(job), done[1])  # whole seconds: runs started together by finish
        if cronjob is None:
            judged.append(job)
        elif cronjob not in newest or newest[cronjob][0] < when:
            newest[cronjob] = (when, job)
    judged += [job for _, job in newest.values()]
    bad = []
    for job in judged:
        failed = condition(job, "Failed")
        if failed.get("status") != "True":
            continue
        cronjob = _owner(job, "CronJob")
        status = job.get("status") or {}
        line = (
            f"{ref(job)}"
            + (f" (CronJob {cronjob.split('/')[1]})" if cronjob else "")
            + f": {failed.get('reason', 'Failed')}, "
            + plural(int(status.get("failed") or 0), "failed pod")
        )
        message = " ".join(str(failed.get("message") or "").split())
        bad.append(line + (f" ({message})" if message else ""))
    expected = "no Job failed (a CronJob's newest run)"
    total = plural(len(judged), "finished job")
    return verdict(bad, total, "failed", f"{total}, none failed", expected)


def cronjob_last_success(kube: Kube) -> Iterator[Measurement]:
    """Time since each CronJob's last successful run (``status.lastSuccessfulTime`` since 1.21;
    on older clusters the newest of its Jobs that completed). One that never succeeded is judged
    by its age. Suspended CronJobs are left to cronjobs_suspended."""
    cronjobs = kube.items("cronjobs")
    if not cronjobs:
        raise NotApplicable("no CronJobs in the target's namespaces")
    completed: dict[str, datetime] = {}
    for job in kube.items("jobs"):
        owner, done = _owner(job, "CronJob"), _finished(job)
        if owner and done and done[0] == "Complete":
            completed[owner] = max(done[1], completed.get(owner, done[1]))
    active = [c for c in cronjobs if not (c.get("spec") or {}).get("suspend")]
    if not active:
        raise NotApplicable(f"every CronJob is suspended ({plural(len(cronjobs), 'CronJob')})")
    moment = now()
    for cronjob in active:
        status = cronjob.get("status") or {}
        schedule = (cronjob.get("spec") or {}).get("schedule", "?")
        last = parse_time(status.get("lastSuccessfulTime")) or completed.get(ref(cronjob))
        if last is None:
            age = (moment - created(cronjob)).total_seconds()
            text = f"never succeeded (created {format_value(age, 'duration')} ago)"
            scheduled = status.get("lastScheduleTime")
            detail = f"schedule {schedule!r}; last scheduled {scheduled or 'never'}"
            yield Measurement(age, ref(cronjob), text, detail)
            continue
        since = (moment - last).total_seconds()
        text = f"{format_value(since, 'duration')} ago ({last.isoformat()}, schedule {schedule!r})"
        yield Measurement(since, ref(cronjob), text)


def cronjobs_suspended(kube: Kube) -> Measurement:
    """No CronJob is suspended (``spec.suspend``): a suspended one silently stops running."""
    cronjobs = kube.items("cronjobs")
    if not cronjobs:
        raise NotApplicable("no CronJobs in the target's namespaces")
    suspended = sorted(ref(c) for c in cronjobs if (c.get("spec") or {}).get("suspend"))
    expected = "no CronJob suspended"
    total = plural(len(cronjobs), "CronJob")
    if suspended:
        text = f"{len(suspended)} of {total} suspended: {listing(suspended)}"
        return Measurement.fact(False, text, expected, detail="\n".join(suspended))
    return Measurement.fact(True, f"{total}, none suspended", expected)
