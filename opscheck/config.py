"""The inventory (what to check) and the thresholds (how strict), validated once at start-up.

Every mistake stops the run before any test with one line naming the file, the key and what was
expected: ``inventory.toml: http[1].timeout: expected a duration such as '500ms' ..., got '5 sec'``.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
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
    seconds = units.parse(value, "duration")
    if seconds <= 0:
        raise ValueError(f"expected a duration above zero such as '5s', got {value!r}")
    return seconds


def _name(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:@/-]+", value):
        raise ValueError(
            f"expected a name of letters, digits and _ . : @ / - (it becomes the test id), "
            f"got {value!r}"
        )
    return value


Duration = Annotated[float, BeforeValidator(_duration)]


class ConfigError(Exception):
    """A configuration mistake, already phrased for the operator."""


class _Strict(BaseModel):
    # strict: TOML has real types, so "10" for a number or "yes" for a boolean is a mistake.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Limit(_Strict):
    """warn/crit levels as written in TOML; parsed against the check's unit by ``Thresholds``."""

    warn: str | float | None = None
    crit: str | float | None = None
    direction: Direction | None = None


class LimitWithTargets(Limit):
    targets: dict[str, Limit] = Field(default_factory=dict)


class NumberLimit(Limit):
    """An inline limit in the inventory (``json_limits``): plain numbers, no units."""

    warn: float | None = None
    crit: float | None = None


class Target(_Strict):
    name: Annotated[str, AfterValidator(_name)]
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
    fail2ban: bool = False  # `fail2ban-client status`: the server answers, its jails and bans

    @field_validator("uri")
    @classmethod
    def _known_backend(cls, uri: str) -> str:
        backends = ("local", "ssh", "paramiko", "docker", "podman", "kubectl", "ansible", "winrm")
        scheme = uri.split("://", 1)[0] if "://" in uri else ""
        if scheme not in backends:
            raise ValueError(
                f"expected a testinfra URI such as 'local://' or 'ssh://user@host', got {uri!r}"
            )
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
    json_limits: dict[str, NumberLimit] = Field(default_factory=dict)
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


class SqlQuery(NumberLimit):
    """A user-defined check: a read-only query returning one number, judged against its levels
    (``warn``, ``crit``, ``direction``, as ``thresholds.toml`` writes them for ``postgres.query``).
    """

    name: Annotated[str, AfterValidator(_name)]
    sql: str = Field(min_length=1)
    description: str = ""


# A password written into the DSN would end up in the inventory file and in libpq's errors.
_DSN_PASSWORD = re.compile(r"(^|\s)password\s*=|^postgres(?:ql)?://[^/@]*:[^/@]*@|[?&]password=")


def _dsn_without_password(dsn: str) -> str:
    if _DSN_PASSWORD.search(dsn):
        raise ValueError(
            "expected a DSN without a password (name the variable that holds it in password_env)"
        )
    return dsn


def _unique_names(entries: list[Any]) -> list[Any]:
    """Names of a target's list entries become test ids: each must be unique."""
    names = [entry.name for entry in entries]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"duplicate query name {name!r} (it becomes the test id)")
    return entries


Dsn = Annotated[str, AfterValidator(_dsn_without_password)]


class PostgresTarget(Target):
    # libpq "host=… port=… dbname=… user=…" or a postgresql:// URI, without the password.
    dsn: Annotated[Dsn, Field(min_length=1)]
    password_env: str | None = None
    tables: list[str] = Field(default_factory=list)
    queries: Annotated[list[SqlQuery], AfterValidator(_unique_names)] = Field(default_factory=list)
    # Runbook: "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query_start <
    # now() - interval '5 seconds'": the age at which an active query counts as long-running.
    long_query: Duration = 5.0


QUEUE_LAYOUTS = ("key", "bullmq", "sidekiq", "celery", "rq")


