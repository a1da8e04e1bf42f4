"""The Redis store: shared state for proxy processes on several machines.

Every key starts with the configured prefix, so several Miroir clusters (or a test run) can
share one Redis. Layout, with `p` the prefix:

    p task-uid            string   last task uid handed out (absent: none yet, the first is 0)
    p task:<uid>          string   the task record (JSON, miroir.core.tasks.task_to_record)
    p tasks               zset     uid -> uid: every stored task, for ordered listing
    p tasks-expiry        zset     uid -> ms the task's TTL counts from (finished, else enqueued)
    p idem:<key>          hash     body_hash, task_uid, expires_at
    p idem-expiry         zset     key -> expires_at
    p settings-seq        hash     index uid -> last settings version handed out (HINCRBY)
    p settings:<index>    hash     node id -> settings version applied on that node
    p index-versions      hash     index uid -> the index's catalog version (HINCRBY)
    p lease:<name>        hash     holder, expires_at, token
    p api-keys            hash     key uid -> the key's record (JSON; never its value)
    p api-keys-version    string   raised on every change to api-keys (INCR, in the same script)
    p record:<name>       hash     version, value (JSON): a versioned record (topology, rebalance)
    p webhooks            string   uuid -> webhook record, all of them (JSON, WATCH/MULTI)
    p processes           hash     process id -> {expiresAt, value} (JSON): process heartbeats

Races between proxies are settled inside Redis: counters are INCR/HINCRBY, claims, leases and
monotone version updates are Lua scripts (atomic on the server), and `modify_task` is an
optimistic WATCH/MULTI transaction retried when another proxy wrote the task in between.
Expiry times are data compared with the caller's `now`, not Redis TTLs, so a store driven by
virtual time behaves like one driven by the wall clock. The scripts touch keys they compute,
which standalone Redis (and Sentinel) allow and Redis Cluster does not.

redis-py's sync client runs in worker threads under the store's limiter (see _threads.py). This
module owns the key layout and the scripts; it must never decide policy of its own: the lease
rules in the scripts are the ones of store.base, and tests/store holds every backend to them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import orjson
import redis
from redis.exceptions import RedisError, WatchError

from miroir.core.tasks import (
    Task,
    TaskPage,
    TaskQuery,
    page_after_cursor,
    page_from_window,
    task_from_record,
    task_to_record,
)
from miroir.store._threads import ThreadRunner
from miroir.store.base import (
    DEFAULT_TASK_TTL_MS,
    CommittedSettings,
    IdempotencyRecord,
    Lease,
    StoreError,
    StoreUnavailable,
    VersionedRecord,
    make_task,
    task_expiry_base,
)

T = TypeVar("T")
_CHUNK = 500  # tasks per MGET while listing, keys per script call while pruning
_MODIFY_ATTEMPTS = 100

# KEYS: uid counter. Task uids begin at 0, as Meilisearch's do; INCR alone would begin at 1.
_ALLOCATE_TASK_UID = """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SET', KEYS[1], 0)
  return 0
