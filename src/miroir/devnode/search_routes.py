"""The devnode's search endpoints as pure functions the app wires to routes.

Owns: validation of search bodies (POST), GET query strings, multi-search (plain and
federated) and facet-search bodies, with Meilisearch's codes and deserr wording; the response
shapes (offset/limit vs page mode, maxTotalHits capping, facets, per-hit `_formatted`,
`_matchesPosition`, `_rankingScore`, `_rankingScoreDetails`).

Must never: read clocks or randomness (processingTimeMs is 0 and requestUid is derived from the
request, so a simulated run is reproducible), parse HTTP (the app does), or rank (search does).
"""

from __future__ import annotations

import math
import re
import uuid
from typing import Any

import orjson

from miroir.core import filters as f
from miroir.core.errors import MeiliError
from miroir.devnode import deserr
from miroir.devnode.search.execute import SearchRequest, check_facets, facet_counts, run_search
from miroir.devnode.search.federation import FederatedHit
from miroir.devnode.search.federation import ordered as federated_order
from miroir.devnode.search.formatting import (
    Matcher,
    formatted,
    matches_position,
    select_attributes,
)
from miroir.devnode.search.text import normalize_word

SEARCH_FIELDS = (
    "q",
    "vector",
    "media",
    "offset",
    "limit",
    "page",
    "hitsPerPage",
    "attributesToRetrieve",
    "retrieveVectors",
    "attributesToCrop",
    "cropLength",
    "attributesToHighlight",
    "showMatchesPosition",
    "showRankingScore",
    "showRankingScoreDetails",
    "showPerformanceDetails",
    "filter",
    "sort",
    "distinct",
    "facets",
    "highlightPreTag",
    "highlightPostTag",
    "cropMarker",
    "matchingStrategy",
    "attributesToSearchOn",
    "rankingScoreThreshold",
    "locales",
    "personalize",
    "hybrid",
    "useNetwork",
)
_NAMESPACE = uuid.UUID("6f1c5a56-8c1e-4d55-9a43-3c1f0c6b7e21")
_SORT_EXPRESSION = re.compile(r"^(.+):(asc|desc)$")


def _code(name: str) -> str:
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
    return f"invalid_search_{snake}"


def _request_uid(*parts: Any) -> str:
    return str(uuid.uuid5(_NAMESPACE, orjson.dumps(parts, option=orjson.OPT_SORT_KEYS).decode()))


# ----------------------------------------------------------------------------- validation


