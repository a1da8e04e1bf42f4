"""The migration engine (`miroir.cluster.rebalance`, unfinished, off by default) against
in-process devnodes: adding a node, draining one, adding a group, with a client writing and
deleting while shards move. After the rebalance: every acknowledged write is what reads see,
no deleted document came back, and each shard lives only on its owners."""

from __future__ import annotations

import random

import attrs
import trio

from miroir.cluster.rebalance import Rebalancer, RebalanceSettings, start_rebalance
from miroir.core import membership
from miroir.core.migration_map import MigratingShardMap
from miroir.core.node_state import NodeState
from miroir.core.placement import shard_for_key
from miroir.devnode.app import DevnodeApp
from tests.proxy.harness import running_proxy

FAST = RebalanceSettings(settle_ms=0, grace_ms=0, max_docs_per_second=1_000_000, page_size=40,
                         poll_s=0.01)


def add_devnode(h, node_id):
    devnode = DevnodeApp()
    h.transport.apps[node_id] = devnode
    h.nursery.start_soon(devnode.run_task_worker)


async def fill(h, count):
    created = (await h.send("POST", "/indexes", {"uid": "m", "primaryKey": "id"}))[1]
    await h.wait_task(created["taskUid"])
    docs = [{"id": i, "v": 0, "text": f"word{i % 7}"} for i in range(count)]
    written = (await h.send("POST", "/indexes/m/documents", docs))[1]
    assert (await h.wait_task(written["taskUid"]))["status"] == "succeeded"
    return {i: 0 for i in range(count)}


async def client_traffic(h, expected, rounds, seed):
    """Updates and deletes racing the copy; `expected` follows every acknowledged one."""
    rng = random.Random(seed)
    for round_ in range(1, rounds + 1):
        ids = rng.sample(sorted(expected), 5)
        updates = [{"id": i, "v": round_, "text": "changed"} for i in ids[:3]]
        answer = (await h.send("POST", "/indexes/m/documents", updates))[1]
        deleted = (await h.send("POST", "/indexes/m/documents/delete-batch", ids[3:]))[1]
        for task in (answer, deleted):
            assert (await h.wait_task(task["taskUid"]))["status"] == "succeeded"
        for update in updates:
            expected[update["id"]] = round_
        for i in ids[3:]:
            expected.pop(i)
        await trio.sleep(0)


async def run_engine(h, engine):
    with trio.fail_after(20):
        while True:
            await engine.drive_once()
            if (await h.store.get_record("rebalance")).value["state"] in ("done", "failed"):
                break
            await trio.sleep(0.01)
    record = await h.store.get_record("rebalance")
    assert record.value["state"] == "done", record.value["errors"]


async def check_after(h, expected):
    shard_map = h.cluster.shard_map
    assert not isinstance(shard_map, MigratingShardMap)
    listed = (await h.send("GET", "/indexes/m/documents?limit=10000"))[1]
    assert {d["id"]: d["v"] for d in listed["results"]} == expected
    found = (await h.send("POST", "/indexes/m/search", {"q": "", "limit": 10000}))[1]
    assert found["estimatedTotalHits"] == len(expected)
    for node in h.cluster.all_nodes():
        answer = await h.cluster.call(node, "POST", "/indexes/m/documents/fetch",
                                      {"limit": 10000})
        held = {d["_miroir_shard"] for d in answer.json()["results"]}
        assert held <= set(shard_map.shards_of(node)), node


async def test_adding_a_node_with_writes_and_deletes_racing_the_copy():
    async with running_proxy(nodes=3, shards=16) as h:
        expected = await fill(h, 400)
        add_devnode(h, "n9")
        change = membership.add_node(h.cluster.durable_topology,
                                     {"id": "n9", "address": "http://n9.invalid:1", "group": 0})
        started = await start_rebalance(h.cluster, change, h.cluster.now_ms())
        assert started["shardReplicasToCopy"] == len(change.plan().moves) > 0
        assert isinstance(h.cluster.shard_map, MigratingShardMap)
        assert h.cluster.state_of("n9") is NodeState.JOINING
        engine = Rebalancer(h.cluster, FAST)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client_traffic, h, expected, 25, 1)
            await run_engine(h, engine)
        status = (await h.send("GET", "/_miroir/rebalance"))[1]
        assert status["state"] == "done" and status["shardsDone"] == status["shardsTotal"]
        assert h.cluster.state_of("n9") is NodeState.ACTIVE
        assert len(h.cluster.shard_map.shards_of("n9")) == started["shardReplicasToCopy"]
        await check_after(h, expected)


