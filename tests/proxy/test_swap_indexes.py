"""`POST /swap-indexes` and `/_miroir/aliases`: flips of the index layouts record, never a
document moved; what clients see afterwards, across two proxy processes, and the errors."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from miroir.cluster.layouts import CHECK_INTERVAL_S
from miroir.core.index_layout import LAYOUTS_RECORD
from miroir.proxy import index_names
from tests.proxy.harness import running_proxies, running_proxy

ADMIN = {"Authorization": "Bearer admin-key-0123456789"}
MASTER = {"Authorization": "Bearer master-key-0123456789"}
KEYS = {"master_key": "master-key-0123456789", "admin_key": "admin-key-0123456789"}


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


async def done(harness, call, status="succeeded") -> dict:
    code, body, _ = await call
    assert code == 202, body
    task = await harness.wait_task(body["taskUid"], headers=MASTER)
    assert task["status"] == status, task
    return task


async def fill(harness, uid, color, count=20):
    await done(harness, harness.send("POST", "/indexes", {"uid": uid, "primaryKey": "id"},
                                     headers=MASTER))
    docs = [{"id": i, "color": color} for i in range(count)]
    await done(harness, harness.send("POST", f"/indexes/{uid}/documents", docs, headers=MASTER))


async def colors(harness, uid) -> set[str]:
    status, body, _ = await harness.send("POST", f"/indexes/{uid}/search", {"limit": 100},
                                         headers=MASTER)
    assert status == 200, body
    return {hit["color"] for hit in body["hits"]}


async def test_a_swap_exchanges_what_two_uids_answer_on_every_proxy(autojump_clock):
    async with running_proxies(2, **KEYS) as (a, b):
        await fill(a, "blue", "blue")
        await fill(a, "green", "green", count=5)
        assert await colors(b, "blue") == {"blue"}  # b has read the layouts before the swap
        code, summary, _ = await a.send("POST", "/swap-indexes",
                                        [{"indexes": ["blue", "green"]}], headers=MASTER)
        assert code == 202
        assert (summary["type"], summary["status"], summary["indexUid"]) == (
            "indexSwap", "enqueued", None)
        task = await a.wait_task(summary["taskUid"], headers=MASTER)
        assert task["status"] == "succeeded", task
        assert task["details"] == {"swaps": [{"indexes": ["blue", "green"], "rename": False}]}
        assert await colors(a, "blue") == {"green"}
        assert await colors(a, "green") == {"blue"}
        await trio.sleep(CHECK_INTERVAL_S * 1.1)
        assert await colors(b, "blue") == {"green"}
        status, body, _ = await b.send("GET", "/indexes/blue/stats", headers=MASTER)
        assert (status, body["numberOfDocuments"]) == (200, 5)
        # Swapping back is the rollback.
        await done(b, b.send("POST", "/swap-indexes", [{"indexes": ["green", "blue"]}],
                             headers=MASTER))
        assert await colors(b, "blue") == {"blue"}
        record = await a.store.get_record(LAYOUTS_RECORD)
        assert record.version == 2 and record.value["layouts"] == {}


async def test_a_rename_moves_the_uid_and_frees_the_old_one():
    async with running_proxy(**KEYS) as h:
        await fill(h, "old", "red")
        await done(h, h.send("POST", "/swap-indexes",
                             [{"indexes": ["old", "new"], "rename": True}], headers=MASTER))
        assert await colors(h, "new") == {"red"}
        status, body, _ = await h.send("GET", "/indexes/old", headers=MASTER)
        assert (status, body["code"], body["message"]) == (
            404, "index_not_found", "Index `old` not found.")
        status, body, _ = await h.send("GET", "/indexes", headers=MASTER)
        assert [index["uid"] for index in body["results"]] == ["new"]
        # `old` can be created again: it gets a node-side index of its own.
        await fill(h, "old", "violet", count=3)
        assert await colors(h, "old") == {"violet"}
        assert await colors(h, "new") == {"red"}


async def test_a_swap_of_a_missing_index_fails_its_task_and_changes_nothing():
    async with running_proxy(**KEYS) as h:
        await fill(h, "here", "red")
        task = await done(h, h.send("POST", "/swap-indexes",
                                    [{"indexes": ["here", "nope"]}], headers=MASTER), "failed")
        assert task["error"]["code"] == "index_not_found"
        assert task["error"]["message"] == "Index `nope` not found."
        task = await done(h, h.send("POST", "/swap-indexes",
                                    [{"indexes": ["gone", "nope"]}], headers=MASTER), "failed")
        assert task["error"]["message"] == "Indexes `gone`, `nope` not found."
        await fill(h, "there", "blue")
        task = await done(h, h.send("POST", "/swap-indexes",
                                    [{"indexes": ["here", "there"], "rename": True}],
                                    headers=MASTER), "failed")
        assert task["error"]["code"] == "index_already_exists"
        assert task["error"]["message"].startswith(
            "Cannot rename `here` to `there` as the index already exists.")
        assert await h.store.get_record(LAYOUTS_RECORD) is None
        assert await colors(h, "here") == {"red"}


@pytest.mark.parametrize(("body", "code", "message"), [
    ("doggo", "bad_request", 'Invalid value type: expected an array, but found a string: `"doggo"`'),
    ([{"indexes": ["a", "b", "c"]}], "invalid_swap_indexes",
     'Two indexes must be given for each swap. The list `["a", "b", "c"]` contains 3 indexes.'),
    ([{"indexes": ["a", "a"]}], "invalid_swap_duplicate_index_found",
     "Indexes must be declared only once during a swap. `a` was specified several times."),
    ([{"indexes": ["a", "b"]}, {"indexes": ["c", "a"]}], "invalid_swap_duplicate_index_found",
     "Indexes must be declared only once during a swap. `a` was specified several times."),
    ([{}], "missing_swap_indexes", "Missing field `indexes` inside `.[0]`"),
    ([{"indexes": ["a", "b"], "rename": "yes"}], "invalid_swap_rename",
     'Invalid value type at `.[0].rename`: expected a boolean, but found a string: `"yes"`'),
    ([{"indexes": ["a", "b"], "other": 1}], "bad_request",
     "Unknown field `other` inside `.[0]`: expected one of `indexes`, `rename`"),
])
async def test_a_bad_swap_body_is_refused_before_any_task(body, code, message):
    async with running_proxy(**KEYS) as h:
        status, error, _ = await h.send("POST", "/swap-indexes", body, headers=MASTER)
        assert (status, error["code"], error["message"]) == (400, code, message)
        assert h.transport.calls == []


async def test_aliases_admin_api_shapes_and_errors():
    async with running_proxy(**KEYS) as h:
        await fill(h, "books_store", "paper")
        status, body, _ = await h.send("GET", "/_miroir/aliases", headers=ADMIN)
        assert (status, body) == (200, {"results": [], "total": 0})
        status, body, _ = await h.send("PUT", "/_miroir/aliases/books",
                                       {"index": "books_store"}, headers=ADMIN)
        assert (status, body) == (200, {"alias": "books", "index": "books_store", "shards": 8})
        assert await colors(h, "books") == {"paper"}
        status, body, _ = await h.send("GET", "/_miroir/aliases/books", headers=ADMIN)
        assert (status, body) == (200, {"alias": "books", "index": "books_store", "shards": 8})
        status, body, _ = await h.send("GET", "/_miroir/aliases", headers=ADMIN)
        assert {"alias": "books", "index": "books_store", "shards": 8} in body["results"]
        # The uid that named it before names nothing: no index, so no shard count either.
        assert {"alias": "books_store", "index": None, "shards": None} in body["results"]
        # The node-side index now belongs to `books` only.
        status, body, _ = await h.send("GET", "/indexes", headers=MASTER)
        assert [index["uid"] for index in body["results"]] == ["books"]
        status, body, _ = await h.send("GET", "/indexes/books", headers=MASTER)
        assert (status, body["uid"]) == (200, "books")

        for bad in ({}, {"index": 3}, {"index": "ok", "x": 1}, {"index": "bad name!"}):
            status, body, _ = await h.send("PUT", "/_miroir/aliases/books", bad, headers=ADMIN)
            assert (status, body["code"]) == (400, "miroir_invalid_alias"), bad
        status, body, _ = await h.send("PUT", "/_miroir/aliases/books", {"index": "absent"},
                                       headers=ADMIN)
        assert (status, body["code"]) == (404, "miroir_node_index_not_found")
        status, body, _ = await h.send("GET", "/_miroir/aliases/nobody", headers=ADMIN)
        assert (status, body["code"], body["message"]) == (
            404, "miroir_alias_not_found", "Alias `nobody` not found.")
        status, body, _ = await h.send("PUT", "/_miroir/aliases/books",
                                       {"index": "books_store"}, headers=MASTER)
        assert status in (401, 403)

        status, _, _ = await h.send("DELETE", "/_miroir/aliases/books", headers=ADMIN)
        assert status == 204
        status, body, _ = await h.send("DELETE", "/_miroir/aliases/books", headers=ADMIN)
        assert (status, body["code"]) == (404, "miroir_alias_not_found")
        status, body, _ = await h.send("GET", "/indexes/books", headers=MASTER)
        assert (status, body["code"], body["message"]) == (
            404, "index_not_found", "Index `books` not found.")


async def test_a_node_side_name_never_reaches_a_client():
    async with running_proxy(**KEYS) as h:
        await fill(h, "hidden_side", "green")
        status, _, _ = await h.send("PUT", "/_miroir/aliases/shop", {"index": "hidden_side"},
                                    headers=ADMIN)
        assert status == 200
        seen = []

        async def call(method, path, body=None):
            status, answer, _ = await h.send(method, path, body, headers=MASTER)
            seen.append(repr(answer))
            if isinstance(answer, dict) and "taskUid" in answer:
                seen.append(repr(await h.wait_task(answer["taskUid"], headers=MASTER)))
            return status, answer

        await call("PATCH", "/indexes/shop/settings", {"filterableAttributes": ["color"]})
        await call("POST", "/indexes/shop/documents", [{"id": 100, "color": "blue"}])
        await call("POST", "/indexes/shop/documents", [{"color": "no id"}])  # a failed task
        status, hits = await call("POST", "/indexes/shop/search", {"filter": "color = blue"})
        assert [hit["id"] for hit in hits["hits"]] == [100]
        await call("GET", "/indexes/shop/search?q=green")
        await call("POST", "/indexes/shop/facet-search", {"facetName": "color"})
        status, answer = await call("POST", "/multi-search", {"queries": [
            {"indexUid": "shop", "q": ""}]})
        assert answer["results"][0]["indexUid"] == "shop"
        status, answer = await call("POST", "/multi-search", {
            "federation": {}, "queries": [{"indexUid": "shop", "filter": "color = blue"}]})
        assert answer["hits"][0]["_federation"]["indexUid"] == "shop"
        await call("GET", "/indexes/shop/documents/100")
        status, answer = await call("GET", "/indexes/shop/documents/404")
        assert status == 404
        await call("GET", "/indexes/shop/documents?limit=3")
        await call("GET", "/indexes/shop/stats")
        status, answer = await call("GET", "/stats")
        assert "shop" in answer["indexes"]
        await call("GET", "/indexes/shop/settings")
        await call("GET", "/indexes/shop")
        await call("GET", "/indexes")
        status, answer = await call("GET", "/tasks?indexUids=shop")
        assert answer["results"] and {t["indexUid"] for t in answer["results"]} == {"shop"}
        await call("POST", "/indexes/shop/search", {"filter": "nope = 1"})  # a node's refusal
        await call("POST", "/indexes/shop/documents/delete", {"filter": "color = blue"})
        await call("DELETE", "/indexes/shop/documents/1")
        await call("DELETE", "/indexes/shop")
        status, answer = await call("GET", "/indexes/shop")
        assert (status, answer["message"]) == (404, "Index `shop` not found.")
        leaks = [text for text in seen if "hidden_side" in text]
        assert leaks == []
        assert len(seen) > 25


async def test_a_fresh_node_side_name_skips_the_indexes_the_nodes_hold():
    async with running_proxy(**KEYS) as h:
        await fill(h, "x--1", "taken", count=4)  # a client index spelled like a fresh name
        await fill(h, "x", "first")
        await done(h, h.send("POST", "/swap-indexes", [{"indexes": ["x", "y"], "rename": True}],
                             headers=MASTER))
        await fill(h, "x", "second", count=2)
        status, body, _ = await h.send("GET", "/_miroir/aliases/x", headers=ADMIN)
        assert (status, body["index"]) == (200, "x--2")
        assert await colors(h, "x--1") == {"taken"}
        assert await colors(h, "x") == {"second"}
        assert await colors(h, "y") == {"first"}


async def test_a_patch_rename_of_a_swapped_index_moves_the_mapping_not_the_node_index():
    async with running_proxy(**KEYS) as h:
        await fill(h, "left", "l")
        await fill(h, "right", "r")
        await done(h, h.send("POST", "/swap-indexes", [{"indexes": ["left", "right"]}],
                             headers=MASTER))
        task = await done(h, h.send("PATCH", "/indexes/left", {"uid": "moved"}, headers=MASTER))
        assert task["indexUid"] == "left" and task["type"] == "indexUpdate"
        assert task["details"] == {"primaryKey": None, "oldIndexUid": "left",
                                   "newIndexUid": "moved"}
        assert await colors(h, "moved") == {"r"}
        assert await colors(h, "right") == {"l"}
        status, body, _ = await h.send("GET", "/indexes/left", headers=MASTER)
        assert (status, body["code"]) == (404, "index_not_found")
        task = await done(h, h.send("PATCH", "/indexes/moved", {"uid": "right"},
                                    headers=MASTER), "failed")
        assert task["error"]["code"] == "index_already_exists"
        # Without any layout, a rename is the nodes' own, as before.
        await fill(h, "plain", "p")
        await done(h, h.send("PATCH", "/indexes/plain", {"uid": "plain2"}, headers=MASTER))
        assert "plain" not in (await h.store.get_record(LAYOUTS_RECORD)).value["layouts"]
        assert await colors(h, "plain2") == {"p"}


def test_a_message_naming_two_swapped_indexes_names_each_by_its_own_uid():
    index_names.forget()
    index_names.remember("q", "p")  # the client's `p` is the node-side `q`, and back
    index_names.remember("p", "q")
    assert index_names.client_text("Index `q` is not `p`; `other` stays.") == \
        "Index `p` is not `q`; `other` stays."
    index_names.forget()
    assert index_names.client_text("Index `q`.") == "Index `q`."
