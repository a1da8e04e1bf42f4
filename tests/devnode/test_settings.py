"""Laws of settings validation and application (pure: no engine)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.devnode import settings as s
from miroir.meili import settings as contract

names = st.text("abcdef.*_", min_size=1, max_size=6)
name_lists = st.lists(names, max_size=4)

setting_values = {
    "displayedAttributes": name_lists,
    "searchableAttributes": name_lists,
    "filterableAttributes": st.lists(
        names | st.builds(lambda p: {"attributePatterns": p}, name_lists), max_size=3
    ),
    "sortableAttributes": name_lists,
    "rankingRules": st.lists(
        st.sampled_from(sorted(contract.BUILTIN_RANKING_RULES)) | names.map(lambda n: n + ":desc"),
        max_size=5,
    ),
    "stopWords": name_lists,
    "nonSeparatorTokens": name_lists,
    "separatorTokens": name_lists,
    "dictionary": name_lists,
    "synonyms": st.dictionaries(names, name_lists, max_size=3),
    "distinctAttribute": names,
    "proximityPrecision": st.sampled_from(["byWord", "byAttribute"]),
    "typoTolerance": st.fixed_dictionaries(
        {},
        optional={
            "enabled": st.booleans(),
            "disableOnWords": name_lists,
            "disableOnNumbers": st.booleans(),
        },
    ),
    "faceting": st.fixed_dictionaries(
        {},
        optional={
            "maxValuesPerFacet": st.integers(0, 500),
            "sortFacetValuesBy": st.dictionaries(
                names, st.sampled_from(["alpha", "count"]), max_size=2
            ),
        },
    ),
    "pagination": st.fixed_dictionaries({}, optional={"maxTotalHits": st.integers(0, 10**6)}),
    "embedders": st.just({}),
    "searchCutoffMs": st.integers(0, 10**6),
    "localizedAttributes": st.just([{"attributePatterns": ["*_ja"], "locales": ["jpn"]}]),
    "facetSearch": st.booleans(),
    "prefixSearch": st.sampled_from(["indexingTime", "disabled"]),
}
patches = st.dictionaries(st.sampled_from(s.SETTINGS_KEYS), st.none(), max_size=4).flatmap(
    lambda resets: st.fixed_dictionaries(
        {}, optional={key: setting_values[key] for key in s.SETTINGS_KEYS if key not in resets}
    ).map(lambda values: {**resets, **values})
)


@given(patches)
def test_applied_settings_keep_every_key_in_order_and_are_idempotent(body):
    patch = s.validate_patch(body)
    once = s.apply_patch(s.default_settings(), patch)
    assert tuple(once) == s.SETTINGS_KEYS
    assert s.apply_patch(once, patch) == once


@given(patches)
def test_what_get_shows_is_a_valid_write_that_changes_nothing(body):
    shown = s.apply_patch(s.default_settings(), s.validate_patch(body))
    assert s.apply_patch(shown, s.validate_patch(shown)) == shown


@given(patches)
def test_a_full_reset_gives_the_defaults(body):
    shown = s.apply_patch(s.default_settings(), s.validate_patch(body))
    assert s.apply_patch(shown, dict.fromkeys(s.SETTINGS_KEYS)) == s.default_settings()


def test_defaults_match_the_reference():
    defaults = s.default_settings()
    assert len(defaults) == 20
    assert defaults["rankingRules"] == [
        "words",
        "typo",
        "proximity",
        "attributeRank",
        "sort",
        "wordPosition",
        "exactness",
    ]
    assert defaults["typoTolerance"]["minWordSizeForTypos"] == {"oneTypo": 5, "twoTypos": 9}
    assert defaults["faceting"] == {"maxValuesPerFacet": 100, "sortFacetValuesBy": {"*": "alpha"}}


# Wrong types for every settings field, and unknown fields: key -> bad value.
WRONG_TYPES = {
    "displayedAttributes": "title",
    "searchableAttributes": [1],
    "filterableAttributes": {"a": 1},
    "sortableAttributes": True,
    "rankingRules": ["wordz"],
    "stopWords": "the",
    "nonSeparatorTokens": [None],
    "separatorTokens": 3,
    "dictionary": {"x": 1},
    "synonyms": ["a"],
    "distinctAttribute": 5,
    "proximityPrecision": "byLetter",
    "typoTolerance": {"enabled": "yes"},
    "faceting": {"maxValuesPerFacet": -1},
    "pagination": {"maxTotalHits": "many"},
    "embedders": {"default": {"source": "openAi", "model": "text-embedding-3-small"}},
    "searchCutoffMs": 1.5,
    "localizedAttributes": [{"locales": ["fra"]}],
    "facetSearch": "true",
    "prefixSearch": "sometimes",
}


@pytest.mark.parametrize("key", s.SETTINGS_KEYS)
def test_every_field_rejects_a_wrong_value_with_its_own_code(key):
    with pytest.raises(MeiliError) as caught:
        s.validate_patch({key: WRONG_TYPES[key]})
    assert (caught.value.code, caught.value.status) == (contract.error_code(key), 400)


def test_messages_follow_meilisearch_wording():
    with pytest.raises(MeiliError) as caught:
        s.validate_patch({"displayedAttributes": "title"})
    assert caught.value.message == (
        'Invalid value type at `.displayedAttributes`: expected an array, but found a string: `"title"`'
    )
    with pytest.raises(MeiliError) as caught:
        s.validate_patch({"typoTolerance": {"oneTypo": 3}})
    assert caught.value.code == "invalid_settings_typo_tolerance"
    assert caught.value.message.startswith("Unknown field `oneTypo` inside `.typoTolerance`")
    with pytest.raises(MeiliError) as caught:
        s.validate_patch({"rankingRule": []})
    assert caught.value.code == "bad_request"
    assert caught.value.message.startswith(
        "Unknown field `rankingRule`: expected one of `displayedAttributes`"
    )


def test_get_shape_normalisation():
    shown = s.apply_patch(
        s.default_settings(),
        s.validate_patch(
            {
                "displayedAttributes": ["title", "*"],
                "sortableAttributes": ["b", "a", "b"],
                "synonyms": {"z": ["y"], "a": ["b"]},
                "faceting": {"sortFacetValuesBy": {"genre": "count"}},
                "filterableAttributes": [{"attributePatterns": ["g*"]}],
            }
        ),
    )
    assert shown["displayedAttributes"] == ["*"]
    assert shown["sortableAttributes"] == ["a", "b"]
    assert list(shown["synonyms"]) == ["a", "z"]
    assert shown["faceting"]["sortFacetValuesBy"] == {"*": "alpha", "genre": "count"}
    assert shown["filterableAttributes"] == [
        {
            "attributePatterns": ["g*"],
            "features": {"facetSearch": False, "filter": {"equality": True, "comparison": False}},
        }
    ]
