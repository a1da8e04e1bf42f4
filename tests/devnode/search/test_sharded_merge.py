"""The property the devnode exists for: shards searched separately and merged by
`miroir.core.merge` answer what one devnode holding the whole corpus answers (up to the order
of exact score ties)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from miroir.core.merge import merge_search, merge_search_outcome
from miroir.core.search_plan import plan_node_query
from miroir.devnode import search_routes as routes

from .helpers import engine_with

WORDS = ["batman", "batmobile", "dark", "knight", "night", "gotham", "joker", "city", "robin"]
documents = st.lists(
    st.fixed_dictionaries(
        {
            "title": st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
            "genre": st.sampled_from(["action", "drama", "Action"]),
            "year": st.integers(1990, 1994),
        }
    ),
    min_size=1,
    max_size=12,
).map(lambda docs: [dict(doc, id=i) for i, doc in enumerate(docs)])
query_params = st.fixed_dictionaries(
    {"q": st.lists(st.sampled_from(WORDS + ["batm", "nigth", "knigt"]), max_size=3).map(" ".join)},
    optional={
        "sort": st.sampled_from([["year:asc"], ["year:desc"], ["title:asc"]]),
        "filter": st.sampled_from(["year > 1991", "genre = action", "NOT year = 1990"]),
        "facets": st.just(["genre", "year"]),
        "limit": st.integers(1, 15),
        "offset": st.integers(0, 3),
    },
)
SETTINGS = {"filterableAttributes": ["genre", "year"], "sortableAttributes": ["year", "title"]}


def _key(hit: dict) -> tuple:
    return (round(hit["_rankingScore"], 12),)


@settings(max_examples=30)
@given(documents, query_params, st.integers(2, 3))
def test_merged_shards_answer_like_one_node(docs, params, shard_count) -> None:
    params = dict(params, showRankingScore=True)
    whole = engine_with("w", docs, **SETTINGS)
    shards = [engine_with("w", docs[k::shard_count], **SETTINGS) for k in range(shard_count)]
    single = routes.search(whole, "w", params)
    plan = plan_node_query(params, whole.get_index("w").settings)
    merged = merge_search(plan, [routes.search(shard, "w", plan.node_params) for shard in shards])
    assert merged["estimatedTotalHits"] == single["estimatedTotalHits"]
    if "sort" not in params:
        assert [_key(h) for h in merged["hits"]] == [_key(h) for h in single["hits"]]
    else:
        field = params["sort"][0].split(":")[0]
        assert [h[field] for h in merged["hits"]] == [h[field] for h in single["hits"]]
    if "facets" in params:
        merged_counts = {k: sum(v.values()) for k, v in merged["facetDistribution"].items()}
        single_counts = {k: sum(v.values()) for k, v in single["facetDistribution"].items()}
        assert merged_counts == single_counts
        assert merged["facetStats"] == single["facetStats"]


@settings(max_examples=30)
@given(
    documents,
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=2).map(" ".join),
    st.integers(2, 3),
    st.booleans(),
    st.integers(1, 4),
)
def test_distinct_and_pages_merge_like_one_node(docs, q, shard_count, page_mode, size) -> None:
    params = {"q": q, "distinct": "genre", "showRankingScore": True}
    params.update({"page": 1, "hitsPerPage": size} if page_mode else {"limit": size})
    settings_ = dict(SETTINGS, distinctAttribute=None)
    whole = engine_with("w", docs, **settings_)
    shards = [engine_with("w", docs[k::shard_count], **settings_) for k in range(shard_count)]
    single = routes.search(whole, "w", params)
    plan = plan_node_query(params, whole.get_index("w").settings)
    outcome = merge_search_outcome(
        plan, [routes.search(shard, "w", plan.node_params) for shard in shards]
    )
    while outcome.refetch is not None:
        plan = outcome.refetch
        outcome = merge_search_outcome(
            plan, [routes.search(shard, "w", plan.node_params) for shard in shards]
        )
    merged = outcome.response
    assert [_key(h) for h in merged["hits"]] == [_key(h) for h in single["hits"]]
    if page_mode:
        assert merged["totalHits"] == single["totalHits"]


@settings(max_examples=30)
@given(
    documents,
    st.lists(
        st.tuples(
            st.lists(st.sampled_from(WORDS), max_size=2).map(" ".join),
            st.sampled_from([None, ["year:asc"], ["year:desc"]]),
            st.sampled_from([1.0, 0.5, 2.0]),
        ),
        min_size=1,
        max_size=3,
    ),
    st.integers(2, 3),
)
def test_federated_search_merged_across_shards_answers_like_one_node(docs, queries, shard_count):
    from miroir.core.merge_federated import merge_federated, plan_federated_query

    body = {
        "federation": {"limit": 10},
        "queries": [
            {
                "indexUid": "w",
                "q": q,
                "showRankingScore": True,
                **({"sort": sort} if sort else {}),
                "federationOptions": {"weight": weight},
            }
            for q, sort, weight in queries
        ],
    }
    whole = engine_with("w", docs, **SETTINGS)
    shards = [engine_with("w", docs[k::shard_count], **SETTINGS) for k in range(shard_count)]
    single = routes.multi_search(whole, body)
    plan = plan_federated_query(body)
    merged = merge_federated(plan, [routes.multi_search(shard, plan.node_body) for shard in shards])
    sorted_queries = {i for i, (_, sort, _) in enumerate(queries) if sort}

    def key(hit: dict) -> tuple:
        # Exact ties may come in any order; a hit's year only ranks it when its query sorts.
        position = hit["_federation"]["queriesPosition"]
        year = hit["year"] if position in sorted_queries else None
        return (round(hit["_federation"]["weightedRankingScore"], 12), position, year)

    assert [key(h) for h in merged["hits"]] == [key(h) for h in single["hits"]]
    assert merged["estimatedTotalHits"] == single["estimatedTotalHits"]
