"""Bad parameters through Miroir get the bytes one Meilisearch node (the devnode) answers.

Both read requests through `miroir.meili.params`, so the status, code and message of every
refusal below must be identical: the proxy over 2 devnodes and 4 shards against one reference
devnode holding the same index. A proxy that validated on its own (or worded a value with
Python's repr) fails here.
"""

from __future__ import annotations

import orjson
import pytest
import trio

from miroir.devnode.app import DevnodeApp
from tests.proxy.harness import AsgiTransport, running_proxy

S = "/indexes/movies/search"
F = "/indexes/movies/facet-search"
D = "/indexes/movies/documents"
M = "/multi-search"
Q = lambda **query: {"queries": [{"indexUid": "movies", **query}]}  # noqa: E731
FED = lambda *queries, **federation: {"federation": federation,  # noqa: E731
                                      "queries": [{"indexUid": "movies", **q} for q in queries]}

BAD_SEARCH_BODIES = [
    {"limit": "5"}, {"offset": -1}, {"page": True}, {"hitsPerPage": 1.5}, {"q": 5},
    {"sort": ["title"]}, {"sort": "title:up"}, {"distinct": 3}, {"attributesToRetrieve": [1]},
    {"showRankingScore": "yes"}, {"matchingStrategy": "most"}, {"cropLength": -3},
    {"rankingScoreThreshold": 2}, {"rankingScoreThreshold": "x"}, {"filter": 5},
    {"facets": "genre"}, {"notAParam": 1}, {"highlightPreTag": 1}, {"attributesToCrop": "t"},
    {"filter": "nope = 1"},
]
CASES = [
    *[("POST", S, orjson.dumps(body)) for body in BAD_SEARCH_BODIES],
    ("POST", S, b"[]"), ("POST", S, b"12"), ("POST", S, b"{"), ("POST", S, b""),
    ("POST", S, b"{\"limit\": 18446744073709551616}"),  # past u64: parsed as a float
    *[("GET", S + query, None) for query in (
        "?limit=x", "?limit=-1", "?offset=1.5", "?showRankingScore=maybe", "?color=red",
        "?rankingScoreThreshold=high", "?rankingScoreThreshold=3", "?matchingStrategy=most",
        "?media=x", "?sort=title", "?page=true")],
    *[("POST", M, orjson.dumps(body)) for body in (
        {}, [], {"queries": 1}, {"queries": [1]}, {"queries": [{"q": "a"}]},
        {"queries": [{"indexUid": 3}]}, {"queries": [], "extra": 1}, Q(limit=-2), Q(q=[1]),
        Q(federationOptions={}), Q(federationOptions=5), Q(matchingStrategy="x"),
        {"federation": 5, "queries": []}, FED(federationOptions={"weight": -1}),
        FED(federationOptions=5), FED({"limit": 3}), FED({"facets": ["genre"]}),
        FED({}, limit="x"), FED({}, facetsByIndex=5), FED({}, facetsByIndex={"movies": 5}),
        FED({}, mergeFacets={"maxValuesPerFacet": "x"}), FED({}, nope=1),
        FED({"federationOptions": {"weight": 1, "nope": 2}}))],
    *[("POST", F, orjson.dumps(body)) for body in (
        [], {}, {"facetName": 5}, {"facetName": "genre", "facetQuery": 5},
        {"facetName": "genre", "q": 5}, {"facetName": "genre", "nope": 1},
        {"facetName": "genre", "exhaustiveFacetCount": "x"},
        {"facetName": "genre", "matchingStrategy": "x"})],
    *[("GET", D + query, None) for query in (
        "?limit=x", "?offset=-1", "?retrieveVectors=1", "?nope=1", "?limit=1&limit=y")],
    *[("POST", D + "/fetch", orjson.dumps(body)) for body in (
        [], {"limit": "x"}, {"offset": -4}, {"fields": 3}, {"fields": [3]}, {"unknown": 3},
        {"ids": [True]}, {"ids": "1"}, {"filter": 5}, {"retrieveVectors": "x"})],
]


@pytest.mark.parametrize(("method", "path", "body"), CASES,
                         ids=[f"{m} {p} {b!r}"[:90] for m, p, b in CASES])
async def test_a_bad_request_gets_the_reference_nodes_answer(method, path, body):
    reference = DevnodeApp()
    node = AsgiTransport({"reference": reference})
    async with running_proxy(nodes=2, shards=4) as h:
        h.nursery.start_soon(reference.run_task_worker)
        documents = [{"id": 1, "title": "a", "genre": "x"}, {"id": 2, "title": "b", "genre": "y"}]
        setup = [("POST", "/indexes/movies/documents", documents),
                 ("PATCH", "/indexes/movies/settings", {"filterableAttributes": ["genre"]})]
        for setup_method, setup_path, setup_body in setup:
            task = (await h.send(setup_method, setup_path, setup_body))[1]
            assert (await h.wait_task(task["taskUid"]))["status"] == "succeeded"
            await node.request("reference", setup_method, setup_path,
                               body=orjson.dumps(setup_body),
                               headers=[("content-type", "application/json")],
                               deadline=trio.current_time() + 5)
        with trio.fail_after(5):
            while reference.engine.has_pending_tasks():
                await trio.sleep(0.005)

        headers = {"Content-Type": "application/json"} if body is not None else {}
        proxied = await h.client.open(path, method=method, data=body, headers=headers)
        direct = await node.request("reference", method, path, body=body,
                                    headers=list(headers.items()),
                                    deadline=trio.current_time() + 5)
        expected = (direct.status, orjson.loads(direct.body))
        assert expected[0] >= 400, expected  # the case must be a refusal
        assert (proxied.status_code, await proxied.get_json()) == expected
