"""API keys through the proxy: /keys, each route's action and index patterns, listings filtered
by the key, and a change through one proxy process seen by another within a second."""

from __future__ import annotations

import pytest
import trio

from miroir.cluster.keys import REFRESH_INTERVAL_S
from miroir.core.keys import ApiKey, derive_key
from tests.proxy.harness import running_proxies, running_proxy

MASTER = "master-key-0123456789"
AUTH = {"Authorization": f"Bearer {MASTER}"}


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def create_key(h, **fields) -> dict:
    body = {"actions": ["search"], "indexes": ["*"], "expiresAt": None, **fields}
    status, key, _ = await h.send("POST", "/keys", body, headers=AUTH)
    assert status == 201, key
    return key


async def add_documents(h, index: str, documents: list[dict]) -> None:
    status, task, _ = await h.send("POST", f"/indexes/{index}/documents", documents, headers=AUTH)
    assert status == 202, task
    assert (await h.wait_task(task["taskUid"], headers=AUTH))["status"] == "succeeded"


async def test_the_default_keys_exist_and_their_values_derive_from_the_master_key():
    async with running_proxy(master_key=MASTER) as h:
        status, page, _ = await h.send("GET", "/keys", headers=AUTH)
        assert status == 200
        names = {key["name"] for key in page["results"]}
        assert {"Default Search API Key", "Default Admin API Key"} <= names
        assert page["total"] == len(page["results"]) == 4
        for key in page["results"]:
            assert key["key"] == derive_key(key["uid"], MASTER)
        search_key = next(k for k in page["results"] if k["name"] == "Default Search API Key")
        assert search_key["actions"] == ["search"] and search_key["indexes"] == ["*"]


async def test_keys_routes_need_a_master_key_to_be_configured():
    async with running_proxy() as h:
        status, body, _ = await h.send("GET", "/keys")
        assert (status, body["code"]) == (401, "missing_master_key")
        status, _, _ = await h.send("GET", "/indexes")
        assert status == 200


async def test_a_search_key_searches_and_is_refused_on_writes():
    async with running_proxy(master_key=MASTER) as h:
        await add_documents(h, "movies", [{"id": 1, "title": "Carol"}])
        key = await create_key(h, actions=["search"], indexes=["movies"])
        status, result, _ = await h.send("POST", "/indexes/movies/search", {"q": "carol"},
                                         headers=bearer(key["key"]))
        assert status == 200 and [hit["id"] for hit in result["hits"]] == [1]
        status, result, _ = await h.send("GET", "/indexes/movies/search?q=carol",
                                         headers=bearer(key["key"]))
        assert status == 200 and result["estimatedTotalHits"] == 1
        for method, path, body in [("POST", "/indexes/movies/documents", [{"id": 2}]),
                                   ("DELETE", "/indexes/movies", None),
                                   ("GET", "/indexes/movies/documents", None),
                                   ("PATCH", "/indexes/movies/settings", {}),
                                   ("GET", "/keys", None)]:
            status, body, _ = await h.send(method, path, body, headers=bearer(key["key"]))
            assert (status, body["code"]) == (403, "invalid_api_key"), (method, path)
            assert key["key"] not in body["message"]
        status, body, _ = await h.send("POST", "/indexes/songs/search", {"q": ""},
                                       headers=bearer(key["key"]))
        assert (status, body["code"]) == (403, "invalid_api_key")
        assert body["message"] == ('The API key cannot acces the index `songs`, authorized '
                                   'indexes are ["movies"].')


async def test_index_patterns_exact_and_prefix():
    async with running_proxy(master_key=MASTER) as h:
        key = await create_key(h, actions=["documents.get", "indexes.get"],
                               indexes=["movies_*", "songs"])
        for index in ("movies_fr", "songs", "books", "song", "movies"):
            await add_documents(h, index, [{"id": 1}])
        allowed = {"movies_fr", "songs"}
        for index in ("movies_fr", "songs", "books", "song", "movies"):
            status, _, _ = await h.send("GET", f"/indexes/{index}/documents",
                                        headers=bearer(key["key"]))
            assert status == (200 if index in allowed else 403), index
        status, page, _ = await h.send("GET", "/indexes", headers=bearer(key["key"]))
        assert status == 200
        assert sorted(index["uid"] for index in page["results"]) == sorted(allowed)
        assert page["total"] == 2


