"""Every Redis check against real ``redis-server`` processes, healthy and really broken.

Each test starts its own servers (~20 ms each) from ``opscheck.testbed.redis`` and runs the real
suite in-process as the read-only ACL user, whose password comes from the environment. Broken
means broken for real: a stopped server, memory filled to maxmemory, keys evicted, clients
turned away at maxclients, a snapshot that cannot be written, a replica whose master is gone.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py

from opscheck.testbed import free_port
from opscheck.testbed.redis import READ_ONLY_ACL, RedisServer

REDIS = ("suites/redis",)
PASSWORD = "ro-Zq81xLmP4wK"  # the read-only user's; handed over as $REDIS_PASSWORD
CHECKS = 12  # tests in suites/redis per target, without its queues


@pytest.fixture
def start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., RedisServer]]:
    """Start a server with the read-only user ``opscheck``; all are stopped after the test."""
    monkeypatch.setenv("REDIS_PASSWORD", PASSWORD)
    with contextlib.ExitStack() as stack:

        def make(name: str = "cache", **settings: Any) -> RedisServer:
            server = stack.enter_context(RedisServer(tmp_path / name, **settings))
            server.add_reader("opscheck", PASSWORD)
            return server

        yield make


def block(server: RedisServer, name: str = "cache", **fields: Any) -> str:
    """The ``[[redis]]`` table of ``server`` as the read-only user."""
    return server.redis_block(
        name, username="opscheck", password_env="REDIS_PASSWORD", timeout="2s", **fields
    )


def said(result: dict[str, Any]) -> str:
    """What the operator reads for a test: its recorded message, else its failure text."""
    return str(result.get("message") or result.get("reason") or "")


def by_test(results: dict[str, dict[str, Any]], key: str) -> dict[str, Any]:
    """``{test name without its id: value}`` of one field of the results."""
    return {name.split("[")[0]: r.get(key) for name, r in results.items()}


# -- healthy -----------------------------------------------------------------------------------


def test_healthy_redis_passes_every_check_as_the_read_only_user(suite, start, tmp_path):
    server = start(save="3600 1", appendonly="yes")
    admin = server.admin()
    admin.rpush("emails", *range(5))
    admin.rpush("bull:embeddings:wait", *range(3))
    admin.zadd("bull:embeddings:prioritized", {"a": 1, "b": 2})
    admin.zadd("bull:embeddings:delayed", {"c": 1})
    admin.rpush("celery", 1, 2)
    admin.rpush("celery\x06\x169", 3)
    admin.rpush("rq:queue:default", 1)
    admin.xadd("events", {"n": 1})
    admin.set("hot", "1")
    for _ in range(9):
        admin.get("hot")
    admin.get("cold")  # 9 hits, 1 miss
    server.snapshot()
    queues = [
        {"key": "emails"},
        {"bullmq": "embeddings"},
        {"celery": "celery"},
        {"sidekiq": "mailers"},
        {"rq": "default"},
        {"key": "events"},
    ]
    junit = tmp_path / "junit.xml"
    result = suite.run(block(server, queues=queues), "", "-rA", f"--junitxml={junit}", paths=REDIS)
    results = suite.results()
    assert {n: r["outcome"] for n, r in results.items()} == dict.fromkeys(results, "passed"), {
        n: said(r) for n, r in results.items()
    }
    result.assert_outcomes(passed=CHECKS + len(queues))
    measured = {n.removeprefix("test_"): r["measured"] for n, r in results.items()}
    assert re.fullmatch(
        r"PONG from Redis \d+\.\d+\.\d+ \(standalone master, up .+\)",
        measured["redis_reachable[cache]"],
    )
    assert measured["replication_link_up[cache]"] == "master"
    assert re.fullmatch(
        r"\d+\.\d % of host memory used \(RSS .+ of .+; no maxmemory set\)",
        measured["memory_used_below_limit[cache]"],
    )
    # A near-empty Redis has a huge, meaningless ratio: reported, not judged.
    assert re.fullmatch(
        r"fragmentation \d+\.\d\d \(RSS .+ for .+ of data\): .+ above the data, "
        r"too little to judge",
        measured["fragmentation_below_limit[cache]"],
    )
    assert re.fullmatch(
        r"\d of 10000 clients connected \(0\.0 %\)", measured["clients_below_limit[cache]"]
    )
    assert measured["keys_per_db[cache]"] == "db0 9 keys (0 with a TTL)"
    assert measured["no_rejected_connections[cache]"].startswith(
        "0 connections rejected at maxclients 10000 (counted since start, "
    )
    assert measured["no_evicted_keys[cache]"].startswith("0 keys evicted (no maxmemory set; ")
    assert measured["hit_ratio_above_limit[cache]"].startswith("90.0 % hits (9 hits, 1 misses, ")
    assert re.fullmatch(r"\d+ ops/s", measured["ops_per_sec[cache]"])
    assert re.fullmatch(
        r"last background save ok; no unsaved changes \(last successful snapshot .+ ago\)",
        measured["snapshots_succeed[cache]"],
    )
    assert measured["aof_writes_succeed[cache]"] == "AOF writes and rewrites ok"
    assert measured["queue_depth_below_limit[cache/emails]"] == "emails 5 jobs waiting (list)"
    assert measured["queue_depth_below_limit[cache/bullmq:embeddings]"] == (
        "bullmq:embeddings 5 jobs waiting (wait 3 + paused 0 + prioritized 2)"
    )
    assert results["test_queue_depth_below_limit[cache/bullmq:embeddings]"]["detail"] == (
        "active 0, delayed 1, failed 0 (not counted)"
    )
    assert measured["queue_depth_below_limit[cache/celery:celery]"] == (
        "celery:celery 3 jobs waiting (priority 0: 2, priority 9: 1)"
    )
    assert measured["queue_depth_below_limit[cache/sidekiq:mailers]"] == (
        "sidekiq:mailers 0 (no such key)"
    )
    assert results["test_queue_depth_below_limit[cache/sidekiq:mailers]"]["detail"].startswith(
        "no key queue:mailers: Redis deletes an empty list"
    )
    assert measured["queue_depth_below_limit[cache/rq:default]"] == (
        "rq:default 1 job waiting (list in rq:queue:default)"
    )
    assert measured["queue_depth_below_limit[cache/events]"] == "events 1 job waiting (stream)"
    # The ACL was enough: Redis logged no command the user was refused...
    assert server.admin().acl_log() == []
    # ...and the password appears nowhere.
    written = result.stdout.str() + suite.json_path.read_text() + junit.read_text()
    assert PASSWORD not in written


def test_read_only_user_can_read_but_not_write_or_see_config(start):
    """The testbed's ACL line is the README's: the checks' commands pass, nothing else does."""
    server = start()
    assert READ_ONLY_ACL.startswith("ACL SETUSER opscheck on >PASSWORD resetkeys ")
    client = redis_py.Redis(port=server.port, username="opscheck", password=PASSWORD, protocol=2)
    try:
        assert client.ping()
        assert client.llen("anything") == 0
        refused = {
            "SET": lambda: client.set("x", "1"),
            "CONFIG GET": lambda: client.config_get("requirepass"),  # would hand out passwords
            "KEYS": lambda: client.keys(),
            "FLUSHALL": lambda: client.flushall(),
            "BGSAVE": lambda: client.bgsave(),
            "GET": lambda: client.get("x"),  # values are not ours to read
        }
        for command, call in refused.items():
            with pytest.raises(redis_py.exceptions.NoPermissionError):
                call()
                pytest.fail(f"the read-only user may run {command}")
    finally:
        client.close()


