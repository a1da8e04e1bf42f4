"""The devnode over real HTTP (hypercorn on a loopback port): shapes, auth and the bad-input table.

Every row of the bad-input table must get Meilisearch's exact code and status and change
nothing: no task enqueued, no document, setting or index touched.
"""

from __future__ import annotations

import copy
from datetime import datetime

import httpx
import orjson
import pytest
import trio

from miroir.devnode.serve import serve_devnode

from .test_settings import WRONG_TYPES

KEY = "master-key-for-tests"
AUTH = {"Authorization": f"Bearer {KEY}"}
JSON_TYPE = {"Content-Type": "application/json"}


async def wait_task(client: httpx.AsyncClient, uid: int) -> dict:
    while True:
        task = (await client.get(f"/tasks/{uid}")).json()
        if task["status"] in ("succeeded", "failed", "canceled"):
            return task
        await trio.sleep(0.005)


@pytest.fixture
async def node():
    async with serve_devnode(master_key=KEY, payload_limit=10_000) as running:
        async with httpx.AsyncClient(base_url=running.url, headers=AUTH) as client:
            created = await client.post(
                "/indexes/movies/documents?primaryKey=id",
                content=b'[{"id": 1, "title": "a"}]',
                headers=JSON_TYPE,
            )
            assert (await wait_task(client, created.json()["taskUid"]))["status"] == "succeeded"
            yield running, client


def snapshot(engine) -> tuple:
    return (
        len(engine.tasks),
        {
            uid: (index.primary_key, copy.deepcopy(index.settings), copy.deepcopy(index.documents))
            for uid, index in engine.indexes.items()
        },
    )


