"""The one redaction layer: every secret of the run, in every form a target may echo it back,
is ``***`` in every output (reports, terminal, configuration errors).

The run's secrets are registered when its configuration is loaded (``Config.secrets``, the
values of ``${VAR}`` references and of the variables ``*_env`` keys name); the set is kept, not
copied, so values added to it later (the standard AWS variables an S3 target falls back to)
are redacted too. A secret is replaced as written, without its trailing newline, and encoded
the ways a server or a library repeats it: URL-encoded, base64 (also inside a longer base64
text such as ``Basic base64(user:secret)``: at each of the three byte alignments, the
characters that depend on the secret alone), JSON-, HTML- and Python-repr-escaped, and each of
those escaped once more (a JSON body shown with ``repr``).

A text cut short must not keep a secret's start: ``clip`` redacts before it cuts, and
``redact`` also masks the start of a secret right before an ellipsis and its end right after
one, which is how pytest (``saferepr``, in a traceback's arguments and locals) and ``reprlib``
cut long values: ``'cnry-4f...9a2c'``.
"""

from __future__ import annotations

import base64
import html
import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Any, TextIO
from urllib.parse import quote, quote_plus

MASK = "***"
_PIECE = 4  # the shortest start or end of a secret masked at an ellipsis, or base64 part kept
_ELLIPSIS = re.compile(r"\.\.\.|…")

_registered: list[set[str]] = []  # each run's live set of secrets (runs may nest in tests)
_lock = threading.Lock()


def register(secrets: set[str]) -> None:
    """Redact ``secrets`` everywhere from now on, including values added to the set later."""
    with _lock:
        _registered.append(secrets)


def unregister(secrets: set[str]) -> None:
    """Stop redacting a run's secrets (its end), unless another run registered the same set."""
    with _lock:
        for index, known in enumerate(_registered):
            if known is secrets:
                del _registered[index]
                return


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every registered secret (and each of ``secrets``) replaced by ``***``, in
    each of its encodings, and a secret's start or end cut at an ellipsis masked."""
    table = _table(secrets)
    return text if table is None or not text else table.redact(text)


def clip(text: str, limit: int, secrets: Iterable[str] = ()) -> str:
    """The first ``limit`` characters of ``text``, redacted before it is cut: the cut cannot
    leave a secret's start behind."""
    return redact(text, secrets)[:limit]


def scrub(value: Any, secrets: Iterable[str] = ()) -> Any:
    """``value`` with every string in it redacted: lists, tuples and dicts are copied, the
    dataclasses pytest describes a failure with (traceback entries, their arguments and locals,
    the crash line) are redacted in place; anything else is left as it is."""
    table = _table(secrets)
    return value if table is None else _scrub(value, table, set())


def _scrub(value: Any, table: _Table, seen: set[int]) -> Any:
    if isinstance(value, str):
        return table.redact(value)
    if isinstance(value, list | tuple):
        items = [_scrub(item, table, seen) for item in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, dict):
        return {k: _scrub(v, table, seen) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type) and id(value) not in seen:
        seen.add(id(value))  # the last of a chain of tracebacks is also the report's own
        for attribute in fields(value):
            current = getattr(value, attribute.name)
            clean = _scrub(current, table, seen)
            if clean is not current:
                object.__setattr__(value, attribute.name, clean)  # also a frozen one
    return value


# -- the forms of the secrets ------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    """The forms of one set of secrets, and the texts already redacted with them (a report's
    properties repeat in each of its test's phases)."""

    forms: tuple[str, ...]  # longest first: a form inside a longer one goes with it
    longest: int
    starts: dict[str, list[str]]  # the first _PIECE characters of a form -> forms
    ends: dict[str, list[str]]  # the last _PIECE characters of a form -> forms
    done: dict[str, str] = field(default_factory=dict)

    def redact(self, text: str) -> str:
        clean = self.done.get(text)
        if clean is None:
            clean = text
            for form in self.forms:
                if form in clean:
                    clean = clean.replace(form, MASK)
            if "..." in clean or "…" in clean:
                clean = _mask_cut(clean, self)
            if len(self.done) > 20_000:
                self.done.clear()
            if len(text) < 4096:
                self.done[text] = clean
        return clean


_cache: dict[frozenset[str], _Table] = {}


