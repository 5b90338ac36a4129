"""``[[http]]``: an HTTP(S) endpoint, its expected answer and the JSON fields it reports."""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from . import urls
from .base import InlineLevels, NumberLimit, Target, Texts, unique
from .json_checks import JsonCheck, json_check_levels

JsonValue = str | int | float | bool

# RFC 9110 field names are tokens; requests refuses a value with a line break or leading space
# (InvalidHeader, echoing the value) and http.client one with other control characters.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_BOOLEAN_WORDS = ("yes", "no", "true", "false", "on", "off")


def _status(code: int) -> int:
    if not 100 <= code <= 599:
        raise ValueError(f"expected an HTTP status code 100-599, got {code}")
    return code


def _header_name(name: str) -> str:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(
            f"expected a header name of letters, digits and - such as 'X-Api-Key', got {name!r}"
        )
    return name


def _header_value(value: str) -> str:
    """A value requests can send, judged without showing it: it may hold a secret, which
    redaction would miss once escaped (``'…\\n'``)."""
    bad = next((c for c in value if c in "\r\n" or (ord(c) < 32 and c != "\t")), None)
    if bad is not None:
        what = "a line break" if bad in "\r\n" else f"the control character {bad!r}"
        raise ValueError(
            f"expected a header value on one line, got one with {what} (from a variable "
            "ending in a newline?)"
        )
    if value[:1].isspace():
        raise ValueError("expected a header value without leading spaces, got one with them")
    return value


class HttpTarget(Target):
    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH"] = "GET"
    # The request: query parameters and a body (JSON or text) for POST, PUT or PATCH.
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)
    json_body: dict[str, Any] | list[Any] | None = None
    data: str | None = None
    expect_status: Annotated[list[Annotated[int, AfterValidator(_status)]], unique("status")] = (
        Field(default_factory=list)
    )
    contains: Texts = Field(default_factory=list)
    not_contains: Texts = Field(default_factory=list)
    json_fields: dict[str, JsonValue] = Field(default_factory=dict, alias="json")
    json_limits: dict[str, NumberLimit] = Field(default_factory=dict)
    json_checks: list[JsonCheck] = Field(default_factory=list)  # JMESPath assertions
    headers: dict[
        Annotated[str, AfterValidator(_header_name)], Annotated[str, AfterValidator(_header_value)]
    ] = Field(default_factory=dict)
    samples: int = Field(default=10, ge=0, le=1000)
    verify: bool | str = True
    tls: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        urls.checked(
            url,
            ("http", "https"),
            "an http:// or https:// URL",
            'send them in headers, e.g. Authorization = "Basic ${API_BASIC_AUTH}"',
        )
        return url

    @field_validator("contains", "not_contains")
    @classmethod
    def _texts(cls, texts: list[str]) -> list[str]:
        if "" in texts:
            raise ValueError("expected non-empty text (every body contains ''), got ''")
        return texts

    @field_validator("verify")
    @classmethod
    def _trust(cls, verify: bool | str) -> bool | str:
        """``verify`` is true, false or a PEM bundle of the CAs to trust, loaded here as the
        checks load it: a word such as ``"yes"`` is not taken as a file name."""
        if isinstance(verify, bool):
            return verify
        if verify.lower() in _BOOLEAN_WORDS:
            raise ValueError(
                f"expected true, false or the path of a CA bundle, got {verify!r} "
                "(write true or false without quotes)"
            )
        path = os.path.expanduser(verify)
        if not os.path.isfile(path):
            why = "a directory" if os.path.isdir(path) else "no such file"
            raise ValueError(f"expected the path of a CA bundle (PEM file), got {verify!r} ({why})")
        try:
            ssl.create_default_context(cafile=path)
        except ssl.SSLError:
            raise ValueError(
                f"expected a CA bundle of PEM certificates, got {verify!r} (no certificate "
                "in it that OpenSSL can load)"
            ) from None
        except OSError as exc:
            raise ValueError(
                f"expected a readable CA bundle, got {verify!r} ({exc.strerror})"
            ) from None
        return verify

    @field_validator("tls")
    @classmethod
    def _tls_for_https(cls, tls: bool | None, info: ValidationInfo) -> bool | None:
        url = info.data.get("url", "")
        if tls and url.startswith("http://"):
            raise ValueError(
                "expected false or no tls for an http:// URL (it has no certificate), got true"
            )
        return tls

    @model_validator(mode="after")
    def _body_with_method(self) -> HttpTarget:
        if self.json_body is not None and self.data is not None:
            raise ValueError("expected json_body or data (one request body), got both")
        if (self.json_body is not None or self.data is not None) and self.method in ("GET", "HEAD"):
            which = "json_body" if self.json_body is not None else "data"
            raise ValueError(
                f'expected method = "POST", "PUT" or "PATCH" to send {which}, got {self.method}'
            )
        return self

    @property
    def checks_tls(self) -> bool:
        return self.tls if self.tls is not None else self.url.startswith("https://")

    def inline_levels(self) -> Iterator[InlineLevels]:
        for path, limit in self.json_limits.items():
            yield InlineLevels("http.json_limits", ("json_limits", path), limit)
        yield from json_check_levels("http.json_value", ("json_checks",), self.json_checks)
