"""Replication: replicas keep up and replication slots do not pile up WAL on the primary."""

import pytest

from opscheck.probes import postgres as probes

pytestmark = [pytest.mark.postgres, pytest.mark.health, pytest.mark.morning, pytest.mark.midday]


def test_replication_lag_below_limit(postgres, limits):
    """Each replica is less than 1 GB of WAL behind, each slot retains less than 1 GB."""
    lags = probes.replication(postgres)
    limits.check("postgres.replication_lag", lags)
