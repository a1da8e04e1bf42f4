"""Index lifecycle: broadcast create with rollback, `_miroir_shard` everywhere, get/list/delete."""

from tests.proxy.harness import running_proxy


def node_index_uids(h):
    return {node_id: sorted(app.engine.indexes) for node_id, app in h.nodes.items()}


async def test_create_reaches_every_node_of_every_group_with_the_shard_field_filterable():
    async with running_proxy(nodes=4, replica_groups=2, replication_factor=1) as h:
        status, body, _ = await h.send("POST", "/indexes", {"uid": "books", "primaryKey": "isbn"})
        assert status == 202
        assert body["status"] == "enqueued" and body["type"] == "indexCreation"
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "succeeded"
        assert task["details"] == {"primaryKey": "isbn"}
        for app in h.nodes.values():
            index = app.engine.indexes["books"]
            assert index.primary_key == "isbn"
            assert "_miroir_shard" in index.settings["filterableAttributes"]
        status, body, _ = await h.send("GET", "/indexes/books")
        assert status == 200 and body["uid"] == "books" and body["primaryKey"] == "isbn"
        status, body, _ = await h.send("GET", "/indexes")
        assert status == 200 and [i["uid"] for i in body["results"]] == ["books"]
        assert body["total"] == 1


async def test_failed_creation_on_one_node_is_rolled_back_everywhere():
    async with running_proxy(nodes=3) as h:
        # n2 refuses only the creation request.
        h.transport.refuse = lambda node, method, path: (node, method, path) == (
            "n2", "POST", "/indexes"
        )
        status, body, _ = await h.send("POST", "/indexes", {"uid": "books"})
        assert status == 202
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "failed"
        assert task["error"]["code"] == "miroir_node_unavailable"
        assert node_index_uids(h) == {"n0": [], "n1": [], "n2": []}
        assert ("n0", "DELETE", "/indexes/books") in h.transport.calls


async def test_creating_an_existing_index_fails_with_index_already_exists_and_keeps_it():
    async with running_proxy(nodes=2) as h:
        first = (await h.send("POST", "/indexes", {"uid": "books"}))[1]
        await h.wait_task(first["taskUid"])
        second = (await h.send("POST", "/indexes", {"uid": "books"}))[1]
        task = await h.wait_task(second["taskUid"])
        assert task["status"] == "failed"
        assert task["error"]["code"] == "index_already_exists"
        assert node_index_uids(h) == {"n0": ["books"], "n1": ["books"]}


async def test_delete_broadcasts_and_missing_index_reads_are_404():
    async with running_proxy(nodes=3) as h:
        created = (await h.send("POST", "/indexes", {"uid": "books"}))[1]
        await h.wait_task(created["taskUid"])
        status, body, _ = await h.send("DELETE", "/indexes/books")
        assert status == 202 and body["type"] == "indexDeletion"
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "succeeded"
        assert node_index_uids(h) == {"n0": [], "n1": [], "n2": []}
        status, body, _ = await h.send("GET", "/indexes/books")
        assert status == 404 and body["code"] == "index_not_found"
        status, body, _ = await h.send("DELETE", "/indexes/books")
        task = await h.wait_task(body["taskUid"])
        assert task["status"] == "failed" and task["error"]["code"] == "index_not_found"


async def test_stats_count_each_document_once_whatever_rf_and_rg():
    async with running_proxy(nodes=6, replica_groups=2, replication_factor=2, shards=16) as h:
        docs = [{"id": i, "kind": "even" if i % 2 == 0 else "odd"} for i in range(137)]
        body = (await h.send("POST", "/indexes/things/documents", docs))[1]
        assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
        # Every document sits on RG x RF = 4 nodes.
        assert sum(len(a.engine.indexes["things"].documents) for a in h.nodes.values()) == 4 * 137
        status, stats, _ = await h.send("GET", "/indexes/things/stats")
        assert status == 200
        assert stats["numberOfDocuments"] == 137
        assert "_miroir_shard" not in stats["fieldDistribution"]
        status, everything, _ = await h.send("GET", "/stats")
        assert status == 200
        assert everything["indexes"]["things"]["numberOfDocuments"] == 137


async def test_version_comes_from_a_node():
    async with running_proxy(nodes=2) as h:
        h.transport.down.add("n0")
        status, body, _ = await h.send("GET", "/version")
        assert status == 200 and "pkgVersion" in body
