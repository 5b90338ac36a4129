"""Runbook: "df -h trend", "database size growth" - judged from the history of earlier runs.

Days until full from a linear fit over the window, and growth since yesterday or a week ago
(opscheck/probes/growth.py); this run's own values join the history at its end."""

import pytest

from opscheck.probes import growth as probes

pytestmark = [pytest.mark.growth, pytest.mark.capacity]


@pytest.mark.morning
@pytest.mark.weekly
@pytest.mark.applies_to("judges_days", what="has a capacity (a percentage, or full)")
def test_growth_days_until_full_above_limit(growth, limits):
    """Days until full at the growth of the window (linear fit): warn below 14, crit below 7."""
    limits.check(
        "growth.days_until_full",
        probes.days_until_full(growth),
        growth.target.levels("days_until_full"),
    )


@pytest.mark.morning
@pytest.mark.applies_to("per_day", what="sets per_day")
def test_growth_per_day_below_limit(growth, limits):
    """Growth since the value a day before, in %, below the entry's `per_day` levels."""
    limits.check(
        "growth.per_day_pct", probes.per_period(growth, 1), growth.target.levels("per_day")
    )


@pytest.mark.weekly
@pytest.mark.applies_to("per_week", what="sets per_week")
def test_growth_per_week_below_limit(growth, limits):
    """Growth since the value a week before, in %, below the entry's `per_week` levels."""
    limits.check(
        "growth.per_week_pct", probes.per_period(growth, 7), growth.target.levels("per_week")
    )