@pytest.mark.parametrize(
    ("table", "error"),
    [
        (
            'url = "redis://:hunter2@10.0.0.1:6379/0"',
            "redis[0].url: expected a URL without a password (name the variable that holds it "
            "in password_env)",
        ),
        (
            'queues = [{ key = "jobs", rq = "jobs" }]',
            "redis[0].queues[0]: expected exactly one of key, bullmq, sidekiq, celery, rq, "
            "got key, rq",
        ),
        (
            'queues = [{ sidekiq = "default", prefix = "app" }]',
            "redis[0].queues[0]: prefix applies to bullmq queues only",
        ),
        ('queues = [{ key = "jobs", crit = "1k" }]', "redis[0].queues[0].crit: expected a number"),
    ],
)
def test_inventory_mistakes_stop_the_run(suite, table, error):
    result = suite.run(f'[[redis]]\nname = "cache"\n{table}\n', "", paths=REDIS)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"inventory.toml: {error}" in result.stderr.str()
    assert "hunter2" not in result.stderr.str()


# -- unreachable -------------------------------------------------------------------------------


def test_redis_down_fails_connectivity_with_the_real_error_then_the_rest_at_once(suite, start):
    server = start()
    inventory = block(server, queues=[{"key": "emails"}])
    server.stop()
    result = suite.run(inventory, "", paths=REDIS)
    # The terminal counts the checks that point to the real error apart (opscheck.outage).
    assert result.parseoutcomes() == {"failed": 1, "unreachable": CHECKS}
    res = suite.results()
    port = server.port
    assert res["test_redis_reachable[cache]"]["reason"] == (
        f"cache: unreachable: redis://127.0.0.1:{port}/0: Error 111 connecting to "
        f"127.0.0.1:{port}. Connection refused."
    )
    for name, r in res.items():
        if name != "test_redis_reachable[cache]":
            assert r["outcome"] == "not_run", name
            assert r["reason"] == "not run: cache unreachable (see test_redis_reachable[cache])"


