"""Any input gets an answer or a Meilisearch error, never an exception of another kind (a 500)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from miroir.core import filters as f
from miroir.core.errors import MeiliError
from miroir.devnode import search_routes as routes
from miroir.meili import params as params_table

from .helpers import engine_with

ENGINE = engine_with(
    "r",
    [
        {"id": 1, "title": "Batman Returns", "tags": ["a", "b"], "n": 3, "o": {"p": None}},
        {"id": 2, "title": 'Élan "quoted" -minus', "tags": [], "n": 2.5, "o": {"p": "x"}},
    ],
    filterableAttributes=["tags", "n", "o"],
    sortableAttributes=["n"],
)
json_scalars = (
    st.none() | st.booleans() | st.integers(-3, 30) | st.floats(-2, 2) | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=2)
    ),
    max_leaves=6,
)
KEYS = list(params_table.SEARCH) + ["unknown"]
bodies = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=4)
PIECES = list("ab -\"'()=<>![],.é\\_") + [
    "AND",
    " OR ",
    "NOT ",
    "IN",
    "TO",
    " n",
    "tags",
    " IS ",
    "EXISTS",
    "_geoRadius(",
    "1",
]
texty = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


def _call(function, *args) -> None:
    try:
        function(*args)
    except MeiliError as error:
        body = error.body()
        assert set(body) == {"message", "code", "type", "link"}
        assert error.status < 500


@given(bodies)
def test_random_search_bodies_never_raise_anything_but_meili_errors(body) -> None:
    _call(routes.search, ENGINE, "r", body)


@given(texty, texty)
def test_random_queries_and_filters_never_raise_anything_but_meili_errors(q, filter_expr) -> None:
    _call(
        routes.search,
        ENGINE,
        "r",
        {
            "q": q,
            "filter": filter_expr,
            "facets": ["*"],
            "attributesToHighlight": ["*"],
            "attributesToCrop": ["*"],
            "showMatchesPosition": True,
        },
    )


@given(texty)
def test_random_filter_text_parses_or_fails_with_a_position(expression) -> None:
    try:
        f.parse_filter(expression)
    except MeiliError as error:
        first_line, _, last_line = error.message.rpartition("\n")
        assert first_line
        columns, _, source = last_line.partition(" ")
        start, _, end = columns.partition(":")
        assert int(start) <= int(end) and source == expression


@given(st.dictionaries(st.sampled_from(["queries", "federation", "x"]), json_values, max_size=2))
def test_random_multi_search_bodies(body) -> None:
    _call(routes.multi_search, ENGINE, body)


@given(
    st.dictionaries(
        st.sampled_from(list(params_table.FACET_SEARCH) + ["x"]), json_values, max_size=3
    )
)
def test_random_facet_search_bodies(body) -> None:
    _call(routes.facet_search, ENGINE, "r", body)