BAD_REQUESTS = [
    # (method, path, content type, body, status, code)
    (
        "POST",
        "/indexes/movies/documents",
        "application/json",
        b'[{"id": 2,',
        400,
        "malformed_payload",
    ),
    ("POST", "/indexes/movies/documents", "application/json", b"[1, 2]", 400, "malformed_payload"),
    ("POST", "/indexes/movies/documents", "application/json", b"", 400, "missing_payload"),
    ("POST", "/indexes/movies/documents", None, b'[{"id": 2}]', 415, "missing_content_type"),
    (
        "POST",
        "/indexes/movies/documents",
        "text/plain",
        b'[{"id": 2}]',
        415,
        "invalid_content_type",
    ),
    (
        "POST",
        "/indexes/movies/documents?foo=1",
        "application/json",
        b'[{"id": 2}]',
        400,
        "bad_request",
    ),
    (
        "POST",
        "/indexes/movies/documents?csvDelimiter=ab",
        "text/csv",
        b"id\n2\n",
        400,
        "invalid_document_csv_delimiter",
    ),
    (
        "PUT",
        "/indexes/movies/documents",
        "application/x-ndjson",
        b'{"id": 2}\n[',
        400,
        "malformed_payload",
    ),
    (
        "POST",
        "/indexes/movies/documents",
        "application/json",
        b'[{"id": "%s"}]' % (b"x" * 10_000),
        413,
        "payload_too_large",
    ),
    (
        "POST",
        "/indexes/bad%20uid/documents",
        "application/json",
        b'[{"id": 2}]',
        400,
        "invalid_index_uid",
    ),
    ("PATCH", "/indexes/movies/settings", "application/json", b"{", 400, "malformed_payload"),
    (
        "PATCH",
        "/indexes/movies/settings",
        "application/json",
        b'{"rankingRule": []}',
        400,
        "bad_request",
    ),
    ("PATCH", "/indexes/movies/settings", "application/json", b"[]", 400, "bad_request"),
    ("PATCH", "/indexes/movies/settings", "text/plain", b"{}", 415, "invalid_content_type"),
    (
        "PUT",
        "/indexes/movies/settings/stop-words",
        "application/json",
        b'"the"',
        400,
        "invalid_settings_stop_words",
    ),
    (
        "PATCH",
        "/indexes/movies/settings/typo-tolerance",
        "application/json",
        b'{"enabled": 1}',
        400,
        "invalid_settings_typo_tolerance",
    ),
    (
        "PATCH",
        "/indexes/movies/settings/pagination",
        "application/json",
        b'{"maxTotalHits": -5}',
        400,
        "invalid_settings_pagination",
    ),
    (
        "PUT",
        "/indexes/movies/settings/ranking-rules",
        "application/json",
        b'["words", "title:up"]',
        400,
        "invalid_settings_ranking_rules",
    ),
    ("POST", "/indexes", "application/json", b'{"uid": "bad uid"}', 400, "invalid_index_uid"),
    ("POST", "/indexes", "application/json", b'{"uid": 7}', 400, "invalid_index_uid"),
    (
        "POST",
        "/indexes",
        "application/json",
        b'{"uid": "%s"}' % (b"a" * 401),
        400,
        "invalid_index_uid",
    ),
    ("POST", "/indexes", "application/json", b"{}", 400, "missing_index_uid"),
    ("POST", "/indexes", "application/json", b'{"uid": "x", "foo": 1}', 400, "bad_request"),
    (
        "POST",
        "/indexes",
        "application/json",
        b'{"uid": "x", "primaryKey": 1}',
        400,
        "invalid_index_primary_key",
    ),
    (
        "PATCH",
        "/indexes/movies",
        "application/json",
        b'{"createdAt": "2020-01-01"}',
        400,
        "immutable_index_created_at",
    ),
    ("GET", "/indexes/bad%20uid", None, b"", 400, "invalid_index_uid"),
    ("GET", "/indexes/" + "a" * 401, None, b"", 400, "invalid_index_uid"),
    ("GET", "/indexes/nope", None, b"", 404, "index_not_found"),
    ("GET", "/indexes/nope/settings", None, b"", 404, "index_not_found"),
    ("GET", "/indexes/nope/documents", None, b"", 404, "index_not_found"),
    ("GET", "/indexes/nope/stats", None, b"", 404, "index_not_found"),
    ("GET", "/indexes?offset=x", None, b"", 400, "invalid_index_offset"),
    ("GET", "/indexes?limit=-1", None, b"", 400, "invalid_index_limit"),
    ("GET", "/indexes/movies/documents/2", None, b"", 404, "document_not_found"),
    ("GET", "/indexes/movies/documents/" + "x" * 600, None, b"", 404, "document_not_found"),
    ("GET", "/indexes/movies/documents?limit=-1", None, b"", 400, "invalid_document_limit"),
    ("GET", "/indexes/movies/documents?offset=a", None, b"", 400, "invalid_document_offset"),
    ("GET", "/indexes/movies/documents?foo=1", None, b"", 400, "bad_request"),
    (
        "POST",
        "/indexes/movies/documents/fetch",
        "application/json",
        b'{"limit": "x"}',
        400,
        "invalid_document_limit",
    ),
    (
        "POST",
        "/indexes/movies/documents/fetch",
        "application/json",
        b'{"fields": "id"}',
        400,
        "invalid_document_fields",
    ),
    (
        "POST",
        "/indexes/movies/documents/fetch",
        "application/json",
        b'{"nope": 1}',
        400,
        "bad_request",
    ),
    (
        "POST",
        "/indexes/movies/documents/delete",
        "application/json",
        b"{}",
        400,
        "missing_document_filter",
    ),
    (
        "POST",
        "/indexes/movies/documents/delete",
        "application/json",
        b'{"filter": ""}',
        400,
        "invalid_document_filter",
    ),
    (
        "POST",
        "/indexes/movies/documents/delete-batch",
        "application/json",
        b'{"a": 1}',
        400,
        "bad_request",
    ),
    ("GET", "/tasks/abc", None, b"", 400, "invalid_task_uids"),
    ("GET", "/tasks/999", None, b"", 404, "task_not_found"),
    ("GET", "/tasks?statuses=done", None, b"", 400, "invalid_task_statuses"),
    ("GET", "/tasks?types=documentAddition", None, b"", 400, "invalid_task_types"),
    ("GET", "/tasks?uids=1,x", None, b"", 400, "invalid_task_uids"),
    ("GET", "/tasks?limit=x", None, b"", 400, "invalid_task_limit"),
    ("GET", "/tasks?from=-1", None, b"", 400, "invalid_task_from"),
    ("GET", "/tasks?afterEnqueuedAt=nope", None, b"", 400, "invalid_task_after_enqueued_at"),
    (
        "GET",
        "/tasks?beforeFinishedAt=2024-02-30",
        None,
        b"",
        400,
        "invalid_task_before_finished_at",
    ),
    ("GET", "/tasks?indexUids=bad%20uid", None, b"", 400, "invalid_index_uid"),
    ("GET", "/tasks?foo=1", None, b"", 400, "bad_request"),
    ("DELETE", "/tasks", None, b"", 400, "missing_task_filters"),
    ("POST", "/tasks/cancel", None, b"", 400, "missing_task_filters"),
    ("POST", "/tasks/cancel?limit=1", None, b"", 400, "bad_request"),
    ("GET", "/no-such-route", None, b"", 404, "not_found"),
    (
        "POST",
        "/swap-indexes",
        "application/json",
        b'[{"indexes": ["movies"]}]',
        400,
        "invalid_swap_indexes",
    ),
    ("POST", "/swap-indexes", "application/json", b"[{}]", 400, "missing_swap_indexes"),
    (
        "POST",
        "/swap-indexes",
        "application/json",
        b'[{"indexes": ["a", "b"], "x": 1}]',
        400,
        "bad_request",
    ),
] + [
    (
        "PATCH",
        "/indexes/movies/settings",
        "application/json",
        orjson.dumps({key: value}),
        400,
        "invalid_settings_" + "".join("_" + c.lower() if c.isupper() else c for c in key),
    )
    for key, value in WRONG_TYPES.items()
]