end
return redis.call('INCR', KEYS[1])
"""

# KEYS: task key, tasks zset, expiry zset, uid counter. ARGV: uid, record, expiry base.
_PUT_TASK = """
redis.call('SET', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
local last = tonumber(redis.call('GET', KEYS[4]) or '-1')
if tonumber(ARGV[1]) > last then redis.call('SET', KEYS[4], ARGV[1]) end
return 1
"""

# KEYS: tasks zset, expiry zset. ARGV: task key prefix, score bound, batch size.
_PRUNE_TASKS = """
local uids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, uid in ipairs(uids) do
  redis.call('DEL', ARGV[1] .. uid)
  redis.call('ZREM', KEYS[1], uid)
  redis.call('ZREM', KEYS[2], uid)
end
return #uids
"""

# KEYS: idem key, idem-expiry zset. ARGV: now, body hash, task uid, expires at, key,
# max keys (0: unbounded), idem key prefix. Evicts the keys expiring first past max keys.
_CLAIM_IDEMPOTENCY = """
local cur = redis.call('HMGET', KEYS[1], 'body_hash', 'task_uid', 'expires_at')
if cur[3] and tonumber(cur[3]) > tonumber(ARGV[1]) then return cur end
redis.call('ZREM', KEYS[2], ARGV[5])
local max = tonumber(ARGV[6])
if max > 0 then
  local held = redis.call('ZCARD', KEYS[2])
  if held >= max then
    local evicted = redis.call('ZRANGE', KEYS[2], 0, held - max)
    for _, key in ipairs(evicted) do
      redis.call('DEL', ARGV[7] .. key)
      redis.call('ZREM', KEYS[2], key)
    end
  end
end
redis.call('HSET', KEYS[1], 'body_hash', ARGV[2], 'task_uid', ARGV[3], 'expires_at', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[5])
return {ARGV[2], ARGV[3], ARGV[4]}
"""

# KEYS: idem key, idem-expiry zset. ARGV: task uid, key.
_RELEASE_IDEMPOTENCY = """
if redis.call('HGET', KEYS[1], 'task_uid') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[2])
return 1
"""

# KEYS: idem-expiry zset. ARGV: idem key prefix, now, batch size.
_PRUNE_IDEMPOTENCY = """
local keys = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[2], 'LIMIT', 0, tonumber(ARGV[3]))
for _, key in ipairs(keys) do
  redis.call('DEL', ARGV[1] .. key)
  redis.call('ZREM', KEYS[1], key)
end
return #keys
"""

# KEYS: settings hash. ARGV: node id, version. Raises the version, never lowers it.
_RECORD_SETTINGS_VERSION = """
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if cur and tonumber(cur) >= tonumber(ARGV[2]) then return cur end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return ARGV[2]
"""

# KEYS: committed settings hash. ARGV: version, settings JSON. Replaces only a lower version.
_COMMIT_SETTINGS = """
local cur = redis.call('HGET', KEYS[1], 'version')
if not cur or tonumber(cur) < tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'version', ARGV[1], 'settings', ARGV[2])
end
return redis.call('HMGET', KEYS[1], 'version', 'settings')
"""

# The lease scripts are store.base.lease_after_acquire / lease_after_renew, in Lua.
# KEYS: lease hash. ARGV: holder, now, new expires_at.
_ACQUIRE_LEASE = """
local cur = redis.call('HMGET', KEYS[1], 'holder', 'expires_at', 'token')
if cur[2] and tonumber(cur[2]) > tonumber(ARGV[2]) then
  if cur[1] ~= ARGV[1] then return false end
  redis.call('HSET', KEYS[1], 'expires_at', ARGV[3])
  return {cur[1], ARGV[3], cur[3]}
end
local token = redis.call('HINCRBY', KEYS[1], 'token', 1)
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'expires_at', ARGV[3])
return {ARGV[1], ARGV[3], tostring(token)}
"""
_RENEW_LEASE = """
local cur = redis.call('HMGET', KEYS[1], 'holder', 'expires_at', 'token')
if not cur[2] or cur[1] ~= ARGV[1] or tonumber(cur[2]) <= tonumber(ARGV[2]) then return false end
redis.call('HSET', KEYS[1], 'expires_at', ARGV[3])
return {cur[1], ARGV[3], cur[3]}
"""
# KEYS: lease hash. ARGV: holder. Keeps the hash so the token keeps counting.
_RELEASE_LEASE = """
local cur = redis.call('HMGET', KEYS[1], 'holder', 'expires_at')
if not cur[2] or cur[1] ~= ARGV[1] or tonumber(cur[2]) <= 0 then return 0 end
redis.call('HSET', KEYS[1], 'expires_at', '0')
return 1
"""

# Versioned records: compare-and-set on the version field. KEYS: record hash.
# ARGV: expected version, value. Returns the new version, or false when the version is stale.
_PUT_RECORD_IF = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur ~= tonumber(ARGV[1]) then return false end
redis.call('HSET', KEYS[1], 'version', cur + 1, 'value', ARGV[2])
return cur + 1
"""
# KEYS: record hash. ARGV: expected version.
_DELETE_RECORD_IF = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur == 0 or cur ~= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""

