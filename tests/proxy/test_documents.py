"""Document writes: primary key, validation before anything is sent, quorum, reads, deletes."""

import orjson
import pytest

from miroir.core.placement import shard_for_key
from tests.proxy.harness import running_proxy


def stored(h, index="movies"):
    """node -> {id: document} as each devnode holds it."""
    return {
        node: dict(app.engine.indexes[index].documents) if index in app.engine.indexes else {}
        for node, app in h.nodes.items()
    }


def all_ids(h, index="movies"):
    return sorted({doc_id for docs in stored(h, index).values() for doc_id in docs}, key=int)


async def test_each_document_lands_on_its_shard_owners_with_the_shard_field():
    async with running_proxy(nodes=4, replica_groups=2, shards=8) as h:
        docs = [{"id": i, "n": i} for i in range(40)]
        body = (await h.send("POST", "/indexes/movies/documents", docs))[1]
        assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
        shard_map = h.cluster.shard_map
        for node, held in stored(h).items():
            for doc_id, document in held.items():
                shard = shard_for_key(doc_id, 8)
                assert document["_miroir_shard"] == shard
                assert node in shard_map.owners(h.cluster.topology.node(node).replica_group, shard)
        # Each group holds the whole corpus exactly once (RF=1).
        for group in (0, 1):
            ids = [i for n, held in stored(h).items()
                   if h.cluster.topology.node(n).replica_group == group for i in held]
            assert sorted(ids, key=int) == [str(i) for i in range(40)]


async def test_primary_key_is_inferred_once_and_set_on_every_node_before_routing():
    async with running_proxy(nodes=3) as h:
        body = (await h.send("POST", "/indexes/movies/documents", [{"movieId": "a", "t": 1}]))[1]
        assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
        for app in h.nodes.values():
            assert app.engine.indexes["movies"].primary_key == "movieId"
        # A conflicting ?primaryKey= fails the task as Meilisearch does, nothing written.
        status, body, _ = await h.send(
            "POST", "/indexes/movies/documents?primaryKey=other", [{"other": "b", "movieId": "b"}]
        )
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "failed"
        assert task["error"]["code"] == "index_primary_key_already_exists"
        assert sorted({i for docs in stored(h).values() for i in docs}) == ["a"]


@pytest.mark.parametrize(
    ("documents", "code"),
    [
        ([{"id": 1}, {"title": "no id"}], "missing_document_id"),
        ([{"id": 1}, {"id": "bad id!"}], "invalid_document_id"),
        ([{"id": 1}, {"id": 2.5}], "invalid_document_id"),
        ([{"id": 1}, {"id": True}], "invalid_document_id"),
        ([{"id": 1}, {"id": 2, "_miroir_shard": 3}], "miroir_reserved_field"),
        ([{"id": 1}, {"id": 2, "_miroir_x": 0}], "miroir_reserved_field"),
    ],
)
async def test_one_bad_document_fails_the_whole_batch_with_nothing_written(documents, code):
    async with running_proxy(nodes=3) as h:
        created = (await h.send("POST", "/indexes", {"uid": "movies", "primaryKey": "id"}))[1]
        await h.wait_task(created["taskUid"])
        status, body, _ = await h.send("POST", "/indexes/movies/documents", documents)
        assert status == 202
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "failed"
        assert task["error"]["code"] == code
        assert task["details"] == {"receivedDocuments": 2, "indexedDocuments": 0}
        assert all_ids(h) == []
        assert not [c for c in h.transport.calls if "/documents" in c[2]]


@pytest.mark.parametrize(
    ("content_type", "payload"),
    [
        ("application/x-ndjson", b'{"id": 1, "t": "a"}\n{"id": 2, "t": "b"}\n'),
        ("text/csv", b"id,t\n1,a\n2,b\n"),
        ("application/json", b'[{"id": 1, "t": "a"}, {"id": 2, "t": "b"}]'),
    ],
)
async def test_json_ndjson_and_csv_bodies(content_type, payload):
    async with running_proxy(nodes=2) as h:
        status, body, _ = await h.send(
            "POST", "/indexes/movies/documents?primaryKey=id", payload,
            headers={"Content-Type": content_type},
        )
        assert status == 202, body
        assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
        assert all_ids(h) == ["1", "2"]


