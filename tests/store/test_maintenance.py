"""The pruner loop, on virtual time."""

from __future__ import annotations

import trio
import trio.testing

from miroir.core.tasks import Task
from miroir.store.base import StoreError
from miroir.store.maintenance import prune_periodically
from miroir.store.memory import MemoryStore


async def test_the_pruner_removes_tasks_as_they_age_past_the_ttl(autojump_clock):
    store = MemoryStore(task_ttl_ms=10_000)

    def now_ms() -> int:
        return int(trio.current_time() * 1000)

    await store.put_task(Task(uid=1, type="indexCreation", enqueued_at=now_ms()))
    await store.put_task(Task(uid=2, type="indexCreation", enqueued_at=now_ms() + 20_000))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(prune_periodically, store, now_ms, 1.0)
        await trio.sleep(10.5)
        assert await store.get_task(1) is not None  # exactly at the TTL: kept
        await trio.sleep(1.0)
        assert await store.get_task(1) is None
        assert await store.get_task(2) is not None
        await trio.sleep(20.0)
        assert await store.get_task(2) is None
        nursery.cancel_scope.cancel()


async def test_a_failing_prune_pass_is_retried_not_fatal(autojump_clock):
    class FlakyStore(MemoryStore):
        calls = 0

        async def prune_tasks(self, now: int) -> int:
            FlakyStore.calls += 1
            if FlakyStore.calls == 1:
                raise StoreError("unreachable")
            return await super().prune_tasks(now)

    store = FlakyStore(task_ttl_ms=1)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(prune_periodically, store, lambda: 0, 1.0)
        await trio.sleep(2.5)
        nursery.cancel_scope.cancel()
    assert FlakyStore.calls == 3
