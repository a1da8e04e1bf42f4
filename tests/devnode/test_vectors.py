"""userProvided embedders on the devnode, against Meilisearch's own test snapshots
(meilisearch/crates/meilisearch/tests/search/hybrid.rs): settings, `_vectors`, semantic and
hybrid search, `retrieveVectors`, and the errors that name the devnode's limits."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from miroir.core.errors import MeiliError
from miroir.devnode.engine import Engine
from miroir.devnode.search_routes import search

DOCS = [
    {"title": "Shazam!", "desc": "a Captain Marvel ersatz", "id": "1",
     "_vectors": {"default": [1.0, 3.0]}},
    {"title": "Captain Planet", "desc": "He's not part of the Marvel Cinematic Universe",
     "id": "2", "_vectors": {"default": [1.0, 2.0]}},
    {"title": "Captain Marvel", "desc": "a Shazam ersatz", "id": "3",
     "_vectors": {"default": [2.0, 3.0]}},
]


def engine_with(docs=DOCS, embedders=None) -> Engine:
    engine = Engine(now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    engine.create_index("m", "id")
    engine.update_settings("m", {"embedders": embedders or {
        "default": {"source": "userProvided", "dimensions": 2}}})
    engine.add_documents("m", docs)
    engine.process()
    return engine


def ids(response):
    return [hit["id"] for hit in response["hits"]]


def test_semantic_search_scores_by_cosine_like_meilisearch():
    response = search(engine_with(), "m", {
        "vector": [1.0, 0.0], "hybrid": {"embedder": "default", "semanticRatio": 1.0},
        "showRankingScore": True, "retrieveVectors": True})
    assert ids(response) == ["3", "2", "1"]
    assert [h["_rankingScore"] for h in response["hits"]] == [
        0.7773500680923462, 0.7236068248748779, 0.6581138968467712]
    assert response["hits"][0]["_vectors"] == {
        "default": {"embeddings": [[2.0, 3.0]], "regenerate": False}}
    assert response["semanticHitCount"] == 3
    assert response["queryVector"] == [1.0, 0.0]
    assert list(response)[:3] == ["hits", "query", "queryVector"]


def test_vectors_are_hidden_unless_asked_for():
    engine = engine_with()
    response = search(engine, "m", {"q": "Captain"})
    assert all("_vectors" not in hit for hit in response["hits"])
    assert "semanticHitCount" not in response and "queryVector" not in response
    assert "_vectors" not in engine.get_document("m", "1")
    assert engine.get_document("m", "1", None, True)["_vectors"] == {
        "default": {"embeddings": [[1.0, 3.0]], "regenerate": False}}
    listing = engine.get_index("m").browse(offset=0, limit=5, fields=None, ids=None,
                                           filter_expr=None)
    assert all("_vectors" not in d for d in listing["results"])


def test_hybrid_merges_keyword_and_semantic_by_weighted_scores():
    engine = engine_with()
    low = search(engine, "m", {"q": "Captain", "vector": [1.0, 1.0],
                               "hybrid": {"semanticRatio": 0.2, "embedder": "default"},
                               "retrieveVectors": True})
    assert ids(low) == ["2", "3", "1"] and low["semanticHitCount"] == 0
    assert low["queryVector"] == [1.0, 1.0]
    mid = search(engine, "m", {"q": "Captain", "vector": [1.0, 1.0],
                               "hybrid": {"semanticRatio": 0.5, "embedder": "default"},
                               "showRankingScore": True})
    assert ids(mid) == ["3", "2", "1"]
    # Without a vector a userProvided embedder cannot embed q: keyword results only.
    keyword = search(engine, "m", {"q": "Planet", "showRankingScore": True,
                                   "hybrid": {"semanticRatio": 0.99, "embedder": "default"}})
    assert ids(keyword) == ["2"] and keyword["hits"][0]["_rankingScore"] == 0.9242424242424242


def test_placeholder_with_hybrid_and_no_vector_is_a_placeholder_search():
    response = search(engine_with(), "m", {"hybrid": {"embedder": "default",
                                                      "semanticRatio": 1.0},
                                           "showRankingScore": True})
    assert ids(response) == ["1", "2", "3"]
    assert [h["_rankingScore"] for h in response["hits"]] == [1.0, 1.0, 1.0]
    assert "semanticHitCount" not in response


@pytest.mark.parametrize(("body", "code", "message"), [
    ({"vector": [1.0, 0.0]}, "missing_search_hybrid",
     "Invalid request: missing `hybrid` parameter when `vector` or `media` are present."),
    ({"vector": [1.0, 0.0, 1.0], "hybrid": {"embedder": "default", "semanticRatio": 1.0}},
     "invalid_vector_dimensions", "Invalid vector dimensions: expected: `2`, found: `3`."),
    ({"q": "Captain", "hybrid": {"semanticRatio": 1.0, "embedder": "default"}},
     "vector_embedding_error",
     "Error while generating embeddings: user error: attempt to embed the following text in a "
     "configuration where embeddings must be user provided:\n  - `Captain`"),
    ({"q": "Captain", "vector": [1.0, 1.0], "hybrid": {"embedder": "default",
                                                        "semanticRatio": 1.2}},
     "invalid_search_semantic_ratio",
     "Invalid value at `.hybrid.semanticRatio`: the value of `semanticRatio` is invalid, "
     "expected a float between `0.0` and `1.0`."),
    ({"q": "x", "vector": [1.0, 1.0], "hybrid": {"embedder": "nope"}},
     "invalid_search_embedder", "Cannot find embedder with name `nope`."),
])
def test_errors_are_meilisearchs(body, code, message):
    with pytest.raises(MeiliError) as caught:
        search(engine_with(), "m", body)
    assert (caught.value.code, caught.value.message) == (code, message)


def test_other_embedder_sources_are_refused_naming_the_devnode_limit():
    engine = Engine(now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    engine.create_index("m", "id")
    from miroir.devnode.settings import validate_patch
    with pytest.raises(MeiliError) as caught:
        validate_patch({"embedders": {"e": {"source": "openAi", "apiKey": "k"}}})
    assert caught.value.code == "invalid_settings_embedders"
    assert "supports only `userProvided`" in caught.value.message
    assert "real Meilisearch nodes" in caught.value.message


def test_bad_vectors_fail_the_whole_batch():
    engine = engine_with(docs=[])
    task = engine.add_documents("m", [{"id": 1, "_vectors": {"default": [1.0, 2.0]}},
                                      {"id": 2, "_vectors": {"default": [1.0]}}])
    engine.process()
    done = engine.get_task(task.uid)
    assert done.status == "failed" and done.error["code"] == "invalid_vector_dimensions"
    assert engine.get_index("m").documents == {}


def test_documents_without_vectors_rank_last_with_null_similarity():
    engine = engine_with(docs=[*DOCS, {"id": "4", "title": "no vector"}])
    response = search(engine, "m", {"vector": [1.0, 0.0], "showRankingScoreDetails": True,
                                     "hybrid": {"embedder": "default", "semanticRatio": 1.0}})
    assert ids(response) == ["3", "2", "1", "4"]
    assert response["hits"][-1]["_rankingScoreDetails"] == {
        "vectorSort": {"order": 0, "similarity": None}}
    assert response["estimatedTotalHits"] == 4


def test_vectors_sent_before_the_embedder_are_indexed_when_it_arrives():
    engine = Engine(now=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    engine.create_index("m", "id")
    engine.add_documents("m", DOCS)
    engine.process()
    engine.update_settings("m", {"embedders": {"default": {"source": "userProvided",
                                                           "dimensions": 2}}})
    engine.process()
    response = search(engine, "m", {"vector": [1.0, 0.0],
                                    "hybrid": {"embedder": "default", "semanticRatio": 1.0}})
    assert ids(response) == ["3", "2", "1"]
    assert engine.get_index("m").stats(is_indexing=False)["numberOfEmbeddings"] == 3


def test_similar_ranks_the_other_documents_by_similarity_to_one():
    from miroir.devnode.search_routes import similar

    engine = engine_with(docs=[*DOCS, {"id": "4", "title": "no vector"}])
    response = similar(engine, "m", {"id": "1", "embedder": "default", "showRankingScore": True})
    # cos([1,3],[1,2]) = 0.990 > cos([1,3],[2,3]) = 0.965; "4" has no vector; "1" is itself.
    assert [h["id"] for h in response["hits"]] == ["2", "3"]
    assert response["id"] == "1" and response["estimatedTotalHits"] == 3
    assert all("_vectors" not in hit for hit in response["hits"])
    assert list(response) == ["hits", "id", "processingTimeMs", "limit", "offset",
                              "estimatedTotalHits"]
    with pytest.raises(MeiliError) as caught:
        similar(engine, "m", {"id": "404", "embedder": "default"})
    assert (caught.value.code, caught.value.message) == (
        "not_found_similar_id", "Document `404` not found.")
    with pytest.raises(MeiliError) as caught:
        similar(engine, "m", {"id": "1", "embedder": "other"})
    assert caught.value.code == "invalid_similar_embedder"
    with pytest.raises(MeiliError) as caught:
        similar(engine, "m", {"id": "1"})
    assert caught.value.code == "invalid_similar_embedder"


def test_get_search_reads_vector_and_hybrid_parameters():
    from miroir.meili.params import search_body_from_query as search_params_from_query

    body = search_params_from_query([("vector", "1.0,0"), ("hybridEmbedder", "default"),
                                     ("hybridSemanticRatio", "1.0")])
    assert body == {"vector": [1.0, 0.0], "hybrid": {"embedder": "default", "semanticRatio": 1.0}}
    assert ids(search(engine_with(), "m", body)) == ["3", "2", "1"]
    with pytest.raises(MeiliError) as caught:
        search_params_from_query([("hybridSemanticRatio", "1.2")])
    assert caught.value.message == (
        "Invalid value in parameter `hybridSemanticRatio`: the value of `semanticRatio` is "
        "invalid, expected a float between `0.0` and `1.0`.")
