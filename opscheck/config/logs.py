"""``[[logs]]``: log files and journald units, the patterns counted in them, and the named
regexes (presets) those patterns may use."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from opscheck import units

from .base import (
    CHECK_LIMIT,
    InlineLevels,
    Limit,
    Name,
    NumberLimit,
    Strict,
    Target,
    Texts,
    at_most,
)
from .errors import close_to

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

    name: Name
    pattern: str | None = Field(default=None, min_length=1)
    preset: str | None = None
    level: Texts = Field(default_factory=list)  # JSON lines and journald only
    window: str = "24h"  # "24h", "4h", "7d" ... or "today" (since 00:00 UTC)
    category: Literal["errors", "security"] | None = None  # default: the preset's, else errors
    # Judged as a share, in percent: of all lines in the window, or of another pattern's lines.
    ratio_of: str | None = Field(default=None, min_length=1)

    @field_validator("pattern")
    @classmethod
    def _regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                compiled = re.compile(pattern.encode())  # as the scanner compiles it, on bytes
            except (re.error, UnicodeError) as exc:
                raise ValueError(
                    f"expected a regular expression, got {pattern!r} ({exc})"
                ) from None
            if compiled.search(b""):  # `error|` or `.*`: a slip that counts every line
                raise ValueError(
                    f"expected a regular expression that needs a character to match, got "
                    f"{pattern!r} (it matches an empty line, so every line)"
                )
        return pattern

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, preset: str | None) -> str | None:
        if preset is not None and preset not in LOG_PRESETS:
            close = close_to(preset, LOG_PRESETS)
            hint = f"did you mean {close!r}? " if close else ""
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

    @model_validator(mode="after")
    def _ratio_levels(self) -> LogPattern:
        if self.ratio_of is not None and not self.model_fields_set & {"warn", "crit"}:
            raise ValueError(
                "a pattern with ratio_of is judged in percent: give warn and/or crit (e.g. "
                'warn = 5 for 5 %; direction = "below" for a success rate)'
            )
        return self

    @property
    def regexes(self) -> list[str]:
        found = [self.pattern] if self.pattern else []
        return found + ([LOG_PRESETS[self.preset][0]] if self.preset else [])

    def levels(self) -> LogPattern:
        """The pattern's levels as judged: one that sets warn or crit is judged by its own levels
        alone (``crit = 10`` does not keep the default "warn above 0")."""
        given = self.model_fields_set & {"warn", "crit"}
        if len(given) == 1:
            return self.model_copy(update={({"warn", "crit"} - given).pop(): None})
        return self

    @property
    def kind(self) -> Literal["errors", "security"]:
        """The pattern's category: which check counts it (errors or security)."""
        if self.category:
            return self.category
        return LOG_PRESETS[self.preset][1] if self.preset else "errors"


_CONTAINER = r"^/?[A-Za-z0-9][A-Za-z0-9_.-]*$"  # as docker accepts a container's name
_DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"  # a namespace, a container
_K8S_NAME = r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"  # a DNS subdomain: pods, deployments


class DockerLogs(Strict):
    """``docker = { target, container | service }``: the logs of one container, or of every
    container of a compose service of the ``[[docker]]`` target's project (`docker compose logs
    <service>`), read through that target's Engine API."""

    target: Name  # a [[docker]] target of the inventory
    container: str | None = Field(default=None, pattern=_CONTAINER)
    service: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

    @model_validator(mode="after")
    def _one_of(self) -> DockerLogs:
        if (self.container is None) == (self.service is None):
            raise ValueError(
                "expected exactly one of container (a container's name) or service (a compose "
                "service of the docker target's project)"
            )
        return self


