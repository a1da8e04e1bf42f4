"""Meilisearch's read parameters as tables: search, multi-search, facet search, documents.

Theory of operation
-------------------
Every parameter a read route takes is one `Param` row: its wire name, its `Kind` (what JSON
value it must hold), its default, the error code of a bad value, and whether a GET query string
may carry it. A kind knows two things:

- how to check a JSON body's value, worded as Meilisearch's deserr words it
  (``Invalid value type at `.limit`: expected a positive integer, but found a string: `"5"` ``);
- how to read a query-string value into the JSON value the same parameter would have in a body,
  worded as Meilisearch words a bad query parameter
  (``Invalid value in parameter `limit`: could not parse `x` as a positive integer``).

A GET route is read into the equivalent body first (`search_body_from_query`,
`documents_body_from_query`), then checked as a body, exactly as a node does it. Rules that are
about a whole request rather than one value (a federated query may not paginate, `facetName` is
required) are written out below the tables, one function per route.

Checks accept or refuse; they never rewrite. A body that passes is returned as it came, so the
proxy forwards exactly what the client sent, and `value_of` reads a parameter with its default.
`null` means "the default" for every parameter.

Who calls this: the proxy, before any node is asked (so a bad request is refused in
Meilisearch's words and costs no node call), and the devnode (the single-node reference), so the
two answer a bad parameter with the same bytes. It never looks at an index: whether an
attribute is filterable or sortable, or an index exists, is the node's verdict.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from miroir.core.errors import MeiliError
from miroir.core.search_plan import parse_sort
from miroir.meili import deserr

# ---- kinds ------------------------------------------------------------------------------------

BodyCheck = Callable[[str, str, Any], None]  # (code, path, value) -> None or raise
QueryRead = Callable[[str, str, str], Any]  # (code, name, text) -> the body's value


@dataclass(frozen=True, slots=True)
class Kind:
    """What one parameter's value must be, in a JSON body and in a query string."""

    name: str
    check: BodyCheck
    read: QueryRead


def _text(_code: str, _name: str, text: str) -> str:
    return text


def _split(_code: str, _name: str, text: str) -> list[str]:
    """Search's comma lists: `a,b` -> ["a", "b"], empty -> []."""
    return [] if text == "" else text.split(",")


def _names(_code: str, _name: str, text: str) -> list[str]:
    """The documents routes' comma lists: items trimmed, empty items dropped."""
    return [item.strip() for item in text.split(",") if item.strip()]


def _anything(code: str, path: str, value: Any) -> None:
    """Passed on as it is: the node that reads it is the judge (vectors, locales...)."""


def _check_filter(code: str, path: str, value: Any) -> None:
    if not isinstance(value, (str, list)):
        raise deserr.type_error(code, path, "a string or an array", value)


