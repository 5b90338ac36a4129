"""Runbook: "Check Redis" - `redis-cli ping` answers, and a replica still follows its master."""

import pytest

from opscheck.probes import redis as probes

pytestmark = [pytest.mark.redis, pytest.mark.health, pytest.mark.morning, pytest.mark.midday]


@pytest.mark.evening
def test_redis_reachable(redis, limits):
    """`redis-cli ping` answers PONG; the version and role are in the measurement."""
    ok, text = probes.ping(redis)
    limits.expect("redis.reachable", ok, text, "PONG")


def test_replication_link_up(redis, limits):
    """`redis-cli info replication`: a replica's `master_link_status` is up."""
    ok, text = probes.replication(redis)
    limits.expect("redis.replication", ok, text, "master, or replica with its link up")
