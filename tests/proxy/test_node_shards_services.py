"""An index of its own shard count (`Layouts.node_shards`) through the paths beside reads and
writes: stats, `/_miroir/stats`, verify, the reconciler, the repair of a returning node, tasks,
similar search. The topology has S=4, `big` S=16; with RF or RG > 1 a path that used the
topology's S would count, compare or copy the wrong shards."""

from __future__ import annotations

from datetime import UTC, datetime

from miroir.cluster.reconcile import Reconciler
from miroir.core.node_state import NodeState
from miroir.core.placement import shard_for_key
from miroir.devnode.engine import Engine
from miroir.devnode.search_routes import similar
from tests.proxy.harness import running_proxy
from tests.proxy.test_node_shards import BIG_S, TOPOLOGY_S, done, fill, set_big_shards
from tests.proxy.test_reconcile import behind_the_back
from tests.proxy.test_repair import node_documents, wait_state, wipe
from tests.proxy.test_vectors import EMBEDDERS, corpus, loaded


def big_owners(h, doc_id):
    shard_map = h.cluster.shard_map_for("big")
    shard = shard_for_key(str(doc_id), BIG_S)
    return [n for g in range(shard_map.replica_groups) for n in shard_map.owners(g, shard)]


async def test_stats_count_every_document_once_by_the_index_s():
    async with running_proxy(nodes=4, shards=TOPOLOGY_S, replication_factor=2) as h:
        await set_big_shards(h)
        await fill(h, "big", 60)
        status, stats, _ = await h.send("GET", "/indexes/big/stats")
        assert status == 200 and stats["numberOfDocuments"] == 60, stats
        status, fleet, _ = await h.send("GET", "/_miroir/stats?indexes=big")
        assert status == 200, fleet
        big = fleet["indexes"]["big"]
        assert big["shardCount"] == BIG_S and fleet["shards"] == TOPOLOGY_S
        assert [s["shard"] for s in big["shards"]] == list(range(BIG_S))
        assert big["numberOfDocuments"] == 60
        for shard in big["shards"]:
            expected = sum(1 for i in range(60) if shard_for_key(str(i), BIG_S) == shard["shard"])
            assert shard["documents"] == expected
            assert all(r["numberOfDocuments"] == expected for r in shard["replicas"])


async def test_verify_checks_each_shard_of_the_index_s_and_finds_a_changed_document():
    async with running_proxy(nodes=3, shards=TOPOLOGY_S, replication_factor=2) as h:
        await set_big_shards(h)
        await fill(h, "big", 40)
        status, report, _ = await h.send("GET", "/_miroir/verify?indexes=big&sample=0")
        assert status == 200, report
        (index,) = report["indexes"]
        assert index["shardCount"] == BIG_S and index["consistent"], index
        assert [s["shard"] for s in index["shards"]] == list(range(BIG_S))
        victim = big_owners(h, 21)[1]
        await behind_the_back(h, victim, "POST", "/indexes/big/documents",
                              [{"id": 21, "n": 21, "title": "edited", "_miroir_shard":
                                shard_for_key("21", BIG_S)}])
        status, report, _ = await h.send("GET", "/_miroir/verify?indexes=big&sample=0")
        (index,) = report["indexes"]
        assert not index["consistent"]
        differing = [s for s in index["shards"] if not s["consistent"]]
        assert [s["shard"] for s in differing] == [shard_for_key("21", BIG_S)]
        assert differing[0]["differingIds"] == ["21"]


async def test_the_reconciler_repairs_a_replica_by_the_index_s():
    async with running_proxy(nodes=3, shards=TOPOLOGY_S, replication_factor=2,
                             replica_groups=1) as h:
        await set_big_shards(h)
        await fill(h, "big", 40)
        shard = shard_for_key("33", BIG_S)
        victim = big_owners(h, 33)[1]  # the other owner ranks first: its copy wins the tie
        await behind_the_back(h, victim, "POST", "/indexes/big/documents/delete-batch", ["33"])
        report = await Reconciler(h.cluster, shard_pause_s=0).run_pass()
        found = report.indexes["big"]
        assert found.shards_checked == BIG_S
        assert found.shards_differing == [shard] and found.documents_repaired == 1
        for node in big_owners(h, 33):
            assert "33" in h.nodes[node].engine.indexes["big"].documents