async def test_draining_a_node_moves_its_shards_then_it_can_be_forgotten():
    async with running_proxy(nodes=3, shards=16) as h:
        expected = await fill(h, 300)
        change = membership.drain_node(h.cluster.durable_topology, "n1")
        await start_rebalance(h.cluster, change, h.cluster.now_ms())
        engine = Rebalancer(h.cluster, FAST)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client_traffic, h, expected, 15, 2)
            await run_engine(h, engine)
        assert h.cluster.state_of("n1") is NodeState.REMOVED
        assert h.cluster.shard_map.shards_of("n1") == ()
        listed = (await h.send("GET", "/indexes/m/documents?limit=10000"))[1]
        assert {d["id"]: d["v"] for d in listed["results"]} == expected
        status, answer, _ = await h.send("DELETE", "/_miroir/nodes/n1")
        assert status == 200 and answer["kind"] == "forget_node"
        assert "n1" not in h.cluster.node_ids()


async def test_adding_a_group_copies_every_shard_from_the_other_group():
    async with running_proxy(nodes=2, shards=8) as h:
        expected = await fill(h, 200)
        add_devnode(h, "b0")
        change = membership.add_group(h.cluster.durable_topology,
                                      {"nodes": [{"id": "b0", "address": "http://b0.invalid:1"}]})
        await start_rebalance(h.cluster, change, h.cluster.now_ms())
        engine = Rebalancer(h.cluster, FAST)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client_traffic, h, expected, 10, 3)
            await run_engine(h, engine)
        assert h.cluster.topology.replica_groups == 2
        answer = await h.cluster.call("b0", "POST", "/indexes/m/documents/fetch", {"limit": 10000})
        assert {d["id"]: d["v"] for d in answer.json()["results"]} == expected
        await check_after(h, expected)


async def test_a_second_rebalance_waits_for_the_first_and_a_lost_lease_stops_the_engine():
    async with running_proxy(nodes=3, shards=8) as h:
        await fill(h, 50)
        add_devnode(h, "n9")
        durable = h.cluster.durable_topology
        await start_rebalance(h.cluster, membership.add_node(
            durable, {"id": "n9", "address": "http://n9.invalid:1", "group": 0}),
            h.cluster.now_ms())
        status, answer, _ = await h.send("POST", "/_miroir/nodes/n0/drain?dryRun=true")
        assert status == 200  # planning is always allowed
        try:
            await start_rebalance(h.cluster, membership.drain_node(
                h.cluster.durable_topology, "n0"), h.cluster.now_ms())
        except Exception as error:  # noqa: BLE001
            assert getattr(error, "code", None) == "miroir_rebalance_in_progress"
        else:
            raise AssertionError("a second rebalance started")
        # another process holds the lease: this engine does nothing
        await h.store.acquire_lease("rebalancer", "other", h.cluster.now_ms(), 60_000)
        assert await Rebalancer(h.cluster, FAST).drive_once() is None
        assert (await h.send("GET", "/_miroir/rebalance"))[1]["state"] == "waiting"


