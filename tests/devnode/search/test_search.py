"""Search behaviour of the devnode: matching, ranking, sort, facets, distinct, pages, formats."""

from __future__ import annotations

import json
import pathlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.core.merge import merge_search
from miroir.core.search_plan import plan_node_query
from miroir.devnode import search_routes as routes
from miroir.devnode.search.execute import SearchRequest, run_search
from miroir.devnode.search.text import damerau_levenshtein, normalize_word, tokenize
from miroir.devnode.search.trie import Trie
from miroir.meili.params import search_body_from_query

from .helpers import engine_with, searcher_with, titles

# The team's small movies dataset, vendored so CI runs the merge check wherever it clones.
MOVIES = json.loads(
    (pathlib.Path(__file__).resolve().parents[2] / "data" / "small_movies.json").read_text()
)


# -- text and vocabulary ---------------------------------------------------------------------


def test_tokens_are_folded_and_positions_jump_across_hard_separators() -> None:
    tokens = tokenize("Élan vital. Crème BRÛLÉE, ok")
    assert [t.word for t in tokens] == ["elan", "vital", "creme", "brulee", "ok"]
    assert [t.position for t in tokens] == [0, 1, 9, 10, 11]
    assert normalize_word("ÖSTERREICH") == "osterreich"


@given(st.text("abcde", max_size=7), st.text("abcde", max_size=7))
def test_trie_typo_lookup_equals_a_vocabulary_scan(query: str, other: str) -> None:
    vocabulary = ["abc", "abd", "bacde", "abcde", "aecdb", "edcba", "abcdd", "ab", other]
    trie = Trie()
    for word in vocabulary:
        if word:
            trie.add(word)
    for budget in (1, 2):
        expected = {}
        for word in set(vocabulary):
            if not word or not query:
                continue
            distance = damerau_levenshtein(query, word, budget)
            if word[0] == query[0] and distance <= budget:
                expected[word] = distance
            elif word[0] != query[0] and budget == 2 and distance <= 1:
                expected[word] = 2
        assert trie.fuzzy(query, budget, prefix=False) == expected


def _expected_typos(query: str, vocabulary: list[str], budget: int, prefix: bool) -> dict:
    """The trie's answer by scanning the vocabulary: a word (through its closest prefix, with
    `prefix`) within the budget, under the first-letter rule."""
    expected = {}
    for word in set(vocabulary):
        ends = range(1, len(word) + 1) if prefix else [len(word)]
        distance = min(damerau_levenshtein(query, word[:end], budget) for end in ends)
        if word[0] == query[0] and distance <= budget:
            expected[word] = distance
        elif word[0] != query[0] and budget == 2 and distance <= 1:
            expected[word] = 2
    return expected


@given(st.text("abcde", min_size=1, max_size=9),
       st.lists(st.text("abcde", min_size=1, max_size=10), max_size=12))
def test_trie_typo_lookups_with_and_without_prefix_equal_a_vocabulary_scan(
    query: str, vocabulary: list[str]
) -> None:
    """Longer words and queries than above: the walk computes only a band of each row."""
    trie = Trie()
    for word in vocabulary:
        trie.add(word)
    for budget in (1, 2):
        for prefix in (False, True):
            expected = _expected_typos(query, vocabulary, budget, prefix)
            assert trie.fuzzy(query, budget, prefix=prefix) == expected


def test_a_prefix_typo_lookup_counts_the_closest_prefix() -> None:
    trie = Trie()
    for word in ("abc", "ab", "bbcd"):
        trie.add(word)
    assert trie.fuzzy("ab", 1, prefix=False) == {"ab": 0, "abc": 1}
    assert trie.fuzzy("ab", 2, prefix=True) == {"ab": 0, "abc": 0, "bbcd": 2}


@given(st.lists(st.tuples(st.sampled_from(["add", "add", "remove", "look"]),
                          st.text("abc", min_size=1, max_size=3)), max_size=60))