def test_silent_server_and_wrong_password_fail_once_each(suite, start, monkeypatch):
    server = start()
    silent = socket.socket()  # accepts TCP, never answers: a hung server or a firewall
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    monkeypatch.setenv("WRONG_PASSWORD", "not-the-Password-9")
    inventory = server.redis_block(
        "silent",
        f"redis://127.0.0.1:{silent.getsockname()[1]}/0",
        username="opscheck",
        password_env="REDIS_PASSWORD",
        timeout="1s",
    )
    inventory += server.redis_block("locked", username="opscheck", password_env="WRONG_PASSWORD")
    started = time.monotonic()
    try:
        result = suite.run(inventory, "", paths=REDIS)
    finally:
        silent.close()
    elapsed = time.monotonic() - started
    # No target has queues; the terminal counts the checks that point to the real error
    # apart (opscheck.outage).
    assert result.parseoutcomes() == {"failed": 2, "skipped": 1, "unreachable": 2 * (CHECKS - 1)}
    res = suite.results()
    assert re.fullmatch(
        r"silent: unreachable: redis://127\.0\.0\.1:\d+/0: no answer within 1 s \(.*[Tt]imeout.*\)",
        res["test_redis_reachable[silent]"]["reason"],
    ), res["test_redis_reachable[silent]"]["reason"]
    assert res["test_redis_reachable[locked]"]["reason"] == (
        f"locked: unreachable: {server.url}: invalid username-password pair or user is disabled."
    )
    assert elapsed < 4, "the silent server cost more than one timeout"
    assert "not-the-Password-9" not in result.stdout.str() + suite.json_path.read_text()


# -- capacity ----------------------------------------------------------------------------------


def test_memory_filled_near_maxmemory_fails(suite, start):
    server = start(maxmemory="4mb")
    server.fill(0.95)
    suite.run(block(server), "", "-k", "memory_used", paths=REDIS)
    memory = suite.results()["test_memory_used_below_limit[cache]"]
    assert memory["outcome"] == "failed"
    assert re.fullmatch(
        r"cache: 9\d\.\d % of maxmemory used \(4\.\d MB of 4\.2 MB, policy noeviction\) "
        r"> crit 90\.0 %",
        memory["message"],
    ), memory["message"]
    assert memory["detail"] == "at maxmemory with policy noeviction, writes fail with OOM errors"