class SearchParams:
    """A validated search request (body keys in camelCase, as Meilisearch takes them)."""

    def __init__(
        self,
        body: Any,
        *,
        path: str = "",
        federated: bool = False,
        allowed: tuple[str, ...] = SEARCH_FIELDS,
    ) -> None:
        body = deserr.body_object("bad_request", path, body)
        deserr.check_fields(body, allowed, path=path, code="bad_request")

        def at(key: str) -> str:
            return f"{path}.{key}"

        get = body.get
        q = get("q")
        self.q: str | None = None if q is None else deserr.body_string(_code("q"), at("q"), q)
        self.offset = self._usize(body, "offset", 0, at)
        self.limit = self._usize(body, "limit", 20, at)
        self.page = None if get("page") is None else self._usize(body, "page", 1, at)
        self.hits_per_page = (
            None if get("hitsPerPage") is None else self._usize(body, "hitsPerPage", 20, at)
        )
        self.page_mode = self.page is not None or self.hits_per_page is not None
        paging = [k for k in ("limit", "offset", "page", "hitsPerPage") if k in body]
        if federated and paging:
            position = path.rpartition("[")[2].rstrip("]")
            raise MeiliError(
                "invalid_multi_search_query_pagination",
                f"Inside `{path}`: Using pagination options is not allowed in federated queries."
                f"\n - Hint: remove `{paging[0]}` from query #{position} or remove `federation` "
                "from the request"
                "\n - Hint: pass `federation.limit` and `federation.offset` for pagination in "
                "federated search",
            )
        self.attributes_to_retrieve = self._strings(body, "attributesToRetrieve", at) or ["*"]
        self.attributes_to_crop = self._strings(body, "attributesToCrop", at) or []
        self.crop_length = self._usize(body, "cropLength", 10, at)
        self.attributes_to_highlight = self._strings(body, "attributesToHighlight", at) or []
        self.show_matches_position = self._bool(body, "showMatchesPosition", at)
        self.show_ranking_score = self._bool(body, "showRankingScore", at)
        self.show_ranking_score_details = self._bool(body, "showRankingScoreDetails", at)
        self._bool(body, "showPerformanceDetails", at)
        self._bool(body, "retrieveVectors", at)
        self.filter = get("filter")
        if self.filter is not None and not isinstance(self.filter, (str, list)):
            raise deserr.type_error(
                _code("filter"), at("filter"), "a string or an array", self.filter
            )
        self.sort = self._sort(body, at)
        self.distinct = (
            None
            if get("distinct") is None
            else deserr.body_string(_code("distinct"), at("distinct"), get("distinct"))
        )
        self.facets = self._strings(body, "facets", at)
        if federated and self.facets is not None:
            position = path.rpartition("[")[2].rstrip("]")
            raise MeiliError(
                "invalid_multi_search_query_facets",
                f"Inside `{path}`: Using facet options is not allowed in federated queries.\n"
                f" - Hint: remove `facets` from query #{position} or remove `federation` from "
                "the request\n - Hint: pass `federation.facetsByIndex.<index>: [...]` for "
                "facets in federated search",
            )
        self.pre_tag = self._string(body, "highlightPreTag", "<em>", at)
        self.post_tag = self._string(body, "highlightPostTag", "</em>", at)
        self.crop_marker = self._string(body, "cropMarker", "…", at)
        strategy = self._string(body, "matchingStrategy", "last", at)
        if strategy not in ("last", "all", "frequency"):
            raise deserr.unknown_value(
                _code("matchingStrategy"),
                at("matchingStrategy"),
                strategy,
                ("last", "all", "frequency"),
            )
        self.matching_strategy = strategy
        self.attributes_to_search_on = self._strings(body, "attributesToSearchOn", at)
        threshold = get("rankingScoreThreshold")
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not 0.0 <= threshold <= 1.0
        ):
            if not isinstance(threshold, (int, float)) or isinstance(threshold, bool):
                raise deserr.type_error(
                    _code("rankingScoreThreshold"),
                    at("rankingScoreThreshold"),
                    "a number",
                    threshold,
                )
            raise deserr.invalid_value(
                _code("rankingScoreThreshold"),
                at("rankingScoreThreshold"),
                "the value of `rankingScoreThreshold` is invalid, expected a float between "
                "`0.0` and `1.0`.",
            )
        self.ranking_score_threshold = None if threshold is None else float(threshold)
        for unsupported in ("vector", "media", "hybrid", "personalize"):
            if get(unsupported) is not None:
                raise MeiliError(
                    "feature_not_enabled"
                    if unsupported != "hybrid"
                    else "invalid_search_hybrid_query",
                    f"The devnode does not implement `{unsupported}` (no embedders).",
                )
        self.federation_options = get("federationOptions")
        self.raw = body

    @staticmethod
    def _usize(body: dict, key: str, default: int, at: Any) -> int:
        value = body.get(key)
        return default if value is None else deserr.body_usize(_code(key), at(key), value)

    @staticmethod
    def _bool(body: dict, key: str, at: Any) -> bool:
        value = body.get(key)
        return False if value is None else deserr.body_bool(_code(key), at(key), value)

    @staticmethod
    def _string(body: dict, key: str, default: str, at: Any) -> str:
        value = body.get(key)
        return default if value is None else deserr.body_string(_code(key), at(key), value)

    @staticmethod
    def _strings(body: dict, key: str, at: Any) -> list[str] | None:
        value = body.get(key)
        return None if value is None else deserr.body_string_list(_code(key), at(key), value)

    def _sort(self, body: dict, at: Any) -> list[tuple[str, bool]]:
        value = self._strings(body, "sort", at) or []
        out: list[tuple[str, bool]] = []
        for expression in value:
            match = _SORT_EXPRESSION.match(expression)
            if match is None:
                raise MeiliError(
                    "invalid_search_sort",
                    "Invalid syntax for the sort parameter: expected expression ending by "
                    f"`:asc` or `:desc`, found `{expression}`.",
                )
            out.append((match.group(1), match.group(2) == "asc"))
        return out


