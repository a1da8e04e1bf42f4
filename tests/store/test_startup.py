"""Opening stores: configuration, unreachable backends, several processes on one SQLite file."""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys

import pytest

from miroir.store import StoreConfig, StoreUnavailable, open_store
from miroir.store.memory import MemoryStore
from miroir.store.sqlite import SqliteStore


async def test_redis_refusing_connections_is_a_clear_startup_error():
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreUnavailable, match=f"cannot reach the Redis task store at redis://127.0.0.1:{port}"):
        await open_store({"backend": "redis", "url": f"redis://127.0.0.1:{port}/0",
                          "timeout_seconds": 0.5})


async def test_a_redis_that_accepts_but_never_answers_is_an_error_not_a_hang():
    with socket.socket() as silent:  # the kernel completes the handshake; nobody ever replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        with pytest.raises(StoreUnavailable, match="cannot reach"):
            await open_store({"backend": "redis", "url": f"redis://127.0.0.1:{port}/0",
                              "timeout_seconds": 0.3})


async def test_an_unusable_redis_url_is_a_startup_error():
    with pytest.raises(StoreUnavailable, match="invalid Redis URL"):
        await open_store({"backend": "redis", "url": "http://127.0.0.1:6379"})


async def test_an_unopenable_sqlite_path_is_a_startup_error(tmp_path):
    with pytest.raises(StoreUnavailable, match="cannot open the SQLite task store"):
        await open_store({"backend": "sqlite", "path": str(tmp_path / "missing-dir" / "x.db")})


async def test_open_store_picks_the_backend_and_reads_its_settings(tmp_path):
    sqlite_store = await open_store(
        {"task_store": {"backend": "sqlite", "path": str(tmp_path / "s.db"), "ttl_seconds": 60}})
    assert isinstance(sqlite_store, SqliteStore) and sqlite_store.task_ttl_ms == 60_000
    await sqlite_store.close()

    # An argparse namespace carries the section's keys as attributes, among other things.
    args = argparse.Namespace(backend="memory", ttl_seconds=2, unrelated="ignored")
    memory_store = await open_store(args)
    assert isinstance(memory_store, MemoryStore) and memory_store.task_ttl_ms == 2000


async def test_open_store_takes_the_services_own_config_object(tmp_path):
    from miroir.config import TaskStoreConfig

    section = TaskStoreConfig(backend="sqlite", path=str(tmp_path / "t.db"), ttl_seconds=90)
    store = await open_store(section)
    assert isinstance(store, SqliteStore) and store.task_ttl_ms == 90_000
    await store.close()


@pytest.mark.parametrize(
    ("section", "complaint"),
    [({"backend": "postgres"}, "backend must be one of"),
     ({"ttl_seconds": 0}, "ttl_seconds must be a positive number"),
     ({"threads": 0}, "threads must be a positive integer"),
     ({"backend": "redis"}, "url is required"),
     ({"sqlite_synchronous": "off"}, "must be 'full' or 'normal'"),
     ({"pth": "x.db"}, "unknown task_store settings: pth")],
)
def test_bad_store_settings_are_named(section, complaint):
    with pytest.raises(ValueError, match=complaint):
        StoreConfig.from_mapping(section)


@pytest.mark.redis
async def test_the_real_redis_opens():
    store = await open_store({"backend": "redis", "url": "redis://127.0.0.1:6379/0",
                              "key_prefix": "miroir-test-open:"})
    assert await store.get_task(1) is None
    await store.close()


_ALLOCATE_IN_A_PROCESS = """
import json, sys, trio
from miroir.store import open_store

async def main():
    store = await open_store({"backend": "sqlite", "path": sys.argv[1]})
    uids = [await store.allocate_task_uid() for _ in range(int(sys.argv[2]))]
    lease = await store.acquire_lease("leader", sys.argv[3], now=0, ttl_ms=10**9)
    await store.close()
    print(json.dumps({"uids": uids, "leader": lease is not None}))

trio.run(main)
"""


def test_processes_sharing_one_sqlite_file_never_collide(tmp_path):
    """Several hypercorn workers on one machine: separate processes, one file."""
    path = str(tmp_path / "shared.db")
    workers = [
        subprocess.Popen([sys.executable, "-c", _ALLOCATE_IN_A_PROCESS, path, "150", f"w{i}"],
                         stdout=subprocess.PIPE, text=True)
        for i in range(3)
    ]
    answers = []
    for worker in workers:
        out, _ = worker.communicate(timeout=120)
        assert worker.returncode == 0
        answers.append(json.loads(out))
    uids = [uid for answer in answers for uid in answer["uids"]]
    assert sorted(uids) == list(range(450))  # from 0, as Meilisearch numbers tasks
    assert all(answer["uids"] == sorted(answer["uids"]) for answer in answers)
    assert sum(answer["leader"] for answer in answers) == 1


async def test_a_locked_sqlite_file_never_blocks_the_event_loop(tmp_path):
    """Another process holds the write lock: the write waits in its thread while trio runs on,
    and when the busy timeout runs out the caller gets a StoreError, not a hang or a crash."""
    import sqlite3

    import trio

    from miroir.core.tasks import Task
    from miroir.store import StoreError

    path = str(tmp_path / "locked.db")
    store = await open_store({"backend": "sqlite", "path": path, "timeout_seconds": 0.5})
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # holds the write lock
    ticks = 0
    outcome: list[BaseException | None] = []

    async def write() -> None:
        try:
            await store.put_task(Task(uid=1, type="indexCreation", enqueued_at=0))
            outcome.append(None)
        except StoreError as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(write)
        while not outcome:
            ticks += 1
            await trio.sleep(0.01)
    assert ticks > 1  # the loop kept running while the write waited for the lock
    assert isinstance(outcome[0], StoreError) and "locked" in str(outcome[0])
    blocker.execute("ROLLBACK")
    blocker.close()
    await store.put_task(Task(uid=1, type="indexCreation", enqueued_at=0))  # lock gone: works
    assert (await store.get_task(1)).uid == 1
    await store.close()


async def test_an_in_memory_sqlite_store_works_and_is_private():
    from miroir.core.tasks import Task

    first = await open_store({"backend": "sqlite", "path": ":memory:"})
    second = await open_store({"backend": "sqlite", "path": ":memory:"})
    created = await first.create_task(lambda uid: Task(uid=uid, type="indexCreation", enqueued_at=0))
    assert await first.get_task(created.uid) == created
    assert await second.get_task(created.uid) is None
    await first.close()
    await second.close()