class RedisQueue(NumberLimit):
    """A job queue held in Redis, with its levels (default ``redis.queue_depth``).

    Exactly one of: ``key`` (a list, sorted set or stream: its length) or the queue's name in a
    job-queue library's layout (``bullmq``, ``sidekiq``, ``celery``, ``rq``).
    """

    key: str | None = Field(default=None, min_length=1)
    bullmq: str | None = Field(default=None, min_length=1)
    sidekiq: str | None = Field(default=None, min_length=1)
    celery: str | None = Field(default=None, min_length=1)
    rq: str | None = Field(default=None, min_length=1)
    prefix: str = Field(default="bull", min_length=1)  # BullMQ's `prefix` option

    @model_validator(mode="after")
    def _one_layout(self) -> RedisQueue:
        given = [layout for layout in QUEUE_LAYOUTS if getattr(self, layout) is not None]
        if len(given) != 1:
            raise ValueError(
                f"expected exactly one of {', '.join(QUEUE_LAYOUTS)}, got "
                f"{', '.join(given) or 'none'}"
            )
        if "prefix" in self.model_fields_set and given[0] != "bullmq":
            raise ValueError("prefix applies to bullmq queues only")
        return self

    @property
    def layout(self) -> str:
        return next(layout for layout in QUEUE_LAYOUTS if getattr(self, layout) is not None)

    @property
    def name(self) -> str:
        """How the queue is named in test ids and messages: the key, or ``bullmq:<queue>``."""
        value = str(getattr(self, self.layout))
        return value if self.layout == "key" else f"{self.layout}:{value}"


class RedisTarget(Target):
    url: str = "redis://127.0.0.1:6379/0"  # rediss:// for TLS, unix:// for a socket
    username: str | None = None
    password_env: str | None = None
    queues: list[RedisQueue] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        if not re.match(r"^(rediss?|unix)://", url):
            raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {url!r}")
        if re.match(r"^[a-z]+://[^/@]*:[^/@]*@", url) or re.search(r"[?&]password=", url):
            raise ValueError(
                "expected a URL without a password (name the variable that holds it in "
                "password_env)"
            )
        return url


class SqliteTarget(Target):
    path: str = Field(min_length=1)
    host: str | None = None  # a [[host]] target the file lives on; default: this machine
    tables: dict[str, NumberLimit] = Field(default_factory=dict)
    # PRAGMA integrity_check and COUNT(*) read every page: minutes on a big file, not seconds.
    query_timeout: Duration = 60.0


# Named regexes for `preset = "…"` in [[logs.patterns]]: (regex, category, what it finds). They
# run on raw lines (journald: MESSAGE) as Python regexes; (?i) makes one case-insensitive. Each
# alternative holds a literal of 3+ characters, which the scanner finds at memory speed before it
# runs the regex (a preset without one would read an access log at ~5 MB/s instead of ~300).
_SPACE = r"(?:\s|\+|%20)"  # as attacks arrive: raw, or URL-encoded in an access log
_OR = r"(?:' or |'or |'\+or\+|%27 or |%27%20or%20|%27\+or\+|%27or%20)"  # ' or 1=1, %27%20OR%20
_SQL_INJECTION = (
    rf"(?i)(?<![a-z])union(?:{_SPACE}|/\*.*?\*/)+(?:all{_SPACE}+)?select\b"
    rf"|{_OR}{_SPACE}*(?:'|%27)?\w+(?:'|%27)?{_SPACE}*(?:=|%3d){_SPACE}*(?:'|%27)?\w+"
    r"|\b(?:sleep|benchmark|pg_sleep)\(\s*\d|information_schema|sql injection"
)
_XSS = r"(?i)<script|%3cscript|javascript:|\bonerror\s*(?:=|%3d)|\bonload\s*(?:=|%3d)|\bxss\b"
_PATH_TRAVERSAL = r"(?i)\.\./|\.\.\\|\.\.%2f|%2e%2e(?:/|%2f|%5c)|/etc/passwd"
LOG_PRESETS: dict[str, tuple[str, Literal["errors", "security"], str]] = {
    "errors": (
        r"(?i)\b(?:error|fatal|critical|panic)\b",
        "errors",
        "the words error, fatal, critical, panic (any case): the runbooks' `grep -i error`",
    ),
    "failed_logins": (
        r"(?i)authentication fail(?:ed|ure)|failed password|invalid user|login failed"
        r"|failed login",
        "security",
        "failed logins: `authentication failed`, PAM `authentication failure`, sshd `Failed "
        "password` and `Invalid user`",
    ),
    "ssh_auth_failures": (
        r"Failed (?:password|publickey|keyboard-interactive/pam|none|hostbased) for "
        r"|Invalid user |[Mm]aximum authentication attempts exceeded"
        r"|Connection closed by (?:authenticating|invalid) user ",
        "security",
        'sshd\'s own lines for a failed authentication (auth.log, or journald_unit = "ssh")',
    ),
    "rate_limited": (
        r"(?i)rate[ _-]?limit|too many requests|limiting (?:requests|connections)|\" 429 ",
        "security",
        "rate limiting: `rate limit`, `Too Many Requests`, nginx `limiting requests`, status 429",
    ),
    "sql_injection": (
        _SQL_INJECTION,
        "security",
        "`union select`, `' or 1=1`, `sleep(5)`, `information_schema` (raw or URL-encoded)",
    ),
    "xss": (_XSS, "security", "`<script`, `javascript:`, `onerror=` (raw or URL-encoded)"),
    "path_traversal": (
        _PATH_TRAVERSAL,
        "security",
        "`../`, `..\\`, `%2e%2e%2f`, `/etc/passwd`",
    ),
    "attacks": (
        f"{_SQL_INJECTION}|{_XSS}|{_PATH_TRAVERSAL}".replace("|(?i)", "|"),
        "security",
        "any of sql_injection, xss, path_traversal",
    ),
    "sudo": (
        r"\bUSER=\S+ ;.*\bCOMMAND=",
        "security",
        "sudo use, granted or refused (`sudo: alice : … ; USER=root ; COMMAND=…`)",
    ),
}


