"""A node-side index whose layout has its own shard count (`Layouts.node_shards`) on a topology
of another S: every request path routes it by its own S (`Cluster.shard_map_for`), and an
index without a count keeps the topology's.

The topology here has S=4; `big` has S=16 (what a reshard leaves behind), `small` the default.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from miroir.core.node_state import NodeEvent
from miroir.core.placement import shard_for_key
from tests.proxy.harness import running_proxy

TOPOLOGY_S, BIG_S = 4, 16


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


def stored(h, index):
    """node -> {id: document} as each devnode holds it."""
    return {node: dict(app.engine.indexes[index].documents) if index in app.engine.indexes else {}
            for node, app in h.nodes.items()}


async def done(h, call, status="succeeded") -> dict:
    code, body, _ = await call
    assert code == 202, body
    task = await h.wait_task(body["taskUid"])
    assert task["status"] == status, task
    return task


async def set_big_shards(h, shards=BIG_S):
    await h.cluster.layouts.change(lambda now: now.with_node_shards("big", shards))


async def fill(h, uid, count, **fields):
    await done(h, h.send("POST", "/indexes", {"uid": uid, "primaryKey": "id"}))
    await done(h, h.send("PATCH", f"/indexes/{uid}/settings", {
        "filterableAttributes": ["n", "color"], "sortableAttributes": ["n"]}))
    docs = [{"id": i, "n": i, "color": "red" if i % 3 else "blue", "title": f"doc {i}",
             **fields} for i in range(count)]
    await done(h, h.send("POST", f"/indexes/{uid}/documents", docs))


def assert_placed_by(h, index, shards):
    """Every stored document carries `_miroir_shard = hash(id) mod shards` and sits on an owner
    of that shard in the map for `shards`."""
    shard_map = h.cluster.shard_map.with_shards(shards)
    seen = 0
    for node, held in stored(h, index).items():
        group = h.cluster.topology.node(node).replica_group
        for doc_id, document in held.items():
            shard = shard_for_key(doc_id, shards)
            assert document["_miroir_shard"] == shard
            assert node in shard_map.owners(group, shard)
            seen += 1
    return seen


async def test_an_index_without_a_count_keeps_the_topology_s_and_the_same_map():
    async with running_proxy(nodes=3, shards=TOPOLOGY_S) as h:
        await set_big_shards(h)
        assert h.cluster.shard_map_for("small") is h.cluster.shard_map
        big = h.cluster.shard_map_for("big")
        assert big.shards == BIG_S and big is h.cluster.shard_map_for("big")
        await fill(h, "small", 30)
        assert assert_placed_by(h, "small", TOPOLOGY_S) == 30
        # A node event rebuilds the cluster's map: the derived one is rebuilt with it.
        h.cluster.apply_node_event("n1", NodeEvent.PROBE_FAILED)
        rebuilt = h.cluster.shard_map_for("big")
        assert rebuilt is not big and rebuilt.shards == BIG_S
        assert rebuilt.state_of("n1") == h.cluster.shard_map.state_of("n1")


# (replica groups, RF): with RF=1 a node owns exactly the shards it is asked for and reads go
# unrestricted, so only RF=2 shows a read using the wrong S (its `_miroir_shard IN` filter).
LAYOUTS = [(1, 1), (2, 1), (1, 2)]


@pytest.mark.parametrize(("groups", "rf"), LAYOUTS)
async def test_writes_reads_and_deletes_follow_the_index_s(groups, rf):
    async with running_proxy(nodes=4, shards=TOPOLOGY_S, replica_groups=groups,
                             replication_factor=rf) as h:
        await set_big_shards(h)
        await fill(h, "big", 60)
        assert assert_placed_by(h, "big", BIG_S) == 60 * groups * rf
        held_shards = {d["_miroir_shard"] for held in stored(h, "big").values()
                       for d in held.values()}
        assert max(held_shards) >= TOPOLOGY_S  # the data really is spread over 16 shards

        status, body, _ = await h.send("POST", "/indexes/big/search",
                                       {"q": "", "limit": 100, "filter": "color = blue",
                                        "sort": ["n:desc"], "facets": ["color"]})
        assert status == 200, body
        blue = [i for i in range(60) if i % 3 == 0]
        assert [hit["id"] for hit in body["hits"]] == sorted(blue, reverse=True)
        assert body["estimatedTotalHits"] == len(blue)
        assert body["facetDistribution"] == {"color": {"blue": len(blue)}}
        assert all("_miroir_shard" not in hit for hit in body["hits"])

        for doc_id in (0, 17, 59):
            status, doc, _ = await h.send("GET", f"/indexes/big/documents/{doc_id}")
            assert status == 200 and doc["id"] == doc_id, doc
        status, page, _ = await h.send("GET", "/indexes/big/documents?limit=100")
        assert status == 200 and page["total"] == 60
        assert sorted(d["id"] for d in page["results"]) == list(range(60))
        status, page, _ = await h.send("POST", "/indexes/big/documents/fetch",
                                       {"filter": "n < 10", "limit": 100})
        assert status == 200 and sorted(d["id"] for d in page["results"]) == list(range(10))

        status, facets, _ = await h.send("POST", "/indexes/big/facet-search",
                                         {"facetName": "color", "facetQuery": "bl"})
        assert status == 200, facets
        assert facets["facetHits"] == [{"value": "blue", "count": len(blue)}]

        await done(h, h.send("POST", "/indexes/big/documents/delete-batch", [1, 2, 3]))
        await done(h, h.send("POST", "/indexes/big/documents/delete", {"filter": "n >= 50"}))
        left = {int(i) for held in stored(h, "big").values() for i in held}
        assert left == set(range(60)) - {1, 2, 3} - set(range(50, 60))
        assert assert_placed_by(h, "big", BIG_S) == len(left) * groups * rf
        status, doc, _ = await h.send("GET", "/indexes/big/documents/2")
        assert status == 404 and doc["code"] == "document_not_found"
        await done(h, h.send("DELETE", "/indexes/big/documents"))
        assert assert_placed_by(h, "big", BIG_S) == 0


async def two_indexes(h):
    """`small` (S=4: ids 0..29, "color" red/blue) and `big` (S=16: ids 0..59)."""
    await set_big_shards(h)
    await fill(h, "small", 30)
    await fill(h, "big", 60)


@pytest.mark.parametrize(("groups", "rf"), LAYOUTS)
async def test_a_multi_search_mixing_shard_counts_answers_each_query_in_order(groups, rf):
    async with running_proxy(nodes=4, shards=TOPOLOGY_S, replica_groups=groups,
                             replication_factor=rf) as h:
        await two_indexes(h)
        queries = [{"indexUid": "big", "filter": "n < 40", "limit": 100, "sort": ["n:asc"]},
                   {"indexUid": "small", "limit": 100, "facets": ["color"]},
                   {"indexUid": "big", "filter": "color = blue", "limit": 3, "sort": ["n:desc"]}]
        status, body, _ = await h.send("POST", "/multi-search", {"queries": queries})
        assert status == 200, body
        first, second, third = body["results"]
        assert [r["indexUid"] for r in body["results"]] == ["big", "small", "big"]
        assert [hit["id"] for hit in first["hits"]] == list(range(40))
        assert sorted(hit["id"] for hit in second["hits"]) == list(range(30))
        assert second["facetDistribution"] == {"color": {"blue": 10, "red": 20}}
        assert [hit["id"] for hit in third["hits"]] == [57, 54, 51]
        assert third["estimatedTotalHits"] == 20


async def test_a_refusal_in_a_mixed_multi_search_names_the_clients_position():
    async with running_proxy(nodes=3, shards=TOPOLOGY_S) as h:
        await two_indexes(h)
        queries = [{"indexUid": "small"}, {"indexUid": "big", "filter": "title = x"}]
        status, body, _ = await h.send("POST", "/multi-search", {"queries": queries})
        assert status == 400, body
        assert body["code"] == "invalid_search_filter"
        assert body["message"].startswith("Inside `.queries[1]`"), body["message"]
        assert "_miroir_shard" not in body["message"]


@pytest.mark.parametrize(("groups", "rf"), LAYOUTS)
async def test_a_federated_search_mixing_shard_counts_merges_every_index_once(groups, rf):
    async with running_proxy(nodes=4, shards=TOPOLOGY_S, replica_groups=groups,
                             replication_factor=rf) as h:
        await two_indexes(h)
        body = {"federation": {"limit": 200, "facetsByIndex": {"big": ["color"],
                                                                "small": ["color"]}},
                "queries": [{"indexUid": "small", "filter": "n < 10"},
                            {"indexUid": "big", "filter": "n >= 50"},
                            {"indexUid": "small", "filter": "n >= 25"}]}
        status, answer, _ = await h.send("POST", "/multi-search", body)
        assert status == 200, answer
        found = sorted((hit["_federation"]["indexUid"], hit["id"],
                        hit["_federation"]["queriesPosition"]) for hit in answer["hits"])
        expected = sorted([("small", i, 0) for i in range(10)]
                          + [("big", i, 1) for i in range(50, 60)]
                          + [("small", i, 2) for i in range(25, 30)])
        assert found == expected
        assert answer["estimatedTotalHits"] == 25
        assert answer["facetsByIndex"]["big"]["distribution"] == {
            "color": {"blue": 3, "red": 7}}  # 51, 54, 57 are blue
        assert answer["facetsByIndex"]["small"]["distribution"] == {
            "color": {"blue": 5, "red": 10}}  # 0, 3, 6, 9, 27 are blue
        paged = {**body, "federation": {"offset": 5, "limit": 10}}
        status, window, _ = await h.send("POST", "/multi-search", paged)
        assert status == 200 and len(window["hits"]) == 10


async def test_deleting_an_index_forgets_its_count_and_a_new_one_gets_the_topology_s():
    async with running_proxy(nodes=3, shards=TOPOLOGY_S) as h:
        await set_big_shards(h)
        await fill(h, "big", 20)
        await set_big_shards(h, BIG_S)  # unchanged: the record keeps one entry
        await h.cluster.layouts.change(lambda now: now.with_node_shards("other", 8))
        await done(h, h.send("DELETE", "/indexes/big"))
        layouts = await h.cluster.layouts.refresh()
        assert layouts.node_shards == {"other": 8}  # only the deleted index's count went
        assert h.cluster.shard_map_for("big") is h.cluster.shard_map
        await fill(h, "big", 20)
        assert assert_placed_by(h, "big", TOPOLOGY_S) == 20
        status, body, _ = await h.send("POST", "/indexes/big/search", {"limit": 50})
        assert status == 200 and body["estimatedTotalHits"] == 20


async def test_an_index_that_is_never_deleted_keeps_its_count_when_a_delete_fails():
    async with running_proxy(nodes=2, shards=TOPOLOGY_S) as h:
        await set_big_shards(h)
        await fill(h, "big", 10)
        h.transport.down.update(h.nodes)  # no node takes the delete
        status, body, _ = await h.send("DELETE", "/indexes/big")
        h.transport.down.clear()
        assert status == 202
        assert (await h.wait_task(body["taskUid"]))["status"] == "failed"
        assert (await h.cluster.layouts.refresh()).node_shards == {"big": BIG_S}
        assert h.cluster.shard_map_for("big").shards == BIG_S


async def test_the_shard_table_and_readiness_cover_every_shard_count_in_use():
    async with running_proxy(nodes=5, shards=2) as h:
        await set_big_shards(h)
        status, table, _ = await h.send("GET", "/_miroir/shards?index=big")
        assert status == 200 and table["shardCount"] == BIG_S
        big = h.cluster.shard_map_for("big")
        assert [row["shard"] for row in table["shards"]] == list(range(BIG_S))
        assert all(row["groups"][0]["owners"] == list(big.owners(0, row["shard"]))
                   for row in table["shards"])
        assert len((await h.send("GET", "/_miroir/shards"))[1]["shards"]) == 2
        status, body, _ = await h.send("GET", "/_miroir/shards?index=nope--1")
        assert status == 200 and body["shardCount"] == 2  # no count of its own: the topology's
        # A node that owns no shard at S=2 but some at S=16: without it, S=16 is not covered.
        idle = next(n for n in h.cluster.node_ids()
                    if not h.cluster.shard_map.shards_of(n) and big.shards_of(n))
        h.cluster.apply_node_event(idle, NodeEvent.MARKED_UNHEALTHY)
        assert h.cluster.shard_map.fully_covered()
        assert not h.cluster.fully_covered()
        status, body, _ = await h.send("GET", "/_miroir/topology")
        assert body["fullyCovered"] is False
        assert (await h.send("GET", "/_miroir/ready"))[0] == 503


async def test_merged_facets_and_adaptive_replica_choice_across_shard_counts():
    """`mergeFacets` over indexes of different S, and reads alternating between an S=4 and an
    S=16 index with adaptive replica choice (its readable-owner cache holds both maps)."""
    async with running_proxy(nodes=4, shards=TOPOLOGY_S, replication_factor=2,
                             adaptive=True) as h:
        await two_indexes(h)
        body = {"federation": {"limit": 100, "facetsByIndex": {"big": ["color"],
                                                                "small": ["color"]},
                               "mergeFacets": {}},
                "queries": [{"indexUid": "small"}, {"indexUid": "big", "filter": "n < 30"}]}
        status, answer, _ = await h.send("POST", "/multi-search", body)
        assert status == 200, answer
        assert answer["facetDistribution"] == {"color": {"blue": 20, "red": 40}}
        assert answer["estimatedTotalHits"] == 60
        for _ in range(6):
            for uid, count in (("small", 30), ("big", 60)):
                status, found, _ = await h.send("POST", f"/indexes/{uid}/search", {"limit": 100})
                assert status == 200 and sorted(hit["id"] for hit in found["hits"]) == \
                    list(range(count))


async def test_renaming_an_index_of_its_own_count_keeps_the_count_with_the_data():
    """PATCH /indexes/{uid} {"uid"} of an index with a count of its own is a layouts change
    (the nodes would rename the node-side index, which the count is filed under)."""
    async with running_proxy(nodes=3, shards=TOPOLOGY_S, replication_factor=2) as h:
        await set_big_shards(h)
        await fill(h, "big", 40)
        await done(h, h.send("PATCH", "/indexes/big", {"uid": "renamed"}))
        layouts = await h.cluster.layouts.refresh()
        assert layouts.node_index("renamed") == "big" and layouts.node_index("big") is None
        assert layouts.shards_of("big", TOPOLOGY_S) == BIG_S
        assert assert_placed_by(h, "big", BIG_S) == 40 * 2
        status, body, _ = await h.send("POST", "/indexes/renamed/search", {"limit": 100})
        assert status == 200 and sorted(hit["id"] for hit in body["hits"]) == list(range(40))
        await done(h, h.send("POST", "/indexes/renamed/documents", [{"id": 99, "n": 99}]))
        assert assert_placed_by(h, "big", BIG_S) == 41 * 2
