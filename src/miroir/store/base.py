"""The store protocol: Miroir's durable state, shared by every proxy process.

What lives here: task records (miroir.core.tasks.Task) with cluster-wide integer uids,
idempotency keys, per-(index, node) settings versions, per-index catalog versions, leases,
API keys (their records only: a key's value is derived from the master key, never stored), and
versioned records (the live topology and its epoch, the rebalancer's state: small JSON objects
replaced only by compare-and-set on their version) and the webhooks (miroir.core.webhooks,
as their storage records). Every method is async (trio)
and every time is an integer of milliseconds since the epoch passed in by the caller, so the
simulator can drive a store with virtual time.

Concurrency contract, for every backend: anything two proxies could race on is atomic in the
backend itself (task uid allocation, `modify_task`, idempotency claims, settings and index
version bumps, leases), never a read followed by a write in Python without a transaction around it.

This module owns the protocol, the value types and the errors. It must never import a backend
client (sqlite3, redis) and never hold state; backends live beside it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

import attrs

from miroir.core.tasks import Task, TaskPage, TaskQuery

DEFAULT_TASK_TTL_MS = 7 * 24 * 3600 * 1000


class StoreError(Exception):
    """The store could not do what was asked (backend failure, corrupt record)."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or opened. Raised by open_store at startup, never a hang."""


@attrs.frozen
class IdempotencyRecord:
    """A client's idempotency key: the body it came with, the task it produced, when it lapses."""

    key: str
    body_hash: str
    task_uid: int
    expires_at: int


@attrs.frozen
class CommittedSettings:
    """An index's settings as committed cluster-wide: `version` (from
    `allocate_settings_version`) and the settings every node was read back holding."""

    version: int
    settings: dict[str, Any]


@attrs.frozen
class VersionedRecord:
    """A named JSON object and its version: 1 when first put, +1 on every replacement."""

    name: str
    version: int
    value: dict[str, Any]


@attrs.frozen
class Lease:
    """A named lease. `token` increases on every change of holder: a fencing token."""

    name: str
    holder: str
    expires_at: int
    token: int