def _check_score(code: str, path: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise deserr.type_error(code, path, "a number", value)
    if not 0.0 <= value <= 1.0:
        raise deserr.invalid_value(
            code,
            path,
            "the value of `rankingScoreThreshold` is invalid, expected a float between "
            "`0.0` and `1.0`.",
        )


def _read_score(code: str, name: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise deserr.bad_parameter(code, name, f"could not parse `{text}` as a float") from None


def _check_sort(code: str, path: str, value: Any) -> None:
    parse_sort(deserr.body_string_list(code, path, value))  # its syntax error is Meilisearch's


def _check_document_ids(code: str, path: str, value: Any) -> None:
    if not isinstance(value, list):
        raise deserr.type_error(code, path, "an array", value)
    for position, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise deserr.type_error(code, f"{path}[{position}]", "a string", item)


def _check_object(code: str, path: str, value: Any) -> None:
    deserr.body_object(code, path, value)


def _enum(*allowed: str) -> Kind:
    def check(code: str, path: str, value: Any) -> None:
        if deserr.body_string(code, path, value) not in allowed:
            raise deserr.unknown_value(code, path, value, allowed)

    return Kind(f"one of {', '.join(allowed)}", check, _text)


USIZE = Kind("a positive integer", deserr.body_usize, deserr.parse_query_usize)
BOOL = Kind("a boolean", deserr.body_bool, deserr.parse_query_bool)
STRING = Kind("a string", deserr.body_string, _text)
STRINGS = Kind("an array of strings", deserr.body_string_list, _split)
SORT = Kind("an array of `field:asc|desc`", _check_sort, _split)
FILTER = Kind("a string or an array", _check_filter, _text)
SCORE = Kind("a number between 0.0 and 1.0", _check_score, _read_score)
MATCHING_STRATEGY = _enum("last", "all", "frequency")
ANY = Kind("anything (the node decides)", _anything, _text)
ANY_LIST = Kind("anything (the node decides)", _anything, _split)
OBJECT = Kind("an object", _check_object, _text)
FIELD_NAMES = Kind("an array of strings", deserr.body_string_list, _names)
DOCUMENT_IDS = Kind("an array of strings or integers", _check_document_ids, _names)


@dataclass(frozen=True, slots=True)
class Param:
    """One parameter of one route: wire name, kind, default, error code, GET-able."""

    name: str
    kind: Kind
    default: Any
    code: str
    in_query: bool = True


Table = Mapping[str, Param]


def _table(*params: Param) -> dict[str, Param]:
    return {param.name: param for param in params}


def _search(name: str, kind: Kind, default: Any = None, *, in_query: bool = True) -> Param:
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name)
    return Param(name, kind, default, f"invalid_search_{snake}", in_query)


# ---- the tables -------------------------------------------------------------------------------

# POST /indexes/{uid}/search, in Meilisearch's order (its "expected one of" lists them so).
SEARCH: dict[str, Param] = _table(
    _search("q", STRING),
    _search("vector", ANY),
    _search("media", ANY, in_query=False),
    _search("offset", USIZE, 0),
    _search("limit", USIZE, 20),
    _search("page", USIZE, 1),
    _search("hitsPerPage", USIZE, 20),
    _search("attributesToRetrieve", STRINGS, ["*"]),
    _search("retrieveVectors", BOOL, False),
    _search("attributesToCrop", STRINGS, []),
    _search("cropLength", USIZE, 10),
    _search("attributesToHighlight", STRINGS, []),
    _search("showMatchesPosition", BOOL, False),
    _search("showRankingScore", BOOL, False),
    _search("showRankingScoreDetails", BOOL, False),
    _search("showPerformanceDetails", BOOL, False),
    _search("filter", FILTER),
    _search("sort", SORT, []),
    _search("distinct", STRING),
    _search("facets", STRINGS),
    _search("highlightPreTag", STRING, "<em>"),
    _search("highlightPostTag", STRING, "</em>"),
    _search("cropMarker", STRING, "…"),
    _search("matchingStrategy", MATCHING_STRATEGY, "last"),
    _search("attributesToSearchOn", STRINGS),
    _search("rankingScoreThreshold", SCORE),
    _search("locales", ANY_LIST),
    _search("personalize", ANY, in_query=False),
    _search("hybrid", ANY, in_query=False),  # GET: hybridEmbedder, hybridSemanticRatio
    _search("useNetwork", BOOL, False),
)

# One query of POST /multi-search: a search plus the index it asks and its federation options.
MULTI_SEARCH_QUERY: dict[str, Param] = {
    **SEARCH,
    **_table(
        Param("indexUid", STRING, None, "invalid_index_uid"),
        Param("federationOptions", OBJECT, None, "invalid_multi_search_federation_options"),
    ),
}
MULTI_SEARCH: dict[str, Param] = _table(
    Param("queries", ANY, None, "bad_request"),  # checked query by query below
    Param("federation", OBJECT, None, "invalid_multi_search_federated"),
)
# `federation` of a federated multi-search.
# Meilisearch's `Federation` takes its pagination with the search codes (`invalid_search_limit`).
FEDERATION: dict[str, Param] = _table(
    Param("offset", USIZE, 0, "invalid_search_offset"),
    Param("limit", USIZE, 20, "invalid_search_limit"),
    Param("page", USIZE, 1, "invalid_search_page"),
    Param("hitsPerPage", USIZE, 20, "invalid_search_hits_per_page"),
    Param("facetsByIndex", OBJECT, None, "invalid_multi_search_facets_by_index"),
    Param("mergeFacets", OBJECT, None, "invalid_multi_search_merge_facets"),
    Param("showPerformanceDetails", BOOL, False, "invalid_search_show_performance_details"),
)
MERGE_FACETS: dict[str, Param] = _table(
    Param("maxValuesPerFacet", USIZE, 100, "invalid_multi_search_max_values_per_facet"),
)
FEDERATION_OPTIONS: dict[str, Param] = _table(
    Param("weight", ANY, 1.0, "invalid_multi_search_weight"),  # checked below (its own words)
    Param("remote", ANY, None, "invalid_multi_search_remote"),
    Param("queryPosition", ANY, None, "invalid_multi_search_query_position"),
)

# POST /indexes/{uid}/facet-search. The search part keeps the search codes, as Meilisearch does.
FACET_SEARCH: dict[str, Param] = {
    **_table(
        Param("facetName", STRING, None, "invalid_facet_search_facet_name"),
        Param("facetQuery", STRING, None, "invalid_facet_search_query"),
    ),
    **{name: SEARCH[name] for name in ("q", "filter", "matchingStrategy",
                                        "attributesToSearchOn")},
    **_table(Param("exhaustiveFacetCount", BOOL, False,
                   "invalid_facet_search_exhaustive_facet_count")),
    "rankingScoreThreshold": SEARCH["rankingScoreThreshold"],
    "locales": SEARCH["locales"],
    # Newer Meilisearch (the 1.53 FacetSearchQuery): the node judges vectors and embedders.
    "vector": SEARCH["vector"],
    "media": SEARCH["media"],
    "hybrid": SEARCH["hybrid"],
    "useNetwork": SEARCH["useNetwork"],
}

# POST /indexes/{uid}/documents/fetch, and GET /indexes/{uid}/documents (the same, as a query).
DOCUMENTS: dict[str, Param] = _table(
    Param("offset", USIZE, 0, "invalid_document_offset"),
    Param("limit", USIZE, 20, "invalid_document_limit"),
    Param("fields", FIELD_NAMES, None, "invalid_document_fields"),
    Param("retrieveVectors", BOOL, False, "invalid_document_retrieve_vectors"),
    Param("sort", FIELD_NAMES, None, "invalid_document_sort"),
    Param("ids", DOCUMENT_IDS, None, "invalid_document_ids"),
    Param("filter", FILTER, None, "invalid_document_filter"),
)


# ---- reading and checking ---------------------------------------------------------------------


def value_of(body: Mapping[str, Any], param: Param) -> Any:
    """The parameter's value in a checked body, or its default (a copy, when mutable)."""
    value = body.get(param.name)
    if value is not None:
        return value
    default = param.default
    return list(default) if isinstance(default, list) else default


def check_body(body: Any, table: Table, *, path: str = "", code: str = "bad_request") -> dict:
    """`body` if it is an object whose every field is in `table` and holds a value of its kind.

    The first refusal is raised: a value that is not an object (`code`), an unknown field
    (`bad_request`), a bad value (the parameter's own code). `null` is every parameter's default.
    """
    body = deserr.body_object(code, path, body)
    for name, value in body.items():
        param = table.get(name)
        if param is None:
            raise deserr.unknown_field("bad_request", path, name, table)
        if value is not None:
            param.kind.check(param.code, f"{path}.{name}", value)
    return body


def query_params(pairs: Iterable[tuple[str, str]], allowed: Iterable[str]) -> dict[str, str]:
    """A query string's parameters, the last value of a repeated one winning; an unknown one is
    Meilisearch's `bad_request`."""
    allowed = tuple(allowed)
    found: dict[str, str] = {}
    for name, text in pairs:
        if name not in allowed:
            raise deserr.unknown_parameter(name, allowed)
        found[name] = text
    return found


def body_from_query(pairs: Iterable[tuple[str, str]], table: Table) -> dict[str, Any]:
    """A GET query string as the body the POST route would take (then check it as a body)."""
    allowed = tuple(name for name, param in table.items() if param.in_query)
    return {
        name: table[name].kind.read(table[name].code, name, text)
        for name, text in query_params(pairs, allowed).items()
    }


# ---- the routes -------------------------------------------------------------------------------


def check_search(body: Any, *, path: str = "", table: Table = SEARCH) -> dict[str, Any]:
    """POST /indexes/{uid}/search's body, checked (see `check_body`)."""
    return check_body(body, table, path=path)


_GET_ONLY = ("hybridEmbedder", "hybridSemanticRatio")


def search_body_from_query(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """GET /indexes/{uid}/search's query string as the equivalent POST body, checked.

    `vector` is a comma list of floats; `hybridEmbedder` and `hybridSemanticRatio` make the
    body's `hybrid` object, as Meilisearch reads them."""
    pairs = list(pairs)
    hybrid: dict[str, Any] = {}
    rest = []
    for name, text in pairs:
        if name == "hybridEmbedder":
            hybrid["embedder"] = text
        elif name == "hybridSemanticRatio":
            code = "invalid_search_semantic_ratio"
            try:
                ratio = float(text)
            except ValueError:
                raise deserr.bad_parameter(code, name, f"could not parse `{text}` as a float") from None
            if not 0.0 <= ratio <= 1.0:
                raise deserr.bad_parameter(
                    code, name, "the value of `semanticRatio` is invalid, expected a float "
                    "between `0.0` and `1.0`.")
            hybrid["semanticRatio"] = ratio
        elif name == "vector":
            try:
                vector = [float(part) for part in text.split(",") if part.strip()]
            except ValueError:
                raise deserr.bad_parameter(
                    "invalid_search_vector", name, f"could not parse `{text}` as a list of floats"
                ) from None
            hybrid.setdefault("_vector", vector)
        else:
            rest.append((name, text))
    allowed = tuple(name for name, param in SEARCH.items() if param.in_query) + _GET_ONLY
    query_params(pairs, allowed)  # an unknown parameter is refused with every allowed name
    body = body_from_query(rest, SEARCH)
    if "_vector" in hybrid:
        body["vector"] = hybrid.pop("_vector")
    if hybrid:
        body["hybrid"] = hybrid
    return check_search(body)


def _federated_query_rules(query: Mapping[str, Any], path: str, position: int) -> None:
    # Refused only when not null, in this order (Meilisearch's has_pagination).
    paging = [name for name in ("offset", "limit", "page", "hitsPerPage")
              if query.get(name) is not None]
    if paging:
        raise MeiliError(
            "invalid_multi_search_query_pagination",
            f"Inside `{path}`: Using pagination options is not allowed in federated queries."
            f"\n - Hint: remove `{paging[0]}` from query #{position} or remove `federation` "
            "from the request"
            "\n - Hint: pass `federation.limit` and `federation.offset` for pagination in "
            "federated search",
        )
    if query.get("facets"):  # null and [] are tolerated (has_facets)
        raise MeiliError(
            "invalid_multi_search_query_facets",
            f"Inside `{path}`: Using facet options is not allowed in federated queries.\n"
            f" - Hint: remove `facets` from query #{position} or remove `federation` from "
            "the request\n - Hint: pass `federation.facetsByIndex.<index>: [...]` for "
            "facets in federated search",
        )
    options = query.get("federationOptions")
    if options is None:
        return
    options_path = f"{path}.federationOptions"
    check_body(options, FEDERATION_OPTIONS, path=options_path,
               code="invalid_multi_search_federation_options")
    weight = options.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise MeiliError(
            "invalid_multi_search_weight",
            f"Invalid value at `{options_path}.weight`: the value of `weight` is invalid, "
            "expected a positive float (>= 0.0).",
        )


def _check_federation(federation: Any) -> None:
    federation = check_body(federation, FEDERATION, path=".federation",
                            code="invalid_multi_search_federated")
    by_index = federation.get("facetsByIndex")
    for uid, names in (by_index or {}).items():
        if names is not None:
            deserr.body_string_list("invalid_multi_search_facets_by_index",
                                    f".federation.facetsByIndex.{uid}", names)
    merge = federation.get("mergeFacets")
    if merge is not None:
        check_body(merge, MERGE_FACETS, path=".federation.mergeFacets",
                   code="invalid_multi_search_merge_facets")


def check_multi_search(body: Any) -> dict[str, Any]:
    """POST /multi-search's body, checked: every query as a search (with `indexUid`), plain or
    federated, and the federation's own parameters."""
    body = check_body(body, MULTI_SEARCH)
    queries = body.get("queries")
    if queries is None:
        raise deserr.missing_field("bad_request", "", "queries")
    if not isinstance(queries, list):
        raise deserr.type_error("bad_request", ".queries", "an array", queries)
    federated = body.get("federation") is not None
    if federated:
        _check_federation(body["federation"])
    for position, query in enumerate(queries):
        path = f".queries[{position}]"
        if not isinstance(query, dict):
            raise deserr.type_error("bad_request", path, "an object", query)
        if query.get("indexUid") is None:
            raise deserr.missing_field("missing_index_uid", path, "indexUid")
        check_search(query, path=path, table=MULTI_SEARCH_QUERY)
        if federated:
            _federated_query_rules(query, path, position)
        elif query.get("federationOptions") is not None:
            raise MeiliError(
                "invalid_multi_search_federation_options",
                f"Inside `{path}`: Using `federationOptions` is not allowed in a non-federated "
                f"search.\n - Hint: remove `federationOptions` from query #{position} or add "
                "`federation` to the request.",
            )
    return body


def check_facet_search(body: Any) -> dict[str, Any]:
    """POST /indexes/{uid}/facet-search's body, checked; `facetName` is required."""
    body = check_body(body, FACET_SEARCH)
    if body.get("facetName") is None:
        raise deserr.missing_field("missing_facet_search_facet_name", "", "facetName")
    return body


def check_documents_fetch(body: Any) -> dict[str, Any]:
    """POST /indexes/{uid}/documents/fetch's body, checked."""
    return check_body(body, DOCUMENTS)


def documents_body_from_query(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """GET /indexes/{uid}/documents's query string as the equivalent fetch body, checked (an
    empty `filter` is no filter)."""
    body = body_from_query(pairs, DOCUMENTS)
    if body.get("filter") == "":
        del body["filter"]
    return check_documents_fetch(body)


# ---- similar ----------------------------------------------------------------------------------


def _similar_code(name: str) -> str:
    return "invalid_similar_" + "".join("_" + c.lower() if c.isupper() else c for c in name)


SIMILAR_FIELDS = (
    "id",
    "offset",
    "limit",
    "filter",
    "embedder",
    "attributesToRetrieve",
    "retrieveVectors",
    "showRankingScore",
    "showRankingScoreDetails",
    "showPerformanceDetails",
    "rankingScoreThreshold",
)


def similar_params_from_query(query: list[tuple[str, str]]) -> dict[str, Any]:
    """A GET /similar query string as the equivalent POST body."""
    body: dict[str, Any] = {}
    for name, value in query:
        if name not in SIMILAR_FIELDS:
            raise deserr.unknown_parameter(name, SIMILAR_FIELDS)
        code = _similar_code(name)
        if name in ("offset", "limit"):
            body[name] = deserr.parse_query_usize(code, name, value)
        elif name in ("retrieveVectors", "showRankingScore", "showRankingScoreDetails",
                      "showPerformanceDetails"):
            body[name] = deserr.parse_query_bool(code, name, value)
        elif name == "attributesToRetrieve":
            body[name] = value.split(",")
        elif name == "rankingScoreThreshold":
            try:
                body[name] = float(value)
            except ValueError:
                raise deserr.bad_parameter(code, name, f"could not parse `{value}` as a float") from None
        else:
            body[name] = value
    return body


def check_similar(body: Any) -> dict[str, Any]:
    """A POST /similar body checked as Meilisearch checks it (codes `invalid_similar_*`)."""
    body = deserr.body_object("bad_request", "", body)
    deserr.check_fields(body, SIMILAR_FIELDS, path="", code="bad_request")

    def code(name: str) -> str:
        return _similar_code(name)

    if body.get("id") is None:
        raise deserr.missing_field("invalid_similar_id", "", "id")
    doc_id = body["id"]
    if isinstance(doc_id, int) and not isinstance(doc_id, bool):
        doc_id = str(doc_id)
    if not isinstance(doc_id, str) or not doc_id or not re.fullmatch(r"[A-Za-z0-9_-]{1,511}", doc_id):
        raise MeiliError(
            "invalid_similar_id",
            "Invalid value at `.id`: the value of `id` is invalid. A document identifier can be "
            "of type integer or string, only composed of alphanumeric characters (a-z A-Z 0-9), "
            "hyphens (-) and underscores (_), and can not be more than 511 bytes.",
        )
    if body.get("embedder") is None:
        raise deserr.missing_field("invalid_similar_embedder", "", "embedder")
    checked = {
        "id": doc_id,
        "embedder": deserr.body_string("invalid_similar_embedder", ".embedder", body["embedder"]),
        "offset": 0 if body.get("offset") is None
        else deserr.body_usize(code("offset"), ".offset", body["offset"]),
        "limit": 20 if body.get("limit") is None
        else deserr.body_usize(code("limit"), ".limit", body["limit"]),
        "filter": body.get("filter"),
    }
    if checked["filter"] is not None and not isinstance(checked["filter"], str | list):
        raise deserr.type_error(code("filter"), ".filter", "a string or an array", checked["filter"])
    for name in ("retrieveVectors", "showRankingScore", "showRankingScoreDetails",
                 "showPerformanceDetails"):
        checked[name] = (False if body.get(name) is None
                         else deserr.body_bool(code(name), f".{name}", body[name]))
    retrieve = body.get("attributesToRetrieve")
    checked["attributesToRetrieve"] = (
        None if retrieve is None
        else deserr.body_string_list(code("attributesToRetrieve"), ".attributesToRetrieve", retrieve)
    )
    threshold = body.get("rankingScoreThreshold")
    if threshold is not None:
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise deserr.type_error(code("rankingScoreThreshold"), ".rankingScoreThreshold",
                                    "a number", threshold)
        if not 0.0 <= threshold <= 1.0:
            raise deserr.invalid_value(
                code("rankingScoreThreshold"), ".rankingScoreThreshold",
                "the value of `rankingScoreThreshold` is invalid, expected a float between "
                "`0.0` and `1.0`.")
    checked["rankingScoreThreshold"] = threshold
    return checked


# ---- document writes: their query parameters --------------------------------------------------
# Meilisearch's `UpdateDocumentsQuery` (additions) and `CustomMetadataQuery` (every delete), both
# denying unknown parameters. `customMetadata` is any string, kept on the task.

DOCUMENT_WRITE_PARAMS = ("primaryKey", "csvDelimiter", "customMetadata", "skipCreation")
DOCUMENT_DELETE_PARAMS = ("customMetadata",)


def parse_skip_creation(text: str) -> bool:
    """`?skipCreation=` as Meilisearch's `from_string_skip_creation` reads it: `true` or
    `false`, ASCII case ignored, else `invalid_skip_creation` with its message."""
    if text.lower() == "true":
        return True
    if text.lower() == "false":
        return False
    raise MeiliError(
        "invalid_skip_creation", f"skipCreation must be either `true` or `false`. Found: `{text}`"
    )