def test_trie_words_stay_sorted_when_additions_wait_to_be_sorted_in(steps) -> None:
    """Added words are sorted in at the next lookup (one by one, or by one sort when many
    wait); every lookup sees exactly the words added and not removed, in order."""
    trie = Trie()
    model: set[str] = set()
    for action, word in steps:
        if action == "add":
            trie.add(word)
            model.add(word)
        elif action == "remove":
            trie.remove(word)
            model.discard(word)
        else:
            assert trie.sorted_words == sorted(model)
            assert (word in trie) == (word in model)
            assert trie.with_prefix(word[:1]) == [w for w in sorted(model) if w[0] == word[0]]
    assert trie.sorted_words == sorted(model)


# -- matching --------------------------------------------------------------------------------

DOCS = [
    {"id": 1, "title": "Batman Returns", "overview": "the dark knight returns to gotham"},
    {"id": 2, "title": "The Dark Knight", "overview": "batman fights the joker"},
    {"id": 3, "title": "Knight and Day", "overview": "a spy comedy"},
    {"id": 4, "title": "Gotham City", "overview": "a city without batman"},
]


def test_prefix_applies_to_the_last_word_only_and_a_trailing_space_disables_it() -> None:
    searcher = searcher_with(DOCS)
    assert set(titles(searcher, "goth")) == {"Batman Returns", "Gotham City"}
    assert titles(searcher, "goth ") == []  # 4 letters: no typo either
    assert titles(searcher, "goth city", matching_strategy="all") == []


def test_typo_tolerance_follows_word_length_and_settings() -> None:
    searcher = searcher_with(DOCS)
    assert "Batman Returns" in titles(searcher, "batmn ")  # 5 letters: one typo
    assert titles(searcher, "jokr ") == []  # 4 letters: none
    assert "The Dark Knight" in titles(searcher, "jkoer ")  # a swap is one typo
    off = searcher_with(DOCS, typoTolerance={"enabled": False})
    assert titles(off, "batmn ") == []
    words_off = searcher_with(DOCS, typoTolerance={"disableOnWords": ["batmn"]})
    assert titles(words_off, "batmn ") == []
    sizes = searcher_with(
        DOCS, typoTolerance={"minWordSizeForTypos": {"oneTypo": 4, "twoTypos": 8}}
    )
    assert "The Dark Knight" in titles(sizes, "jokr ")
    attr_off = searcher_with(DOCS, typoTolerance={"disableOnAttributes": ["title"]})
    assert titles(attr_off, "knigt and ", matching_strategy="all") == []
    numbers = [{"id": 1, "title": "12345"}]
    assert titles(searcher_with(numbers), "12346 ") == ["12345"]
    assert titles(searcher_with(numbers, typoTolerance={"disableOnNumbers": True}), "12346 ") == []


def test_phrases_negatives_stop_words_and_synonyms() -> None:
    searcher = searcher_with(DOCS)
    assert set(titles(searcher, '"dark knight"')) == {"The Dark Knight", "Batman Returns"}
    assert titles(searcher, '"knight dark"') == []
    assert titles(searcher, "batman -joker") == ["Batman Returns", "Gotham City"]
    assert titles(searcher, 'knight -"dark knight"') == ["Knight and Day"]
    assert titles(searcher, "-joker") == ["Batman Returns", "Knight and Day", "Gotham City"]
    stop = searcher_with(DOCS, stopWords=["the"])
    assert set(titles(stop, "the joker")) == {"The Dark Knight"}
    synonyms = searcher_with(DOCS, synonyms={"bruce": ["batman"]})
    assert set(titles(synonyms, "bruce ")) == {"Batman Returns", "The Dark Knight", "Gotham City"}


