"""Runbook: "Verify application health" - `curl -f https://api/health/ready` and its body."""

import pytest

from opscheck import Measurement
from opscheck.probes import http as probes

pytestmark = [pytest.mark.http, pytest.mark.health, pytest.mark.morning, pytest.mark.midday]


def test_status_expected(endpoint, http_target, limits):
    """The endpoint answers with the expected status (default any 2xx, as `curl -f`)."""
    response = endpoint.response()
    expected = " or ".join(map(str, http_target.expect_status)) or "2xx"
    ok = probes.status_ok(http_target, response.status_code)
    answered = f"{response.status_code} {response.reason or ''}".rstrip()
    limits.expect(
        "http.status",
        ok,
        f"{http_target.method} {http_target.url} answered {answered} (expected {expected})",
        expected,
        detail="" if ok else f"body: {endpoint.excerpt(response.text)}",
    )


@pytest.mark.applies_to("json_fields")
def test_json_fields_expected(endpoint, http_target, limits):
    """Each field in `json` has its expected value (`jq '.status'` = "healthy")."""
    document = probes.json_document(endpoint)
    wrong = []
    for path, expected in http_target.json_fields.items():
        try:
            found = probes.lookup(document, path)
        except KeyError:
            wrong.append(f"{path} missing (expected {expected!r})")
            continue
        if not probes.same_value(found, expected):
            wrong.append(f"{path} = {found!r} (expected {expected!r})")
    fields = ", ".join(f"{p} = {v!r}" for p, v in http_target.json_fields.items())
    limits.expect("http.json", not wrong, "; ".join(wrong) or fields, fields)


@pytest.mark.applies_to("json_limits")
def test_json_fields_within_limits(endpoint, http_target, limits):
    """Numeric fields in `json_limits` stay within their levels (`jq '.connections'` < 80)."""
    document = probes.json_document(endpoint)
    with limits.batch():  # one failure listing every field out of bounds, missing or not numeric
        for path, limit in http_target.json_limits.items():
            try:
                value = probes.lookup(document, path)
            except KeyError:
                limits.expect("http.json_limits", False, f"{path} missing", "a number")
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                limits.expect("http.json_limits", False, f"{path} = {value!r}", "a number")
                continue
            limits.check("http.json_limits", Measurement(value, subject=path), limit)


@pytest.mark.applies_to("contains")
def test_body_contains(endpoint, http_target, limits):
    """The body contains each text in `contains` (`curl -s ... | grep -q ok`)."""
    body = endpoint.response().text
    missing = [text for text in http_target.contains if text not in body]
    limits.expect(
        "http.contains",
        not missing,
        f"body lacks {', '.join(map(repr, missing))}" if missing else "all present",
        "contains " + ", ".join(map(repr, http_target.contains)),
        detail=f"body: {endpoint.excerpt(body)}" if missing else "",
    )
