"""The inventory (what to check) and the thresholds (how strict), validated once at start-up.

Every mistake stops the run before any test with one line naming the file, the key and what was
expected: ``inventory.toml: http[1].timeout: expected a duration such as '500ms' ..., got '5 sec'``.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from opscheck import units
from opscheck.checks import CHECKS

Direction = Literal["above", "below"]
Schedule = Literal["morning", "midday", "evening", "weekly", "monthly"]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _duration(value: object) -> float:
    return units.parse(value, "duration")


Duration = Annotated[float, BeforeValidator(_duration)]


class ConfigError(Exception):
    """A configuration mistake, already phrased for the operator."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limit(_Strict):
    """warn/crit levels as written in TOML; parsed against the check's unit by ``Thresholds``."""

    warn: str | float | None = None
    crit: str | float | None = None
    direction: Direction | None = None


class LimitWithTargets(Limit):
    targets: dict[str, Limit] = Field(default_factory=dict)


class Target(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:@/-]+$")
    timeout: Duration | None = None


class HostTarget(Target):
    uri: str = "local://"
    ssh_identity_file: str | None = None
    ssh_config: str | None = None
    ssh_extra_args: str | None = None
    sudo: bool = False
    mounts: list[str] = Field(default_factory=list)
    services: list[str] = Field(default_factory=list)
    ports: list[int | str] = Field(default_factory=list)
    log_dirs: list[str] = Field(default_factory=list)
    reachable: list[str] = Field(default_factory=list)
    cpu_sample: Duration = 1.0

    @field_validator("uri")
    @classmethod
    def _known_backend(cls, uri: str) -> str:
        backends = ("local", "ssh", "paramiko", "docker", "podman", "kubectl", "ansible", "winrm")
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme not in backends:
            raise ValueError(f"expected a testinfra URI such as 'local://' or 'ssh://user@host', got {uri!r}")
        return uri

    @field_validator("reachable")
    @classmethod
    def _host_port(cls, items: list[str]) -> list[str]:
        for item in items:
            host, _, port = item.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(f"expected 'host:port' entries, got {item!r}")
        return items


JsonValue = str | int | float | bool


class HttpTarget(Target):
    url: str
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expect_status: list[int] = Field(default_factory=list)
    contains: list[str] = Field(default_factory=list)
    json_fields: dict[str, JsonValue] = Field(default_factory=dict, alias="json")
    json_limits: dict[str, Limit] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    samples: int = Field(default=10, ge=0, le=1000)
    verify: bool | str = True
    tls: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url

    @field_validator("contains", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("expect_status")
    @classmethod
    def _status_codes(cls, codes: list[int]) -> list[int]:
        for code in codes:
            if not 100 <= code <= 599:
                raise ValueError(f"expected HTTP status codes 100-599, got {code}")
        return codes

    @property
    def checks_tls(self) -> bool:
        return self.tls if self.tls is not None else self.url.startswith("https://")


class Settings(_Strict):
    timeout: Duration = 5.0
    schedule: dict[str, list[Schedule]] = Field(default_factory=dict)


class Inventory(_Strict):
    settings: Settings = Field(default_factory=Settings)
    host: list[HostTarget] = Field(default_factory=list)
    http: list[HttpTarget] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> Inventory:
        for component in COMPONENTS:
            seen: dict[str, int] = {}
            for index, target in enumerate(getattr(self, component)):
                if target.name in seen:
                    raise ValueError(
                        f"{component}[{index}].name: duplicate target name {target.name!r} "
                        f"(also {component}[{seen[target.name]}])"
                    )
                seen[target.name] = index
        return self


COMPONENTS = ("host", "http")


@dataclass(frozen=True)
class Threshold:
    """Resolved levels in the check's base unit."""

    key: str
    kind: units.Kind
    direction: Direction
    warn: float | None
    crit: float | None

    def describe(self) -> str:
        op = ">" if self.direction == "above" else "<"
        parts = [f"{name} {op} {units.format_value(level, self.kind)}"
                 for name, level in (("warn", self.warn), ("crit", self.crit)) if level is not None]
        return ", ".join(parts) or "none"


@dataclass
class Config:
    inventory: Inventory
    limits: dict[str, LimitWithTargets]
    inventory_path: Path | None
    thresholds_path: Path | None
    secrets: set[str] = field(default_factory=set)

    def targets(self, component: str) -> list[Any]:
        return list(getattr(self.inventory, component))

    def threshold(self, key: str, target: str | None = None,
                  inline: Limit | None = None, kind: units.Kind | None = None) -> Threshold:
        """Levels for ``key``: code default, then thresholds.toml, then its per-target override."""
        spec = CHECKS.get(key)
        kind = kind or (spec.kind if spec else "number")
        layers: list[Limit] = []
        if key in self.limits:
            layers.append(self.limits[key])
            if target and target in self.limits[key].targets:
                layers.append(self.limits[key].targets[target])
        if inline is not None:
            layers.append(inline)
        warn = spec.warn if spec else None
        crit = spec.crit if spec else None
        direction: Direction = spec.direction if spec else "above"
        for layer in layers:
            fields = layer.model_fields_set
            if "warn" in fields:
                warn = None if layer.warn is None else units.parse(layer.warn, kind)
            if "crit" in fields:
                crit = None if layer.crit is None else units.parse(layer.crit, kind)
            if layer.direction:
                direction = layer.direction
        return Threshold(key, kind, direction, warn, crit)


def _where(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _fields_at(model: Any, loc: tuple[int | str, ...]) -> list[str]:
    """The keys a model accepts at ``loc``, for a did-you-mean hint."""
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return []
        model = fields[part].annotation
        while get_origin(model) in (list, dict):
            model = get_args(model)[-1]
    fields = getattr(model, "model_fields", {})
    return [info.alias or name for name, info in fields.items()]


def _explain(error: Any, model: Any = None) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        loc = tuple(error["loc"])
        known = _fields_at(model, loc[:-1]) if model else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1)
        if close:
            return f"unknown key (did you mean {close[0]!r}?)"
        return f"unknown key (expected one of: {', '.join(known)})" if known else "unknown key"
    if kind == "missing":
        return "required key is missing"
    return re.sub(r"^(Value error|Assertion failed), ", "", msg)


def _first_error(path: Path, exc: ValidationError) -> ConfigError:
    lines = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and "[" in p))
        where = _where(loc)
        message = _explain(error, Inventory)
        lines.append(f"{path.name}: {where}: {message}" if where else f"{path.name}: {message}")
    return ConfigError("\n".join(lines))


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _expand_env(raw: Any, where: str, secrets: set[str], file: str) -> Any:
    """Replace ``${VAR}`` with the environment's value; the values are secrets."""
    if isinstance(raw, dict):
        return {k: _expand_env(v, f"{where}.{k}", secrets, file) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_expand_env(v, f"{where}[{i}]", secrets, file) for i, v in enumerate(raw)]
    if not isinstance(raw, str):
        return raw

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"{file}: {where}: environment variable {name} is not set")
        if value:
            secrets.add(value)
        return value

    return _ENV_REF.sub(lookup, raw)


