"""Runbook: "Error rate analysis" for Redis - `redis-cli info stats`: clients turned away at
maxclients and keys thrown out at maxmemory. Both are counters since start: any is worth a
warning, and the capacity checks tell whether it is happening now."""

import pytest

from opscheck.probes import redis as probes

pytestmark = [pytest.mark.redis, pytest.mark.errors, pytest.mark.morning]


def test_no_rejected_connections(redis, limits):
    """`rejected_connections` is 0: no client was refused at maxclients since start."""
    limits.check("redis.rejected_connections", probes.rejected_connections(redis))


def test_no_evicted_keys(redis, limits):
    """`evicted_keys` is 0: no key was evicted at maxmemory since start."""
    limits.check("redis.evicted_keys", probes.evicted_keys(redis))