def window_seconds(window: str) -> float | None:
    """A pattern's window in seconds; None for ``"today"`` (since 00:00 UTC)."""
    return None if window == "today" else units.parse(window, "duration")


class LogPattern(NumberLimit):
    """Lines matching a regex (or a named preset) within a time window, counted and judged.

    A line counts when it matches every criterion given: ``pattern``, ``preset`` and ``level``.
    """

    name: Annotated[str, AfterValidator(_name)]
    pattern: str | None = Field(default=None, min_length=1)
    preset: str | None = None
    level: list[str] = Field(default_factory=list)  # JSON lines and journald only
    window: str = "24h"  # "24h", "4h", "7d" ... or "today" (since 00:00 UTC)
    category: Literal["errors", "security"] | None = None  # default: the preset's, else errors

    @field_validator("level", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("pattern")
    @classmethod
    def _regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern.encode())  # as the scanner compiles it, on bytes
            except (re.error, UnicodeError) as exc:
                raise ValueError(
                    f"expected a regular expression, got {pattern!r} ({exc})"
                ) from None
        return pattern

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, preset: str | None) -> str | None:
        if preset is not None and preset not in LOG_PRESETS:
            close = difflib.get_close_matches(preset, LOG_PRESETS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ValueError(f"unknown preset {preset!r} ({hint}known: {', '.join(LOG_PRESETS)})")
        return preset

    @field_validator("window")
    @classmethod
    def _window(cls, window: str) -> str:
        try:
            seconds = window_seconds(window)
        except units.UnitError:
            seconds = 0.0
        if seconds is not None and seconds <= 0:
            raise ValueError(
                f"expected a duration such as '24h' or '4h', or 'today', got {window!r}"
            )
        return window

    @model_validator(mode="after")
    def _something_to_match(self) -> LogPattern:
        if self.pattern is None and self.preset is None and not self.level:
            raise ValueError("expected at least one of pattern, preset or level")
        return self

    @property
    def regexes(self) -> list[str]:
        found = [self.pattern] if self.pattern else []
        return found + ([LOG_PRESETS[self.preset][0]] if self.preset else [])

    @property
    def kind(self) -> Literal["errors", "security"]:
        """The pattern's category: which check counts it (errors or security)."""
        if self.category:
            return self.category
        return LOG_PRESETS[self.preset][1] if self.preset else "errors"


class LogsTarget(Target):
    """A log source on a host: a file (``{date:%Y-%m-%d}`` templates), a glob or a journald unit."""

    host: str | None = None  # a [[host]] target the logs live on; default: this machine
    path: str | None = Field(default=None, min_length=1)
    journald_unit: str | None = Field(default=None, min_length=1)
    journald_directory: str | None = Field(default=None, min_length=1)  # journalctl -D
    format: Literal["text", "json"] = "text"
    level_field: str = Field(default="level", min_length=1)  # JSON lines
    time_field: str = Field(default="timestamp", min_length=1)
    message_field: str = Field(default="message", min_length=1)
    patterns: list[LogPattern] = Field(default_factory=list)
    # The scanner reads only the window of each file, but a first run over a cold disk may not.
    scan_timeout: Duration = 120.0

    @model_validator(mode="after")
    def _one_source(self) -> LogsTarget:
        if (self.path is None) == (self.journald_unit is None):
            raise ValueError("expected exactly one of path (files) or journald_unit (the journal)")
        if self.journald_directory and not self.journald_unit:
            raise ValueError("journald_directory applies to journald_unit only")
        names = [p.name for p in self.patterns]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"duplicate pattern name {name!r} (it becomes the test id)")
        if self.path is not None and self.format == "text":
            for index, pattern in enumerate(self.patterns):
                if pattern.level:
                    raise ValueError(
                        f'patterns[{index}].level: applies to format = "json" and '
                        "journald_unit sources; in text logs match the level with pattern, "
                        "e.g. '\\bERROR\\b'"
                    )
        return self

    @property
    def error_patterns(self) -> list[LogPattern]:
        return [p for p in self.patterns if p.kind == "errors"]

    @property
    def security_patterns(self) -> list[LogPattern]:
        return [p for p in self.patterns if p.kind == "security"]


