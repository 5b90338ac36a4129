"""How strict: ``thresholds.toml`` validated, and the levels of a check resolved from its layers.

Layers, each changing only what it sets: the default in ``opscheck/checks.py``, then
``[<key>]`` in thresholds.toml, then its ``.targets.<name>`` override, then levels the inventory
writes for one entry (``json_limits``, ``[[postgres.queries]]``, queues, tables, patterns).
Levels that could never fire are refused: outside the range the check can measure, warn past crit
for the direction, or any level at all for a yes/no check.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from opscheck import units
from opscheck.checks import CHECKS, Spec

from .base import Direction, Limit, LimitWithTargets, Target
from .errors import Loc, close_to, line, shown, translate, where
from .inventory import COMPONENTS

LEVELS = ("warn", "crit")


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


def resolve(
    limits: Mapping[str, LimitWithTargets],
    key: str,
    target: str | None = None,
    inline: Limit | None = None,
    kind: units.Kind | None = None,
) -> Threshold:
    """Levels for ``key``: code default, then thresholds.toml, its per-target override, inline."""
    spec = CHECKS.get(key)
    kind = kind or (spec.kind if spec else "number")
    layers: list[Limit] = []
    if key in limits:
        layers.append(limits[key])
        if target and target in limits[key].targets:
            layers.append(limits[key].targets[target])
    if inline is not None:
        layers.append(inline)
    warn = spec.warn if spec else None
    crit = spec.crit if spec else None
    direction: Direction = spec.direction if spec else "above"
    warn_set = crit_set = False
    for layer in layers:
        fields = layer.model_fields_set
        if "warn" in fields:
            warn, warn_set = None if layer.warn is None else units.parse(layer.warn, kind), True
        if "crit" in fields:
            crit, crit_set = None if layer.crit is None else units.parse(layer.crit, kind), True
        if layer.direction:
            direction = layer.direction
    if crit_set and not warn_set and _past(warn, crit, direction):
        warn = None  # the default warn, overtaken by the crit you set: it could never fire
    return Threshold(key, kind, direction, warn, crit)


def _past(warn: float | None, crit: float | None, direction: Direction) -> bool:
    """Whether ``warn`` lies beyond ``crit`` for the direction (so it could never fire)."""
    if warn is None or crit is None:
        return False
    return warn > crit if direction == "above" else warn < crit


# -- thresholds.toml --------------------------------------------------------------------------


def validate_file(file: str, raw: dict[str, Any]) -> tuple[dict[str, LimitWithTargets], list[str]]:
    """The tables of thresholds.toml as limits per check key, and a line for each mistake."""
    limits: dict[str, LimitWithTargets] = {}
    problems: list[str] = []
    for component, checks in raw.items():
        if component not in COMPONENTS:
            close = close_to(component, COMPONENTS)
            hint = f"did you mean {close!r}? " if close else ""
            message = f"unknown component ({hint}known: {', '.join(COMPONENTS)})"
            problems.append(line(file, (component,), message))
            continue
        if not isinstance(checks, dict):
            message = (
                f"expected a table of checks such as [{component}.<check>], got {shown(checks)}"
            )
            problems.append(line(file, (component,), message))
            continue
        for name, table in checks.items():
            key = f"{component}.{name}"
            if key not in CHECKS:
                known = sorted(
                    k
                    for k, spec in CHECKS.items()
                    if k.startswith(component + ".") and spec.kind != "state"
                )
                close = close_to(key, known)
                hint = f"did you mean {close!r}? " if close else ""
                message = f"unknown check ({hint}known: {', '.join(known)})"
                problems.append(line(file, (component, name), message))
                continue
            if not isinstance(table, dict):
                message = (
                    f"expected a table such as [{key}] with warn and crit levels, "
                    f"got {shown(table)}"
                )
                problems.append(line(file, (component, name), message))
                continue
            try:
                limits[key] = LimitWithTargets.model_validate(table)
            except ValidationError as exc:
                problems += translate(file, LimitWithTargets, exc, (component, name))
    return limits, problems


def validate_overrides(
    file: str,
    inventory_file: str,
    limits: Mapping[str, LimitWithTargets],
    names: Mapping[str, list[str]],
) -> Iterator[str]:
    """Every per-target override names a target of the inventory."""
    for key, limit in limits.items():
        component, name = key.split(".", 1)
        known = names.get(component, [])
        for target in limit.targets:
            if target not in known:
                close = close_to(target, known)
                hint = (
                    f"did you mean {close!r}?" if close else f"known: {', '.join(known) or 'none'}"
                )
                message = f"no {component} target named {target!r} in {inventory_file} ({hint})"
                yield line(file, (component, name, "targets", target), message)


# -- levels that can never fire ---------------------------------------------------------------


@dataclass
class _Layer:
    """One layer of a check's levels, parsed: what it sets, and where it is written."""

    file: str  # "" for the default in opscheck/checks.py
    loc: Loc
    levels: dict[str, float | None] = field(default_factory=dict)
    direction: Direction | None = None
    keys: Mapping[str, str] = field(default_factory=dict)  # level -> the key the user wrote
    broken: bool = False  # a level is already reported as wrong

    def at(self, level: str) -> Loc:
        return (*self.loc, self.keys.get(level, level))

    def named(self, other: _Layer) -> str:
        """How a message on ``other`` names where this layer's value comes from."""
        if not self.file:
            return "the default"
        return where(self.loc) if self.file == other.file else f"{self.file} {where(self.loc)}"


