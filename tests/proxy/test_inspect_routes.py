"""`GET /_miroir/stats`, `GET /_miroir/verify` and `GET /_miroir/indexes/{uid}/settings/nodes`
(issue #18): what `miroir ctl stats|verify|settings diff` read. Counts are checked against the
devnodes' own engines, and differences are made behind Miroir's back."""

from __future__ import annotations

from miroir.core.placement import shard_for_key
from tests.proxy.harness import running_proxy
from tests.proxy.test_reconcile import behind_the_back
from tests.proxy.test_settings import make_index

SHARDS = 8


def held_by(h, node, shard):
    docs = h.nodes[node].engine.indexes["movies"].documents.values()
    return sum(1 for d in docs if d["_miroir_shard"] == shard)


async def fill(h, count=40):
    await make_index(h)
    docs = [{"id": i, "title": f"doc {i}"} for i in range(count)]
    body = (await h.send("POST", "/indexes/movies/documents", docs))[1]
    await h.wait_task(body["taskUid"])


async def test_stats_count_every_replica_where_it_lives():
    async with running_proxy(nodes=4, replica_groups=2, shards=SHARDS) as h:
        await fill(h)
        status, stats, _ = await h.send("GET", "/_miroir/stats")
        assert status == 200
        index = stats["indexes"]["movies"]
        assert index["numberOfDocuments"] == 40
        for node, seen in index["nodes"].items():
            assert seen["numberOfDocuments"] == len(h.nodes[node].engine.indexes["movies"].documents)
        for shard in index["shards"]:
            for replica in shard["replicas"]:
                assert replica["numberOfDocuments"] == held_by(h, replica["node"], shard["shard"])
            assert {r["group"] for r in shard["replicas"]} == {0, 1}
        assert [g["numberOfDocuments"] for g in index["groups"]] == [40, 40]
        for group in index["groups"]:
            assert group["skew"] >= 1.0
        assert {n["id"] for n in stats["nodes"]} == set(h.nodes)
        assert sum(n["numberOfDocuments"] for n in stats["nodes"]) == 80  # RG = 2


async def test_stats_of_some_indexes_only():
    async with running_proxy(nodes=2, shards=4) as h:
        await fill(h, 6)
        body = (await h.send("POST", "/indexes", {"uid": "other", "primaryKey": "id"}))[1]
        await h.wait_task(body["taskUid"])
        assert set((await h.send("GET", "/_miroir/stats"))[1]["indexes"]) == {"movies", "other"}
        only = (await h.send("GET", "/_miroir/stats?indexes=movies"))[1]
        assert set(only["indexes"]) == {"movies"}
        assert only["indexes"]["movies"]["numberOfDocuments"] == 6
        status, body, _ = await h.send("GET", "/_miroir/stats?indexes=movies,nope")
        assert (status, body["code"]) == (404, "index_not_found")
        status, body, _ = await h.send("GET", "/_miroir/stats?indexes=b%20d")
        assert (status, body["code"]) == (400, "invalid_index_uid")


async def test_stats_show_a_silent_node_as_null_not_an_error():
    async with running_proxy(nodes=3, shards=SHARDS) as h:
        await fill(h, 10)
        h.transport.down.add("n1")
        status, stats, _ = await h.send("GET", "/_miroir/stats")
        assert status == 200
        nodes = {n["id"]: n for n in stats["nodes"]}
        assert nodes["n1"]["answered"] is False and nodes["n1"]["numberOfDocuments"] is None
        assert stats["indexes"]["movies"]["nodes"]["n1"]["numberOfDocuments"] is None
        assert stats["indexes"]["movies"]["nodes"]["n0"]["numberOfDocuments"] is not None


async def test_verify_is_clean_then_names_a_replica_changed_behind_the_back():
    async with running_proxy(nodes=4, replica_groups=2, shards=SHARDS) as h:
        await fill(h)
        status, report, _ = await h.send("GET", "/_miroir/verify?sample=0")
        assert status == 200 and report["consistent"] is True
        assert report["indexes"][0]["shards"][0]["sampled"] > 0
        shard = shard_for_key("3", SHARDS)
        victim = h.cluster.shard_map.owners(1, shard)[0]
        await behind_the_back(h, victim, "POST", "/indexes/movies/documents",
                              [{"id": 3, "title": "edited", "_miroir_shard": shard}])
        report = (await h.send("GET", "/_miroir/verify?indexes=movies&sample=0"))[1]
        assert report["consistent"] is False
        (bad,) = [s for s in report["indexes"][0]["shards"] if not s["consistent"]]
        assert (bad["shard"], bad["differingIds"], bad["countsAgree"]) == (shard, ["3"], True)
        # a document only one replica holds: the counts disagree
        extra = shard_for_key("999", SHARDS)
        other = h.cluster.shard_map.owners(0, extra)[0]
        await behind_the_back(h, other, "POST", "/indexes/movies/documents",
                              [{"id": 999, "title": "stray", "_miroir_shard": extra}])
        report = (await h.send("GET", "/_miroir/verify?sample=5"))[1]
        by_shard = {s["shard"]: s for s in report["indexes"][0]["shards"]}
        assert by_shard[extra]["countsAgree"] is False
        # nothing was repaired: verify only looks
        assert h.nodes[victim].engine.indexes["movies"].documents["3"]["title"] == "edited"


