"""Redis probes: the runbooks' ``redis-cli ping`` and ``redis-cli info`` lines, as Measurements.

Every probe takes a client from ``open_client`` and sends only the commands of the read-only ACL
(``opscheck.testbed.redis.READ_ONLY_ACL``): PING, INFO, TYPE, LLEN, ZCARD, XLEN. redis-py is
imported only when a ``[[redis]]`` target is checked.
"""

from __future__ import annotations

import contextlib
import functools
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opscheck.config import RedisQueue, RedisTarget
from opscheck.judge import Measurement, ProbeError
from opscheck.probes import NotApplicable
from opscheck.session import Lost, Unreachable
from opscheck.units import format_value

if TYPE_CHECKING:
    from redis import Redis

R = TypeVar("R")

# Fragmentation is judged once it wastes this much: below it, a small or empty Redis shows a
# meaningless ratio (12 MB RSS for 1 MB of data is 12.0). Redis's own active defragmentation
# ignores less than this too (active-defrag-ignore-bytes).
FRAGMENTATION_IGNORED = 100_000_000
# kombu (Celery's Redis transport) keeps priorities 3, 6 and 9 in lists named <queue>\x06\x16<n>.
_CELERY_PRIORITY = "\x06\x16"
_COUNTERS = (
    "counted since the server started or since the last CONFIG RESETSTAT; after acting, "
    "CONFIG RESETSTAT (as an admin) starts the count again"
)


def _n(count: int, noun: str) -> str:
    """``1 key``, ``2 keys``."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def describe_error(exc: BaseException) -> str:
    """A redis-py error on one line: its own words, with the kind of failure when it has none."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def safe_url(url: str) -> str:
    """The URL without a user name (the config refuses passwords in it)."""
    return re.sub(r"^([a-z]+://)[^/@]*@", r"\1", url)


def lost(exc: BaseException) -> str | None:
    """The real error if ``exc`` means the server stopped answering (a timeout, a connection
    closed or refused), else None: a refused command (NOPERM, MISCONF) or a wrong password is
    the check's own failure. The ``[[redis]]`` targets' classifier (``session.LOST``): the
    client raises ``Lost`` itself (``_client_class``), this catches what would bypass it."""
    import redis
    from redis.exceptions import AuthorizationError

    if isinstance(exc, redis.AuthenticationError | AuthorizationError):
        return None
    if isinstance(exc, redis.TimeoutError | redis.ConnectionError):
        return describe_error(exc)
    return None


@functools.cache
def _client_class() -> type[Redis]:
    """redis-py's client, made to give up on a server that stopped answering (built on first
    use: redis-py is imported only when a ``[[redis]]`` target is checked)."""
    import redis

    class Client(redis.Redis):
        """One connection whose first lost answer is its last: the call raises ``Lost`` (the
        target is down for the rest of the run, ``session.Run.noticed``) and every later call
        at once. Checks queued on the one connection would otherwise each wait out the timeout
        in turn (a frozen server's kernel still accepts the reconnect, which then waits in
        AUTH): a frozen server costs one timeout, not one per check."""

        stopped: str | None = None

        def execute_command(self, *args: Any, **options: Any) -> Any:
            with self.single_connection_lock:  # the one the call waits for: checked after it
                return self._answer(super().execute_command, *args, **options)

        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
            pipe = super().pipeline(transaction, shard_hint)  # on a connection of its own
            pipe.execute = functools.partial(self._answer, pipe.execute)  # type: ignore[method-assign]
            return pipe

        def _answer(self, call: Callable[..., R], *args: Any, **kwargs: Any) -> R:
            if self.stopped is not None:
                raise Lost(self.stopped)
            try:
                return call(*args, **kwargs)
            except redis.TimeoutError as exc:
                timeout = self.connection_pool.connection_kwargs.get("socket_timeout")
                self.stopped = f"no answer within {timeout:g} s"
                raise Lost(self.stopped) from exc
            except redis.ConnectionError as exc:
                self.stopped = lost(exc)
                if self.stopped is None:  # a wrong password on reconnecting: not lost
                    raise
                raise Lost(self.stopped) from exc

    return Client


