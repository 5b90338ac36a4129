"""Kubernetes services, ingresses and events: the runbooks' ``kubectl get endpoints``,
``kubectl get ingress``, the expiry of the TLS secrets ingresses serve, and ``kubectl get events
--field-selector type!=Normal``.

Every probe reads the lists ``Kube.items`` caches for the run (services, endpoints, pods,
ingresses, the warning events the server filters); only ``ingress_cert_days`` sends a GET per
TLS secret, which needs the opt-in ``get secrets`` grant (ClusterRole ``opscheck-tls-secrets``
bound in each namespace whose certificates are checked).
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from datetime import timedelta
from typing import Any

from opscheck.config import KubernetesTarget
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.probes._logscan import fold
from opscheck.probes.http import days_left
from opscheck.probes.kubernetes import Kube, listing, now, parse_time, plural, ref, verdict
from opscheck.probes.logs import TOP_SHOWN, window_text

TLS_ROLE = "opscheck-tls-secrets"  # deploy/kubernetes: the opt-in ClusterRole for `get secrets`
OBJECTS_SHOWN = 10  # objects listed in the warning events' detail


# -- services ------------------------------------------------------------------------------------


def _selector_text(selector: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(selector.items()))


def _is_ready(pod: dict[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _addresses(endpoints: dict[str, Any] | None, key: str) -> int:
    subsets = (endpoints or {}).get("subsets") or []
    return sum(len(subset.get(key) or []) for subset in subsets)


def _no_endpoints_why(kube: Kube, service: dict[str, Any], endpoints: dict[str, Any] | None) -> str:
    """Why a service has no ready endpoint: no pod matches its selector, or they are not ready."""
    namespace = service["metadata"].get("namespace")
    selector: dict[str, str] = service["spec"]["selector"]
    matching = [
        pod
        for pod in kube.items("pods")
        if pod["metadata"].get("namespace") == namespace
        and all((pod["metadata"].get("labels") or {}).get(k) == v for k, v in selector.items())
        and not pod["metadata"].get("deletionTimestamp")
    ]
    wanted = _selector_text(selector)
    if not matching:
        among = kube.target.label_selector
        return f"no pod matches the selector {wanted}" + (f" (among pods {among})" if among else "")
    phases = Counter(str((pod.get("status") or {}).get("phase", "?")) for pod in matching)
    not_ready = [pod["metadata"]["name"] for pod in matching if not _is_ready(pod)]
    why = f"{plural(len(matching), 'pod')} with {wanted}, {len(not_ready)} not ready"
    why += f" ({', '.join(f'{n} {phase}' for phase, n in sorted(phases.items()))})"
    if not_ready:
        why += f": {listing(not_ready, 3)}"
    if endpoints is None:
        why += "; no Endpoints object (is the endpoints controller running?)"
    return why


def service_endpoints(kube: Kube) -> Measurement:
    """Every service with a pod selector (not ExternalName) has at least one ready endpoint
    address; the others say whether no pod matches or the matching pods are not ready."""
    endpoints = {ref(e): e for e in kube.items("endpoints")}
    checked = 0
    problems = []
    for service in kube.items("services"):
        spec = service.get("spec") or {}
        if spec.get("type") == "ExternalName" or not spec.get("selector"):
            continue  # no selector: its endpoints are managed by hand, not by pods
        checked += 1
        found = endpoints.get(ref(service))
        if _addresses(found, "addresses"):
            continue
        waiting = _addresses(found, "notReadyAddresses")
        addresses = (
            f"{waiting} address{'es' if waiting > 1 else ''} not ready" if waiting else "no address"
        )
        why = _no_endpoints_why(kube, service, found)
        problems.append(f"{ref(service)}: {addresses}; {why}")
    if not checked:
        raise NotApplicable("no service with a pod selector")
    expected = "every service with a selector has a ready endpoint"
    total = plural(checked, "service")
    return verdict(
        problems, total, "without a ready endpoint", f"{total} with ready endpoints", expected
    )


# -- ingresses -----------------------------------------------------------------------------------


def _hosts(ingress: dict[str, Any]) -> list[str]:
    rules = (ingress.get("spec") or {}).get("rules") or []
    return [rule["host"] for rule in rules if rule.get("host")]


def _lb_addresses(ingress: dict[str, Any]) -> list[str]:
    entries = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [e.get("ip") or e.get("hostname") for e in entries if e.get("ip") or e.get("hostname")]


def _ingress_class(ingress: dict[str, Any]) -> str | None:
    annotations = ingress["metadata"].get("annotations") or {}
    return (ingress.get("spec") or {}).get("ingressClassName") or annotations.get(
        "kubernetes.io/ingress.class"
    )


def _ingresses(count: int) -> str:
    return f"{count} ingress{'' if count == 1 else 'es'}"


def ingress_address(kube: Kube) -> Measurement:
    """Every ingress has a load-balancer address (``status.loadBalancer.ingress`` ip or
    hostname): the ingress controller took it."""
    ingresses = kube.items("ingresses")
    if not ingresses:
        raise NotApplicable("no ingress")
    bad, good = [], []
    for ingress in ingresses:
        addresses = _lb_addresses(ingress)
        if addresses:
            good.append(f"{ref(ingress)}: {', '.join(addresses)}")
            continue
        klass = _ingress_class(ingress)
        hosts = ", ".join(_hosts(ingress)) or "any host"
        controller = f"class {klass}" if klass else "no ingress class"
        bad.append(f"{ref(ingress)}: no load-balancer address ({controller}; hosts {hosts})")
    expected = "every ingress has an address (its controller admitted it)"
    total = _ingresses(len(ingresses))
    return verdict(bad, total, "without an address", f"{total} with an address", expected, good)


def _matches(host: str, names: list[str]) -> bool:
    """``host`` is one of the certificate's DNS names (a ``*.`` wildcard covers one label)."""
    host = host.lower()
    for name in (n.lower() for n in names):
        if name == host or (
            name.startswith("*.") and host.partition(".")[2] == name[2:] and "." in host
        ):
            return True
    return False


