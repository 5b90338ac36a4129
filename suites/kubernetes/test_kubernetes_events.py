"""Runbook: "Error rate analysis" for Kubernetes - `kubectl get events -A --field-selector
type!=Normal`: warnings of the last day, counted by reason and object, the top messages."""

import pytest

from opscheck.probes import kubernetes_network as probes

pytestmark = [pytest.mark.kubernetes, pytest.mark.errors, pytest.mark.morning]


def test_warning_events(kubernetes, kubernetes_target, limits):
    """Events not Normal within `events_window` (24h): more than 10 WARN, more than 50 CRIT;
    counted by reason and object, top messages folded."""
    limits.check(
        "kubernetes.warning_events",
        probes.warning_events(kubernetes, kubernetes_target.events_window),
    )