class Store(Protocol):
    """Durable state shared by proxies. All times are integer milliseconds since the epoch."""

    task_ttl_ms: int

    async def close(self) -> None:
        """Release connections and threads. The data stays."""

    # ---- tasks
    async def allocate_task_uid(self) -> int:
        """A task uid never handed out before by any store instance sharing this backend.

        Uids increase: a uid allocated after another one returned is larger. A fresh store's
        first uid is 0, as a fresh Meilisearch's first task is. Every backend keeps the last
        uid handed out (none yet: the first is 0), so a store written when uids began at 1
        goes on after its last uid and never hands one out again.
        """

    async def create_task(self, make: Callable[[int], Task]) -> Task:
        """Allocate a task uid and store `make(uid)` in one step (one commit on SQLite).

        The usual way to record a new write: `await store.create_task(lambda uid: Task(...))`.
        `make` must return a task with that uid and must be pure.
        """

    async def put_task(self, task: Task) -> None:
        """Insert or replace the task with `task.uid`."""

    async def get_task(self, uid: int) -> Task | None:
        ...

    async def modify_task(self, uid: int, change: Callable[[Task], Task]) -> Task | None:
        """Atomically replace task `uid` by `change(task)`; None if there is no such task.

        `change` must be pure: a backend may call it again when another writer raced it.
        """

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        """Meilisearch's GET /tasks over the stored tasks (filters, order, from, limit, total)."""

    async def delete_tasks(self, uids: Iterable[int]) -> int:
        """Delete these tasks; returns how many existed."""

    async def prune_tasks(self, now: int) -> int:
        """Delete tasks that finished (or, if never finished, were enqueued) more than
        `task_ttl_ms` before `now`, and idempotency keys that expired by `now`.
        Returns the number of tasks deleted."""

    # ---- idempotency keys
    async def claim_idempotency_key(
        self, key: str, body_hash: str, task_uid: int, now: int, ttl_ms: int,
        max_keys: int | None = None,
    ) -> IdempotencyRecord:
        """Record `key` unless an unexpired record exists; return whichever record now stands.

        The caller won the key iff the returned record's task_uid is its own. With `max_keys`,
        a new record that takes the store past that many keys evicts the ones that expire
        first (never the new one), so the keys held stay bounded whatever clients send.
        """

    async def release_idempotency_key(self, key: str, task_uid: int) -> bool:
        """Forget `key` if its record still names `task_uid` (the claimer gives it back when
        the write it guarded was not accepted, so a retry runs again). True if released."""

    async def get_idempotency_key(self, key: str, now: int) -> IdempotencyRecord | None:
        ...

    # ---- settings versions
    async def allocate_settings_version(self, index_uid: str) -> int:
        """The next settings version of an index: 1, 2, 3, ... across all proxies."""

    async def get_settings_versions(self, index_uid: str) -> dict[str, int]:
        """node id -> settings version applied on that node, for one index."""

    async def record_settings_version(self, index_uid: str, node_id: str, version: int) -> int:
        """Raise the node's version to `version` (never lowers it); returns the stored version."""

    async def delete_settings_versions(self, index_uid: str) -> None:
        """Forget an index's settings versions and committed settings (index deleted)."""

    async def commit_settings(
        self, index_uid: str, version: int, settings: dict[str, Any]
    ) -> CommittedSettings:
        """Make `settings` the index's committed settings at `version`, unless a version at
        least as high is committed already; returns whichever commit now stands."""

    async def get_committed_settings(self, index_uid: str) -> CommittedSettings | None:
        """The index's committed settings; None before its first committed settings change."""

    # ---- index versions (what every process's index catalog is checked against)
    async def bump_index_version(self, index_uid: str) -> int:
        """Raise the index's version by one and return it. Called after an index was created,
        deleted, renamed, or had its primary key or settings changed, by whichever process did it.

        Versions only go up, across all proxies, and survive the index's deletion: a recreated
        index never shows a version an older incarnation already had."""

    async def get_index_version(self, index_uid: str) -> int:
        """The index's current version; 0 for an index no process ever changed."""

    # ---- API keys: records as miroir.core.keys.ApiKey.to_record gives them, by uid. Every
    # change raises one version counter, which each process's key cache checks (cluster.keys).
    async def insert_api_key(self, uid: str, record: dict) -> bool:
        """Store the key unless one with `uid` exists; True if stored (then the version rises)."""

    async def replace_api_key(self, uid: str, record: dict) -> bool:
        """Replace an existing key; False (nothing written) if there is none."""

    async def delete_api_key(self, uid: str) -> bool:
        """Delete the key; True if it existed."""

    async def seed_api_keys(self, records: dict[str, dict]) -> bool:
        """Store every record (uid -> record) iff no key is stored at all, in one atomic step;
        True if they were stored. How the default keys appear on a fresh store."""

    async def list_api_keys(self) -> list[dict]:
        """Every stored key record, in no particular order."""

    async def get_api_keys_version(self) -> int:
        """Raised by one on every change to the keys; 0 while none was ever made."""

    # ---- leases
    async def acquire_lease(self, name: str, holder: str, now: int, ttl_ms: int) -> Lease | None:
        """Take the lease if it is free or expired (new token), or extend it if `holder` already
        has it (same token). None if someone else holds it."""

    async def renew_lease(self, name: str, holder: str, now: int, ttl_ms: int) -> Lease | None:
        """Extend a lease `holder` still holds; None if it expired or changed hands."""

    async def release_lease(self, name: str, holder: str) -> bool:
        """Give the lease up if `holder` has it; True if it was released."""

    async def get_lease(self, name: str, now: int) -> Lease | None:
        """The unexpired lease on `name`, if any."""

    # ---- versioned records (the topology and its epoch, the rebalancer's state)
    async def get_record(self, name: str) -> VersionedRecord | None:
        """The record `name` as last put, or None if it was never put (or was deleted)."""

    async def put_record_if(
        self, name: str, expected_version: int, value: dict[str, Any]
    ) -> VersionedRecord | None:
        """Compare-and-set: store `value` as version `expected_version + 1` iff the record's
        current version is `expected_version` (0: it must not exist). Returns the stored record,
        or None when another writer got there first (read it again and decide again)."""

    async def delete_record_if(self, name: str, expected_version: int) -> bool:
        """Delete the record iff its version is `expected_version`; True if deleted."""

    # ---- process heartbeats (which epoch each live proxy process routes by)
    async def put_process_record(
        self, process_id: str, value: dict[str, Any], now: int, ttl_ms: int
    ) -> None:
        """Store (or replace) `process_id`'s record, live until `now + ttl_ms`."""

    async def list_live_processes(self, now: int) -> dict[str, dict[str, Any]]:
        """Every process record not expired at `now`, by process id (expired ones are gone:
        a process that died stops counting once its last record lapses)."""

    async def delete_process_record(self, process_id: str) -> bool:
        """Forget `process_id` (a process stopping cleanly); True if it had a record."""

    # ---- webhooks: a small collection (at most 20), changed as a whole, atomically

    async def get_webhooks(self) -> dict[str, dict]:
        """Every webhook record, by uuid."""

    async def modify_webhooks(
        self, change: Callable[[dict[str, dict]], dict[str, dict]]
    ) -> dict[str, dict]:
        """Replace the webhooks with `change(current)` atomically (a racing writer makes
        `change` run again on what it wrote) and return what was stored. `change` must be pure
        and may raise to leave everything as it was."""


# ---- lease rules, shared by the backends that run them in Python (SQLite, memory). The Redis
# backend runs the same rules in Lua; tests/store holds both to one behaviour.


def lease_after_acquire(
    current: Lease | None, name: str, holder: str, now: int, ttl_ms: int
) -> Lease | None:
    """The lease to store when `holder` asks for it at `now`, or None when someone else has it."""
    if current is not None and current.expires_at > now:
        if current.holder != holder:
            return None
        return attrs.evolve(current, expires_at=now + ttl_ms)
    token = 1 if current is None else current.token + 1
    return Lease(name=name, holder=holder, expires_at=now + ttl_ms, token=token)


def lease_after_renew(current: Lease | None, holder: str, now: int, ttl_ms: int) -> Lease | None:
    """The extended lease, or None when `holder` no longer holds an unexpired lease."""
    if current is None or current.holder != holder or current.expires_at <= now:
        return None
    return attrs.evolve(current, expires_at=now + ttl_ms)


def record_after_put(
    current: VersionedRecord | None, name: str, expected_version: int, value: dict[str, Any]
) -> VersionedRecord | None:
    """The record to store for `put_record_if`, or None when `expected_version` is stale."""
    current_version = 0 if current is None else current.version
    if current_version != expected_version:
        return None
    return VersionedRecord(name=name, version=expected_version + 1, value=value)


def make_task(make: Callable[[int], Task], uid: int) -> Task:
    """`make(uid)`, refused unless it kept that uid (the `create_task` contract, for backends)."""
    task = make(uid)
    if task.uid != uid:
        raise ValueError("create_task: make(uid) must return a task with that uid")
    return task


def task_expiry_base(task: Task) -> int:
    """The moment a task's TTL counts from: when it finished, or when it was enqueued."""
    return task.enqueued_at if task.finished_at is None else task.finished_at
