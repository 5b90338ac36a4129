"""Reading both files: TOML, ``${VAR}`` expansion, secret variables, and ``load``, which reports
every mistake of both files at once, one line each."""

from __future__ import annotations

import os
import re
import tomllib
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
from .errors import ConfigError, Loc, line, redact
from .selection import selection_problems

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class Config:
    """The validated inventory and thresholds of a run."""

    inventory: inv.Inventory
    limits: dict[str, LimitWithTargets]
    inventory_path: Path | None
    thresholds_path: Path | None
    secrets: set[str] = field(default_factory=set)

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


def _read_toml(path: Path, problems: list[str]) -> dict[str, Any] | None:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"{path.name}: not valid TOML: {exc}")
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror}")
    return None


def _expand_env(raw: Any, loc: Loc, secrets: set[str], unset: list[tuple[Loc, str]]) -> Any:
    """Replace ``${VAR}`` with the environment's value; the values are secrets. A variable that
    is not set leaves the text as written and its location in ``unset``."""
    if isinstance(raw, dict):
        return {k: _expand_env(v, (*loc, k), secrets, unset) for k, v in raw.items()}
    if isinstance(raw, list):
        return [_expand_env(v, (*loc, i), secrets, unset) for i, v in enumerate(raw)]
    if not isinstance(raw, str):
        return raw

    def lookup(match: re.Match[str]) -> str:
        value = os.environ.get(match.group(1))
        if value is None:
            unset.append((loc, match.group(1)))
            return match.group(0)
        if value:
            secrets.add(value)
        return value

    return _ENV_REF.sub(lookup, raw)


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
    secrets: set[str] = set()
    problems: list[str] = []
    inventory_file = inventory_path.name if inventory_path else "inventory.toml"
    thresholds_file = thresholds_path.name if thresholds_path else "thresholds.toml"

    raw = _read_toml(inventory_path, problems) if inventory_path else {}
    parsed = None
    if raw is not None:
        unset: list[tuple[Loc, str]] = []
        raw = _expand_env(raw, (), secrets, unset)
        problems += [
            line(inventory_file, loc, f"environment variable {name} is not set")
            for loc, name in unset
        ]
        parsed = inv.validate(inventory_file, raw, [loc for loc, _ in unset])
        problems += parsed.problems
        problems += _secret_variables(parsed, secrets)
        if check_ids is not None:
            problems += selection_problems(parsed, check_ids)

    raw_limits = _read_toml(thresholds_path, problems) if thresholds_path else {}
    limits, mistakes = thr.validate_file(thresholds_file, raw_limits or {})
    problems += mistakes
    if parsed is not None:
        problems += thr.validate_overrides(thresholds_file, inventory_file, limits, parsed.names)
        problems += thr.validate_levels(limits, thresholds_file, inventory_file, parsed.each())

    if problems:
        raise ConfigError(redact("\n".join(dict.fromkeys(problems)), secrets))
    assert parsed is not None
    return Config(parsed.inventory(), limits, inventory_path, thresholds_path, secrets)


def _secret_variables(parsed: inv.Parsed, secrets: set[str]) -> Iterator[str]:
    """Every ``*_env`` key (of a target or of a table in it, such as ``backup.s3``) names a
    variable that is set; its value becomes a secret."""
    for loc, target in parsed.each():
        for key, variable in _env_keys(target, loc):
            value = os.environ.get(variable)
            if value is None:
                yield line(parsed.file, key, f"environment variable {variable} is not set")
            elif value:
                secrets.add(value)


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