def test_matching_strategies() -> None:
    searcher = searcher_with(DOCS)
    # `last` drops words from the end; documents matching more words rank first.
    assert titles(searcher, "batman joker spy") == [
        "The Dark Knight",
        "Batman Returns",
        "Gotham City",
    ]
    assert titles(searcher, "batman joker spy", matching_strategy="all") == []
    assert titles(searcher, "batman joker", matching_strategy="all") == ["The Dark Knight"]


def test_attributes_to_search_on_restricts_matching() -> None:
    searcher = searcher_with(DOCS)
    outcome = run_search(searcher, SearchRequest(q="batman", attributes_to_search_on=["title"]))
    assert [searcher.documents[h.internal_id]["title"] for h in outcome.hits] == ["Batman Returns"]
    with pytest.raises(MeiliError) as err:
        run_search(
            searcher_with(DOCS, searchableAttributes=["title"]),
            SearchRequest(q="x", attributes_to_search_on=["overview"]),
        )
    assert err.value.code == "invalid_search_attributes_to_search_on"


# -- ranking ---------------------------------------------------------------------------------


def test_ties_break_by_first_insertion_and_replacing_keeps_the_slot() -> None:
    engine = engine_with("i", [{"id": n, "title": "same words"} for n in (5, 3, 9)])
    ids = [h["id"] for h in routes.search(engine, "i", {"q": "same"})["hits"]]
    assert ids == [5, 3, 9]
    engine.add_documents("i", [{"id": 5, "title": "same words"}], primary_key="id")
    engine.process()
    assert [h["id"] for h in routes.search(engine, "i", {"q": "same"})["hits"]] == [5, 3, 9]


def test_details_have_meilisearchs_shape_in_rule_order() -> None:
    searcher = searcher_with(DOCS, sortableAttributes=["id"])
    outcome = run_search(searcher, SearchRequest(q="dark knight", sort=[("id", False)]))
    details = outcome.hits[0].details
    assert list(details) == [
        "words",
        "typo",
        "proximity",
        "attributeRank",
        "id:desc",
        "wordPosition",
        "exactness",
    ]
    assert details["id:desc"] == {"order": 4, "value": 2.0}
    assert details["words"] == {"order": 0, "matchingWords": 2, "maxMatchingWords": 2, "score": 1.0}
    assert details["exactness"]["matchType"] in ("exactMatch", "matchesStart", "noExactMatch")


def test_proximity_and_exactness_order_results() -> None:
    docs = [
        {"id": 1, "title": "knight of the dark"},
        {"id": 2, "title": "dark knight"},
        {"id": 3, "title": "dark old knight"},
    ]
    searcher = searcher_with(docs)
    assert titles(searcher, "dark knight") == [
        "dark knight",
        "dark old knight",
        "knight of the dark",
    ]


def test_sort_needs_sortable_attributes_and_orders_numbers_strings_then_missing() -> None:
    docs = [
        {"id": 1, "title": "a", "v": "b"},
        {"id": 2, "title": "b", "v": 3},
        {"id": 3, "title": "c"},
        {"id": 4, "title": "d", "v": 1},
        {"id": 5, "title": "e", "v": "a"},
    ]
    searcher = searcher_with(docs, sortableAttributes=["v"])
    assert titles(searcher, "", sort=[("v", True)]) == ["d", "b", "e", "a", "c"]
    assert titles(searcher, "", sort=[("v", False)]) == ["b", "d", "a", "e", "c"]
    with pytest.raises(MeiliError) as err:
        run_search(searcher_with(docs), SearchRequest(sort=[("v", True)]))
    assert err.value.message == (
        "Attribute `v` is not sortable. This index does not have configured sortable attributes."
    )


def test_custom_ranking_rule_and_placeholder_scores() -> None:
    docs = [{"id": 1, "title": "x", "rank": 1}, {"id": 2, "title": "x", "rank": 5}]
    searcher = searcher_with(docs, rankingRules=["words", "rank:desc", "typo"])
    outcome = run_search(searcher, SearchRequest())
    assert [h.internal_id for h in outcome.hits] == [1, 0]
    assert outcome.hits[0].score == 1.0
    assert outcome.hits[0].details == {"rank:desc": {"order": 0, "value": 5.0}}


