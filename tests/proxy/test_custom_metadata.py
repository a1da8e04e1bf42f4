"""`?customMetadata=` on every document write route, kept on the Miroir task and shown as
Meilisearch shows it; `?skipCreation=true` passed to the owners, so no shard creates a document."""

import pytest

from tests.proxy.harness import running_proxy


def held(h, index="movies"):
    """node -> {id: document}."""
    return {node: dict(app.engine.indexes[index].documents) if index in app.engine.indexes else {}
            for node, app in h.nodes.items()}


async def _seed(h):
    body = (await h.send("PATCH", "/indexes/movies/settings",
                         {"filterableAttributes": ["color"]}))[1]
    await h.wait_task(body["taskUid"])
    docs = [{"id": i, "color": "red" if i % 2 else "blue"} for i in range(10)]
    body = (await h.send("POST", "/indexes/movies/documents", docs))[1]
    assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"


WRITES = [
    ("POST", "/indexes/movies/documents", [{"id": 20}]),
    ("PUT", "/indexes/movies/documents", [{"id": 1, "title": "x"}]),
    ("DELETE", "/indexes/movies/documents/3", None),
    ("POST", "/indexes/movies/documents/delete-batch", [4, 5]),
    ("POST", "/indexes/movies/documents/delete", {"filter": "color = blue"}),
    ("DELETE", "/indexes/movies/documents", None),
]


async def test_every_document_write_keeps_its_custom_metadata_on_the_task():
    async with running_proxy(nodes=3) as h:
        await _seed(h)
        for number, (method, path, body) in enumerate(WRITES):
            metadata = f"job {number} & co/é"
            status, summary, _ = await h.send(
                method, path, body, query_string={"customMetadata": metadata}
            )
            assert status == 202, summary
            assert list(summary)[-1] == "customMetadata"
            assert summary["customMetadata"] == metadata
            task = await h.wait_task(summary["taskUid"])
            assert task["status"] == "succeeded", task
            assert task["customMetadata"] == metadata
            listed = (await h.send("GET", "/tasks", query_string={"uids": str(task["uid"])}))[1]
            assert listed["results"][0]["customMetadata"] == metadata


async def test_without_custom_metadata_the_field_is_absent():
    async with running_proxy(nodes=2) as h:
        summary = (await h.send("POST", "/indexes/movies/documents", [{"id": 1}]))[1]
        assert "customMetadata" not in summary
        assert "customMetadata" not in await h.wait_task(summary["taskUid"])


async def test_a_failed_batch_keeps_its_custom_metadata():
    async with running_proxy(nodes=2) as h:
        summary = (await h.send("POST", "/indexes/movies/documents", [{"title": "no id"}],
                                query_string={"customMetadata": "bad"}))[1]
        task = await h.wait_task(summary["taskUid"])
        assert task["status"] == "failed" and task["customMetadata"] == "bad"


@pytest.mark.parametrize(("method", "path", "body"), [w for w in WRITES if "documents/" in w[1]
                                                      or w[0] == "DELETE"])
async def test_delete_routes_refuse_other_parameters_as_meilisearch_does(method, path, body):
    async with running_proxy(nodes=2) as h:
        status, error, _ = await h.send(method, path, body, query_string={"primaryKey": "id"})
        assert status == 400
        assert error["code"] == "bad_request"
        assert error["message"] == "Unknown parameter `primaryKey`: expected one of `customMetadata`"


async def test_skip_creation_updates_existing_documents_and_creates_none_on_any_shard():
    async with running_proxy(nodes=4, replica_groups=2, shards=8) as h:
        await _seed(h)
        before = held(h)
        batch = [{"id": 1, "title": "updated"}, {"id": 2, "title": "updated"},
                 *({"id": 100 + i, "title": "new"} for i in range(12))]
        summary = (await h.send("PUT", "/indexes/movies/documents", batch,
                                query_string={"skipCreation": "TRUE"}))[1]
        task = await h.wait_task(summary["taskUid"])
        assert task["status"] == "succeeded"
        assert task["details"] == {"receivedDocuments": 14, "indexedDocuments": 2}
        after = held(h)
        for node in after:
            assert set(after[node]) == set(before[node]), node  # no id appeared anywhere
            for doc_id in {"1", "2"} & set(after[node]):
                assert after[node][doc_id]["title"] == "updated"
        # Without it, the same batch creates them.
        summary = (await h.send("PUT", "/indexes/movies/documents", batch,
                                query_string={"skipCreation": "false"}))[1]
        await h.wait_task(summary["taskUid"])
        assert {i for docs in held(h).values() for i in docs} >= {str(100 + i) for i in range(12)}


async def test_a_bad_skip_creation_is_meilisearchs_error_and_nothing_is_sent():
    async with running_proxy(nodes=2) as h:
        status, error, _ = await h.send("POST", "/indexes/movies/documents", [{"id": 1}],
                                        query_string={"skipCreation": "yes"})
        assert status == 400
        assert error == {
            "message": "skipCreation must be either `true` or `false`. Found: `yes`",
            "code": "invalid_skip_creation", "type": "invalid_request",
            "link": "https://docs.meilisearch.com/errors#invalid_skip_creation",
        }
        assert h.transport.calls == []
