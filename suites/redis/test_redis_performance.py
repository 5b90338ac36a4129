"""Runbook: `redis-cli info stats | grep instantaneous_ops_per_sec`, and the weekly
`redis-cli info stats >> weekly-report.txt` (hit ratio)."""

import pytest

from opscheck.probes import redis as probes

pytestmark = [pytest.mark.redis, pytest.mark.performance, pytest.mark.morning, pytest.mark.weekly]


def test_hit_ratio_above_limit(redis, limits):
    """Keyspace hits > 80 % of lookups (`keyspace_hits`, `keyspace_misses`) since start."""
    limits.check("redis.hit_ratio", probes.hit_ratio(redis))


def test_ops_per_sec(redis, limits):
    """`instantaneous_ops_per_sec`, recorded for the trend; limits only if thresholds set them."""
    limits.check("redis.ops_per_sec", probes.ops_per_sec(redis))