def test_ranking_score_threshold_counts_only_what_passes() -> None:
    searcher = searcher_with(DOCS)
    everything = run_search(searcher, SearchRequest(q="batman joker"))
    strict = run_search(searcher, SearchRequest(q="batman joker", ranking_score_threshold=0.9))
    assert strict.total == len(strict.hits) < everything.total
    assert all(h.score >= 0.9 for h in strict.hits)


# -- filters, facets, distinct, pages ---------------------------------------------------------


def test_facets_counts_stats_order_and_limits() -> None:
    docs = [
        {"id": i, "title": "t", "genre": g, "price": p}
        for i, (g, p) in enumerate([("b", 3), ("a", 1.5), (["b", "c"], 10), ("B", 2)])
    ]
    searcher = searcher_with(docs, filterableAttributes=["genre", "price"])
    outcome = run_search(searcher, SearchRequest(q="t", facets=["genre", "price"]))
    assert outcome.facet_distribution == {
        "genre": {"a": 1, "b": 3, "c": 1},
        "price": {"1.5": 1, "2": 1, "3": 1, "10": 1},
    }
    assert outcome.facet_stats == {"price": {"min": 1.5, "max": 10.0}}
    by_count = searcher_with(
        docs,
        filterableAttributes=["genre"],
        faceting={"maxValuesPerFacet": 2, "sortFacetValuesBy": {"*": "count"}},
    )
    outcome = run_search(by_count, SearchRequest(q="t", facets=["genre"]))
    assert outcome.facet_distribution == {"genre": {"b": 3, "a": 1}}
    filtered = run_search(searcher, SearchRequest(q="t", facets=["genre"], filter="price > 2"))
    assert filtered.total == 2
    assert filtered.facet_distribution == {"genre": {"b": 2, "c": 1}}


def test_distinct_keeps_the_best_document_of_each_value() -> None:
    docs = [
        {"id": 1, "title": "shoe red", "sku": "a"},
        {"id": 2, "title": "shoe", "sku": "a"},
        {"id": 3, "title": "shoe", "sku": "b"},
        {"id": 4, "title": "shoe"},
    ]
    searcher = searcher_with(docs, distinctAttribute="sku")
    outcome = run_search(searcher, SearchRequest(q="shoe red"))
    assert [h.internal_id for h in outcome.hits] == [0, 2, 3]
    assert outcome.total == 3


def test_routes_pagination_and_max_total_hits() -> None:
    docs = [{"id": i, "title": f"word {i}"} for i in range(30)]
    engine = engine_with("p", docs, pagination={"maxTotalHits": 25})
    page = routes.search(engine, "p", {"q": "word", "page": 3, "hitsPerPage": 10})
    assert [h["id"] for h in page["hits"]] == [20, 21, 22, 23, 24]
    assert (page["totalHits"], page["totalPages"], page["page"]) == (25, 3, 3)
    plain = routes.search(engine, "p", {"q": "word", "offset": 20, "limit": 10})
    assert len(plain["hits"]) == 5 and plain["estimatedTotalHits"] == 25
    assert list(plain)[:6] == [
        "hits",
        "query",
        "processingTimeMs",
        "limit",
        "offset",
        "estimatedTotalHits",
    ]
    get = routes.search(
        engine,
        "p",
        search_body_from_query(
            [("q", "word"), ("limit", "2"), ("attributesToRetrieve", "id")]
        ),
    )
    assert get["hits"] == [{"id": 0}, {"id": 1}]


# -- formatting ------------------------------------------------------------------------------