async def test_a_returning_node_is_backfilled_with_the_shards_of_the_index_s():
    async with running_proxy(nodes=4, replica_groups=2, shards=TOPOLOGY_S, health_interval_ms=10,
                             task_poll_interval_s=0.02) as h:
        await set_big_shards(h)
        await fill(h, "big", 60)
        await wait_state(h, "n0", NodeState.HEALTHY)
        h.transport.down.add("n0")
        await wait_state(h, "n0", NodeState.FAILED)
        fresh = wipe(h, "n0")
        more = [{"id": i, "n": i, "color": "red", "title": f"doc {i}"} for i in range(60, 80)]
        await done(h, h.send("POST", "/indexes/big/documents", more))
        await done(h, h.send("POST", "/indexes/big/documents/delete-batch", list(range(10))))
        h.transport.down.discard("n0")
        await wait_state(h, "n0", NodeState.ACTIVE, NodeState.HEALTHY)
        held = set(h.cluster.shard_map_for("big").shards_of("n0"))
        expected = {i for i in range(10, 80) if shard_for_key(str(i), BIG_S) in held}
        on_node = await node_documents(fresh, "big")
        assert expected and set(on_node) == expected
        assert all(d["_miroir_shard"] == shard_for_key(str(i), BIG_S) for i, d in on_node.items())
        # Group 1 away: reads come from group 0 only, the backfilled node included.
        h.transport.down.update({"n1", "n3"})
        await wait_state(h, "n1", NodeState.FAILED)
        await wait_state(h, "n3", NodeState.FAILED)
        status, body, _ = await h.send("POST", "/indexes/big/search", {"limit": 100})
        assert status == 200 and sorted(hit["id"] for hit in body["hits"]) == list(range(10, 80))


async def test_a_write_whose_node_part_was_wiped_finishes_by_the_index_s():
    async with running_proxy(nodes=2, replica_groups=2, shards=TOPOLOGY_S,
                             task_poll_interval_s=0.02) as h:
        await set_big_shards(h)
        await fill(h, "big", 5)
        h.pause_node_workers()
        h.nursery.start_soon(h.nodes["n1"].run_task_worker)
        status, answer, _ = await h.send("POST", "/indexes/big/documents",
                                         [{"id": i, "n": i} for i in range(10)])
        assert status == 202
        wipe(h, "n0")  # n0's part was still enqueued: its uid is gone; group 1 holds them all
        task = await h.wait_task(answer["taskUid"])
        assert task["status"] == "succeeded", task
        stored = await h.store.get_task(answer["taskUid"])
        assert stored.node_tasks["n0"].error["code"] == "miroir_node_task_lost"


async def test_similar_search_on_an_index_of_its_own_s_answers_like_one_node():
    docs = corpus()
    async with running_proxy(nodes=3, shards=TOPOLOGY_S, replication_factor=2) as h:
        await h.cluster.layouts.change(lambda now: now.with_node_shards("movies", BIG_S))
        await loaded(h, docs)
        assert max(d["_miroir_shard"] for app in h.nodes.values()
                   for d in app.engine.indexes["movies"].documents.values()) >= TOPOLOGY_S
        single = Engine(now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
        single.create_index("movies", "id")
        single.update_settings("movies", {"embedders": EMBEDDERS, "filterableAttributes": ["year"]})
        single.add_documents("movies", docs)
        single.process()
        for params in ({"id": 3, "embedder": "default"},
                       {"id": "5", "embedder": "default", "filter": "year < 1996", "limit": 4}):
            status, got, _ = await h.send("POST", "/indexes/movies/similar", params)
            assert status == 200, got
            expected = similar(single, "movies", params)
            assert got == {**expected, "processingTimeMs": got["processingTimeMs"]}


async def test_a_tie_won_by_the_owner_that_lacks_a_document_deletes_it():
    """One owner against one: the version of the owner ranking first wins, even "absent"."""
    async with running_proxy(nodes=3, shards=TOPOLOGY_S, replication_factor=2) as h:
        await set_big_shards(h)
        await fill(h, "big", 40)
        first = big_owners(h, 33)[0]
        await behind_the_back(h, first, "POST", "/indexes/big/documents/delete-batch", ["33"])
        report = await Reconciler(h.cluster, shard_pause_s=0).run_pass()
        assert report.indexes["big"].ties == 1
        for node in big_owners(h, 33):
            assert "33" not in h.nodes[node].engine.indexes["big"].documents
