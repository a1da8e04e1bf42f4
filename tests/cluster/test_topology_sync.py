"""Every process follows the stored topology (`miroir.cluster.topology_sync`).

Two `Cluster`s over one store stand for two proxy processes (two store instances over one SQLite
file or one Redis prefix, as two processes have them). Timed tests run under trio's MockClock.
"""

from __future__ import annotations

import uuid

import attrs
import pytest
import redis as redis_client
import trio
import trio.testing

from miroir.cluster.runtime import Cluster
from miroir.cluster.topology_sync import (
    TopologyFollower,
    load_or_seed,
    publish,
    read_topology,
)
from miroir.core.node_state import NodeEvent, NodeState
from miroir.core.topology import Node, Topology
from miroir.core.topology_record import TOPOLOGY_RECORD
from miroir.store import open_store
from miroir.store.memory import MemoryStore
from miroir.transport.fake import Answer, FakeTransport

CONFIG = Topology(8, 1, 1, (Node("n1", "http://n1", 0), Node("n2", "http://n2", 0)))
REDIS_URL = "redis://127.0.0.1:6379/0"


async def started_cluster(store, config=CONFIG) -> Cluster:
    """What `Lifecycle.start` does: build on the config, then adopt the stored topology."""
    cluster = Cluster(config, FakeTransport(default=Answer(200)), store)
    found = await load_or_seed(store, config)
    cluster.adopt_epoch(found.epoch, found.topology)
    return cluster


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def two_stores(request, tmp_path):
    prefix = f"miroir-test:{uuid.uuid4().hex}:"
    config = {"backend": request.param, "path": str(tmp_path / "s.db"), "url": REDIS_URL,
              "key_prefix": prefix}
    stores = [await open_store(config), await open_store(config)]
    yield stores
    for store in stores:
        await store.close()
    if request.param == "redis":
        client = redis_client.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)
        client.close()


async def test_the_config_seeds_the_topology_once_and_the_store_wins_after(two_stores):
    first = await started_cluster(two_stores[0])
    assert first.epoch == 1
    other_config = attrs.evolve(CONFIG, nodes=(Node("zz", "http://zz", 0),))
    second = await started_cluster(two_stores[1], other_config)
    assert second.epoch == 1
    assert second.node_ids() == ["n1", "n2"]
    assert (await read_topology(two_stores[1])).topology.shards == CONFIG.shards


async def test_a_change_published_through_one_process_is_adopted_by_the_other(two_stores):
    a, b = await started_cluster(two_stores[0]), await started_cluster(two_stores[1])
    durable = a.durable_topology.with_node(Node("n3", "http://n3", 0, NodeState.JOINING))
    published = await publish(a, a.epoch, durable)
    assert published.epoch == 2 and a.epoch == 2 and a.state_of("n3") is NodeState.JOINING
    # a writer that read epoch 1 loses: the change it based itself on is gone
    assert await publish(b, 1, durable.without_node("n1")) is None
    assert b.epoch == 1 and "n3" not in b.node_ids()
    assert await TopologyFollower(b, 1.0).check_once()
    assert b.epoch == 2 and b.state_of("n3") is NodeState.JOINING
    assert b.shard_map.topology == a.shard_map.topology


async def test_a_request_holding_the_map_stays_under_its_epoch():
    cluster = await started_cluster(MemoryStore())
    held = cluster.shard_map
    owners_before = [held.owners(0, s) for s in range(CONFIG.shards)]
    await publish(cluster, 1, cluster.durable_topology.with_node(Node("n3", "http://n3", 0)))
    assert [held.owners(0, s) for s in range(CONFIG.shards)] == owners_before
    assert cluster.shard_map is not held
    assert "n3" in cluster.shard_map.placement.members[0]


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


async def test_every_process_follows_within_one_interval(autojump_clock):
    store = MemoryStore()
    a, b = await started_cluster(store), await started_cluster(store)
    follower = TopologyFollower(b, interval_s=1.0)
    adopted_at: list[float] = []
    b.epoch_observers.append(lambda epoch, _t: adopted_at.append(trio.current_time()))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(follower.run)
        await trio.sleep(5.3)
        published_at = trio.current_time()
        await publish(a, a.epoch, a.durable_topology.with_node(Node("n3", "http://n3", 0)))
        await trio.sleep(2.0)
        nursery.cancel_scope.cancel()
    assert b.epoch == 2
    assert len(adopted_at) == 1 and 0 <= adopted_at[0] - published_at <= 1.0


async def test_health_stays_local_across_an_epoch():
    cluster = await started_cluster(MemoryStore())
    for _ in range(3):
        cluster.record_node_result("n2", False, 0)
    assert cluster.state_of("n2") is NodeState.FAILED
    cluster.apply_node_event("n1", NodeEvent.PROBE_OK)
    await publish(cluster, 1, cluster.durable_topology.with_node(Node("n3", "http://n3", 0)))
    assert cluster.topology.states() == {
        "n1": NodeState.HEALTHY, "n2": NodeState.FAILED, "n3": NodeState.ACTIVE}
    assert "n3" in cluster.health
    # nothing local was stored
    stored = await cluster.store.get_record(TOPOLOGY_RECORD)
    assert {n["state"] for n in stored.value["nodes"]} == {"active"}


async def test_a_store_that_fails_leaves_the_epoch_in_force():
    store = MemoryStore()
    cluster = await started_cluster(store)

    async def broken(*args, **kwargs):
        from miroir.store.base import StoreError
        raise StoreError("down")

    store.get_record = broken
    assert not await TopologyFollower(cluster, 1.0).check_once()
    assert cluster.epoch == 1


async def test_a_process_that_started_without_the_store_seeds_it_on_its_first_check():
    store = MemoryStore()
    cluster = Cluster(CONFIG, FakeTransport(default=Answer(200)), store)
    assert cluster.epoch == 0
    assert await TopologyFollower(cluster, 1.0).check_once()
    assert cluster.epoch == 1 and (await read_topology(store)).epoch == 1