def test_formatted_highlight_crop_and_matches_position() -> None:
    engine = engine_with(
        "f",
        [
            {
                "id": 1,
                "title": "Batman Returns",
                "overview": "one two three four five batman six seven eight",
            }
        ],
    )
    hit = routes.search(
        engine,
        "f",
        {
            "q": "batm",
            "attributesToHighlight": ["title"],
            "attributesToCrop": ["overview:3"],
            "highlightPreTag": "[",
            "highlightPostTag": "]",
            "showMatchesPosition": True,
        },
    )["hits"][0]
    assert hit["_formatted"]["title"] == "[Batm]an Returns"
    assert hit["_formatted"]["overview"] == "…five batman six…"
    assert hit["_formatted"]["id"] == 1
    assert hit["_matchesPosition"] == {
        "title": [{"start": 0, "length": 4}],
        "overview": [{"start": 24, "length": 4}],
    }
    assert "_formatted" not in routes.search(engine, "f", {"q": "batman"})["hits"][0]


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"q": 1}, "invalid_search_q"),
        ({"limit": -1}, "invalid_search_limit"),
        ({"sort": ["id"]}, "invalid_search_sort"),
        ({"filter": "genre = x"}, "invalid_search_filter"),
        ({"filter": 3}, "invalid_search_filter"),
        ({"facets": ["genre"]}, "invalid_search_facets"),
        ({"distinct": "genre"}, "invalid_search_distinct"),
        ({"matchingStrategy": "best"}, "invalid_search_matching_strategy"),
        ({"rankingScoreThreshold": 2}, "invalid_search_ranking_score_threshold"),
        ({"nope": True}, "bad_request"),
    ],
)
def test_bad_search_requests_get_meilisearch_errors(body, code) -> None:
    engine = engine_with("e", [{"id": 1, "title": "x", "genre": "y"}])
    with pytest.raises(MeiliError) as err:
        routes.search(engine, "e", body)
    assert err.value.code == code
    assert err.value.status == 400


def test_missing_index_is_404() -> None:
    engine = engine_with("e", [{"id": 1, "title": "x"}])
    with pytest.raises(MeiliError) as err:
        routes.search(engine, "nope", {})
    assert err.value.status == 404


# -- multi-search and facet search ---------------------------------------------------------