class _OwnLookups:
    """The keyspace hits and misses opscheck's own queue checks cause (a TYPE or LLEN of an
    idle queue's missing key is a miss): taken out of the hit ratio, which judges the
    application's lookups. ``lock`` keeps a check's lookups and their count together, so the
    hit ratio never reads INFO between them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.hits = self.misses = 0


def _own(client: Redis) -> _OwnLookups:
    own: _OwnLookups | None = getattr(client, "own", None)
    return own if own is not None else _OwnLookups()  # a plain client: nothing to take out


def open_client(target: RedisTarget, password: str | None, timeout: float) -> Redis:
    """One connection as the target's user, every call bounded by ``timeout``, never retried;
    once a call gets no answer, every later one fails at once (see ``_client_class``)."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    where = safe_url(target.url)
    try:
        client = _client_class().from_url(
            target.url,
            username=target.username,
            password=password,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            decode_responses=True,
            protocol=2,  # RESP2 talks to Redis 5 too; RESP3's HELLO does not
            driver_info=None,  # no CLIENT SETINFO: one command fewer for the ACL
            retry=Retry(NoBackoff(), 0),  # a dead server costs one timeout, not four
            single_connection_client=True,
        )
        client.own = _OwnLookups()  # type: ignore[attr-defined]
        with contextlib.suppress(redis.ResponseError):  # e.g. MISCONF: test_redis_reachable says
            client.ping()
    except redis.TimeoutError as exc:  # connecting, or in AUTH
        raise Unreachable(
            f"{where}: no answer within {timeout:g} s ({describe_error(exc)})"
        ) from None
    except Lost as exc:  # in PING
        raise Unreachable(f"{where}: {exc.error}") from None
    except (redis.RedisError, ValueError) as exc:
        raise Unreachable(f"{where}: {describe_error(exc)}") from None
    return client


def info(client: Redis, section: str = "default") -> dict[str, Any]:
    """``INFO``; a ProbeError in operator words when the server refuses or goes away."""
    import redis

    try:
        return dict(client.info(section))
    except redis.exceptions.NoPermissionError as exc:
        raise ProbeError(f"{describe_error(exc)} (see the read-only ACL in the README)") from None
    except redis.RedisError as exc:
        raise ProbeError(f"INFO failed: {describe_error(exc)}") from None


def _since(data: dict[str, Any]) -> str:
    return f"counted since start, {format_value(float(data['uptime_in_seconds']), 'duration')} ago"


def ping(client: Redis) -> Measurement:
    """``PING`` answered PONG; which Redis answered it.

    Redis refuses PING, as it refuses writes, when it cannot persist (MISCONF): it wants the
    monitoring to notice. Connected and authenticated, the other checks still run.
    """
    import redis

    data = info(client, "server")
    role = info(client, "replication")["role"]
    up = format_value(float(data["uptime_in_seconds"]), "duration")
    which = f"Redis {data['redis_version']} ({data['redis_mode']} {role}, up {up})"
    try:
        client.ping()
    except redis.RedisError as exc:
        return Measurement.fact(False, f"{which} refused PING: {describe_error(exc)}", "PONG")
    return Measurement.fact(True, f"PONG from {which}", "PONG")


def memory_used_pct(client: Redis) -> Measurement:
    """Used memory of maxmemory; without maxmemory, the process's RSS of the host's memory."""
    data = info(client, "memory")
    used, maxmemory, policy = data["used_memory"], data["maxmemory"], data["maxmemory_policy"]
    if maxmemory:
        pct = 100.0 * used / maxmemory
        text = (
            f"{pct:.1f} % of maxmemory used ({format_value(used, 'size')} of "
            f"{format_value(maxmemory, 'size')}, policy {policy})"
        )
        full = "writes fail with OOM errors" if policy == "noeviction" else "keys are evicted"
        detail = f"at maxmemory with policy {policy}, {full}"
    else:
        rss, total = data["used_memory_rss"], data["total_system_memory"]
        pct = 100.0 * rss / total
        text = (
            f"{pct:.1f} % of host memory used (RSS {format_value(rss, 'size')} of "
            f"{format_value(total, 'size')}; no maxmemory set)"
        )
        detail = (
            "no maxmemory: Redis grows until the kernel's OOM killer stops it; host memory is "
            "total_system_memory, which ignores a container's memory limit"
        )
    return Measurement(pct, text=text, detail=detail)


