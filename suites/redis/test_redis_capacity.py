"""Runbook: "Resource utilization check" for Redis - `redis-cli info memory|clients|keyspace`."""

import pytest

from opscheck.probes import redis as probes

pytestmark = [pytest.mark.redis, pytest.mark.capacity]


@pytest.mark.morning
@pytest.mark.midday
def test_memory_used_below_limit(redis, limits):
    """Used memory < 90 % of maxmemory (of host memory when maxmemory is 0)."""
    limits.check("redis.memory_used_pct", probes.memory_used_pct(redis))


@pytest.mark.morning
@pytest.mark.weekly
def test_fragmentation_below_limit(redis, limits):
    """`mem_fragmentation_ratio` < 2.0, judged once the fragmentation wastes 100 MB."""
    limits.check("redis.fragmentation_ratio", probes.fragmentation(redis))


@pytest.mark.morning
@pytest.mark.midday
def test_clients_below_limit(redis, limits):
    """Connected clients < 90 % of maxclients."""
    limits.check("redis.clients_used_pct", probes.clients_used_pct(redis))


@pytest.mark.evening
@pytest.mark.weekly
def test_keys_per_db(redis, limits):
    """Keys per database (`redis-cli info keyspace`), for capacity planning; no default limit."""
    limits.check("redis.keys", probes.keys_per_db(redis))
