"""Runbook: "Verify application health" - `curl -f https://api/health/ready` and its body."""

import pytest

from opscheck.probes import http as probes

pytestmark = [pytest.mark.http, pytest.mark.health, pytest.mark.morning, pytest.mark.midday]


def test_status_expected(endpoint, limits):
    """The endpoint answers with the expected status (default any 2xx, as `curl -f`)."""
    limits.check("http.status", probes.status(endpoint))


@pytest.mark.applies_to("json_fields")
def test_json_fields_expected(endpoint, limits):
    """Each field in `json` has its expected value (`jq '.status'` = "healthy")."""
    limits.check("http.json", probes.json_fields(endpoint))


@pytest.mark.applies_to("json_limits")
def test_json_fields_within_limits(endpoint, http_target, limits):
    """Numeric fields in `json_limits` stay within their levels (`jq '.connections'` < 80)."""
    with limits.batch():  # one failure listing every field out of bounds, missing or not numeric
        for path, limit in http_target.json_limits.items():
            limits.check("http.json_limits", probes.json_number(endpoint, path), limit)


@pytest.mark.applies_to("contains")
def test_body_contains(endpoint, limits):
    """The body contains each text in `contains` (`curl -s ... | grep -q ok`)."""
    limits.check("http.contains", probes.contains(endpoint))


@pytest.mark.applies_to("not_contains")
def test_body_not_contains(endpoint, limits):
    """The body contains none of the texts in `not_contains` (`curl -s ... | grep -c ERROR` = 0)."""
    limits.check("http.not_contains", probes.not_contains(endpoint))


@pytest.mark.applies_to("json_checks")
def test_json_checks(endpoint, limits):
    """Each of `json_checks` (JMESPath) holds: values, empty lists, any/all/none, levels."""
    with limits.batch():  # one failure listing every check that does not hold
        for measured, limit in probes.json_assertions(endpoint):
            if limit is None:
                limits.check("http.json_check", measured)
            else:
                limits.check("http.json_value", measured, limit)
