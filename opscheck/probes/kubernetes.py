"""Kubernetes probes: the runbooks' ``kubectl get …`` lines, read through the official client.

``open_client`` makes one ``Kube`` per ``[[kubernetes]]`` target per run. Each resource kind is
listed once per run (``Kube.items``: every check of the target reads the same list) and comes
back as the plain JSON the API server sends, not as client model objects (which cost ~10x the
time to build). Only GET requests are sent. A 403 names the RBAC rule to add
(``forbidden: grant list on pods``); an API group the cluster does not serve (metrics.k8s.io
without metrics-server, cert-manager not installed) skips the checks that need it. The client is
imported only when a ``[[kubernetes]]`` target is checked (~0.4 s).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from opscheck.config import KubernetesTarget
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.redaction import clip
from opscheck.session import Lost, Unreachable

PAGE = 500  # items per list request (`limit`/`continue`): bounded replies on big clusters


@dataclass(frozen=True)
class Kind:
    """A resource kind: its API group (``""`` for core), the versions opscheck reads (the first
    the server serves wins), its plural name and whether it lives in namespaces. ``selected``:
    the target's ``label_selector`` applies to it."""

    group: str
    versions: tuple[str, ...]
    resource: str
    namespaced: bool = True
    selected: bool = False
    field_selector: str | None = None  # sent with every list request of this kind

    @property
    def rbac(self) -> str:
        """``pods``, ``deployments.apps``: how ``kubectl create clusterrole`` names it."""
        return f"{self.resource}.{self.group}" if self.group else self.resource


KINDS: dict[str, Kind] = {
    "nodes": Kind("", ("v1",), "nodes", namespaced=False),
    "namespaces": Kind("", ("v1",), "namespaces", namespaced=False),
    "pods": Kind("", ("v1",), "pods", selected=True),
    "services": Kind("", ("v1",), "services", selected=True),
    "endpoints": Kind("", ("v1",), "endpoints", selected=True),
    "events": Kind("", ("v1",), "events"),
    # The server filters: a busy cluster has thousands of Normal events, a few warnings.
    "warning-events": Kind("", ("v1",), "events", field_selector="type!=Normal"),
    "persistentvolumeclaims": Kind("", ("v1",), "persistentvolumeclaims", selected=True),
    "deployments": Kind("apps", ("v1",), "deployments", selected=True),
    "statefulsets": Kind("apps", ("v1",), "statefulsets", selected=True),
    "daemonsets": Kind("apps", ("v1",), "daemonsets", selected=True),
    "replicasets": Kind("apps", ("v1",), "replicasets", selected=True),
    "jobs": Kind("batch", ("v1",), "jobs", selected=True),
    # batch/v1 since 1.21; 1.20 serves CronJobs only as batch/v1beta1.
    "cronjobs": Kind("batch", ("v1", "v1beta1"), "cronjobs", selected=True),
    "ingresses": Kind("networking.k8s.io", ("v1",), "ingresses", selected=True),
    "horizontalpodautoscalers": Kind("autoscaling", ("v1",), "horizontalpodautoscalers"),
    "nodes.metrics.k8s.io": Kind("metrics.k8s.io", ("v1beta1",), "nodes", namespaced=False),
    "pods.metrics.k8s.io": Kind("metrics.k8s.io", ("v1beta1",), "pods", selected=True),
    "certificates.cert-manager.io": Kind("cert-manager.io", ("v1",), "certificates"),
}


def describe_error(exc: BaseException) -> str:
    """A client / urllib3 error on one line, without the response headers the client adds."""
    status = getattr(exc, "status", None)
    if status is not None and hasattr(exc, "body"):
        message = _api_message(exc) or str(getattr(exc, "reason", "") or "")
        return f"HTTP {status}: {message}".strip()
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _api_message(exc: BaseException) -> str:
    """The ``message`` of the Status object an API error carries, if any."""
    body = getattr(exc, "body", None)
    try:
        status = json.loads(body) if body else {}
    except (TypeError, ValueError):
        return ""
    return (
        clip(" ".join(str(status.get("message", "")).split()), 400)
        if isinstance(status, dict)
        else ""
    )


_NAMESPACED = re.compile(
    r"^/api(?:/v1|s/(?P<group>[^/]+)/[^/]+)/namespaces/(?P<namespace>[^/]+)/(?P<resource>[^/]+)"
    r"(?:/[^/]+/(?P<sub>[^/?]+))?"
)