class KubernetesLogs(Strict):
    """``kubernetes = { target, namespace, deployment | selector | pod, container, previous }``:
    the logs of the pods of a Deployment (its selector), of the pods a label selector picks, or
    of one pod (`kubectl logs deploy/x --since=…`), read through the ``[[kubernetes]]`` target."""

    target: Name  # a [[kubernetes]] target of the inventory
    namespace: str = Field(default="default", pattern=_DNS_LABEL)
    deployment: str | None = Field(default=None, pattern=_K8S_NAME)
    selector: str | None = Field(default=None, min_length=1)  # `kubectl logs -l app=x`
    pod: str | None = Field(default=None, pattern=_K8S_NAME)
    # default: the pod's kubectl.kubernetes.io/default-container, else its first container
    container: str | None = Field(default=None, pattern=_DNS_LABEL)
    previous: bool = False  # `kubectl logs --previous`: the last terminated (crashed) container

    @model_validator(mode="after")
    def _one_of(self) -> KubernetesLogs:
        if sum(v is not None for v in (self.deployment, self.selector, self.pod)) != 1:
            raise ValueError("expected exactly one of deployment, selector or pod")
        return self

    @property
    def what(self) -> str:
        """``deployment shop/api``, ``pods shop/app=api``, ``pod shop/api-0``."""
        if self.deployment:
            return f"deployment {self.namespace}/{self.deployment}"
        if self.selector:
            return f"pods {self.namespace}/{self.selector}"
        return f"pod {self.namespace}/{self.pod}"


PRIORITIES = ("emerg", "alert", "crit", "err", "warning", "notice", "info", "debug")
_PRIORITY_ALIASES = {"error": "err", "warn": "warning", "critical": "crit", "emergency": "emerg"}


def journal_priority(value: object) -> object:
    """A journald priority as journalctl -p takes it: a name (emerg .. debug, or error, warn,
    critical) or its number 0-7, normalized to the name; anything else refused by name."""
    if value is None:
        return None
    text = str(value).strip().lower() if isinstance(value, (str, int)) else ""
    if isinstance(value, bool):
        text = ""
    if text.isdigit() and int(text) < len(PRIORITIES):
        return PRIORITIES[int(text)]
    text = _PRIORITY_ALIASES.get(text, text)
    if text in PRIORITIES:
        return text
    raise ValueError(
        f"expected a journald priority: one of {', '.join(PRIORITIES)} or 0-7 (journalctl -p: "
        f"that one and the more severe), got {value!r}"
    )


STAT_UNITS: dict[str, str] = {  # a stat's unit: the check key judging it
    "number": "logs.stat",
    "ms": "logs.stat_seconds",
    "s": "logs.stat_seconds",
    "bytes": "logs.stat_bytes",
}
_FIELD = r"^[^.\s]+(?:\.[^.\s]+)*$"  # `duration_ms`, or a nested `http.status`


class LogStat(Limit):
    """``[[logs.stats]]``: a statistic of a field of the JSON lines in the window (``avg``,
    ``median``, ``p95``, ``p99``, ``max``, ``min``, ``sum`` of a number; ``distinct`` values;
    ``count`` of lines per group), computed on the host by the scanner; with ``group_by``, per
    group: the top groups judged and listed."""

    name: Name
    field: str | None = Field(default=None, pattern=_FIELD)
    stat: Literal["avg", "median", "p95", "p99", "max", "min", "sum", "count", "distinct"]
    group_by: str | None = Field(default=None, pattern=_FIELD)
    top: int = Field(default=5, ge=1, le=50)  # groups judged and listed
    pattern: str | None = Field(default=None, min_length=1)  # only the lines matching it
    window: str = "24h"
    unit: Literal["number", "ms", "s", "bytes"] = "number"

    @field_validator("pattern")
    @classmethod
    def _regex(cls, pattern: str | None) -> str | None:
        return LogPattern._regex(pattern)

    @field_validator("window")
    @classmethod
    def _window(cls, window: str) -> str:
        return LogPattern._window(window)

    @field_validator("warn", "crit")
    @classmethod
    def _no_boolean(cls, level: object) -> object:
        if isinstance(level, bool):
            raise ValueError(f"expected a number or a quantity such as '500ms', got {level!r}")
        return level

    @model_validator(mode="after")
    def _complete(self) -> LogStat:
        if self.field is None and self.stat != "count":
            raise ValueError(f'stat = "{self.stat}" needs field (the JSON field it reads)')
        if self.stat == "count" and self.group_by is None:
            raise ValueError(
                'stat = "count" counts lines per group: give group_by (e.g. group_by = '
                '"client_ip"); count lines with [[logs.patterns]]'
            )
        if not self.model_fields_set & {"warn", "crit"}:
            raise ValueError("expected warn and/or crit (a stat without levels cannot fail)")
        return self

    @property
    def key(self) -> str:
        return STAT_UNITS[self.unit]

    @property
    def seconds(self) -> float | None:
        return window_seconds(self.window)

    def levels(self) -> Limit:
        """``warn``/``crit`` in the stat's unit (``warn = 500`` with ``unit = "ms"``)."""
        given = self.model_fields_set & {"warn", "crit", "direction"}
        values = {name: getattr(self, name) for name in given}
        for level in ("warn", "crit"):
            value = values.get(level)
            if self.unit in ("ms", "s") and isinstance(value, int | float):
                values[level] = f"{value!r}{self.unit}"
            elif self.unit == "bytes" and isinstance(value, int | float):
                values[level] = f"{value!r}B"
        return Limit(**values)


