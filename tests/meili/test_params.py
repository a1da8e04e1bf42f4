"""Meilisearch's parameter tables (`miroir.meili.params`): every bad value is refused with its
own code and deserr's words, never another exception, and GET reads like POST."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.meili import params as p

json_scalars = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
    | st.text(max_size=6)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                               max_size=2),
    max_leaves=6,
)
TABLES = {"search": p.check_search, "facet": p.check_facet_search,
          "documents": p.check_documents_fetch, "multi": p.check_multi_search}


def _refusal_is_meilisearch_shaped(error: MeiliError) -> None:
    assert set(error.body()) == {"message", "code", "type", "link"}
    assert error.status == 400


@given(st.sampled_from(sorted(TABLES)), st.dictionaries(
    st.sampled_from(sorted({*p.SEARCH, *p.FACET_SEARCH, *p.DOCUMENTS, "queries", "federation",
                            "x"})), json_values, max_size=4))
def test_any_body_is_accepted_unchanged_or_refused_as_meilisearch_refuses(route, body):
    before = json.dumps(body, sort_keys=True)
    try:
        checked = TABLES[route](body)
    except MeiliError as error:
        _refusal_is_meilisearch_shaped(error)
    else:
        assert checked is body
    assert json.dumps(body, sort_keys=True) == before  # a check never rewrites


@given(st.sampled_from(sorted(p.SEARCH)), json_values)
def test_a_search_value_is_refused_with_its_own_code_or_accepted(name, value):
    try:
        p.check_search({name: value})
    except MeiliError as error:
        assert error.code == p.SEARCH[name].code, (name, value, error)


@given(st.integers(0, 2**64))
def test_a_query_integer_reads_as_the_body_integer(number):
    assert p.search_body_from_query([("limit", str(number))]) == {"limit": number}
    assert p.documents_body_from_query([("offset", str(number))]) == {"offset": number}


@given(st.lists(st.text("ab,", min_size=1, max_size=4), min_size=1, max_size=3))
def test_a_query_list_reads_as_the_body_list(items):
    text = ",".join(items)
    assert p.search_body_from_query([("facets", text)]) == {"facets": text.split(",")}


# The exact words, as Meilisearch (and the devnode) say them.
WORDING = [
    ({"limit": "5"}, "invalid_search_limit",
     'Invalid value type at `.limit`: expected a positive integer, but found a string: `"5"`'),
    ({"offset": -1}, "invalid_search_offset",
     "Invalid value type at `.offset`: expected a positive integer, but found a negative "
     "integer: `-1`"),
    ({"page": True}, "invalid_search_page",
     "Invalid value type at `.page`: expected a positive integer, but found a boolean: `true`"),
    ({"hitsPerPage": 1.5}, "invalid_search_hits_per_page",
     "Invalid value type at `.hitsPerPage`: expected a positive integer, but found a number: "
     "`1.5`"),
    ({"sort": ["year"]}, "invalid_search_sort",
     "Invalid syntax for the sort parameter: expected expression ending by `:asc` or `:desc`, "
     "found `year`."),
    ({"sort": "year:up"}, "invalid_search_sort",
     'Invalid value type at `.sort`: expected an array, but found a string: `"year:up"`'),
    ({"distinct": 3}, "invalid_search_distinct",
     "Invalid value type at `.distinct`: expected a string, but found a positive integer: `3`"),
    ({"attributesToRetrieve": [1]}, "invalid_search_attributes_to_retrieve",
     "Invalid value type at `.attributesToRetrieve[0]`: expected a string, but found a "
     "positive integer: `1`"),
    ({"showRankingScore": "yes"}, "invalid_search_show_ranking_score",
     'Invalid value type at `.showRankingScore`: expected a boolean, but found a string: '
     '`"yes"`'),
    ({"matchingStrategy": "most"}, "invalid_search_matching_strategy",
     "Unknown value `most` at `.matchingStrategy`: expected one of `last`, `all`, `frequency`"),
    ({"rankingScoreThreshold": 2}, "invalid_search_ranking_score_threshold",
     "Invalid value at `.rankingScoreThreshold`: the value of `rankingScoreThreshold` is "
     "invalid, expected a float between `0.0` and `1.0`."),
    ({"filter": 5}, "invalid_search_filter",
     "Invalid value type at `.filter`: expected a string or an array, but found a positive "
     "integer: `5`"),
]


@pytest.mark.parametrize(("body", "code", "message"), WORDING)
def test_search_refusals_say_what_meilisearch_says(body, code, message):
    with pytest.raises(MeiliError) as raised:
        p.check_search(body)
    assert (raised.value.code, raised.value.message) == (code, message)


def test_an_unknown_field_lists_every_search_parameter_in_meilisearchs_order():
    with pytest.raises(MeiliError) as raised:
        p.check_search({"nope": 1})
    assert raised.value.code == "bad_request"
    assert raised.value.message.startswith("Unknown field `nope`: expected one of `q`, `vector`")
    assert raised.value.message.count("`") == 2 * (len(p.SEARCH) + 1)


def test_get_refusals_are_worded_as_query_parameters():
    with pytest.raises(MeiliError) as raised:
        p.search_body_from_query([("limit", "x")])
    assert raised.value.message == (
        "Invalid value in parameter `limit`: could not parse `x` as a positive integer")
    with pytest.raises(MeiliError) as raised:
        p.search_body_from_query([("media", "x")])  # POST-only
    assert raised.value.code == "bad_request"


def test_federated_queries_may_not_paginate_and_plain_ones_take_no_federation_options():
    with pytest.raises(MeiliError) as raised:
        p.check_multi_search({"federation": {}, "queries": [{"indexUid": "a", "limit": 1}]})
    assert raised.value.code == "invalid_multi_search_query_pagination"
    with pytest.raises(MeiliError) as raised:
        p.check_multi_search({"queries": [{"indexUid": "a", "federationOptions": {}}]})
    assert raised.value.code == "invalid_multi_search_federation_options"
    with pytest.raises(MeiliError) as raised:
        p.check_multi_search({"federation": {},
                              "queries": [{"indexUid": "a", "federationOptions": {"weight": -1}}]})
    assert raised.value.code == "invalid_multi_search_weight"


def test_an_empty_documents_filter_in_a_query_string_is_no_filter():
    assert p.documents_body_from_query([("filter", ""), ("fields", " a, ,b")]) == {
        "fields": ["a", "b"]}
