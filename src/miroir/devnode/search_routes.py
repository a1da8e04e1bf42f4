"""The devnode's search endpoints as pure functions the app wires to routes.

Owns: reading search (POST and GET), multi-search (plain and federated) and facet-search
requests once `miroir.meili.params` has checked them (Meilisearch's table, the same the proxy
checks with), refusing what the devnode cannot do (`media`, `personalize`); the search kind
(keyword, semantic, hybrid: Meilisearch's `search_kind`) and `similar`; the response shapes (offset/limit vs page mode, maxTotalHits capping, facets, per-hit `_formatted`,
`_matchesPosition`, `_rankingScore`, `_rankingScoreDetails`).

Must never: read clocks or randomness (processingTimeMs is 0 and requestUid is derived from the
request, so a simulated run is reproducible), parse HTTP (the app does), or rank (search does).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import replace
from typing import Any

import orjson
from pyroaring import BitMap

from miroir.core import filters as f
from miroir.core.errors import MeiliError
from miroir.core.merge_hybrid import hybrid_values, merge_hybrid, results_good_enough
from miroir.core.search_plan import parse_sort
from miroir.devnode.search.execute import (
    SearchOutcome,
    SearchRequest,
    check_facets,
    distinct_keys,
    facet_counts,
    run_search,
    run_vector_search,
)
from miroir.devnode.search.federation import FederatedHit
from miroir.devnode.search.federation import ordered as federated_order
from miroir.devnode.search.formatting import (
    Matcher,
    formatted,
    matches_position,
    select_attributes,
)
from miroir.devnode.search.query import parse_query
from miroir.devnode.search.text import normalize_word
from miroir.devnode.search.vectors import VECTORS_FIELD
from miroir.meili import deserr
from miroir.meili.params import (
    FEDERATION,
    SEARCH,
    check_facet_search,
    check_multi_search,
    check_search,
    check_similar,
    value_of,
)

_NAMESPACE = uuid.UUID("6f1c5a56-8c1e-4d55-9a43-3c1f0c6b7e21")


def _request_uid(*parts: Any) -> str:
    return str(uuid.uuid5(_NAMESPACE, orjson.dumps(parts, option=orjson.OPT_SORT_KEYS).decode()))


# ----------------------------------------------------------------------------- validation


class SearchParams:
    """A search request checked against Meilisearch's table (`miroir.meili.params`), read with
    its defaults; refuses what the devnode cannot do (`media`, `personalize`)."""

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
        for unsupported in ("media", "personalize"):
            if body.get(unsupported) is not None:
                raise MeiliError(
                    "feature_not_enabled",
                    f"The devnode does not implement `{unsupported}` (userProvided embedders "
                    "only).",
                )
        self.retrieve_vectors: bool = get("retrieveVectors")
        self.vector = _vector(body)
        self.hybrid = _hybrid(body)
        self.federation_options = body.get("federationOptions")
        self.raw = body


def _vector(body: dict[str, Any]) -> list[float] | None:
    value = body.get("vector")
    if value is None:
        return None
    if not isinstance(value, list):
        raise deserr.type_error("invalid_search_vector", ".vector", "an array", value)
    for position, item in enumerate(value):
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise deserr.type_error("invalid_search_vector", f".vector[{position}]", "a number",
                                    item)
    return [float(item) for item in value]


def _hybrid(body: dict[str, Any]) -> tuple[str, float] | None:
    """(embedder, semanticRatio) of `hybrid`, checked as Meilisearch checks it."""
    value = body.get("hybrid")
    if value is None:
        return None
    code = "invalid_search_hybrid_query"
    value = deserr.body_object(code, ".hybrid", value)
    deserr.check_fields(value, ("semanticRatio", "embedder"), path=".hybrid", code=code)
    ratio = value.get("semanticRatio")
    if ratio is None:
        ratio = 0.5
    elif isinstance(ratio, bool) or not isinstance(ratio, int | float):
        raise deserr.type_error(
            "invalid_search_semantic_ratio", ".hybrid.semanticRatio", "a number", ratio
        )
    elif not 0.0 <= ratio <= 1.0:
        raise deserr.invalid_value(
            "invalid_search_semantic_ratio",
            ".hybrid.semanticRatio",
            "the value of `semanticRatio` is invalid, expected a float between `0.0` and "
            "`1.0`.",
        )
    if value.get("embedder") is None:
        raise deserr.missing_field("invalid_search_embedder", ".hybrid", "embedder")
    embedder = deserr.body_string("invalid_search_embedder", ".hybrid.embedder",
                                  value["embedder"])
    return embedder, float(ratio)


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
    outcome = _run_kind(index, params, request)
    window = {
        "offset": offset,
        "limit": limit,
        "page_mode": params.page_mode,
        "total": min(outcome.total, max_total),
        "hits_per_page": params.hits_per_page if params.hits_per_page is not None else 20,
        "page": params.page if params.page is not None else 1,
    }
    return outcome, window


def _embedder(index: Any, name: str, vector: list[float] | None) -> dict[str, Any]:
    embedder = (index.settings.get("embedders") or {}).get(name)
    if embedder is None:
        raise MeiliError("invalid_search_embedder", f"Cannot find embedder with name `{name}`.")
    if vector is not None and len(vector) != embedder["dimensions"]:
        raise MeiliError(
            "invalid_vector_dimensions",
            f"Invalid vector dimensions: expected: `{embedder['dimensions']}`, found: "
            f"`{len(vector)}`.",
        )
    return embedder


def _cannot_embed(q: str | None) -> MeiliError:
    return MeiliError(
        "vector_embedding_error",
        "Error while generating embeddings: user error: attempt to embed the following text in "
        f"a configuration where embeddings must be user provided:\n  - `{q or ''}`",
    )


def _keyword_only(params: SearchParams, non_placeholder: bool) -> bool:
    """Whether Meilisearch's `search_kind` runs a plain keyword search (no hybrid, a ratio of 0,
    or a placeholder query without a vector); a vector without `hybrid` is refused."""
    vector, hybrid = params.vector, params.hybrid
    if vector is not None and hybrid is None:
        raise MeiliError(
            "missing_search_hybrid",
            "Invalid request: missing `hybrid` parameter when `vector` or `media` are present.",
        )
    return hybrid is None or hybrid[1] == 0.0 or (not non_placeholder and vector is None)


def _run_kind(index: Any, params: SearchParams, request: SearchRequest) -> Any:
    """Keyword, semantic or hybrid, chosen as Meilisearch's `search_kind` chooses."""
    non_placeholder = params.q is not None and params.q.strip() != ""
    vector, hybrid = params.vector, params.hybrid
    if _keyword_only(params, non_placeholder):
        return run_search(index.searcher, request)
    name, ratio = hybrid
    embedder = _embedder(index, name, vector)
    store = index.embeddings.get(name, {})
    distribution = embedder.get("distribution")
    if ratio == 1.0 or not non_placeholder:
        if vector is None:
            raise _cannot_embed(params.q)
        outcome = run_vector_search(index.searcher, request, vector, store, distribution)
        outcome.semantic_hit_count = len(outcome.hits)
        outcome.query_vector = vector if params.retrieve_vectors else None
        return outcome
    needed = request.offset + request.limit
    keyword = run_search(index.searcher, replace(request, offset=0, limit=needed))
    window = slice(request.offset, request.offset + request.limit)
    if vector is None or results_good_enough([h.score for h in keyword.hits], needed, ratio):
        # Good enough, or no vector to search with (a userProvided embedder cannot embed `q`).
        keyword.hits = keyword.hits[window]
        keyword.semantic_hit_count = 0
        return keyword
    semantic = run_vector_search(
        index.searcher, replace(request, offset=0, limit=needed), vector, store, distribution
    )
    distinct = request.distinct or index.settings.get("distinctAttribute")
    merged, semantic_count = merge_hybrid(
        semantic.hits,
        keyword.hits,
        values_of=lambda hit, is_semantic: hybrid_values(
            hit.details, hit.score, ratio if is_semantic else 1.0 - ratio
        ),
        identity=lambda hit: hit.internal_id,
        distinct_keys=(
            (lambda hit: distinct_keys(index.searcher, hit.internal_id, distinct))
            if distinct
            else None
        ),
        offset=request.offset,
        limit=request.limit,
    )
    candidates = semantic.matched_ids | keyword.matched_ids
    outcome = SearchOutcome(
        [hit for hit, _ in merged],
        max(semantic.total, keyword.total) if distinct else len(candidates),
        keyword.query,
        keyword.rules,
        matched_ids=candidates,
        semantic_hit_count=semantic_count,
        query_vector=vector if params.retrieve_vectors else None,
    )
    if request.facets is not None:
        names = check_facets(index.searcher, request.facets)
        outcome.facet_distribution, outcome.facet_stats = facet_counts(
            index.searcher, names, candidates
        )
    return outcome


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
        if params.retrieve_vectors and _shows_vectors(displayed, retrieve):
            doc_id = index.document_ids.get(hit.internal_id)
            if doc_id is not None:
                rendered[VECTORS_FIELD] = index.present(doc_id, [VECTORS_FIELD], True).get(
                    VECTORS_FIELD, {}
                )
        if params.show_ranking_score:
            rendered["_rankingScore"] = hit.score
        if params.show_ranking_score_details:
            rendered["_rankingScoreDetails"] = hit.details
        hits.append(rendered)
    return hits


