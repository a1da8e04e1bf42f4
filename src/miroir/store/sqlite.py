"""The SQLite store: the embedded default, one file shared by the proxy processes of one machine.

The file is opened in WAL mode (readers never block the writer) with `synchronous=FULL` by
default: every commit is fsynced, so a task uid handed out survives even a power cut and is never
handed out twice. That costs one fsync per write (about 100 commits/s on the team's machine,
docs/benchmarks.md); `synchronous="normal"` commits without fsync (tens of times faster) and
stays safe across process crashes, but a power cut or kernel crash may lose the last commits,
and with them uids that clients already saw. Several
hypercorn workers share the file; SQLite's own locking serializes their writes and
`busy_timeout` makes a writer wait its turn instead of failing. Every read-modify-write runs
inside `BEGIN IMMEDIATE`, which takes the write lock up front, so two processes can never
interleave one.

Calls run in worker threads (see _threads.py), one pooled connection per running call. This
module owns the schema and the SQL; it must never decide policy (statuses, lease rules, query
semantics), which come from miroir.core.tasks and store.base.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson

from miroir.core.tasks import (
    Task,
    TaskPage,
    TaskQuery,
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
    lease_after_acquire,
    lease_after_renew,
    make_task,
    record_after_put,
    task_expiry_base,
)

T = TypeVar("T")
SCHEMA_VERSION = 1
_TASK_UID_COUNTER = "task_uid"
_API_KEYS_COUNTER = "api_keys"
_memory_names = itertools.count()

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    uid INTEGER PRIMARY KEY,
    index_uid TEXT,
    status TEXT NOT NULL,
    type TEXT NOT NULL,
    canceled_by INTEGER,
    enqueued_at INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    expiry_base INTEGER NOT NULL,
    record BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_by_index ON tasks (index_uid, uid);
CREATE INDEX IF NOT EXISTS tasks_by_expiry ON tasks (expiry_base);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key TEXT PRIMARY KEY, body_hash TEXT NOT NULL, task_uid INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idempotency_by_expiry ON idempotency_keys (expires_at);
CREATE TABLE IF NOT EXISTS committed_settings (
    index_uid TEXT PRIMARY KEY, version INTEGER NOT NULL, settings BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS settings_versions (
    index_uid TEXT NOT NULL, node_id TEXT NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (index_uid, node_id)
);
CREATE TABLE IF NOT EXISTS api_keys (uid TEXT PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    name TEXT PRIMARY KEY, version INTEGER NOT NULL, value BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at INTEGER NOT NULL,
    token INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS webhooks (uuid TEXT PRIMARY KEY, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS processes (
    id TEXT PRIMARY KEY, expires_at INTEGER NOT NULL, value BLOB NOT NULL
);
"""


