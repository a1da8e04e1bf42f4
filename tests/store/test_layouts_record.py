"""The index layouts record on every backend, as two proxy processes follow and change it
(`miroir.cluster.layouts.LayoutCache` over two store instances sharing one backing state)."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from miroir.cluster.layouts import CHECK_INTERVAL_S, LayoutCache
from miroir.core.index_layout import LAYOUTS_RECORD, IndexLayout, Layouts
from miroir.core.tasks import Task, task_from_record, task_to_record


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


async def test_no_record_means_every_uid_names_its_own_index(store):
    cache = LayoutCache(store)
    assert await cache.node_index("movies") == "movies"
    assert (await cache.current()).shards_of("movies", 8) == 8
    assert await store.get_record(LAYOUTS_RECORD) is None  # reading never writes


async def test_a_swap_by_one_process_is_followed_by_the_other_within_the_interval(
    backend, autojump_clock
):
    first, second = LayoutCache(await backend.open()), LayoutCache(await backend.open())
    assert await second.node_index("a") == "a"
    stored = await first.change(lambda now: now.swapped([("a", "b")]))
    assert stored == Layouts({"a": IndexLayout("b"), "b": IndexLayout("a")})
    assert await first.node_index("a") == "b"  # its own change at once
    await trio.sleep(CHECK_INTERVAL_S * 1.1)
    assert await second.node_index("a") == "b"
    assert second.client_uid("a") == "b"


async def test_racing_changes_all_land(backend):
    """Compare-and-set: two processes changing at once both win, one after the other."""
    caches = [LayoutCache(await backend.open()) for _ in range(2)]
    async with trio.open_nursery() as nursery:
        for i, cache in enumerate(caches):
            for j in range(3):
                nursery.start_soon(cache.change,
                                   lambda now, n=f"p{i}x{j}": now.with_alias(n, f"node-{n}"))
    layouts = await LayoutCache(await backend.open()).refresh()
    assert {uid for uid in layouts.entries if uid.startswith("p")} == {
        f"p{i}x{j}" for i in range(2) for j in range(3)}
    record = await (await backend.open()).get_record(LAYOUTS_RECORD)
    assert record.version == 6


async def test_a_fresh_name_for_a_uid_that_names_nothing_is_stored_once(backend):
    first, second = LayoutCache(await backend.open()), LayoutCache(await backend.open())
    await first.change(lambda now: now.renamed("old", "new"))
    await second.refresh()
    names = {await first.node_index("old"), await second.node_index("old")}
    assert names == {"old--1"}


async def test_a_task_keeps_its_node_side_index_through_the_record(store):
    task = Task(uid=await store.allocate_task_uid(), type="documentAdditionOrUpdate",
                enqueued_at=1, index_uid="shop", node_index="shop_v2")
    await store.put_task(task)
    assert (await store.get_task(task.uid)).node_index == "shop_v2"
    record = task_to_record(task)
    del record["nodeIndex"]  # as stored before layouts existed
    assert task_from_record(record).node_index is None
