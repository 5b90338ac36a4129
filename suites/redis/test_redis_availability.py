"""Runbook: "Check Redis" - `redis-cli ping` answers, and a replica still follows its master."""

import pytest

from opscheck.probes import redis as probes

pytestmark = [pytest.mark.redis, pytest.mark.health, pytest.mark.morning, pytest.mark.midday]


@pytest.mark.evening
def test_redis_reachable(redis, limits):
    """`redis-cli ping` answers PONG; the version and role are in the measurement."""
    limits.check("redis.reachable", probes.ping(redis))


def test_replication_link_up(redis, limits):
    """`redis-cli info replication`: a replica's `master_link_status` is up."""
    limits.check("redis.replication", probes.replication(redis))
