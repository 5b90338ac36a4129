"""Both files read (``reading``), ``${VAR}`` replaced, the variables ``*_env`` keys name and the
credentials an S3 target needs found in the environment, and ``load``, which reports every
mistake of both files at once, one line each."""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from opscheck import units
from opscheck.checks import SCHEDULES

from . import inventory as inv
from . import thresholds as thr
from .base import Limit, LimitWithTargets
from .errors import ConfigError, Loc, line, redact, shown
from .reading import read_toml
from .selection import selection_problems

_VARIABLE = r"[A-Za-z_][A-Za-z0-9_]*"
_ENV_REF = re.compile(rf"\$\{{(?P<name>{_VARIABLE})\}}")
# What else a $ may start: $$ (a literal $), ${...} (a reference, maybe malformed or unclosed),
# $NAME (a shell habit: refused, or it would be sent as written).
_DOLLAR = re.compile(rf"\$\$|\$\{{(?P<name>[^}}]*)\}}?|\$(?P<bare>{_VARIABLE})")
# Values with a $ syntax of their own (SQL dollar quotes and $1, a regex's end of line): only
# ${VAR} is replaced in them.
_OWN_DOLLAR = ("sql", "pattern", "run", "regex")  # run: a shell command ($1, $(...))


@dataclass
class Config:
    """The validated inventory and thresholds of a run."""

    inventory: inv.Inventory
    limits: dict[str, LimitWithTargets]
    inventory_path: Path | None
    thresholds_path: Path | None
    secrets: set[str] = field(default_factory=set, repr=False)  # repr: a traceback shows it

    @property
    def inventory_file(self) -> str:
        return self.inventory_path.name if self.inventory_path else "inventory.toml"

    @property
    def schedules(self) -> tuple[str, ...]:
        """Every schedule a check or target may run in: built-in, then settings.schedules."""
        return (*SCHEDULES, *self.inventory.settings.schedules)

    def targets(self, component: str) -> list[Any]:
        return list(getattr(self.inventory, component))

    def threshold(
        self,
        key: str,
        target: str | None = None,
        inline: Limit | None = None,
        kind: units.Kind | None = None,
    ) -> thr.Threshold:
        """Levels for ``key``: code default, then thresholds.toml, its per-target override, then
        ``inline`` (levels the inventory writes for one entry)."""
        return thr.resolve(self.limits, key, target, inline, kind)


class _Environment:
    """``${VAR}`` references replaced by the environment's values, which become secrets; a line
    for each reference that cannot be (and its location, whose value is not validated)."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.secrets: set[str] = set()
        self.problems: list[tuple[Loc, str]] = []

    def expand(self, raw: Any, loc: Loc = ()) -> Any:
        """``raw`` with every ``${VAR}`` replaced and ``$$`` made ``$``. ``$VAR`` is refused: a
        shell habit that would be sent as written, as an empty variable would be sent empty."""
        if isinstance(raw, dict):
            return {k: self.expand(v, (*loc, k)) for k, v in raw.items()}
        if isinstance(raw, list):
            return [self.expand(v, (*loc, i)) for i, v in enumerate(raw)]
        if not isinstance(raw, str) or (loc and str(loc[-1]).endswith("_env")):
            return raw  # `password_env = "PG_PASSWORD"` names a variable: it is not replaced
        if loc and loc[-1] == "name" and _ENV_REF.search(raw):
            # A name becomes the test id, which every report and the terminal show as it is.
            self._refuse(
                loc,
                f"expected a name written out, got {shown(raw)} (a variable's "
                "value in a name would appear in every report)",
            )
            return raw
        if loc and loc[-1] in _OWN_DOLLAR:
            return _ENV_REF.sub(lambda m: self._value(m, loc), raw)
        return _DOLLAR.sub(lambda m: self._dollar(m, loc), raw)

    def _dollar(self, match: re.Match[str], loc: Loc) -> str:
        text = match.group(0)
        if text == "$$":
            return "$"
        if match.group("bare"):
            self._refuse(
                loc,
                f"expected ${{{match.group('bare')}}} for an environment variable, "
                f"got {text} (write $$ for a literal $)",
            )
            return text
        if not _ENV_REF.fullmatch(text):
            self._refuse(
                loc,
                f"expected ${{NAME}} with a variable name of letters, digits and _, "
                f"got {shown(text)}",
            )
            return text
        return self._value(match, loc)

    def _value(self, match: re.Match[str], loc: Loc) -> str:
        name = match.group("name")
        value = os.environ.get(name)
        if value is None:
            self._refuse(loc, f"environment variable {name} is not set")
            return match.group(0)
        if not value:
            self._refuse(loc, f"environment variable {name} is set but empty")
            return value
        if short := _too_short(name, value):
            self._refuse(loc, short)
            return match.group(0)
        self.secrets.add(value)
        return value

    def _refuse(self, loc: Loc, message: str) -> None:
        self.problems.append((loc, line(self.file, loc, message)))


def load(
    inventory_path: Path | None,
    thresholds_path: Path | None,
    check_ids: Collection[str] | None = None,
) -> Config:
    """Read and validate both files; ``None`` means that file is absent and defaults apply.

    ``check_ids`` (``<component>.<test name without test_>`` of the suites), when given, also
    validates the check ids the inventory names (``selection.selection_problems``).

    Raises ``ConfigError`` with one line per mistake, naming the file, the key and what was
    expected; the values of ``${VAR}`` references never appear in it.
    """
    problems: list[str] = []
    inventory_file = inventory_path.name if inventory_path else "inventory.toml"
    thresholds_file = thresholds_path.name if thresholds_path else "thresholds.toml"
    environment = _Environment(inventory_file)

    raw = read_toml(inventory_path, problems) if inventory_path else {}
    parsed = None
    if raw is not None:
        raw = environment.expand(raw)
        problems += [message for _, message in environment.problems]
        parsed = inv.validate(inventory_file, raw, [loc for loc, _ in environment.problems])
        problems += parsed.problems
        problems += _secret_variables(parsed, environment.secrets)
        problems += _s3_credentials(parsed)
        if check_ids is not None:
            problems += selection_problems(parsed, check_ids)

    raw_limits = read_toml(thresholds_path, problems) if thresholds_path else {}
    limits, mistakes = thr.validate_file(thresholds_file, raw_limits or {})
    problems += mistakes
    if parsed is not None:
        problems += thr.validate_overrides(thresholds_file, inventory_file, limits, parsed.names)
        problems += thr.validate_levels(limits, thresholds_file, inventory_file, parsed.each())

    secrets = environment.secrets
    if problems:
        raise ConfigError(redact("\n".join(dict.fromkeys(problems)), secrets))
    assert parsed is not None
    return Config(parsed.inventory(), limits, inventory_path, thresholds_path, secrets)


def load_settings(inventory_path: Path) -> tuple[inv.Settings, set[str]]:
    """Only the inventory's ``[settings]``, validated as ``load`` does (``opscheck-merge``: it
    notifies for a merged run, and needs none of the targets' secrets). Raises ``ConfigError``."""
    problems: list[str] = []
    file = inventory_path.name
    environment = _Environment(file)
    raw = read_toml(inventory_path, problems)
    settings = None
    if raw is not None:
        table = environment.expand({"settings": raw.get("settings", {})})
        problems += [message for _, message in environment.problems]
        parsed = inv.Parsed(file)
        unset = [loc for loc, _ in environment.problems]
        settings = inv._entry(parsed, inv.Settings, table["settings"], ("settings",), unset)
        problems += parsed.problems
    if problems or settings is None:
        raise ConfigError(redact("\n".join(dict.fromkeys(problems)), environment.secrets))
    return settings, environment.secrets