async def test_the_cutover_race_a_stale_copy_page_never_wins():
    """Forced interleaving: the copy fetched a page, then a client updates one of its documents
    and deletes another (both reach old and new owner), then the copy writes its stale page. The
    compare must copy the update again and delete the resurrected document before cutover."""
    async with running_proxy(nodes=2, shards=16) as h:
        expected = await fill(h, 120)
        add_devnode(h, "n9")
        change = membership.add_node(h.cluster.durable_topology,
                                     {"id": "n9", "address": "http://n9.invalid:1", "group": 0})
        await start_rebalance(h.cluster, change, h.cluster.now_ms())
        engine = Rebalancer(h.cluster, FAST)
        copy_page = engine._write_documents
        raced: list[int] = []

        async def stale_page(node, uid, pk, documents):
            if not raced and len(documents) >= 2:
                updated, deleted = documents[0]["id"], documents[1]["id"]
                raced.extend([updated, deleted])
                answer = (await h.send("POST", "/indexes/m/documents",
                                       [{"id": updated, "v": 99, "text": "newer"}]))[1]
                gone = (await h.send("POST", "/indexes/m/documents/delete-batch", [deleted]))[1]
                for task in (answer, gone):
                    assert (await h.wait_task(task["taskUid"]))["status"] == "succeeded"
                expected[updated] = 99
                expected.pop(deleted)
            await copy_page(node, uid, pk, documents)

        engine._write_documents = stale_page
        assert change.plan().moves
        await run_engine(h, engine)
        assert raced
        await check_after(h, expected)
        on_new = await h.cluster.call("n9", "POST", "/indexes/m/documents/fetch",
                                      {"ids": [str(i) for i in raced]})
        assert [(d["id"], d["v"]) for d in on_new.json()["results"]] == [(raced[0], 99)]


async def test_a_node_that_wins_no_shard_is_active_at_once():
    async with running_proxy(nodes=2, shards=1) as h:
        durable = h.cluster.durable_topology
        owner = h.cluster.shard_map.owners(0, 0)[0]
        # a node id that loses shard 0 to the current owner
        from miroir.core.placement import score
        name = next(f"x{i}" for i in range(1000) if score(0, f"x{i}") < score(0, owner))
        add_devnode(h, name)
        change = membership.add_node(durable, {"id": name, "address": "http://x.invalid:1",
                                               "group": 0})
        started = await start_rebalance(h.cluster, change, h.cluster.now_ms())
        assert started["shardReplicasToCopy"] == 0
        assert h.cluster.state_of(name) is NodeState.ACTIVE and h.cluster.migration is None
        assert (await h.send("GET", "/_miroir/rebalance"))[1]["state"] == "done"


async def test_another_process_resumes_a_rebalance_whose_engine_died():
    """Engine A dies mid-copy (its process crashed: it never releases the lease); once the lease
    expires, engine B (another process) resumes from the moves A recorded as done."""
    async with running_proxy(nodes=3, shards=16) as h:
        expected = await fill(h, 300)
        add_devnode(h, "n9")
        change = membership.add_node(h.cluster.durable_topology,
                                     {"id": "n9", "address": "http://n9.invalid:1", "group": 0})
        await start_rebalance(h.cluster, change, h.cluster.now_ms())
        a = Rebalancer(h.cluster, attrs.evolve(FAST, page_size=5))
        pages = 0
        copy_page = a._write_documents

        async def dies_after_three_pages(*args):
            nonlocal pages
            pages += 1
            if pages > 8:
                raise SystemExit("the process running engine A was killed")
            await copy_page(*args)

        a._write_documents = dies_after_three_pages
        a.cluster.store.release_lease = _never_released  # a dead process releases nothing
        try:
            await a.drive_once()
        except SystemExit:
            pass
        del a.cluster.store.release_lease
        done_by_a = (await h.store.get_record("rebalance")).value["shardsDone"]
        b = Rebalancer(h.cluster, FAST)
        assert await b.drive_once() is None  # A's lease has not expired yet
        lease = await h.store.get_lease("rebalancer", h.cluster.now_ms())
        await h.store.acquire_lease("rebalancer", "expired", lease.expires_at + 1, 1)
        await run_engine(h, b)
        status = (await h.send("GET", "/_miroir/rebalance"))[1]
        assert status["state"] == "done" and status["shardsDone"] == status["shardsTotal"]
        assert status["shardsTotal"] > done_by_a > 0
        await check_after(h, expected)


async def _never_released(*args):
    return False