def test_evicted_keys_warn_and_crit_where_a_queue_cannot_lose_any(suite, start):
    server = start(maxmemory="2mb", maxmemory_policy="allkeys-lru")
    evicted = server.evict()
    inventory = block(server, "cache") + block(server, "jobs")
    thresholds = "[redis.evicted_keys.targets.jobs]\ncrit = 0\n"
    suite.run(inventory, thresholds, "-k", "evicted", paths=REDIS)
    res = suite.results()
    cache, jobs = res["test_no_evicted_keys[cache]"], res["test_no_evicted_keys[jobs]"]
    assert (cache["outcome"], jobs["outcome"]) == ("warned", "failed")
    pattern = (
        r"{}: (\d+) keys evicted at maxmemory 2\.1 MB, policy allkeys-lru "
        r"\(counted since start, .+ ago\) > {} 0"
    )
    warned = re.fullmatch(pattern.format("cache", "warn"), cache["message"])
    assert warned, cache["message"]
    assert int(warned.group(1)) >= evicted
    assert re.fullmatch(pattern.format("jobs", "crit"), jobs["message"]), jobs["message"]
    assert "need maxmemory-policy noeviction" in jobs["detail"]


def test_clients_at_maxclients_fail_and_rejections_warn(suite, start):
    server = start(maxclients=4)
    held = server.hold_clients()
    try:
        suite.run(block(server), "", "-k", "rejected or clients", paths=REDIS)
    finally:
        for sock in held:
            sock.close()
    res = suite.results()
    clients = res["test_clients_below_limit[cache]"]
    assert clients["outcome"] == "failed"
    assert clients["message"] == "cache: 4 of 4 clients connected (100.0 %) > crit 90.0 %"
    rejected = res["test_no_rejected_connections[cache]"]
    assert rejected["outcome"] == "warned"
    assert re.fullmatch(
        r"cache: [2-9] connections rejected at maxclients 4 \(counted since start, .+ ago\) "
        r"> warn 0",
        rejected["message"],
    ), rejected["message"]


def test_real_fragmentation_fails_the_ratio(suite, start):
    server = start(enable_debug_command="local")
    server.fragment()
    suite.run(block(server), "", "-k", "fragmentation", paths=REDIS)
    frag = suite.results()["test_fragmentation_below_limit[cache]"]
    assert frag["outcome"] == "failed"
    match = re.fullmatch(
        r"cache: fragmentation (\d+\.\d\d) \(RSS \d+\.\d MB for \d+\.\d MB of data\) > crit 2",
        frag["message"],
    )
    assert match, frag["message"]
    assert float(match.group(1)) > 2
    assert re.fullmatch(r"\d+\.\d MB above the data", frag["detail"])


def test_keys_and_ops_per_sec_have_limits_only_when_set(suite, start):
    server = start()
    server.admin().mset({f"k{i}": i for i in range(50)})
    inventory = block(server).replace("/0", "/1")  # the target's own db is listed, even empty
    thresholds = (
        "[redis.keys]\ncrit = 10\n[redis.ops_per_sec]\nwarn = 1000000\ndirection = 'below'\n"
    )
    suite.run(inventory, "", "-k", "keys_per_db or ops_per_sec", paths=REDIS)
    res = suite.results()
    assert (
        res["test_keys_per_db[cache]"]["measured"]
        == "db0 50 keys (0 with a TTL); db1 0 keys (0 with a TTL)"
    )
    assert res["test_keys_per_db[cache]"]["threshold"] == "none"
    assert res["test_ops_per_sec[cache]"]["outcome"] == "passed"
    suite.run(inventory, thresholds, "-k", "keys_per_db or ops_per_sec", paths=REDIS)
    res = suite.results()
    assert (
        res["test_keys_per_db[cache]"]["message"] == "cache: db0 50 keys (0 with a TTL) > crit 10"
    )
    assert res["test_ops_per_sec[cache]"]["outcome"] == "warned"
    assert re.fullmatch(
        r"cache: \d+ ops/s < warn 1e\+06", res["test_ops_per_sec[cache]"]["message"]
    )