def _certificate(secret: dict[str, Any], where: str) -> tuple[Any, list[str]]:
    """The first (leaf) certificate of a TLS secret's ``tls.crt`` and its DNS names."""
    from cryptography import x509

    encoded = (secret.get("data") or {}).get("tls.crt")
    if not encoded:
        kind = secret.get("type", "?")
        raise ProbeError(f"TLS secret {where} has no tls.crt (type {kind})")
    try:
        pem = base64.b64decode(encoded)
        cert = x509.load_pem_x509_certificates(pem)[0]
    except (binascii.Error, ValueError, IndexError) as exc:
        raise ProbeError(f"TLS secret {where}: tls.crt is not a PEM certificate ({exc})") from None
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        dns: list[str] = names.value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        dns = []
    return cert, dns


def ingress_cert_days(kube: Kube, target: KubernetesTarget) -> list[Measurement]:
    """Days until the certificate in each TLS secret an ingress names expires, per host
    (negative once expired). Reads the secrets: ``get secrets`` in their namespaces."""
    if not target.ingress_tls:
        raise NotApplicable("ingress_tls = false: the TLS secrets of ingresses are not read")
    measured: list[Measurement] = []
    problems: list[str] = []
    forbidden: set[str] = set()
    certificates: dict[str, tuple[Any, list[str]]] = {}
    for ingress in kube.items("ingresses"):
        namespace = ingress["metadata"]["namespace"]
        for tls in (ingress.get("spec") or {}).get("tls") or []:
            name = tls.get("secretName")
            if not name:
                continue  # served with the controller's default certificate
            where = f"{namespace}/{name}"
            if where not in certificates:
                if namespace in forbidden:
                    continue
                try:
                    secret = kube.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
                    certificates[where] = _certificate(secret, where)
                except ProbeError as exc:
                    if str(exc).startswith("forbidden:"):
                        forbidden.add(namespace)
                        problems.append(
                            f"forbidden: grant get on secrets in namespace {namespace} (bind the "
                            f"ClusterRole {TLS_ROLE} there, or set ingress_tls = false)"
                        )
                    elif "HTTP 404" in str(exc):
                        problems.append(f"{ref(ingress)}: TLS secret {where} not found")
                    else:
                        problems.append(f"{ref(ingress)}: {exc}")
                    continue
            cert, dns = certificates[where]
            days = days_left(cert.not_valid_after_utc)
            subject = cert.subject.rfc4514_string()
            for host in tls.get("hosts") or [""]:
                uncovered = host and dns and not _matches(host, dns)
                text = days.text + (f"; {host} is not among its names" if uncovered else "")
                measured.append(
                    Measurement(
                        days.value,
                        subject=f"{ref(ingress)}/{host}" if host else ref(ingress),
                        text=text,
                        detail=f"secret {where}: {subject}; names {', '.join(dns) or 'none'}",
                    )
                )
    if problems:
        raise ProbeError("; ".join(problems))
    if not measured:
        raise NotApplicable("no ingress names a TLS secret")
    return measured


