"""A read-only HTTP API of a monitoring server (Prometheus, Alertmanager, an app's ``/metrics``):
one kept-alive session per target, every request bounded as ``[[http]]``'s are (``timeout`` in
total, a capped body: ``probes.http.BoundedSession``), auth from the environment, GET only.

    api = Api("http://prom:9090", timeout=5, headers={"Authorization": "Bearer …"})
    api.get_json("/api/v1/query", {"query": "up"})   # the parsed JSON, or ProbeError / Lost

A server that answered before and now does not (a deadline passed, the connection broke) raises
``opscheck.session.Lost``: its target is down for the rest of the run. ``open`` is the first
request, whose failure raises ``Unreachable`` instead.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

from opscheck.config import secret
from opscheck.config.api import ApiTarget
from opscheck.judge import ProbeError
from opscheck.probes.http import MAX_BODY, BoundedSession, _gone, describe_error
from opscheck.redaction import clip
from opscheck.session import Lost, Unreachable

if TYPE_CHECKING:
    from requests import Response


def auth_headers(
    bearer_token: str | None = None, username: str | None = None, password: str | None = None
) -> dict[str, str]:
    """The ``Authorization`` header of a bearer token or of a user and password, if any."""
    if bearer_token:
        return {"Authorization": f"Bearer {bearer_token}"}
    if username is not None:
        pair = f"{username}:{password or ''}".encode()
        return {"Authorization": "Basic " + base64.b64encode(pair).decode()}
    return {}


def of_target(target: ApiTarget, timeout: float, headers: dict[str, str] | None = None) -> Api:
    """The client of an ``ApiTarget`` (``[[prometheus]]``, ``[[alertmanager]]``,
    ``[[metrics]]``): its URL and TLS trust, auth from the variables its keys name."""
    auth = auth_headers(secret(target, "bearer_token"), target.username, secret(target, "password"))
    return Api(target.url, timeout, {**(headers or {}), **auth}, target.verify)


class Api:
    """GET requests to ``base_url`` + a path, each within ``timeout`` in total."""

    def __init__(
        self,
        base_url: str,
        timeout: float,
        headers: dict[str, str] | None = None,
        verify: bool | str = True,
        max_body: int = MAX_BODY,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.verify = verify
        self.bounded = BoundedSession(timeout, {"Accept": "application/json", **(headers or {})})
        self.bounded.max_body = max_body
        self._answered = False  # once it has, a failure means it stopped answering

    def get(self, path: str, params: dict[str, Any] | None = None) -> Response:
        """The response to ``GET base_url + path``; any status (the caller judges it)."""
        url = self.base_url + path
        try:
            response = self.bounded.request("GET", url, self.verify, params=params)
        except Exception as exc:
            said = f"GET {url}: {describe_error(exc, self.timeout)}"
            if self._answered and _gone(exc):
                raise Lost(said) from None
            if not self._answered and _gone(exc):
                raise Unreachable(said) from None
            raise ProbeError(said) from None
        self._answered = True
        return response

    def get_json(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The parsed JSON body of a 2xx answer; anything else is a ``ProbeError`` that quotes
        the server's own words (Prometheus's ``error`` field, or the body's start)."""
        response = self.get(path, params)
        try:
            document = json.loads(response.content)
        except (ValueError, RecursionError):
            document = None
        if not 200 <= response.status_code < 300:
            reason = document.get("error") if isinstance(document, dict) else None
            said = reason or clip(response.text.strip(), 200) or response.reason
            raise ProbeError(f"GET {self.base_url}{path}: HTTP {response.status_code}: {said}")
        if document is None:
            raise ProbeError(f"GET {self.base_url}{path}: the answer is not JSON")
        return document

    def open(self, path: str) -> Api:
        """The first request (``path``: a cheap one such as ``/-/ready``): a refused or silent
        server makes the target unreachable; any answer at all counts as reachable."""
        self.get(path)
        return self

    def close(self) -> None:
        self.bounded.close()