# -- performance -------------------------------------------------------------------------------


def test_hit_ratio_warns_on_misses_and_fails_past_a_crit_level(suite, start):
    server = start()
    admin = server.admin()
    admin.set("hot", "1")
    with admin.pipeline(transaction=False) as pipe:
        for i in range(40):
            pipe.get("hot" if i % 4 == 0 else f"missing:{i}")  # 10 hits, 30 misses
        pipe.execute()
    suite.run(block(server), "", "-k", "hit_ratio", paths=REDIS)
    ratio = suite.results()["test_hit_ratio_above_limit[cache]"]
    assert ratio["outcome"] == "warned"
    assert re.fullmatch(
        r"cache: 25\.0 % hits \(10 hits, 30 misses, counted since start, .+ ago\) < warn 80\.0 %",
        ratio["message"],
    ), ratio["message"]
    suite.run(block(server), '[redis.hit_ratio]\ncrit = "50%"\n', "-k", "hit_ratio", paths=REDIS)
    ratio = suite.results()["test_hit_ratio_above_limit[cache]"]
    assert ratio["outcome"] == "failed"
    assert ratio["message"].endswith("< crit 50.0 %")


# -- persistence -------------------------------------------------------------------------------


def test_persistence_off_skips_with_the_reason(suite, start):
    server = start()  # save "", appendonly no: a cache
    result = suite.run(block(server), "", "-k", "snapshots or aof", paths=REDIS)
    result.assert_outcomes(skipped=2)
    res = suite.results()
    assert re.fullmatch(
        r"cache: no RDB snapshot since the server started .+ ago: RDB snapshots look off",
        res["test_snapshots_succeed[cache]"]["reason"],
    )
    assert res["test_aof_writes_succeed[cache]"]["reason"] == "cache: AOF is off (appendonly no)"


def test_failed_background_save_fails_and_unsaved_changes_age(suite, start):
    server = start(save="3600 1")
    server.snapshot()
    server.admin().set("order:1", "new")
    time.sleep(1.05)  # the save time has whole seconds: the unsaved change is >= 1 s old
    server.fail_snapshot()  # the data directory is gone: even root cannot write the file
    thresholds = '[redis.unsaved_changes_age]\ncrit = "500ms"\n'
    suite.run(block(server), thresholds, "-k", "snapshots or reachable", paths=REDIS)
    res = suite.results()
    # Redis refuses PING while it cannot persist (stop-writes-on-bgsave-error), so the
    # connectivity check fails with its words; connected, the other checks still run.
    ping = res["test_redis_reachable[cache]"]
    assert ping["outcome"] == "failed"
    assert re.fullmatch(
        r"cache: Redis 7\.\d+\.\d+ \(standalone master, up .+\) refused PING: MISCONF Redis is "
        r"configured to save RDB snapshots, but it's currently unable to persist to disk\. .+",
        ping["message"],
    ), ping["message"]
    rdb = res["test_snapshots_succeed[cache]"]
    assert rdb["outcome"] == "failed"
    assert rdb["reason"].splitlines() == [
        "cache: last background save failed (rdb_last_bgsave_status:err; the reason is in the "
        "server's log): a restart loses every change since the last successful snapshot",
        rdb["reason"].splitlines()[1],
    ]
    assert re.fullmatch(
        r"cache: 1 change unsaved \(last successful snapshot \d\.\d s ago\) > crit 500 ms",
        rdb["reason"].splitlines()[1],
    ), rdb["reason"]


def test_failed_aof_rewrite_fails(suite, start):
    server = start(appendonly="yes")
    server.fail_aof_rewrite()
    suite.run(block(server), "", "-k", "aof", paths=REDIS)
    aof = suite.results()["test_aof_writes_succeed[cache]"]
    assert aof["outcome"] == "failed"
    assert aof["message"] == (
        "cache: last AOF rewrite failed (aof_last_bgrewrite_status:err) "
        "(the reason is in the server's log)"
    )


