"""``[[websocket]]``: a WebSocket endpoint (``ws://`` or ``wss://``): its handshake, ping→pong
latency, certificate, and optionally a message sent and the reply expected."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field, field_validator, model_validator

from . import urls
from .base import Target
from .http import HttpTarget, _header_name, _header_value


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"expected a regular expression, got {pattern!r} ({exc})") from None
    return pattern


class WebsocketTarget(Target):
    url: str
    # Sent with the handshake; a value may be ``${VAR}`` from the environment, as [[http]]'s.
    headers: dict[
        Annotated[str, AfterValidator(_header_name)], Annotated[str, AfterValidator(_header_value)]
    ] = Field(default_factory=dict)
    # Authorization: Bearer <the value of this variable>.
    bearer_token_env: str | None = None
    verify: bool | str = True  # false, or the path of a CA bundle
    # Pings timed, one after the other, on the connection (0: no latency check).
    pings: int = Field(default=3, ge=0, le=100)
    # A text message sent after the handshake; the check waits for a reply.
    send: str | None = Field(default=None, min_length=1)
    # The reply contains this text, or matches this regular expression (re.search).
    expect: str | None = Field(default=None, min_length=1)
    expect_regex: Annotated[str, AfterValidator(_regex)] | None = Field(default=None, min_length=1)

    @field_validator("url")
    @classmethod
    def _ws_url(cls, url: str) -> str:
        urls.checked(
            url,
            ("ws", "wss"),
            "a ws:// or wss:// URL",
            'send them in headers, e.g. Authorization = "Basic ${WS_BASIC_AUTH}", or name the '
            "variable of a token in bearer_token_env",
        )
        return url

    @field_validator("verify")
    @classmethod
    def _trust(cls, verify: bool | str) -> bool | str:
        return HttpTarget._trust(verify)  # true, false or a readable PEM bundle, as [[http]]

    @model_validator(mode="after")
    def _consistent(self) -> WebsocketTarget:
        if self.bearer_token_env and any(h.lower() == "authorization" for h in self.headers):
            raise ValueError("expected bearer_token_env or an Authorization header, not both")
        if self.expect is not None and self.expect_regex is not None:
            raise ValueError("expected expect (a text) or expect_regex, not both")
        return self

    @property
    def checks_tls(self) -> bool:
        return self.url.startswith("wss://")

    @property
    def checks_reply(self) -> bool:
        """A message is sent, or a first message from the server is expected."""
        return bool(self.send or self.expect or self.expect_regex)