def _default(spec: Spec) -> _Layer:
    return _Layer("", (), {"warn": spec.warn, "crit": spec.crit}, spec.direction)


class _Levels:
    """Checks every layer of every check key once, collecting a line for each problem."""

    def __init__(self, limits: Mapping[str, LimitWithTargets], file: str) -> None:
        self.limits = limits
        self.file = file
        self.problems: list[str] = []
        self._layers: dict[tuple[str, str | None], list[_Layer]] = {}

    def chain(self, key: str, target: str | None) -> list[_Layer]:
        """The layers of ``key`` for ``target`` from thresholds.toml, checked the first time."""
        if (key, target) in self._layers:
            return self._layers[key, target]
        spec = CHECKS[key]
        component, name = key.split(".", 1)
        limit = self.limits.get(key)
        if target is None:
            layers = [_default(spec)]
            if limit is not None:
                layers = self.add(layers, key, self.file, (component, name), limit)
        else:
            layers = self.chain(key, None)
            override = limit.targets.get(target) if limit is not None else None
            if override is not None:
                loc = (component, name, "targets", target)
                layers = self.add(layers, key, self.file, loc, override)
        self._layers[key, target] = layers
        return layers

    def add(
        self,
        below: list[_Layer],
        key: str,
        file: str,
        loc: Loc,
        limit: Limit,
        keys: Mapping[str, str] | None = None,
    ) -> list[_Layer]:
        """``below`` with ``limit`` on top; its levels checked alone, then in the whole."""
        spec = CHECKS[key]
        layer = _Layer(file, loc, direction=limit.direction, keys=keys or {})
        given = limit.model_fields_set & {*LEVELS, "direction"}
        if spec.kind == "state":
            if given:
                message = f"{key} is a yes/no check: it takes no warn/crit"
                self.problems.append(line(file, loc, message))
            return below
        layers = [*below, layer]
        direction = _fold(layers, spec)[2][0]
        for level in LEVELS:
            if level not in limit.model_fields_set:
                continue
            written = getattr(limit, level)
            try:
                value = None if written is None else units.parse(written, spec.kind)
            except units.UnitError as exc:
                self.problems.append(line(file, layer.at(level), str(exc)))
                layer.broken = True
                continue
            layer.levels[level] = value
            problem = None if value is None else _out_of_range(key, spec, value, direction)
            if problem:
                self.problems.append(line(file, layer.at(level), problem))
                layer.broken = True
        if not any(below_or_this.broken for below_or_this in layers):
            problem = _order(key, spec, layers)
            if problem:
                self.problems.append(problem)
        return layers


_From = tuple[float | None, int]  # a resolved level and the index of the layer that set it


