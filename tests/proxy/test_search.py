"""Search through the proxy equals one devnode holding the whole corpus (up to exact score ties).

The proxy runs over 3 in-process devnodes (8 shards); a separate reference devnode gets the same
writes. Queries are drawn from a seeded generator (a fixed list per run, so CI is repeatable):
words, filters, sorts, facets, windows in both pagination modes, distinct. For each one the merged
answer must have the reference's totals and facets, and hits that are the reference's hits at the
same ranks, where hits of equal rank (same score and sort values) may come in any order.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs
import orjson
import pytest
import trio

from miroir.devnode.app import DevnodeApp
from tests.proxy.harness import AsgiTransport, Harness, running_proxy


class Reference:
    """One devnode with every document: what one big Meilisearch would answer."""

    def __init__(self, app: DevnodeApp) -> None:
        self.transport = AsgiTransport({"ref": app})

    async def send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else orjson.dumps(body)
        headers = [("content-type", "application/json")] if payload is not None else []
        response = await self.transport.request(
            "ref", method, path, body=payload, headers=headers, deadline=trio.current_time() + 10
        )
        return response.status, orjson.loads(response.body) if response.body else None

    async def wait_task(self, uid: int) -> dict[str, Any]:
        with trio.fail_after(10):
            while True:
                _, task = await self.send("GET", f"/tasks/{uid}")
                if task["status"] in ("succeeded", "failed", "canceled"):
                    return task
                await trio.sleep(0.005)


@asynccontextmanager
async def proxy_and_reference(**kwargs: Any) -> AsyncIterator[tuple[Harness, Reference]]:
    async with running_proxy(**kwargs) as h:
        app = DevnodeApp()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app.run_task_worker)
            yield h, Reference(app)
            nursery.cancel_scope.cancel()


async def write_both(h: Harness, ref: Reference, method: str, path: str, body: Any) -> None:
    """Apply one write through Miroir and to the reference, and wait for both to succeed."""
    status, answer, _ = await h.send(method, path, body)
    assert status == 202, answer
    assert (await h.wait_task(answer["taskUid"]))["status"] == "succeeded"
    status, answer = await ref.send(method, path, body)
    assert status == 202, answer
    assert (await ref.wait_task(answer["taskUid"]))["status"] == "succeeded"

WORDS = ["red", "blue", "green", "night", "sun", "river", "stone", "light", "dark", "wolf"]
GENRES = ["drama", "comedy", "horror", "action"]


def corpus(size: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    documents = []
    for doc_id in range(size):
        words = rng.choices(WORDS, k=rng.randint(1, 5))
        documents.append({
            "id": doc_id,
            "title": " ".join(words),
            "overview": " ".join(rng.choices(WORDS, k=rng.randint(0, 8))),
            "genre": rng.choice(GENRES),
            "year": rng.randint(1980, 2020),
            "rating": rng.randint(0, 10),
        })
    return documents


SETTINGS = {
    "filterableAttributes": ["genre", "year", "rating"],
    "sortableAttributes": ["year", "rating"],
    "searchableAttributes": ["title", "overview"],
}


def random_query(rng: random.Random) -> dict[str, Any]:
    query: dict[str, Any] = {"q": " ".join(rng.sample(WORDS, rng.randint(0, 2)))}
    if rng.random() < 0.4:
        query["filter"] = rng.choice([
            f"genre = {rng.choice(GENRES)}", f"year > {rng.randint(1980, 2020)}",
            [f"rating >= {rng.randint(0, 10)}", f"genre != {rng.choice(GENRES)}"],
        ])
    if rng.random() < 0.4:
        query["sort"] = rng.sample(["year:asc", "year:desc", "rating:asc", "rating:desc"], 1)
    if rng.random() < 0.4:
        query["facets"] = rng.sample(["genre", "rating", "year"], rng.randint(1, 2))
    if rng.random() < 0.3:
        query["page"] = rng.randint(1, 4)
        query["hitsPerPage"] = rng.randint(1, 15)
    else:
        query["offset"] = rng.randint(0, 30)
        query["limit"] = rng.randint(0, 25)
    if rng.random() < 0.2:
        query["distinct"] = "genre"
    if rng.random() < 0.3:
        query["attributesToRetrieve"] = ["title"]
    return query


def rank_of(hit: dict[str, Any], sort: list[str]) -> tuple:
    """What orders hits for this query: sort values from the details, then the score."""
    details = hit["_rankingScoreDetails"]
    values = tuple(details[rule]["value"] for rule in sort if rule in details)
    return (*values, round(hit["_rankingScore"], 12))


def window_of(query: dict[str, Any]) -> tuple[int, int]:
    if "page" in query:
        return (query["page"] - 1) * query["hitsPerPage"], query["hitsPerPage"]
    return query["offset"], query["limit"]


async def assert_same_as_reference(h, ref: Reference, uid: str, query: dict[str, Any]) -> dict:
    shown = {**query, "showRankingScore": True, "showRankingScoreDetails": True}
    status, merged, headers = await h.send("POST", f"/indexes/{uid}/search", shown)
    assert status == 200, merged
    assert "X-Miroir-Degraded" not in headers
    ref_status, expected = await ref.send("POST", f"/indexes/{uid}/search", shown)
    assert ref_status == 200
    # Everything around the hits is exact.
    for key in ("estimatedTotalHits", "totalHits", "totalPages", "page", "hitsPerPage", "limit",
                "offset", "facetDistribution", "facetStats", "query"):
        assert merged.get(key) == expected.get(key), (key, query)
    # The hits: the same ranks position by position; within a rank, the reference's documents.
    offset, limit = window_of(query)
    everything = {key: value for key, value in shown.items()
                  if key not in ("offset", "limit", "page", "hitsPerPage")}
    _, full = await ref.send("POST", f"/indexes/{uid}/search", {**everything, "limit": 1000})
    sort = query.get("sort", [])
    by_rank: dict[tuple, set] = {}
    for hit in full["hits"]:
        by_rank.setdefault(rank_of(hit, sort), set()).add(hit["id"] if "id" in hit else hit["title"])
    assert [rank_of(hit, sort) for hit in merged["hits"]] == [
        rank_of(hit, sort) for hit in expected["hits"]], query
    ids = []
    for hit in merged["hits"]:
        key = hit["id"] if "id" in hit else hit["title"]
        assert key in by_rank[rank_of(hit, sort)], query
        ids.append(key)
    if "attributesToRetrieve" not in query:
        assert len(set(ids)) == len(ids)
    assert [set(hit) for hit in merged["hits"]] == [set(hit) for hit in expected["hits"]]
    assert not any(k.startswith("_miroir") for hit in merged["hits"] for k in hit)
    assert len(merged["hits"]) <= limit
    return merged


@pytest.mark.parametrize(("replication_factor", "replica_groups", "nodes"), [(1, 1, 3), (2, 2, 6)])
async def test_random_queries_equal_the_single_node_answer(replication_factor, replica_groups, nodes):
    documents = corpus(150, seed=7)
    async with proxy_and_reference(nodes=nodes, shards=8, replication_factor=replication_factor,
                                   replica_groups=replica_groups) as (h, ref):
        await write_both(h, ref, "POST", "/indexes/movies/documents", documents)
        await write_both(h, ref, "PATCH", "/indexes/movies/settings", SETTINGS)
        rng = random.Random(2026)
        for _ in range(40):
            await assert_same_as_reference(h, ref, "movies", random_query(rng))


async def test_visible_fields_hide_what_the_merge_added():
    async with proxy_and_reference(nodes=3, shards=8) as (h, ref):
        await write_both(h, ref, "POST", "/indexes/movies/documents", corpus(40, seed=1))
        await write_both(h, ref, "PATCH", "/indexes/movies/settings", SETTINGS)
        query = {"q": "red", "sort": ["year:desc"], "attributesToRetrieve": ["title"], "limit": 5}
        _, merged, _ = await h.send("POST", "/indexes/movies/search", query)
        _, expected = await ref.send("POST", "/indexes/movies/search", query)
        assert [set(hit) for hit in merged["hits"]] == [set(hit) for hit in expected["hits"]]
        assert {"title"} == set(merged["hits"][0])


async def test_get_search_reads_the_query_string_like_post():
    async with proxy_and_reference(nodes=3, shards=8) as (h, ref):
        await write_both(h, ref, "POST", "/indexes/movies/documents", corpus(60, seed=2))
        await write_both(h, ref, "PATCH", "/indexes/movies/settings", SETTINGS)
        status, got, _ = await h.send(
            "GET", "/indexes/movies/search?q=red&limit=3&offset=1&facets=genre&sort=year:asc")
        _, posted, _ = await h.send("POST", "/indexes/movies/search", {
            "q": "red", "limit": 3, "offset": 1, "facets": ["genre"], "sort": ["year:asc"]})
        assert status == 200
        got.pop("requestUid"), posted.pop("requestUid")
        assert got == posted


async def test_distinct_setting_is_applied_across_shards():
    async with proxy_and_reference(nodes=3, shards=8) as (h, ref):
        await write_both(h, ref, "POST", "/indexes/movies/documents", corpus(80, seed=3))
        await write_both(h, ref, "PATCH", "/indexes/movies/settings",
                         {**SETTINGS, "distinctAttribute": "genre"})
        _, merged, _ = await h.send("POST", "/indexes/movies/search", {"q": "", "limit": 10})
        genres = [hit["genre"] for hit in merged["hits"]]
        assert sorted(genres) == sorted(GENRES)
        _, expected = await ref.send("POST", "/indexes/movies/search", {"q": "", "limit": 10})
        assert merged["estimatedTotalHits"] == expected["estimatedTotalHits"] == len(GENRES)


async def test_a_new_custom_ranking_rule_orders_the_very_next_search():
    """The read path caches settings, and asks nodes for rule-by-rule details only when a rule
    outside `_rankingScore` may apply; a settings update through Miroir must end that cache, or
    a search right after it would be merged by score alone."""
    async with proxy_and_reference(nodes=3, shards=8) as (h, ref):
        await write_both(h, ref, "POST", "/indexes/movies/documents", corpus(60, seed=5))
        await write_both(h, ref, "PATCH", "/indexes/movies/settings", SETTINGS)
        query = {"q": "night", "limit": 15}
        await h.send("POST", "/indexes/movies/search", query)  # settings now cached
        rules = ["year:desc", "words", "typo", "proximity", "attribute", "sort", "exactness"]
        await write_both(h, ref, "PATCH", "/indexes/movies/settings", {"rankingRules": rules})
        _, merged, _ = await h.send("POST", "/indexes/movies/search", query)
        _, expected = await ref.send("POST", "/indexes/movies/search", query)
        years = [hit["year"] for hit in merged["hits"]]
        assert years == sorted(years, reverse=True) and len(years) > 1
        assert years == [hit["year"] for hit in expected["hits"]]


async def test_multi_search_answers_each_query_in_input_order():
    async with proxy_and_reference(nodes=3, shards=8) as (h, ref):
        await write_both(h, ref, "POST", "/indexes/movies/documents", corpus(60, seed=4))
        await write_both(h, ref, "POST", "/indexes/other/documents", corpus(30, seed=5))
        await write_both(h, ref, "PATCH", "/indexes/movies/settings", SETTINGS)
        body = {"queries": [
            {"indexUid": "movies", "q": "red", "limit": 4, "sort": ["year:asc"]},
            {"indexUid": "other", "q": "", "limit": 3, "offset": 2},
            {"indexUid": "movies", "q": "blue", "facets": ["genre"], "limit": 0},
        ]}
        status, merged, _ = await h.send("POST", "/multi-search", body)
        assert status == 200
        _, expected = await ref.send("POST", "/multi-search", body)
        assert [r["indexUid"] for r in merged["results"]] == ["movies", "other", "movies"]
        for got, want in zip(merged["results"], expected["results"], strict=True):
            for key in ("estimatedTotalHits", "facetDistribution", "limit", "offset", "query"):
                assert got.get(key) == want.get(key)
        assert [hit["year"] for hit in merged["results"][0]["hits"]] == [
            hit["year"] for hit in expected["results"][0]["hits"]]
        status, error, _ = await h.send("POST", "/multi-search", {"queries": [
            {"indexUid": "movies", "q": "x"}, {"indexUid": "nope", "q": "x"}]})
        assert status == 404 and error["code"] == "index_not_found"
        assert error["message"].startswith("Inside `.queries[1]`")


async def test_federated_multi_search_merges_hits_across_indexes_with_weights():
    async with proxy_and_reference(nodes=3, shards=8) as (h, ref):
        await write_both(h, ref, "POST", "/indexes/movies/documents", corpus(60, seed=4))
        await write_both(h, ref, "POST", "/indexes/other/documents", corpus(30, seed=5))
        body = {"federation": {"limit": 12, "offset": 3}, "queries": [
            {"indexUid": "movies", "q": "red river", "federationOptions": {"weight": 1.5}},
            {"indexUid": "other", "q": "blue"},
        ]}
        status, merged, _ = await h.send("POST", "/multi-search", body)
        assert status == 200
        _, expected = await ref.send("POST", "/multi-search", body)
        assert merged["estimatedTotalHits"] == expected["estimatedTotalHits"]
        weighted = [hit["_federation"]["weightedRankingScore"] for hit in merged["hits"]]
        assert weighted == [hit["_federation"]["weightedRankingScore"] for hit in expected["hits"]]
        assert weighted == sorted(weighted, reverse=True)


async def test_facet_search_sums_counts_over_shards():
    async with proxy_and_reference(nodes=3, shards=8) as (h, ref):
        await write_both(h, ref, "POST", "/indexes/movies/documents", corpus(100, seed=6))
        await write_both(h, ref, "PATCH", "/indexes/movies/settings", SETTINGS)
        for body in ({"facetName": "genre"}, {"facetName": "genre", "facetQuery": "dra"},
                     {"facetName": "rating", "filter": "year > 2000"},
                     {"facetName": "genre", "q": "red"}):
            status, merged, _ = await h.send("POST", "/indexes/movies/facet-search", body)
            assert status == 200, merged
            _, expected = await ref.send("POST", "/indexes/movies/facet-search", body)
            assert merged["facetHits"] == expected["facetHits"], body
        _, all_genres, _ = await h.send("POST", "/indexes/movies/facet-search", {"facetName": "genre"})
        assert sum(hit["count"] for hit in all_genres["facetHits"]) == 100


async def test_policy_partial_marks_degraded_and_error_answers_503():
    async with proxy_and_reference(nodes=3, shards=8) as (h, ref):
        await write_both(h, ref, "POST", "/indexes/movies/documents", corpus(60, seed=8))
        shard_map = h.cluster.shard_map
        down = max(h.nodes, key=lambda n: len(shard_map.shards_of(n)))
        lost = sorted(shard_map.shards_of(down))
        h.transport.down.add(down)
        status, body, headers = await h.send("POST", "/indexes/movies/search", {"q": ""})
        assert status == 200
        assert headers["X-Miroir-Degraded"] == "shards=" + ",".join(map(str, lost))
        assert body["estimatedTotalHits"] < 60
        state = h.app.extensions["miroir"]
        state.config = attrs.evolve(
            state.config, scatter=attrs.evolve(state.config.scatter, unavailable_shard_policy="error"))
        status, body, _ = await h.send("POST", "/indexes/movies/search", {"q": ""})
        assert status == 503 and body["code"] == "miroir_shard_unavailable"
        status, body, _ = await h.send("GET", "/indexes/movies/documents")
        assert status == 503 and body["code"] == "miroir_shard_unavailable"


async def test_one_replica_down_at_rf2_is_complete_and_not_degraded():
    async with proxy_and_reference(nodes=3, shards=8, replication_factor=2) as (h, ref):
        await write_both(h, ref, "POST", "/indexes/movies/documents", corpus(60, seed=9))
        h.transport.down.add("n1")
        for _ in range(4):  # every rotation of the replicas
            status, body, headers = await h.send("POST", "/indexes/movies/search",
                                                 {"q": "", "limit": 100})
            assert status == 200 and "X-Miroir-Degraded" not in headers
            assert sorted(hit["id"] for hit in body["hits"]) == list(range(60))


async def test_documents_listing_is_a_stable_global_order_with_exact_total():
    async with proxy_and_reference(nodes=3, shards=8, replication_factor=2,
                                   replica_groups=1) as (h, ref):
        documents = corpus(57, seed=10)
        await write_both(h, ref, "POST", "/indexes/movies/documents", documents)
        await write_both(h, ref, "PATCH", "/indexes/movies/settings", SETTINGS)
        pages = []
        for offset in range(0, 60, 10):
            status, page, _ = await h.send("GET", f"/indexes/movies/documents?offset={offset}&limit=10")
            assert status == 200 and page["total"] == 57
            assert (page["offset"], page["limit"]) == (offset, 10)
            pages.extend(page["results"])
        assert [doc["id"] for doc in pages] == list(range(57))  # primary key ascending
        assert pages == sorted(documents, key=lambda d: d["id"])
        status, fetched, _ = await h.send("POST", "/indexes/movies/documents/fetch", {
            "filter": "genre = drama", "fields": ["title"], "offset": 2, "limit": 5})
        assert status == 200
        dramas = [d for d in documents if d["genre"] == "drama"]
        assert fetched["total"] == len(dramas)
        assert fetched["results"] == [{"title": d["title"]} for d in dramas[2:7]]
        _, by_ids, _ = await h.send("GET", "/indexes/movies/documents?ids=5,3,40&fields=id")
        assert by_ids["results"] == [{"id": 3}, {"id": 5}, {"id": 40}] and by_ids["total"] == 3


async def test_search_routes_honour_the_master_key():
    async with running_proxy(nodes=3, shards=4, master_key="a-master-key-0123456789") as h:
        for method, path in (("POST", "/indexes/m/search"), ("GET", "/indexes/m/search"),
                             ("POST", "/multi-search"), ("POST", "/indexes/m/facet-search"),
                             ("GET", "/indexes/m/documents"),
                             ("POST", "/indexes/m/documents/fetch")):
            body = {} if method == "POST" else None
            status, error, _ = await h.send(method, path, body)
            assert (status, error["code"]) == (401, "missing_authorization_header"), path
            status, error, _ = await h.send(method, path, body,
                                            headers={"Authorization": "Bearer wrong"})
            assert (status, error["code"]) == (403, "invalid_api_key"), path
        status, error, _ = await h.send("POST", "/indexes/m/search", {},
                                        headers={"Authorization": "Bearer a-master-key-0123456789"})
        assert (status, error["code"]) == (404, "index_not_found")