def search_params_from_query(query: list[tuple[str, str]]) -> dict[str, Any]:
    """A GET /search query string as the equivalent POST body."""
    lists = (
        "attributesToRetrieve",
        "attributesToCrop",
        "attributesToHighlight",
        "facets",
        "attributesToSearchOn",
        "sort",
        "locales",
    )
    integers = ("offset", "limit", "page", "hitsPerPage", "cropLength")
    booleans = (
        "showMatchesPosition",
        "showRankingScore",
        "showRankingScoreDetails",
        "showPerformanceDetails",
        "retrieveVectors",
    )
    allowed = tuple(k for k in SEARCH_FIELDS if k not in ("media", "personalize", "useNetwork"))
    body: dict[str, Any] = {}
    for name, value in query:
        if name not in allowed:
            raise deserr.unknown_parameter(name, allowed)
        if name in lists:
            body[name] = [] if value == "" else value.split(",")
        elif name in integers:
            body[name] = deserr.parse_query_usize(_code(name), name, value)
        elif name in booleans:
            body[name] = deserr.parse_query_bool(_code(name), name, value)
        elif name == "rankingScoreThreshold":
            try:
                body[name] = float(value)
            except ValueError:
                raise deserr.bad_parameter(
                    _code(name), name, f"could not parse `{value}` as a float"
                ) from None
        else:
            body[name] = value
    return body


# ----------------------------------------------------------------------------- search


def _run(index: Any, params: SearchParams, *, extra_limit: int | None = None) -> tuple[Any, dict]:
    """Run a validated query; returns (outcome, window info)."""
    settings = index.settings
    max_total = (settings.get("pagination") or {}).get("maxTotalHits", 1000)
    if params.page_mode:
        hits_per_page = params.hits_per_page if params.hits_per_page is not None else 20
        page = params.page if params.page is not None else 1
        offset = (page - 1) * hits_per_page if page > 0 else 0
        limit = hits_per_page if page > 0 else 0
    else:
        offset, limit = params.offset, params.limit
    if extra_limit is not None:
        offset, limit = 0, extra_limit
    capped_offset = min(offset, max_total)
    capped_limit = min(limit, max_total - capped_offset)
    if params.distinct is not None:
        features = f.matching_features(params.distinct, settings.get("filterableAttributes") or [])
        if features is None or not features.filterable:
            patterns = f.filterable_patterns(settings.get("filterableAttributes") or [])
            tail = (
                f"Available filterable attributes patterns are: `{', '.join(patterns)}`."
                if patterns
                else "This index does not have configured filterable attributes."
            )
            raise MeiliError(
                "invalid_search_distinct",
                f"Attribute `{params.distinct}` is not filterable and thus, cannot be used as "
                f"distinct attribute. {tail}",
            )
    request = SearchRequest(
        q=params.q,
        offset=capped_offset,
        limit=capped_limit,
        filter=params.filter,
        sort=params.sort,
        facets=params.facets,
        distinct=params.distinct,
        matching_strategy=params.matching_strategy,
        attributes_to_search_on=params.attributes_to_search_on,
        ranking_score_threshold=params.ranking_score_threshold,
    )
    outcome = run_search(index.searcher, request)
    window = {
        "offset": offset,
        "limit": limit,
        "page_mode": params.page_mode,
        "total": min(outcome.total, max_total),
        "hits_per_page": params.hits_per_page if params.hits_per_page is not None else 20,
        "page": params.page if params.page is not None else 1,
    }
    return outcome, window


def _render_hits(index: Any, params: SearchParams, outcome: Any) -> list[dict[str, Any]]:
    settings = index.settings
    displayed = settings.get("displayedAttributes") or ["*"]
    retrieve = params.attributes_to_retrieve
    want_formatted = bool(params.attributes_to_highlight or params.attributes_to_crop)
    matcher = Matcher(outcome.query) if (want_formatted or params.show_matches_position) else None
    crop: dict[str, int | None] = {}
    for entry in params.attributes_to_crop:
        name, _, length = entry.rpartition(":")
        if name and length.isdigit():
            crop[name] = int(length)
        else:
            crop[entry] = None
    hits = []
    documents = index.searcher.documents
    for hit in outcome.hits:
        document = documents[hit.internal_id]
        shown = select_attributes(document, displayed)
        rendered = select_attributes(shown, retrieve) if retrieve != ["*"] else dict(shown)
        if matcher is not None and want_formatted:
            highlight = [p for p in params.attributes_to_highlight]
            rendered["_formatted"] = formatted(
                shown if retrieve == ["*"] else select_attributes(shown, retrieve),
                matcher,
                highlight=highlight,
                crop=crop,
                default_crop=params.crop_length,
                marker=params.crop_marker,
                pre=params.pre_tag,
                post=params.post_tag,
            )
        if matcher is not None and params.show_matches_position:
            rendered["_matchesPosition"] = matches_position(shown, matcher)
        if params.show_ranking_score:
            rendered["_rankingScore"] = hit.score
        if params.show_ranking_score_details:
            rendered["_rankingScoreDetails"] = hit.details
        hits.append(rendered)
    return hits


