"""Runbook: "Backup verification" for Redis - `redis-cli info persistence`: snapshots and the
append-only file are written. A Redis without persistence (a cache) skips with the reason."""

import pytest

from opscheck.probes import redis as probes

pytestmark = [pytest.mark.redis, pytest.mark.backup, pytest.mark.morning, pytest.mark.evening]


def test_snapshots_succeed(redis, redis_target, limits):
    """`rdb_last_bgsave_status:ok`, and changes wait < 2 h for a snapshot (crit 26 h)."""
    rdb = probes.snapshots(redis)
    if rdb.off:
        pytest.skip(f"{redis_target.name}: {rdb.off}")
    with limits.batch():
        limits.expect("redis.rdb_last_bgsave", rdb.ok, rdb.status, "rdb_last_bgsave_status:ok")
        limits.check("redis.unsaved_changes_age", rdb.unsaved)


def test_aof_writes_succeed(redis, redis_target, limits):
    """With `appendonly yes`: `aof_last_write_status:ok` and `aof_last_bgrewrite_status:ok`."""
    enabled, ok, text = probes.aof(redis)
    if not enabled:
        pytest.skip(f"{redis_target.name}: {text}")
    limits.expect("redis.aof", ok, text, "aof_last_write_status:ok, aof_last_bgrewrite_status:ok")
