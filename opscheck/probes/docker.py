"""Docker probes: the runbooks' ``docker ps``, ``docker inspect`` and ``docker stats`` lines.

Every probe takes the low-level client ``open_client`` makes (docker SDK ``APIClient``) and sends
only GET requests: ``/_ping``, ``/version``, ``/containers/json``, ``/containers/<id>/json``,
``/containers/<id>/stats``. The SDK is imported only when a ``[[docker]]`` target is checked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from opscheck.config import DockerTarget
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.session import Unreachable
from opscheck.units import format_value

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
MAX_CONTAINERS = 200  # inspected per target: a host with more is checked on its first 200
STOPPED = ("exited", "dead", "created")


def describe_error(exc: BaseException) -> str:
    """A docker SDK / requests error on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def open_client(target: DockerTarget, timeout: float) -> Any:
    """The target's ``docker.APIClient`` once ``GET /_ping`` answers; ``Unreachable`` if not.

    ``version="auto"`` asks ``GET /version`` first, so the client speaks the daemon's API.
    tcp:// uses TLS when ``DOCKER_CERT_PATH`` holds ca.pem, cert.pem and key.pem.
    """
    import docker
    from docker.tls import TLSConfig

    tls: Any = False
    cert_path = os.environ.get("DOCKER_CERT_PATH")
    if target.url.startswith("tcp://") and cert_path:
        tls = TLSConfig(
            client_cert=(f"{cert_path}/cert.pem", f"{cert_path}/key.pem"),
            ca_cert=f"{cert_path}/ca.pem",
            verify=True,
        )
    try:
        client = docker.APIClient(base_url=target.url, version="auto", timeout=timeout, tls=tls)
        client.ping()
    except Exception as exc:  # the SDK raises DockerException, requests errors, OSError
        raise Unreachable(f"{target.url}: {describe_error(exc)}") from None
    return client


