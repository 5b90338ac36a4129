"""Kubernetes pod and workload probes: the runbooks' ``kubectl get pods`` (phase, READY,
RESTARTS, STATUS) and ``kubectl get deploy,sts,ds,hpa`` / ``kubectl rollout status`` lines.

Every pod problem is told per *owner*, the way an operator fixes it: a pod's ReplicaSet leads to
its Deployment, a Job to its CronJob; StatefulSets and DaemonSets own their pods directly, and a
pod without a controller is a bare pod. The message names each owner once with how many of its
pods are affected ("deployment shop/api: 2 of 2 pods CrashLoopBackOff (container api, exit 1)");
the detail lists the pods. Pods, ReplicaSets, Jobs and the workloads are each listed once per run
(``Kube.items``), whichever checks read them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from opscheck.judge import Measurement
from opscheck.probes import NotApplicable
from opscheck.probes.kubernetes import Kube, listing, now, parse_time, plural, ref

Obj = dict[str, Any]

# Waiting reasons that do not clear by themselves (`kubectl get pods` STATUS column).
WAITING = (
    "CrashLoopBackOff",
    "ImagePullBackOff",
    "ErrImagePull",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "InvalidImageName",
)
SHOWN = 4  # owners named in a message; the detail has them all


def span(seconds: float) -> str:
    """``24h``, ``90m``, ``45s``, ``7d``: a window as an operator writes it."""
    if seconds >= 7 * 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


# -- owners --------------------------------------------------------------------------------------


def _controller(obj: Obj) -> Obj | None:
    refs = (obj.get("metadata") or {}).get("ownerReferences") or []
    return next((r for r in refs if r.get("controller")), refs[0] if refs else None)


def _index(kube: Kube, kind: str) -> dict[tuple[str, str], Obj]:
    return {
        (o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in kube.items(kind)
    }


# A pod's ReplicaSet or Job is told by its own owner (Deployment, CronJob) when it has one.
_PARENTS = {"ReplicaSet": "replicasets", "Job": "jobs"}


class Owners:
    """Who owns each pod: ``deployment ns/x``, ``statefulset ns/x``, ``daemonset ns/x``,
    ``cronjob ns/x`` (through its Job), ``job ns/x``, ``pod ns/x`` for a bare pod. ReplicaSets
    and Jobs are listed only when a pod points at one."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._indexes: dict[str, dict[tuple[str, str], Obj]] = {}

    def parent(self, pod: Obj) -> Obj | None:
        """The pod's ReplicaSet or Job (None for other owners, or one not in the lists)."""
        owner = _controller(pod) or {}
        kind = owner.get("kind", "")
        if kind not in _PARENTS:
            return None
        index = self._indexes.get(kind)
        if index is None:
            index = self._indexes[kind] = _index(self.kube, _PARENTS[kind])
        return index.get((pod["metadata"].get("namespace", ""), owner.get("name", "")))

    def of(self, pod: Obj) -> str:
        namespace = pod["metadata"].get("namespace", "")
        owner = _controller(pod)
        if owner is None:
            return f"pod {ref(pod)}"
        kind, name = owner.get("kind", "?"), owner.get("name", "?")
        if kind == "Node":  # a static pod, mirrored by the kubelet of that node
            return f"static pod {ref(pod)}"
        parent = self.parent(pod)
        grand = _controller(parent) if parent else None
        if grand is not None:
            kind, name = grand.get("kind", kind), grand.get("name", name)
        return f"{kind.lower()} {namespace}/{name}"


def _pods(kube: Kube) -> list[Obj]:
    pods = kube.items("pods")
    if not pods:
        raise NotApplicable(f"no pods {_scope(kube)}")
    return pods


def _scope(kube: Kube) -> str:
    target = kube.target
    where = (
        f"in namespace{'s' if len(target.namespaces) > 1 else ''} {', '.join(target.namespaces)}"
        if target.namespaces
        else "in any namespace"
    )
    return where + (f" with labels {target.label_selector}" if target.label_selector else "")


