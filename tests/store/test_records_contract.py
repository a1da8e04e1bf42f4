"""The versioned-record part of the Store contract (the topology, the rebalancer's state), held
against every backend (memory, SQLite, Redis)."""

from __future__ import annotations

import pytest
import trio

TOPOLOGY = {"shards": 8, "nodes": [{"id": "a", "address": "http://a", "group": 0}]}


async def test_a_record_is_put_once_at_version_1_then_only_by_compare_and_set(store):
    assert await store.get_record("topology") is None
    first = await store.put_record_if("topology", 0, TOPOLOGY)
    assert (first.name, first.version, first.value) == ("topology", 1, TOPOLOGY)
    # a second "first put" loses: the record exists
    assert await store.put_record_if("topology", 0, {"other": 1}) is None
    changed = {**TOPOLOGY, "shards": 16}
    second = await store.put_record_if("topology", 1, changed)
    assert second.version == 2
    # a writer that read version 1 is refused, and nothing changes
    assert await store.put_record_if("topology", 1, {"stale": True}) is None
    assert await store.put_record_if("topology", 5, {"future": True}) is None
    stored = await store.get_record("topology")
    assert (stored.version, stored.value) == (2, changed)


async def test_records_are_independent_and_deleted_only_at_their_version(store):
    await store.put_record_if("rebalance", 0, {"state": "copying"})
    await store.put_record_if("topology", 0, TOPOLOGY)
    assert not await store.delete_record_if("rebalance", 2)
    assert not await store.delete_record_if("missing", 0)
    assert await store.delete_record_if("rebalance", 1)
    assert await store.get_record("rebalance") is None
    assert (await store.get_record("topology")).value == TOPOLOGY
    # deleted: it can be put again from version 0
    assert (await store.put_record_if("rebalance", 0, {"state": "idle"})).version == 1


async def test_a_record_read_back_is_a_copy(store):
    value = {"nodes": [{"id": "a"}]}
    await store.put_record_if("topology", 0, value)
    value["nodes"].append({"id": "b"})
    read = await store.get_record("topology")
    read.value["nodes"].append({"id": "c"})
    assert (await store.get_record("topology")).value == {"nodes": [{"id": "a"}]}


async def test_a_record_survives_a_restart(backend):
    if not backend.persistent:
        pytest.skip("the memory store keeps nothing across a restart by design")
    store = await backend.open()
    await store.put_record_if("topology", 0, TOPOLOGY)
    await store.close()
    reopened = await backend.open()
    stored = await reopened.get_record("topology")
    assert (stored.version, stored.value) == (1, TOPOLOGY)


async def test_two_stores_racing_on_a_record_lose_no_update(backend):
    """Every writer retries read-then-compare-and-set; all 20 increments land, each version once."""
    stores = [await backend.open(), await backend.open()]
    await stores[0].put_record_if("counter", 0, {"n": 0})
    versions: list[int] = []

    async def increment(i: int) -> None:
        store = stores[i % 2]
        while True:
            current = await store.get_record("counter")
            put = await store.put_record_if(
                "counter", current.version, {"n": current.value["n"] + 1})
            if put is not None:
                versions.append(put.version)
                return
            await trio.sleep(0)

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(increment, i)
    assert sorted(versions) == list(range(2, 22))
    final = await stores[1].get_record("counter")
    assert (final.version, final.value) == (21, {"n": 20})


async def test_process_records_live_until_their_ttl_and_can_be_forgotten(store):
    assert await store.list_live_processes(1000) == {}
    await store.put_process_record("p1", {"epoch": 3}, now=1000, ttl_ms=500)
    await store.put_process_record("p2", {"epoch": 4}, now=1200, ttl_ms=500)
    assert await store.list_live_processes(1400) == {"p1": {"epoch": 3}, "p2": {"epoch": 4}}
    # p1 lapses at 1500: a dead process stops counting
    assert await store.list_live_processes(1500) == {"p2": {"epoch": 4}}
    # a beat replaces the value and extends the life
    await store.put_process_record("p2", {"epoch": 5}, now=1600, ttl_ms=500)
    assert await store.list_live_processes(2000) == {"p2": {"epoch": 5}}
    assert await store.delete_process_record("p2")
    assert not await store.delete_process_record("p2")
    assert await store.list_live_processes(2000) == {}


async def test_process_records_are_shared_by_every_instance_of_a_backend(backend):
    first, second = await backend.open(), await backend.open()
    await first.put_process_record("a", {"epoch": 1}, now=10, ttl_ms=100)
    await second.put_process_record("b", {"epoch": 2}, now=20, ttl_ms=100)
    assert await first.list_live_processes(50) == {"a": {"epoch": 1}, "b": {"epoch": 2}}
    # a put at 115 drops the lapsed `a` (expired at 110) for every reader
    await second.put_process_record("b", {"epoch": 2}, now=115, ttl_ms=100)
    assert await first.list_live_processes(60) == {"b": {"epoch": 2}}