async def test_a_group_missing_quorum_is_reported_and_no_group_at_all_is_503():
    async with running_proxy(nodes=4, replica_groups=2, shards=8) as h:
        created = (await h.send("POST", "/indexes", {"uid": "movies", "primaryKey": "id"}))[1]
        await h.wait_task(created["taskUid"])
        h.transport.down.add("n0")  # group 0
        docs = [{"id": i} for i in range(30)]
        status, body, headers = await h.send("POST", "/indexes/movies/documents", docs)
        assert status == 202
        missed = {tuple(map(int, item.split("/"))) for item in headers["X-Miroir-Degraded"].split(",")}
        n0_shards = {s for s in h.cluster.shard_map.shards_of("n0")
                     if any(shard_for_key(str(i), 8) == s for i in range(30))}
        assert missed == {(0, s) for s in n0_shards}
        h.transport.down.add("n1")  # group 1 too: shards of both are lost where they overlap
        status, body, headers = await h.send("POST", "/indexes/movies/documents", docs)
        lost = set(h.cluster.shard_map.shards_of("n0")) & set(h.cluster.shard_map.shards_of("n1"))
        written = {shard_for_key(str(i), 8) for i in range(30)}
        assert lost & written, "placement changed: pick nodes whose shards overlap"
        assert status == 503 and body["code"] == "miroir_no_quorum"


async def test_no_quorum_with_a_single_group():
    async with running_proxy(nodes=2, shards=4) as h:
        created = (await h.send("POST", "/indexes", {"uid": "movies", "primaryKey": "id"}))[1]
        await h.wait_task(created["taskUid"])
        h.transport.down.add("n0")
        docs = [{"id": i} for i in range(20)]
        status, body, _ = await h.send("POST", "/indexes/movies/documents", docs)
        assert status == 503
        assert body["code"] == "miroir_no_quorum" and body["type"] == "system"


async def test_get_one_document_falls_over_to_another_replica_and_hides_miroir_fields():
    async with running_proxy(nodes=3, replication_factor=2, shards=4) as h:
        body = (await h.send("POST", "/indexes/movies/documents", [{"id": "x1", "t": 1}]))[1]
        await h.wait_task(body["taskUid"])
        owners = h.cluster.shard_map.owners(0, shard_for_key("x1", 4))
        for owner in owners:
            h.transport.down = {owner}
            status, document, _ = await h.send("GET", "/indexes/movies/documents/x1")
            assert (status, document) == (200, {"id": "x1", "t": 1})
        h.transport.down = set()
        status, body, _ = await h.send("GET", "/indexes/movies/documents/nope")
        assert status == 404 and body["code"] == "document_not_found"


async def test_deletes_by_id_go_to_owners_and_by_filter_and_all_broadcast():
    async with running_proxy(nodes=3, shards=8) as h:
        docs = [{"id": i, "color": "red" if i < 5 else "blue"} for i in range(10)]
        body = (await h.send("POST", "/indexes/movies/documents", docs))[1]
        await h.wait_task(body["taskUid"])
        body = (await h.send("DELETE", "/indexes/movies/documents/3"))[1]
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "succeeded" and task["details"]["deletedDocuments"] == 1
        calls = [c for c in h.transport.calls if c[2].partition("?")[0].endswith("/delete-batch")]
        owner = h.cluster.shard_map.owners(0, shard_for_key("3", 8))
        assert {c[0] for c in calls} == set(owner)
        body = (await h.send("POST", "/indexes/movies/documents/delete-batch", [0, "1"]))[1]
        await h.wait_task(body["taskUid"])
        assert all_ids(h) == ["2", "4", "5", "6", "7", "8", "9"]
        settings = (await h.send("PATCH", "/indexes/movies/settings",
                                 {"filterableAttributes": ["color"]}))[1]
        await h.wait_task(settings["taskUid"])
        body = (await h.send("POST", "/indexes/movies/documents/delete",
                             {"filter": "color = red"}))[1]
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "succeeded"
        assert task["details"]["originalFilter"] == orjson.dumps("color = red").decode()
        assert all_ids(h) == ["5", "6", "7", "8", "9"]
        body = (await h.send("DELETE", "/indexes/movies/documents"))[1]
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "succeeded" and task["details"]["deletedDocuments"] == 5
        assert all_ids(h) == []