async def test_verify_and_settings_per_node_name_a_node_whose_settings_differ():
    async with running_proxy(nodes=3, shards=SHARDS) as h:
        await fill(h, 5)
        view = (await h.send("GET", "/_miroir/indexes/movies/settings/nodes"))[1]
        assert len({n["digest"] for n in view["nodes"]}) == 1
        await behind_the_back(h, "n2", "PATCH", "/indexes/movies/settings",
                              {"searchableAttributes": ["title"]})
        view = (await h.send("GET", "/_miroir/indexes/movies/settings/nodes"))[1]
        nodes = {n["id"]: n for n in view["nodes"]}
        assert nodes["n2"]["settings"]["searchableAttributes"] == ["title"]
        assert nodes["n0"]["digest"] != nodes["n2"]["digest"]
        report = (await h.send("GET", "/_miroir/verify?indexes=movies"))[1]
        settings = report["indexes"][0]["settings"]
        assert settings["differing"] == [{"node": "n2", "keys": ["searchableAttributes"],
                                          "answered": True}]
        assert report["consistent"] is False


async def test_bad_requests_are_meilisearch_shaped():
    async with running_proxy(nodes=2, shards=4) as h:
        status, body, _ = await h.send("GET", "/_miroir/verify?sample=-1")
        assert (status, body["code"]) == (400, "bad_request")
        status, body, _ = await h.send("GET", "/_miroir/verify?indexes=nope")
        assert (status, body["code"]) == (404, "index_not_found")
        status, body, _ = await h.send("GET", "/_miroir/indexes/nope/settings/nodes")
        assert (status, body["code"]) == (404, "index_not_found")
        status, body, _ = await h.send("GET", "/_miroir/indexes/b%20d/settings/nodes")
        assert (status, body["code"]) == (400, "invalid_index_uid")


async def test_verify_every_document_pages_through_a_shard(monkeypatch):
    from miroir.cluster import verify

    monkeypatch.setattr(verify, "PAGE_SIZE", 3)  # several pages per shard and owner
    async with running_proxy(nodes=2, replica_groups=2, shards=2) as h:
        await fill(h, 25)
        report = (await h.send("GET", "/_miroir/verify?sample=0"))[1]
        shards = report["indexes"][0]["shards"]
        assert [s["sampled"] for s in shards] == [held_by(h, "n0", 0), held_by(h, "n0", 1)]
        assert sum(s["sampled"] for s in shards) == 25 and report["consistent"] is True
        assert report["indexes"][0]["tasksUnfinished"] is False
        victim = h.cluster.shard_map.owners(1, shard_for_key("24", 2))[0]
        await behind_the_back(h, victim, "POST", "/indexes/movies/documents",
                              [{"id": 24, "title": "late page", "_miroir_shard": shard_for_key("24", 2)}])
        report = (await h.send("GET", "/_miroir/verify?sample=0"))[1]
        assert [s["differingIds"] for s in report["indexes"][0]["shards"]
                if not s["consistent"]] == [["24"]]


async def test_with_every_node_silent_the_routes_answer_503_not_500():
    async with running_proxy(nodes=2, shards=4) as h:
        await fill(h, 4)
        h.transport.down.update({"n0", "n1"})
        for path in ("/_miroir/stats", "/_miroir/verify", "/_miroir/verify?indexes=movies",
                     "/_miroir/indexes/movies/settings/nodes"):
            status, body, _ = await h.send("GET", path)
            assert (status, body["code"]) == (503, "miroir_node_unavailable"), path


async def test_verify_compares_replicas_within_a_group_too():
    async with running_proxy(nodes=3, replication_factor=2, shards=SHARDS) as h:
        await fill(h, 30)
        assert (await h.send("GET", "/_miroir/verify"))[1]["consistent"] is True
        shard = shard_for_key("11", SHARDS)
        first, second = h.cluster.shard_map.owners(0, shard)
        await behind_the_back(h, second, "POST", "/indexes/movies/documents/delete-batch",
                              ["11"])
        report = (await h.send("GET", "/_miroir/verify?sample=0"))[1]
        (bad,) = [s for s in report["indexes"][0]["shards"] if not s["consistent"]]
        counts = {r["node"]: r["numberOfDocuments"] for r in bad["replicas"]}
        assert bad["shard"] == shard and bad["countsAgree"] is False
        assert counts[first] == counts[second] + 1 and bad["differingIds"] == ["11"]


async def test_an_aliased_index_is_reported_under_its_client_uid():
    async with running_proxy(nodes=2, shards=4) as h:
        await fill(h, 8)
        status, _, _ = await h.send("PUT", "/_miroir/aliases/films", {"index": "movies"})
        assert status == 200
        layouts = await h.cluster.layouts.current()
        assert layouts.node_index("films") == "movies"
        stats = (await h.send("GET", "/_miroir/stats"))[1]
        label = layouts.client_uid("movies")
        assert stats["indexes"][label]["nodeIndex"] == "movies"
        assert stats["indexes"][label]["numberOfDocuments"] == 8
        only = (await h.send("GET", "/_miroir/stats?indexes=films"))[1]
        assert list(only["indexes"]) == ["films"] and only["indexes"]["films"]["nodeIndex"] == "movies"
        report = (await h.send("GET", "/_miroir/verify?indexes=films&sample=0"))[1]
        (index,) = report["indexes"]
        assert (index["index"], index["nodeIndex"], index["consistent"]) == ("films", "movies", True)
        assert sum(s["sampled"] for s in index["shards"]) == 8
        view = (await h.send("GET", "/_miroir/indexes/films/settings/nodes"))[1]
        assert (view["index"], view["nodeIndex"]) == ("films", "movies")
        assert all(n["answered"] for n in view["nodes"])