BackupKind = Literal["auto", "sqlite", "tar", "gzip", "pg_custom", "pg_plain"]
# Bracket expressions of a glob stay unquoted in the listing command: only these characters.
_GLOB_CLASS = re.compile(r"\[!?[A-Za-z0-9_.-]+\]")


class S3Location(_Strict):
    """An S3 (or S3-compatible) bucket and a date-templated prefix; credentials come only from
    the environment: the variables named here, else the standard ``AWS_*`` variables."""

    bucket: str = Field(min_length=3)
    prefix: str = ""  # "postgres/{date:%Y/%m/%d}/"
    endpoint_url: str | None = None  # MinIO, Ceph, R2 ...; default: AWS
    region: str | None = None
    access_key_id_env: str | None = None
    secret_access_key_env: str | None = None
    session_token_env: str | None = None

    @field_validator("bucket")
    @classmethod
    def _bucket_name(cls, bucket: str) -> str:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", bucket):
            raise ValueError(
                f"expected a bucket name such as 'my-backups' (no s3://), got {bucket!r}"
            )
        return bucket

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, url: str | None) -> str | None:
        if url is not None and not re.match(r"^https?://[^/\s@]+", url):
            raise ValueError(
                f"expected an http:// or https:// URL without credentials, got {url!r}"
            )
        return url

    @model_validator(mode="after")
    def _key_pair(self) -> S3Location:
        if (self.access_key_id_env is None) != (self.secret_access_key_env is None):
            raise ValueError(
                "expected both access_key_id_env and secret_access_key_env, or neither"
            )
        if self.session_token_env and not self.access_key_id_env:
            raise ValueError("session_token_env needs access_key_id_env and secret_access_key_env")
        return self


class RestoreQuery(_Strict):
    """A query run on the restored copy (``SELECT count(*) FROM work_orders``), at least ``min``."""

    name: Annotated[str, AfterValidator(_name)]
    sql: str = Field(min_length=1)
    min: float | None = None


class RestoreTest(_Strict):
    """The weekly restore test. It WRITES: it creates a scratch database on the server of ``dsn``,
    restores the newest dump into it and drops it. Never point ``dsn`` at production."""

    # libpq "host=… port=… dbname=… user=…" of a NON-production server; dbname is the database
    # to connect to for CREATE/DROP DATABASE (default: the user's). The role needs CREATEDB.
    dsn: Annotated[Dsn, Field(min_length=1)]
    password_env: str | None = None
    queries: Annotated[list[RestoreQuery], AfterValidator(_unique_names)] = Field(
        default_factory=list
    )
    timeout: Duration = 1800.0  # the whole restore: copy, pg_restore, queries
    query_timeout: Duration = 60.0


