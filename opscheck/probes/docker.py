"""Docker probes: the runbooks' ``docker ps``, ``docker inspect`` and ``docker stats`` lines.

Every probe takes the low-level client ``open_client`` makes (docker SDK ``APIClient``) and sends
only GET requests: ``/_ping``, ``/version``, ``/containers/json``, ``/containers/<id>/json``,
``/containers/<id>/stats``, ``/system/df``. The SDK is imported only when a ``[[docker]]`` target
is checked. A call that times out or whose connection breaks once the daemon has answered is
``Lost``: the target is down for the rest of the run (``lost``).
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

from opscheck.config import DockerTarget
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.session import Lost, Unreachable
from opscheck.units import format_value

COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
MAX_CONTAINERS = 200  # inspected per target: a host with more is checked on its first 200
STOPPED = ("exited", "dead", "created")


def describe_error(exc: BaseException) -> str:
    """A docker SDK / requests error on one line."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def open_client(target: DockerTarget, timeout: float, url: str | None = None) -> Any:
    """The target's ``docker.APIClient`` once ``GET /_ping`` answers; ``Unreachable`` if not.
    ``url``: where the daemon is reached instead of the target's own (an ssh forward's socket).

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
        client = docker.APIClient(
            base_url=url or target.url, version="auto", timeout=timeout, tls=tls
        )
        client.ping()
    except Exception as exc:  # the SDK raises DockerException, requests errors, OSError
        if url is None:
            raise Unreachable(f"{target.url}: {describe_error(exc)}") from None
        # sshd closes the forwarded connection without a word when it cannot open the socket.
        raise Unreachable(
            f"{target.url} ({target.socket}): {describe_error(exc)}; is the socket there on "
            f"{target.host}, readable by the ssh user, and AllowStreamLocalForwarding on?"
        ) from None
    return client


def lost(exc: BaseException) -> str | None:
    """The real error if ``exc`` means the daemon stopped answering (a read timeout, a refused
    or broken connection), else None: an API error (404, 500) is the check's own. The
    ``[[docker]]`` targets' classifier (``session.LOST``)."""
    import requests

    if isinstance(exc, Lost):
        return exc.error
    if isinstance(exc, requests.Timeout | requests.ConnectionError):
        return describe_error(exc)
    return None


