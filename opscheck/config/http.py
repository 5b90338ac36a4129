"""``[[http]]``: an HTTP(S) endpoint, its expected answer and the JSON fields it reports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from .base import InlineLevels, NumberLimit, Target, Texts

JsonValue = str | int | float | bool


class HttpTarget(Target):
    url: str
    method: Literal["GET", "HEAD", "POST"] = "GET"
    expect_status: list[int] = Field(default_factory=list)
    contains: Texts = Field(default_factory=list)
    json_fields: dict[str, JsonValue] = Field(default_factory=dict, alias="json")
    json_limits: dict[str, NumberLimit] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    samples: int = Field(default=10, ge=0, le=1000)
    verify: bool | str = True
    tls: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"expected an http:// or https:// URL, got {url!r}")
        return url

    @field_validator("expect_status")
    @classmethod
    def _status_codes(cls, codes: list[int]) -> list[int]:
        for code in codes:
            if not 100 <= code <= 599:
                raise ValueError(f"expected HTTP status codes 100-599, got {code}")
        return codes

    @property
    def checks_tls(self) -> bool:
        return self.tls if self.tls is not None else self.url.startswith("https://")

    def inline_levels(self) -> Iterator[InlineLevels]:
        for path, limit in self.json_limits.items():
            yield InlineLevels("http.json_limits", ("json_limits", path), limit)
