"""Kubernetes resource use and certificates: the runbooks' ``kubectl top nodes``, ``kubectl top
pods`` and ``kubectl get certificates`` lines (jobs: ``kubernetes_jobs``, volumes:
``kubernetes_volumes``).

Every list comes from ``Kube.items`` (one list per kind per run, shared with the other checks).
Usage comes from ``metrics.k8s.io`` (metrics-server), certificates from cert-manager's
``cert-manager.io/v1``: without them the checks skip, saying what to install.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.probes.kubernetes import Kube, listing, now, parse_time, plural, ref, verdict
from opscheck.units import format_value

# -- quantities ----------------------------------------------------------------------------------

_SUFFIX = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}
_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([a-zA-Z]{0,2})$")


def quantity(text: str | int | float | None) -> float:
    """A Kubernetes quantity (``250m``, ``1Gi``, ``123456Ki``, ``12345678n``, ``1.5``, ``1e3``)
    as a plain number (cores, bytes); ``ValueError`` if it is not one."""
    match = _QUANTITY.match(str(text).strip())
    if not match or match.group(2) not in _SUFFIX:
        raise ValueError(f"not a Kubernetes quantity: {text!r}")
    try:
        return float(Decimal(match.group(1)) * _SUFFIX[match.group(2)])
    except InvalidOperation:
        raise ValueError(f"not a Kubernetes quantity: {text!r}") from None


def _show(amount: float, resource: str) -> str:
    """CPU as kubectl shows it (``250m``, ``1.5 cores``), memory as a size."""
    if resource == "cpu":
        return f"{amount * 1000:.0f}m" if amount < 1 else f"{amount:.2f} cores"
    return format_value(amount, "size")


# -- kubectl top nodes ---------------------------------------------------------------------------


def node_usage_pct(kube: Kube, resource: str) -> Iterator[Measurement]:
    """CPU or memory (``resource``) each node uses (metrics.k8s.io NodeMetrics, what ``kubectl
    top nodes`` shows) as a share of its allocatable; a node without metrics cannot be judged
    (NaN: metrics-server did not scrape it)."""
    metrics = {m["metadata"]["name"]: m for m in kube.items("nodes.metrics.k8s.io")}
    nodes = kube.items("nodes")
    if not nodes:
        raise ProbeError("the cluster lists no nodes")
    for node in nodes:
        name = ref(node)
        allocatable = (node.get("status") or {}).get("allocatable") or {}
        usage = (metrics.get(name) or {}).get("usage") or {}
        if resource not in usage:
            text = "no NodeMetrics: metrics-server has not scraped this node (NotReady?)"
            yield Measurement(math.nan, name, text)
            continue
        if resource not in allocatable:
            raise ProbeError(f"node {name} reports no allocatable {resource}")
        used, total = quantity(usage[resource]), quantity(allocatable[resource])
        pct = 100 * used / total if total else math.inf
        text = (
            f"{format_value(pct, 'percent')} ({_show(used, resource)} of "
            f"{_show(total, resource)} allocatable)"
        )
        yield Measurement(pct, name, text)


# -- kubectl top pods ----------------------------------------------------------------------------


def _workload(pod: dict[str, Any]) -> str:
    """``namespace/Deployment/web`` for the pods of one workload (a ReplicaSet's pods count
    for its Deployment, by the pod-template-hash it appends), ``namespace/Pod/name`` alone."""
    meta = pod.get("metadata") or {}
    owner = next((o for o in meta.get("ownerReferences") or [] if o.get("controller")), None)
    if owner is None:
        return f"{meta.get('namespace')}/Pod/{meta.get('name')}"
    kind, name = owner.get("kind"), str(owner.get("name"))
    suffix = "-" + str((meta.get("labels") or {}).get("pod-template-hash", ""))
    if kind == "ReplicaSet" and suffix != "-" and name.endswith(suffix):
        kind, name = "Deployment", name[: -len(suffix)]
    return f"{meta.get('namespace')}/{kind}/{name}"


def _bounds(pod: dict[str, Any], resource: str) -> tuple[dict[str, float], str]:
    """Each container's limit of ``resource``, else its request, and which of the two they are
    (``limit``, ``request`` or ``limit/request``); containers with neither are left out."""
    bounds: dict[str, float] = {}
    kinds = set()
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        for kind in ("limits", "requests"):
            value = (resources.get(kind) or {}).get(resource)
            if value is not None and quantity(value) > 0:
                bounds[container["name"]] = quantity(value)
                kinds.add(kind[:-1])
                break
    return bounds, "/".join(sorted(kinds))


def pod_usage_pct(kube: Kube, resource: str) -> Iterator[Measurement]:
    """CPU or memory each pod uses (PodMetrics, ``kubectl top pods``: the sum of its containers)
    as a share of the sum of their limits (a container without one: its request). One
    measurement per workload (its worst pod; pod names change on every rollout, the workload's
    does not): 500 pods make a few dozen lines. Pods that set neither are counted in the
    detail, not judged."""
    pods = {ref(p): p for p in kube.items("pods")}
    measured: dict[str, list[tuple[float, str]]] = {}
    unbounded: list[str] = []
    for metrics in kube.items("pods.metrics.k8s.io"):
        pod = pods.get(ref(metrics))
        if pod is None:  # gone since the metrics were scraped
            continue
        bounds, basis = _bounds(pod, resource)
        if not bounds:
            unbounded.append(ref(pod))
            continue
        used = sum(
            quantity((c.get("usage") or {}).get(resource, 0))
            for c in metrics.get("containers") or []
            if c.get("name") in bounds
        )
        total = sum(bounds.values())
        pct = 100 * used / total
        text = (
            f"{format_value(pct, 'percent')} ({ref(pod)}: {_show(used, resource)} of "
            f"{_show(total, resource)} {basis})"
        )
        measured.setdefault(_workload(pod), []).append((pct, text))
    what = "limit or request"
    if not measured:
        if unbounded:
            raise NotApplicable(
                f"no pod with metrics sets a {resource} {what} "
                f"({plural(len(unbounded), 'pod')}): nothing to compare its use with"
            )
        raise NotApplicable("metrics.k8s.io lists no pod metrics in the target's namespaces")
    note = ""
    if unbounded:
        note = (
            f"{plural(len(unbounded), 'pod')} without a {resource} {what}, not judged: "
            f"{listing(sorted(unbounded))}"
        )
    worst_first = sorted(measured.items(), key=lambda item: -max(item[1])[0])
    for index, (workload, found) in enumerate(worst_first):
        found.sort(reverse=True)
        pct, text = found[0]
        if len(found) > 1:
            text += f"; worst of {plural(len(found), 'pod')}"
        detail = "\n".join(t for _, t in found[1:6]) if len(found) > 1 else ""
        if index == 0 and note:
            detail = f"{detail}\n{note}".strip()
        yield Measurement(pct, workload, text, detail)


# -- cert-manager --------------------------------------------------------------------------------


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The status condition of type ``kind`` (``Ready``, ``Failed``); empty if none."""
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return {}