# -- events --------------------------------------------------------------------------------------


def _event_time(event: dict[str, Any]) -> str | None:
    """When an event was last seen: its series, else lastTimestamp, eventTime, creation."""
    return (
        (event.get("series") or {}).get("lastObservedTime")
        or event.get("lastTimestamp")
        or event.get("eventTime")
        or event["metadata"].get("creationTimestamp")
    )


def _event_count(event: dict[str, Any]) -> int:
    return int((event.get("series") or {}).get("count") or event.get("count") or 1)


def _involved(event: dict[str, Any]) -> str:
    obj = event.get("involvedObject") or {}
    namespace = obj.get("namespace")
    name = f"{namespace}/{obj.get('name')}" if namespace else str(obj.get("name"))
    return f"{obj.get('kind', '?')} {name}"


def warning_events(kube: Kube, window: float) -> Measurement:
    """Events whose type is not Normal, last seen within ``window`` seconds: their count (each
    event's ``count`` of repeats), by reason and object, with the top messages folded."""
    since = now() - timedelta(seconds=window)
    reasons: Counter[str] = Counter()
    objects: Counter[str] = Counter()
    messages: Counter[str] = Counter()
    for event in kube.items("warning-events"):
        seen = parse_time(_event_time(event))
        if event.get("type") == "Normal" or (seen is not None and seen < since):
            continue
        count = _event_count(event)
        kind = event.get("type") or "?"
        reason = str(event.get("reason") or "?") + ("" if kind == "Warning" else f" ({kind})")
        reasons[reason] += count
        objects[f"{_involved(event)} ({reason})"] += count
        messages[f"{reason}: {fold(' '.join(str(event.get('message', '')).split()))}"] += count
    total = sum(reasons.values())
    during = window_text(f"{window:g}s")
    where = f"namespaces {', '.join(kube.target.namespaces)}" if kube.target.namespaces else ""
    text = f"{plural(total, 'event')} not Normal {during}" + (f" in {where}" if where else "")
    if not total:
        return Measurement(0, text=text)
    text += ": " + ", ".join(f"{reason} {n}" for reason, n in reasons.most_common(3))
    notes = [f"{n:>7}  {reason}" for reason, n in reasons.most_common()]
    notes.append(f"by object ({plural(len(objects), 'object')}):")
    notes += [f"{n:>7}  {obj}" for obj, n in objects.most_common(OBJECTS_SHOWN)]
    notes.append("top messages, numbers, ids, addresses and times folded:")
    notes += [f"{n:>7}  {message}" for message, n in messages.most_common(TOP_SHOWN)]
    return Measurement(total, text=text, detail="by reason:\n" + "\n".join(notes))