def _check_limits(path: Path, raw: dict[str, Any]) -> dict[str, LimitWithTargets]:
    limits: dict[str, LimitWithTargets] = {}
    for component, checks in raw.items():
        if not isinstance(checks, dict):
            raise ConfigError(f"{path.name}: {component}: expected a table of checks")
        for name, table in checks.items():
            key = f"{component}.{name}"
            if key not in CHECKS:
                near = sorted(k for k in CHECKS if k.startswith(component + "."))
                hint = f" (known: {', '.join(near)})" if near else ""
                raise ConfigError(f"{path.name}: {key}: unknown check{hint}")
            try:
                limit = LimitWithTargets.model_validate(table)
            except ValidationError as exc:
                error = exc.errors()[0]
                where = _where((key, *error["loc"]))
                raise ConfigError(f"{path.name}: {where}: {_explain(error)}") from None
            spec = CHECKS[key]
            for label, layer in [("", limit), *((f".targets.{t}", v) for t, v in limit.targets.items())]:
                for level in ("warn", "crit"):
                    value = getattr(layer, level)
                    if value is None:
                        continue
                    try:
                        units.parse(value, spec.kind)
                    except units.UnitError as exc:
                        raise ConfigError(f"{path.name}: {key}{label}.{level}: {exc}") from None
            limits[key] = limit
    return limits


def load(inventory_path: Path | None, thresholds_path: Path | None) -> Config:
    """Read and validate both files; ``None`` means that file is absent and defaults apply."""
    secrets: set[str] = set()
    raw_inventory = _read_toml(inventory_path) if inventory_path else {}
    if inventory_path:
        raw_inventory = _expand_env(raw_inventory, "", secrets, inventory_path.name)
    try:
        inventory = Inventory.model_validate(raw_inventory)
    except ValidationError as exc:
        raise _first_error(inventory_path or Path("inventory.toml"), exc) from None
    name = inventory_path.name if inventory_path else "inventory.toml"
    for index, target in enumerate(inventory.http):
        for field_name, limit in target.json_limits.items():
            for level in ("warn", "crit"):
                value = getattr(limit, level)
                if isinstance(value, str):
                    raise ConfigError(
                        f"{name}: http[{index}].json_limits.{field_name}.{level}: "
                        f"expected a number, got {value!r}"
                    )
    limits = _check_limits(thresholds_path, _read_toml(thresholds_path)) if thresholds_path else {}
    for key, limit in limits.items():
        component = key.split(".", 1)[0]
        known = {t.name for t in getattr(inventory, component, [])}
        for target in limit.targets:
            if target not in known:
                raise ConfigError(
                    f"{thresholds_path.name if thresholds_path else 'thresholds.toml'}: "
                    f"{key}.targets.{target}: no {component} target named {target!r} in {name}"
                )
    return Config(inventory, limits, inventory_path, thresholds_path, secrets)


def redact(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text

