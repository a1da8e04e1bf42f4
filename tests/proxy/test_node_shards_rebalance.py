"""The migration engine with an index of its own shard count (`Layouts.node_shards`): a
membership change moves that index's shards by the plan of its S, copies and deletes its old
copies per that plan, while a client writes to it; the default-S index beside it moves as
before. The topology has S=4; `big` has S=16."""

from __future__ import annotations

import random

import trio

from miroir.cluster.rebalance import Rebalancer, start_rebalance
from miroir.core import membership
from miroir.core.migration_map import MigratingShardMap
from miroir.core.node_state import NodeState
from miroir.core.placement import shard_for_key
from tests.proxy.harness import running_proxy
from tests.proxy.test_rebalance_engine import FAST, add_devnode, run_engine

BIG_S = 16


async def fill(h, uid, count):
    created = (await h.send("POST", "/indexes", {"uid": uid, "primaryKey": "id"}))[1]
    assert (await h.wait_task(created["taskUid"]))["status"] == "succeeded"
    docs = [{"id": i, "v": 0} for i in range(count)]
    written = (await h.send("POST", f"/indexes/{uid}/documents", docs))[1]
    assert (await h.wait_task(written["taskUid"]))["status"] == "succeeded"
    return {i: 0 for i in range(count)}


async def traffic(h, uid, expected, rounds, seed):
    rng = random.Random(seed)
    for round_ in range(1, rounds + 1):
        ids = rng.sample(sorted(expected), 5)
        updates = [{"id": i, "v": round_} for i in ids[:3]]
        answer = (await h.send("POST", f"/indexes/{uid}/documents", updates))[1]
        deleted = (await h.send("POST", f"/indexes/{uid}/documents/delete-batch", ids[3:]))[1]
        for task in (answer, deleted):
            assert (await h.wait_task(task["taskUid"]))["status"] == "succeeded"
        for update in updates:
            expected[update["id"]] = round_
        for i in ids[3:]:
            expected.pop(i)
        await trio.sleep(0)


async def check_index(h, uid, shards, expected):
    """Reads see exactly the acknowledged corpus, and every node holds only the shards its
    map for `shards` gives it, each document under `hash(id) mod shards`, once per group."""
    shard_map = h.cluster.shard_map_for(uid)
    assert not isinstance(shard_map, MigratingShardMap) and shard_map.shards == shards
    listed = (await h.send("GET", f"/indexes/{uid}/documents?limit=10000"))[1]
    assert {d["id"]: d["v"] for d in listed["results"]} == expected
    found = (await h.send("POST", f"/indexes/{uid}/search", {"q": "", "limit": 10000}))[1]
    assert found["estimatedTotalHits"] == len(expected)
    copies: dict[int, int] = {}
    for node in h.cluster.all_nodes():
        if h.cluster.state_of(node) is NodeState.REMOVED:
            continue
        answer = await h.cluster.call(node, "POST", f"/indexes/{uid}/documents/fetch",
                                      {"limit": 10000})
        for document in answer.json()["results"]:
            assert document["_miroir_shard"] == shard_for_key(str(document["id"]), shards)
            assert document["_miroir_shard"] in shard_map.shards_of(node), (node, document)
            copies[document["id"]] = copies.get(document["id"], 0) + 1
    groups = h.cluster.topology.replica_groups
    assert copies == {i: groups for i in expected}  # no old copy left, none missing


async def test_adding_a_node_moves_an_index_of_its_own_s_by_its_own_plan():
    async with running_proxy(nodes=3, shards=4) as h:
        await h.cluster.layouts.change(lambda now: now.with_node_shards("big", BIG_S))
        small = await fill(h, "small", 120)
        big = await fill(h, "big", 300)
        add_devnode(h, "n9")
        change = membership.add_node(h.cluster.durable_topology,
                                     {"id": "n9", "address": "http://n9.invalid:1", "group": 0})
        plans = change.plans([BIG_S])
        assert plans[BIG_S].moves  # the new node wins shards of S=16
        started = await start_rebalance(h.cluster, change, h.cluster.now_ms())
        assert started["shardReplicasToCopy"] == sum(p.replicas_copied for p in plans.values())
        assert isinstance(h.cluster.shard_map_for("big"), MigratingShardMap)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(traffic, h, "big", big, 20, 1)
            nursery.start_soon(traffic, h, "small", small, 10, 2)
            await run_engine(h, Rebalancer(h.cluster, FAST))
        status = (await h.send("GET", "/_miroir/rebalance"))[1]
        assert status["shardsDone"] == status["shardsTotal"] == started["shardReplicasToCopy"]
        assert h.cluster.state_of("n9") is NodeState.ACTIVE
        assert len(h.cluster.shard_map_for("big").shards_of("n9")) == \
            plans[BIG_S].replicas_copied
        await check_index(h, "big", BIG_S, big)
        await check_index(h, "small", 4, small)