async def test_the_admin_route_starts_a_rebalance_when_the_engine_is_on():
    async with running_proxy(nodes=3, shards=16) as h:
        expected = await fill(h, 100)
        state = h.app.extensions["miroir"]
        state.config = attrs.evolve(state.config, rebalance=attrs.evolve(
            state.config.rebalance, enabled=True))
        add_devnode(h, "n9")
        status, answer, _ = await h.send(
            "POST", "/_miroir/nodes", {"id": "n9", "address": "http://n9.invalid:1", "group": 0})
        assert status == 200 and answer["rebalanceId"] and answer["epoch"] == 2
        status, answer, _ = await h.send("POST", "/_miroir/nodes/n0/drain")
        assert (status, answer["code"]) == (409, "miroir_rebalance_in_progress")
        status, answer, _ = await h.send("DELETE", "/_miroir/nodes/n0?force=true")
        assert (status, answer["code"]) == (409, "miroir_rebalance_in_progress")
        await run_engine(h, Rebalancer(h.cluster, FAST))
        assert (await h.send("GET", "/_miroir/nodes"))[1]["epoch"] == 4  # start, cutting, cutover
        await check_after(h, expected)


async def test_metrics_show_the_epoch_and_the_rebalance():
    async with running_proxy(nodes=3, shards=16) as h:
        await fill(h, 60)
        metrics = h.app.extensions["miroir"].metrics
        add_devnode(h, "n9")
        await start_rebalance(h.cluster, membership.add_node(
            h.cluster.durable_topology, {"id": "n9", "address": "http://n9.invalid:1", "group": 0}),
            h.cluster.now_ms())
        engine = Rebalancer(h.cluster, FAST)
        seen: list[dict] = []
        engine.observers.extend([metrics.observe_rebalance, seen.append])
        await run_engine(h, engine)
        text = (await (await h.client.get("/_miroir/metrics")).get_data()).decode()
        assert "miroir_topology_epoch 4.0" in text  # start, cutting, cutover
        total = seen[-1]["shardsTotal"]
        assert f"miroir_rebalance_shards_done {float(total)}" in text
        assert "miroir_rebalance_in_progress 0.0" in text
        assert any(s["state"] == "copying" for s in seen)


async def test_a_start_that_died_before_publishing_is_failed_after_the_settle_time():
    """The record was written, the process died before publishing the migration: the engine
    waits `settle_ms` (the publish may still come), then fails the record, and a new change
    can start."""
    async with running_proxy(nodes=3, shards=16) as h:
        await fill(h, 30)
        add_devnode(h, "n9")
        from miroir.cluster import rebalance

        async def dies(*args, **kwargs):
            raise SystemExit("killed between the record and the publish")

        real_publish = rebalance.publish
        rebalance.publish = dies
        try:
            await start_rebalance(h.cluster, membership.add_node(
                h.cluster.durable_topology,
                {"id": "n9", "address": "http://n9.invalid:1", "group": 0}), h.cluster.now_ms())
        except SystemExit:
            pass
        finally:
            rebalance.publish = real_publish
        assert h.cluster.migration is None
        patient = Rebalancer(h.cluster, attrs.evolve(FAST, settle_ms=60_000))
        assert await patient.drive_once() == "waiting"
        assert await Rebalancer(h.cluster, FAST).drive_once() == "failed"
        started = await start_rebalance(h.cluster, membership.add_node(
            h.cluster.durable_topology, {"id": "n9", "address": "http://n9.invalid:1", "group": 0}),
            h.cluster.now_ms())
        assert started["epoch"] == 2


async def test_a_node_that_fails_mid_copy_pauses_its_move_which_resumes_when_it_is_back():
    """n9 stops answering mid-copy: its moves pause (errors recorded, nothing cut over while this
    process sees it failed); the health checker brings it back, the repair worker rejoins it,
    and the rebalance finishes with every document in place."""
    async with running_proxy(nodes=3, shards=16, health_interval_ms=50) as h:
        expected = await fill(h, 200)
        add_devnode(h, "n9")
        await start_rebalance(h.cluster, membership.add_node(
            h.cluster.durable_topology, {"id": "n9", "address": "http://n9.invalid:1", "group": 0}),
            h.cluster.now_ms())
        engine = Rebalancer(h.cluster, attrs.evolve(FAST, page_size=5))
        copy_page = engine._write_documents
        pages = 0

        async def goes_down_after_two_pages(*args):
            nonlocal pages
            pages += 1
            if pages == 3:
                h.transport.down.add("n9")
            await copy_page(*args)

        engine._write_documents = goes_down_after_two_pages
        assert await engine.drive_once() == "copying"  # paused, not failed
        record = (await h.store.get_record("rebalance")).value
        assert record["errors"] and "n9" in record["errors"][-1]
        assert record["shardsDone"] < record["shardsTotal"]
        with trio.fail_after(10):
            while h.cluster.state_of("n9") is not NodeState.FAILED:
                await trio.sleep(0.05)
        assert await engine.drive_once() == "copying"  # failed: no copy, no cutover
        h.transport.down.discard("n9")
        engine._write_documents = copy_page
        await run_engine(h, engine)
        await trio.sleep(0.5)
        await check_after(h, expected)