def fragmentation(client: Redis) -> Measurement:
    """RSS / used memory, once the RSS above the data passes ``FRAGMENTATION_IGNORED``: below
    that the ratio means little, and is shown, not judged."""
    data = info(client, "memory")
    ratio, wasted = float(data["mem_fragmentation_ratio"]), int(data["mem_fragmentation_bytes"])
    text = (
        f"fragmentation {ratio:.2f} (RSS {format_value(data['used_memory_rss'], 'size')} for "
        f"{format_value(data['used_memory'], 'size')} of data)"
    )
    swapped = "RSS below used memory: part of Redis is swapped out, which makes it slow"
    if wasted < FRAGMENTATION_IGNORED:
        return Measurement.fact(
            True,
            f"{text}: {format_value(max(wasted, 0), 'size')} above the data, too little to judge",
            f"judged from {format_value(FRAGMENTATION_IGNORED, 'size')} wasted",
            detail=swapped if ratio < 1 else "",
        )
    detail = swapped if ratio < 1 else f"{format_value(wasted, 'size')} above the data"
    return Measurement(ratio, text=text, detail=detail)


def clients_used_pct(client: Redis) -> Measurement:
    """Connected clients of maxclients."""
    data = info(client, "clients")
    connected, limit = data["connected_clients"], data["maxclients"]
    pct = 100.0 * connected / limit
    return Measurement(
        pct,
        text=f"{connected} of {limit} clients connected ({pct:.1f} %)",
        detail=f"{data['blocked_clients']} blocked in BLPOP/BRPOP/XREAD and the like",
    )


def rejected_connections(client: Redis) -> Measurement:
    """Connections refused at maxclients since start: clients that got an error, not a session."""
    data = info(client)
    count = data["rejected_connections"]
    return Measurement(
        count,
        text=(
            f"{_n(count, 'connection')} rejected at maxclients {data['maxclients']} "
            f"({_since(data)})"
        ),
        detail=_COUNTERS,
    )


def evicted_keys(client: Redis) -> Measurement:
    """Keys evicted at maxmemory since start: fine for a cache, lost jobs for a queue."""
    data = info(client)
    count = data["evicted_keys"]
    return Measurement(
        count,
        text=(
            f"{_n(count, 'key')} evicted at maxmemory {format_value(data['maxmemory'], 'size')}, "
            f"policy {data['maxmemory_policy']} ({_since(data)})"
            if data["maxmemory"]
            else f"{_n(count, 'key')} evicted (no maxmemory set; {_since(data)})"
        ),
        detail=f"{_COUNTERS}. Job queues (BullMQ, Sidekiq) need maxmemory-policy noeviction",
    )


def hit_ratio(client: Redis) -> Measurement:
    """Keyspace hits of all key lookups since start (nothing to judge before the first)."""
    own = _own(client)
    with own.lock:
        data = info(client)
        own_hits, own_misses = own.hits, own.misses
    hits = max(data["keyspace_hits"] - own_hits, 0)
    misses = max(data["keyspace_misses"] - own_misses, 0)
    if not hits + misses:
        return Measurement.fact(True, "no key lookups since start", "a hit ratio")
    pct = 100.0 * hits / (hits + misses)
    return Measurement(
        pct,
        text=f"{pct:.1f} % hits ({hits} hits, {misses} misses, {_since(data)})",
        # opscheck's own queue lookups are not the application's: left out
        detail=_COUNTERS,
    )


def ops_per_sec(client: Redis) -> Measurement:
    """``instantaneous_ops_per_sec``: commands per second over the last few seconds."""
    data = info(client, "stats")
    ops = data["instantaneous_ops_per_sec"]
    return Measurement(
        ops,
        text=f"{ops} ops/s",
        detail=f"{data['total_commands_processed']} commands since start",
    )


def keys_per_db(client: Redis) -> list[Measurement]:
    """Keys of each logical database (``INFO keyspace``); the client's own db even when empty."""
    spaces = info(client, "keyspace")
    own = f"db{client.connection_pool.connection_kwargs.get('db', 0)}"
    spaces.setdefault(own, {"keys": 0, "expires": 0})
    found = []
    for db, space in sorted(spaces.items(), key=lambda item: int(item[0][2:])):
        keys, expiring = space["keys"], space["expires"]
        text = f"{_n(keys, 'key')} ({expiring} with a TTL)"
        found.append(Measurement(keys, subject=db, text=text))
    return found