async def test_stats_and_tasks_show_only_the_keys_indexes():
    async with running_proxy(master_key=MASTER) as h:
        await add_documents(h, "movies", [{"id": 1}])
        await add_documents(h, "songs", [{"id": 1}])
        key = await create_key(h, actions=["stats.get", "tasks.get"], indexes=["movies"])
        status, stats, _ = await h.send("GET", "/stats", headers=bearer(key["key"]))
        assert status == 200 and list(stats["indexes"]) == ["movies"]
        status, tasks, _ = await h.send("GET", "/tasks", headers=bearer(key["key"]))
        assert status == 200 and tasks["results"]
        assert {task["indexUid"] for task in tasks["results"]} == {"movies"}
        _, every, _ = await h.send("GET", "/tasks", headers=AUTH)
        songs_task = next(t for t in every["results"] if t["indexUid"] == "songs")
        status, body, _ = await h.send("GET", f"/tasks/{songs_task['uid']}",
                                       headers=bearer(key["key"]))
        assert (status, body["code"]) == (404, "task_not_found")


async def test_multi_search_checks_every_querys_index():
    async with running_proxy(master_key=MASTER) as h:
        await add_documents(h, "movies", [{"id": 1}])
        await add_documents(h, "songs", [{"id": 1}])
        key = await create_key(h, actions=["search"], indexes=["movies"])
        queries = {"queries": [{"indexUid": "movies"}, {"indexUid": "songs"}]}
        status, body, _ = await h.send("POST", "/multi-search", queries,
                                       headers=bearer(key["key"]))
        assert (status, body["code"]) == (403, "invalid_api_key")
        assert body["message"] == "Inside `.queries[1]`: The provided API key is invalid."
        status, body, _ = await h.send("POST", "/multi-search",
                                       {"queries": [{"indexUid": "movies"}]},
                                       headers=bearer(key["key"]))
        assert status == 200 and len(body["results"]) == 1


async def test_an_expired_key_is_refused():
    async with running_proxy(master_key=MASTER) as h:
        now = h.cluster.now_ms()
        key = ApiKey(uid="4bc0887a-0e41-4f3b-935d-0c451dcee9c8", name=None, description=None,
                     actions=("*",), indexes=("*",), expires_at=now - 1, created_at=now - 10,
                     updated_at=now - 10)
        await h.store.insert_api_key(key.uid, key.to_record())
        await trio.sleep(REFRESH_INTERVAL_S)
        status, body, _ = await h.send("GET", "/indexes",
                                       headers=bearer(derive_key(key.uid, MASTER)))
        assert (status, body["code"]) == (403, "invalid_api_key")


async def test_a_key_deleted_or_changed_through_one_process_stops_working_in_another():
    async with running_proxies(2, master_key=MASTER) as (first, second):
        key = await create_key(first, actions=["indexes.get"], indexes=["*"])
        status, _, _ = await second.send("GET", "/indexes", headers=bearer(key["key"]))
        assert status == 200
        status, _, _ = await first.send("DELETE", f"/keys/{key['uid']}", headers=AUTH)
        assert status == 204
        # The first process sees its own change at once; the second within the refresh interval.
        status, _, _ = await first.send("GET", "/indexes", headers=bearer(key["key"]))
        assert status == 403
        await trio.sleep(REFRESH_INTERVAL_S)
        status, _, _ = await second.send("GET", "/indexes", headers=bearer(key["key"]))
        assert status == 403


async def test_get_patch_and_delete_take_a_uid_or_a_key_value():
    async with running_proxy(master_key=MASTER) as h:
        key = await create_key(h, name="front", description="d")
        for handle in (key["uid"], key["key"]):
            status, got, _ = await h.send("GET", f"/keys/{handle}", headers=AUTH)
            assert status == 200 and got == key
        status, patched, _ = await h.send("PATCH", f"/keys/{key['key']}",
                                          {"name": "renamed", "description": None}, headers=AUTH)
        assert status == 200
        assert (patched["name"], patched["description"]) == ("renamed", None)
        assert patched["createdAt"] == key["createdAt"]
        status, _, _ = await h.send("DELETE", f"/keys/{key['uid']}", headers=AUTH)
        assert status == 204
        status, body, _ = await h.send("GET", f"/keys/{key['uid']}", headers=AUTH)
        assert (status, body["code"]) == (404, "api_key_not_found")