def _shows_vectors(displayed: list[str], retrieve: list[str]) -> bool:
    return ("*" in displayed or VECTORS_FIELD in displayed) and (
        "*" in retrieve or VECTORS_FIELD in retrieve
    )


def _response(
    index_uid: str, index: Any, params: SearchParams, outcome: Any, window: dict
) -> dict[str, Any]:
    response: dict[str, Any] = {
        "hits": _render_hits(index, params, outcome),
        "query": params.q or "",
    }
    if outcome.query_vector is not None:
        response["queryVector"] = outcome.query_vector
    response["processingTimeMs"] = 0
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
    if outcome.semantic_hit_count is not None:
        response["semanticHitCount"] = outcome.semantic_hit_count
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
            "vector",
            "media",
            "hybrid",
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
    matched = _facet_search_candidates(index, params, request)
    distribution, _ = facet_counts(index.searcher, [name], matched, max_values=None)
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


def _facet_search_candidates(index: Any, params: SearchParams, request: SearchRequest) -> Any:
    """The documents whose facet values count: the keyword search's matches, or with a vector
    or a true hybrid query every document the filter keeps (milli's execute_for_candidates)."""
    non_placeholder = params.q is not None and params.q.strip() != ""
    vector, hybrid = params.vector, params.hybrid
    if _keyword_only(params, non_placeholder):
        return run_search(index.searcher, request).matched_ids
    _embedder(index, hybrid[0], vector)
    if vector is None and (hybrid[1] == 1.0 or not non_placeholder):
        raise _cannot_embed(params.q)
    searcher = index.searcher
    node = searcher.parse_filter(request.filter, error_code=request.filter_error_code)
    return searcher.ids if node is None else searcher.facets.evaluate(node, searcher.ids)