def _check_ratios_and_stats(target: LogsTarget) -> None:
    """``ratio_of`` names another pattern of the target, counted over the same window; stats
    read JSON files."""
    by_name = {p.name: p for p in target.patterns}
    for index, pattern in enumerate(target.patterns):
        if pattern.ratio_of is None or pattern.ratio_of == "all":
            continue
        others = [name for name in by_name if name != pattern.name]
        other = by_name.get(pattern.ratio_of)
        if other is None or other is pattern:
            close = close_to(pattern.ratio_of, others)
            hint = f"did you mean {close!r}? " if close else ""
            raise ValueError(
                f'patterns[{index}].ratio_of: expected "all" or the name of another pattern '
                f"of this target, got {pattern.ratio_of!r} ({hint}patterns: "
                f"{', '.join(others) or 'none'})"
            )
        if other.window != pattern.window:
            raise ValueError(
                f"patterns[{index}].ratio_of: {other.name!r} is counted over window "
                f"{other.window!r}, this pattern over {pattern.window!r}: give both the same"
            )
    names = [s.name for s in target.stats]
    for index, stat in enumerate(target.stats):
        if names.count(stat.name) > 1:
            raise ValueError(f"duplicate stat name {stat.name!r} (it becomes the test id)")
        if target.format != "json" or target.path is None:
            raise ValueError(
                f"stats[{index}]: stats read the fields of JSON lines: they apply to path "
                f'sources with format = "json"'
            )


