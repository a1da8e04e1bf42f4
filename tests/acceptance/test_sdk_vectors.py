"""Vector, hybrid and similar search, and documents sort, through a real `miroir serve` and
real node processes, driven by both SDKs users have: the official `meilisearch` and the
community `meilisearch-python-sdk`. Every answer is compared with one in-process devnode
holding the whole corpus (the single-node reference)."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from meilisearch_python_sdk import Client as CommunityClient
from meilisearch_python_sdk.models.search import Hybrid

from miroir.devnode.engine import Engine
from miroir.devnode.search_routes import search, similar

from .conftest import MASTER_KEY, sdk, wait

pytestmark = pytest.mark.acceptance

INDEX = "sdk_vectors"
WORDS = ["captain", "marvel", "planet", "shazam", "night", "dark", "wonder"]


def corpus() -> list[dict]:
    rng = random.Random(11)
    docs = []
    for i in range(60):
        doc = {"id": i, "title": " ".join(rng.sample(WORDS, rng.randint(1, 3))),
               "price": round(rng.uniform(1, 50), 2), "name": f"Item {rng.randint(0, 999):03d}"}
        if i % 9:
            doc["_vectors"] = {"default": [round(rng.uniform(-1, 1), 4) for _ in range(4)]}
        docs.append(doc)
    return docs


SETTINGS = {"filterableAttributes": ["price"], "sortableAttributes": ["price", "name", "id"]}


@pytest.fixture(scope="module")
def vectors_index(cluster):
    client = sdk(cluster)
    wait(client, client.create_index(INDEX, {"primaryKey": "id"}))
    index = client.index(INDEX)
    task = wait(client, index.update_settings(
        {**SETTINGS, "embedders": {"default": {"source": "userProvided", "dimensions": 4}}}))
    assert task.status == "succeeded", task.error
    task = wait(client, index.add_documents(corpus()))
    assert task.status == "succeeded", task.error
    oracle = Engine(now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    oracle.create_index(INDEX, "id")
    oracle.update_settings(INDEX, {**SETTINGS, "embedders": {
        "default": {"source": "userProvided", "dimensions": 4}}})
    oracle.add_documents(INDEX, corpus())
    oracle.process()
    return oracle


def scored_runs(hits):
    """(score, ids) runs: equal scores are one node's internal-id order, compared as sets."""
    runs: list[tuple[float, set]] = []
    for hit in hits:
        if runs and runs[-1][0] == hit["_rankingScore"]:
            runs[-1][1].add(hit["id"])
        else:
            runs.append((hit["_rankingScore"], {hit["id"]}))
    return runs


@pytest.mark.parametrize("body", [
    {"vector": [0.2, -0.4, 0.1, 0.9], "hybrid": {"embedder": "default", "semanticRatio": 1.0}},
    {"q": "captain", "vector": [0.5, 0.5, -0.2, 0.1],
     "hybrid": {"embedder": "default", "semanticRatio": 0.6}, "limit": 8},
    {"q": "night wonder", "vector": [-0.3, 0.8, 0.0, 0.2], "filter": "price > 10",
     "hybrid": {"embedder": "default", "semanticRatio": 0.3}, "offset": 2, "limit": 6},
])
def test_official_sdk_vector_and_hybrid_search_equals_one_node(cluster, vectors_index, body):
    params = {**body, "showRankingScore": True}
    got = sdk(cluster).index(INDEX).search(params.get("q", ""), {
        k: v for k, v in params.items() if k != "q"})
    expected = search(vectors_index, INDEX, params)
    assert scored_runs(got["hits"])[:-1] == scored_runs(expected["hits"])[:-1]
    assert [h["_rankingScore"] for h in got["hits"]] == [
        h["_rankingScore"] for h in expected["hits"]]
    assert got["estimatedTotalHits"] == expected["estimatedTotalHits"]
    assert got["semanticHitCount"] == expected["semanticHitCount"]


def test_community_sdk_hybrid_search_similar_and_vectors(cluster, vectors_index):
    with CommunityClient(cluster.url, MASTER_KEY, timeout=30) as client:
        index = client.index(INDEX)
        embedders = index.get_embedders()
        assert embedders is not None and embedders.embedders["default"].dimensions == 4
        results = index.search("marvel", vector=[0.1, 0.9, -0.5, 0.3], show_ranking_score=True,
                               hybrid=Hybrid(semantic_ratio=0.5, embedder="default"),
                               retrieve_vectors=True)
        expected = search(vectors_index, INDEX, {
            "q": "marvel", "vector": [0.1, 0.9, -0.5, 0.3], "showRankingScore": True,
            "hybrid": {"embedder": "default", "semanticRatio": 0.5}, "retrieveVectors": True})
        assert [h["_rankingScore"] for h in results.hits] == [
            h["_rankingScore"] for h in expected["hits"]]
        assert results.semantic_hit_count == expected["semanticHitCount"]
        assert all("_vectors" in hit for hit in results.hits)
        similar_hits = index.search_similar_documents("4", embedder="default", limit=5,
                                                      show_ranking_score=True)
        oracle_hits = similar(vectors_index, INDEX, {"id": "4", "embedder": "default",
                                                     "limit": 5, "showRankingScore": True})
        assert [h["id"] for h in similar_hits.hits] == [h["id"] for h in oracle_hits["hits"]]
        assert similar_hits.estimated_total_hits == oracle_hits["estimatedTotalHits"]
        documents = index.get_documents(limit=3, retrieve_vectors=True)
        assert all("_vectors" in d for d in documents.results if d["id"] % 9)


def test_both_sdks_list_documents_sorted_like_one_node(cluster, vectors_index):
    expected = vectors_index.get_index(INDEX).browse(
        offset=5, limit=10, fields=None, ids=None, filter_expr=None,
        sort=[("price", False), ("id", True)])["results"]
    official = sdk(cluster).index(INDEX).get_documents(
        {"sort": "price:desc", "offset": 5, "limit": 10})
    assert [d.id for d in official.results] == [d["id"] for d in expected]
    with CommunityClient(cluster.url, MASTER_KEY, timeout=30) as client:
        community = client.index(INDEX).get_documents(offset=5, limit=10, sort="price:desc")
    assert [d["id"] for d in community.results] == [d["id"] for d in expected]
    by_name = sdk(cluster).index(INDEX).get_documents({"sort": "name:asc", "limit": 60,
                                                       "fields": ["name"]})
    names = [d.name for d in by_name.results]
    assert names == sorted(names, key=str.lower)