async def test_nothing_is_copied_before_every_live_process_routes_by_the_migration_epoch():
    """Processes record the epoch they route by; the engine waits for every live one (a dead
    one, whose record lapsed, does not count) and shows whom it waits for."""
    async with running_proxy(nodes=3, shards=16) as h:
        expected = await fill(h, 100)
        add_devnode(h, "n9")
        started = await start_rebalance(h.cluster, membership.add_node(
            h.cluster.durable_topology, {"id": "n9", "address": "http://n9.invalid:1", "group": 0}),
            h.cluster.now_ms())
        now = h.cluster.now_ms()
        await h.store.put_process_record("proc-slow", {"epoch": 1}, now, 60_000)
        await h.store.put_process_record("proc-dead", {"epoch": 1}, now - 60_000, 1_000)
        engine = Rebalancer(h.cluster, FAST)
        assert await engine.drive_once() == "waiting"
        assert await engine.drive_once() == "waiting"
        status = (await h.send("GET", "/_miroir/rebalance"))[1]
        assert status["waitingFor"] == ["proc-slow@1"] and status["documentsCopied"] == 0
        await h.store.put_process_record("proc-slow", {"epoch": started["epoch"]},
                                         h.cluster.now_ms(), 60_000)
        # the slow process adopted the migration; it stays behind the cutting epoch until told
        assert await engine.drive_once() == "cutting"
        status = (await h.send("GET", "/_miroir/rebalance"))[1]
        assert status["waitingFor"] == [f"proc-slow@{started['epoch']}"]
        assert status["shardsDone"] == status["shardsTotal"]
        await h.store.delete_process_record("proc-slow")  # it stopped cleanly
        await run_engine(h, engine)
        await check_after(h, expected)


async def test_in_the_cutting_phase_a_write_a_new_owner_misses_is_not_acknowledged():
    """The residual window, closed: once the cutting epoch is in force, a write to a moving
    shard is acknowledged only if its new owner has it too; the other shards are unaffected."""
    async with running_proxy(nodes=3, shards=16, health_interval_ms=50) as h:
        expected = await fill(h, 100)
        add_devnode(h, "n9")
        started = await start_rebalance(h.cluster, membership.add_node(
            h.cluster.durable_topology, {"id": "n9", "address": "http://n9.invalid:1", "group": 0}),
            h.cluster.now_ms())
        # another process that adopted the migration but not yet the cutting epoch holds the
        # engine in `cutting`
        await h.store.put_process_record("proc-b", {"epoch": started["epoch"]},
                                         h.cluster.now_ms(), 60_000)
        engine = Rebalancer(h.cluster, FAST)
        assert await engine.drive_once() == "cutting"
        shard_map = h.cluster.shard_map
        assert isinstance(shard_map, MigratingShardMap) and shard_map.cutting
        moving = next(i for i in range(1000, 2000)
                      if shard_map.gains(0, shard_for_key(str(i), 16)) == ("n9",))
        staying = next(i for i in range(1000, 2000)
                       if not shard_map.gains(0, shard_for_key(str(i), 16)))
        h.transport.down.add("n9")
        status, answer, _ = await h.send("POST", "/indexes/m/documents",
                                         [{"id": moving, "v": 1, "text": "x"}])
        assert (status, answer["code"]) == (503, "miroir_no_quorum")
        status, answer, _ = await h.send("POST", "/indexes/m/documents",
                                         [{"id": staying, "v": 1, "text": "x"}])
        assert status == 202 and (await h.wait_task(answer["taskUid"]))["status"] == "succeeded"
        expected[staying] = 1
        h.transport.down.discard("n9")
        await h.store.put_process_record("proc-b", {"epoch": h.cluster.epoch},
                                         h.cluster.now_ms(), 60_000)
        assert await engine.drive_once() == "grace"  # cut over
        assert await engine.drive_once() == "grace"  # proc-b must adopt the cutover too
        assert (await h.send("GET", "/_miroir/rebalance"))[1]["waitingFor"] == [
            f"proc-b@{h.cluster.epoch - 1}"]
        await h.store.delete_process_record("proc-b")
        await run_engine(h, engine)
        # the refused write reached the old owner; the compare after the cutting epoch copied
        # it to n9 before the cutover (a refused write may or may not be applied)
        expected[moving] = 1
        await check_after(h, expected)