async def test_body_over_the_limit_is_payload_too_large_and_nothing_is_written():
    async with running_proxy(nodes=2, max_body_bytes=64) as h:
        docs = [{"id": i, "text": "x" * 20} for i in range(10)]
        status, body, _ = await h.send("POST", "/indexes/movies/documents", docs)
        assert status == 413 and body["code"] == "payload_too_large"
        assert h.transport.calls == []


async def test_concurrent_first_writes_to_a_new_index_both_succeed():
    import trio

    async with running_proxy(nodes=3) as h:
        replies = []

        async def write(start):
            docs = [{"id": start + i} for i in range(10)]
            replies.append((await h.send("POST", "/indexes/movies/documents", docs))[1])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(write, 0)
            nursery.start_soon(write, 100)
        for reply in replies:
            assert (await h.wait_task(reply["taskUid"]))["status"] == "succeeded"
        assert len(all_ids(h)) == 20


async def test_a_write_when_no_node_answers_is_503_at_once():
    async with running_proxy(nodes=2) as h:
        h.transport.down = {"n0", "n1"}
        status, body, _ = await h.send("POST", "/indexes/movies/documents", [{"id": 1}])
        assert (status, body["code"]) == (503, "miroir_node_unavailable")


async def test_documents_sorted_through_the_proxy_like_one_node():
    """GET /documents?sort= and POST /documents/fetch with `sort`: the nodes' sorted pages
    k-way merged; errors are the nodes' (Meilisearch's) words."""
    async with running_proxy(nodes=3, shards=6) as h:
        docs = [{"id": i, "price": (i * 7) % 11, "name": f"N{i % 5}"} for i in range(30)]
        body = (await h.send("POST", "/indexes/movies/documents", docs))[1]
        assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
        status, body, _ = await h.send("GET", "/indexes/movies/documents?sort=price:asc")
        assert status == 400 and body["code"] == "invalid_document_sort"
        assert body["message"] == (
            "Attribute `price` is not sortable. This index does not have configured sortable "
            "attributes.")
        body = (await h.send("PATCH", "/indexes/movies/settings",
                             {"sortableAttributes": ["price", "name"]}))[1]
        assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
        status, body, _ = await h.send(
            "GET", "/indexes/movies/documents?sort=price:desc,name:asc&offset=3&limit=9")
        assert status == 200, body
        expected = sorted(docs, key=lambda d: (-d["price"], d["name"].lower()))
        got = [(d["price"], d["name"]) for d in body["results"]]
        assert got == [(d["price"], d["name"]) for d in expected[3:12]]
        assert body["total"] == 30 and "_miroir_shard" not in body["results"][0]
        status, body, _ = await h.send("POST", "/indexes/movies/documents/fetch",
                                       {"sort": ["name:desc"], "limit": 30, "fields": ["id"]})
        assert status == 200, body
        assert [set(d) for d in body["results"]] == [{"id"}] * 30
        names = [next(x["name"] for x in docs if x["id"] == d["id"]) for d in body["results"]]
        assert names == sorted(names, reverse=True)
        status, body, _ = await h.send("POST", "/indexes/movies/documents/fetch",
                                       {"sort": ["price"]})
        assert status == 400 and body["code"] == "invalid_document_sort"