def _fold(layers: list[_Layer], spec: Spec) -> tuple[_From, _From, tuple[Direction, int]]:
    """Resolved warn, crit and direction, each with the index of the layer that set it."""
    warn: _From = (spec.warn, 0)
    crit: _From = (spec.crit, 0)
    direction: tuple[Direction, int] = (spec.direction, 0)
    for index, layer in enumerate(layers):
        if "warn" in layer.levels:
            warn = (layer.levels["warn"], index)
        if "crit" in layer.levels:
            crit = (layer.levels["crit"], index)
        if layer.direction and layer.direction != direction[0]:
            direction = (layer.direction, index)
    return warn, crit, direction


def _shown(value: float, kind: units.Kind) -> str:
    """A level as written (``80 %``, ``14 days``), not as a report rounds a measurement."""
    if kind in ("percent", "days", "number"):
        return f"{value:g}" + {"percent": " %", "days": " days", "number": ""}[kind]
    return units.format_value(value, kind)


def _out_of_range(key: str, spec: Spec, value: float, direction: Direction) -> str | None:
    """Why a level outside what ``key`` can measure never fires, or always does."""
    if spec.max is not None and value > spec.max:
        never = direction == "above"
    elif spec.min is not None and value < spec.min:
        never = direction == "below"
    else:
        return None
    low = spec.min if spec.min is not None else -math.inf
    if spec.max is not None and spec.kind == "percent":
        what = f"a share of capacity ({low:g}-{spec.max:g} %)"
    elif spec.max is not None:
        what = f"between {low:g} and {spec.max:g}"
    else:
        what = "never negative" if low == 0 else f"never below {low:g}"
    effect = "can never be reached" if never else "would fire on every value"
    return f"{_shown(value, spec.kind)} {effect}: {key} is {what}"


def _order(key: str, spec: Spec, layers: list[_Layer]) -> str | None:
    """warn past crit for the direction, blamed on the top layer when it made the conflict."""
    (warn, warn_at), (crit, crit_at), (direction, direction_at) = _fold(layers, spec)
    top = len(layers) - 1
    if warn is None or crit is None or top not in (warn_at, crit_at, direction_at):
        return None  # no conflict, or one the layer below already has (and is reported for)
    if warn_at == 0 and crit_at != 0:
        return None  # the default warn, overtaken by a crit you set: dropped (see resolve)
    if _past(warn, crit, direction):
        layer = layers[top]
        involved = [
            name
            for name, at in (("warn", warn_at), ("crit", crit_at), ("direction", direction_at))
            if at == top
        ]
        loc = layer.at(involved[0]) if len(involved) == 1 else layer.loc
        w, c = _shown(warn, spec.kind), _shown(crit, spec.kind)
        worse = "above" if direction == "above" else "below"
        better = "below" if direction == "above" else "above"
        if crit_at == top and warn_at != top:
            text = f"crit {c} is {better} warn {w} ({layers[warn_at].named(layer)})"
        else:
            source = "" if crit_at == top else f" ({layers[crit_at].named(layer)})"
            text = f"warn {w} is {worse} crit {c}{source}"
        rule = f"warn must be {better} crit"
        if direction == "below":
            rule += ' (direction "below": lower is worse)'
        return line(layer.file, loc, f"{text}: {rule}")
    return None


def validate_levels(
    limits: Mapping[str, LimitWithTargets],
    file: str,
    inventory_file: str,
    targets: Iterator[tuple[Loc, Target]],
) -> list[str]:
    """Every level of thresholds.toml and of the inventory, alone and layered, can fire."""
    levels = _Levels(limits, file)
    for key, limit in limits.items():
        levels.chain(key, None)
        for name in limit.targets:
            levels.chain(key, name)
    for loc, target in targets:
        for inline in target.inline_levels():
            if inline.key not in CHECKS:
                continue
            below = levels.chain(inline.key, target.name)
            where_ = (*loc, *inline.where)
            levels.add(below, inline.key, inventory_file, where_, inline.limit, inline.keys)
    return levels.problems
