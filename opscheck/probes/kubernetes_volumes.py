"""Kubernetes volumes: the runbooks' ``kubectl get pvc -A`` and ``kubectl exec <pod> -- df -h``.

PVC usage is the only check that asks more than reading (``pods/exec``, to run ``df`` in a pod
that mounts the claim): it runs only with ``pvc_usage = true`` on the target and the opt-in RBAC
role ``opscheck-exec``.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from typing import Any

from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.probes.kubernetes import Kube, listing, now, plural, ref, verdict
from opscheck.probes.kubernetes_resources import created
from opscheck.redaction import clip
from opscheck.units import format_value

# -- persistent volume claims --------------------------------------------------------------------


def _last_event(kube: Kube, obj: dict[str, Any], kind: str) -> str:
    """``Reason: message`` of the newest event about ``obj``; empty if none can be read."""
    meta = obj.get("metadata") or {}
    try:
        events = kube.items("events")
    except ProbeError:  # events not granted: the phase alone still says enough
        return ""
    about = [
        e
        for e in events
        if (e.get("involvedObject") or {}).get("kind") == kind
        and e["involvedObject"].get("name") == meta.get("name")
        and e["involvedObject"].get("namespace") == meta.get("namespace")
    ]
    if not about:
        return ""
    newest = max(about, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    return f"{newest.get('reason')}: {' '.join(str(newest.get('message', '')).split())}"


def pvcs_bound(kube: Kube) -> Measurement:
    """Every PersistentVolumeClaim is Bound (``kubectl get pvc``); Pending and Lost ones with
    the reason of their newest event."""
    claims = kube.items("persistentvolumeclaims")
    if not claims:
        raise NotApplicable("no PersistentVolumeClaims in the target's namespaces")
    bad = []
    moment = now()
    for claim in claims:
        phase = (claim.get("status") or {}).get("phase", "?")
        if phase == "Bound":
            continue
        age = format_value((moment - created(claim)).total_seconds(), "duration")
        spec = claim.get("spec") or {}
        wants = f"storageClass {spec.get('storageClassName') or '(none)'}"
        if phase == "Lost":
            wants = f"volume {spec.get('volumeName')} is gone"
        why = _last_event(kube, claim, "PersistentVolumeClaim")
        bad.append(f"{ref(claim)}: {phase} for {age}, {wants}" + (f" ({why})" if why else ""))
    expected = "every claim Bound"
    total = plural(len(claims), "claim")
    return verdict(bad, total, "not Bound", f"{total} Bound", expected)


def _mounts(kube: Kube) -> dict[str, tuple[str, str, str]]:
    """``namespace/claim`` -> (pod, container, mount path) of a Running pod that mounts it."""
    found: dict[str, tuple[str, str, str]] = {}
    for pod in kube.items("pods"):
        if (pod.get("status") or {}).get("phase") != "Running":
            continue
        spec = pod.get("spec") or {}
        volumes = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in spec.get("volumes") or []
            if v.get("persistentVolumeClaim")
        }
        for container in spec.get("containers") or []:
            for mount in container.get("volumeMounts") or []:
                claim = volumes.get(mount.get("name"))
                key = f"{pod['metadata']['namespace']}/{claim}"
                if claim and key not in found:
                    found[key] = (ref(pod), container["name"], mount["mountPath"])
    return found


def exec_df(kube: Kube, pod: str, container: str, path: str) -> str:
    """``df -Pk <path>`` in ``container`` of ``pod`` (``namespace/name``) through the exec
    subresource (``create pods/exec``); its stdout. Bounded by the target's timeout."""
    from kubernetes import client
    from kubernetes.stream import stream

    namespace, name = pod.split("/", 1)
    # stream() swaps the ApiClient's request method while it runs: its own client keeps the
    # list calls other threads make on kube.api unaffected.
    api = client.ApiClient(kube.api.configuration)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            response = stream(
                client.CoreV1Api(api).connect_get_namespaced_pod_exec,
                name,
                namespace,
                command=["df", "-Pk", path],
                container=container,
                stderr=True,
                stdin=False,
                stdout=True,
                tty=False,
                _preload_content=False,
            )
            response.run_forever(timeout=kube.timeout)
            result["open"] = response.is_open()
            result["stdout"], result["stderr"] = response.read_stdout(), response.read_stderr()
            result["status"] = response.read_channel(3)  # the exec's Status, once it ended
            response.close()
        except Exception as exc:  # handshake refused (403), connection lost: said below
            result["error"] = exc

    worker = threading.Thread(target=run, daemon=True)  # websocket connect has no timeout
    worker.start()
    worker.join(kube.timeout + 1)
    api.close()
    where = f"exec df in {pod} ({container})"
    if worker.is_alive() or result.get("open"):
        raise ProbeError(f"{where}: no answer within {kube.timeout:g} s")
    error = result.get("error")
    if error is not None:
        reason = str(getattr(error, "reason", error))
        if "403" in reason:
            raise ProbeError(
                f"forbidden: grant get and create on pods/exec in namespace {namespace} (the "
                "opt-in role opscheck-exec in deploy/kubernetes/rbac.yaml)"
            )
        raise ProbeError(f"{where}: {' '.join(reason.split())}")
    failure = _exec_failure(result.get("status") or "")
    if failure:
        if failure in ("exit 126", "exit 127"):  # the shell's "cannot execute", "not found"
            failure += " (no df in the container's image?)"
        said = " ".join(str(result["stderr"] or result["stdout"]).split())
        raise ProbeError(f"{where}: {failure}" + (f": {clip(said, 300)}" if said else ""))
    return str(result["stdout"])