def _response(
    index_uid: str, index: Any, params: SearchParams, outcome: Any, window: dict
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "hits": _render_hits(index, params, outcome),
        "query": params.q or "",
        "processingTimeMs": 0,
    }
    total = window["total"]
    if window["page_mode"]:
        hits_per_page = window["hits_per_page"]
        response["hitsPerPage"] = hits_per_page
        response["page"] = window["page"]
        response["totalPages"] = math.ceil(total / hits_per_page) if hits_per_page else 0
        response["totalHits"] = total
    else:
        response["limit"] = window["limit"]
        response["offset"] = window["offset"]
        response["estimatedTotalHits"] = total
    if params.facets is not None:
        response["facetDistribution"] = outcome.facet_distribution or {}
        response["facetStats"] = outcome.facet_stats or {}
    response["requestUid"] = _request_uid(index_uid, params.raw)
    return response


def search(engine: Any, index_uid: str, params: dict) -> dict:
    """POST /indexes/{uid}/search (GET goes through search_params_from_query first)."""
    index = engine.get_index(index_uid)
    validated = SearchParams(params)
    outcome, window = _run(index, validated)
    return _response(index_uid, index, validated, outcome, window)


# ----------------------------------------------------------------------------- multi-search


def multi_search(engine: Any, body: Any) -> dict:
    """POST /multi-search: `{queries}` gives per-query results; with `federation`, one list."""
    body = deserr.body_object("bad_request", "", body)
    deserr.check_fields(body, ("queries", "federation"), path="", code="bad_request")
    queries = body.get("queries")
    if queries is None:
        raise deserr.missing_field("bad_request", "", "queries")
    if not isinstance(queries, list):
        raise deserr.type_error("bad_request", ".queries", "an array", queries)
    federation = body.get("federation")
    allowed = SEARCH_FIELDS + ("indexUid", "federationOptions")
    prepared = []
    for position, query in enumerate(queries):
        path = f".queries[{position}]"
        if not isinstance(query, dict):
            raise deserr.type_error("bad_request", path, "an object", query)
        if "indexUid" not in query:
            raise deserr.missing_field("missing_index_uid", path, "indexUid")
        index_uid = query["indexUid"]
        if not isinstance(index_uid, str):
            raise deserr.type_error("invalid_index_uid", f"{path}.indexUid", "a string", index_uid)
        params = SearchParams(
            {k: v for k, v in query.items() if k != "indexUid"},
            path=path,
            federated=federation is not None,
            allowed=allowed,
        )
        if federation is None and params.federation_options is not None:
            raise MeiliError(
                "invalid_multi_search_federation_options",
                f"Inside `{path}`: Using `federationOptions` is not allowed in a non-federated "
                "search.\n - Hint: remove `federationOptions` from query #"
                f"{position} or add `federation` to the request.",
            )
        try:
            index = engine.get_index(index_uid)
        except MeiliError as error:
            raise MeiliError(error.code, f"Inside `{path}`: {error.message}") from None
        prepared.append((position, index_uid, index, params))
    if federation is None:
        results = []
        for position, index_uid, index, params in prepared:
            try:
                outcome, window = _run(index, params)
            except MeiliError as error:
                raise MeiliError(
                    error.code, f"Inside `.queries[{position}]`: {error.message}"
                ) from None
            response = _response(index_uid, index, params, outcome, window)
            response.pop("requestUid", None)
            results.append({"indexUid": index_uid, **response})
        return {"results": results}
    return _federated(prepared, federation)