def _grouped(
    kube: Kube,
    pods: list[Obj],
    problem: Callable[[Obj], tuple[str, str] | None],
    expected: str,
    healthy: str,
) -> Measurement:
    """One yes/no answer for a pod check: ``problem(pod)`` gives (short reason, detail line) for
    a pod in trouble, None for a good one; the troubled pods are told per owner."""
    owners = Owners(kube)
    found: dict[str, list[tuple[Obj, str, str]]] = {}
    for pod in pods:
        trouble = problem(pod)
        if trouble is not None:
            found.setdefault(owners.of(pod), []).append((pod, *trouble))
    if not found:
        return Measurement.fact(True, healthy, expected)
    totals = Counter(owners.of(p) for p in pods)  # "2 of 3 pods": the owner's pods in scope
    lines, detail = [], []
    for owner, troubled in sorted(found.items()):
        lines.append(f"{owner}: {_count(troubled, totals[owner])}")
        detail.append(lines[-1])
        detail += [f"  {ref(pod)}: {line}" for pod, _, line in troubled]
    more = len(lines) - SHOWN
    text = "; ".join(lines[:SHOWN]) + (f"; and {plural(more, 'more owner')}" if more > 0 else "")
    return Measurement.fact(False, text, expected, detail="\n".join(detail))


def _count(troubled: list[tuple[Obj, str, str]], total: int) -> str:
    """``2 of 2 pods CrashLoopBackOff (container api, exit 1)``; several reasons counted."""
    reasons = Counter(short for _, short, _ in troubled)
    head = f"{len(troubled)} of {plural(total, 'pod')}"
    if len(reasons) == 1:
        return f"{head} {next(iter(reasons))}"
    return f"{head}: " + ", ".join(f"{n} {r}" for r, n in reasons.most_common())


# -- containers ----------------------------------------------------------------------------------


def _statuses(pod: Obj) -> list[Obj]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _last_exit(container: Obj) -> str:
    """``exit 1``, ``OOMKilled, exit 137``: how the container's previous run ended."""
    ended = (container.get("lastState") or {}).get("terminated") or {}
    if not ended:
        return ""
    reason = ended.get("reason")
    code = f"exit {ended.get('exitCode', '?')}"
    return f"{reason}, {code}" if reason and reason not in ("Error", "Completed") else code


def _condition(pod: Obj, kind: str) -> Obj:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), {})


# -- pods ----------------------------------------------------------------------------------------


def _not_running(pod: Obj) -> tuple[str, str] | None:
    status = pod.get("status") or {}
    phase = status.get("phase") or "Unknown"
    if phase in ("Running", "Succeeded"):
        return None
    why, message = status.get("reason") or "", status.get("message") or ""
    for container in _statuses(pod):
        state = container.get("state") or {}
        waiting, ended = state.get("waiting"), state.get("terminated")
        if waiting and waiting.get("reason") not in (None, "PodInitializing"):
            why, message = waiting["reason"], waiting.get("message") or message
            break
        if ended and ended.get("exitCode"):
            why = f"{ended.get('reason') or 'Error'}, exit {ended['exitCode']}"
            message = ended.get("message") or message
            break
    scheduled = _condition(pod, "PodScheduled")
    if not why and scheduled.get("status") == "False":
        why, message = scheduled.get("reason") or "not scheduled", scheduled.get("message", "")
    short = f"{phase} ({why})" if why else phase
    return short, short + (f": {message}" if message else "")


