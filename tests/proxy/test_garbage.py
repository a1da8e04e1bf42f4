"""Garbage in, Meilisearch's error out: the exact code and status, never a 500, nothing written."""

import pytest

from tests.proxy.harness import running_proxy

JSON = {"Content-Type": "application/json"}
CASES = [
    # (method, path, raw body, headers, status, code)
    ("POST", "/indexes", b"{", JSON, 400, "malformed_payload"),
    ("POST", "/indexes", b"", JSON, 400, "missing_payload"),
    ("POST", "/indexes", b'{"uid": "a"}', {}, 415, "missing_content_type"),
    ("POST", "/indexes", b'{"uid": "a"}', {"Content-Type": "text/plain"}, 415,
     "invalid_content_type"),
    ("POST", "/indexes", b"{}", JSON, 400, "missing_index_uid"),
    ("POST", "/indexes", b'{"uid": "bad uid"}', JSON, 400, "invalid_index_uid"),
    ("POST", "/indexes", b'{"uid": 5}', JSON, 400, "invalid_index_uid"),
    ("POST", "/indexes", b'{"uid": "a", "primaryKey": 1}', JSON, 400,
     "invalid_index_primary_key"),
    ("POST", "/indexes", b'{"uid": "a", "extra": 1}', JSON, 400, "bad_request"),
    ("POST", "/indexes", b"[1]", JSON, 400, "bad_request"),
    ("GET", "/indexes/bad%20uid", None, {}, 400, "invalid_index_uid"),
    ("GET", "/indexes/nope", None, {}, 404, "index_not_found"),
    ("GET", "/indexes/nope/settings", None, {}, 404, "index_not_found"),
    ("GET", "/indexes/nope/documents/1", None, {}, 404, "index_not_found"),
    ("GET", "/indexes/seed/settings/not-a-setting", None, {}, 404, "not_found"),
    ("GET", "/indexes?limit=x", None, {}, 400, "invalid_index_limit"),
    ("GET", "/indexes?color=1", None, {}, 400, "bad_request"),
    ("POST", "/indexes/seed/documents", b"[{]", JSON, 400, "malformed_payload"),
    ("POST", "/indexes/seed/documents", b"", JSON, 400, "missing_payload"),
    ("POST", "/indexes/seed/documents", b"[1, 2]", JSON, 400, "malformed_payload"),
    ("POST", "/indexes/seed/documents", b"1", JSON, 400, "malformed_payload"),
    ("POST", "/indexes/seed/documents", b'{"id": 1}', {"Content-Type": "application/xml"}, 415,
     "invalid_content_type"),
    ("POST", "/indexes/seed/documents", b'{"id": 1}', {}, 415, "missing_content_type"),
    ("POST", "/indexes/seed/documents", b"id\n1,2\n", {"Content-Type": "text/csv"}, 400,
     "malformed_payload"),
    ("POST", "/indexes/seed/documents", b"{\n", {"Content-Type": "application/x-ndjson"}, 400,
     "malformed_payload"),
    ("POST", "/indexes/seed/documents?csvDelimiter=ab", b"id\n1\n",
     {"Content-Type": "text/csv"}, 400, "invalid_document_csv_delimiter"),
    ("POST", "/indexes/seed/documents?nope=1", b"[]", JSON, 400, "bad_request"),
    ("POST", "/indexes/seed/documents/delete", b"{}", JSON, 400, "missing_document_filter"),
    ("POST", "/indexes/seed/documents/delete", b'{"filter": "title ="}', JSON, 400,
     "invalid_document_filter"),
    ("POST", "/indexes/seed/documents/delete-batch", b'{"a": 1}', JSON, 400, "bad_request"),
    ("PATCH", "/indexes/seed/settings", b'{"rankingRules": 5}', JSON, 400,
     "invalid_settings_ranking_rules"),
    ("PATCH", "/indexes/seed/settings", b'{"notASetting": 5}', JSON, 400, "bad_request"),
    ("PATCH", "/indexes/seed/settings", b"[]", JSON, 400, "bad_request"),
    ("PUT", "/indexes/seed/settings/typo-tolerance", b"{}", JSON, 405, "method_not_allowed"),
    ("GET", "/tasks/x", None, {}, 400, "invalid_task_uids"),
    ("GET", "/no/such/route", None, {}, 404, "not_found"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "code"), CASES)
async def test_garbage_gets_the_meilisearch_error_and_writes_nothing(
    method, path, body, headers, status, code
):
    async with running_proxy(nodes=2, shards=4) as h:
        created = (await h.send("POST", "/indexes", {"uid": "seed", "primaryKey": "id"}))[1]
        await h.wait_task(created["taskUid"])
        before = {
            node: (sorted(app.engine.indexes), dict(app.engine.indexes["seed"].documents),
                   dict(app.engine.indexes["seed"].settings))
            for node, app in h.nodes.items()
        }
        response = await h.client.open(path, method=method, data=body, headers=headers)
        reply = await response.get_json()
        assert (response.status_code, reply["code"]) == (status, code), reply
        assert set(reply) == {"message", "code", "type", "link"}
        assert reply["link"] == "https://docs.meilisearch.com/errors#" + code
        after = {
            node: (sorted(app.engine.indexes), dict(app.engine.indexes["seed"].documents),
                   dict(app.engine.indexes["seed"].settings))
            for node, app in h.nodes.items()
        }
        assert after == before
