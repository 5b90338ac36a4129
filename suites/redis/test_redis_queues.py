"""Runbook: "Queue depth monitoring" - "Queue depth < 100 items", "Queue Depth Alert (>1000
jobs)": the length of each job queue in `queues`."""

import pytest

from opscheck.probes import redis as probes

pytestmark = [
    pytest.mark.redis,
    pytest.mark.performance,
    pytest.mark.morning,
    pytest.mark.midday,
    pytest.mark.for_each("queues", "queue"),
]


def test_queue_depth_below_limit(redis, queue, limits):
    """Jobs waiting in the queue < 100 (warn), < 1000 (crit), or the queue's own levels."""
    limits.check("redis.queue_depth", probes.queue_depth(redis, queue), queue)