# -- replication -------------------------------------------------------------------------------


def test_replica_fails_when_its_master_is_down(suite, start):
    master = start("master", repl_diskless_sync_delay=0)  # the replica syncs at once, not in 5 s
    replica = start("replica", replicaof=f"127.0.0.1 {master.port}")
    replica.wait_for("the link to the master", lambda i: i["master_link_status"] == "up")
    never = start("orphan", replicaof=f"127.0.0.1 {free_port()}")  # its master never existed
    inventory = block(master, "master") + block(replica, "replica") + block(never, "orphan")
    suite.run(inventory, "", "-k", "replication", paths=REDIS)
    res = suite.results()
    assert re.fullmatch(
        rf"master with 1 replica\(s\) \(127\.0\.0\.1:{replica.port} online lag \d+ s\)",
        res["test_replication_link_up[master]"]["measured"],
    )
    assert re.fullmatch(
        rf"replica of 127\.0\.0\.1:{master.port}, link up \(last I/O \d+ s ago\)",
        res["test_replication_link_up[replica]"]["measured"],
    )
    orphan = res["test_replication_link_up[orphan]"]
    assert orphan["outcome"] == "failed"
    assert re.fullmatch(
        r"orphan: replica of 127\.0\.0\.1:\d+: link to the master down since the replica "
        r"started( \(initial sync in progress\))?",
        orphan["message"],
    ), orphan["message"]

    master.stop()
    replica.wait_for("the link to go down", lambda i: i["master_link_status"] == "down")
    suite.run(block(replica, "replica"), "", "-k", "replication", paths=REDIS)
    down = suite.results()["test_replication_link_up[replica]"]
    assert down["outcome"] == "failed"
    assert re.fullmatch(
        rf"replica: replica of 127\.0\.0\.1:{master.port}: link to the master down for "
        r"(\d+ ms|\d+\.\d s)( \(initial sync in progress\))?",
        down["message"],
    ), down["message"]


# -- queues ------------------------------------------------------------------------------------


def test_queues_over_their_limits(suite, start):
    server = start()
    admin = server.admin()
    admin.rpush("emails", *range(1200))
    admin.rpush("reports", *range(150))
    admin.rpush("small", *range(6))
    admin.rpush("bull:embeddings:wait", *range(100))
    admin.zadd("bull:embeddings:prioritized", {f"j{i}": i for i in range(20)})
    admin.rpush("app:embeddings:wait", 1)  # another prefix: not counted
    admin.hset("settings", "a", "1")
    queues = [
        {"key": "emails"},
        {"key": "reports"},
        {"key": "small", "crit": 5},
        {"bullmq": "embeddings"},
        {"key": "settings"},
    ]
    result = suite.run(block(server, queues=queues), "", "-k", "queue", paths=REDIS)
    res = {n.split("/")[1].rstrip("]"): r for n, r in suite.results().items()}
    assert {q: r["outcome"] for q, r in res.items()} == {
        "emails": "failed",
        "reports": "warned",
        "small": "failed",
        "bullmq:embeddings": "warned",
        "settings": "failed",
    }
    assert res["emails"]["message"] == "cache: emails 1200 jobs waiting (list) > crit 1000"
    assert res["reports"]["message"] == "cache: reports 150 jobs waiting (list) > warn 100"
    assert res["small"]["message"] == "cache: small 6 jobs waiting (list) > crit 5"
    assert res["bullmq:embeddings"]["message"] == (
        "cache: bullmq:embeddings 120 jobs waiting (wait 100 + paused 0 + prioritized 20) "
        "> warn 100"
    )
    assert res["settings"]["reason"] == (
        "cache: settings is a hash, not a list, sorted set or stream"
    )
    result.stdout.fnmatch_lines(["*cache: emails 1200 jobs waiting (list) > crit 1000*"])