@pytest.mark.parametrize(("method", "path", "content_type", "body", "status", "code"), BAD_REQUESTS)
async def test_bad_input_gets_the_meilisearch_error_and_changes_nothing(
    node, method, path, content_type, body, status, code
):
    running, client = node
    before = snapshot(running.engine)
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.request(method, path, content=body, headers=headers)
    assert (response.status_code, response.json()["code"]) == (status, code), response.text
    error = response.json()
    assert set(error) == {"message", "code", "type", "link"}
    assert error["link"] == "https://docs.meilisearch.com/errors#" + code
    assert response.headers["content-type"] == "application/json"
    running.engine.process()
    assert snapshot(running.engine) == before


TASK_FAILURES = [
    # (body, task error code): accepted with 202, then the task fails and nothing changes.
    (b'[{"id": "%s"}]' % (b"x" * 512), "invalid_document_id"),
    (b'[{"id": 18446744073709551616}]', "invalid_document_id"),
    (b'[{"id": 1.5}]', "invalid_document_id"),
    (b'[{"id": "a/b"}]', "invalid_document_id"),
    (b'[{"title": "no id"}]', "missing_document_id"),
    (b'[{"id": 3}, {"id": [3]}]', "invalid_document_id"),
]


@pytest.mark.parametrize(("body", "code"), TASK_FAILURES)
async def test_bad_documents_fail_their_task_and_change_nothing(node, body, code):
    running, client = node
    before = snapshot(running.engine)[1]
    response = await client.post("/indexes/movies/documents", content=body, headers=JSON_TYPE)
    assert response.status_code == 202
    task = await wait_task(client, response.json()["taskUid"])
    assert (task["status"], task["error"]["code"]) == ("failed", code)
    assert task["details"] == {"receivedDocuments": body.count(b"{"), "indexedDocuments": 0}
    assert snapshot(running.engine)[1] == before


async def test_index_lifecycle_and_shapes(node):
    _, client = node
    response = await client.post("/indexes", json={"uid": "books", "primaryKey": "isbn"})
    assert response.status_code == 202
    summary = response.json()
    assert list(summary) == ["taskUid", "indexUid", "status", "type", "enqueuedAt"]
    assert (summary["status"], summary["type"]) == ("enqueued", "indexCreation")
    await wait_task(client, summary["taskUid"])
    book = (await client.get("/indexes/books")).json()
    assert list(book) == ["uid", "createdAt", "updatedAt", "primaryKey"]
    assert book["primaryKey"] == "isbn"
    listing = (await client.get("/indexes?limit=1")).json()
    assert listing["total"] == 2 and listing["limit"] == 1
    assert [i["uid"] for i in listing["results"]] == ["books"]
    again = await client.post("/indexes", json={"uid": "books"})
    failed = await wait_task(client, again.json()["taskUid"])
    assert failed["error"]["code"] == "index_already_exists"
    deleted = await client.delete("/indexes/books")
    assert (await wait_task(client, deleted.json()["taskUid"]))["status"] == "succeeded"
    assert (await client.get("/indexes/books")).status_code == 404


