"""The in-process store: plain dicts, for the simulator (virtual time, no threads) and unit tests.

Nothing survives the process and nothing is shared with another process, so it is never a
production backend. Each method runs to completion without awaiting anything, which makes it
atomic under trio's cooperative scheduling; that is the whole concurrency story here.

This module owns only the dicts; policy comes from miroir.core.tasks and store.base.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import orjson

from miroir.core.tasks import FINISHED_STATUSES, Task, TaskPage, TaskQuery, select_page
from miroir.store.base import (
    DEFAULT_TASK_TTL_MS,
    CommittedSettings,
    IdempotencyRecord,
    Lease,
    VersionedRecord,
    lease_after_acquire,
    lease_after_renew,
    make_task,
    record_after_put,
    task_expiry_base,
)


class MemoryStore:
    def __init__(self, task_ttl_ms: int = DEFAULT_TASK_TTL_MS) -> None:
        self.task_ttl_ms = task_ttl_ms
        self._last_task_uid = -1  # none handed out yet: the first uid is 0, as in Meilisearch
        self._tasks: dict[int, Task] = {}
        # Uids of the tasks not finished yet: the task poller lists only those, every round,
        # and without this each round would look at every task ever stored.
        self._unfinished: set[int] = set()
        self._idempotency: dict[str, IdempotencyRecord] = {}
        self._settings_counters: dict[str, int] = {}
        self._settings: dict[str, dict[str, int]] = {}
        self._index_versions: dict[str, int] = {}
        self._committed: dict[str, CommittedSettings] = {}
        self._leases: dict[str, Lease] = {}
        self._api_keys: dict[str, dict] = {}
        self._api_keys_version = 0
        self._records: dict[str, VersionedRecord] = {}
        self._processes: dict[str, tuple[int, dict[str, Any]]] = {}  # id -> (expires_at, value)
        self._webhooks: dict[str, dict] = {}

    async def close(self) -> None:
        pass

    async def allocate_task_uid(self) -> int:
        self._last_task_uid += 1
        return self._last_task_uid

    async def create_task(self, make: Callable[[int], Task]) -> Task:
        task = make_task(make, self._last_task_uid + 1)
        await self.put_task(task)
        return task

    async def put_task(self, task: Task) -> None:
        self._store(task)
        self._last_task_uid = max(self._last_task_uid, task.uid)

    async def get_task(self, uid: int) -> Task | None:
        return self._tasks.get(uid)

    async def modify_task(self, uid: int, change: Callable[[Task], Task]) -> Task | None:
        if uid not in self._tasks:
            return None
        changed = change(self._tasks[uid])
        if changed.uid != uid:
            raise ValueError("modify_task cannot change a task's uid")
        self._store(changed)
        return changed

    def _store(self, task: Task) -> None:
        self._tasks[task.uid] = task
        if task.is_finished:
            self._unfinished.discard(task.uid)
        else:
            self._unfinished.add(task.uid)

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        candidates: Iterable[Task] = self._tasks.values()
        if query.statuses is not None and not query.statuses & FINISHED_STATUSES:
            candidates = [self._tasks[uid] for uid in self._unfinished]
        return select_page(filter(query.matches, candidates), query)

    async def delete_tasks(self, uids: Iterable[int]) -> int:
        self._unfinished.difference_update(uids := set(uids))
        return sum(self._tasks.pop(uid, None) is not None for uid in uids)

    async def prune_tasks(self, now: int) -> int:
        self._idempotency = {k: r for k, r in self._idempotency.items() if r.expires_at > now}
        cutoff = now - self.task_ttl_ms
        old = [uid for uid, task in self._tasks.items() if task_expiry_base(task) < cutoff]
        for uid in old:
            del self._tasks[uid]
            self._unfinished.discard(uid)
        return len(old)

    async def claim_idempotency_key(
        self, key: str, body_hash: str, task_uid: int, now: int, ttl_ms: int,
        max_keys: int | None = None,
    ) -> IdempotencyRecord:
        existing = await self.get_idempotency_key(key, now)
        if existing is not None:
            return existing
        record = IdempotencyRecord(key, body_hash, task_uid, now + ttl_ms)
        self._idempotency.pop(key, None)  # an expired record of the same key
        if max_keys is not None and len(self._idempotency) >= max_keys:
            by_expiry = sorted(self._idempotency.values(), key=lambda r: (r.expires_at, r.key))
            for evicted in by_expiry[:len(self._idempotency) - max_keys + 1]:
                del self._idempotency[evicted.key]
        self._idempotency[key] = record
        return record

    async def release_idempotency_key(self, key: str, task_uid: int) -> bool:
        record = self._idempotency.get(key)
        if record is None or record.task_uid != task_uid:
            return False
        del self._idempotency[key]
        return True

    async def get_idempotency_key(self, key: str, now: int) -> IdempotencyRecord | None:
        record = self._idempotency.get(key)
        return record if record is not None and record.expires_at > now else None

    async def allocate_settings_version(self, index_uid: str) -> int:
        self._settings_counters[index_uid] = self._settings_counters.get(index_uid, 0) + 1
        return self._settings_counters[index_uid]

    async def get_settings_versions(self, index_uid: str) -> dict[str, int]:
        return dict(self._settings.get(index_uid, {}))

    async def record_settings_version(self, index_uid: str, node_id: str, version: int) -> int:
        versions = self._settings.setdefault(index_uid, {})
        versions[node_id] = max(versions.get(node_id, version), version)
        return versions[node_id]

    async def delete_settings_versions(self, index_uid: str) -> None:
        self._settings.pop(index_uid, None)
        self._settings_counters.pop(index_uid, None)
        self._committed.pop(index_uid, None)

    async def commit_settings(
        self, index_uid: str, version: int, settings: dict[str, Any]
    ) -> CommittedSettings:
        current = self._committed.get(index_uid)
        if current is not None and current.version >= version:
            return current
        # A copy through JSON: the stored value must not change with the caller's dict.
        committed = CommittedSettings(version, orjson.loads(orjson.dumps(settings)))
        self._committed[index_uid] = committed
        return committed

    async def get_committed_settings(self, index_uid: str) -> CommittedSettings | None:
        return self._committed.get(index_uid)

    async def bump_index_version(self, index_uid: str) -> int:
        self._index_versions[index_uid] = self._index_versions.get(index_uid, 0) + 1
        return self._index_versions[index_uid]

    async def get_index_version(self, index_uid: str) -> int:
        return self._index_versions.get(index_uid, 0)

    async def insert_api_key(self, uid: str, record: dict) -> bool:
        if uid in self._api_keys:
            return False
        self._api_keys[uid] = copy.deepcopy(record)
        self._api_keys_version += 1
        return True

    async def replace_api_key(self, uid: str, record: dict) -> bool:
        if uid not in self._api_keys:
            return False
        self._api_keys[uid] = copy.deepcopy(record)
        self._api_keys_version += 1
        return True

    async def delete_api_key(self, uid: str) -> bool:
        if self._api_keys.pop(uid, None) is None:
            return False
        self._api_keys_version += 1
        return True

    async def seed_api_keys(self, records: dict[str, dict]) -> bool:
        if self._api_keys:
            return False
        self._api_keys.update(copy.deepcopy(records))
        self._api_keys_version += 1
        return True

    async def list_api_keys(self) -> list[dict]:
        return copy.deepcopy(list(self._api_keys.values()))

    async def get_api_keys_version(self) -> int:
        return self._api_keys_version

    async def get_webhooks(self) -> dict[str, dict]:
        return copy.deepcopy(self._webhooks)

    async def modify_webhooks(
        self, change: Callable[[dict[str, dict]], dict[str, dict]]
    ) -> dict[str, dict]:
        changed = change(copy.deepcopy(self._webhooks))
        self._webhooks = copy.deepcopy(changed)
        return changed

    async def acquire_lease(self, name: str, holder: str, now: int, ttl_ms: int) -> Lease | None:
        lease = lease_after_acquire(self._leases.get(name), name, holder, now, ttl_ms)
        if lease is not None:
            self._leases[name] = lease
        return lease

    async def renew_lease(self, name: str, holder: str, now: int, ttl_ms: int) -> Lease | None:
        lease = lease_after_renew(self._leases.get(name), holder, now, ttl_ms)
        if lease is not None:
            self._leases[name] = lease
        return lease

    async def release_lease(self, name: str, holder: str) -> bool:
        lease = self._leases.get(name)
        if lease is None or lease.holder != holder or lease.expires_at <= 0:
            return False
        self._leases[name] = attrs.evolve(lease, expires_at=0)
        return True

    async def get_lease(self, name: str, now: int) -> Lease | None:
        lease = self._leases.get(name)
        return lease if lease is not None and lease.expires_at > now else None

    async def get_record(self, name: str) -> VersionedRecord | None:
        record = self._records.get(name)
        # A copy, as the other backends return: a caller mutating it must not change the store.
        return None if record is None else attrs.evolve(record, value=copy.deepcopy(record.value))

    async def put_record_if(
        self, name: str, expected_version: int, value: dict[str, Any]
    ) -> VersionedRecord | None:
        record = record_after_put(self._records.get(name), name, expected_version,
                                  copy.deepcopy(value))
        if record is None:
            return None
        self._records[name] = record
        return attrs.evolve(record, value=value)

    async def delete_record_if(self, name: str, expected_version: int) -> bool:
        record = self._records.get(name)
        if record is None or record.version != expected_version:
            return False
        del self._records[name]
        return True

    async def put_process_record(
        self, process_id: str, value: dict[str, Any], now: int, ttl_ms: int
    ) -> None:
        self._processes = {p: v for p, v in self._processes.items() if v[0] > now}
        self._processes[process_id] = (now + ttl_ms, copy.deepcopy(value))

    async def list_live_processes(self, now: int) -> dict[str, dict[str, Any]]:
        return {p: copy.deepcopy(v) for p, (expires, v) in self._processes.items()
                if expires > now}

    async def delete_process_record(self, process_id: str) -> bool:
        return self._processes.pop(process_id, None) is not None