def _persistence(client: Redis) -> dict[str, Any]:
    """``INFO persistence``; NotApplicable while RDB looks off.

    INFO does not say whether ``save`` is configured (CONFIG GET would, but it also hands out
    requirepass): RDB counts as off while no background save has run since start.
    """
    data = info(client)
    if data["rdb_last_bgsave_time_sec"] == -1 and not data["rdb_bgsave_in_progress"]:
        up = format_value(float(data["uptime_in_seconds"]), "duration")
        raise NotApplicable(
            f"no RDB snapshot since the server started {up} ago: RDB snapshots look off"
        )
    return data


def last_bgsave(client: Redis) -> Measurement:
    """The last background save (RDB snapshot) succeeded."""
    ok = _persistence(client)["rdb_last_bgsave_status"] == "ok"
    status = (
        "last background save ok"
        if ok
        else "last background save failed (rdb_last_bgsave_status:err; the reason is in the "
        "server's log): a restart loses every change since the last successful snapshot"
    )
    return Measurement.fact(ok, status, "rdb_last_bgsave_status:ok")


def unsaved_changes_age(client: Redis) -> Measurement:
    """How long the changes not yet in a snapshot have waited (0 without any)."""
    data = _persistence(client)
    now = int(data["server_time_usec"]) // 1_000_000  # the server's clock, as the save time
    age = max(0, now - int(data["rdb_last_save_time"]))
    changes = data["rdb_changes_since_last_save"]
    last = f"last successful snapshot {format_value(age, 'duration')} ago"
    if changes:
        return Measurement(age, text=f"{_n(changes, 'change')} unsaved ({last})")
    return Measurement(0, text=f"no unsaved changes ({last})")


def aof(client: Redis) -> Measurement:
    """With ``appendonly yes``: the last AOF write and rewrite succeeded."""
    data = info(client, "persistence")
    if not data["aof_enabled"]:
        raise NotApplicable("AOF is off (appendonly no)")
    expected = "aof_last_write_status:ok, aof_last_bgrewrite_status:ok"
    failed = [
        f"{what} failed ({key}:err)"
        for what, key in (
            ("last AOF write", "aof_last_write_status"),
            ("last AOF rewrite", "aof_last_bgrewrite_status"),
        )
        if data[key] != "ok"
    ]
    if failed:
        text = "; ".join(failed) + " (the reason is in the server's log)"
        return Measurement.fact(False, text, expected)
    return Measurement.fact(True, "AOF writes and rewrites ok", expected)


def replication(client: Redis) -> Measurement:
    """A master, or a replica with its link to the master up."""
    data = info(client, "replication")
    expected = "master, or replica with its link up"
    if data["role"] == "master":
        replicas = [data[k] for k in sorted(data) if re.fullmatch(r"slave\d+", k)]
        states = ", ".join(f"{r['ip']}:{r['port']} {r['state']} lag {r['lag']} s" for r in replicas)
        text = f"master with {len(replicas)} replica(s) ({states})" if replicas else "master"
        return Measurement.fact(True, text, expected)
    master = f"{data['master_host']}:{data['master_port']}"
    if data["master_link_status"] == "up":
        io = data["master_last_io_seconds_ago"]
        return Measurement.fact(
            True, f"replica of {master}, link up (last I/O {io} s ago)", expected
        )
    since = int(data.get("master_link_down_since_seconds", -1))
    how = f"for {format_value(since, 'duration')}" if since >= 0 else "since the replica started"
    syncing = " (initial sync in progress)" if data.get("master_sync_in_progress") else ""
    text = f"replica of {master}: link to the master down {how}{syncing}"
    return Measurement.fact(False, text, expected)