# ----------------------------------------------------------------------------- similar


def similar(engine: Any, index_uid: str, body: Any) -> dict:
    """POST /indexes/{uid}/similar: the documents nearest to one document's embedding."""
    from miroir.devnode.search.vectors import similarity

    index = engine.get_index(index_uid)
    params = check_similar(body)
    embedder = (index.settings.get("embedders") or {}).get(params["embedder"])
    if embedder is None:
        raise MeiliError(
            "invalid_similar_embedder", f"Cannot find embedder with name `{params['embedder']}`."
        )
    doc_id = params["id"]
    if doc_id not in index.internal_ids:
        raise MeiliError("not_found_similar_id", f"Document `{doc_id}` not found.")
    target_id = index.internal_ids[doc_id]
    searcher = index.searcher
    node = searcher.parse_filter(params["filter"], error_code="invalid_similar_filter")
    universe = searcher.ids if node is None else searcher.facets.evaluate(node, searcher.ids)
    universe = universe - BitMap([target_id])
    store = index.embeddings.get(params["embedder"], {})
    targets = store.get(target_id) or []
    scored: list[tuple[float, int]] = []
    if targets:
        for internal_id in universe:
            if internal_id in store:
                score = similarity(targets[0], store[internal_id], embedder.get("distribution"))
                scored.append((score, internal_id))
    scored.sort(key=lambda item: (-item[0], item[1]))
    window = scored[params["offset"] : params["offset"] + params["limit"]]
    total = len(universe)
    threshold = params["rankingScoreThreshold"]
    if threshold is not None:
        kept = []
        for score, internal_id in window:
            if score < threshold:
                total = params["offset"] + len(kept)  # Meilisearch: candidates cut to the seen
                break
            kept.append((score, internal_id))
        window = kept
    max_total = (index.settings.get("pagination") or {}).get("maxTotalHits", 1000)
    fake = SearchParams({
        "attributesToRetrieve": params["attributesToRetrieve"],
        "retrieveVectors": params["retrieveVectors"],
        "showRankingScore": params["showRankingScore"],
        "showRankingScoreDetails": params["showRankingScoreDetails"],
    })
    from miroir.devnode.search.execute import Hit

    hits = [Hit(i, score, {"vectorSort": {"order": 0, "similarity": score}}) for score, i in window]
    outcome = SearchOutcome(hits, total, parse_query("", index.settings), [])
    return {
        "hits": _render_hits(index, fake, outcome),
        "id": doc_id,
        "processingTimeMs": 0,
        "limit": params["limit"],
        "offset": params["offset"],
        "estimatedTotalHits": min(total, max_total),
    }