async def test_a_forced_removal_at_rf_2_recreates_the_replicas_from_the_survivors():
    """`DELETE /_miroir/nodes/n1?force=true`: n1 leaves at once (no read or write reaches it);
    each of its shard replicas is copied from the surviving replica to its new owner while a
    client writes; at RF = 2 nothing acknowledged is lost."""
    async with running_proxy(nodes=4, shards=16, replication_factor=2) as h:
        expected = await fill(h, 300)
        state = h.app.extensions["miroir"]
        state.config = attrs.evolve(state.config, rebalance=attrs.evolve(
            state.config.rebalance, enabled=True))
        status, answer, _ = await h.send("DELETE", "/_miroir/nodes/n1?force=true")
        assert status == 200 and answer["kind"] == "force_remove" and answer["rebalanceId"]
        assert h.cluster.state_of("n1") is NodeState.REMOVED
        h.transport.down.add("n1")  # it is gone: nothing may depend on it
        engine = Rebalancer(h.cluster, FAST)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client_traffic, h, expected, 15, 3)
            await run_engine(h, engine)
        status = (await h.send("GET", "/_miroir/rebalance"))[1]
        assert status["kind"] == "force_remove" and status["lost"] == []
        assert status["shardsDone"] == status["shardsTotal"] == answer["shardReplicasToCopy"] > 0
        assert h.cluster.shard_map.shards_of("n1") == ()
        await check_after(h, expected)
        status, answer, _ = await h.send("DELETE", "/_miroir/nodes/n1")
        assert status == 200 and answer["kind"] == "forget_node"


async def test_a_forced_removal_at_rf_1_loses_what_only_that_node_held_and_says_so():
    async with running_proxy(nodes=3, shards=16) as h:
        expected = await fill(h, 200)
        lost_shards = set(h.cluster.shard_map.shards_of("n1"))
        change = membership.remove_node(h.cluster.durable_topology, "n1", force=True)
        await start_rebalance(h.cluster, change, h.cluster.now_ms())
        h.transport.down.add("n1")
        await run_engine(h, Rebalancer(h.cluster, FAST))
        status = (await h.send("GET", "/_miroir/rebalance"))[1]
        assert len(status["lost"]) == len(lost_shards) and "n1" in status["lost"][0]
        kept = {i: v for i, v in expected.items() if shard_for_key(str(i), 16) not in lost_shards}
        await check_after(h, kept)
        # the new owners of the lost shards take writes again
        moved = next(i for i in range(1000, 2000) if shard_for_key(str(i), 16) in lost_shards)
        answer = (await h.send("POST", "/indexes/m/documents", [{"id": moved, "v": 7}]))[1]
        assert (await h.wait_task(answer["taskUid"]))["status"] == "succeeded"
        await check_after(h, {**kept, moved: 7})


def test_progress_derives_the_rate_and_the_eta_while_copying():
    from miroir.cluster.rebalance import progress

    record = {"state": "copying", "copyStartedAtMs": 10_000, "documentsCopied": 3000,
              "shardsDone": 4, "shardsTotal": 12, "done": ["g0/s1:n9"], "errors": []}
    shown = progress(record, now_ms=16_000)
    assert shown["documentsPerSecond"] == 500.0
    assert shown["etaSeconds"] == 12.0  # 6 s for 4 of 12: 8 more at the same pace
    assert "done" not in shown
    idle = progress({**record, "state": "done"}, now_ms=16_000)
    assert idle["documentsPerSecond"] is None and idle["etaSeconds"] is None