class BackupTarget(Target):
    """Where last night's backup lands: a (date-templated) path on a host, or an S3 prefix."""

    host: str | None = None  # a [[host]] target the backups live on; default: this machine
    # A file glob ("/backups/daily/{date:%Y%m%d}/fossawork_v2_*.db": each file is a backup) or a
    # directory ("/backups/daily/{date:%Y%m%d}/": the directory is the backup).
    path: str | None = None
    s3: S3Location | None = None
    kind: BackupKind = "auto"  # how to verify a file; auto: by its name
    # Integrity checks read whole files: the time all of one backup's checks may take.
    verify_timeout: Duration = 240.0
    restore: RestoreTest | None = None

    @field_validator("path")
    @classmethod
    def _absolute_glob(cls, path: str | None) -> str | None:
        if path is None:
            return None
        if not path.startswith("/"):
            raise ValueError(
                f"expected an absolute path such as '/backups/daily/*.db', got {path!r}"
            )
        for bracket in re.findall(r"\[[^\]]*\]?", path):
            if not _GLOB_CLASS.fullmatch(bracket):
                raise ValueError(
                    f"expected glob classes of letters, digits and _ . - such as [0-9], "
                    f"got {bracket!r}"
                )
        return path

    @model_validator(mode="after")
    def _one_place(self) -> BackupTarget:
        if (self.path is None) == (self.s3 is None):
            raise ValueError("expected exactly one of path (files on a host) or s3 (a bucket)")
        if self.host is not None and self.s3 is not None:
            raise ValueError("host applies to path only (s3 is reached from this machine)")
        return self


class Settings(_Strict):
    timeout: Duration = 5.0
    schedule: dict[str, list[Schedule]] = Field(default_factory=dict)


class Inventory(_Strict):
    settings: Settings = Field(default_factory=Settings)
    host: list[HostTarget] = Field(default_factory=list)
    http: list[HttpTarget] = Field(default_factory=list)
    postgres: list[PostgresTarget] = Field(default_factory=list)
    redis: list[RedisTarget] = Field(default_factory=list)
    sqlite: list[SqliteTarget] = Field(default_factory=list)
    logs: list[LogsTarget] = Field(default_factory=list)
    backup: list[BackupTarget] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_hosts(self) -> Inventory:
        """A ``host = "name"`` reference names a ``[[host]]`` target of this inventory."""
        hosts = [h.name for h in self.host]
        for component in COMPONENTS:
            for index, target in enumerate(getattr(self, component)):
                wanted = getattr(target, "host", None)
                if isinstance(wanted, str) and wanted not in hosts:
                    known = ", ".join(hosts) or "none"
                    raise ValueError(
                        f"{component}[{index}].host: no [[host]] target named {wanted!r} "
                        f"(known: {known})"
                    )
        return self

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


COMPONENTS = ("host", "http", "postgres", "redis", "sqlite", "logs", "backup")


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
        parts = [
            f"{name} {op} {units.format_value(level, self.kind)}"
            for name, level in (("warn", self.warn), ("crit", self.crit))
            if level is not None
        ]
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

    def threshold(
        self,
        key: str,
        target: str | None = None,
        inline: Limit | None = None,
        kind: units.Kind | None = None,
    ) -> Threshold:
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


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_WORDS: dict[Any, str] = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "a boolean (true/false)",
    list: "a list",
    dict: "a table",
}
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "string_too_short": "a non-empty string",
}


