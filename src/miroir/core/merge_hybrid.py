"""Hybrid search: Meilisearch's rule for mixing a keyword and a semantic result list.

Owns `hybrid_values(details, score, weight)`, `compare_hybrid(a, b)`, `results_good_enough`
and `merge_hybrid(...)`. Pure. The devnode uses it to answer a hybrid query on one node, and
the proxy uses it on the two merged lists (keyword, semantic) it gathered from the shards, so
both mix the lists by the same rule.

Meilisearch's rule (milli `search/hybrid.rs`, `execute_hybrid`):

1. Run the keyword search for the first `offset+limit` hits. If there are that many and each
   one's global score x (1 - semanticRatio) is at least 0.45 ("good enough"), answer with the
   keyword hits alone (`semanticHitCount: 0`).
2. Otherwise run the semantic search for the first `offset+limit` hits too, and merge the two
   lists (both already in their own order) like a merge sort, comparing hits by their score
   values, each weighted by its list's ratio (keyword: 1 - semanticRatio; semantic:
   semanticRatio); on a tie the semantic hit goes first. A document already taken (or, with
   distinct, one whose distinct value was taken) is skipped. Then `offset`, `limit`.

A hit's score values (`ScoreDetails::score_values`): consecutive relevancy rules fold into one
score, a sort rule gives its value, `vectorSort` gives its similarity (0 without a vector). Two
hits compare value by value: scores weighted (equal within f64 epsilon: next value), sort values
by the rule's order; a score against a sort value wins unless the score is 0. Every step
depends only on the two hits, never on the corpus, which is why the proxy can replay it on
lists merged from shards: the merged keyword list and the merged semantic list are exactly one
node's two lists (docs/search.md, "Hybrid search").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from miroir.core.merge_order import sort_value_key

GOOD_ENOUGH_SCORE = 0.45
_EPSILON = 2.220446049250313e-16  # f64::EPSILON, as in compare_scores

T = TypeVar("T")
Values = list[tuple]


def hybrid_values(details: Mapping[str, Any] | None, score: float, weight: float) -> Values:
    """A hit's score values, weighted: ("score", x) | ("sort", key) | ("geo", asc, distance).

    `details` is the hit's `_rankingScoreDetails` (rule name -> entry, in rule order) and
    `score` its `_rankingScore`. One group of relevancy rules scores as `score`, the global
    score Meilisearch folds from the same ranks; several groups (a sort rule between relevancy
    rules) use each group's rules' scores in turn.
    """
    values: Values = []
    group: list[float] = []
    groups = 0
    for name, entry in (details or {}).items():
        if not isinstance(entry, Mapping):
            continue
        if name == "vectorSort":
            if group:
                values.append(("score", tuple(group)))
                groups, group = groups + 1, []
            values.append(("score", ((entry.get("similarity") or 0.0) * weight,)))
        elif "score" in entry:
            group.append(entry["score"] * weight)
        else:
            if group:
                values.append(("score", tuple(group)))
                groups, group = groups + 1, []
            if name.startswith("_geoPoint("):
                values.append(("geo", name.endswith(":asc"), entry.get("distance")))
            else:
                ascending = not name.endswith(":desc")
                values.append(("sort", sort_value_key(entry.get("value"), ascending)))
    if group:
        values.append(("score", tuple(group)))
        groups += 1
    if groups == 1 and not any(n == "vectorSort" for n in (details or {})):
        values = [("score", (score * weight,)) if v[0] == "score" else v for v in values]
    if not values:
        values = [("score", (score * weight,))]
    return values


def _first_score(value: tuple) -> float:
    return value[1][0] if value[1] else 0.0


def compare_hybrid(a: Values, b: Values) -> int:
    """1 if `a` ranks before `b`, -1 if after, 0 on a tie (Meilisearch's compare_scores)."""
    for x, y in zip(a, b, strict=False):
        if x[0] == "score" and y[0] == "score":
            for left, right in zip(x[1], y[1], strict=False):
                if abs(left - right) > _EPSILON:
                    return 1 if left > right else -1
            continue
        if x[0] == "score":
            return -1 if _first_score(x) == 0 else 1
        if y[0] == "score":
            return 1 if _first_score(y) == 0 else -1
        if x[0] == "sort" and y[0] == "sort":
            if x[1] != y[1]:
                return 1 if x[1] < y[1] else -1  # a smaller key sorts first
            continue
        if x[0] == "geo" and y[0] == "geo":
            da, db = x[2], y[2]
            if da == db:
                continue
            if da is None or db is None:
                return 1 if db is None else -1
            closer_first = x[1]
            return (1 if da < db else -1) if closer_first else (1 if da > db else -1)
        return 0
    return (len(a) > len(b)) - (len(a) < len(b))


def results_good_enough(keyword_scores: Sequence[float], needed: int, semantic_ratio: float) -> bool:
    """Whether the keyword hits alone answer the query (step 1 of the rule)."""
    if len(keyword_scores) < needed:
        return False
    return all(score * (1.0 - semantic_ratio) >= GOOD_ENOUGH_SCORE for score in keyword_scores)


def merge_hybrid(
    semantic: Sequence[T],
    keyword: Sequence[T],
    *,
    values_of: Callable[[T, bool], Values],
    identity: Callable[[T], Any],
    distinct_keys: Callable[[T], Iterable[Any]] | None = None,
    offset: int,
    limit: int,
) -> tuple[list[tuple[T, bool]], int]:
    """The merged window as (hit, from_semantic) pairs, and how many of them are semantic.

    `values_of(hit, is_semantic)` gives a hit's weighted values; `identity(hit)` says which
    document it is; `distinct_keys(hit)` its distinct values (none: never a duplicate).
    """
    merged: list[tuple[T, bool]] = []
    seen_ids: set[Any] = set()
    seen_values: set[Any] = set()
    i = j = 0
    skipped = 0
    semantic_values = [values_of(hit, True) for hit in semantic]
    keyword_values = [values_of(hit, False) for hit in keyword]
    while (i < len(semantic) or j < len(keyword)) and len(merged) < limit:
        if j >= len(keyword) or (
            i < len(semantic) and compare_hybrid(semantic_values[i], keyword_values[j]) >= 0
        ):
            hit, from_semantic = semantic[i], True
            i += 1
        else:
            hit, from_semantic = keyword[j], False
            j += 1
        key = identity(hit)
        if key in seen_ids:
            continue
        seen_ids.add(key)
        if distinct_keys is not None:
            keys = set(distinct_keys(hit))
            if keys & seen_values:
                continue
            seen_values |= keys
        if skipped < offset:
            skipped += 1
            continue
        merged.append((hit, from_semantic))
    return merged, sum(1 for _, from_semantic in merged if from_semantic)


# ----------------------------------------------------------------------------- the proxy's side


@dataclass(frozen=True, slots=True)
class HybridSplit:
    """A hybrid query asked as two searches of the shards, and how to mix their answers.

    Each shard could mix its own two lists, but Meilisearch decides "good enough" (step 1)
    on the whole corpus: a shard with few keyword hits would mix in semantic ones that one node
    would not. So the proxy asks every shard for both lists (`keyword_params`,
    `semantic_params`: windows from 0 to the client's offset+limit, scores and details on),
    merges each list across shards exactly as any search, and mixes the two merged lists here.
    """

    keyword_params: dict[str, Any]
    semantic_params: dict[str, Any]
    ratio: float
    offset: int
    limit: int
    shown_offset: int
    shown_limit: int
    page_mode: bool
    page: int
    hits_per_page: int
    added_fields: tuple[str, ...]
    show_ranking_score: bool
    show_ranking_score_details: bool
    primary_key: str | None
    distinct: str | None


def split_hybrid(
    params: Mapping[str, Any], window: Any, primary_key: str | None, distinct: str | None
) -> HybridSplit | None:
    """The split of a true hybrid query (0 < semanticRatio < 1, words in `q`), else None
    (keyword-only, semantic-only and malformed queries go to the nodes as they are).

    `window` is the client's plan (`plan_node_query`): its offset, limit and page mode."""
    hybrid = params.get("hybrid")
    q = params.get("q")
    if not isinstance(hybrid, Mapping) or not isinstance(q, str) or not q.strip():
        return None
    ratio = hybrid.get("semanticRatio", 0.5)
    if ratio is None:
        ratio = 0.5
    if isinstance(ratio, bool) or not isinstance(ratio, int | float) or not 0.0 < ratio < 1.0:
        return None
    if not isinstance(hybrid.get("embedder"), str):
        return None
    needed = window.offset + window.limit
    base = {k: v for k, v in params.items() if k not in ("page", "hitsPerPage", "offset", "limit")}
    base.update(offset=0, limit=needed, showRankingScore=True, showRankingScoreDetails=True)
    added: list[str] = []
    retrieve = params.get("attributesToRetrieve")
    if isinstance(retrieve, list) and "*" not in retrieve:
        for name in (primary_key, distinct):
            if name and name not in retrieve and name not in added:
                added.append(name)
        base["attributesToRetrieve"] = [*retrieve, *added]
    keyword = {k: v for k, v in base.items() if k not in ("hybrid", "vector")}
    semantic = {**base, "hybrid": {**hybrid, "semanticRatio": 1.0}}
    return HybridSplit(
        keyword, semantic, float(ratio), window.offset, window.limit,
        window.requested_offset, window.requested_limit, window.page_mode,
        window.page, window.hits_per_page, tuple(added),
        bool(params.get("showRankingScore")), bool(params.get("showRankingScoreDetails")),
        primary_key, distinct,
    )


def _field(hit: Mapping[str, Any], path: str) -> Any:
    value: Any = hit
    for part in path.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def merge_hybrid_search(
    split: HybridSplit,
    keyword: Mapping[str, Any],
    semantic: Mapping[str, Any] | None,
    *,
    distinct_values: Callable[[Mapping[str, Any], str], Iterable[Any]],
    strip: Callable[[Mapping[str, Any], Sequence[str]], dict[str, Any]],
) -> dict[str, Any]:
    """The client's answer from the merged keyword answer and the merged semantic one (None
    when the semantic search failed, e.g. no vector to search with: keyword hits only, as
    Meilisearch falls back when embedding fails)."""
    needed = split.offset + split.limit
    keyword_hits = list(keyword.get("hits") or ())
    scores = [hit.get("_rankingScore", 0.0) for hit in keyword_hits]
    good_enough = results_good_enough(scores, needed, split.ratio)
    if semantic is None or good_enough:
        window = [(hit, False) for hit in keyword_hits[split.offset : needed]]
        semantic_count = 0
        source = keyword
        total = _total(keyword)
    else:
        pk = split.primary_key

        def identity(hit: Mapping[str, Any]) -> Any:
            value = _field(hit, pk) if pk else None
            return ("id", str(value)) if value is not None else ("hit", id(hit))

        window, semantic_count = merge_hybrid(
            list(semantic.get("hits") or ()),
            keyword_hits,
            values_of=lambda hit, is_semantic: hybrid_values(
                hit.get("_rankingScoreDetails"), hit.get("_rankingScore", 0.0),
                split.ratio if is_semantic else 1.0 - split.ratio,
            ),
            identity=identity,
            distinct_keys=(
                (lambda hit: distinct_values(hit, split.distinct)) if split.distinct else None
            ),
            offset=split.offset,
            limit=split.limit,
        )
        source = semantic
        # Semantic candidates are every document the filter keeps, keyword ones a subset.
        total = max(_total(semantic), _total(keyword))
    hits = []
    for hit, _ in window:
        cleaned = strip(hit, split.added_fields)
        if not split.show_ranking_score:
            cleaned.pop("_rankingScore", None)
        if not split.show_ranking_score_details:
            cleaned.pop("_rankingScoreDetails", None)
        hits.append(cleaned)
    response: dict[str, Any] = {"hits": hits, "query": keyword.get("query", "")}
    if semantic is not None and not good_enough and "queryVector" in semantic:
        response["queryVector"] = semantic["queryVector"]
    response["processingTimeMs"] = max(
        keyword.get("processingTimeMs", 0), (semantic or {}).get("processingTimeMs", 0)
    )
    if split.page_mode:
        response["hitsPerPage"] = split.hits_per_page
        response["page"] = split.page
        response["totalPages"] = (
            -(-total // split.hits_per_page) if split.hits_per_page else 0
        )
        response["totalHits"] = total
    else:
        response["limit"] = split.shown_limit
        response["offset"] = split.shown_offset
        response["estimatedTotalHits"] = total
    for name in ("facetDistribution", "facetStats"):
        if name in source:
            response[name] = source[name]
    response["semanticHitCount"] = semantic_count
    return response


def _total(response: Mapping[str, Any]) -> int:
    total = response.get("totalHits")
    return response.get("estimatedTotalHits", 0) if total is None else total