def _lengths(client: Redis, keys: dict[str, str]) -> dict[str, int]:
    """Length of each key by its expected type (list, zset), in one round trip."""
    import redis

    command = {"list": "LLEN", "zset": "ZCARD"}
    own = _own(client)
    try:
        with own.lock, client.pipeline(transaction=False) as pipe:
            for key, kind in keys.items():
                pipe.execute_command(command[kind], key)
            counts = pipe.execute(raise_on_error=False)
            found = sum(1 for c in counts if isinstance(c, int) and c > 0)  # Redis drops empties
            own.hits += found
            own.misses += sum(1 for c in counts if not isinstance(c, Exception)) - found
    except redis.RedisError as exc:
        raise ProbeError(describe_error(exc)) from None
    for key, count in zip(keys, counts, strict=True):
        if isinstance(count, Exception):
            raise ProbeError(f"{key}: {describe_error(count)}")
    return dict(zip(keys, counts, strict=True))


def queue_depth(client: Redis, queue: RedisQueue) -> Measurement:
    """Jobs waiting in ``queue``: a key's length by its TYPE, or the sum of a library's keys.

    Redis deletes an empty list, so an idle queue has no key: a missing key counts as 0, and the
    detail says so, in case the name is wrong instead.
    """

    name, layout = queue.name, queue.layout
    if layout == "bullmq":
        base = f"{queue.prefix}:{queue.bullmq}"
        waiting = {"wait": "list", "paused": "list", "prioritized": "zset"}
        others = {"active": "list", "delayed": "zset", "failed": "zset"}
        counts = _lengths(client, {f"{base}:{k}": t for k, t in {**waiting, **others}.items()})
        parts = {k: counts[f"{base}:{k}"] for k in [*waiting, *others]}
        depth = sum(parts[k] for k in waiting)
        text = (
            f"{_n(depth, 'job')} waiting (" + " + ".join(f"{k} {parts[k]}" for k in waiting) + ")"
        )
        detail = ", ".join(f"{k} {parts[k]}" for k in others) + " (not counted)"
        if not any(parts.values()):
            detail = f"no key {base}:* holds a job: an idle queue, or a wrong name or prefix"
        return Measurement(depth, subject=name, text=text, detail=detail)
    if layout == "celery":
        key = str(queue.celery)
        lists = [key, *(f"{key}{_CELERY_PRIORITY}{n}" for n in (3, 6, 9))]
        counts = _lengths(client, dict.fromkeys(lists, "list"))
        depth = sum(counts.values())
        by = {"0": counts[key], **{str(n): counts[lists[i + 1]] for i, n in enumerate((3, 6, 9))}}
        text = f"{_n(depth, 'job')} waiting"
        if depth > counts[key]:
            text += " (" + ", ".join(f"priority {p}: {c}" for p, c in by.items() if c) + ")"
        detail = "" if depth else f"no list {key}: an idle queue, or a wrong name"
        return Measurement(depth, subject=name, text=text, detail=detail)
    keys = {
        "key": str(queue.key),
        "sidekiq": f"queue:{queue.sidekiq}",
        "rq": f"rq:queue:{queue.rq}",
    }
    key = keys[layout]
    own = _own(client)
    with own.lock:
        return _key_depth(client, own, name, key)


def _key_depth(client: Redis, own: _OwnLookups, name: str, key: str) -> Measurement:
    """A queue kept in one key: its length by its TYPE (each lookup counted in ``own``)."""
    import redis

    try:
        kind = cast(str, client.type(key))  # decode_responses: text, not bytes
    except redis.RedisError as exc:
        raise ProbeError(describe_error(exc)) from None
    if kind == "none":
        own.misses += 1
        return Measurement(
            0,
            subject=name,
            text="0 (no such key)",
            detail=f"no key {key}: Redis deletes an empty list, so an idle queue has none; "
            "or the name is wrong",
        )
    command = {"list": "LLEN", "zset": "ZCARD", "stream": "XLEN"}.get(kind)
    if command is None:
        raise ProbeError(f"{key} is a {kind}, not a list, sorted set or stream")
    own.hits += 1  # the TYPE
    try:
        depth = int(client.execute_command(command, key))
    except redis.RedisError as exc:
        raise ProbeError(f"{command} {key}: {describe_error(exc)}") from None
    own.hits += 1
    where = "" if key == name else f" in {key}"
    return Measurement(depth, subject=name, text=f"{_n(depth, 'job')} waiting ({kind}{where})")