async def test_a_key_holding_keys_actions_manages_keys_as_in_meilisearch():
    async with running_proxy(master_key=MASTER) as h:
        _, page, _ = await h.send("GET", "/keys", headers=AUTH)
        admin = next(k for k in page["results"] if k["name"] == "Default Admin API Key")
        status, _, _ = await h.send("GET", "/keys", headers=bearer(admin["key"]))
        assert status == 200


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"indexes": ["*"], "expiresAt": None}, 400, "missing_api_key_actions"),
    ({"actions": ["search"], "expiresAt": None}, 400, "missing_api_key_indexes"),
    ({"actions": ["search"], "indexes": ["*"]}, 400, "missing_api_key_expires_at"),
    ({"actions": ["doc.add"], "indexes": ["*"], "expiresAt": None}, 400,
     "invalid_api_key_actions"),
    ({"actions": "search", "indexes": ["*"], "expiresAt": None}, 400, "invalid_api_key_actions"),
    ({"actions": ["search"], "indexes": ["a b"], "expiresAt": None}, 400,
     "invalid_api_key_indexes"),
    ({"actions": ["search"], "indexes": ["*"], "expiresAt": "2010-01-01"}, 400,
     "invalid_api_key_expires_at"),
    ({"actions": ["search"], "indexes": ["*"], "expiresAt": "soon"}, 400,
     "invalid_api_key_expires_at"),
    ({"actions": ["search"], "indexes": ["*"], "expiresAt": None, "uid": "nope"}, 400,
     "invalid_api_key_uid"),
    ({"actions": ["search"], "indexes": ["*"], "expiresAt": None, "name": 13}, 400,
     "invalid_api_key_name"),
    ({"actions": ["version"], "indexes": ["movies"], "expiresAt": None}, 400,
     "index_scoped_api_key_with_global_action"),
    ({"actions": ["search"], "indexes": ["*"], "expiresAt": None, "doggo": 1}, 400,
     "bad_request"),
    ([], 400, "bad_request"),
])
async def test_create_refuses_bad_payloads_with_meilisearchs_codes(body, status, code):
    async with running_proxy(master_key=MASTER) as h:
        got, answer, _ = await h.send("POST", "/keys", body, headers=AUTH)
        assert (got, answer["code"]) == (status, code), answer
        assert set(answer) == {"message", "code", "type", "link"}
        _, page, _ = await h.send("GET", "/keys", headers=AUTH)
        assert page["total"] == 4  # nothing written


async def test_create_refuses_a_taken_uid_and_patch_refuses_immutable_fields():
    async with running_proxy(master_key=MASTER) as h:
        key = await create_key(h, uid="4bc0887a-0e41-4f3b-935d-0c451dcee9c8")
        assert key["key"] == derive_key(key["uid"], MASTER)
        status, body, _ = await h.send("POST", "/keys", {
            "uid": key["uid"], "actions": ["search"], "indexes": ["*"], "expiresAt": None,
        }, headers=AUTH)
        assert (status, body["code"]) == (409, "api_key_already_exists")
        for field, code in [("actions", "immutable_api_key_actions"),
                            ("indexes", "immutable_api_key_indexes"),
                            ("expiresAt", "immutable_api_key_expires_at"),
                            ("uid", "immutable_api_key_uid")]:
            status, body, _ = await h.send("PATCH", f"/keys/{key['uid']}", {field: None},
                                           headers=AUTH)
            assert (status, body["code"]) == (400, code)
            assert body["message"] == (f"Immutable field `{field}`: expected one of "
                                       "`description`, `name`")


async def test_key_values_never_reach_the_access_log_or_an_error(caplog):
    import logging

    async with running_proxy(master_key=MASTER) as h:
        key = await create_key(h)
        with caplog.at_level(logging.INFO, logger="miroir.access"):
            for method in ("GET", "PATCH", "DELETE"):
                await h.send(method, f"/keys/{key['key']}", {} if method == "PATCH" else None,
                             headers=AUTH)
            status, body, _ = await h.send("GET", f"/keys/{key['key']}", headers=AUTH)
        assert (status, body["code"]) == (404, "api_key_not_found")
        assert key["key"] not in body["message"]
        logged = "\n".join(record.getMessage() for record in caplog.records)
        assert "/keys/<key>" in logged
        assert key["key"] not in logged and MASTER not in logged
        assert key["key"] not in repr(h.app.extensions["miroir"].keyring)
