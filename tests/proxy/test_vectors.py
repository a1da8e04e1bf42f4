"""Vector, hybrid and similar search through the proxy, against one devnode holding the corpus.

The embedder settings go to every node, documents with `_vectors` to their shard's owners, and
every answer must be the single node's: semantic search merged by similarity, hybrid queries
mixed by Meilisearch's rule over the shards' merged keyword and semantic lists, similar search
from the document's own embedding."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from miroir.devnode.engine import Engine
from miroir.devnode.search_routes import search, similar
from tests.proxy.harness import running_proxy

EMBEDDERS = {"default": {"source": "userProvided", "dimensions": 3}}
WORDS = ["captain", "marvel", "planet", "shazam", "night", "dark"]


def corpus(seed: int = 7) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for i in range(40):
        doc = {"id": i, "title": " ".join(rng.sample(WORDS, rng.randint(1, 3))),
               "year": 1990 + i % 9}
        if i % 7:
            doc["_vectors"] = {"default": [rng.uniform(-1, 1) for _ in range(3)]}
        docs.append(doc)
    return docs


def oracle(docs) -> Engine:
    engine = Engine(now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    engine.create_index("movies", "id")
    engine.update_settings("movies", {"embedders": EMBEDDERS, "filterableAttributes": ["year"]})
    engine.add_documents("movies", docs)
    engine.process()
    return engine


async def loaded(h, docs):
    status, body, _ = await h.send("PATCH", "/indexes/movies/settings",
                                   {"embedders": EMBEDDERS, "filterableAttributes": ["year"]})
    assert status == 202, body
    assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
    status, body, _ = await h.send("POST", "/indexes/movies/documents", docs)
    assert (await h.wait_task(body["taskUid"]))["status"] == "succeeded"
    status, body, _ = await h.send("GET", "/indexes/movies/settings/embedders")
    assert (status, body) == (200, EMBEDDERS)


def runs(hits):
    out: list[tuple[float, set]] = []
    for hit in hits:
        if out and out[-1][0] == hit["_rankingScore"]:
            out[-1][1].add(hit["id"])
        else:
            out.append((hit["_rankingScore"], {hit["id"]}))
    return out


def without_hits(response):
    return {k: v for k, v in response.items() if k not in ("hits", "processingTimeMs")}


QUERIES = [
    {"vector": [0.3, -0.2, 0.9], "hybrid": {"embedder": "default", "semanticRatio": 1.0}},
    {"vector": [0.3, -0.2, 0.9], "hybrid": {"embedder": "default", "semanticRatio": 1.0},
     "filter": "year > 1994", "offset": 2, "limit": 5, "retrieveVectors": True},
    {"q": "captain", "vector": [-0.5, 0.5, 0.1],
     "hybrid": {"embedder": "default", "semanticRatio": 0.5}},
    {"q": "marvel night", "vector": [0.9, 0.1, 0.1],
     "hybrid": {"embedder": "default", "semanticRatio": 0.8}, "limit": 7, "offset": 3},
    {"q": "captain", "vector": [0.1, 0.1, 0.1], "retrieveVectors": True,
     "hybrid": {"embedder": "default", "semanticRatio": 0.1}, "limit": 3},
    {"q": "planet", "hybrid": {"embedder": "default", "semanticRatio": 0.7}},
]


@pytest.mark.parametrize("params", QUERIES)
async def test_vector_and_hybrid_search_answer_like_one_devnode(params):
    docs = corpus()
    async with running_proxy(nodes=3, shards=6) as h:
        await loaded(h, docs)
        params = {**params, "showRankingScore": True}
        status, got, _ = await h.send("POST", "/indexes/movies/search", params)
        assert status == 200, got
        expected = search(oracle(docs), "movies", params)
        expected.pop("requestUid")
        got.pop("requestUid")
        assert [h["_rankingScore"] for h in got["hits"]] == [
            h["_rankingScore"] for h in expected["hits"]]
        # Equal scores are one node's internal-id order; compare them as sets (but the run
        # the window cuts, whose members beyond the window may differ).
        assert runs(got["hits"])[:-1] == runs(expected["hits"])[:-1]
        by_id = {h["id"]: h for h in expected["hits"]}
        for hit in got["hits"]:
            if hit["id"] in by_id:
                assert hit == by_id[hit["id"]]
        assert without_hits(got) == without_hits(expected)


async def test_similar_answers_like_one_devnode_and_refuses_like_meilisearch():
    docs = corpus()
    async with running_proxy(nodes=3, shards=6) as h:
        await loaded(h, docs)
        single = oracle(docs)
        for params in ({"id": 3, "embedder": "default"},
                       {"id": "5", "embedder": "default", "filter": "year < 1996", "limit": 4,
                        "offset": 1, "showRankingScore": True},
                       {"id": 7, "embedder": "default"}):  # 7 has no vector: no hits
            status, got, _ = await h.send("POST", "/indexes/movies/similar", params)
            assert status == 200, got
            expected = similar(single, "movies", params)
            assert got == {**expected, "processingTimeMs": got["processingTimeMs"]}
        status, got, _ = await h.send("GET", "/indexes/movies/similar?id=3&embedder=default&limit=2")
        assert status == 200 and len(got["hits"]) == 2
        status, got, _ = await h.send("POST", "/indexes/movies/similar",
                                      {"id": 3, "embedder": "default",
                                       "showPerformanceDetails": True})
        assert status == 200 and "miroir > scatter" in got["performanceDetails"]
        status, got, _ = await h.send("GET", "/indexes/movies/search?q=captain&useNetwork=false")
        assert status == 200, got
        status, got, _ = await h.send("POST", "/indexes/movies/similar",
                                      {"id": 999, "embedder": "default"})
        assert (status, got["code"]) == (400, "not_found_similar_id")
        status, got, _ = await h.send("POST", "/indexes/movies/similar",
                                      {"id": 3, "embedder": "nope"})
        assert (status, got["code"]) == (400, "invalid_similar_embedder")
        status, got, _ = await h.send("POST", "/indexes/movies/similar", {"embedder": "default"})
        assert (status, got["code"]) == (400, "invalid_similar_id")
        status, got, _ = await h.send("POST", "/indexes/movies/similar",
                                      {"id": 3, "embedder": "default", "filter": "title = x"})
        assert (status, got["code"]) == (400, "invalid_similar_filter")
        assert got["message"].startswith("Attribute `title` is not filterable.")


async def test_other_embedder_sources_reach_the_nodes_which_refuse_them_by_name():
    async with running_proxy(nodes=2) as h:
        status, body, _ = await h.send("PATCH", "/indexes/movies/settings",
                                       {"embedders": {"e": {"source": "ollama",
                                                            "model": "nomic-embed-text"}}})
        if status == 202:
            body = (await h.wait_task(body["taskUid"]))["error"]
        assert body["code"] == "invalid_settings_embedders"
        assert "supports only `userProvided`" in body["message"]


async def test_documents_keep_their_vectors_and_show_them_on_request():
    docs = corpus()
    async with running_proxy(nodes=3, shards=6) as h:
        await loaded(h, docs)
        status, got, _ = await h.send("GET", "/indexes/movies/documents/1?retrieveVectors=true")
        assert status == 200
        assert got["_vectors"] == {"default": {"embeddings": [docs[1]["_vectors"]["default"]],
                                               "regenerate": False}}
        status, got, _ = await h.send("GET", "/indexes/movies/documents?limit=50")
        assert all("_vectors" not in d for d in got["results"])


async def test_show_performance_details_reports_miroirs_phases_last():
    docs = corpus()
    async with running_proxy(nodes=3, shards=6) as h:
        await loaded(h, docs)
        status, got, _ = await h.send("POST", "/indexes/movies/search",
                                      {"q": "captain", "showPerformanceDetails": True})
        assert status == 200
        assert list(got)[-2:] == ["requestUid", "performanceDetails"]
        details = got["performanceDetails"]
        assert {"miroir > plan", "miroir > scatter", "miroir > merge"} <= set(details)
        assert all(isinstance(v, str) and v[-2:] in ("ns", "µs", "ms") or v.endswith("s")
                   for v in details.values())
        status, plain, _ = await h.send("POST", "/indexes/movies/search", {"q": "captain"})
        assert "performanceDetails" not in plain
        status, multi, _ = await h.send("POST", "/multi-search", {"queries": [
            {"indexUid": "movies", "q": "captain", "showPerformanceDetails": True},
            {"indexUid": "movies", "q": "captain"},
            {"indexUid": "movies", "q": "captain", "vector": [0.1, 0.2, 0.3],
             "hybrid": {"embedder": "default", "semanticRatio": 0.5}}]})
        assert status == 200, multi
        assert "miroir > merge" in multi["results"][0]["performanceDetails"]
        assert "performanceDetails" not in multi["results"][1]
        expected = search(oracle(docs), "movies", {"q": "captain", "vector": [0.1, 0.2, 0.3],
                                                   "hybrid": {"embedder": "default",
                                                              "semanticRatio": 0.5}})
        assert multi["results"][2]["semanticHitCount"] == expected["semanticHitCount"]
        assert multi["results"][2]["indexUid"] == "movies"


def test_rust_duration_format():
    from miroir.cluster.search import rust_duration

    assert rust_duration(0.0000000051) == "5.10ns"
    assert rust_duration(0.0000123) == "12.30µs"
    assert rust_duration(0.0042) == "4.20ms"
    assert rust_duration(1.5) == "1.50s"


async def test_federated_multi_search_tolerates_null_pagination_as_meilisearch_does():
    docs = corpus()
    async with running_proxy(nodes=3, shards=6) as h:
        await loaded(h, docs)
        status, got, _ = await h.send("POST", "/multi-search", {
            "federation": {"page": None, "hitsPerPage": None, "limit": 5},
            "queries": [{"indexUid": "movies", "q": "captain", "page": None, "hitsPerPage": None,
                         "limit": None, "offset": None, "facets": []}]})
        assert status == 200, got
        assert got["limit"] == 5 and len(got["hits"]) <= 5 and "estimatedTotalHits" in got
        status, got, _ = await h.send("POST", "/multi-search", {
            "federation": {}, "queries": [{"indexUid": "movies", "q": "x", "page": None,
                                           "limit": 3}]})
        assert (status, got["code"]) == (400, "invalid_multi_search_query_pagination")
        assert "remove `limit` from query #0" in got["message"]
        status, got, _ = await h.send("POST", "/multi-search", {
            "federation": {"showPerformanceDetails": True},
            "queries": [{"indexUid": "movies", "q": "captain"}]})
        assert status == 200 and "miroir > merge" in got["performanceDetails"]
        assert list(got)[-1] == "performanceDetails"
        status, got, _ = await h.send("POST", "/multi-search", {
            "federation": {"limit": -1}, "queries": []})
        assert (status, got["code"]) == (400, "invalid_search_limit")


async def test_facet_search_takes_the_newer_parameters():
    docs = corpus()
    async with running_proxy(nodes=3, shards=6) as h:
        await loaded(h, docs)
        for extra in ({"exhaustiveFacetCount": True}, {"rankingScoreThreshold": 0.2},
                      {"useNetwork": False},
                      {"q": "captain", "vector": [0.1, 0.2, 0.3],
                       "hybrid": {"embedder": "default", "semanticRatio": 0.5}}):
            body = {"facetName": "year", **extra}
            status, got, _ = await h.send("POST", "/indexes/movies/facet-search", body)
            assert status == 200, (extra, got)
            from miroir.devnode.search_routes import facet_search

            expected = facet_search(oracle(docs), "movies", body)
            assert got["facetHits"] == expected["facetHits"], extra
        status, got, _ = await h.send("POST", "/indexes/movies/facet-search",
                                      {"facetName": "year", "exhaustiveFacetCount": "yes"})
        assert (status, got["code"]) == (400, "invalid_facet_search_exhaustive_facet_count")


@pytest.mark.parametrize(("body", "code"), [
    ({"q": "captain", "vector": [0.1, 0.2, 0.3], "hybrid": {"embedder": "nope"}},
     "invalid_search_embedder"),
    ({"q": "captain", "vector": [0.1, 0.2], "hybrid": {"embedder": "default"}},
     "invalid_vector_dimensions"),
    ({"q": "captain", "vector": [0.1, 0.2, 0.3]}, "missing_search_hybrid"),
    ({"q": "captain", "vector": [0.1, 0.2, 0.3], "hybrid": {"embedder": "default",
                                                             "semanticRatio": 2}},
     "invalid_search_semantic_ratio"),
    ({"q": "captain", "hybrid": {"embedder": "default", "semanticRatio": 1.0}},
     "vector_embedding_error"),
])
async def test_bad_vector_queries_get_the_nodes_meilisearch_error(body, code):
    async with running_proxy(nodes=3, shards=6) as h:
        await loaded(h, corpus())
        status, got, _ = await h.send("POST", "/indexes/movies/search", body)
        assert (status, got["code"]) == (400, code), got
        status, got, _ = await h.send("POST", "/multi-search",
                                      {"queries": [{"indexUid": "movies", **body}]})
        assert (status, got["code"]) == (400, code), got
