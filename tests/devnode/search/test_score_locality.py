"""The law sharded merging rests on: a document's score and score details depend only on the
document, the query and the settings, never on the other documents of the index."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from miroir.devnode.search.execute import SearchRequest, run_search
from miroir.devnode.search.ranking import global_score

from .helpers import searcher_with

VOCABULARY = [
    "batman",
    "batmobile",
    "dark",
    "knight",
    "returns",
    "the",
    "joker",
    "gotham",
    "night",
    "knights",
    "robin",
    "robbin",
    "city",
]
word = st.sampled_from(VOCABULARY)
text = st.lists(word, min_size=0, max_size=6).map(" ".join)
documents = st.fixed_dictionaries(
    {"title": text, "overview": text, "year": st.integers(1990, 2000)}
)
queries = st.lists(
    word | st.sampled_from(["batm", "nite", "knigt", "-robin", '"dark knight"']),
    min_size=1,
    max_size=4,
).map(" ".join)
SETTINGS = [
    {},
    {
        "rankingRules": [
            "words",
            "typo",
            "proximity",
            "attribute",
            "sort",
            "exactness",
            "year:desc",
        ],
        "searchableAttributes": ["title", "overview"],
        "sortableAttributes": ["year"],
    },
    {"stopWords": ["the"], "synonyms": {"night": ["knight"]}},
]


def _scored(searcher, q, strategy, sort):
    outcome = run_search(
        searcher, SearchRequest(q=q, limit=1000, matching_strategy=strategy, sort=sort)
    )
    return {hit.internal_id: (hit.score, hit.details) for hit in outcome.hits}


@given(
    documents,
    st.lists(documents, max_size=6),
    queries,
    st.sampled_from(SETTINGS),
    st.sampled_from(["last", "all", "frequency"]),
    st.integers(0, 6),
)
@example(
    {"title": "batman returns", "overview": "", "year": 1992},
    [{"title": "batman", "overview": "batmobile", "year": 1990}],
    "batm",
    SETTINGS[0],
    "last",
    1,
)
def test_a_documents_score_does_not_depend_on_its_neighbours(
    target, others, q, settings, strategy, slot
) -> None:
    sort = [("year", True)] if "sortableAttributes" in settings else []
    alone = searcher_with([target], **settings)
    corpus = list(others)
    slot = min(slot, len(corpus))
    corpus.insert(slot, target)
    crowded = searcher_with(corpus, **settings)
    single = _scored(alone, q, strategy, sort)
    among = _scored(crowded, q, strategy, sort)
    assert (0 in single) == (slot in among)
    if 0 in single:
        assert single[0] == among[slot]


def test_score_formula_reproduces_meilisearchs_worked_example() -> None:
    # reference/meilisearch-ranking.md §1: "Badman the dark knight returns 1" on doc A.
    ranks = [(6, 6), (6, 7), (15, 16), (1, 1), (60, 61), (1, 3), (6, 7)]
    assert global_score(ranks) == 0.9746605609456898


@given(documents, queries)
def test_score_is_the_lexicographic_fold_of_the_details(target, q) -> None:
    """Global score equals folding the per-rule ranks; details' per-rule scores are local."""
    searcher = searcher_with([target])
    outcome = run_search(searcher, SearchRequest(q=q))
    for hit in outcome.hits:
        assert 0.0 < hit.score <= 1.0
        orders = [entry["order"] for entry in hit.details.values()]
        assert orders == list(range(len(orders)))
        for entry in hit.details.values():
            assert 0.0 <= entry["score"] <= 1.0


@given(st.lists(documents, min_size=1, max_size=8), queries, st.sampled_from(["last", "all"]))
def test_set_shortcuts_rank_exactly_like_positions(docs, q, strategy) -> None:
    """The per-query document sets are an optimisation: switching them off changes nothing."""
    from miroir.devnode.search import execute

    searcher = searcher_with(docs)
    request = SearchRequest(q=q, limit=100, matching_strategy=strategy)
    fast = run_search(searcher, request)
    original = execute.query_plan

    def positions_only(*args, **kwargs):
        plan = original(*args, **kwargs)
        plan.fast = [False] * len(plan.fast)
        return plan

    execute.query_plan = positions_only
    try:
        slow = run_search(searcher, request)
    finally:
        execute.query_plan = original
    assert fast.total == slow.total
    assert [(h.internal_id, h.score, h.details) for h in fast.hits] == [
        (h.internal_id, h.score, h.details) for h in slow.hits
    ]
