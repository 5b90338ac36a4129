"""Replication: replicas keep up and replication slots do not pile up WAL on the primary."""

import pytest

from opscheck.probes import postgres as probes

pytestmark = [pytest.mark.postgres, pytest.mark.health, pytest.mark.morning, pytest.mark.midday]


def test_replication_lag_below_limit(postgres, postgres_target, limits):
    """Each replica is less than 1 GB of WAL behind, each slot retains less than 1 GB."""
    lags = probes.replication(postgres)
    if not lags:
        pytest.skip(
            f"{postgres_target.name}: no replica, no replication slot and not a standby: "
            "no replication to measure"
        )
    limits.check("postgres.replication_lag", lags)
