"""Index compaction, stats fields, settings behind experimental features, batches, and the routes
Miroir refuses on purpose (`miroir_unsupported_route`)."""

import pytest

from miroir.proxy.refused_routes import PENDING, REFUSALS
from tests.proxy.harness import running_proxy


async def _index(h, docs=20):
    body = (await h.send("POST", "/indexes/movies/documents",
                         [{"id": i, "title": f"movie {i}"} for i in range(docs)]))[1]
    assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"


async def test_compaction_is_broadcast_and_tracked_as_one_task():
    async with running_proxy(nodes=3) as h:
        await _index(h)
        status, summary, _ = await h.send("POST", "/indexes/movies/compact")
        assert status == 202
        assert summary["type"] == "indexCompaction" and summary["indexUid"] == "movies"
        task = await h.wait_task(summary["taskUid"])
        assert task["status"] == "succeeded" and task["details"] == {}
        compacted = {node for node, method, path in h.transport.calls
                     if (method, path) == ("POST", "/indexes/movies/compact")}
        assert compacted == set(h.nodes)


async def test_compacting_a_missing_index_fails_its_task_with_index_not_found():
    async with running_proxy(nodes=2) as h:
        summary = (await h.send("POST", "/indexes/nothing/compact"))[1]
        task = await h.wait_task(summary["taskUid"])
        assert task["status"] == "failed" and task["error"]["code"] == "index_not_found"


@pytest.mark.parametrize("replication_factor", [1, 2])
async def test_internal_database_sizes_count_one_replica_per_shard(replication_factor):
    async with running_proxy(nodes=3, replication_factor=replication_factor) as h:
        await _index(h)
        plain = (await h.send("GET", "/indexes/movies/stats"))[1]
        assert "internalDatabaseSizes" not in plain
        assert plain["numberOfEmbeddings"] == 0 and plain["numberOfEmbeddedDocuments"] == 0
        shown = (await h.send("GET", "/indexes/movies/stats",
                              query_string={"showInternalDatabaseSizes": "true"}))[1]
        keys = list(shown)
        assert keys.index("isIndexing") < keys.index("internalDatabaseSizes") \
            < keys.index("numberOfEmbeddings")
        # The devnode's one "database" is its documents' JSON bytes: summed over one replica
        # per shard, that is the corpus once, whatever the replication factor.
        one_node = sum(app.engine.index_stats("movies")["rawDocumentDbSize"]
                       for app in h.nodes.values()) / replication_factor
        assert shown["internalDatabaseSizes"] == {"documents": pytest.approx(one_node, rel=0.01)}


async def test_settings_behind_experimental_features_read_defaults_and_refuse_values():
    async with running_proxy(nodes=2) as h:
        await _index(h)
        status, keys, _ = await h.send("GET", "/indexes/movies/settings/foreign-keys")
        assert (status, keys) == (200, [])
        status, chat, _ = await h.send("GET", "/indexes/movies/settings/chat")
        assert status == 200 and chat["documentTemplateMaxBytes"] == 400
        status, error, _ = await h.send("PUT", "/indexes/movies/settings/foreign-keys",
                                        [{"foreignIndexUid": "a", "fieldName": "b"}])
        assert status == 400 and error["code"] == "feature_not_enabled"
        assert "`foreign_keys` experimental feature" in error["message"]
        status, error, _ = await h.send("PATCH", "/indexes/movies/settings/chat",
                                        {"description": "films"})
        assert status == 400 and error["code"] == "feature_not_enabled"
        summary = (await h.send("DELETE", "/indexes/movies/settings/chat"))[1]
        assert (await h.wait_task(summary["taskUid"]))["status"] == "succeeded"
        settings = (await h.send("GET", "/indexes/movies/settings"))[1]
        assert "chat" not in settings and "foreignKeys" not in settings


async def test_batches_list_is_empty_and_no_batch_exists():
    async with running_proxy(nodes=2) as h:
        await _index(h)
        status, page, _ = await h.send("GET", "/batches", query_string={"limit": "5"})
        assert (status, page) == (200, {"results": [], "total": 0, "limit": 5, "from": None,
                                        "next": None})
        status, error, _ = await h.send("GET", "/batches/0")
        assert (status, error["code"], error["message"]) == (404, "batch_not_found",
                                                             "Batch `0` not found.")
        status, error, _ = await h.send("GET", "/batches/x")
        assert (status, error["code"]) == (400, "invalid_batch_uids")


@pytest.mark.parametrize("refusal", REFUSALS, ids=lambda r: r.pattern)
async def test_each_refused_route_says_why_with_400(refusal):
    path = refusal.pattern.replace("{index_uid}", "movies").replace("{workspace_uid}", "w") \
        .replace("{uid}", "r").replace("{task_id}", "0").replace("{key}", "k")
    assert "{" not in path
    async with running_proxy(nodes=1) as h:
        for method in refusal.methods:
            status, error, _ = await h.send(method, path, None if method in ("GET", "DELETE")
                                            else {})
            if error.get("code") != "miroir_unsupported_route" and refusal.pattern in PENDING:
                # Another part of Miroir serves this one now (a served route wins), and then
                # it answers as itself, never as an unknown route.
                assert error.get("code") not in ("not_found", "method_not_allowed")
                continue
            assert status == 400, (method, path, error)
            assert error["code"] == "miroir_unsupported_route"
            assert error["type"] == "invalid_request"
            assert refusal.pattern in error["message"] and refusal.reason in error["message"]
        assert h.transport.calls == []


async def test_an_unknown_route_is_still_not_found():
    async with running_proxy(nodes=1) as h:
        status, error, _ = await h.send("GET", "/no-such-route")
        assert (status, error["code"]) == (404, "not_found")