def test_multi_search_plain_and_federated() -> None:
    engine = engine_with("m", DOCS)
    plain = routes.multi_search(
        engine, {"queries": [{"indexUid": "m", "q": "joker"}, {"indexUid": "m", "q": "spy"}]}
    )
    assert [r["indexUid"] for r in plain["results"]] == ["m", "m"]
    assert [r["hits"][0]["id"] for r in plain["results"]] == [2, 3]
    federated = routes.multi_search(
        engine,
        {
            "federation": {"limit": 3},
            "queries": [
                {"indexUid": "m", "q": "joker"},
                {"indexUid": "m", "q": "batman", "federationOptions": {"weight": 0.1}},
            ],
        },
    )
    hits = federated["hits"]
    assert hits[0]["id"] == 2 and hits[0]["_federation"]["queriesPosition"] == 0
    assert len({h["id"] for h in hits}) == len(hits) == 3
    scores = [h["_federation"]["weightedRankingScore"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    with pytest.raises(MeiliError) as err:
        routes.multi_search(
            engine, {"federation": {}, "queries": [{"indexUid": "m", "q": "x", "limit": 3}]}
        )
    assert err.value.code == "invalid_multi_search_query_pagination"


def test_facet_search_counts_matching_values_among_search_results() -> None:
    docs = [
        {"id": 1, "title": "a", "genre": "Action"},
        {"id": 2, "title": "b", "genre": "Adventure"},
        {"id": 3, "title": "a", "genre": "action"},
        {"id": 4, "title": "a", "genre": "Drama"},
    ]
    engine = engine_with("fs", docs, filterableAttributes=["genre"])
    answer = routes.facet_search(engine, "fs", {"facetName": "genre", "facetQuery": "a"})
    assert answer["facetHits"] == [
        {"value": "Action", "count": 2},
        {"value": "Adventure", "count": 1},
    ]
    narrowed = routes.facet_search(engine, "fs", {"facetName": "genre", "q": "b"})
    assert narrowed["facetHits"] == [{"value": "Adventure", "count": 1}]
    with pytest.raises(MeiliError) as err:
        routes.facet_search(engine, "fs", {"facetName": "title"})
    assert err.value.code == "invalid_facet_search_facet_name"


# -- sharded merge equals one node -------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {"q": "the", "limit": 50},
        {"q": "marvl hero", "limit": 50},
        {"q": "spider", "sort": ["release_date:desc"], "limit": 50},
        {"q": "", "sort": ["title:asc"], "limit": 10, "offset": 5},
        {"q": "war", "filter": "genre = action", "facets": ["genre"], "limit": 50},
    ],
)
def test_merging_shards_gives_the_single_node_answer(params) -> None:
    settings = {"filterableAttributes": ["genre"], "sortableAttributes": ["release_date", "title"]}
    whole = engine_with("w", MOVIES, **settings)
    shards = [engine_with("w", MOVIES[k::3], **settings) for k in range(3)]
    params = dict(params, showRankingScore=True)
    single = routes.search(whole, "w", params)
    plan = plan_node_query(params, whole.get_index("w").settings)
    bodies = [routes.search(shard, "w", plan.node_params) for shard in shards]
    merged = merge_search(plan, bodies)
    assert [h["id"] for h in merged["hits"]] == [h["id"] for h in single["hits"]] or (
        [round(h["_rankingScore"], 12) for h in single["hits"]]
        == [round(h["_rankingScore"], 12) for h in merged["hits"]]
    )
    assert merged["estimatedTotalHits"] == single["estimatedTotalHits"]
    assert merged.get("facetDistribution") == single.get("facetDistribution")


def test_facets_on_non_filterable_attributes_are_refused_with_meilisearchs_message() -> None:
    searcher = searcher_with(DOCS, filterableAttributes=["genre", "year"])
    with pytest.raises(MeiliError) as err:
        run_search(searcher, SearchRequest(facets=["title"]))
    assert err.value.message == (
        "Invalid facet distribution: Attribute `title` is not filterable. Available filterable "
        "attributes patterns are: `genre, year`."
    )
    with pytest.raises(MeiliError) as err:
        run_search(searcher_with(DOCS), SearchRequest(facets=["title", "id"]))
    assert err.value.message == (
        "Invalid facet distribution: Attributes `id, title` are not filterable. This index does "
        "not have configured filterable attributes."
    )


def test_crop_without_a_match_keeps_the_start_and_nested_values_are_formatted() -> None:
    engine = engine_with(
        "c",
        [
            {
                "id": 1,
                "title": "one two three four five six",
                "meta": {"tags": ["dark knight", "other"]},
            }
        ],
    )
    hit = routes.search(
        engine,
        "c",
        {
            "q": "knight",
            "attributesToCrop": ["title:2"],
            "attributesToHighlight": ["meta"],
            "attributesToRetrieve": ["title", "meta.tags"],
        },
    )["hits"][0]
    assert hit["_formatted"]["title"] == "one two…"
    assert hit["_formatted"]["meta"] == {"tags": ["dark <em>knight</em>", "other"]}
    assert set(hit) == {"title", "meta", "_formatted"}


def test_get_query_strings_are_converted_with_meilisearch_errors() -> None:
    body = search_body_from_query(
        [
            ("q", "x"),
            ("limit", "3"),
            ("showRankingScore", "true"),
            ("facets", "a,b"),
            ("rankingScoreThreshold", "0.5"),
        ]
    )
    assert body == {
        "q": "x",
        "limit": 3,
        "showRankingScore": True,
        "facets": ["a", "b"],
        "rankingScoreThreshold": 0.5,
    }
    for query, code in [
        ([("limit", "-1")], "invalid_search_limit"),
        ([("showRankingScore", "yes")], "invalid_search_show_ranking_score"),
        ([("nope", "1")], "bad_request"),
    ]:
        with pytest.raises(MeiliError) as err:
            search_body_from_query(query)
        assert err.value.code == code