def _secret_variables(parsed: inv.Parsed, secrets: set[str]) -> Iterator[str]:
    """Every ``*_env`` key (of a target or of a table in it, such as ``backup.s3``) names a
    variable that is set and not empty (an empty password is sent as one); its value becomes a
    secret."""
    for loc, target in parsed.each():
        for key, variable in _env_keys(target, loc):
            if not re.fullmatch(_VARIABLE, variable):
                written = re.fullmatch(rf"\$\{{?({_VARIABLE})\}}?", variable)
                hint = f" (write {written.group(1)!r}: the key names it)" if written else ""
                message = (
                    "expected the name of an environment variable such as 'PG_PASSWORD', "
                    f"got {shown(variable)}{hint}"
                )
                yield line(parsed.file, key, message)
                continue
            value = os.environ.get(variable)
            if value is None:
                yield line(parsed.file, key, f"environment variable {variable} is not set")
            elif not value:
                yield line(parsed.file, key, f"environment variable {variable} is set but empty")
            elif short := _too_short(variable, value):
                yield line(parsed.file, key, short)
            else:
                secrets.add(value)


SHORTEST_SECRET = 4


def _too_short(variable: str, value: str) -> str | None:
    """Why a secret's value cannot be kept out of the reports, if it cannot: every report is
    redacted for it, and one of 1-3 characters would mask every such letter of every report."""
    if len(value.strip()) >= SHORTEST_SECRET:
        return None
    return (
        f"environment variable {variable}: expected a secret of at least {SHORTEST_SECRET} "
        f"characters (it is kept out of every report), got {len(value)}"
    )


# Where botocore finds credentials when the inventory names none, as opscheck.probes.s3 lets it:
# the environment only (keys; a web identity token and role; a container credentials endpoint).
_AWS_SOURCES = (
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    ("AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"),
    ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",),
    ("AWS_CONTAINER_CREDENTIALS_FULL_URI",),
)


def _s3_credentials(parsed: inv.Parsed) -> Iterator[str]:
    """An S3 target without ``*_env`` keys finds credentials in the standard variables, or the
    run could not list its bucket: said now, once, instead of failing every check later."""
    found = [[name for name in source if os.environ.get(name)] for source in _AWS_SOURCES]
    if any(len(set_) == len(source) for set_, source in zip(found, _AWS_SOURCES, strict=True)):
        return
    half = [(set_, source) for set_, source in zip(found, _AWS_SOURCES, strict=True) if set_]
    got = "none"
    if half:
        set_, source = half[0]
        got = f"{set_[0]} without {next(name for name in source if name not in set_)}"
    message = (
        f"expected credentials from the environment, got {got} (set access_key_id_env and "
        f"secret_access_key_env, or {' and '.join(_AWS_SOURCES[0])}; a credentials file or "
        "profile is never read)"
    )
    for loc, target in parsed.each():
        s3 = getattr(target, "s3", None)
        if s3 is not None and not s3.access_key_id_env:
            yield line(parsed.file, (*loc, "s3"), message)


def _env_keys(model: BaseModel, loc: Loc) -> Iterator[tuple[Loc, str]]:
    for key in type(model).model_fields:
        value = getattr(model, key)
        if isinstance(value, BaseModel):
            yield from _env_keys(value, (*loc, key))
        elif key.endswith("_env") and value is not None:
            yield (*loc, key), value


def secret(target: Any, key: str) -> str | None:
    """The value of the environment variable a target's ``<key>_env`` names, if any."""
    variable = getattr(target, f"{key}_env", None)
    return os.environ.get(variable) if variable else None