async def test_draining_a_node_moves_every_shard_of_each_s_off_it():
    async with running_proxy(nodes=3, shards=4, replica_groups=1) as h:
        await h.cluster.layouts.change(lambda now: now.with_node_shards("big", BIG_S))
        small = await fill(h, "small", 80)
        big = await fill(h, "big", 200)
        change = membership.drain_node(h.cluster.durable_topology, "n1")
        await start_rebalance(h.cluster, change, h.cluster.now_ms())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(traffic, h, "big", big, 10, 3)
            await run_engine(h, Rebalancer(h.cluster, FAST))
        assert h.cluster.state_of("n1") is NodeState.REMOVED
        assert h.cluster.shard_map_for("big").shards_of("n1") == ()
        await check_index(h, "big", BIG_S, big)
        await check_index(h, "small", 4, small)


async def test_a_dry_run_shows_the_plan_of_each_shard_count_in_use():
    async with running_proxy(nodes=3, shards=4) as h:
        status, answer, _ = await h.send("POST", "/_miroir/nodes?dryRun=true",
                                         {"id": "n9", "address": "http://n9.invalid:1",
                                          "group": 0})
        assert status == 200 and answer["otherShardCounts"] == []
        await h.cluster.layouts.change(lambda now: now.with_node_shards("big", BIG_S))
        status, answer, _ = await h.send("POST", "/_miroir/nodes?dryRun=true",
                                         {"id": "n9", "address": "http://n9.invalid:1",
                                          "group": 0})
        assert status == 200
        (other,) = answer["otherShardCounts"]
        change = membership.add_node(h.cluster.durable_topology,
                                     {"id": "n9", "address": "http://n9.invalid:1", "group": 0})
        expected = change.plan(BIG_S)
        assert other["shards"] == BIG_S
        assert other["shardReplicasCopied"] == expected.replicas_copied > 0
        assert [(m["group"], m["shard"]) for m in other["moves"]] == [
            (m.group, m.shard) for m in expected]
        assert other["fractionCopied"] == expected.replicas_copied / (BIG_S * 1 * 1)
        assert answer["plan"]["shardReplicasCopied"] == change.plan().replicas_copied


async def test_a_node_that_wins_no_shard_at_the_topologys_s_still_gets_the_index_of_its_own():
    """At S=2 a fourth node may win nothing (the change would be done at once), while at S=16
    it wins shards: the rebalance runs, and copies them."""
    async with running_proxy(nodes=3, shards=2) as h:
        await h.cluster.layouts.change(lambda now: now.with_node_shards("big", BIG_S))
        big = await fill(h, "big", 200)

        def adding(node_id):
            return membership.add_node(h.cluster.durable_topology, {
                "id": node_id, "address": f"http://{node_id}.invalid:1", "group": 0})

        node_id = next(f"x{i}" for i in range(200)
                       if not adding(f"x{i}").plan().moves and adding(f"x{i}").plan(BIG_S).moves)
        add_devnode(h, node_id)
        change = adding(node_id)
        started = await start_rebalance(h.cluster, change, h.cluster.now_ms())
        assert started["shardReplicasToCopy"] == change.plan(BIG_S).replicas_copied
        assert (await h.store.get_record("rebalance")).value["state"] == "waiting"
        await run_engine(h, Rebalancer(h.cluster, FAST))
        assert h.cluster.state_of(node_id) is NodeState.ACTIVE
        assert h.cluster.shard_map.shards_of(node_id) == ()
        assert h.cluster.shard_map_for("big").shards_of(node_id)
        await check_index(h, "big", BIG_S, big)
