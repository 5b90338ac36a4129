"""What the targets read over a monitoring HTTP API share (``[[prometheus]]``,
``[[alertmanager]]``, ``[[metrics]]``): the URL, auth from the environment, TLS trust."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from . import urls
from .base import Target
from .http import HttpTarget


class ApiTarget(Target):
    url: str
    # Authorization: Bearer <token>, or basic auth as `username` with the password's variable.
    bearer_token_env: str | None = None
    username: str | None = Field(default=None, min_length=1)
    password_env: str | None = None
    verify: bool | str = True  # false, or the path of a CA bundle

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        urls.checked(
            url,
            ("http", "https"),
            "an http:// or https:// URL",
            "name the variables in bearer_token_env, or username and password_env",
        )
        return url

    @field_validator("verify")
    @classmethod
    def _trust(cls, verify: bool | str) -> bool | str:
        return HttpTarget._trust(verify)  # true, false or a readable PEM bundle, as [[http]]

    @model_validator(mode="after")
    def _one_auth(self) -> ApiTarget:
        if self.bearer_token_env and (self.username or self.password_env):
            raise ValueError("expected bearer_token_env or username + password_env, not both")
        if self.password_env and not self.username:
            raise ValueError("password_env needs username (HTTP basic auth)")
        return self