def _federated(prepared: list, federation: Any) -> dict:
    """One list of hits from every query, ordered as Meilisearch orders federated hits."""
    federation = deserr.body_object("invalid_multi_search_federated", ".federation", federation)
    allowed = ("offset", "limit", "page", "hitsPerPage", "facetsByIndex", "mergeFacets")
    deserr.check_fields(federation, allowed, path=".federation", code="bad_request")

    def usize(name: str, default: int) -> int:
        value = federation.get(name)
        if value is None:
            return default
        return deserr.body_usize("invalid_multi_search_federated", f".federation.{name}", value)

    page_mode = federation.get("page") is not None or federation.get("hitsPerPage") is not None
    page, hits_per_page = usize("page", 1), usize("hitsPerPage", 20)
    if page_mode:
        offset, limit = ((page - 1) * hits_per_page, hits_per_page) if page > 0 else (0, 0)
    else:
        offset, limit = usize("offset", 0), usize("limit", 20)

    candidates: list[FederatedHit] = []
    total = 0
    matched_by_index: dict[str, set[int]] = {}
    indexes: dict[str, Any] = {}
    for position, index_uid, index, params in prepared:
        options = params.federation_options or {}
        if not isinstance(options, dict):
            raise deserr.type_error(
                "invalid_multi_search_federation_options",
                f".queries[{position}].federationOptions",
                "an object",
                options,
            )
        weight = options.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise MeiliError(
                "invalid_multi_search_weight",
                f"Invalid value at `.queries[{position}].federationOptions.weight`: the value "
                "of `weight` is invalid, expected a positive float (>= 0.0).",
            )
        try:
            outcome, window = _run(index, params, extra_limit=offset + limit)
        except MeiliError as error:
            raise MeiliError(
                error.code, f"Inside `.queries[{position}]`: {error.message}"
            ) from None
        total += window["total"]
        indexes[index_uid] = index
        matched_by_index.setdefault(index_uid, set()).update(outcome.matched_ids)
        rendered_hits = _render_hits(index, params, outcome)
        for rank, (hit, rendered) in enumerate(zip(outcome.hits, rendered_hits, strict=True)):
            rendered["_federation"] = {
                "indexUid": index_uid,
                "queriesPosition": position,
                "weightedRankingScore": hit.score * float(weight),
            }
            candidates.append(
                FederatedHit(
                    hit.values,
                    float(weight),
                    hit.score,
                    position,
                    rank,
                    rendered | {"_miroir_key": (index_uid, hit.internal_id)},
                )
            )
    seen: set[tuple[str, int]] = set()
    merged = []
    for hit in federated_order(candidates):
        key = hit.rendered.pop("_miroir_key")
        if key in seen:
            continue  # a document found by several queries of one index is kept once
        seen.add(key)
        merged.append(hit.rendered)
    response: dict[str, Any] = {"hits": merged[offset : offset + limit], "processingTimeMs": 0}
    if page_mode:
        response.update(
            hitsPerPage=hits_per_page,
            page=page,
            totalPages=math.ceil(total / hits_per_page) if hits_per_page else 0,
            totalHits=total,
        )
    else:
        response.update(limit=limit, offset=offset, estimatedTotalHits=total)
    _federated_facets(response, federation, indexes, matched_by_index)
    response["requestUid"] = _request_uid("federated", [p.raw for *_, p in prepared])
    return response


def _federated_facets(
    response: dict, federation: dict, indexes: dict[str, Any], matched: dict[str, set[int]]
) -> None:
    by_index = federation.get("facetsByIndex")
    if by_index is None:
        return
    by_index = deserr.body_object(
        "invalid_multi_search_facets_by_index", ".federation.facetsByIndex", by_index
    )
    computed: dict[str, dict[str, Any]] = {}
    for uid, names in by_index.items():
        if names is None:
            continue
        names = deserr.body_string_list(
            "invalid_multi_search_facets_by_index", f".federation.facetsByIndex.{uid}", names
        )
        index = indexes.get(uid)
        if index is None:
            raise MeiliError(
                "invalid_multi_search_facets_by_index",
                f"Inside `.federation.facetsByIndex.{uid}`: Index `{uid}` is not used in queries.",
            )
        try:
            attributes = check_facets(index.searcher, names)
        except MeiliError as error:
            raise MeiliError(
                "invalid_multi_search_facets",
                f"Inside `.federation.facetsByIndex.{uid}`: {error.message}",
            ) from None
        distribution, stats = facet_counts(index.searcher, attributes, matched.get(uid, set()))
        computed[uid] = {"distribution": distribution, "stats": stats}
    merge = federation.get("mergeFacets")
    if merge is None:
        response["facetsByIndex"] = computed
        return
    merge = deserr.body_object(
        "invalid_multi_search_merge_facets", ".federation.mergeFacets", merge
    )
    max_values = merge.get("maxValuesPerFacet")
    if max_values is not None:
        max_values = deserr.body_usize(
            "invalid_multi_search_max_values_per_facet",
            ".federation.mergeFacets.maxValuesPerFacet",
            max_values,
        )
    distribution: dict[str, dict[str, int]] = {}
    stats: dict[str, dict[str, float]] = {}
    for part in computed.values():
        for name, values in part["distribution"].items():
            target = distribution.setdefault(name, {})
            for value, count in values.items():
                target[value] = target.get(value, 0) + count
        for name, bounds in part["stats"].items():
            current = stats.get(name)
            stats[name] = (
                dict(bounds)
                if current is None
                else {
                    "min": min(current["min"], bounds["min"]),
                    "max": max(current["max"], bounds["max"]),
                }
            )
    limit = 100 if max_values is None else max_values
    response["facetDistribution"] = {
        name: dict(sorted(values.items(), key=_alpha_facet_key)[:limit])
        for name, values in distribution.items()
    }
    response["facetStats"] = stats


