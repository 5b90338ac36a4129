"""Runbook: "Verify application health" - `curl -f https://api/health/ready` and its body."""

import pytest

from opscheck import Measurement
from opscheck.judge import ProbeError
from opscheck.probes import http as probes

pytestmark = [pytest.mark.http, pytest.mark.health, pytest.mark.morning, pytest.mark.midday]


def test_status_expected(endpoint, http_target, limits):
    """The endpoint answers with the expected status (default any 2xx, as `curl -f`)."""
    response = endpoint.response()
    expected = " or ".join(map(str, http_target.expect_status)) or "2xx"
    limits.expect("http.status", probes.status_ok(http_target, response.status_code),
                  f"{http_target.method} {http_target.url} answered {response.status_code} "
                  f"{response.reason} (expected {expected})", expected,
                  detail=f"body: {response.text[:300]!r}")


def test_json_fields_expected(endpoint, http_target, limits):
    """Each field in `json` has its expected value (`jq '.status'` = "healthy")."""
    if not http_target.json_fields:
        pytest.skip(f"no json fields listed for {http_target.name}")
    document = probes.json_document(endpoint.response())
    wrong = []
    for path, expected in http_target.json_fields.items():
        try:
            found = probes.lookup(document, path)
        except KeyError:
            wrong.append(f"{path} missing (expected {expected!r})")
            continue
        if found != expected:
            wrong.append(f"{path} = {found!r} (expected {expected!r})")
    fields = ", ".join(f"{p} = {v!r}" for p, v in http_target.json_fields.items())
    limits.expect("http.json", not wrong, "; ".join(wrong) or fields, fields)


def test_json_fields_within_limits(endpoint, http_target, limits):
    """Numeric fields in `json_limits` stay within their levels (`jq '.connections'` < 80)."""
    if not http_target.json_limits:
        pytest.skip(f"no json_limits listed for {http_target.name}")
    document = probes.json_document(endpoint.response())
    with limits.batch():
        for path, limit in http_target.json_limits.items():
            try:
                value = probes.lookup(document, path)
            except KeyError:
                raise ProbeError(f"{http_target.url}: field {path} is missing") from None
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ProbeError(f"{http_target.url}: field {path} = {value!r} is not a number")
            limits.check("http.json_limits", Measurement(value, subject=path), limit)


def test_body_contains(endpoint, http_target, limits):
    """The body contains each text in `contains` (`curl -s ... | grep -q ok`)."""
    if not http_target.contains:
        pytest.skip(f"no contains text listed for {http_target.name}")
    body = endpoint.response().text
    missing = [text for text in http_target.contains if text not in body]
    limits.expect("http.contains", not missing,
                  f"body lacks {', '.join(map(repr, missing))}" if missing else "all present",
                  "contains " + ", ".join(map(repr, http_target.contains)),
                  detail=f"body: {body[:300]!r}" if missing else "")