def _exec_failure(status_text: str) -> str:
    """What the exec's Status (error channel) says went wrong; empty on success. A command
    that ran and failed has its exit code as a cause; one that could not start (no ``df`` in
    the image) only a message."""
    try:
        status = json.loads(status_text) if status_text.strip() else {}
    except ValueError:
        return clip(" ".join(status_text.split()), 300)
    if not status or status.get("status") == "Success":
        return ""
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return f"exit {cause.get('message')}"
    return clip(" ".join(str(status.get("message") or status).split()), 300)


def parse_df(output: str) -> tuple[float, float]:
    """(used, size) in bytes from POSIX ``df -Pk`` output (its last line: a long device name
    stays on one line with -P); ``ValueError`` if it is not that."""
    fields = output.strip().splitlines()[-1].split()
    used, available = int(fields[2]) * 1024, int(fields[3]) * 1024
    return float(used), float(used + available)


def pvc_used_pct(kube: Kube, enabled: bool) -> Iterator[Measurement]:
    """Space used of each Bound claim that a Running pod mounts: ``df -Pk`` run in that pod
    (exec, opt-in with ``pvc_usage = true``). Used of used + available, as df's Use% (the
    blocks reserved for root are no use to the pod either)."""
    if not enabled:
        raise NotApplicable(
            "PVC usage runs df in a pod (exec): set pvc_usage = true on the target and grant "
            "get and create on pods/exec (the opt-in role opscheck-exec in "
            "deploy/kubernetes/rbac.yaml)"
        )
    claims = [
        c
        for c in kube.items("persistentvolumeclaims")
        if (c.get("status") or {}).get("phase") == "Bound"
    ]
    if not claims:
        raise NotApplicable("no Bound PersistentVolumeClaims in the target's namespaces")
    mounts = _mounts(kube)
    unmounted = sorted(ref(c) for c in claims if ref(c) not in mounts)
    mounted = [c for c in claims if ref(c) in mounts]
    if not mounted:
        raise NotApplicable(
            f"no Running pod mounts any of the {plural(len(claims), 'Bound claim')}: "
            f"{listing(unmounted)}"
        )
    note = f"not mounted by a Running pod, not measured: {listing(unmounted)}" if unmounted else ""
    for index, claim in enumerate(mounted):
        pod, container, path = mounts[ref(claim)]
        detail = note if index == 0 else ""
        try:
            output = exec_df(kube, pod, container, path)
        except ProbeError as exc:
            if str(exc).startswith("forbidden"):
                raise  # the same for every claim: one line says what to grant
            yield Measurement(math.nan, ref(claim), str(exc), detail)
            continue
        try:
            used, size = parse_df(output)
        except (IndexError, ValueError):
            text = f"exec df in {pod}: unexpected output {' '.join(output.split())[:200]!r}"
            yield Measurement(math.nan, ref(claim), text, detail)
            continue
        pct = 100 * used / size if size else math.nan
        text = (
            f"{format_value(pct, 'percent')} ({format_value(used, 'size')} of "
            f"{format_value(size, 'size')}, df in {pod}:{path})"
        )
        yield Measurement(pct, ref(claim), text, detail)
