"""`miroir.cluster.catalog.IndexCatalog`: when an entry is trusted, and when it is dropped.

Two catalogs over one store stand for two proxy processes. Run under trio's MockClock
(autojump), so the check interval passes without real waiting.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from miroir.cluster.catalog import CHECK_INTERVAL_S, IndexCatalog
from miroir.store.base import StoreError
from miroir.store.memory import MemoryStore


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


class CountingStore(MemoryStore):
    """Counts version reads; can hold a read between reading and answering, or fail it."""

    def __init__(self) -> None:
        super().__init__()
        self.version_reads = 0
        self.hold: trio.Event | None = None
        self.failing = False

    async def get_index_version(self, index_uid: str) -> int:
        self.version_reads += 1
        if self.failing:
            raise StoreError("store away (test)")
        version = await super().get_index_version(index_uid)
        if self.hold is not None:
            await self.hold.wait()  # answer what was read before the wait
        return version


async def test_a_fresh_entry_is_served_without_reading_the_store(autojump_clock):
    store = CountingStore()
    catalog = IndexCatalog(store)
    first = await catalog.entry("movies")
    first.primary_key = "id"
    for _ in range(100):
        assert await catalog.entry("movies") is first
        await trio.sleep(CHECK_INTERVAL_S / 200)
    assert store.version_reads == 1


async def test_an_unchanged_index_keeps_its_entry_after_a_check(autojump_clock):
    store = CountingStore()
    catalog = IndexCatalog(store)
    entry = await catalog.entry("movies")
    entry.primary_key = "id"
    await trio.sleep(CHECK_INTERVAL_S)
    assert await catalog.entry("movies") is entry and entry.primary_key == "id"
    assert store.version_reads == 2


async def test_a_change_through_another_process_is_seen_within_one_interval(autojump_clock):
    store = MemoryStore()
    here, there = IndexCatalog(store), IndexCatalog(store)
    (await here.entry("movies")).primary_key = "id"
    await trio.sleep(CHECK_INTERVAL_S / 2)
    await there.changed("movies", primary_key="sku")
    assert (await there.entry("movies")).primary_key == "sku"
    await trio.sleep(CHECK_INTERVAL_S / 2)
    after = await here.entry("movies")
    assert after.primary_key is None and after.version == await store.get_index_version("movies")
    # Other indexes keep their entries.
    (await here.entry("songs")).settings = {"distinctAttribute": None}
    await there.changed("movies")
    await trio.sleep(CHECK_INTERVAL_S)
    assert (await here.entry("songs")).settings == {"distinctAttribute": None}


async def test_a_change_drops_this_processs_entry_at_once(autojump_clock):
    catalog = IndexCatalog(MemoryStore())
    before = await catalog.entry("movies")
    before.primary_key = "id"
    await catalog.changed("movies")
    # Something learnt on the old entry (an answer that straddled the change) is not seen.
    before.settings = {"stale": True}
    after = await catalog.entry("movies")
    assert after is not before and after.primary_key is None and after.settings is None
    await catalog.changed("movies", primary_key="sku")
    assert (await catalog.entry("movies")).primary_key == "sku"


async def test_a_version_read_that_overlaps_a_change_here_is_read_again(autojump_clock):
    store = CountingStore()
    catalog = IndexCatalog(store)
    store.hold = trio.Event()
    seen = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _append(seen, catalog.entry("movies")))
        await trio.sleep(0.01)  # the lookup has read version 0 and waits
        store.hold.set()
        store.hold = None
        await catalog.changed("movies")
    assert seen[0].version == await store.get_index_version("movies") == 1
    assert (await catalog.entry("movies")).version == 1


async def _append(into: list, lookup) -> None:
    into.append(await lookup)


async def test_one_lookup_checks_a_due_entry_while_the_others_keep_using_it(autojump_clock):
    store = CountingStore()
    catalog = IndexCatalog(store)
    entry = await catalog.entry("movies")
    await trio.sleep(CHECK_INTERVAL_S)
    store.hold = trio.Event()
    got = []
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(lambda: _append(got, catalog.entry("movies")))
        await trio.sleep(0.01)
        assert got == [entry] * 4  # served at once; the fifth is the one reading the store
        store.hold.set()
    assert got == [entry] * 5 and store.version_reads == 2


async def test_without_the_store_entries_last_one_interval_and_nothing_fails(autojump_clock):
    store = CountingStore()
    catalog = IndexCatalog(store)
    (await catalog.entry("movies")).primary_key = "id"
    store.failing = True
    await trio.sleep(CHECK_INTERVAL_S)
    unknown = await catalog.entry("movies")
    assert unknown.version is None and unknown.primary_key is None
    unknown.primary_key = "id"
    assert await catalog.entry("movies") is unknown
    await trio.sleep(CHECK_INTERVAL_S)
    again = await catalog.entry("movies")
    assert again is not unknown and again.version is None  # re-read from the nodes, as a TTL
    store.failing = False
    await trio.sleep(CHECK_INTERVAL_S)
    assert (await catalog.entry("movies")).version == 0


async def test_a_settings_change_keeps_the_key_unless_another_change_came_in_between(
    autojump_clock,
):
    store = MemoryStore()
    here, there = IndexCatalog(store), IndexCatalog(store)
    (await here.entry("movies")).primary_key = "id"
    await here.changed("movies", same_primary_key=True)
    await here.changed("movies", same_primary_key=True)
    kept = await here.entry("movies")
    assert kept.primary_key == "id" and kept.version == 2 and kept.settings is None
    # Another process changed the index meanwhile (perhaps recreated it with another key).
    await there.changed("movies")
    await here.changed("movies", same_primary_key=True)
    assert (await here.entry("movies")).primary_key is None