class LogsTarget(Target):
    """A log source on a host: a file (``{date:%Y-%m-%d}`` templates), a glob, a journald unit,
    or container logs (``docker``, ``kubernetes``)."""

    host: str | None = None  # a [[host]] target the logs live on; default: this machine
    path: str | None = Field(default=None, min_length=1)
    journald_unit: str | None = Field(default=None, min_length=1)
    journald_directory: str | None = Field(default=None, min_length=1)  # journalctl -D
    # journalctl -p: that priority and the more severe ones; without a unit, the whole journal
    journald_priority: str | None = None
    journald_kernel: bool = False  # the kernel's messages (journalctl -k) too; alone: only them
    docker: DockerLogs | None = None  # a container's logs (Docker Engine API)
    kubernetes: KubernetesLogs | None = None  # pods' logs (Kubernetes API)
    format: Literal["text", "json"] = "text"
    level_field: str = Field(default="level", min_length=1)  # JSON lines
    time_field: str = Field(default="timestamp", min_length=1)
    message_field: str = Field(default="message", min_length=1)
    patterns: list[LogPattern] = Field(default_factory=list)
    stats: list[LogStat] = Field(default_factory=list)  # format = "json" files only
    # The scanner reads only the window of each file, but a first run over a cold disk may not.
    scan_timeout: Annotated[float, at_most("4m", CHECK_LIMIT)] = 120.0

    @model_validator(mode="after")
    def _one_source(self) -> LogsTarget:
        others = [k for k in ("path", "docker", "kubernetes") if getattr(self, k) is not None]
        if (self.journald_priority or self.journald_kernel) and others:
            raise ValueError(
                f"journald_priority and journald_kernel read the journal (with or without "
                f"journald_unit), not {others[0]}: one source per [[logs]] target"
            )
        journal = True if self.journal else None  # journald_priority or _kernel alone: the journal
        sources = (self.path, journal, self.docker, self.kubernetes)
        if sum(source is not None for source in sources) != 1:
            raise ValueError(
                "expected exactly one of path (files), journald_unit (the journal), docker (a "
                "container's logs) or kubernetes (pods' logs)"
            )
        if self.host is not None and self.container is not None:
            raise ValueError(
                "host applies to path and journald_unit sources (docker and kubernetes logs are "
                "read through their target's API)"
            )
        if self.journald_directory and not self.journal:
            raise ValueError(
                "journald_directory applies to the journal (journald_unit, journald_priority, "
                "journald_kernel) only"
            )
        names = [p.name for p in self.patterns]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"duplicate pattern name {name!r} (it becomes the test id)")
        _check_ratios_and_stats(self)
        if not self.journal and self.format == "text":
            for index, pattern in enumerate(self.patterns):
                if pattern.level:
                    raise ValueError(
                        f'patterns[{index}].level: applies to format = "json" and '
                        "journald_unit sources; in text logs match the level with pattern, "
                        "e.g. '\\bERROR\\b'"
                    )
        return self

    @field_validator("journald_priority", mode="before")
    @classmethod
    def _priority(cls, value: object) -> object:
        return journal_priority(value)

    @property
    def journal(self) -> bool:
        """Whether the source is the journal: a unit's, the kernel's, or all of it by priority."""
        return bool(self.journald_unit or self.journald_priority or self.journald_kernel)

    @property
    def journal_what(self) -> str:
        """``journal of ssh``, ``journal of ssh and the kernel at err or above``, ``journal at
        warning or above``, ``kernel messages``, as the checks' messages name the source."""
        parts = [self.journald_unit] if self.journald_unit else []
        if self.journald_kernel:
            parts.append("the kernel" if parts else "")
        what = f"journal of {' and '.join(parts)}" if parts else "journal"
        if parts == [""]:
            what = "kernel messages"
        if self.journald_priority:
            what += f" at {self.journald_priority} or above"
        return what

    @property
    def container(self) -> DockerLogs | KubernetesLogs | None:
        """The container source (``docker`` or ``kubernetes``), if the logs are a container's."""
        return self.docker or self.kubernetes

    def inline_levels(self) -> Iterator[InlineLevels]:
        for index, pattern in enumerate(self.patterns):
            if pattern.ratio_of:
                yield InlineLevels("logs.pattern_ratio", ("patterns", index), pattern.levels())
            else:
                yield InlineLevels("logs.pattern_lines", ("patterns", index), pattern.levels())
        for index, stat in enumerate(self.stats):
            yield InlineLevels(stat.key, ("stats", index), stat.levels())

    def _judged_alone(self, pattern: LogPattern) -> bool:
        """A count pattern is judged by its count, unless it has a ratio_of or is only the
        denominator of another's (``ratio_of = "requests"``, no levels of its own)."""
        if pattern.ratio_of is not None:
            return False
        denominator = any(p.ratio_of == pattern.name for p in self.patterns)
        return not denominator or bool(pattern.model_fields_set & {"warn", "crit"})

    @property
    def ratio_patterns(self) -> list[LogPattern]:
        """Patterns judged as a share (``ratio_of``), in percent, not as a count."""
        return [p for p in self.patterns if p.ratio_of is not None]

    @property
    def error_patterns(self) -> list[LogPattern]:
        return [p for p in self.patterns if p.kind == "errors" and self._judged_alone(p)]

    @property
    def security_patterns(self) -> list[LogPattern]:
        return [p for p in self.patterns if p.kind == "security" and self._judged_alone(p)]