def _call(what: str, call: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return call(*args, **kwargs)
    except Exception as exc:  # any SDK failure is the check's, on one line
        gone = lost(exc)
        if gone is not None:
            raise Lost(f"{what}: {gone}") from None
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


# The restart test's detail keeps what the next run compares with (there is no history store).
_RESTART_COUNT = re.compile(r"RestartCount (\d+) of container ([0-9a-f]{12})")
REPORT_DAYS = 31  # day folders of the archive searched for the previous run, newest first
RESTARTS_TEST = "test_container_restarts"
Counts = dict[str, tuple[str, int]]  # container -> (id, RestartCount); id "" when not recorded


@dataclass(frozen=True)
class PreviousRun:
    """What the newest earlier archived report says of a target's restarts."""

    started: str  # "2026-11-30 06:00 UTC"
    counts: Counts


@functools.lru_cache(maxsize=256)
def _restart_records(path: Path, mtime_ns: int) -> tuple[str, dict[str, Counts]] | None:
    """When a JSON report's run started, and the restart counts it recorded per target; read
    once per file (and version) in a run however many targets ask. None if it cannot be read:
    an unreadable report is not this check's to judge."""
    try:
        document = json.loads(path.read_text())
        started = str(document["started"])
        by_target: dict[str, Counts] = {}
        for test in document["tests"]:
            name = str(test["id"]).rpartition("::")[2]
            if not name.startswith(RESTARTS_TEST + "["):
                continue
            counts = by_target.setdefault(name.removeprefix(RESTARTS_TEST + "[")[:-1], {})
            for record in test.get("records") or []:
                if record["check"] == "docker.restarts":
                    found = _RESTART_COUNT.search(record.get("detail") or "")
                    counts[record["subject"]] = (found[2], int(found[1])) if found else ("", 0)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    return started, by_target


def previous_run(reports: Path, target: str) -> PreviousRun | None:
    """The newest archived JSON report (``REPORTS_DIR/YYYY-MM-DD/*.json``, the last
    ``REPORT_DAYS`` day folders) with a ``docker.restarts`` record of ``target``; None if none."""
    try:
        days = sorted(d for d in reports.iterdir() if re.fullmatch(r"\d{4}-\d\d-\d\d", d.name))
    except OSError:
        return None
    for day in reversed(days[-REPORT_DAYS:]):
        best: tuple[str, int, Counts] | None = None
        for path in day.glob("[!.]*.json"):
            try:
                mtime = path.stat().st_mtime_ns
            except OSError:
                continue
            read = _restart_records(path, mtime)
            counts = read[1].get(target) if read is not None else None
            # Two runs in one second: the later written wins.
            if read is not None and counts and (best is None or (read[0], mtime) > best[:2]):
                best = (read[0], mtime, counts)
        if best is not None:
            when = datetime.fromisoformat(best[0]).strftime("%Y-%m-%d %H:%M %Z").strip()
            return PreviousRun(when, best[2])
    return None


def restarts(
    client: Any, target: DockerTarget, previous: PreviousRun | None
) -> Iterator[Measurement]:
    """Restarts of each container (``RestartCount``, by its restart policy) since the previous
    archived run, or since it was created when there is none on record (``previous_run``)."""
    found = containers(client, target)
    if not found:
        raise NotApplicable("no containers")
    for attrs in found:
        name, ident = _name(attrs), str(attrs.get("Id", ""))[:12]
        count = int(attrs.get("RestartCount") or 0)
        state = attrs.get("State") or {}
        detail = ""
        if count:
            detail = (
                f"RestartCount {count} of container {ident}; {_state_text(attrs)}, last started "
                f"{state.get('StartedAt', '?')}; `docker logs {name}` shows why"
            )
        in_all = f"{_n(count, 'restart')} in all"
        if previous is None:
            value, text = count, f"no previous run on record: {in_all}"
        elif name not in previous.counts:
            value, text = count, f"not in the previous run ({previous.started}): {in_all}"
        else:
            was_id, was = previous.counts[name]
            # Recreated since (another id, or a count that went down): all its restarts are new.
            same = was_id in ("", ident) and was <= count
            value = count - was if same else count
            since = f"{_n(value, 'restart')} since the previous run ({previous.started})"
            text = f"{since}, {count} in all" if same else f"{since}: recreated, {in_all}"
        yield Measurement(value, name, text, detail)


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
        stats = _stats(client, attrs)
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


CPU_SAMPLE = 1.0  # seconds between the two readings of each container's CPU time
STATS_THREADS = 8  # containers read at once; each request is bounded by the target's timeout


def _each(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run ``calls`` in threads, their results in order; the first failure is raised."""
    with ThreadPoolExecutor(max_workers=min(STATS_THREADS, len(calls))) as pool:
        return list(pool.map(lambda call: call(), calls))


def _stats(client: Any, attrs: dict[str, Any]) -> dict[str, Any]:
    """One ``GET /containers/<id>/stats?stream=false&one-shot=true`` reading."""
    stats: dict[str, Any] = _call(
        f"GET /containers/{_name(attrs)}/stats",
        client.stats,
        attrs["Id"],
        stream=False,
        one_shot=True,
    )
    return stats


def _cpu_reading(client: Any, attrs: dict[str, Any]) -> tuple[float, float, int]:
    """(container CPU ns, host CPU ns, host CPUs online) from one ``stats?one-shot=true``."""
    cpu = _stats(client, attrs).get("cpu_stats") or {}
    usage = cpu.get("cpu_usage") or {}
    online = int(cpu.get("online_cpus") or len(usage.get("percpu_usage") or []) or 1)
    return float(usage.get("total_usage", 0)), float(cpu.get("system_cpu_usage", 0)), online


def _cpuset_size(cpuset: str) -> int:
    """CPUs in a cpuset list: ``0-3,6`` is 5."""
    size = 0
    for part in cpuset.split(","):
        first, _, last = part.partition("-")
        size += int(last or first) - int(first) + 1
    return size


def cpu_limit(attrs: dict[str, Any]) -> tuple[float, str] | None:
    """The container's CPU limit in CPUs and how it was set (``--cpus``, ``--cpu-quota``,
    ``--cpuset-cpus``); None without one."""
    host = attrs.get("HostConfig") or {}
    if host.get("NanoCpus"):
        return host["NanoCpus"] / 1e9, "--cpus"
    if (host.get("CpuQuota") or 0) > 0:
        return host["CpuQuota"] / (host.get("CpuPeriod") or 100_000), "--cpu-quota"
    if host.get("CpusetCpus"):
        return float(_cpuset_size(host["CpusetCpus"])), "--cpuset-cpus"
    return None


def cpu_used_pct(client: Any, target: DockerTarget) -> Iterator[Measurement]:
    """CPU time of each running container over ``CPU_SAMPLE`` s, as a share of its CPU limit,
    else of the host's CPUs (``docker stats --no-stream``: two one-shot readings per container,
    the containers read in parallel threads)."""
    running = [
        a for a in containers(client, target) if (a.get("State") or {}).get("Status") == "running"
    ]
    if not running:
        raise NotApplicable("no running container")
    calls = [functools.partial(_cpu_reading, client, a) for a in running]
    before = _each(calls)
    time.sleep(CPU_SAMPLE)
    after = _each(calls)
    for attrs, (cpu0, host0, _), (cpu1, host1, online) in zip(running, before, after, strict=True):
        if host1 <= host0:
            raise ProbeError(
                f"GET /containers/{_name(attrs)}/stats: no host CPU time (system_cpu_usage)"
            )
        used = max(cpu1 - cpu0, 0.0) / (host1 - host0) * online  # CPUs busy, as docker stats
        limit = cpu_limit(attrs)
        if limit is None:
            capacity, of = float(online), f"the host's {_n(online, 'CPU')}"
        else:
            capacity, of = limit[0], f"its {limit[0]:g} CPU limit ({limit[1]})"
        pct = 100 * used / capacity
        yield Measurement(pct, _name(attrs), f"{format_value(pct, 'percent')} of {of}, "
                          f"{used:.2f} CPUs used")  # fmt: skip


def _reclaim(size: float, reclaimable: float, count: str) -> str:
    return (
        f"{format_value(size, 'size')} in {count}, {format_value(reclaimable, 'size')} reclaimable"
    )


class DiskUse(NamedTuple):
    """What ``docker system df`` measures, one size each."""

    images: Measurement
    volumes: Measurement
    build_cache: Measurement


def system_df(client: Any, target: DockerTarget) -> DiskUse:
    """``docker system df`` (``GET /system/df``): the size of the images, the volumes and the
    build cache, with what a prune would reclaim (images no container uses, volumes no container
    mounts, build cache not in use). Opt-in: ``system_df = true``."""
    if not target.system_df:
        raise NotApplicable("system_df = false (`docker system df` sizes every volume: opt-in)")
    df = _call("GET /system/df", client.df)
    images = df.get("Images") or []
    unused = sum(
        max(float(i.get("Size") or 0) - max(float(i.get("SharedSize") or 0), 0.0), 0.0)
        for i in images
        if not i.get("Containers")
    )
    image_text = _reclaim(float(df.get("LayersSize") or 0), unused, _n(len(images), "image"))
    volumes = df.get("Volumes") or []
    sizes = [
        (max(float((v.get("UsageData") or {}).get("Size", 0)), 0.0), v.get("UsageData") or {})
        for v in volumes
    ]
    biggest = sorted(
        ((size, str(v.get("Name", "?"))) for (size, _), v in zip(sizes, volumes, strict=True)),
        reverse=True,
    )[:5]
    volume_text = _reclaim(
        sum(size for size, _ in sizes),
        sum(size for size, usage in sizes if not usage.get("RefCount")),
        _n(len(volumes), "volume"),
    )
    cache = df.get("BuildCache") or []
    cache_text = _reclaim(
        sum(float(c.get("Size") or 0) for c in cache),
        sum(float(c.get("Size") or 0) for c in cache if not c.get("InUse") and not c.get("Shared")),
        _n(len(cache), "build cache record"),
    )
    detail = "; ".join(f"volume {name} {format_value(size, 'size')}" for size, name in biggest)
    return DiskUse(
        Measurement(float(df.get("LayersSize") or 0), "images", image_text),
        Measurement(sum(size for size, _ in sizes), "volumes", volume_text, detail),
        Measurement(sum(float(c.get("Size") or 0) for c in cache), "build cache", cache_text),
    )