def _call(what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except Exception as exc:  # any SDK failure is the check's, on one line
        raise ProbeError(f"{what}: {describe_error(exc)}") from None


def reachable(client: Any) -> Measurement:
    """``GET /_ping`` answers OK; the Engine and API versions from ``GET /version``."""
    _call("GET /_ping", client.ping)
    version = _call("GET /version", client.version)
    text = (
        f"Docker Engine {version.get('Version', '?')} (API {version.get('ApiVersion', '?')}, "
        f"{version.get('Os', '?')}/{version.get('Arch', '?')})"
    )
    return Measurement.fact(True, text, "answers /_ping")


def _n(count: int, noun: str) -> str:
    """``1 container``, ``2 containers``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _name(attrs: dict[str, Any]) -> str:
    return str(attrs.get("Name") or attrs.get("Id", "?")[:12]).lstrip("/")


def _service(attrs: dict[str, Any]) -> str | None:
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    return labels.get(COMPOSE_SERVICE)


def containers(client: Any, target: DockerTarget) -> list[dict[str, Any]]:
    """``docker inspect`` of the target's containers, running or not: the compose project's and
    the named ones, else every container on the engine (at most MAX_CONTAINERS)."""
    found: dict[str, dict[str, Any]] = {}
    listed: list[dict[str, Any]] = []
    if target.project is not None:
        label = f"{COMPOSE_PROJECT}={target.project}"
        listed += _call(
            "GET /containers/json", client.containers, all=True, filters={"label": label}
        )
    if target.containers:
        for name in target.containers:
            listed += _call(
                "GET /containers/json",
                client.containers,
                all=True,
                filters={"name": f"^/{name.lstrip('/')}$"},
            )
    if target.project is None and not target.containers:
        listed = _call("GET /containers/json", client.containers, all=True)
    for entry in listed[:MAX_CONTAINERS]:
        if entry["Id"] not in found:
            found[entry["Id"]] = _call(
                f"GET /containers/{entry['Id'][:12]}/json", client.inspect_container, entry["Id"]
            )
    return sorted(found.values(), key=_name)


def _state_text(attrs: dict[str, Any]) -> str:
    state = attrs.get("State") or {}
    status = str(state.get("Status", "?"))
    if status in STOPPED or state.get("Restarting"):
        status += f" (exit code {state.get('ExitCode', '?')}"
        status += ", OOMKilled)" if state.get("OOMKilled") else ")"
    return f"{_name(attrs)} {status}"


def expected_running(client: Any, target: DockerTarget) -> Measurement:
    """The expected containers (``containers``, the project's ``services``, else every container
    of the ``project``) exist and run; the message names the missing and the stopped ones."""
    if not target.containers and target.project is None:
        raise NotApplicable("no containers, project or services expected")
    found = containers(client, target)
    missing: list[str] = []
    wanted: list[dict[str, Any]] = []
    for name in target.containers:
        match = [a for a in found if _name(a) == name.lstrip("/")]
        wanted += match
        missing += [] if match else [f"container {name}"]
    if target.project is not None:
        ours = [a for a in found if _service(a) is not None]
        if target.services:
            for service in target.services:
                match = [a for a in ours if _service(a) == service]
                wanted += match
                missing += [] if match else [f"service {service}"]
        else:
            wanted += ours
            missing += [] if ours else [f"any container of project {target.project}"]
    stopped = [a for a in wanted if (a.get("State") or {}).get("Status") != "running"]
    running = len(wanted) - len(stopped)
    expected = "every expected container running"
    problems = [f"missing: {', '.join(missing)}"] if missing else []
    problems += [f"not running: {', '.join(_state_text(a) for a in stopped)}"] if stopped else []
    if problems:
        return Measurement.fact(False, "; ".join(problems), expected)
    return Measurement.fact(True, f"{_n(running, 'expected container')} running", expected)


def _last_health_output(state: dict[str, Any]) -> str:
    log = ((state.get("Health") or {}).get("Log")) or []
    if not log:
        return "no health check result yet"
    last = log[-1]
    output = " ".join(str(last.get("Output") or "").split())[:200]
    return f"exit {last.get('ExitCode', '?')}: {output or '(no output)'}"


def health(client: Any, target: DockerTarget) -> Measurement:
    """Containers with a HEALTHCHECK report ``healthy``; the unhealthy ones are named with the
    output of their last health check (``docker inspect --format '{{json .State.Health}}'``)."""
    checked = [a for a in containers(client, target) if (a.get("State") or {}).get("Health")]
    if not checked:
        raise NotApplicable("no container of the target has a health check")
    bad = [a for a in checked if a["State"]["Health"].get("Status") != "healthy"]
    expected = "every health-checked container healthy"
    if bad:
        text = "; ".join(
            f"{_name(a)} {a['State']['Health'].get('Status')} ({_last_health_output(a['State'])})"
            for a in bad
        )
        return Measurement.fact(
            False, f"{len(bad)} of {len(checked)} not healthy: {text}", expected
        )
    return Measurement.fact(True, f"{_n(len(checked), 'container')} healthy", expected)


def restarts(client: Any, target: DockerTarget) -> Iterator[Measurement]:
    """``RestartCount`` of each container (restarts by its restart policy since it was created)."""
    found = containers(client, target)
    if not found:
        raise NotApplicable("no containers")
    for attrs in found:
        count = int(attrs.get("RestartCount") or 0)
        state = attrs.get("State") or {}
        detail = ""
        if count:
            detail = (
                f"{_state_text(attrs)}, last started {state.get('StartedAt', '?')}; "
                f"`docker logs {_name(attrs)}` shows why"
            )
        yield Measurement(count, _name(attrs), _n(count, "restart"), detail)


def exit_codes(client: Any, target: DockerTarget) -> Measurement:
    """Stopped containers exited 0 and none was OOM-killed (``docker ps -a``, ``docker inspect``
    ``.State.ExitCode`` / ``.State.OOMKilled``)."""
    stopped = [
        a for a in containers(client, target) if (a.get("State") or {}).get("Status") in STOPPED
    ]
    if not stopped:
        raise NotApplicable("no stopped containers")
    bad = [a for a in stopped if a["State"].get("ExitCode") or a["State"].get("OOMKilled")]
    expected = "stopped containers exited 0, none OOM-killed"
    if bad:
        text = ", ".join(_state_text(a) for a in bad)
        return Measurement.fact(
            False, f"{len(bad)} of {len(stopped)} stopped failed: {text}", expected
        )
    return Measurement.fact(True, f"{_n(len(stopped), 'stopped container')} exited 0", expected)


def memory_used_pct(client: Any, target: DockerTarget) -> Iterator[Measurement]:
    """Memory used (less page cache) of each running container with a memory limit, as a share
    of the limit (one-shot ``GET /containers/<id>/stats?stream=false``)."""
    running = [
        a
        for a in containers(client, target)
        if (a.get("State") or {}).get("Status") == "running"
        and (a.get("HostConfig") or {}).get("Memory")
    ]
    if not running:
        raise NotApplicable("no running container with a memory limit")
    for attrs in running:
        stats = _call(
            f"GET /containers/{_name(attrs)}/stats",
            client.stats,
            attrs["Id"],
            stream=False,
            one_shot=True,
        )
        memory = stats.get("memory_stats") or {}
        limit = float(attrs["HostConfig"]["Memory"])
        extra = memory.get("stats") or {}
        cache = extra.get("inactive_file", extra.get("total_inactive_file", 0))
        used = max(float(memory.get("usage", 0)) - float(cache), 0.0)
        pct = 100 * used / limit
        text = (
            f"{format_value(pct, 'percent')} ({format_value(used, 'size')} of "
            f"{format_value(limit, 'size')} limit)"
        )
        yield Measurement(pct, _name(attrs), text)
