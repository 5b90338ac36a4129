"""Runbook: "Is anything firing?" - `amtool alert query` (scoped, e.g. `namespace="prod"`),
by severity: any critical alert is CRIT, any warning WARN, unless the inventory says otherwise.
Silenced and inhibited alerts are listed, not counted."""

import pytest

from opscheck.probes import alertmanager as probes

pytestmark = [
    pytest.mark.alertmanager,
    pytest.mark.errors,
    pytest.mark.morning,
    pytest.mark.midday,
    pytest.mark.evening,
]


def test_no_alerts_firing(alertmanager, alertmanager_target, limits):
    """Firing alerts per severity: critical > 0 is CRIT, warning > 0 WARN (or `severities`)."""
    levels = alertmanager_target.severity_levels()
    with limits.batch():
        for measured in probes.firing(alertmanager, alertmanager_target):
            limit = levels.get(measured.subject)
            limits.check("alertmanager.firing_alerts", measured, limit)
