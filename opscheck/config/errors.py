"""Configuration mistakes as the operator reads them: one line per problem,
``file: key.path: expected ..., got ...``, with a did-you-mean where a name is close."""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

Loc = tuple[int | str, ...]


class ConfigError(Exception):
    """Configuration mistakes, already phrased for the operator: one line each."""

    @property
    def lines(self) -> list[str]:
        return str(self).splitlines()


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
_BOUNDS = {
    "greater_than_equal": ">=",
    "greater_than": ">",
    "less_than_equal": "<=",
    "less_than": "<",
}


def where(loc: Iterable[int | str]) -> str:
    """A key path as written in TOML: ``http[0].headers.Authorization``, ``schedule."host.x"``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if _BARE_KEY.match(part) else f'"{visible(part)}"'
            text += f".{key}" if text else key
    return text


def visible(text: str) -> str:
    """``text`` with what a terminal would not show written as an escape: a zero-width space in
    a key reads ``na\\u200bme``, not ``name``. Quotes and backslashes are escaped as TOML does."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif char.isprintable():
            out.append(char)
        else:
            out.append(repr(char)[1:-1])  # \u200b, \t, \x00
    return "".join(out)


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def close_to(word: str, known: Iterable[str]) -> str | None:
    """The known name ``word`` is most likely a typo of, if any."""
    found = difflib.get_close_matches(word, list(known), n=1)
    return found[0] if found else None


def line(file: str, loc: Loc, message: str) -> str:
    key = where(loc)
    return f"{file}: {key}: {message}" if key else f"{file}: {message}"


def redact(text: str, secrets: set[str]) -> str:
    """``text`` with every secret value replaced by ``***``, in every form a message may quote
    it (escaped, encoded, cut short): ``opscheck.redaction``, the one layer every output uses."""
    from opscheck import redaction

    return redaction.redact(text, secrets)


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


def _locate(model: Any, loc: Sequence[int | str]) -> _Location:
    """Follow pydantic's error location through the schema, dropping the tags it adds for each
    member of a union (``ports[0].int``) and for a table's key (``headers."X Token".[key]``),
    which name no key the user wrote."""
    found = _Location([], model, [])
    annotation = model
    for part in loc:
        if part == "[key]":
            continue
        annotation = _unwrap(annotation)
        if get_origin(annotation) in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            found.union = found.union or members
            annotation = next((m for m in members if getattr(m, "__name__", None) == part), None)
            continue
        found.path.append(part)
        found.parent = annotation
        annotation = _child(annotation, part)
    return found


def _words(annotation: Any) -> str:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a table"
    return _WORDS.get(get_origin(annotation) or annotation, str(annotation))


def _explain(error: Any, found: _Location, top_level: bool) -> str:
    """One pydantic error as ``expected ..., got ...``."""
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(found.path[-1])
        noun = "table" if top_level and len(found.path) == 1 else "key"
        fields = getattr(found.parent, "model_fields", {})
        known = [info.alias or name for name, info in fields.items()]
        close = close_to(key, known)
        hint = f"did you mean {close!r}?" if close else f"expected one of: {', '.join(known)}"
        return f"unknown {noun} ({hint})" if known else f"unknown {noun}"
    if kind == "missing":
        return "required key is missing"
    if kind == "too_short" and isinstance(value, str):  # min_length after a validator
        return f"expected a non-empty string, got {shown(value)}"
    if kind == "finite_number":  # before unions: `nan` is a float, just not a usable one
        return f"expected a finite number, got {shown(value)}"
    if found.union:
        # An integer is a number too: "a string or a number", not "..., an integer or a number".
        members = [m for m in found.union if not (m is int and float in found.union)]
        words = [_words(m) for m in members]
        expected = ", ".join(words[:-1]) + f" or {words[-1]}"
        return f"expected {expected}, got {shown(value)}"
    if kind in _EXPECTED:
        return f"expected {_EXPECTED[kind]}, got {shown(value)}"
    if kind == "literal_error":
        return f"expected {ctx['expected']}, got {shown(value)}"
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        return f"expected a number {_BOUNDS[kind]} {limit}, got {shown(value)}"
    message = re.sub(r"^(Value error|Assertion failed), ", "", error["msg"])
    if message.startswith("Input should be "):
        message = f"expected {message.removeprefix('Input should be ')}, got {shown(value)}"
    return message


def translate(
    file: str, model: Any, exc: ValidationError, prefix: Loc = (), skip: Iterable[Loc] = ()
) -> list[str]:
    """Every mistake pydantic found, one line each: ``file: key.path: expected ..., got ...``.

    A value pydantic checked against each member of a union gives one line, not one per member;
    errors at or under a location in ``skip`` (a ``${VAR}`` that is not set) are left out.
    """
    skipped = list(skip)
    lines: list[str] = []
    located = [(error, _locate(model, tuple(error["loc"]))) for error in exc.errors()]
    # `warn = nan` fails each member of `str | int | float`; "a finite number" is the one to say.
    not_finite = [found.path for error, found in located if error["type"] == "finite_number"]
    for error, found in located:
        loc = (*prefix, *found.path)
        if any(loc[: len(s)] == s for s in skipped):
            continue
        if found.path in not_finite and error["type"] != "finite_number":
            continue
        text = line(file, loc, _explain(error, found, top_level=not prefix))
        if text not in lines:
            lines.append(text)
    return lines
