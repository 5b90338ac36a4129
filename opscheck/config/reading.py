"""Reading a TOML file as the operator wrote it: UTF-8 without a byte-order mark, and no key or
value holding a character a terminal does not show (a zero-width space pasted from a chat
makes ``na\\u200bme`` read as ``name``). Each mistake is one line naming the file and the key."""

from __future__ import annotations

import codecs
import tomllib
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import Loc, line, shown, visible

_SAVE_AS = "save the file as UTF-8"
# Characters no one means to type: controls (a tab or line break is fine in a value), format
# characters (zero-width space, BOM, bidirectional overrides) and the line/paragraph separators.
_HIDDEN = {"Cc", "Cf", "Zl", "Zp"}


def read_toml(path: Path, problems: list[str]) -> dict[str, Any] | None:
    """The file's tables, cleaned of invisible characters; ``None`` when it cannot be read as
    UTF-8 TOML. Every mistake is appended to ``problems``."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        problems.append(f"{path}: cannot read: {exc.strerror}")
        return None
    text = _decode(path.name, data, problems)
    if text is None:
        return None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(_hidden_in_syntax(path.name, text) or f"{path.name}: not valid TOML: {exc}")
        return None
    cleaned: dict[str, Any] = _clean(path.name, raw, (), problems)
    return cleaned


def _decode(file: str, data: bytes, problems: list[str]) -> str | None:
    """TOML is UTF-8: say what the file is instead, and where, before tomllib tracebacks."""
    if data.startswith(codecs.BOM_UTF8):
        problems.append(
            f"{file}: expected UTF-8 text without a byte-order mark, got one (EF BB BF) at the "
            f"start ({_SAVE_AS} without BOM)"
        )
        return None
    if data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        problems.append(
            f"{file}: expected UTF-8 text, got UTF-16 (it starts with {data[:2].hex(' ').upper()})"
            f" ({_SAVE_AS})"
        )
        return None
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        problems.append(_not_utf8(file, data, exc.start))
        return None


def _not_utf8(file: str, data: bytes, start: int) -> str:
    """The first byte that is not UTF-8, where it is and what it likely was (Latin-1 or
    Windows-1252, the usual culprits), under the key that holds it when one does."""
    byte = data[start : start + 1]
    row = data.count(b"\n", 0, start) + 1
    column = len(data[data.rfind(b"\n", 0, start) + 1 : start].decode(errors="replace")) + 1
    guess = byte.decode("cp1252", errors="replace")
    meant = f" ({guess!r} in Windows-1252)" if guess.isprintable() and guess != "\ufffd" else ""
    got = f"the byte 0x{byte.hex().upper()}{meant} at line {row}, column {column}"
    return line(file, _holding(data, start), f"expected UTF-8 text, got {got} ({_SAVE_AS})")


def _holding(data: bytes, start: int) -> Loc:
    """The key path of the value (or the table of the key) that holds byte ``start``, if the
    file parses with the bytes that are not UTF-8 kept as stand-ins; none for a comment."""
    try:
        raw = tomllib.loads(data.decode(errors="surrogateescape"))
    except ValueError:  # TOMLDecodeError: a key or a comment holds it
        return ()
    stand_in = chr(0xDC00 + data[start])
    return next((loc for loc, text in _strings(raw, ()) if stand_in in text), ())


def _strings(raw: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    """Every key and text of ``raw``, each with the key path that holds it."""
    if isinstance(raw, dict):
        for key, value in raw.items():
            yield loc, key
            yield from _strings(value, (*loc, key))
    elif isinstance(raw, list):
        for index, value in enumerate(raw):
            yield from _strings(value, (*loc, index))
    elif isinstance(raw, str):
        yield loc, raw


def _hidden(text: str, key: bool) -> list[str]:
    """The characters of ``text`` a terminal does not show (in a key: any but a plain space)."""
    if key:
        return [c for c in text if not c.isprintable()]
    return [c for c in text if unicodedata.category(c) in _HIDDEN and c not in "\t\n\r"]


def _hidden_in_syntax(file: str, text: str) -> str | None:
    """Why the file is not TOML when an invisible character is: in a bare key (``po\\u200brts =
    22``) tomllib says "Expected '='", which names neither the key nor the character."""
    for row, content in enumerate(text.splitlines(), 1):
        hidden = _hidden(content, key=False)
        if hidden:
            column = content.index(hidden[0]) + 1
            return (
                f"{file}: expected visible characters, got {_named(hidden)} at line {row}, "
                f"column {column}: {visible(content.strip())[:60]}"
            )
    return None


def _named(chars: list[str]) -> str:
    char = chars[0]
    return f"U+{ord(char):04X} {unicodedata.name(char, '') or 'CONTROL CHARACTER'}"


def _clean(file: str, raw: Any, loc: Loc, problems: list[str]) -> Any:
    """``raw`` without invisible characters, a line in ``problems`` for each key or value that
    had any. The rest of the file is validated as if they were not there: one line each."""
    if isinstance(raw, list):
        return [_clean(file, value, (*loc, i), problems) for i, value in enumerate(raw)]
    if isinstance(raw, str):
        hidden = _hidden(raw, key=False)
        if not hidden:
            return raw
        message = f"expected text without invisible characters, got {shown(raw)} ({_named(hidden)})"
        problems.append(line(file, loc, message))
        return "".join(c for c in raw if c not in hidden)
    if not isinstance(raw, dict):
        return raw
    cleaned = {}
    for key, value in raw.items():
        hidden = _hidden(key, key=True)
        if hidden:
            message = (
                f'expected a key of visible characters, got "{visible(key)}" ({_named(hidden)})'
            )
            problems.append(line(file, (*loc, key), message))
            key = "".join(c for c in key if c not in hidden)
        cleaned[key] = _clean(file, value, (*loc, key), problems)
    return cleaned
