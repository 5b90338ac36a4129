"""The inventory: ``[settings]`` and the targets of every registered component.

A component is one schema module with its ``Target`` model, registered in ``COMPONENT_MODELS``;
``Inventory`` and ``COMPONENTS`` are built from that table.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, Field, ValidationError, create_model, field_validator

from opscheck.checks import CATEGORIES, SCHEDULES

from . import urls
from .alertmanager import AlertmanagerTarget
from .backup import BackupTarget
from .base import Strict, Target, Timeout, not_empty
from .docker import DockerTarget
from .errors import Loc, close_to, line, shown, translate
from .growth import GrowthTarget
from .host import HostTarget
from .http import HttpTarget
from .kubernetes import KubernetesTarget
from .logs import LogsTarget
from .metrics import MetricsTarget
from .notify import HeartbeatSettings, NotifySettings
from .postgres import PostgresTarget
from .prometheus import PrometheusTarget
from .redis import RedisTarget
from .sqlite import SqliteTarget
from .websocket import WebsocketTarget

# Component name -> its target model: `[[host]]` tables validate as HostTarget. The name is also
# the pytest marker, the suites/ folder and the first part of its check keys and check ids.
COMPONENT_MODELS: dict[str, type[Target]] = {
    "host": HostTarget,
    "http": HttpTarget,
    "postgres": PostgresTarget,
    "redis": RedisTarget,
    "sqlite": SqliteTarget,
    "logs": LogsTarget,
    "backup": BackupTarget,
    "prometheus": PrometheusTarget,
    "alertmanager": AlertmanagerTarget,
    "metrics": MetricsTarget,
    "docker": DockerTarget,
    "kubernetes": KubernetesTarget,
    "websocket": WebsocketTarget,
    "growth": GrowthTarget,
}
COMPONENTS = tuple(COMPONENT_MODELS)

# A custom schedule becomes a pytest marker, selected with `-m every-2h`: no name pytest or
# opscheck already gives a meaning to, and none of the words of a -m expression.
_MARKERS = {
    **dict.fromkeys(SCHEDULES, "a built-in schedule"),
    **dict.fromkeys(CATEGORIES, "a category"),
    **dict.fromkeys(COMPONENTS, "a component"),
    **dict.fromkeys(("restore", "applies_to", "for_each"), "an opscheck marker"),
    **dict.fromkeys(("skip", "skipif", "xfail", "parametrize", "usefixtures"), "a pytest marker"),
    **dict.fromkeys(("filterwarnings", "timeout", "tryfirst", "trylast"), "a pytest marker"),
    **dict.fromkeys(("and", "or", "not"), "a word of -m expressions"),
}


def _custom_schedule(name: str) -> str:
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
        raise ValueError(
            "expected a schedule name of lowercase letters, digits, - and _ (it becomes a "
            f"marker: pytest -m NAME), got {name!r}"
        )
    if name in _MARKERS:
        raise ValueError(f"expected a new schedule name, got {name!r} ({_MARKERS[name]})")
    return name


def _no_duplicates(names: list[str]) -> list[str]:
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"duplicate schedule {name!r}")
    return names


def pushgateway_url(url: str) -> str:
    """``[settings] pushgateway`` / ``--pushgateway``: where opscheck pushes its results
    (opscheck.export); credentials come from the environment, never in the URL."""
    urls.checked(
        url,
        ("http", "https"),
        "an http:// or https:// URL",
        "set $OPSCHECK_PUSHGATEWAY_USERNAME and $OPSCHECK_PUSHGATEWAY_PASSWORD",
    )
    return url.rstrip("/")


class HistorySettings(Strict):
    """``[settings.history]``: the history store (opscheck/history.py)."""

    enabled: bool = True
    # Default: <reports dir>/history.sqlite, written only when reports are archived.
    path: str | None = None
    # A change beyond this share of the previous value is flagged as a jump (0.5: +-50 %).
    jump: Annotated[float, Field(gt=0)] = 0.5
    # Trend plots in the report (opscheck/trends.py) over this many days of history.
    trends: bool = True
    trend_days: Annotated[int, Field(ge=2, le=366)] = 30


class WaiverSettings(Strict):
    """``[settings.waivers]``: the policy for waivers.toml (opscheck/waivers.py)."""

    # A waiver may not expire later than this many days from the day the run reads it.
    max_days: Annotated[int, Field(ge=1, le=3650)] = 90


class RecheckSettings(Strict):
    """``[settings.recheck]``: re-measure a CRIT once (opscheck/recheck.py)."""

    enabled: bool = False  # --recheck turns it on for one run
    delay: Annotated[float, Field(ge=0, le=300)] = 5.0  # seconds before measuring again
    # A check FLAKY on flaky_runs of the last of_last runs (history store) is called out.
    flaky_runs: Annotated[int, Field(ge=1)] = 3
    of_last: Annotated[int, Field(ge=1, le=1000)] = 10


class Settings(Strict):
    timeout: Timeout = 5.0
    history: HistorySettings = Field(default_factory=HistorySettings)
    waivers: WaiverSettings = Field(default_factory=WaiverSettings)
    recheck: RecheckSettings = Field(default_factory=RecheckSettings)
    notify: NotifySettings | None = None  # end-of-run notifications (opscheck/notify.py)
    heartbeat: HeartbeatSettings | None = None  # dead-man's switch pings (opscheck/heartbeat.py)
    # A Prometheus Pushgateway the run's results are pushed to (opscheck.export).
    pushgateway: Annotated[str, AfterValidator(pushgateway_url)] | None = None
    # Custom schedules (`every-2h`): markers beside the built-in ones, for targets and checks.
    schedules: Annotated[
        list[Annotated[str, AfterValidator(_custom_schedule)]], AfterValidator(_no_duplicates)
    ] = Field(default_factory=list)
    # Check id -> the schedules it runs in, instead of its own.
    schedule: dict[
        str,
        Annotated[
            list[str], not_empty("schedule", "to switch a check off, list it in settings.skip")
        ],
    ] = Field(default_factory=dict)
    # Check ids switched off for every target.
    skip: list[str] = Field(default_factory=list)

    @field_validator("skip")
    @classmethod
    def _unique_skip(cls, ids: list[str]) -> list[str]:
        for check in ids:
            if ids.count(check) > 1:
                raise ValueError(f"duplicate check id {check!r}")
        return ids


class InventoryBase(Strict):
    settings: Settings = Field(default_factory=Settings)

    if TYPE_CHECKING:

        def __getattr__(self, component: str) -> list[Any]: ...


if TYPE_CHECKING:
    Inventory = InventoryBase
else:
    Inventory = create_model(
        "Inventory",
        __base__=InventoryBase,
        __module__=__name__,
        **{
            name: (list[model], Field(default_factory=list))
            for name, model in COMPONENT_MODELS.items()
        },
    )


@dataclass
class Parsed:
    """An inventory as far as it validated: the entries that did, by their index, and a line for
    each mistake. Mistakes of one target leave the others checked, so every one is reported."""

    file: str
    settings: Settings | None = field(default_factory=Settings)  # None: it has mistakes
    targets: dict[str, list[tuple[int, Target]]] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)  # every name written, valid or not
    problems: list[str] = field(default_factory=list)

    def each(self) -> Iterator[tuple[Loc, Target]]:
        for component, entries in self.targets.items():
            for index, target in entries:
                yield (component, index), target

    def inventory(self) -> InventoryBase:
        values: dict[str, Any] = {c: [t for _, t in self.targets.get(c, [])] for c in COMPONENTS}
        values["settings"] = self.settings or Settings()
        return Inventory.model_construct(**values)


def validate(file: str, raw: dict[str, Any], unset: list[Loc]) -> Parsed:
    """Validate each table of the inventory on its own, then what ties them together.

    ``unset``: locations holding a ``${VAR}`` that is not set, already reported.
    """
    parsed = Parsed(file)
    known = ["settings", *COMPONENTS]
    for key, value in raw.items():
        if key == "settings":
            parsed.settings = _entry(parsed, Settings, value, ("settings",), unset)
        elif key in COMPONENT_MODELS:
            if not isinstance(value, list):
                message = f"expected [[{key}]] tables (a list), got a single [{key}] table"
                parsed.problems.append(line(file, (key,), message))
                continue
            parsed.names[key] = [
                e["name"] for e in value if isinstance(e, dict) and isinstance(e.get("name"), str)
            ]
            entries = parsed.targets.setdefault(key, [])
            for index, entry in enumerate(value):
                target = _entry(parsed, COMPONENT_MODELS[key], entry, (key, index), unset)
                if target is not None:
                    entries.append((index, target))
        else:
            close = close_to(key, known)
            hint = f"did you mean {close!r}?" if close else f"expected one of: {', '.join(known)}"
            parsed.problems.append(line(file, (key,), f"unknown table ({hint})"))
    parsed.problems += _duplicate_names(parsed)
    parsed.problems += _host_references(parsed)
    parsed.problems += _log_source_targets(parsed)
    parsed.problems += _schedule_names(parsed)
    return parsed


def _entry(parsed: Parsed, model: type[Any], value: Any, loc: Loc, unset: list[Loc]) -> Any:
    if not isinstance(value, dict):
        parsed.problems.append(line(parsed.file, loc, f"expected a table, got {shown(value)}"))
        return None
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        parsed.problems += translate(parsed.file, model, exc, loc, unset)
        return None


def _duplicate_names(parsed: Parsed) -> Iterator[str]:
    for component, entries in parsed.targets.items():
        seen: dict[str, int] = {}
        for index, target in entries:
            if target.name in seen:
                message = (
                    f"duplicate target name {target.name!r} (also {component}[{seen[target.name]}])"
                )
                yield line(parsed.file, (component, index, "name"), message)
            seen.setdefault(target.name, index)


def _host_references(parsed: Parsed) -> Iterator[str]:
    """A ``host = "name"`` reference names a ``[[host]]`` target of this inventory."""
    hosts = list(dict.fromkeys(parsed.names.get("host", [])))
    for loc, target in parsed.each():
        wanted = getattr(target, "host", None)
        if isinstance(wanted, str) and wanted not in hosts:
            message = f"no [[host]] target named {wanted!r} (known: {', '.join(hosts) or 'none'})"
            yield line(parsed.file, (*loc, "host"), message)


def _log_source_targets(parsed: Parsed) -> Iterator[str]:
    """``[[logs]]`` ``docker.target`` / ``kubernetes.target`` name a target of that component;
    ``docker.service`` one of a target with a compose ``project``."""
    for loc, target in parsed.each():
        source = getattr(target, "container", None) if loc[0] == "logs" else None
        if source is None:
            continue
        component = "docker" if getattr(target, "docker", None) is not None else "kubernetes"
        known = list(dict.fromkeys(parsed.names.get(component, [])))
        if source.target not in known:
            message = (
                f"no [[{component}]] target named {source.target!r} "
                f"(known: {', '.join(known) or 'none'})"
            )
            yield line(parsed.file, (*loc, component, "target"), message)
        elif getattr(source, "service", None) is not None:
            for _, docker in parsed.targets.get("docker", []):
                if docker.name == source.target and getattr(docker, "project", None) is None:
                    message = (
                        f"the [[docker]] target {source.target!r} has no project (a service is "
                        "one of its compose project's)"
                    )
                    yield line(parsed.file, (*loc, component, "service"), message)


def _schedule_names(parsed: Parsed) -> Iterator[str]:
    """Schedules named in ``settings.schedule`` and by targets are built-in or declared."""
    if parsed.settings is None:  # its own mistakes are reported; custom names are unknown
        return
    known = [*SCHEDULES, *parsed.settings.schedules]
    choices = ", ".join(repr(s) for s in known)
    named: list[tuple[Loc, list[str]]] = [
        (("settings", "schedule", check), names)
        for check, names in parsed.settings.schedule.items()
    ]
    named += [((*loc, "schedules"), t.schedules) for loc, t in parsed.each() if t.schedules]
    for loc, names in named:
        for index, name in enumerate(names):
            if name not in known:
                close = close_to(name, known)
                hint = f" (did you mean {close!r}?)" if close else ""
                message = (
                    f"expected a schedule: {choices} or one declared in settings.schedules, "
                    f"got {name!r}{hint}"
                )
                yield line(parsed.file, (*loc, index), message)