# Process heartbeats. KEYS: processes hash. ARGV: process id, now, entry (JSON with expiresAt).
# Drops the entries expired at `now` and puts this one, atomically.
_PUT_PROCESS = """
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if cjson.decode(all[i + 1])['expiresAt'] <= tonumber(ARGV[2]) then
    redis.call('HDEL', KEYS[1], all[i])
  end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
"""

# KEYS: api-keys hash, version counter. ARGV: mode (insert|replace|delete), uid, record.
_CHANGE_API_KEY = """
local exists = redis.call('HEXISTS', KEYS[1], ARGV[2]) == 1
if ARGV[1] == 'insert' then
  if exists then return 0 end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
elseif ARGV[1] == 'replace' then
  if not exists then return 0 end
  redis.call('HSET', KEYS[1], ARGV[2], ARGV[3])
else
  if not exists then return 0 end
  redis.call('HDEL', KEYS[1], ARGV[2])
end
redis.call('INCR', KEYS[2])
return 1
"""

# KEYS: api-keys hash, version counter. ARGV: uid, record, uid, record, ...
_SEED_API_KEYS = """
if redis.call('HLEN', KEYS[1]) > 0 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('INCR', KEYS[2])
return 1
"""


class RedisStore:
    """The Store protocol on Redis. Open with `await RedisStore.open(url, key_prefix=...)`."""

    def __init__(self, client: redis.Redis, key_prefix: str, threads: int,
                 task_ttl_ms: int) -> None:
        self.task_ttl_ms = task_ttl_ms
        self._client = client
        self._p = key_prefix
        self._runner = ThreadRunner(threads, (RedisError,), "Redis task store")
        script = client.register_script
        self._allocate_task_uid = script(_ALLOCATE_TASK_UID)
        self._put_task = script(_PUT_TASK)
        self._prune_tasks = script(_PRUNE_TASKS)
        self._change_api_key = script(_CHANGE_API_KEY)
        self._seed_api_keys = script(_SEED_API_KEYS)
        self._claim_idempotency = script(_CLAIM_IDEMPOTENCY)
        self._prune_idempotency = script(_PRUNE_IDEMPOTENCY)
        self._release_idempotency = script(_RELEASE_IDEMPOTENCY)
        self._record_settings_version = script(_RECORD_SETTINGS_VERSION)
        self._commit_settings = script(_COMMIT_SETTINGS)
        self._acquire_lease = script(_ACQUIRE_LEASE)
        self._renew_lease = script(_RENEW_LEASE)
        self._release_lease = script(_RELEASE_LEASE)
        self._put_record_if = script(_PUT_RECORD_IF)
        self._delete_record_if = script(_DELETE_RECORD_IF)
        self._put_process = script(_PUT_PROCESS)

    @classmethod
    async def open(cls, url: str, *, key_prefix: str = "miroir:", timeout_s: float = 5.0,
                   threads: int = 4, task_ttl_ms: int = DEFAULT_TASK_TTL_MS) -> RedisStore:
        """Connect and PING. An unreachable or silent server raises StoreUnavailable within
        about `timeout_s` (connect timeout plus socket timeout), never hangs."""
        try:
            client = redis.Redis.from_url(
                url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s,
                max_connections=threads + 2,  # +2: connections are returned a moment after use
            )
        except ValueError as exc:
            raise StoreUnavailable(f"invalid Redis URL {url!r}: {exc}") from exc
        store = cls(client, key_prefix, threads, task_ttl_ms)
        try:
            await store._runner.run(client.ping)
        except (StoreError, OSError) as exc:
            client.close()
            raise StoreUnavailable(f"cannot reach the Redis task store at {url}: {exc}") from exc
        return store

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._runner.run(fn, *args)

    async def close(self) -> None:
        self._client.close()

    def _key(self, *parts: str | int) -> str:
        return self._p + ":".join(str(part) for part in parts)

    # ---- tasks

    async def allocate_task_uid(self) -> int:
        return int(await self._call(self._allocate_task_uid, [self._key("task-uid")]))

    async def create_task(self, make: Callable[[int], Task]) -> Task:
        task = make_task(make, await self.allocate_task_uid())
        await self.put_task(task)
        return task

    async def put_task(self, task: Task) -> None:
        keys = [self._key("task", task.uid), self._key("tasks"), self._key("tasks-expiry"),
                self._key("task-uid")]
        args = [task.uid, orjson.dumps(task_to_record(task)), task_expiry_base(task)]
        await self._call(self._put_task, keys, args)

    async def get_task(self, uid: int) -> Task | None:
        raw = await self._call(self._client.get, self._key("task", uid))
        return None if raw is None else _decode_task(raw)

    async def modify_task(self, uid: int, change: Callable[[Task], Task]) -> Task | None:
        key = self._key("task", uid)

        def modify() -> Task | None:
            with self._client.pipeline(transaction=True) as pipe:
                for _ in range(_MODIFY_ATTEMPTS):
                    try:
                        pipe.watch(key)
                        raw = pipe.get(key)
                        if raw is None:
                            return None
                        changed = change(_decode_task(raw))
                        if changed.uid != uid:
                            raise ValueError("modify_task cannot change a task's uid")
                        pipe.multi()
                        pipe.set(key, orjson.dumps(task_to_record(changed)))
                        pipe.zadd(self._key("tasks-expiry"), {str(uid): task_expiry_base(changed)})
                        pipe.execute()
                        return changed
                    except WatchError:
                        continue  # another proxy wrote this task first: read it again
            raise StoreError(f"task {uid} kept changing under {_MODIFY_ATTEMPTS} attempts")

        return await self._call(modify)

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        """Filters run in Python over every stored task (O(tasks), bounded by the TTL), except a
        `uids` filter, which reads only those tasks."""

        def list_() -> TaskPage:
            if query.uids is not None:
                uids = sorted(query.uids, reverse=not query.reverse)
            else:
                uids = [int(u) for u in self._client.zrange(
                    self._key("tasks"), 0, -1, desc=not query.reverse)]
            total = 0
            window: list[Task] = []
            for task in self._read_tasks(uids):
                if not query.matches(task):
                    continue
                total += 1
                if len(window) <= query.limit and page_after_cursor(query, task.uid):
                    window.append(task)
            return page_from_window(window, total, query)

        return await self._call(list_)

    def _read_tasks(self, uids: list[int]) -> Iterator[Task]:
        for start in range(0, len(uids), _CHUNK):
            chunk = uids[start:start + _CHUNK]
            for raw in self._client.mget([self._key("task", uid) for uid in chunk]):
                if raw is not None:  # deleted since the uids were read
                    yield _decode_task(raw)

    async def delete_tasks(self, uids: Iterable[int]) -> int:
        wanted = sorted(set(uids))

        def delete() -> int:
            with self._client.pipeline(transaction=True) as pipe:
                for uid in wanted:
                    pipe.delete(self._key("task", uid))
                    pipe.zrem(self._key("tasks"), uid)
                    pipe.zrem(self._key("tasks-expiry"), uid)
                results = pipe.execute()
            return sum(results[0::3])

        return await self._call(delete) if wanted else 0

    async def prune_tasks(self, now: int) -> int:
        def prune() -> int:
            while self._prune_idempotency(
                    [self._key("idem-expiry")], [self._key("idem", ""), now, _CHUNK]) == _CHUNK:
                pass
            pruned = 0
            bound = f"({now - self.task_ttl_ms}"  # exclusive: older than the TTL
            while True:
                batch = self._prune_tasks([self._key("tasks"), self._key("tasks-expiry")],
                                          [self._key("task", ""), bound, _CHUNK])
                pruned += batch
                if batch < _CHUNK:
                    return pruned

        return await self._call(prune)

    # ---- idempotency keys

    async def claim_idempotency_key(
        self, key: str, body_hash: str, task_uid: int, now: int, ttl_ms: int,
        max_keys: int | None = None,
    ) -> IdempotencyRecord:
        stored = await self._call(
            self._claim_idempotency, [self._key("idem", key), self._key("idem-expiry")],
            [now, body_hash, task_uid, now + ttl_ms, key, max_keys or 0, self._key("idem", "")],
        )
        return _idempotency_record(key, stored)

    async def release_idempotency_key(self, key: str, task_uid: int) -> bool:
        released = await self._call(
            self._release_idempotency, [self._key("idem", key), self._key("idem-expiry")],
            [task_uid, key],
        )
        return bool(released)

    async def get_idempotency_key(self, key: str, now: int) -> IdempotencyRecord | None:
        stored = await self._call(
            self._client.hmget, self._key("idem", key), ["body_hash", "task_uid", "expires_at"])
        if stored[2] is None or int(stored[2]) <= now:
            return None
        return _idempotency_record(key, stored)

    # ---- settings versions

    async def allocate_settings_version(self, index_uid: str) -> int:
        return int(await self._call(self._client.hincrby, self._key("settings-seq"), index_uid, 1))

    async def get_settings_versions(self, index_uid: str) -> dict[str, int]:
        stored = await self._call(self._client.hgetall, self._key("settings", index_uid))
        return {node.decode(): int(version) for node, version in stored.items()}

    async def record_settings_version(self, index_uid: str, node_id: str, version: int) -> int:
        stored = await self._call(
            self._record_settings_version, [self._key("settings", index_uid)], [node_id, version])
        return int(stored)

    async def delete_settings_versions(self, index_uid: str) -> None:
        def delete() -> None:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(self._key("settings", index_uid))
                pipe.delete(self._key("settings-committed", index_uid))
                pipe.hdel(self._key("settings-seq"), index_uid)
                pipe.execute()

        await self._call(delete)

    async def commit_settings(
        self, index_uid: str, version: int, settings: dict[str, Any]
    ) -> CommittedSettings:
        stored = await self._call(
            self._commit_settings, [self._key("settings-committed", index_uid)],
            [version, orjson.dumps(settings)],
        )
        return CommittedSettings(int(stored[0]), orjson.loads(stored[1]))

    async def get_committed_settings(self, index_uid: str) -> CommittedSettings | None:
        stored = await self._call(
            self._client.hmget, self._key("settings-committed", index_uid), ["version", "settings"])
        if stored[0] is None:
            return None
        return CommittedSettings(int(stored[0]), orjson.loads(stored[1]))

    # ---- index versions

    async def bump_index_version(self, index_uid: str) -> int:
        return int(await self._call(
            self._client.hincrby, self._key("index-versions"), index_uid, 1))

    async def get_index_version(self, index_uid: str) -> int:
        stored = await self._call(self._client.hget, self._key("index-versions"), index_uid)
        return 0 if stored is None else int(stored)

    # ---- API keys

    async def _api_key_change(self, mode: str, uid: str, record: dict | None) -> bool:
        keys = [self._key("api-keys"), self._key("api-keys-version")]
        payload = b"" if record is None else orjson.dumps(record)
        return bool(await self._call(self._change_api_key, keys, [mode, uid, payload]))

    async def insert_api_key(self, uid: str, record: dict) -> bool:
        return await self._api_key_change("insert", uid, record)

    async def replace_api_key(self, uid: str, record: dict) -> bool:
        return await self._api_key_change("replace", uid, record)

    async def delete_api_key(self, uid: str) -> bool:
        return await self._api_key_change("delete", uid, None)

    async def seed_api_keys(self, records: dict[str, dict]) -> bool:
        args: list[Any] = []
        for uid, record in records.items():
            args += [uid, orjson.dumps(record)]
        keys = [self._key("api-keys"), self._key("api-keys-version")]
        return bool(await self._call(self._seed_api_keys, keys, args))

    async def list_api_keys(self) -> list[dict]:
        raw = await self._call(self._client.hvals, self._key("api-keys"))
        return [orjson.loads(record) for record in raw]

    async def get_api_keys_version(self) -> int:
        stored = await self._call(self._client.get, self._key("api-keys-version"))
        return 0 if stored is None else int(stored)

    # ---- webhooks: one JSON string holding them all (at most 20), changed under WATCH

    async def get_webhooks(self) -> dict[str, dict]:
        raw = await self._call(self._client.get, self._key("webhooks"))
        return {} if raw is None else orjson.loads(raw)

    async def modify_webhooks(
        self, change: Callable[[dict[str, dict]], dict[str, dict]]
    ) -> dict[str, dict]:
        key = self._key("webhooks")

        def modify() -> dict[str, dict]:
            with self._client.pipeline(transaction=True) as pipe:
                for _ in range(_MODIFY_ATTEMPTS):
                    try:
                        pipe.watch(key)
                        raw = pipe.get(key)
                        changed = change({} if raw is None else orjson.loads(raw))
                        pipe.multi()
                        pipe.set(key, orjson.dumps(changed))
                        pipe.execute()
                        return changed
                    except WatchError:
                        continue  # another proxy changed them first: read them again
            raise StoreError(f"webhooks kept changing under {_MODIFY_ATTEMPTS} attempts")

        return await self._call(modify)

    # ---- leases

    async def acquire_lease(self, name: str, holder: str, now: int, ttl_ms: int) -> Lease | None:
        stored = await self._call(
            self._acquire_lease, [self._key("lease", name)], [holder, now, now + ttl_ms])
        return _lease(name, stored)

    async def renew_lease(self, name: str, holder: str, now: int, ttl_ms: int) -> Lease | None:
        stored = await self._call(
            self._renew_lease, [self._key("lease", name)], [holder, now, now + ttl_ms])
        return _lease(name, stored)

    async def release_lease(self, name: str, holder: str) -> bool:
        return bool(await self._call(self._release_lease, [self._key("lease", name)], [holder]))

    async def get_lease(self, name: str, now: int) -> Lease | None:
        stored = await self._call(
            self._client.hmget, self._key("lease", name), ["holder", "expires_at", "token"])
        if stored[1] is None or int(stored[1]) <= now:
            return None
        return _lease(name, stored)

    # ---- versioned records

    async def get_record(self, name: str) -> VersionedRecord | None:
        stored = await self._call(
            self._client.hmget, self._key("record", name), ["version", "value"])
        if stored[0] is None:
            return None
        return VersionedRecord(name, int(stored[0]), orjson.loads(stored[1]))

    async def put_record_if(
        self, name: str, expected_version: int, value: dict[str, Any]
    ) -> VersionedRecord | None:
        version = await self._call(
            self._put_record_if, [self._key("record", name)],
            [expected_version, orjson.dumps(value)])
        if not version:
            return None
        return VersionedRecord(name, int(version), value)

    async def delete_record_if(self, name: str, expected_version: int) -> bool:
        return bool(await self._call(
            self._delete_record_if, [self._key("record", name)], [expected_version]))

    # ---- process heartbeats: one hash; expired entries are dropped by the next put

    async def put_process_record(
        self, process_id: str, value: dict[str, Any], now: int, ttl_ms: int
    ) -> None:
        await self._call(self._put_process, [self._key("processes")],
                         [process_id, now, orjson.dumps({"expiresAt": now + ttl_ms,
                                                         "value": value})])

    async def list_live_processes(self, now: int) -> dict[str, dict[str, Any]]:
        raw = await self._call(self._client.hgetall, self._key("processes"))
        found = {key.decode(): orjson.loads(entry) for key, entry in raw.items()}
        return {key: entry["value"] for key, entry in found.items() if entry["expiresAt"] > now}

    async def delete_process_record(self, process_id: str) -> bool:
        return bool(await self._call(self._client.hdel, self._key("processes"), process_id))


def _decode_task(raw: bytes) -> Task:
    return task_from_record(orjson.loads(raw))


def _idempotency_record(key: str, stored: list[bytes]) -> IdempotencyRecord:
    body_hash, task_uid, expires_at = stored
    return IdempotencyRecord(key, body_hash.decode(), int(task_uid), int(expires_at))


def _lease(name: str, stored: list[bytes] | None) -> Lease | None:
    if not stored:
        return None
    holder, expires_at, token = stored
    return Lease(name, holder.decode(), int(expires_at), int(token))