def _table(extra: Iterable[str]) -> _Table | None:
    """The forms of the registered secrets and ``extra``, worked out once per set of them."""
    with _lock:
        secrets = frozenset(s for known in _registered for s in list(known) if s)
    secrets |= frozenset(s for s in extra if s)
    if not secrets:
        return None
    table = _cache.get(secrets)
    if table is None:
        forms = sorted({f for s in secrets for f in _forms(s)}, key=len, reverse=True)
        starts: dict[str, list[str]] = {}
        ends: dict[str, list[str]] = {}
        for form in forms:
            if len(form) > _PIECE:
                starts.setdefault(form[:_PIECE], []).append(form)
                ends.setdefault(form[-_PIECE:], []).append(form)
        table = _Table(tuple(forms), len(forms[0]), starts, ends)
        if len(_cache) > 16:  # one set per run; tests run many
            _cache.clear()
        _cache[secrets] = table
    return table


def _escapes(text: str) -> set[str]:
    """``text`` as an encoding or an escaping repeats it."""
    json_escaped = json.dumps(text)[1:-1]
    return {
        quote(text, safe=""),
        quote(text),
        quote_plus(text),
        json_escaped,
        json_escaped.replace("/", "\\/"),  # PHP's json_encode and others escape the slash
        json.dumps(text, ensure_ascii=False)[1:-1],
        html.escape(text),
        html.escape(text, quote=False),
        html.escape(text).replace("&#x27;", "&#39;").replace("&quot;", "&#34;"),
        repr(text)[1:-1],
        text.encode("unicode_escape").decode("ascii"),  # repr inside the other quotes
        repr(text)[1:-1].replace('"', '\\"'),
    }


def _base64(text: str) -> set[str]:
    """``text`` in base64 (standard and URL-safe, padded or not), and the part of any longer
    base64 text holding it that depends on it alone, at each byte alignment."""
    data = text.encode()
    found = set()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode()
        found |= {whole, whole.rstrip("=")}
        for offset in range(3):
            encoded = encode(b"\0" * offset + data).decode().rstrip("=")
            first = -(-8 * offset // 6)  # the first character made of the secret's bits only
            last = 8 * (offset + len(data)) // 6
            if last - first >= _PIECE:
                found.add(encoded[first:last])
    return found


def _forms(secret: str) -> set[str]:
    """Every form of ``secret`` that is redacted: the text, its encodings, and their escapes."""
    bases = {secret, secret.strip(), secret.rstrip("\r\n")} - {""}
    found = set(bases)
    for base in bases:
        found |= _escapes(base) | _base64(base)
    for form in list(found):
        found |= _escapes(form)
    return {f for f in found if f}


# -- a secret cut at an ellipsis ---------------------------------------------------------------


def _mask_cut(text: str, table: _Table) -> str:
    """Mask a form's start (at least ``_PIECE`` characters) that ends right before ``...`` or
    ``…``, and a form's end that starts right after one."""
    spans: list[tuple[int, int]] = []
    for match in _ELLIPSIS.finditer(text):
        spans += _cut_start(text, match.start(), table) + _cut_end(text, match.end(), table)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    for start, end in reversed(merged):
        text = text[:start] + MASK + text[end:]
    return text


def _cut_start(text: str, at: int, table: _Table) -> list[tuple[int, int]]:
    """The longest start of a form ending at ``at``, as a span of ``text``."""
    for begin in range(max(0, at - table.longest), at - _PIECE + 1):
        for form in table.starts.get(text[begin : begin + _PIECE], ()):
            if form.startswith(text[begin:at]):
                return [(begin, at)]
    return []


def _cut_end(text: str, at: int, table: _Table) -> list[tuple[int, int]]:
    """The longest end of a form starting at ``at``, as a span of ``text``."""
    for stop in range(min(len(text), at + table.longest), at + _PIECE - 1, -1):
        for form in table.ends.get(text[stop - _PIECE : stop], ()):
            if form.endswith(text[at:stop]):
                return [(at, stop)]
    return []


def redacting(write: Callable[..., Any]) -> Callable[..., Any]:
    """``write(text, **kwargs)`` that redacts ``text`` first: a terminal's last step."""

    def write_redacted(text: str, *args: Any, **kwargs: Any) -> Any:
        return write(redact(text), *args, **kwargs)

    return write_redacted


class RedactingStream:
    """A text stream (``sys.stdout``) that redacts what is written to it, then passes it on;
    everything else is the stream's own."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(redact(text))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)