class SqliteStore:
    """The Store protocol on one SQLite file. Open with `await SqliteStore.open(path)`."""

    def __init__(self, target: str, uri: bool, in_memory: bool, busy_timeout_s: float,
                 threads: int, task_ttl_ms: int, synchronous: str = "full") -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError("synchronous must be 'full' or 'normal'")
        self._synchronous = synchronous.upper()
        self.task_ttl_ms = task_ttl_ms
        self._target = target
        self._uri = uri
        self._in_memory = in_memory
        self._busy_timeout_s = busy_timeout_s
        self._runner = ThreadRunner(threads, (sqlite3.Error,), "SQLite task store")
        self._idle: list[sqlite3.Connection] = []
        self._all: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._closed = False

    @classmethod
    async def open(cls, path: str, *, busy_timeout_s: float = 5.0, threads: int = 4,
                   task_ttl_ms: int = DEFAULT_TASK_TTL_MS, synchronous: str = "full",
                   ) -> SqliteStore:
        """Open (creating if needed) the store at `path`; `:memory:` gives a private database."""
        if path == ":memory:":
            # A named shared-cache memory database, so the pooled connections see one database.
            target = f"file:miroir-store-{next(_memory_names)}?mode=memory&cache=shared"
            # Shared-cache locks are not covered by busy_timeout: one connection, one thread.
            store = cls(target, True, True, busy_timeout_s, 1, task_ttl_ms, synchronous)
        else:
            store = cls(path, False, False, busy_timeout_s, threads, task_ttl_ms, synchronous)
        try:
            await store._runner.run(store._create_schema)
        except StoreError as exc:
            await store.close()
            raise StoreUnavailable(f"cannot open the SQLite task store at {path!r}: {exc}") from exc
        return store

    # ---- connections and transactions

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._target, timeout=self._busy_timeout_s, uri=self._uri,
                               isolation_level=None, check_same_thread=False)
        if not self._in_memory:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
        return conn

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._pool_lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
            with self._pool_lock:
                self._all.append(conn)
        try:
            yield conn
        finally:
            with self._pool_lock:
                self._idle.append(conn)

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in a write transaction that holds the database write lock from its start."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = fn(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` in a read transaction: one consistent snapshot for all its statements."""
        with self._connection() as conn:
            conn.execute("BEGIN")
            try:
                return fn(conn)
            finally:
                conn.execute("ROLLBACK")

    def _create_schema(self) -> None:
        def create(conn: sqlite3.Connection) -> None:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(
                    f"schema version {version} is newer than this Miroir ({SCHEMA_VERSION})")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

        self._write(create)

    async def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            conns, self._all, self._idle = self._all, [], []
        for conn in conns:
            conn.close()

    # ---- tasks

    async def allocate_task_uid(self) -> int:
        return await self._runner.run(self._bump_counter, _TASK_UID_COUNTER, 0)

    def _bump_counter(self, name: str, first: int = 1) -> int:
        # One statement in autocommit mode: atomic across every process sharing the file.
        with self._connection() as conn:
            return _bump(conn, name, first)

    async def create_task(self, make: Callable[[int], Task]) -> Task:
        def create(conn: sqlite3.Connection) -> Task:
            task = make_task(make, _bump(conn, _TASK_UID_COUNTER, 0))
            _upsert_task(conn, task)
            return task

        return await self._runner.run(self._write, create)

    async def put_task(self, task: Task) -> None:
        def put(conn: sqlite3.Connection) -> None:
            _upsert_task(conn, task)
            # A uid put from outside the allocator must never be allocated again.
            conn.execute(
                "INSERT INTO counters (name, value) VALUES (?, ?) "
                "ON CONFLICT (name) DO UPDATE SET value = max(value, excluded.value)",
                (_TASK_UID_COUNTER, task.uid),
            )

        await self._runner.run(self._write, put)

    async def get_task(self, uid: int) -> Task | None:
        def get(conn: sqlite3.Connection) -> Task | None:
            row = conn.execute("SELECT record FROM tasks WHERE uid = ?", (uid,)).fetchone()
            return None if row is None else _decode_task(row[0])

        return await self._runner.run(self._read, get)

    async def modify_task(self, uid: int, change: Callable[[Task], Task]) -> Task | None:
        def modify(conn: sqlite3.Connection) -> Task | None:
            row = conn.execute("SELECT record FROM tasks WHERE uid = ?", (uid,)).fetchone()
            if row is None:
                return None
            changed = change(_decode_task(row[0]))
            if changed.uid != uid:
                raise ValueError("modify_task cannot change a task's uid")
            _upsert_task(conn, changed)
            return changed

        return await self._runner.run(self._write, modify)

    async def list_tasks(self, query: TaskQuery) -> TaskPage:
        where, params = _task_filter_sql(query)

        def list_(conn: sqlite3.Connection) -> TaskPage:
            (total,) = conn.execute(f"SELECT COUNT(*) FROM tasks WHERE {where}", params).fetchone()
            page_where, page_params = where, list(params)
            if query.from_uid is not None:
                page_where += " AND uid >= ?" if query.reverse else " AND uid <= ?"
                page_params.append(query.from_uid)
            order = "ASC" if query.reverse else "DESC"
            rows = conn.execute(
                f"SELECT record FROM tasks WHERE {page_where} ORDER BY uid {order} LIMIT ?",
                [*page_params, query.limit + 1],
            ).fetchall()
            return page_from_window([_decode_task(r[0]) for r in rows], total, query)

        return await self._runner.run(self._read, list_)

    async def delete_tasks(self, uids: Iterable[int]) -> int:
        encoded = orjson.dumps(sorted(set(uids)))

        def delete(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM tasks WHERE uid IN (SELECT value FROM json_each(?))", (encoded,)
            ).rowcount

        return await self._runner.run(self._write, delete)

    async def prune_tasks(self, now: int) -> int:
        def prune(conn: sqlite3.Connection) -> int:
            conn.execute("DELETE FROM idempotency_keys WHERE expires_at <= ?", (now,))
            return conn.execute(
                "DELETE FROM tasks WHERE expiry_base < ?", (now - self.task_ttl_ms,)
            ).rowcount

        return await self._runner.run(self._write, prune)

    # ---- idempotency keys

    async def claim_idempotency_key(
        self, key: str, body_hash: str, task_uid: int, now: int, ttl_ms: int,
        max_keys: int | None = None,
    ) -> IdempotencyRecord:
        def claim(conn: sqlite3.Connection) -> IdempotencyRecord:
            existing = _get_idempotency(conn, key, now)
            if existing is not None:
                return existing
            record = IdempotencyRecord(key, body_hash, task_uid, now + ttl_ms)
            conn.execute("DELETE FROM idempotency_keys WHERE key = ?", (key,))
            if max_keys is not None:
                (held,) = conn.execute("SELECT COUNT(*) FROM idempotency_keys").fetchone()
                if held >= max_keys:
                    conn.execute(
                        "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM "
                        "idempotency_keys ORDER BY expires_at, key LIMIT ?)",
                        (held - max_keys + 1,),
                    )
            conn.execute(
                "INSERT INTO idempotency_keys (key, body_hash, task_uid, expires_at) "
                "VALUES (?, ?, ?, ?)",
                (key, body_hash, task_uid, record.expires_at),
            )
            return record

        return await self._runner.run(self._write, claim)

    async def release_idempotency_key(self, key: str, task_uid: int) -> bool:
        def release(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "DELETE FROM idempotency_keys WHERE key = ? AND task_uid = ?", (key, task_uid)
            ).rowcount > 0

        return await self._runner.run(self._write, release)

    async def get_idempotency_key(self, key: str, now: int) -> IdempotencyRecord | None:
        return await self._runner.run(self._read, lambda conn: _get_idempotency(conn, key, now))

    # ---- settings versions

    async def allocate_settings_version(self, index_uid: str) -> int:
        return await self._runner.run(self._bump_counter, f"settings:{index_uid}")

    async def get_settings_versions(self, index_uid: str) -> dict[str, int]:
        def get(conn: sqlite3.Connection) -> dict[str, int]:
            rows = conn.execute(
                "SELECT node_id, version FROM settings_versions WHERE index_uid = ?", (index_uid,)
            )
            return dict(rows.fetchall())

        return await self._runner.run(self._read, get)

    async def record_settings_version(self, index_uid: str, node_id: str, version: int) -> int:
        def record(conn: sqlite3.Connection) -> int:
            (stored,) = conn.execute(
                "INSERT INTO settings_versions (index_uid, node_id, version) VALUES (?, ?, ?) "
                "ON CONFLICT (index_uid, node_id) DO UPDATE "
                "SET version = max(version, excluded.version) RETURNING version",
                (index_uid, node_id, version),
            ).fetchall()[0]
            return stored

        return await self._runner.run(self._write, record)

    async def delete_settings_versions(self, index_uid: str) -> None:
        def delete(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM settings_versions WHERE index_uid = ?", (index_uid,))
            conn.execute("DELETE FROM committed_settings WHERE index_uid = ?", (index_uid,))
            conn.execute("DELETE FROM counters WHERE name = ?", (f"settings:{index_uid}",))

        await self._runner.run(self._write, delete)

    async def commit_settings(
        self, index_uid: str, version: int, settings: dict[str, Any]
    ) -> CommittedSettings:
        encoded = orjson.dumps(settings)

        def commit(conn: sqlite3.Connection) -> CommittedSettings:
            conn.execute(
                "INSERT INTO committed_settings (index_uid, version, settings) VALUES (?, ?, ?) "
                "ON CONFLICT (index_uid) DO UPDATE SET version = excluded.version, "
                "settings = excluded.settings WHERE excluded.version > version",
                (index_uid, version, encoded),
            )
            found = _get_committed(conn, index_uid)
            assert found is not None
            return found

        return await self._runner.run(self._write, commit)

    async def get_committed_settings(self, index_uid: str) -> CommittedSettings | None:
        return await self._runner.run(self._read, lambda conn: _get_committed(conn, index_uid))

    # ---- index versions: one counter per index, `index:<uid>`, beside the task uid counter

    async def bump_index_version(self, index_uid: str) -> int:
        return await self._runner.run(self._bump_counter, f"index:{index_uid}")

    async def get_index_version(self, index_uid: str) -> int:
        def get(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT value FROM counters WHERE name = ?", (f"index:{index_uid}",)
            ).fetchone()
            return 0 if row is None else row[0]

        return await self._runner.run(self._read, get)

    # ---- API keys: one row per key; the version is the `api_keys` counter

    async def insert_api_key(self, uid: str, record: dict) -> bool:
        def insert(conn: sqlite3.Connection) -> bool:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO api_keys (uid, record) VALUES (?, ?)",
                (uid, orjson.dumps(record)),
            ).rowcount == 1
            if inserted:
                _bump(conn, _API_KEYS_COUNTER)
            return inserted

        return await self._runner.run(self._write, insert)

    async def replace_api_key(self, uid: str, record: dict) -> bool:
        def replace(conn: sqlite3.Connection) -> bool:
            replaced = conn.execute(
                "UPDATE api_keys SET record = ? WHERE uid = ?", (orjson.dumps(record), uid)
            ).rowcount == 1
            if replaced:
                _bump(conn, _API_KEYS_COUNTER)
            return replaced

        return await self._runner.run(self._write, replace)

    async def delete_api_key(self, uid: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            deleted = conn.execute("DELETE FROM api_keys WHERE uid = ?", (uid,)).rowcount == 1
            if deleted:
                _bump(conn, _API_KEYS_COUNTER)
            return deleted

        return await self._runner.run(self._write, delete)

    async def seed_api_keys(self, records: dict[str, dict]) -> bool:
        def seed(conn: sqlite3.Connection) -> bool:
            if conn.execute("SELECT 1 FROM api_keys LIMIT 1").fetchone() is not None:
                return False
            conn.executemany("INSERT INTO api_keys (uid, record) VALUES (?, ?)",
                             [(uid, orjson.dumps(record)) for uid, record in records.items()])
            _bump(conn, _API_KEYS_COUNTER)
            return True

        return await self._runner.run(self._write, seed)

    async def list_api_keys(self) -> list[dict]:
        def list_(conn: sqlite3.Connection) -> list[dict]:
            return [orjson.loads(blob) for (blob,) in conn.execute("SELECT record FROM api_keys")]

        return await self._runner.run(self._read, list_)

    async def get_api_keys_version(self) -> int:
        def get(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT value FROM counters WHERE name = ?", (_API_KEYS_COUNTER,)
            ).fetchone()
            return 0 if row is None else row[0]

        return await self._runner.run(self._read, get)

    # ---- webhooks

    async def get_webhooks(self) -> dict[str, dict]:
        def get(conn: sqlite3.Connection) -> dict[str, dict]:
            return {uuid: orjson.loads(record)
                    for uuid, record in conn.execute("SELECT uuid, record FROM webhooks")}

        return await self._runner.run(self._read, get)

    async def modify_webhooks(
        self, change: Callable[[dict[str, dict]], dict[str, dict]]
    ) -> dict[str, dict]:
        def modify(conn: sqlite3.Connection) -> dict[str, dict]:
            current = {uuid: orjson.loads(record)
                       for uuid, record in conn.execute("SELECT uuid, record FROM webhooks")}
            changed = change(current)
            conn.execute("DELETE FROM webhooks")
            conn.executemany("INSERT INTO webhooks (uuid, record) VALUES (?, ?)",
                             [(uuid, orjson.dumps(record)) for uuid, record in changed.items()])
            return changed

        return await self._runner.run(self._write, modify)

    # ---- leases

    async def acquire_lease(self, name: str, holder: str, now: int, ttl_ms: int) -> Lease | None:
        return await self._runner.run(
            self._write,
            lambda conn: _store_lease(
                conn, lease_after_acquire(_get_lease(conn, name), name, holder, now, ttl_ms)),
        )

    async def renew_lease(self, name: str, holder: str, now: int, ttl_ms: int) -> Lease | None:
        return await self._runner.run(
            self._write,
            lambda conn: _store_lease(
                conn, lease_after_renew(_get_lease(conn, name), holder, now, ttl_ms)),
        )

    async def release_lease(self, name: str, holder: str) -> bool:
        def release(conn: sqlite3.Connection) -> bool:
            # Released leases keep their row (expires_at 0) so the fencing token keeps counting.
            return conn.execute(
                "UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ? AND expires_at > 0",
                (name, holder),
            ).rowcount == 1

        return await self._runner.run(self._write, release)

    async def get_lease(self, name: str, now: int) -> Lease | None:
        def get(conn: sqlite3.Connection) -> Lease | None:
            lease = _get_lease(conn, name)
            return lease if lease is not None and lease.expires_at > now else None

        return await self._runner.run(self._read, get)

    # ---- versioned records

    async def get_record(self, name: str) -> VersionedRecord | None:
        return await self._runner.run(self._read, lambda conn: _get_record(conn, name))

    async def put_record_if(
        self, name: str, expected_version: int, value: dict[str, Any]
    ) -> VersionedRecord | None:
        encoded = orjson.dumps(value)

        def put(conn: sqlite3.Connection) -> VersionedRecord | None:
            record = record_after_put(_get_record(conn, name), name, expected_version, value)
            if record is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO records (name, version, value) VALUES (?, ?, ?)",
                    (name, record.version, encoded),
                )
            return record

        return await self._runner.run(self._write, put)

    async def delete_record_if(self, name: str, expected_version: int) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "DELETE FROM records WHERE name = ? AND version = ?", (name, expected_version)
            ).rowcount == 1

        return await self._runner.run(self._write, delete)

    # ---- process heartbeats

    async def put_process_record(
        self, process_id: str, value: dict[str, Any], now: int, ttl_ms: int
    ) -> None:
        encoded = orjson.dumps(value)

        def put(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM processes WHERE expires_at <= ?", (now,))
            conn.execute(
                "INSERT OR REPLACE INTO processes (id, expires_at, value) VALUES (?, ?, ?)",
                (process_id, now + ttl_ms, encoded),
            )

        await self._runner.run(self._write, put)

    async def list_live_processes(self, now: int) -> dict[str, dict[str, Any]]:
        def get(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
            rows = conn.execute(
                "SELECT id, value FROM processes WHERE expires_at > ?", (now,)).fetchall()
            return {row[0]: orjson.loads(row[1]) for row in rows}

        return await self._runner.run(self._read, get)

    async def delete_process_record(self, process_id: str) -> bool:
        def delete(conn: sqlite3.Connection) -> bool:
            return conn.execute(
                "DELETE FROM processes WHERE id = ?", (process_id,)).rowcount == 1

        return await self._runner.run(self._write, delete)


def _get_record(conn: sqlite3.Connection, name: str) -> VersionedRecord | None:
    row = conn.execute("SELECT version, value FROM records WHERE name = ?", (name,)).fetchone()
    return None if row is None else VersionedRecord(name, row[0], orjson.loads(row[1]))


def _bump(conn: sqlite3.Connection, name: str, first: int = 1) -> int:
    """Raise counter `name` by one and return it; `first` when the counter is new (task uids
    begin at 0, as Meilisearch's do; versions at 1)."""
    # fetchall: a RETURNING statement holds its write until it is stepped to the end.
    (value,) = conn.execute(
        "INSERT INTO counters (name, value) VALUES (?, ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + 1 RETURNING value",
        (name, first),
    ).fetchall()[0]
    return value


def _decode_task(blob: bytes) -> Task:
    return task_from_record(orjson.loads(blob))


def _upsert_task(conn: sqlite3.Connection, task: Task) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO tasks (uid, index_uid, status, type, canceled_by, enqueued_at, "
        "started_at, finished_at, expiry_base, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (task.uid, task.index_uid, task.status, task.type, task.canceled_by, task.enqueued_at,
         task.started_at, task.finished_at, task_expiry_base(task),
         orjson.dumps(task_to_record(task))),
    )


def _task_filter_sql(query: TaskQuery) -> tuple[str, list[Any]]:
    """The WHERE clause of `query`'s filters (not from/limit), mirroring TaskQuery.matches."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, values in (("uid", query.uids), ("status", query.statuses),
                           ("type", query.types), ("index_uid", query.index_uids),
                           ("canceled_by", query.canceled_by)):
        if values is not None:
            clauses.append(f"{column} IN (SELECT value FROM json_each(?))")
            params.append(orjson.dumps(sorted(values)))
    if query.batch_uids is not None:
        clauses.append("0")  # Miroir tasks have no batch uid.
    for which in ("enqueued", "started", "finished"):
        after, before = query.bounds_ms(which)
        if after is not None:
            clauses.append(f"{which}_at > ?")
            params.append(after)
        if before is not None:
            clauses.append(f"{which}_at < ?")
            params.append(before)
    return (" AND ".join(clauses) or "1"), params


def _get_committed(conn: sqlite3.Connection, index_uid: str) -> CommittedSettings | None:
    row = conn.execute(
        "SELECT version, settings FROM committed_settings WHERE index_uid = ?", (index_uid,)
    ).fetchone()
    return None if row is None else CommittedSettings(row[0], orjson.loads(row[1]))


def _get_idempotency(conn: sqlite3.Connection, key: str, now: int) -> IdempotencyRecord | None:
    row = conn.execute(
        "SELECT body_hash, task_uid, expires_at FROM idempotency_keys WHERE key = ?", (key,)
    ).fetchone()
    if row is None or row[2] <= now:
        return None
    return IdempotencyRecord(key, row[0], row[1], row[2])


def _get_lease(conn: sqlite3.Connection, name: str) -> Lease | None:
    row = conn.execute(
        "SELECT holder, expires_at, token FROM leases WHERE name = ?", (name,)
    ).fetchone()
    return None if row is None else Lease(name, row[0], row[1], row[2])


def _store_lease(conn: sqlite3.Connection, lease: Lease | None) -> Lease | None:
    if lease is not None:
        conn.execute(
            "INSERT OR REPLACE INTO leases (name, holder, expires_at, token) VALUES (?, ?, ?, ?)",
            (lease.name, lease.holder, lease.expires_at, lease.token),
        )
    return lease