def _where(loc: tuple[int | str, ...] | list[int | str]) -> str:
    """A key path as written in TOML: ``http[0].headers.Authorization``, ``schedule."host.x"``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.match(part) else f'"{part}"'
            text += f".{key}" if text else key
    return text


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``| None``: what remains is a type, a container or a real union."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) > 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _child(annotation: Any, part: int | str) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        for name, info in annotation.model_fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    if get_origin(annotation) in (list, dict):
        return get_args(annotation)[-1]
    return None


@dataclass
class _Location:
    path: list[int | str]  # the keys as the user wrote them
    parent: Any  # the model or container holding the last key
    union: list[Any]  # the types a union field accepts, when one rejected the value


def _locate(model: Any, loc: tuple[int | str, ...]) -> _Location:
    """Follow pydantic's error location through the schema, dropping the tags it adds for each
    member of a union (``ports[0].int``), which name no key the user wrote."""
    where = _Location([], model, [])
    annotation = model
    for part in loc:
        annotation = _unwrap(annotation)
        if get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            where.union = where.union or members
            annotation = next((m for m in members if getattr(m, "__name__", None) == part), None)
            continue
        where.path.append(part)
        where.parent = annotation
        annotation = _child(annotation, part)
    return where


def _words(annotation: Any) -> str:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a table"
    return _WORDS.get(get_origin(annotation) or annotation, str(annotation))


def _explain(error: Any, where: _Location, top_level: bool) -> str:
    """One pydantic error as ``expected ..., got ...``."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(where.path[-1])
        noun = "table" if top_level and len(where.path) == 1 else "key"
        fields = getattr(where.parent, "model_fields", {})
        known = [info.alias or name for name, info in fields.items()]
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(known)}"
        return f"unknown {noun} ({hint})" if known else f"unknown {noun}"
    if kind == "missing":
        return "required key is missing"
    if where.union:
        words = [_words(m) for m in where.union]
        expected = ", ".join(words[:-1]) + f" or {words[-1]}"
        return f"expected {expected}, got {_shown(value)}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {_shown(value)}"
    if kind == "literal_error":
        return f"expected {ctx['expected']}, got {_shown(value)}"
    bounds = {
        "greater_than_equal": ">=",
        "greater_than": ">",
        "less_than_equal": "<=",
        "less_than": "<",
    }
    if kind in bounds:
        limit = next(iter(ctx.values()))
        return f"expected a number {bounds[kind]} {limit}, got {_shown(value)}"
    message = re.sub(r"^(Value error|Assertion failed), ", "", error["msg"])
    if message.startswith("Input should be "):
        message = f"expected {message.removeprefix('Input should be ')}, got {_shown(value)}"
    return message


def _invalid(
    file: str, model: Any, exc: ValidationError, prefix: tuple[int | str, ...] = ()
) -> ConfigError:
    """The first mistake pydantic found, phrased as ``file: key.path: expected ..., got ...``."""
    error = exc.errors()[0]
    where = _locate(model, tuple(error["loc"]))
    key = _where((*prefix, *where.path))
    message = _explain(error, where, top_level=not prefix)
    return ConfigError(f"{file}: {key}: {message}" if key else f"{file}: {message}")


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path.name}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _expand_env(raw: Any, loc: tuple[int | str, ...], secrets: set[str], file: str) -> Any:
    """Replace ``${VAR}`` with the environment's value; the values are secrets."""
    if isinstance(raw, dict):
        return {k: _expand_env(v, (*loc, k), secrets, file) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_expand_env(v, (*loc, i), secrets, file) for i, v in enumerate(raw)]
    if not isinstance(raw, str):
        return raw

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        value = os.environ.get(name)
        if value is None:
            raise ConfigError(f"{file}: {_where(loc)}: environment variable {name} is not set")
        if value:
            secrets.add(value)
        return value

    return _ENV_REF.sub(lookup, raw)


