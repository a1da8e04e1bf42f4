"""`LayoutCache` when the store is away: the copy read last stays in force; a process that
never read one refuses to route rather than guess (a guess could write into another index)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from miroir.cluster.layouts import CHECK_INTERVAL_S, LayoutCache
from miroir.store.base import StoreError
from miroir.store.memory import MemoryStore


class FlakyStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.away = False
        self.reads = 0

    async def get_record(self, name):
        self.reads += 1
        if self.away:
            raise StoreError("store away (test)")
        return await super().get_record(name)


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


async def test_the_last_copy_stays_in_force_while_the_store_is_away(autojump_clock):
    store = FlakyStore()
    await LayoutCache(store).change(lambda now: now.swapped([("a", "b")]))
    cache = LayoutCache(store)
    assert await cache.node_index("a") == "b"
    store.away = True
    await trio.sleep(CHECK_INTERVAL_S * 2)
    assert await cache.node_index("a") == "b"


async def test_a_process_that_never_read_the_layouts_refuses_to_route():
    store = FlakyStore()
    store.away = True
    with pytest.raises(StoreError):
        await LayoutCache(store).node_index("a")


async def test_the_record_is_read_once_per_interval_not_per_request(autojump_clock):
    store = FlakyStore()
    cache = LayoutCache(store)
    for _ in range(100):
        assert await cache.node_index("movies") == "movies"
    assert store.reads == 1
    await trio.sleep(CHECK_INTERVAL_S * 1.1)
    await cache.node_index("movies")
    assert store.reads == 2