def pods_running(kube: Kube) -> Measurement:
    """Every pod is Running or Succeeded; Pending, Failed and Unknown ones per owner, with the
    reason (``ErrImageNeverPull``, ``Unschedulable``, ``Evicted``). The failed attempts of a Job
    that then completed are history, not a problem."""
    pods = _pods(kube)
    owners = Owners(kube)
    retried: list[str] = []

    def problem(pod: Obj) -> tuple[str, str] | None:
        trouble = _not_running(pod)
        if trouble and (pod.get("status") or {}).get("phase") == "Failed":
            job = owners.parent(pod) if (_controller(pod) or {}).get("kind") == "Job" else None
            done = ((job or {}).get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Complete" and c.get("status") == "True" for c in done):
                retried.append(ref(pod))
                return None
        return trouble

    measured = _grouped(kube, pods, problem, "pods Running or Succeeded", "")
    if measured.ok:
        text = f"{plural(len(pods) - len(retried), 'pod')} Running or Succeeded"
        if retried:
            text += f" ({len(retried)} failed before their Job completed: {listing(retried, 3)})"
        measured = Measurement.fact(True, text, measured.expected)
    return measured


def _not_ready(pod: Obj) -> tuple[str, str] | None:
    if (pod.get("status") or {}).get("phase") != "Running":
        return None  # Pending/Failed: test_pods_running; Succeeded: done, never Ready again
    ready = _condition(pod, "Ready")
    if ready.get("status") == "True":
        return None
    unready = []
    for container in (pod.get("status") or {}).get("containerStatuses") or []:
        if not container.get("ready"):
            state = container.get("state") or {}
            if "waiting" in state:
                how = state["waiting"].get("reason") or "waiting"
            elif "terminated" in state:
                how = state["terminated"].get("reason") or "terminated"
            else:
                how = "running, readiness probe failing"
            unready.append(f"container {container.get('name')} {how}")
    why = ", ".join(unready) or ready.get("reason") or "no Ready condition"
    since = ready.get("lastTransitionTime", "?")
    return f"not Ready ({why})", f"not Ready since {since}: {why}"


def pods_ready(kube: Kube) -> Measurement:
    """Every Running pod is Ready (its containers pass their readiness probes); the others per
    owner, with the containers that are not."""
    pods = _pods(kube)
    running = sum((p.get("status") or {}).get("phase") == "Running" for p in pods)
    healthy = f"{plural(running, 'running pod')} Ready"
    return _grouped(kube, pods, _not_ready, "running pods Ready", healthy)


def _waiting(pod: Obj) -> tuple[str, str] | None:
    spec = {c.get("name"): c for c in (pod.get("spec") or {}).get("containers") or []}
    for container in _statuses(pod):
        waiting = (container.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in WAITING:
            name = container.get("name")
            how = _last_exit(container) if reason == "CrashLoopBackOff" else ""
            if not how and "Image" in reason:
                how = f"image {(spec.get(name) or {}).get('image') or container.get('image')}"
            short = f"{reason} (container {name}{', ' + how if how else ''})"
            restarts = container.get("restartCount", 0)
            return short, f"{short}, {plural(restarts, 'restart')}: {waiting.get('message', '')}"
    return None


def pods_waiting(kube: Kube) -> Measurement:
    """No container waits for a reason that does not clear by itself (``WAITING``:
    CrashLoopBackOff, image pull errors, a missing ConfigMap or Secret)."""
    pods = _pods(kube)
    return _grouped(
        kube,
        pods,
        _waiting,
        "no container in " + ", ".join(WAITING[:2]) + " or another stuck waiting reason",
        f"no container of {plural(len(pods), 'pod')} stuck waiting",
    )


def _ended_since(container: Obj, since: datetime) -> list[Obj]:
    """The container's terminations (current and previous run) that finished after ``since``."""
    ended = []
    for state in (container.get("state") or {}, container.get("lastState") or {}):
        terminated = state.get("terminated")
        finished = parse_time((terminated or {}).get("finishedAt"))
        if terminated and finished and finished >= since:
            ended.append(terminated)
    return ended


def _limits(pod: Obj) -> dict[str, str]:
    containers = (pod.get("spec") or {}).get("containers") or []
    return {
        c.get("name", ""): ((c.get("resources") or {}).get("limits") or {}).get("memory", "")
        for c in containers
    }


def oom_killed(kube: Kube) -> Measurement:
    """No container was OOM-killed (``lastState.terminated.reason`` or ``state.terminated.reason``
    OOMKilled) within the target's ``restarts_window``; per owner, with the memory limit."""
    pods = _pods(kube)
    window = kube.target.restarts_window
    since = now() - timedelta(seconds=window)

    def killed(pod: Obj) -> tuple[str, str] | None:
        limits = _limits(pod)
        for container in _statuses(pod):
            kills = [t for t in _ended_since(container, since) if t.get("reason") == "OOMKilled"]
            if kills:
                name = container.get("name", "")
                limit = f", limit {limits[name]}" if limits.get(name) else ""
                short = f"OOM-killed (container {name}{limit})"
                at = max(k.get("finishedAt", "") for k in kills)
                restarts = plural(container.get("restartCount", 0), "restart")
                return short, f"{short}, last at {at}, {restarts}"
        return None

    return _grouped(
        kube,
        pods,
        killed,
        f"no OOM kill in {span(window)}",
        f"no container of {plural(len(pods), 'pod')} OOM-killed in {span(window)}",
    )


def pod_restarts(kube: Kube) -> Measurement:
    """Restarts in the target's ``restarts_window``: the ``restartCount`` of each container whose
    last termination finished inside the window (the API keeps only the last one's time). The
    value is the most restarts of one pod; the text names its owner, the detail every pod."""
    pods = _pods(kube)
    window = kube.target.restarts_window
    since = now() - timedelta(seconds=window)
    owners = Owners(kube)
    counts: list[tuple[int, str, Obj, str]] = []
    for pod in pods:
        total, last = 0, []
        for container in _statuses(pod):
            restarts = int(container.get("restartCount") or 0)
            previous = (container.get("lastState") or {}).get("terminated") or {}
            finished = parse_time(previous.get("finishedAt"))
            if restarts and finished and finished >= since:
                total += restarts
                end = f"{_last_exit(container)} at {previous.get('finishedAt')}"
                last.append(f"container {container.get('name')} {restarts}, last {end}")
        if total:
            counts.append((total, owners.of(pod), pod, "; ".join(last)))
    if not counts:
        return Measurement(0, text=f"no restarts in {span(window)} ({plural(len(pods), 'pod')})")
    counts.sort(key=lambda c: (-c[0], c[1], ref(c[2])))
    worst, owner, pod, _ = counts[0]
    by_owner: dict[str, int] = {}
    for count, name, _, _ in counts:
        by_owner[name] = by_owner.get(name, 0) + count
    text = f"{owner}: {plural(worst, 'restart')} of pod {pod['metadata']['name']} in {span(window)}"
    if len(by_owner) > 1:
        text += f" ({len(by_owner)} owners with restarts: {listing(list(by_owner), 3)})"
    detail = [f"{ref(p)} ({name}): {line}" for _, name, p, line in counts]
    return Measurement(worst, text=text, detail="\n".join(detail))


# -- workloads -----------------------------------------------------------------------------------


def _workloads(kube: Kube) -> Iterator[tuple[str, Obj]]:
    for kind in ("deployments", "statefulsets", "daemonsets"):
        for obj in kube.items(kind):
            yield kind[:-1], obj


def _replicas(kind: str, obj: Obj) -> tuple[int, int]:
    """(desired, available) as ``kubectl get deploy,sts,ds`` shows them."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if kind == "daemonset":
        return status.get("desiredNumberScheduled", 0), status.get("numberAvailable", 0)
    desired = spec.get("replicas", 1)
    if kind == "statefulset" and "availableReplicas" not in status:  # before 1.22
        return desired, status.get("readyReplicas", 0)
    return desired, status.get("availableReplicas", 0)


def workloads_available(kube: Kube) -> Measurement:
    """Every Deployment, StatefulSet and DaemonSet has its desired replicas available."""
    found = list(_workloads(kube))
    if not found:
        raise NotApplicable(f"no deployments, statefulsets or daemonsets {_scope(kube)}")
    short, detail = [], []
    for kind, obj in found:
        desired, available = _replicas(kind, obj)
        if available < desired:
            short.append(f"{kind} {ref(obj)} {available}/{desired} available")
            conditions = (obj.get("status") or {}).get("conditions") or []
            why = "; ".join(
                f"{c.get('type')}={c.get('status')} {c.get('reason', '')}: {c.get('message', '')}"
                for c in conditions
                if c.get("status") != "True" or c.get("type") == "ReplicaFailure"
            )
            detail.append(f"{short[-1]}" + (f" ({why})" if why else ""))
    expected = "available replicas = desired"
    kinds = Counter(kind for kind, _ in found)
    if short:
        text = f"{len(short)} of {plural(len(found), 'workload')} short: {listing(short, SHOWN)}"
        return Measurement.fact(False, text, expected, detail="\n".join(detail))
    shown = ", ".join(plural(n, k) for k, n in sorted(kinds.items()))
    return Measurement.fact(True, f"all available: {shown}", expected)


def rollouts(kube: Kube) -> Measurement:
    """No Deployment rollout past its ``progressDeadlineSeconds`` (Progressing=False,
    ProgressDeadlineExceeded), and no workload whose controller has not yet seen its latest
    spec (``status.observedGeneration`` below ``metadata.generation``)."""
    found = list(_workloads(kube))
    if not found:
        raise NotApplicable(f"no deployments, statefulsets or daemonsets {_scope(kube)}")
    short, detail = [], []
    for kind, obj in found:
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if (
                condition.get("type") == "Progressing"
                and condition.get("status") == "False"
                and condition.get("reason") == "ProgressDeadlineExceeded"
            ):
                short.append(f"{kind} {ref(obj)}: rollout stuck (ProgressDeadlineExceeded)")
                detail.append(
                    f"{short[-1]} since {condition.get('lastTransitionTime', '?')}: "
                    f"{condition.get('message', '')}"
                )
        generation = (obj.get("metadata") or {}).get("generation", 0)
        observed = (obj.get("status") or {}).get("observedGeneration", 0)
        if observed < generation:
            short.append(f"{kind} {ref(obj)}: generation {generation} not observed")
            detail.append(
                f"{short[-1]} (the controller has seen {observed}: is kube-controller-manager "
                "running?)"
            )
    expected = "rollouts progressing, specs observed"
    if short:
        text = f"{plural(len(short), 'rollout problem')}: {listing(short, SHOWN)}"
        return Measurement.fact(False, text, expected, detail="\n".join(detail))
    return Measurement.fact(True, f"{plural(len(found), 'workload')} rolled out", expected)


def hpa_at_max(kube: Kube) -> Measurement:
    """No HorizontalPodAutoscaler runs at its ``maxReplicas`` (it cannot add capacity any more);
    one pinned by ``minReplicas = maxReplicas`` is fixed by design and not counted."""
    hpas = kube.items("horizontalpodautoscalers")
    if not hpas:
        raise NotApplicable(f"no HorizontalPodAutoscalers {_scope(kube)}")
    short, detail = [], []
    for hpa in hpas:
        spec, status = hpa.get("spec") or {}, hpa.get("status") or {}
        top, current = spec.get("maxReplicas", 0), status.get("currentReplicas", 0)
        if current < top or spec.get("minReplicas", 1) == top:
            continue
        short.append(f"hpa {ref(hpa)} {current} of max {top} replicas")
        target = spec.get("scaleTargetRef") or {}
        cpu = status.get("currentCPUUtilizationPercentage")
        load = (
            f", CPU {cpu} % of target {spec.get('targetCPUUtilizationPercentage', '?')} %"
            if cpu is not None
            else ""
        )
        detail.append(
            f"{short[-1]} ({target.get('kind', '?').lower()} {target.get('name', '?')}{load}); "
            f"last scaled {status.get('lastScaleTime', 'never')}"
        )
    expected = "HPAs below maxReplicas"
    if short:
        text = f"{len(short)} of {plural(len(hpas), 'HPA')} at max: {listing(short, SHOWN)}"
        return Measurement.fact(False, text, expected, detail="\n".join(detail))
    return Measurement.fact(True, f"{plural(len(hpas), 'HPA')} below max replicas", expected)