async def test_documents_routes(node):
    _, client = node
    csv_add = await client.post(
        "/indexes/movies/documents",
        content=b"id,year:number\n2,1999\n3,2001\n",
        headers={"Content-Type": "text/csv"},
    )
    update = await client.put(
        "/indexes/movies/documents",
        content=b'{"id": 1, "year": 1980}\n',
        headers={"Content-Type": "application/x-ndjson"},
    )
    await wait_task(client, update.json()["taskUid"])
    assert (await wait_task(client, csv_add.json()["taskUid"]))["status"] == "succeeded"
    page = (await client.get("/indexes/movies/documents?fields=id,year&limit=2")).json()
    assert page == {
        "results": [{"id": 1, "year": 1980}, {"id": "2", "year": 1999}],
        "offset": 0,
        "limit": 2,
        "total": 3,
    }
    one = (await client.get("/indexes/movies/documents/1?fields=title")).json()
    assert one == {"title": "a"}
    fetched = (await client.post("/indexes/movies/documents/fetch", json={"ids": [3, "1"]})).json()
    assert [d["id"] for d in fetched["results"]] == [1, "3"]
    batch = await client.post("/indexes/movies/documents/delete-batch", json=[1, "2"])
    task = await wait_task(client, batch.json()["taskUid"])
    assert task["details"] == {"providedIds": 2, "deletedDocuments": 2, "originalFilter": None}
    single = await client.delete("/indexes/movies/documents/3")
    assert (await wait_task(client, single.json()["taskUid"]))["details"]["deletedDocuments"] == 1
    cleared = await client.delete("/indexes/movies/documents")
    assert (await wait_task(client, cleared.json()["taskUid"]))["details"] == {
        "deletedDocuments": 0
    }


async def test_settings_routes(node):
    _, client = node
    settings = (await client.get("/indexes/movies/settings")).json()
    assert len(settings) == 20 and settings["pagination"] == {"maxTotalHits": 1000}
    response = await client.patch(
        "/indexes/movies/settings", json={"stopWords": ["the", "a"], "distinctAttribute": None}
    )
    task = await wait_task(client, response.json()["taskUid"])
    assert task["type"] == "settingsUpdate"
    assert task["details"] == {"stopWords": ["the", "a"], "distinctAttribute": None}
    assert (await client.get("/indexes/movies/settings/stop-words")).json() == ["a", "the"]
    put = await client.put("/indexes/movies/settings/sortable-attributes", json=["year"])
    await wait_task(client, put.json()["taskUid"])
    assert (await client.get("/indexes/movies/settings/sortable-attributes")).json() == ["year"]
    patch = await client.patch("/indexes/movies/settings/faceting", json={"maxValuesPerFacet": 3})
    await wait_task(client, patch.json()["taskUid"])
    assert (await client.get("/indexes/movies/settings/faceting")).json()["maxValuesPerFacet"] == 3
    reset = await client.delete("/indexes/movies/settings/stop-words")
    assert (await wait_task(client, reset.json()["taskUid"]))["details"] == {"stopWords": None}
    assert (await client.get("/indexes/movies/settings/stop-words")).json() == []
    wrong_method = await client.put("/indexes/movies/settings/faceting", json={})
    assert wrong_method.status_code == 405


async def test_tasks_routes(node):
    _, client = node
    listing = (await client.get("/tasks")).json()
    assert set(listing) == {"results", "total", "limit", "from", "next"}
    assert listing["results"][0]["uid"] == 0 and listing["limit"] == 20
    canceled = await client.post("/tasks/cancel?uids=0")
    assert canceled.status_code == 200 and canceled.json()["type"] == "taskCancelation"
    cancel_task = await wait_task(client, canceled.json()["taskUid"])
    assert cancel_task["details"] == {
        "matchedTasks": 1,
        "canceledTasks": 0,
        "originalFilter": "?uids=0",
    }
    deleted = await client.delete("/tasks?uids=0")
    assert deleted.status_code == 200
    await wait_task(client, deleted.json()["taskUid"])
    assert (await client.get("/tasks/0")).status_code == 404