def _rbac_of(path: str) -> str:
    """``secrets in namespace shop`` for ``/api/v1/namespaces/shop/secrets/tls``, ``pods/log in
    namespace x`` for a log path: the rule a namespaced GET needs; other paths as they are."""
    found = _NAMESPACED.match(path)
    if not found:
        return path
    resource = found["resource"] + (f".{found['group']}" if found["group"] else "")
    resource += f"/{found['sub']}" if found["sub"] else ""
    return f"{resource} in namespace {found['namespace']}"


def _is_network_error(exc: BaseException) -> bool:
    import urllib3.exceptions

    return isinstance(exc, urllib3.exceptions.HTTPError | OSError)


class Kube:
    """One target's API client: cached lists per kind, bounded GETs, errors an operator reads."""

    def __init__(self, target: KubernetesTarget, api: Any, timeout: float) -> None:
        self.target = target
        self.api = api  # kubernetes.client.ApiClient, for what needs the typed API (exec)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._lists: dict[str, list[dict[str, Any]]] = {}
        self._served: dict[str, tuple[str, ...]] = {}  # API group -> versions it serves
        self.server_version: dict[str, Any] = {}  # GET /version
        self._lost: str | None = None  # the error that showed the server stopped answering

    def close(self) -> None:
        self.api.close()

    # -- raw requests ------------------------------------------------------------------------

    def _request(self, path: str, params: dict[str, Any]) -> Any:
        if self._lost is not None:  # checks waiting on the same list fail at once, not in turn
            raise Lost(self._lost)
        query = [(k, v) for k, v in params.items() if v is not None]
        try:
            response = self.api.call_api(
                path,
                "GET",
                query_params=query,
                header_params={"Accept": "application/json, */*"},
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=(self.timeout, self.timeout),
            )
            return response.data
        except Exception as exc:  # urllib3 / ApiException: a lost server or the call's own
            if _is_network_error(exc):
                self._lost = f"GET {path}: {describe_error(exc)}"
                raise Lost(self._lost) from None
            raise

    def _read(self, path: str, params: dict[str, Any]) -> bytes:
        """The body of GET ``path``; API errors as ``ProbeError`` (a 403 names the RBAC rule
        to add), a server that stopped answering as ``Lost``."""
        try:
            return bytes(self._request(path, params))
        except Lost:
            raise
        except Exception as exc:
            raise self._refused("get", path, exc) from None

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        """GET ``path`` as JSON (one object, a discovery document)."""
        answer: dict[str, Any] = json.loads(self._read(path, params))
        return answer

    def text(self, path: str, **params: Any) -> str:
        """GET ``path`` as text (``pods/<name>/log``)."""
        return self._read(path, params).decode("utf-8", "replace")

    def _refused(self, verb: str, what: str, exc: BaseException, kind: Kind | None = None) -> Any:
        status = getattr(exc, "status", None)
        if status == 403:
            resource = kind.rbac if kind else _rbac_of(what)
            return ProbeError(f"forbidden: grant {verb} on {resource} ({_api_message(exc)})")
        return ProbeError(f"GET {what}: {describe_error(exc)}")

    # -- lists -------------------------------------------------------------------------------

    def version(self, kind: Kind) -> str | None:
        """The first of ``kind.versions`` the server serves (discovery, once per group); None
        when it serves none (the API group is not installed)."""
        if len(kind.versions) == 1 and kind.group not in _MISSING:
            return kind.versions[0]  # a stable API every supported cluster serves
        with self._lock:  # kinds of one group listed side by side ask discovery once
            group_lock = self._locks.setdefault(f"/apis/{kind.group}", threading.Lock())
        with group_lock:
            served = self._served.get(kind.group)
            if served is None:
                try:
                    document = self.get(f"/apis/{kind.group}")
                    served = tuple(v["version"] for v in document.get("versions") or [])
                except ProbeError as exc:
                    if "HTTP 404" not in str(exc):
                        raise
                    served = ()
                self._served[kind.group] = served
        candidates = [v for v in kind.versions if v in served]
        if len(candidates) < 2:
            return candidates[0] if candidates else None
        # A group serves a version without every kind of it: 1.20 serves batch/v1 (Jobs), but
        # CronJobs only in batch/v1beta1. Ask the version's own resource list.
        for version in candidates:
            document = self.get(f"/apis/{kind.group}/{version}")
            if any(r.get("name") == kind.resource for r in document.get("resources") or []):
                return version
        return None

    def items(self, name: str) -> list[dict[str, Any]]:
        """Every object of the kind ``name`` (a key of ``KINDS``) in the target's namespaces
        (all of them when it names none), listed once per run; ``NotApplicable`` when the
        cluster does not serve its API group."""
        kind = KINDS[name]
        with self._lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._lists:
                self._lists[name] = self._list(kind)
            return self._lists[name]

    def _list(self, kind: Kind) -> list[dict[str, Any]]:
        version = self.version(kind)
        if version is None:
            raise NotApplicable(
                f"the cluster does not serve {kind.group} ({'/'.join(kind.versions)}): "
                f"{_MISSING.get(kind.group, 'its API is not installed')}"
            )
        base = f"/api/{version}" if not kind.group else f"/apis/{kind.group}/{version}"
        selector = self.target.label_selector if kind.selected else None
        if not kind.namespaced or not self.target.namespaces:
            return self._pages(kind, f"{base}/{kind.resource}", selector, None)
        found: list[dict[str, Any]] = []
        for namespace in self.target.namespaces:
            path = f"{base}/namespaces/{namespace}/{kind.resource}"
            found += self._pages(kind, path, selector, namespace)
        return found

    def _pages(
        self, kind: Kind, path: str, selector: str | None, namespace: str | None
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            params = {
                "limit": PAGE,
                "continue": token,
                "labelSelector": selector,
                "fieldSelector": kind.field_selector,
            }
            try:
                page = json.loads(self._request(path, params))
            except Lost:
                raise
            except Exception as exc:
                if getattr(exc, "status", None) == 403:
                    where = f"in namespace {namespace}" if namespace else "cluster-wide"
                    hint = (
                        " (or set namespaces to those it may read)"
                        if kind.namespaced and not namespace
                        else ""
                    )
                    raise ProbeError(
                        f"forbidden: grant list on {kind.rbac} {where}{hint}: {_api_message(exc)}"
                    ) from None
                raise ProbeError(f"list {kind.rbac}: {describe_error(exc)}") from None
            found += page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return found


_MISSING = {
    "metrics.k8s.io": "install metrics-server for `kubectl top`",
    "cert-manager.io": "cert-manager is not installed",
}


def open_client(target: KubernetesTarget, timeout: float) -> Kube:
    """The target's ``Kube`` once ``GET /version`` answers; ``Unreachable`` with the real
    error (no kubeconfig, an unknown context, a refused connection, a bad token) if not."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    try:
        if target.in_cluster:
            config.load_incluster_config(client_configuration=configuration)
        else:
            path = os.path.expanduser(target.kubeconfig) if target.kubeconfig else None
            config.load_kube_config(
                config_file=path,
                context=target.context,
                client_configuration=configuration,
                persist_config=False,
            )
    except (ConfigException, OSError, ValueError, TypeError) as exc:
        where = "in-cluster config" if target.in_cluster else "kubeconfig"
        raise Unreachable(f"{where}: {describe_error(exc)}") from None
    configuration.retries = False  # one try per request: a dead server costs one timeout
    kube = Kube(target, client.ApiClient(configuration), timeout)
    try:
        kube.server_version = kube.get("/version")
    except (Lost, ProbeError) as exc:
        kube.close()
        raise Unreachable(f"{configuration.host}: {exc}") from None
    return kube


# -- small helpers every check uses --------------------------------------------------------------


def ref(obj: dict[str, Any]) -> str:
    """``namespace/name`` (``name`` for cluster-scoped objects)."""
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace")
    return f"{namespace}/{meta.get('name')}" if namespace else str(meta.get("name"))


def parse_time(value: str | None) -> datetime | None:
    """An API timestamp (``2026-11-30T20:21:41Z``) as an aware datetime; None if absent."""
    if not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def now() -> datetime:
    return datetime.now(UTC)


def plural(count: int, noun: str) -> str:
    """``1 pod``, ``2 pods``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def verdict(
    bad: list[str], of: str, failing: str, passing: str, expected: str, good: Sequence[str] = ()
) -> Measurement:
    """A yes/no answer over objects: ``bad`` holds a ``<object>: <why>`` line per object that
    fails; the message counts and names them (``2 of 5 claims not Bound: a/x, a/y``), the detail
    keeps every line (then the ``good`` ones). ``of``: what was looked at (``5 claims``)."""
    if bad:
        names = [line.split(":")[0] for line in bad]
        text = f"{len(bad)} of {of} {failing}: {listing(names)}"
        return Measurement.fact(False, text, expected, detail="\n".join([*bad, *good]))
    return Measurement.fact(True, passing, expected, detail="\n".join(good))


def listing(names: list[str], limit: int = 5) -> str:
    """``a, b, c and 4 more``: the first ``limit`` names, the rest counted."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# -- cluster ------------------------------------------------------------------------------------


def reachable(kube: Kube) -> Measurement:
    """``GET /version`` answered (when the client opened); the server's version."""
    version = kube.server_version
    text = f"Kubernetes {version.get('gitVersion', '?')} ({version.get('platform', '?')})"
    return Measurement.fact(True, text, "answers /version")


def _conditions(node: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (node.get("status") or {}).get("conditions") or []}


def nodes_ready(kube: Kube) -> Measurement:
    """Every node's Ready condition is True; the others with their reason and message."""
    nodes = kube.items("nodes")
    if not nodes:
        raise ProbeError("the cluster lists no nodes")
    bad = []
    for node in nodes:
        ready = _conditions(node).get("Ready", {})
        if ready.get("status") != "True":
            since = ready.get("lastTransitionTime", "?")
            why = ready.get("reason") or "no Ready condition"
            bad.append(f"{ref(node)}: Ready={ready.get('status', '?')} ({why}, since {since})")
    total = plural(len(nodes), "node")
    return verdict(bad, total, "not Ready", f"{total} Ready", "every node Ready")


PRESSURE = ("MemoryPressure", "DiskPressure", "PIDPressure", "NetworkUnavailable")


def node_conditions(kube: Kube) -> Measurement:
    """No node under memory, disk or PID pressure (or without network), none cordoned."""
    nodes = kube.items("nodes")
    bad = []
    for node in nodes:
        conditions = _conditions(node)
        for name in PRESSURE:
            if conditions.get(name, {}).get("status") == "True":
                message = conditions[name].get("message") or conditions[name].get("reason", "")
                bad.append(f"{ref(node)}: {name} ({message})")
        if (node.get("spec") or {}).get("unschedulable"):
            bad.append(f"{ref(node)}: cordoned (SchedulingDisabled)")
    expected = "no pressure, none cordoned"
    if bad:
        text = f"{plural(len(bad), 'problem')} on nodes: {listing(bad, 3)}"
        return Measurement.fact(False, text, expected, detail="\n".join(bad))
    return Measurement.fact(True, f"{plural(len(nodes), 'node')} without pressure", expected)


MAX_KUBELET_SKEW = 2  # minor versions a kubelet may be behind the API server (3 since 1.28)


def _minor(version: str) -> tuple[int, int] | None:
    parts = version.lstrip("v").split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()))
    except (IndexError, ValueError):
        return None


def kubelet_versions(kube: Kube) -> Measurement:
    """Each node's kubelet is not newer than the API server and at most two minor versions
    behind it (the version skew policy); the versions found are in the text."""
    server = str(kube.server_version.get("gitVersion", ""))
    server_minor = _minor(server)
    nodes = kube.items("nodes")
    found: dict[str, list[str]] = {}
    bad = []
    for node in nodes:
        version = str(((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion"))
        found.setdefault(version, []).append(ref(node))
        minor = _minor(version)
        if server_minor and minor and minor[0] == server_minor[0]:
            behind = server_minor[1] - minor[1]
            if behind < 0 or behind > MAX_KUBELET_SKEW:
                bad.append(f"{ref(node)}: kubelet {version} vs API server {server}")
    summary = ", ".join(f"{v} ({plural(len(n), 'node')})" for v, n in sorted(found.items()))
    expected = f"kubelets {server} or up to {MAX_KUBELET_SKEW} minor versions older"
    if bad:
        return Measurement.fact(
            False, f"{plural(len(bad), 'kubelet')} outside the skew: {listing(bad, 3)}", expected
        )
    return Measurement.fact(True, f"kubelet {summary}; API server {server}", expected)
