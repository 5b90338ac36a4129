"""Container and pod logs as a ``[[logs]]`` source: the runbooks' ``docker compose logs api |
grep -i error`` and ``kubectl logs deploy/api --since=1h | grep -i error``.

The logs come through the API of a ``[[docker]]`` target (``GET /containers/<id>/logs``) or a
``[[kubernetes]]`` target (``GET …/pods/<name>/log``), with the timestamp the engine or kubelet
stamped on each line and from the start of the longest pattern window (``since`` /
``sinceSeconds``); at most ``CAP`` bytes per container, the newest. Each line's own text (the
stamp taken off, as ``docker logs`` shows it) is written to a private temporary file per
container, cut at each window's start by the stamps, and counted by the same scanner as log files
(``_logscan.py``, run on this machine): patterns, presets, levels of JSON lines, top messages. All
containers of a service (pods of a deployment) count together; the detail gives each one's count.
"""

from __future__ import annotations

import bisect
import calendar
import re
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opscheck.config import LogsTarget, window_seconds
from opscheck.config.logs import DockerLogs, KubernetesLogs
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import docker as docker_probes
from opscheck.probes.logs import LogSource, _pattern_request
from opscheck.session import Lost
from opscheck.units import format_value

if TYPE_CHECKING:
    from testinfra.host import Host

CAP = 10 << 20  # bytes of logs read per container, the newest (as the HTTP checks' body cap)
_SHOWN = 10  # containers (pods) listed by name in a message
MAX_STREAMS = 50  # containers (pods) read per source: a service scaled past it is read in part
# RFC 3339 with nanoseconds, as dockerd and the kubelet stamp each line (`docker logs -t`).
_STAMP = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d) ?")
_BLOCK = 1 << 20  # bytes read from the logs response at once (read frame by frame: 3x slower)
_HEADER = 8  # a frame of the multiplexed stream: stream type, 3 zero bytes, length (uint32 BE)
_AGAIN = 1.0  # seconds before asking the kubelet again for a crash-looping container's log
_NO_PREVIOUS = "HTTP 400: previous terminated container"  # the kubelet's words, then "… not found"
_EVERYTHING = 1e10  # a scanner window reaching before any line: the files are cut already


class _Late(Exception):
    """The source's logs were not all read within its scan_timeout."""


@dataclass
class Stream:
    """One container's log: its name as messages show it, its state, and how to read it
    (``read(since, deadline)`` -> the stamped log bytes since the epoch ``since``, notes)."""

    name: str
    state: str
    read: Callable[[float, float], tuple[bytes, list[str]]]


@dataclass
class _Lines:
    """A container's log lines (without their stamps) and their times, in order."""

    name: str
    stamps: list[float] = field(default_factory=list)
    lines: list[bytes] = field(default_factory=list)

    def since(self, start: float) -> bytes:
        return b"".join(self.lines[bisect.bisect_left(self.stamps, start) :])


def _parse(data: bytes, name: str) -> _Lines:
    """Split stamped log bytes into lines and times; a line without a stamp (a partial one) has
    the time of the line before it."""
    found = _Lines(name)
    last = 0.0
    for line in data.splitlines(keepends=True):
        match = _STAMP.match(line)
        if match:
            y, mo, d, h, mi, s = (int(match.group(i)) for i in range(1, 7))
            stamp = float(calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)))
            stamp += float(b"0" + match.group(7)) if match.group(7) else 0.0
            zone = match.group(8)
            if zone != b"Z":
                sign = -1 if zone[:1] == b"-" else 1
                stamp -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
            last = max(last, stamp)  # the window cut needs them in order
            line = line[match.end() :]
        found.stamps.append(last)
        found.lines.append(line if line.endswith(b"\n") else line + b"\n")
    return found


def _tail(data: bytes) -> int:
    """How many of the newest lines fit in CAP, from the lines in ``data`` (the window's first
    CAP bytes): 90 % of it, as later lines may be longer."""
    lines = max(1, data.count(b"\n"))
    return max(1, int(0.9 * CAP * lines / max(1, len(data))))


def _cut(tail: int) -> str:
    return f"more than {format_value(CAP, 'size')} in the window: read its newest {tail} lines"


def _since(window: str, now: float) -> float:
    seconds = window_seconds(window)
    return now - now % 86400 if seconds is None else now - seconds