async def test_misc_routes(node):
    running, client = node
    assert (await client.get("/version")).json()["pkgVersion"] == "1.53.0"
    stats = (await client.get("/stats")).json()
    assert stats["indexes"]["movies"]["numberOfDocuments"] == 1
    index_stats = (await client.get("/indexes/movies/stats")).json()
    assert index_stats == stats["indexes"]["movies"]
    features = await client.patch("/experimental-features", json={"containsFilter": True})
    assert features.json()["containsFilter"] is True
    assert (await client.get("/experimental-features")).json()["containsFilter"] is True


async def test_auth(node):
    running, _ = node
    async with httpx.AsyncClient(base_url=running.url) as anonymous:
        assert (await anonymous.get("/health")).json() == {"status": "available"}
        missing = await anonymous.get("/indexes")
        assert (missing.status_code, missing.json()["code"]) == (
            401,
            "missing_authorization_header",
        )
        basic = await anonymous.get("/indexes", headers={"Authorization": f"Basic {KEY}"})
        assert (basic.status_code, basic.json()["code"]) == (401, "missing_authorization_header")
        wrong = await anonymous.get("/indexes", headers={"Authorization": "Bearer nope"})
        assert (wrong.status_code, wrong.json()["code"]) == (403, "invalid_api_key")
        empty = await anonymous.get("/indexes", headers={"Authorization": "Bearer"})
        assert (empty.status_code, empty.json()["code"]) == (403, "invalid_api_key")
        writes = await anonymous.post("/indexes", json={"uid": "sneaky"})
        assert writes.status_code == 401
    assert "sneaky" not in running.engine.indexes and len(running.engine.tasks) == 1


async def test_no_master_key_means_open_except_keys():
    async with serve_devnode() as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            assert (await client.get("/indexes")).status_code == 200
            keys = await client.get("/keys")
            assert (keys.status_code, keys.json()["code"]) == (401, "missing_master_key")


async def test_document_filters_use_the_search_engine(node):
    _, client = node
    settings = await client.patch(
        "/indexes/movies/settings", json={"filterableAttributes": ["genre"]}
    )
    added = await client.post(
        "/indexes/movies/documents",
        json=[{"id": n, "genre": "drama" if n % 3 else "comedy"} for n in range(2, 9)],
    )
    await wait_task(client, settings.json()["taskUid"])
    await wait_task(client, added.json()["taskUid"])
    browsed = (
        await client.get("/indexes/movies/documents?filter=genre%20%3D%20comedy&fields=id")
    ).json()
    assert browsed["results"] == [{"id": 3}, {"id": 6}] and browsed["total"] == 2
    fetched = (
        await client.post(
            "/indexes/movies/documents/fetch",
            json={"filter": [["genre = comedy", "genre = drama"]], "fields": ["id"], "limit": 2},
        )
    ).json()
    assert fetched["total"] == 7 and fetched["results"] == [{"id": 2}, {"id": 3}]
    not_filterable = await client.get("/indexes/movies/documents?filter=title%20%3D%20a")
    assert not_filterable.json()["code"] == "invalid_document_filter"
    deleted = await client.post(
        "/indexes/movies/documents/delete", json={"filter": "genre = drama"}
    )
    task = await wait_task(client, deleted.json()["taskUid"])
    assert task["details"] == {
        "providedIds": 0,
        "deletedDocuments": 5,
        "originalFilter": '"genre = drama"',
    }


async def test_concurrent_writes_apply_once_each_in_uid_order(node):
    running, client = node
    uids = []

    async def write(n: int) -> None:
        response = await client.post("/indexes/movies/documents", json=[{"id": 100 + n}])
        uids.append(response.json()["taskUid"])

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(write, n)
    tasks = [await wait_task(client, uid) for uid in sorted(uids)]
    assert all(task["status"] == "succeeded" for task in tasks)
    finished = [datetime.fromisoformat(task["finishedAt"]) for task in tasks]
    assert finished == sorted(finished)
    assert [task["batchUid"] for task in tasks] == sorted(task["batchUid"] for task in tasks)
    assert len(running.engine.get_index("movies").documents) == 21
