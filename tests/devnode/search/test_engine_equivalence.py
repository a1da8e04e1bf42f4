"""The engine's bitmaps and bucket-by-bucket sort answer exactly like the per-document oracle.

On random corpora, settings and queries, with writes between searches (so every cache the
searcher keeps is exercised across a change), `run_search` and `oracle.oracle_search` must
give the same total, the same hits in the same order with the same `_rankingScore`, details and
federation values, the same matched ids and the same facet distribution and stats. Each case
runs twice: with buckets split per document below the usual size, and with every bucket split
by bitmaps (`PER_DOCUMENT_BELOW = 0`), so both paths meet the oracle on small corpora.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.devnode.search import IndexSearcher, bucketing
from miroir.devnode.search.execute import SearchRequest, run_search
from miroir.devnode.settings import default_settings

from .oracle import oracle_search

# Few words, so that documents share them, fields often equal or start with the query, and
# words meet at every distance; some words are a typo or a prefix of others.
VOCABULARY = [
    "batman", "batmobile", "dark", "knight", "night", "the", "joker", "robin", "robbin",
    "superman", "of", "42",
]
QUERY_WORDS = VOCABULARY + ["batm", "kni", "nite", "knigt", "jokr", "supreman", "dar"]
GENRES = ["action", "Drama", "drama", "comedy"]

word = st.sampled_from(VOCABULARY)
text = st.lists(word, min_size=1, max_size=5).map(" ".join) | st.lists(
    word, min_size=1, max_size=4
).map(". ".join) | st.just("")
document = st.fixed_dictionaries(
    {
        "title": text,
        "overview": text,
        "genre": st.sampled_from(GENRES),
        "year": st.integers(1990, 1995),
        "price": st.sampled_from([1, 2.5, 3, 10, 99.5]),
    },
    optional={"tags": st.lists(word | st.integers(0, 3), max_size=3), "rating": st.sampled_from(
        ["a", "b", 3, None])},
)
writes = st.lists(
    st.tuples(st.sampled_from(["upsert", "upsert", "upsert", "delete"]), st.integers(0, 24),
              document),
    min_size=6,
    max_size=30,
)

query_term = st.sampled_from(QUERY_WORDS) | st.sampled_from(
    ['"dark knight"', '"the joker"', "-robin", '-"knight of"', "batman.", "super-"]
)
q = st.none() | st.lists(query_term, min_size=0, max_size=4).map(" ".join) | st.lists(
    st.sampled_from(VOCABULARY), min_size=1, max_size=3).map(" ".join)
filters = st.sampled_from(
    [None, "genre = drama", "year > 1992", "price 2 TO 10", "NOT genre = action",
     "rating EXISTS", "tags = batman OR year = 1990"]
)
request = st.builds(
    SearchRequest,
    q=q,
    offset=st.sampled_from([0, 0, 1, 3]),
    limit=st.sampled_from([1, 3, 20]),
    filter=filters,
    sort=st.sampled_from([[], [], [("price", True)], [("year", False), ("price", True)],
                          [("rating", False)]]),
    facets=st.sampled_from([None, ["genre", "year"], ["price", "rating"]]),
    distinct=st.sampled_from([None, None, None, "genre"]),
    matching_strategy=st.sampled_from(["last", "all", "frequency"]),
    attributes_to_search_on=st.sampled_from([None, None, None, ["title"]]),
    ranking_score_threshold=st.sampled_from([None, None, None, 0.5]),
)
SETTINGS = st.fixed_dictionaries(
    {},
    optional={
        "rankingRules": st.sampled_from([
            ["words", "typo", "proximity", "attribute", "sort", "exactness", "year:desc"],
            ["sort", "exactness", "wordPosition", "proximity", "typo", "words"],
            ["typo", "words", "attributeRank", "price:asc", "proximity", "sort"],
        ]),
        "searchableAttributes": st.sampled_from([["*"], ["title", "overview"], ["overview",
                                                                                 "tags", "*"]]),
        "stopWords": st.just(["the", "of"]),
        "synonyms": st.just({"night": ["knight"], "batman": ["dark knight"]}),
        "typoTolerance": st.sampled_from([
            {"disableOnAttributes": ["title"]},
            {"minWordSizeForTypos": {"oneTypo": 3, "twoTypos": 5}},
            {"enabled": False},
        ]),
        "proximityPrecision": st.just("byAttribute"),
        "prefixSearch": st.just("disabled"),
        "faceting": st.just({"sortFacetValuesBy": {"*": "count"}, "maxValuesPerFacet": 2}),
    },
)
FILTERABLE = {"filterableAttributes": ["genre", "year", "price", "rating", "tags"],
              "sortableAttributes": ["price", "year", "rating"]}


def _answer(outcome):
    return (
        outcome.total,
        [(h.internal_id, h.score, h.details, h.values) for h in outcome.hits],
        set(outcome.matched_ids),
        outcome.facet_distribution,
        outcome.facet_stats,
    )


def _same_answer(searcher: IndexSearcher, req: SearchRequest) -> None:
    try:
        expected = _answer(oracle_search(searcher, req))
    except MeiliError as error:
        with pytest.raises(MeiliError) as raised:
            run_search(searcher, req)
        assert raised.value.body() == error.body()
        return
    assert _answer(run_search(searcher, req)) == expected


@pytest.mark.parametrize("per_document_below", [0, bucketing.PER_DOCUMENT_BELOW])
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patch=SETTINGS, history=writes, requests=st.lists(request, min_size=1, max_size=4))
def test_engine_answers_like_the_per_document_oracle(
    per_document_below, patch, history, requests
) -> None:
    original = bucketing.PER_DOCUMENT_BELOW
    bucketing.PER_DOCUMENT_BELOW = per_document_below
    try:
        full = default_settings()
        full.update(FILTERABLE)
        full.update(patch)
        searcher = IndexSearcher(full)
        half = len(history) // 2
        for step, (action, internal_id, doc) in enumerate(history):
            if step == half:  # search once midway, so caches exist when the writes go on
                _same_answer(searcher, requests[0])
            if action == "upsert":
                searcher.upsert(internal_id, doc)
            else:
                searcher.delete(internal_id)
        for req in requests:
            _same_answer(searcher, req)
    finally:
        bucketing.PER_DOCUMENT_BELOW = original


# Fewer words still: every pair of words meets often, at every distance and in both orders.
SMALL_VOCABULARY = ["dark", "knight", "robin", "batman", "of"]
small_text = st.lists(st.sampled_from(SMALL_VOCABULARY), min_size=0, max_size=6).map(" ".join)
phrase = st.lists(st.sampled_from(SMALL_VOCABULARY), min_size=1, max_size=3).map(
    lambda words: '"' + " ".join(words) + '"'
)
plain_query = st.lists(
    st.sampled_from(SMALL_VOCABULARY + ["knigt", "bat", "dar", "batmen", "robbin"])
    | phrase
    | st.sampled_from(['-"dark robin"', "-batman"]),
    min_size=2,
    max_size=3,
).map(" ".join) | st.sampled_from(SMALL_VOCABULARY) | phrase
RULE_ORDERS = st.sampled_from([
    None,
    ["words", "typo", "proximity", "attribute", "exactness"],
    ["exactness", "proximity", "wordPosition", "typo", "words"],
    ["proximity", "typo", "sort", "words", "wordPosition", "exactness"],
])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    docs=st.lists(st.fixed_dictionaries({"title": small_text, "overview": small_text}),
                  min_size=8, max_size=25),
    rules=RULE_ORDERS,
    queries=st.lists(
        st.builds(SearchRequest, q=plain_query, limit=st.sampled_from([2, 5, 50]),
                  offset=st.sampled_from([0, 2]),
                  matching_strategy=st.sampled_from(["last", "all"])),
        min_size=1, max_size=4),
)
def test_bitmap_splits_of_plain_word_queries_match_the_oracle(docs, rules, queries) -> None:
    """Every bucket split by bitmaps: words, typo, proximity, wordPosition, exactness, with
    plain words, phrases and negative terms."""
    original = bucketing.PER_DOCUMENT_BELOW
    bucketing.PER_DOCUMENT_BELOW = 0
    try:
        full = default_settings()
        full["stopWords"] = ["of"]
        if rules is not None:
            full["rankingRules"] = rules
        searcher = IndexSearcher(full)
        for internal_id, doc in enumerate(docs):
            searcher.upsert(internal_id, doc)
        for req in queries:
            _same_answer(searcher, req)
    finally:
        bucketing.PER_DOCUMENT_BELOW = original


@given(st.text(alphabet=st.sampled_from("ab Z9.!?;\n\r-é̀日x _"), max_size=30), st.integers(0, 50))
def test_indexing_tokenizer_gives_tokenize_words_and_positions(value, first) -> None:
    from miroir.devnode.search.text import HARD_GAP, ascii_runs, tokenize, word_positions

    expected = [(token.word, token.position) for token in tokenize(value, first)]
    assert word_positions(value, first) == expected
    runs = ascii_runs(value)
    if runs is not None:
        positioned, position = [], first
        for run in runs:
            positioned += [(word, position + i) for i, word in enumerate(run)]
            position += len(run) - 1 + HARD_GAP
        assert positioned == expected
