"""The devnode's search endpoints as pure functions the app wires to routes.

Owns: reading search (POST and GET), multi-search (plain and federated) and facet-search
requests once `miroir.meili.params` has checked them (Meilisearch's table, the same the proxy
checks with), refusing what the devnode cannot do (vectors, embedders); the response
shapes (offset/limit vs page mode, maxTotalHits capping, facets, per-hit `_formatted`,
`_matchesPosition`, `_rankingScore`, `_rankingScoreDetails`).

Must never: read clocks or randomness (processingTimeMs is 0 and requestUid is derived from the
request, so a simulated run is reproducible), parse HTTP (the app does), or rank (search does).
"""

from __future__ import annotations

import math
import uuid
from typing import Any

import orjson

from miroir.core import filters as f
from miroir.core.errors import MeiliError
from miroir.core.search_plan import parse_sort
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
from miroir.meili.params import (
    FEDERATION,
    SEARCH,
    check_facet_search,
    check_multi_search,
    check_search,
    value_of,
)

_NAMESPACE = uuid.UUID("6f1c5a56-8c1e-4d55-9a43-3c1f0c6b7e21")


def _request_uid(*parts: Any) -> str:
    return str(uuid.uuid5(_NAMESPACE, orjson.dumps(parts, option=orjson.OPT_SORT_KEYS).decode()))


# ----------------------------------------------------------------------------- validation


class SearchParams:
    """A search request checked against Meilisearch's table (`miroir.meili.params`), read with
    its defaults; refuses what the devnode cannot do (vectors, embedders)."""

    def __init__(self, body: dict[str, Any]) -> None:
        def get(name: str) -> Any:
            return value_of(body, SEARCH[name])

        self.q: str | None = get("q")
        self.offset: int = get("offset")
        self.limit: int = get("limit")
        self.page: int | None = body.get("page")
        self.hits_per_page: int | None = body.get("hitsPerPage")
        self.page_mode = self.page is not None or self.hits_per_page is not None
        self.attributes_to_retrieve: list[str] = get("attributesToRetrieve") or ["*"]
        self.attributes_to_crop: list[str] = get("attributesToCrop")
        self.crop_length: int = get("cropLength")
        self.attributes_to_highlight: list[str] = get("attributesToHighlight")
        self.show_matches_position: bool = get("showMatchesPosition")
        self.show_ranking_score: bool = get("showRankingScore")
        self.show_ranking_score_details: bool = get("showRankingScoreDetails")
        self.filter = get("filter")
        self.sort = [(rule.field, rule.ascending) for rule in parse_sort(get("sort"))]
        self.distinct: str | None = get("distinct")
        self.facets: list[str] | None = get("facets")
        self.pre_tag: str = get("highlightPreTag")
        self.post_tag: str = get("highlightPostTag")
        self.crop_marker: str = get("cropMarker")
        self.matching_strategy: str = get("matchingStrategy")
        self.attributes_to_search_on: list[str] | None = get("attributesToSearchOn")
        threshold = get("rankingScoreThreshold")
        self.ranking_score_threshold = None if threshold is None else float(threshold)
        for unsupported in ("vector", "media", "hybrid", "personalize"):
            if body.get(unsupported) is not None:
                raise MeiliError(
                    "feature_not_enabled"
                    if unsupported != "hybrid"
                    else "invalid_search_hybrid_query",
                    f"The devnode does not implement `{unsupported}` (no embedders).",
                )
        self.federation_options = body.get("federationOptions")
        self.raw = body


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


def search(engine: Any, index_uid: str, params: Any) -> dict:
    """POST /indexes/{uid}/search (GET goes through search_body_from_query first). The body is
    checked before the index is looked up, as Meilisearch's extractor does."""
    validated = SearchParams(check_search(params))
    index = engine.get_index(index_uid)
    outcome, window = _run(index, validated)
    return _response(index_uid, index, validated, outcome, window)


# ----------------------------------------------------------------------------- multi-search


def multi_search(engine: Any, body: Any) -> dict:
    """POST /multi-search: `{queries}` gives per-query results; with `federation`, one list."""
    body = check_multi_search(body)
    federation = body.get("federation")
    prepared = []
    for position, query in enumerate(body["queries"]):
        index_uid = query["indexUid"]
        params = SearchParams({k: v for k, v in query.items() if k != "indexUid"})
        try:
            index = engine.get_index(index_uid)
        except MeiliError as error:
            raise MeiliError(error.code, f"Inside `.queries[{position}]`: {error.message}") from None
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
    """One list of hits from every query, ordered as Meilisearch orders federated hits (the
    body was checked by `check_multi_search`)."""

    def get(name: str) -> Any:
        return value_of(federation, FEDERATION[name])

    page_mode = federation.get("page") is not None or federation.get("hitsPerPage") is not None
    page, hits_per_page = get("page"), get("hitsPerPage")
    if page_mode:
        offset, limit = ((page - 1) * hits_per_page, hits_per_page) if page > 0 else (0, 0)
    else:
        offset, limit = get("offset"), get("limit")

    candidates: list[FederatedHit] = []
    total = 0
    matched_by_index: dict[str, set[int]] = {}
    indexes: dict[str, Any] = {}
    for position, index_uid, index, params in prepared:
        weight = (params.federation_options or {}).get("weight", 1.0)
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
    computed: dict[str, dict[str, Any]] = {}
    for uid, names in by_index.items():
        if names is None:
            continue
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
    max_values = merge.get("maxValuesPerFacet")
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

def facet_search(engine: Any, index_uid: str, body: Any) -> dict:
    """POST /indexes/{uid}/facet-search: facet values (with counts) matching `facetQuery`."""
    body = check_facet_search(body)
    index = engine.get_index(index_uid)
    name = body["facetName"]
    facet_query = body.get("facetQuery")
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
