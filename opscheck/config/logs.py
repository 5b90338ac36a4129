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


class LogsTarget(Target):
    """A log source on a host: a file (``{date:%Y-%m-%d}`` templates), a glob, a journald unit,
    or container logs (``docker``, ``kubernetes``)."""

    host: str | None = None  # a [[host]] target the logs live on; default: this machine
    path: str | None = Field(default=None, min_length=1)
    journald_unit: str | None = Field(default=None, min_length=1)
    journald_directory: str | None = Field(default=None, min_length=1)  # journalctl -D
    docker: DockerLogs | None = None  # a container's logs (Docker Engine API)
    kubernetes: KubernetesLogs | None = None  # pods' logs (Kubernetes API)
    format: Literal["text", "json"] = "text"
    level_field: str = Field(default="level", min_length=1)  # JSON lines
    time_field: str = Field(default="timestamp", min_length=1)
    message_field: str = Field(default="message", min_length=1)
    patterns: list[LogPattern] = Field(default_factory=list)
    # The scanner reads only the window of each file, but a first run over a cold disk may not.
    scan_timeout: Annotated[float, at_most("4m", CHECK_LIMIT)] = 120.0

    @model_validator(mode="after")
    def _one_source(self) -> LogsTarget:
        sources = (self.path, self.journald_unit, self.docker, self.kubernetes)
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
        if self.journald_directory and not self.journald_unit:
            raise ValueError("journald_directory applies to journald_unit only")
        names = [p.name for p in self.patterns]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"duplicate pattern name {name!r} (it becomes the test id)")
        if self.journald_unit is None and self.format == "text":
            for index, pattern in enumerate(self.patterns):
                if pattern.level:
                    raise ValueError(
                        f'patterns[{index}].level: applies to format = "json" and '
                        "journald_unit sources; in text logs match the level with pattern, "
                        "e.g. '\\bERROR\\b'"
                    )
        return self

    @property
    def container(self) -> DockerLogs | KubernetesLogs | None:
        """The container source (``docker`` or ``kubernetes``), if the logs are a container's."""
        return self.docker or self.kubernetes

    def inline_levels(self) -> Iterator[InlineLevels]:
        for index, pattern in enumerate(self.patterns):
            yield InlineLevels("logs.pattern_lines", ("patterns", index), pattern.levels())

    @property
    def error_patterns(self) -> list[LogPattern]:
        return [p for p in self.patterns if p.kind == "errors"]

    @property
    def security_patterns(self) -> list[LogPattern]:
        return [p for p in self.patterns if p.kind == "security"]