def _listing(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


# -- docker -------------------------------------------------------------------------------------


class DockerSource:
    """``docker = { target, container | service }`` through the target's APIClient (GET only)."""

    def __init__(self, client: Any, target_name: str, project: str | None, spec: DockerLogs):
        self.client = client
        self.spec = spec
        self.project = project
        self.origin = f"docker {target_name}: " + (
            f"container {spec.container.lstrip('/')}"
            if spec.container
            else f"service {spec.service} of project {project}"
        )
        self.unit = "container"

    def streams(self) -> list[Stream]:
        """The containers to read, running or not (a crashed one's logs count too)."""
        client = self.client
        if self.spec.container:
            name = self.spec.container.lstrip("/")
            listed = docker_probes._call(
                "GET /containers/json",
                client.containers,
                all=True,
                filters={"name": f"^/{name}$"},
            )
        else:
            labels = [
                f"{docker_probes.COMPOSE_PROJECT}={self.project}",
                f"{docker_probes.COMPOSE_SERVICE}={self.spec.service}",
            ]
            listed = docker_probes._call(
                "GET /containers/json", client.containers, all=True, filters={"label": labels}
            )
        found = []
        for entry in sorted(listed, key=lambda e: str((e.get("Names") or ["?"])[0]))[:MAX_STREAMS]:
            attrs = docker_probes._call(
                f"GET /containers/{entry['Id'][:12]}/json", client.inspect_container, entry["Id"]
            )
            name = docker_probes._name(attrs)
            tty = bool((attrs.get("Config") or {}).get("Tty"))

            def read(
                since: float, deadline: float, cid: str = attrs["Id"], tty: bool = tty
            ) -> tuple[bytes, list[str]]:
                return self._read(cid, tty, since, deadline)

            found.append(Stream(name, docker_probes._state_text(attrs), read))
        return found

    def _read(self, cid: str, tty: bool, since: float, deadline: float) -> tuple[bytes, list[str]]:
        data, cut = self._get(cid, tty, since, None, deadline)
        if not cut:
            return data, []
        tail = _tail(data)
        data, _ = self._get(cid, tty, since, tail, deadline)
        return data, [_cut(tail)]

    def _get(
        self, cid: str, tty: bool, since: float, tail: int | None, deadline: float
    ) -> tuple[bytes, bool]:
        """``GET /containers/<id>/logs`` (stdout and stderr, stamped, since the window start),
        read frame by frame under the client's timeout: (up to CAP bytes, whether there was
        more). The SDK's own streaming turns the socket timeout off, so it is not used."""
        client = self.client
        params: dict[str, Any] = {"stdout": 1, "stderr": 1, "timestamps": 1, "follow": 0}
        params["since"] = f"{since:.6f}"
        params["tail"] = tail if tail is not None else "all"
        what = f"GET /containers/{cid[:12]}/logs"
        try:
            response = client._get(
                client._url("/containers/{0}/logs", cid), params=params, stream=True
            )
        except Exception as exc:  # requests: the check's, on one line
            raise ProbeError(f"{what}: {docker_probes.describe_error(exc)}") from None
        try:
            client._raise_for_status(response)  # "configured logging driver does not support …"
        except Exception as exc:
            response.close()
            raise ProbeError(f"{what}: {docker_probes.describe_error(exc)}") from None
        parts: list[bytes] = []
        size = 0
        pending = b""  # the multiplexed stream (no TTY): 8-byte frame headers, then payloads
        try:
            while size <= CAP:
                if time.monotonic() > deadline:
                    raise _Late
                block = response.raw.read(_BLOCK)
                if not block:
                    break
                if tty:
                    parts.append(block)
                    size += len(block)
                    continue
                pending += block
                at = 0
                while len(pending) - at >= _HEADER:
                    end = at + _HEADER + struct.unpack_from(">xxxxL", pending, at)[0]
                    if end > len(pending):
                        break
                    parts.append(pending[at + _HEADER : end])
                    size += end - at - _HEADER
                    at = end
                pending = pending[at:]
        except _Late:
            raise
        except Exception as exc:
            raise ProbeError(f"{what}: {docker_probes.describe_error(exc)}") from None
        finally:
            response.close()
        data = b"".join(parts)
        if size > CAP:
            return data[: data.rfind(b"\n", 0, CAP) + 1], True
        return data, False


# -- kubernetes ---------------------------------------------------------------------------------


def _selector(selector: dict[str, Any]) -> str:
    """A LabelSelector (``matchLabels``, ``matchExpressions``) as ``kubectl -l`` writes it."""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, op = expression.get("key"), expression.get("operator")
        values = ",".join(expression.get("values") or [])
        terms.append(
            {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})"}.get(
                op, key if op == "Exists" else f"!{key}"
            )
        )
    return ",".join(terms)