def _check_limits(file: str, raw: dict[str, Any]) -> dict[str, LimitWithTargets]:
    limits: dict[str, LimitWithTargets] = {}
    for component, checks in raw.items():
        if component not in COMPONENTS:
            close = difflib.get_close_matches(component, COMPONENTS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"{file}: {_where((component,))}: unknown component ({hint}known: "
                f"{', '.join(COMPONENTS)})"
            )
        if not isinstance(checks, dict):
            raise ConfigError(
                f"{file}: {component}: expected a table of checks such as "
                f"[{component}.<check>], got {_shown(checks)}"
            )
        for name, table in checks.items():
            key = f"{component}.{name}"
            if key not in CHECKS:
                known = sorted(k for k in CHECKS if k.startswith(component + "."))
                close = difflib.get_close_matches(key, known, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigError(
                    f"{file}: {_where((component, name))}: unknown check ({hint}known: "
                    f"{', '.join(known)})"
                )
            if not isinstance(table, dict):
                raise ConfigError(
                    f"{file}: {key}: expected a table such as [{key}] with "
                    f"warn and crit levels, got {_shown(table)}"
                )
            try:
                limit = LimitWithTargets.model_validate(table)
            except ValidationError as exc:
                raise _invalid(file, LimitWithTargets, exc, (component, name)) from None
            layers = [((), limit), *((("targets", t), v) for t, v in limit.targets.items())]
            for where, layer in layers:
                for level in ("warn", "crit"):
                    value = getattr(layer, level)
                    if value is None:
                        continue
                    try:
                        units.parse(value, CHECKS[key].kind)
                    except units.UnitError as exc:
                        path = _where((component, name, *where, level))
                        raise ConfigError(f"{file}: {path}: {exc}") from None
            limits[key] = limit
    return limits


def _check_overrides(
    file: str, inventory_file: str, inventory: Inventory, limits: dict[str, LimitWithTargets]
) -> None:
    """Every per-target override names a target of the inventory."""
    for key, limit in limits.items():
        component, name = key.split(".", 1)
        known = [t.name for t in getattr(inventory, component)]
        for target in limit.targets:
            if target not in known:
                close = difflib.get_close_matches(target, known, n=1)
                hint = (
                    f"did you mean {close[0]!r}?"
                    if close
                    else f"known: {', '.join(known) or 'none'}"
                )
                raise ConfigError(
                    f"{file}: {_where((component, name, 'targets', target))}: no {component} "
                    f"target named {target!r} in {inventory_file} ({hint})"
                )


def load(inventory_path: Path | None, thresholds_path: Path | None) -> Config:
    """Read and validate both files; ``None`` means that file is absent and defaults apply.

    Raises ``ConfigError`` with one line naming the file, the key and what was expected; the
    values of ``${VAR}`` references never appear in it.
    """
    secrets: set[str] = set()
    inventory_file = inventory_path.name if inventory_path else "inventory.toml"
    thresholds_file = thresholds_path.name if thresholds_path else "thresholds.toml"
    try:
        raw = _read_toml(inventory_path) if inventory_path else {}
        raw = _expand_env(raw, (), secrets, inventory_file)
        try:
            inventory = Inventory.model_validate(raw)
        except ValidationError as exc:
            raise _invalid(inventory_file, Inventory, exc) from None
        raw_limits = _read_toml(thresholds_path) if thresholds_path else {}
        limits = _check_limits(thresholds_file, raw_limits)
        _check_overrides(thresholds_file, inventory_file, inventory, limits)
        _check_secret_variables(inventory_file, inventory, secrets)
    except ConfigError as exc:
        raise ConfigError(redact(str(exc), secrets)) from None
    return Config(inventory, limits, inventory_path, thresholds_path, secrets)


def _check_secret_variables(file: str, inventory: Inventory, secrets: set[str]) -> None:
    """Every ``*_env`` key (of a target or of a table in it, such as ``backup.s3``) names a
    variable that is set; its value becomes a secret."""
    for component in COMPONENTS:
        for index, target in enumerate(getattr(inventory, component)):
            for where, variable in _env_keys(target, (component, index)):
                value = os.environ.get(variable)
                if value is None:
                    raise ConfigError(
                        f"{file}: {_where(where)}: environment variable {variable} is not set"
                    )
                if value:
                    secrets.add(value)


def _env_keys(model: BaseModel, where: tuple[int | str, ...]) -> Iterator[tuple[Any, str]]:
    for key in type(model).model_fields:
        value = getattr(model, key)
        if isinstance(value, BaseModel):
            yield from _env_keys(value, (*where, key))
        elif key.endswith("_env") and value is not None:
            yield (*where, key), value


def secret(target: Any, key: str) -> str | None:
    """The value of the environment variable a target's ``<key>_env`` names, if any."""
    variable = getattr(target, f"{key}_env", None)
    return os.environ.get(variable) if variable else None


def check_schedule(loaded: Config, check_ids: set[str]) -> None:
    """Every check ``[settings.schedule]`` moves exists (``check_ids``: those of the suites)."""
    file = loaded.inventory_path.name if loaded.inventory_path else "inventory.toml"
    for key in loaded.inventory.settings.schedule:
        if key not in check_ids:
            close = difflib.get_close_matches(key, sorted(check_ids), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"{file}: {_where(('settings', 'schedule', key))}: no such check{hint}"
            )


def redact(text: str, secrets: set[str]) -> str:
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text
