"""Runbook: "Backup verification" for Redis - `redis-cli info persistence`: snapshots and the
append-only file are written. A Redis without persistence (a cache) skips with the reason."""

import pytest

from opscheck.probes import redis as probes

pytestmark = [pytest.mark.redis, pytest.mark.backup, pytest.mark.morning, pytest.mark.evening]


def test_snapshots_succeed(redis, limits):
    """`rdb_last_bgsave_status:ok`, and changes wait < 2 h for a snapshot (crit 26 h)."""
    saved, unsaved = probes.last_bgsave(redis), probes.unsaved_changes_age(redis)
    with limits.batch():
        limits.check("redis.rdb_last_bgsave", saved)
        limits.check("redis.unsaved_changes_age", unsaved)


def test_aof_writes_succeed(redis, limits):
    """With `appendonly yes`: `aof_last_write_status:ok` and `aof_last_bgrewrite_status:ok`."""
    aof = probes.aof(redis)
    limits.check("redis.aof", aof)