def test_federated_sorts_compare_by_value_facets_by_index_and_pages() -> None:
    docs = [
        {"id": i, "title": "shoe" if i % 2 else "boot", "price": p, "genre": g}
        for i, (p, g) in enumerate([(30, "a"), (10, "b"), (20, "a"), (5, "b")])
    ]
    engine = engine_with("s", docs, sortableAttributes=["price"], filterableAttributes=["genre"])
    answer = routes.multi_search(
        engine,
        {
            "federation": {"page": 1, "hitsPerPage": 3, "facetsByIndex": {"s": ["genre"]}},
            "queries": [
                {"indexUid": "s", "q": "shoe", "sort": ["price:asc"]},
                {"indexUid": "s", "q": "boot", "sort": ["price:asc"]},
            ],
        },
    )
    assert [h["price"] for h in answer["hits"]] == [5, 10, 20]
    assert (answer["totalHits"], answer["totalPages"]) == (4, 2)
    assert answer["facetsByIndex"] == {
        "s": {"distribution": {"genre": {"a": 2, "b": 2}}, "stats": {}}
    }
    merged = routes.multi_search(
        engine,
        {
            "federation": {"facetsByIndex": {"s": ["genre"]}, "mergeFacets": {}},
            "queries": [{"indexUid": "s", "q": "shoe"}],
        },
    )
    assert merged["facetDistribution"] == {"genre": {"b": 2}} and "facetsByIndex" not in merged
    with pytest.raises(MeiliError) as err:
        routes.multi_search(
            engine,
            {"federation": {}, "queries": [{"indexUid": "s", "q": "x", "facets": ["genre"]}]},
        )
    assert err.value.code == "invalid_multi_search_query_facets"


def test_settings_changes_reindex_only_when_the_index_depends_on_them() -> None:
    engine = engine_with("u", DOCS)
    searcher = engine.get_index("u").searcher
    trie = searcher.trie
    engine.update_settings("u", {"filterableAttributes": ["id"]})
    engine.process()
    assert searcher.trie is trie  # filterable attributes do not shape the inverted index
    assert [h["id"] for h in routes.search(engine, "u", {"filter": "id > 2"})["hits"]] == [3, 4]
    engine.update_settings("u", {"searchableAttributes": ["title"]})
    engine.process()
    assert searcher.trie is not trie
    assert [h["id"] for h in routes.search(engine, "u", {"q": "joker"})["hits"]] == []
    assert [h["id"] for h in routes.search(engine, "u", {"q": "gotham"})["hits"]] == [4]


def test_geo_filters_need_geo_filterable_and_select_by_distance_and_box() -> None:
    docs = [
        {"id": 1, "title": "paris", "_geo": {"lat": 48.8566, "lng": 2.3522}},
        {"id": 2, "title": "lyon", "_geo": {"lat": 45.764, "lng": 4.8357}},
        {"id": 3, "title": "nowhere"},
    ]
    searcher = searcher_with(docs, filterableAttributes=["_geo"])
    assert titles(searcher, "", filter="_geoRadius(48.85, 2.35, 5000)") == ["paris"]
    assert titles(searcher, "", filter="_geoBoundingBox([50, 5], [45, 2])") == ["paris", "lyon"]
    assert titles(searcher, "", filter="NOT _geoRadius(48.85, 2.35, 5000)") == ["lyon", "nowhere"]
    with pytest.raises(MeiliError) as err:
        run_search(searcher_with(docs), SearchRequest(filter="_geoRadius(1, 2, 3)"))
    assert err.value.message.startswith("Attribute `_geo` is not filterable.")
