"""Laws of `miroir.core.filters`: printing round-trips, evaluation agrees with oracles, errors
have Meilisearch's words and positions."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from miroir.core import filters as f
from miroir.core.errors import MeiliError
from miroir.devnode.search.facets import FacetIndex

# -- strategies ---------------------------------------------------------------------------------

FIELDS = ["color", "size", "tags", "a.b", "dog race", "OR"]
names = st.sampled_from(FIELDS) | st.text(min_size=1, max_size=6)
values = (
    st.sampled_from(
        [
            "red",
            "Blue",
            "10",
            "2.5",
            "-3",
            "true",
            "",
            "a b",
            'q"uote',
            "back\\slash",
            "NOT",
            "élan",
        ]
    )
    | st.text(max_size=6)
    | st.integers(-20, 20).map(str)
)


def leaves_strategy() -> st.SearchStrategy[f.Node]:
    ops = st.sampled_from(f.COMPARISON_OPERATORS)
    return st.one_of(
        st.builds(lambda n, o, v: f.Compare(n, op=o, value=v), names, ops, values),
        st.builds(lambda n, a, b: f.Between(n, low=a, high=b), names, values, values),
        st.builds(f.Exists, names),
        st.builds(f.IsNull, names),
        st.builds(f.IsEmpty, names),
        st.builds(lambda n, vs: f.In(n, values=tuple(vs)), names, st.lists(values, max_size=3)),
    )


def _and(children: list[f.Node]) -> f.Node:
    return f.And(tuple(children))


def _or(children: list[f.Node]) -> f.Node:
    return f.Or(tuple(children))


trees = st.recursive(
    leaves_strategy(),
    lambda inner: st.one_of(
        inner.map(f.negate),
        st.lists(inner, min_size=2, max_size=3).map(_and),
        st.lists(inner, min_size=2, max_size=3).map(_or),
    ),
    max_leaves=8,
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-20, 20),
    st.sampled_from([2.5, -3.0, 10.0]),
    st.sampled_from(["red", "RED ", "Blue", "10", "2.5", "", "a b", "élan", "Elan"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.just("b"), inner, max_size=1),
    max_leaves=5,
)
documents = st.dictionaries(
    st.sampled_from(["color", "size", "tags", "a", "a.b", "dog race"]), json_values, max_size=4
)

# -- laws ---------------------------------------------------------------------------------------


@given(trees)
@example(f.Compare("x", op="=", value='a\\"b'))
@example(f.Not(f.In("NOT", values=())))
@example(f.Compare("x", op="=", value="\\"))
def test_printing_then_parsing_gives_the_same_tree(tree: f.Node) -> None:
    assert f.parse_filter(f.to_filter_string(tree)) == tree


@given(trees, st.lists(documents, max_size=8))
def test_set_evaluation_equals_per_document_evaluation(tree: f.Node, docs: list[dict]) -> None:
    corpus = dict(enumerate(docs))
    expected = {i for i, doc in corpus.items() if f.matches(tree, doc)}
    assert set(FacetIndex(corpus).evaluate(tree, set(corpus))) == expected


@given(trees, documents)
def test_not_is_complement_and_connectives_are_boolean(tree: f.Node, doc: dict) -> None:
    assert f.matches(f.Not(tree), doc) == (not f.matches(tree, doc))
    pair = (tree, f.Exists("color"))
    assert f.matches(f.And(pair), doc) == all(f.matches(n, doc) for n in pair)
    assert f.matches(f.Or(pair), doc) == any(f.matches(n, doc) for n in pair)


def _oracle_equal(doc_value, value: str) -> bool:
    """Independent spelling of `=` on a scalar: case/space-insensitive text or equal number."""
    if isinstance(doc_value, bool):
        return value.strip().lower() == ("true" if doc_value else "false")
    if isinstance(doc_value, (int, float)):
        try:
            return "_" not in value and float(value) == float(doc_value)
        except ValueError:
            return False
    if isinstance(doc_value, str):
        return doc_value.strip().lower() == value.strip().lower()
    return False


@given(
    st.one_of(st.booleans(), st.integers(-20, 20), st.sampled_from(["red", " Red", "10", "x"])),
    st.sampled_from(["red", "RED", "10", "10.0", "1e1", "true", "x", "y"]),
)
def test_equality_on_a_scalar_matches_the_oracle(doc_value, value: str) -> None:
    doc = {"field": doc_value}
    assert f.matches(f.Compare("field", op="=", value=value), doc) == _oracle_equal(
        doc_value, value
    )
    assert f.matches(f.In("field", values=(value, "zzz")), doc) == _oracle_equal(doc_value, value)
    assert f.matches(f.Compare("field", op="!=", value=value), doc) != _oracle_equal(
        doc_value, value
    )


@given(st.lists(st.integers(-5, 5), max_size=4), st.integers(-5, 5), st.integers(-5, 5))
def test_numeric_to_is_an_inclusive_range_over_any_array_element(xs, low, high) -> None:
    doc = {"n": xs}
    expected = any(low <= x <= high for x in xs)
    assert f.matches(f.Between("n", low=str(low), high=str(high)), doc) == expected


def test_nested_paths_reach_through_objects_and_arrays() -> None:
    doc = {"a": [{"b": 1}, {"b": [2, "Three"]}], "c.d": "flat"}
    assert f.matches(f.parse_filter("a.b = 2"), doc)
    assert f.matches(f.parse_filter("a.b = three"), doc)
    assert f.matches(f.parse_filter("c.d = FLAT"), doc)
    assert not f.matches(f.parse_filter("a.b = 4"), doc)
    assert f.matches(f.parse_filter("a.b EXISTS AND x NOT EXISTS"), doc)


def test_null_empty_and_exists() -> None:
    assert f.matches(f.parse_filter("x IS NULL"), {"x": None})
    assert f.matches(f.parse_filter("x EXISTS"), {"x": None})
    assert not f.matches(f.parse_filter("x IS NULL"), {})
    for empty in ("", [], {}):
        assert f.matches(f.parse_filter("x IS EMPTY"), {"x": empty})
    assert f.matches(f.parse_filter("x IS NOT EMPTY"), {"x": [1]})


def test_array_form_is_an_and_of_ors() -> None:
    tree = f.parse_filter_json(["a = 1", ["b = 2", "c = 3"], []])
    assert tree == f.And(
        (
            f.Compare("a", op="=", value="1"),
            f.Or((f.Compare("b", op="=", value="2"), f.Compare("c", op="=", value="3"))),
        )
    )
    assert f.parse_filter_json([" ", []]) is None
    with pytest.raises(MeiliError) as err:
        f.parse_filter_json([1])
    assert err.value.message == (
        "Invalid syntax for the filter parameter: `expected String, [String], found: 1`."
    )


# Messages and positions as Meilisearch's filter-parser snapshot tests give them.
ERRORS = [
    (
        "channel = Ponce = 12",
        "Found unexpected characters at the end of the filter: `= 12`. You "
        "probably forgot an `OR` or an `AND` rule.\n17:21 channel = Ponce = 12",
    ),
    ("channel = 🐻", "Was expecting a value but instead got `🐻`.\n11:12 channel = 🐻"),
    (
        "OR",
        "Was expecting a value but instead got `OR`, which is a reserved keyword. To use `OR` "
        "as a field name or a value, surround it by quotes.\n1:3 OR",
    ),
    (
        "channel = 'ponce",
        "Expression `\\'ponce` is missing the following closing delimiter: "
        "`'`.\n11:17 channel = 'ponce",
    ),
    (
        "channel = mv OR (followers >= 1000",
        "Expression `(followers >= 1000` is missing the "
        "following closing delimiter: `)`.\n17:35 channel = mv OR (followers >= 1000",
    ),
    ("colour IN blue, green]", "Expected `[` after `IN` keyword.\n11:23 colour IN blue, green]"),
    (
        "colour IN [blue, green, 'blue' > 2]",
        "Expected only comma-separated field names inside "
        "`IN[..]` but instead found `> 2]`.\n32:36 colour IN [blue, green, 'blue' > 2]",
    ),
    (
        "colour IN [blue, green",
        "Expected matching `]` after the list of field names given to "
        "`IN[`\n23:23 colour IN [blue, green",
    ),
    (
        "x = EXISTS",
        "Was expecting a value but instead got `EXISTS`, which is a reserved keyword. "
        "To use `EXISTS` as a field name or a value, surround it by quotes.\n5:11 x = EXISTS",
    ),
    (
        "position <= _geoRadius(12, 13, 14)",
        "The `_geoRadius` filter is an operation and can't "
        "be used as a value.\n13:35 position <= _geoRadius(12, 13, 14)",
    ),
    (
        "(" * 50 + "x = 1" + ")" * 50,
        "The filter exceeded the maximum depth limit. Try rewriting "
        "the filter so that it contains fewer nested conditions.\n51:106 "
        + "(" * 50
        + "x = 1"
        + ")" * 50,
    ),
    (
        "channel = Ponce OR",
        f._INVALID_PRIMARY + "but instead got nothing.\n19:19 channel = Ponce OR",
    ),
    ("colour NOT EXIST", f._INVALID_PRIMARY + "at `colour NOT EXIST`.\n1:17 colour NOT EXIST"),
]


@pytest.mark.parametrize(("expression", "message"), ERRORS)
def test_syntax_errors_carry_meilisearchs_message_and_position(expression, message) -> None:
    with pytest.raises(MeiliError) as err:
        f.parse_filter(expression, error_code="invalid_document_filter")
    assert err.value.code == "invalid_document_filter"
    assert err.value.message == message
    assert err.value.status == 400


def test_non_filterable_attribute_is_refused_like_meilisearch() -> None:
    tree = f.parse_filter("genre = horror AND 'dog race' = x")
    with pytest.raises(MeiliError) as err:
        f.ensure_filterable(tree, [])
    assert err.value.message == (
        "Attribute `genre` is not filterable. This index does not have configured filterable "
        "attributes.\n1:6 genre = horror AND 'dog race' = x"
    )
    with pytest.raises(MeiliError) as err:
        f.ensure_filterable(tree, ["genre", "year"])
    assert err.value.message == (
        "Attribute `dog race` is not filterable. Available filterable attribute patterns are: "
        "`genre`, `year`.\n21:29 genre = horror AND 'dog race' = x"
    )
    f.ensure_filterable(tree, ["genre", "dog*"])
    f.ensure_filterable(f.parse_filter("a.b = 1"), ["a"])


def test_comparison_needs_the_feature_in_object_rules() -> None:
    rules = [{"attributePatterns": ["price"], "features": {"filter": {"equality": True}}}]
    f.ensure_filterable(f.parse_filter("price = 3"), rules)
    with pytest.raises(MeiliError):
        f.ensure_filterable(f.parse_filter("price > 3"), rules)


@given(trees, st.sampled_from(("invalid_search_filter", "invalid_document_filter")))
def test_a_remembered_parse_equals_a_fresh_one(tree, error_code):
    from miroir.core import filters_parser

    text = f.to_filter_string(tree)
    first = f.parse_filter(text, error_code=error_code)
    assert first == filters_parser._parse_filter(text, error_code) == tree
    assert f.parse_filter(text, error_code=error_code) == first


def test_a_bad_filter_is_refused_every_time_with_its_own_error_code():
    for code in ("invalid_search_filter", "invalid_document_filter", "invalid_search_filter"):
        with pytest.raises(MeiliError) as refused:
            f.parse_filter("genre = ", error_code=code)
        assert refused.value.code == code