def _alpha_facet_key(item: tuple[str, int]) -> tuple:
    value = item[0]
    number = f.parse_finite_float(value)
    return (0, number, "") if number is not None else (1, 0.0, f.normalize_facet(value))


# ----------------------------------------------------------------------------- facet search

FACET_SEARCH_FIELDS = (
    "facetName",
    "facetQuery",
    "q",
    "filter",
    "matchingStrategy",
    "attributesToSearchOn",
    "exhaustiveFacetCount",
    "rankingScoreThreshold",
    "locales",
)


def facet_search(engine: Any, index_uid: str, body: Any) -> dict:
    """POST /indexes/{uid}/facet-search: facet values (with counts) matching `facetQuery`."""
    index = engine.get_index(index_uid)
    body = deserr.body_object("bad_request", "", body)
    deserr.check_fields(body, FACET_SEARCH_FIELDS, path="", code="bad_request")
    if body.get("facetName") is None:
        raise deserr.missing_field("missing_facet_search_facet_name", "", "facetName")
    name = deserr.body_string("invalid_facet_search_facet_name", ".facetName", body["facetName"])
    facet_query = body.get("facetQuery")
    if facet_query is not None:
        deserr.body_string("invalid_facet_search_query", ".facetQuery", facet_query)
    settings = index.settings
    if settings.get("facetSearch") is False:
        raise MeiliError("facet_search_disabled", "The facet search is disabled for this index")
    filterable = settings.get("filterableAttributes") or []
    features = f.matching_features(name, filterable)
    if features is None or not features.filterable or not features.facet_search:
        patterns = sorted(
            p
            for patterns, feats in f.filterable_rules(filterable)
            if feats.facet_search
            for p in patterns
        )
        tail = (
            f"Available facet-searchable attributes patterns are: `{', '.join(patterns)}`."
            if patterns
            else "This index does not have configured facet-searchable attributes."
        )
        raise MeiliError(
            "invalid_facet_search_facet_name",
            f"Attribute `{name}` is not facet-searchable. {tail} To make it facet-searchable "
            "add it to the `filterableAttributes` index settings.",
        )
    search_body = {
        k: body[k]
        for k in (
            "q",
            "filter",
            "matchingStrategy",
            "attributesToSearchOn",
            "rankingScoreThreshold",
        )
        if k in body
    }
    params = SearchParams(search_body)
    request = SearchRequest(
        q=params.q,
        offset=0,
        limit=0,
        filter=params.filter,
        matching_strategy=params.matching_strategy,
        attributes_to_search_on=params.attributes_to_search_on,
        ranking_score_threshold=params.ranking_score_threshold,
    )
    outcome = run_search(index.searcher, request)
    distribution, _ = facet_counts(index.searcher, [name], outcome.matched_ids, max_values=None)
    max_values = (settings.get("faceting") or {}).get("maxValuesPerFacet", 100)
    needle = f.normalize_facet(facet_query or "")
    needle_words = [normalize_word(w) for w in needle.split()]
    hits = []
    for value, count in distribution.get(name, {}).items():
        folded = normalize_word(f.normalize_facet(value))
        if (
            not needle
            or folded.startswith(" ".join(needle_words))
            or any(w.startswith(" ".join(needle_words)) for w in folded.split())
        ):
            hits.append({"value": value, "count": count})
    hits = hits[:max_values]
    return {"facetHits": hits, "facetQuery": facet_query, "processingTimeMs": 0}
