"""Garbage into the read routes: the Meilisearch error (a node's own or Miroir's validation),
with its exact code and status, the standard envelope, never a 500."""

import json

import pytest

from tests.proxy.harness import running_proxy

JSON = {"Content-Type": "application/json"}
S = "/indexes/seed/search"
CASES = [
    # (method, path, raw body, headers, status, code)
    ("POST", S, b"{", JSON, 400, "malformed_payload"),
    ("POST", S, b"", JSON, 400, "missing_payload"),
    ("POST", S, b'{"q": "a"}', {}, 415, "missing_content_type"),
    ("POST", S, b"[]", JSON, 400, "bad_request"),
    ("POST", S, b"12", JSON, 400, "bad_request"),
    ("POST", S, b'{"q": 5}', JSON, 400, "invalid_search_q"),
    ("POST", S, b'{"limit": -1}', JSON, 400, "invalid_search_limit"),
    ("POST", S, b'{"limit": "ten"}', JSON, 400, "invalid_search_limit"),
    ("POST", S, b'{"offset": 1.5}', JSON, 400, "invalid_search_offset"),
    ("POST", S, b'{"page": true}', JSON, 400, "invalid_search_page"),
    ("POST", S, b'{"hitsPerPage": "x"}', JSON, 400, "invalid_search_hits_per_page"),
    ("POST", S, b'{"sort": ["title"]}', JSON, 400, "invalid_search_sort"),
    ("POST", S, b'{"sort": "title:up"}', JSON, 400, "invalid_search_sort"),
    ("POST", S, b'{"sort": ["title:asc"]}', JSON, 400, "invalid_search_sort"),
    ("POST", S, b'{"filter": "title = "}', JSON, 400, "invalid_search_filter"),
    ("POST", S, b'{"filter": "nope = 1"}', JSON, 400, "invalid_search_filter"),
    ("POST", S, b'{"filter": 5}', JSON, 400, "invalid_search_filter"),
    ("POST", S, b'{"facets": "genre"}', JSON, 400, "invalid_search_facets"),
    ("POST", S, b'{"distinct": 3}', JSON, 400, "invalid_search_distinct"),
    ("POST", S, b'{"attributesToRetrieve": 3}', JSON, 400,
     "invalid_search_attributes_to_retrieve"),
    ("POST", S, b'{"showRankingScore": "yes"}', JSON, 400, "invalid_search_show_ranking_score"),
    ("POST", S, b'{"matchingStrategy": "most"}', JSON, 400, "invalid_search_matching_strategy"),
    ("POST", S, b'{"cropLength": -3}', JSON, 400, "invalid_search_crop_length"),
    ("POST", S, b'{"rankingScoreThreshold": 2}', JSON, 400,
     "invalid_search_ranking_score_threshold"),
    ("POST", S, b'{"notAParam": 1}', JSON, 400, "bad_request"),
    ("POST", "/indexes/nope/search", b"{}", JSON, 404, "index_not_found"),
    ("POST", "/indexes/bad%20uid/search", b"{}", JSON, 400, "invalid_index_uid"),
    ("GET", S + "?limit=x", None, {}, 400, "invalid_search_limit"),
    ("GET", S + "?showRankingScore=maybe", None, {}, 400, "invalid_search_show_ranking_score"),
    ("GET", S + "?color=red", None, {}, 400, "bad_request"),
    ("GET", S + "?rankingScoreThreshold=high", None, {}, 400,
     "invalid_search_ranking_score_threshold"),
    ("POST", "/multi-search", b"{}", JSON, 400, "bad_request"),
    ("POST", "/multi-search", b"[]", JSON, 400, "bad_request"),
    ("POST", "/multi-search", b'{"queries": 1}', JSON, 400, "bad_request"),
    ("POST", "/multi-search", b'{"queries": [1]}', JSON, 400, "bad_request"),
    ("POST", "/multi-search", b'{"queries": [{"q": "a"}]}', JSON, 400, "missing_index_uid"),
    ("POST", "/multi-search", b'{"queries": [{"indexUid": 3}]}', JSON, 400, "invalid_index_uid"),
    ("POST", "/multi-search", b'{"queries": [{"indexUid": "seed", "limit": -2}]}', JSON, 400,
     "invalid_search_limit"),
    ("POST", "/multi-search", b'{"queries": [{"indexUid": "nope"}]}', JSON, 404,
     "index_not_found"),
    ("POST", "/multi-search",
     b'{"federation": {}, "queries": [{"indexUid": "seed", "federationOptions": {"weight": -1}}]}',
     JSON, 400, "invalid_multi_search_weight"),
    ("POST", "/multi-search", b'{"federation": {"limit": "x"}, "queries": []}', JSON, 400,
     "invalid_search_limit"),
    ("POST", "/multi-search", b'{"federation": 5, "queries": [{"indexUid": "seed"}]}', JSON, 400,
     "invalid_multi_search_federated"),
    ("POST", "/multi-search", b'{"federation": "x", "queries": []}', JSON, 400,
     "invalid_multi_search_federated"),
    ("POST", "/multi-search",
     b'{"federation": {}, "queries": [{"indexUid": "seed", "federationOptions": 5}]}', JSON, 400,
     "invalid_multi_search_federation_options"),
    ("POST", "/multi-search", b'{"queries": [], "extra": 1}', JSON, 400, "bad_request"),
    ("POST", "/multi-search", b'{"queries": [{"indexUid": "seed", "federationOptions": {}}]}',
     JSON, 400, "invalid_multi_search_federation_options"),
    ("POST", "/indexes/seed/facet-search", b"[]", JSON, 400, "bad_request"),
    ("POST", "/indexes/seed/facet-search", b"{}", JSON, 400, "missing_facet_search_facet_name"),
    ("POST", "/indexes/seed/facet-search", b'{"facetName": "nope"}', JSON, 400,
     "invalid_facet_search_facet_name"),
    ("POST", "/indexes/nope/facet-search", b'{"facetName": "genre"}', JSON, 404,
     "index_not_found"),
    ("GET", "/indexes/seed/documents?limit=x", None, {}, 400, "invalid_document_limit"),
    ("GET", "/indexes/seed/documents?offset=-1", None, {}, 400, "invalid_document_offset"),
    ("GET", "/indexes/seed/documents?retrieveVectors=1", None, {}, 400,
     "invalid_document_retrieve_vectors"),
    ("GET", "/indexes/seed/documents?nope=1", None, {}, 400, "bad_request"),
    ("GET", "/indexes/seed/documents?filter=nope%20%3D%201", None, {}, 400,
     "invalid_document_filter"),
    ("GET", "/indexes/nope/documents", None, {}, 404, "index_not_found"),
    ("POST", "/indexes/seed/documents/fetch", b"[]", JSON, 400, "bad_request"),
    ("POST", "/indexes/seed/documents/fetch", b'{"limit": "x"}', JSON, 400,
     "invalid_document_limit"),
    ("POST", "/indexes/seed/documents/fetch", b'{"fields": 3}', JSON, 400,
     "invalid_document_fields"),
    ("POST", "/indexes/seed/documents/fetch", b'{"sort": 3}', JSON, 400,
     "invalid_document_sort"),
    ("POST", "/indexes/seed/documents/fetch", b'{"unknown": 3}', JSON, 400, "bad_request"),
]


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "code"), CASES)
async def test_garbage_into_read_routes_gets_the_meilisearch_error(
    method, path, body, headers, status, code
):
    async with running_proxy(nodes=2, shards=4) as h:
        added = (await h.send("POST", "/indexes/seed/documents",
                              [{"id": 1, "title": "a", "genre": "x"}]))[1]
        await h.wait_task(added["taskUid"])
        patched = (await h.send("PATCH", "/indexes/seed/settings",
                                {"filterableAttributes": ["genre"]}))[1]
        await h.wait_task(patched["taskUid"])
        response = await h.client.open(path, method=method, data=body, headers=headers)
        reply = await response.get_json()
        assert (response.status_code, reply["code"]) == (status, code), reply
        assert set(reply) == {"message", "code", "type", "link"}
        assert reply["link"] == "https://docs.meilisearch.com/errors#" + code
        assert "_miroir" not in reply["message"]