def certificates_ready(kube: Kube) -> Measurement:
    """Every cert-manager Certificate has condition Ready=True (``kubectl get certificates``);
    the others with their reason and message."""
    certificates = kube.items("certificates.cert-manager.io")
    if not certificates:
        raise NotApplicable("no cert-manager Certificates in the target's namespaces")
    bad = []
    for cert in certificates:
        ready = condition(cert, "Ready")
        if ready.get("status") != "True":
            why = ready.get("reason") or "no Ready condition yet"
            message = " ".join(str(ready.get("message") or "").split())
            bad.append(
                f"{ref(cert)}: Ready={ready.get('status', '?')} ({why}"
                + (f": {message})" if message else ")")
            )
    expected = "every Certificate Ready"
    total = plural(len(certificates), "certificate")
    return verdict(bad, total, "not Ready", f"{total} Ready", expected)


def certificate_days(kube: Kube) -> Iterator[Measurement]:
    """Days until each Certificate's ``status.notAfter`` (one measurement per certificate);
    certificates not issued yet have none (certificates_ready reports them)."""
    certificates = kube.items("certificates.cert-manager.io")
    issued = [c for c in certificates if (c.get("status") or {}).get("notAfter")]
    if not issued:
        raise NotApplicable(
            f"no issued certificate (with status.notAfter) among "
            f"{plural(len(certificates), 'cert-manager Certificate')}"
        )
    moment = now()
    for cert in issued:
        status = cert["status"]
        expires = parse_time(status["notAfter"])
        assert expires is not None
        days = (expires - moment).total_seconds() / 86400
        secret = (cert.get("spec") or {}).get("secretName", "?")
        text = f"{days:.1f} days (notAfter {status['notAfter']}, secret {secret})"
        renewal = status.get("renewalTime")
        detail = f"cert-manager renews it at {renewal}" if renewal else ""
        yield Measurement(days, ref(cert), text, detail)


def created(obj: dict[str, Any]) -> datetime:
    """When ``obj`` was created (now, if it does not say)."""
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    return created or now()