def _pod_state(pod: dict[str, Any], container: str) -> str:
    status = pod.get("status") or {}
    state = str(status.get("phase", "?"))
    for found in status.get("containerStatuses") or []:
        if found.get("name") == container:
            waiting = (found.get("state") or {}).get("waiting") or {}
            state = waiting.get("reason") or state
            restarts = int(found.get("restartCount") or 0)
            if restarts:
                state += f", {restarts} restart{'s' if restarts > 1 else ''}"
    return f"{(pod.get('metadata') or {}).get('name')} {state}"


class KubernetesSource:
    """``kubernetes = { target, namespace, deployment | selector | pod, container, previous }``
    through the target's ``Kube`` (GET only: pods, the deployment, ``pods/log``)."""

    def __init__(self, kube: Any, target_name: str, spec: KubernetesLogs):
        self.kube = kube
        self.target_name = target_name
        self.spec = spec
        self.origin = f"kubernetes {target_name}: {spec.what}"
        if spec.container:
            self.origin += f", container {spec.container}"
        if spec.previous:
            self.origin += " (previous containers)"
        self.unit = "pod"

    def _call(self, call: Callable[..., Any], *args: Any, **params: Any) -> Any:
        try:
            return call(*args, **params)
        except Lost as exc:  # the cluster's, not this [[logs]] target's
            raise Lost(exc.error, ("kubernetes", self.target_name)) from None

    def pods(self) -> list[dict[str, Any]]:
        spec, ns = self.spec, self.spec.namespace
        base = f"/api/v1/namespaces/{ns}/pods"
        if spec.pod:
            try:
                return [self._call(self.kube.get, f"{base}/{spec.pod}")]
            except ProbeError as exc:
                if "HTTP 404" in str(exc):
                    return []
                raise
        selector = spec.selector
        if spec.deployment:
            path = f"/apis/apps/v1/namespaces/{ns}/deployments/{spec.deployment}"
            try:
                deployment = self._call(self.kube.get, path)
            except ProbeError as exc:
                if "HTTP 404" in str(exc):
                    raise ProbeError(f"{self.origin}: no such deployment") from None
                raise
            selector = _selector((deployment.get("spec") or {}).get("selector") or {})
        listed = self._call(self.kube.get, base, labelSelector=selector)
        found = sorted(listed.get("items") or [], key=lambda p: p["metadata"]["name"])
        return found[:MAX_STREAMS]

    def _container(self, pod: dict[str, Any]) -> str:
        """The container read: the one named, else the pod's default one (kubectl's rule)."""
        if self.spec.container:
            return self.spec.container
        meta = pod.get("metadata") or {}
        default = (meta.get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        return str(default or containers[0].get("name"))

    def streams(self) -> list[Stream]:
        found = []
        for pod in self.pods():
            name = pod["metadata"]["name"]
            container = self._container(pod)
            statuses = (pod.get("status") or {}).get("containerStatuses") or []
            status: dict[str, Any] = next((s for s in statuses if s.get("name") == container), {})
            terminated = (status.get("lastState") or {}).get("terminated")

            def read(
                since: float,
                deadline: float,
                pod: str = name,
                container: str = container,
                none: bool = self.spec.previous and not terminated,
            ) -> tuple[bytes, list[str]]:
                if none:
                    return b"", ["no previous (terminated) container to read"]
                return self._read(pod, container, since)

            found.append(Stream(name, _pod_state(pod, container), read))
        return found

    def _fetch(self, path: str, params: dict[str, Any]) -> bytes:
        """The log, asked once more after ``_AGAIN`` when the kubelet answers for a pod caught
        between two containers as it restarts: its own words with 200 instead of log lines
        ("unable to retrieve container logs for docker://…": the container removed), or, for
        ``previous``, 400 "previous terminated container … not found" for a pod listed with
        one."""
        try:
            data = self._call(self.kube.text, path, **params).encode()
        except ProbeError as exc:
            if not (self.spec.previous and _NO_PREVIOUS in str(exc)):
                raise
        else:
            if not data or _STAMP.match(data):
                return data
        time.sleep(_AGAIN)
        return self._call(self.kube.text, path, **params).encode()

    def _read(self, pod: str, container: str, since: float) -> tuple[bytes, list[str]]:
        path = f"/api/v1/namespaces/{self.spec.namespace}/pods/{pod}/log"
        params: dict[str, Any] = {
            "container": container,
            "timestamps": "true",
            "sinceSeconds": max(1, int(time.time() - since) + 1),
            "limitBytes": CAP + 1,
            "previous": "true" if self.spec.previous else None,
        }
        data = self._fetch(path, params)
        if data and not _STAMP.match(data):
            said = " ".join(data[:300].decode(errors="replace").split())
            return b"", [f"not read, the kubelet answered: {said}"]
        if len(data) <= CAP:
            return data, []
        tail = _tail(data)
        data = self._call(self.kube.text, path, **params, tailLines=tail).encode()
        if len(data) > CAP:
            data = data[: data.rfind(b"\n", 0, CAP) + 1]
        return data, [_cut(tail)]


# -- the source -----------------------------------------------------------------------------------


class ContainerLogs(LogSource):
    """A ``[[logs]]`` target whose lines come from containers: fetched once per run through the
    engine's (cluster's) API, counted by the scanner on this machine."""

    def __init__(self, target: LogsTarget, host: Host, api: DockerSource | KubernetesSource):
        super().__init__(target, host, "this machine")
        self.api = api
        self._streams: list[Stream] | None = None

    def streams(self) -> list[Stream]:
        """The containers (pods) of the source, found once per run."""
        with self._files_lock:
            if self._streams is None:
                self._streams = self.api.streams()
            return self._streams

    def files(self) -> dict[str, Any]:
        raise ProbeError("container logs have no files")  # the capacity checks skip them

    def _count(self) -> dict[str, Any]:
        if self._counts is None:
            self._counts = self._fetch_and_count()
        return self._counts

    def _fetch_and_count(self) -> dict[str, Any]:
        t, api = self.target, self.api
        streams = self.streams()
        if not streams:
            raise ProbeError(f"{api.origin}: no {api.unit} found (see test_log_source_present)")
        started = time.monotonic()
        deadline = started + t.scan_timeout
        now = time.time()
        patterns = t.patterns
        earliest = min((_since(p.window, now) for p in patterns), default=now - 86400)
        fetched: list[_Lines] = []
        notes: list[str] = []
        size = 0
        for stream in streams:
            try:
                if time.monotonic() > deadline:
                    raise _Late
                data, said = stream.read(earliest, deadline)
            except _Late:
                raise ProbeError(
                    f"{stream.name}: its logs were not read within {t.scan_timeout:g} s "
                    "(scan_timeout)"
                ) from None
            size += len(data)
            fetched.append(_parse(data, stream.name))
            notes += [f"{stream.name}: {note}" for note in said]
        counted: dict[str, Any] = {"files": [], "missing": [], "patterns": {}, "now": now}
        breakdown: dict[str, list[str]] = {}
        windows: dict[float, list[Any]] = {}
        for pattern in patterns:
            windows.setdefault(_since(pattern.window, now), []).append(pattern)
        with tempfile.TemporaryDirectory(prefix="opscheck-logs-") as folder:  # mode 0700
            for since, chosen in windows.items():
                paths = []
                for index, lines in enumerate(fetched):
                    path = Path(folder) / f"{index}-{since:.0f}.log"
                    path.write_bytes(lines.since(since))
                    paths.append(str(path))
                scanned = self._counted(paths, chosen, now)
                counted["patterns"].update(scanned["patterns"])
                if len(paths) > 1:  # each container's own count, for the detail
                    each = [self._counted([p], chosen, now)["patterns"] for p in paths]
                    for pattern in chosen:
                        parts = [
                            f"{lines.name} {e[pattern.name]['count']} of {e[pattern.name]['lines']}"
                            for lines, e in zip(fetched, each, strict=True)
                        ]
                        breakdown[pattern.name] = [f"per {api.unit}: " + ", ".join(parts)]
        names = [s.name for s in streams]
        noun = f"{api.unit}{'' if len(names) == 1 else 's'}"
        counted["origin"] = f"{api.origin} ({len(names)} {noun}: {_listing(names)})"
        counted["notes"] = {p.name: breakdown.get(p.name, []) + notes for p in patterns}
        counted["bytes"] = size
        counted["seconds"] = time.monotonic() - started
        return counted

    def _counted(self, paths: list[str], patterns: list[Any], now: float) -> dict[str, Any]:
        """One scan of ``paths`` (cut at the patterns' window start already) for ``patterns``."""
        specs = [_pattern_request(p, self.target) for p in patterns]
        for spec in specs:
            spec["window"] = _EVERYTHING  # the files hold the window only; count every line
        request = {"mode": "count", "paths": paths, "patterns": specs, "now": now, "whole": True}
        return self._scan(request)


def source_present(source: ContainerLogs) -> Measurement:
    """The source's containers (pods) exist: each named with its state."""
    api = source.api
    streams = source.streams()
    expected = f"at least one {api.unit} to read the logs of"
    if not streams:
        return Measurement.fact(False, f"{api.origin}: no {api.unit} found", expected)
    noun = f"{api.unit}{'' if len(streams) == 1 else 's'}"
    states = [s.state for s in streams]
    text = f"{api.origin}: {len(streams)} {noun} ({_listing(states)})"
    return Measurement.fact(True, text, expected)