SEARCH_FIELDS = ("q", "offset", "limit", "page", "hitsPerPage", "attributesToRetrieve",
                 "attributesToCrop", "cropLength", "attributesToHighlight", "showMatchesPosition",
                 "showRankingScore", "showRankingScoreDetails", "filter", "sort", "distinct",
                 "facets", "highlightPreTag", "highlightPostTag", "cropMarker",
                 "matchingStrategy", "attributesToSearchOn", "rankingScoreThreshold", "locales")
GARBAGE = (None, -1, 1.5, True, "x", "", [], [1], ["x:asc"], {}, {"a": 1}, 10**20)


def encode(body) -> bytes:
    return json.dumps(body).encode()  # json, not orjson: 10**20 is valid JSON


async def test_every_search_field_with_any_json_value_never_answers_500():
    """Law: whatever JSON value a field holds, every read route answers a Meilisearch error
    body or a 200 -- never a 500."""
    async with running_proxy(nodes=2, shards=4) as h:
        added = (await h.send("POST", "/indexes/seed/documents",
                              [{"id": 1, "title": "a", "genre": "x"}]))[1]
        await h.wait_task(added["taskUid"])
        for field in SEARCH_FIELDS:
            for value in GARBAGE:
                query = {field: value}
                for path, body in (
                    ("/indexes/seed/search", query),
                    ("/multi-search", {"queries": [{"indexUid": "seed", **query}]}),
                    ("/multi-search", {"federation": {}, "queries": [{"indexUid": "seed", **query}]}),
                    ("/indexes/seed/facet-search", {"facetName": "genre", **query}),
                ):
                    status, reply, _ = await h.send("POST", path, encode(body))
                    assert status < 500, (path, body, reply)
                    if status >= 400:
                        assert set(reply) == {"message", "code", "type", "link"}, (path, body)
        for field in ("offset", "limit", "fields", "filter", "ids", "sort", "retrieveVectors"):
            for value in GARBAGE:
                status, reply, _ = await h.send("POST", "/indexes/seed/documents/fetch",
                                                encode({field: value}))
                assert status < 500, (field, value, reply)
        for value in GARBAGE:
            status, reply, _ = await h.send("POST", "/multi-search",
                                            encode({"federation": {"offset": value, "limit": value,
                                                                   "facetsByIndex": value},
                                                    "queries": [{"indexUid": "seed"}]}))
            assert status < 500, (value, reply)
