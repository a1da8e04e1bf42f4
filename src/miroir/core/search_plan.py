"""Rewriting a client's search into the query every shard answers, and what the merge must remember.

Owns `plan_node_query(params, settings) -> NodePlan` and `restrict_to_shards(node_params,
shards)`. It never sends anything and never looks at an answer: `miroir.core.merge` reads the
plan back when the node bodies arrive.

The rewrite, and why each part is needed for an exact merge:

- Pagination. The client's window `[offset, offset+limit)` of the merged list can only be cut
  after the merge, so every shard is asked for its own first `offset+limit` hits (`offset: 0`).
  Page mode (`page`/`hitsPerPage`) is translated the same way into `page: 1,
  hitsPerPage: offset+limit`, which keeps the nodes exhaustive (exact `totalHits`). Both are
  first capped by `pagination.maxTotalHits` exactly as Meilisearch caps them:
  `offset' = min(offset, M)`, `limit' = min(limit, M - offset')`.
- Order. `showRankingScore` is forced on. With relevancy rules only, `_rankingScore` is their
  lexicographic fold and orders the merge alone; `showRankingScoreDetails` is forced on only
  when a rule the score leaves out may apply (`needs_rule_details`: a `sort` in the query, a
  custom `field:asc|desc` rule in the settings, a vector or hybrid query), so that the merge can
  compare hits rule by rule. Details are ~40 % of a node's answer. The client sees scores and
  details only if it asked.
- Sort and distinct. When the client narrows `attributesToRetrieve`, the fields of its `sort`
  and the distinct attribute are added so the merge can read them, and listed in
  `NodePlan.added_fields` to be removed again (from the hit, `_formatted` and `_matchesPosition`).
- Shards. A node that holds more shards than the covering set gave it must answer only for those
  it was given: `restrict_to_shards` ANDs `_miroir_shard IN [...]` onto the client's filter
  (array form, so the client's filter is never re-parsed). This needs `_miroir_shard` in the
  nodes' filterableAttributes; the merge strips `_miroir_*` facets it may cause.

Everything else in the request (q, filter, facets, highlighting, cropping, matchingStrategy,
rankingScoreThreshold...) is passed through unchanged: each of those is per-document and gives
the same answer on a shard as on one big node.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from miroir.core.errors import MeiliError
from miroir.core.routing import SHARD_FIELD

DEFAULT_LIMIT = 20
DEFAULT_HITS_PER_PAGE = 20
DEFAULT_MAX_TOTAL_HITS = 1000
DEFAULT_MAX_VALUES_PER_FACET = 100


@dataclass(frozen=True, slots=True)
class SortRule:
    """One entry of the client's `sort`: a field (or `_geoPoint(lat, lng)`) and its direction."""

    field: str
    ascending: bool

    @property
    def is_geo(self) -> bool:
        return self.field.startswith("_geoPoint(")


@dataclass(frozen=True, slots=True)
class NodePlan:
    """The params every shard gets, and what the merge must remember about the client's request.

    `offset`/`limit` are the client's window in the merged list after the maxTotalHits cap;
    `fetch_limit` is how many hits each node was asked for (it grows on a distinct refetch).
    """

    node_params: dict[str, Any]
    query: str
    page_mode: bool
    offset: int
    limit: int
    requested_offset: int
    requested_limit: int
    page: int
    hits_per_page: int
    fetch_limit: int
    max_total_hits: int
    sort: tuple[SortRule, ...]
    distinct: str | None
    added_fields: tuple[str, ...]
    show_ranking_score: bool
    show_ranking_score_details: bool
    facets_requested: bool
    max_values_per_facet: int
    sort_facet_values_by: Mapping[str, str] = field(default_factory=lambda: {"*": "alpha"})

    @property
    def needed(self) -> int:
        """How many merged (post-distinct) hits the client's window reaches into."""
        return self.offset + self.limit


def _given(params: Mapping[str, Any], name: str, default: Any) -> Any:
    """A parameter of a checked request (`miroir.meili.params`), or its default when absent or
    null."""
    value = params.get(name)
    return default if value is None else value


def parse_sort(entries: Sequence[str] | None) -> tuple[SortRule, ...]:
    """The client's `sort` as rules; malformed entries give `invalid_search_sort`."""
    rules: list[SortRule] = []
    for entry in entries or ():
        name, sep, direction = entry.rpartition(":")
        if not sep or not name or direction not in ("asc", "desc"):
            raise MeiliError(
                "invalid_search_sort",
                f"Invalid syntax for the sort parameter: expected expression ending by "
                f"`:asc` or `:desc`, found `{entry}`.",
            )
        rules.append(SortRule(name, direction == "asc"))
    return tuple(rules)


def _settings_int(settings: Mapping[str, Any], section: str, key: str, default: int) -> int:
    value = (settings.get(section) or {}).get(key, default)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# Ranking rules whose scores `_rankingScore` folds in (and `sort`, inert without a query sort).
RELEVANCY_RULES = frozenset(
    ("words", "typo", "proximity", "attribute", "attributeRank", "wordPosition", "exactness",
     "sort")
)


def needs_rule_details(
    params: Mapping[str, Any], settings: Mapping[str, Any], sort: Sequence[SortRule]
) -> bool:
    """Whether the merge may have to compare hits rule by rule: some rule that `_rankingScore`
    does not fold in can apply to this query on this index."""
    if sort or params.get("hybrid") is not None or params.get("vector") is not None:
        return True
    rules = settings.get("rankingRules")
    if not isinstance(rules, list):
        return rules is not None  # absent: Meilisearch's defaults; anything odd: be safe
    return any(not isinstance(rule, str) or rule not in RELEVANCY_RULES for rule in rules)


def plan_node_query(params: Mapping[str, Any], settings: Mapping[str, Any]) -> NodePlan:
    """Rewrite the client's search `params` for the shards of an index with these `settings`.

    `params` has passed `miroir.meili.params.check_search` (types are not checked again here);
    `settings` is the index's GET /settings dict as the client sees it (missing keys take
    Meilisearch's defaults). Raises MeiliError only for a malformed `sort` entry.
    """
    max_total_hits = _settings_int(settings, "pagination", "maxTotalHits", DEFAULT_MAX_TOTAL_HITS)
    max_values = _settings_int(
        settings, "faceting", "maxValuesPerFacet", DEFAULT_MAX_VALUES_PER_FACET
    )
    sort_values_by = (settings.get("faceting") or {}).get("sortFacetValuesBy") or {"*": "alpha"}

    page_mode = params.get("page") is not None or params.get("hitsPerPage") is not None
    requested_offset = _given(params, "offset", 0)
    requested_limit = _given(params, "limit", DEFAULT_LIMIT)
    page = _given(params, "page", 1)
    hits_per_page = _given(params, "hitsPerPage", DEFAULT_HITS_PER_PAGE)
    if page_mode:
        # Page 0 is accepted and returns no hits (totals are still computed).
        raw_offset = (page - 1) * hits_per_page if page > 0 else 0
        raw_limit = hits_per_page if page > 0 else 0
    else:
        raw_offset, raw_limit = requested_offset, requested_limit
    offset = min(raw_offset, max_total_hits)
    limit = min(raw_limit, max_total_hits - offset)

    sort = parse_sort(params.get("sort"))
    distinct = params.get("distinct") or settings.get("distinctAttribute") or None

    node_params = dict(params)
    for name in ("offset", "limit", "page", "hitsPerPage"):
        node_params.pop(name, None)
    fetch_limit = offset + limit
    if page_mode:
        node_params["page"] = 1
        node_params["hitsPerPage"] = fetch_limit
    else:
        node_params["offset"] = 0
        node_params["limit"] = fetch_limit
    show_score = bool(params.get("showRankingScore"))
    show_details = bool(params.get("showRankingScoreDetails"))
    node_params["showRankingScore"] = True
    node_params["showRankingScoreDetails"] = show_details or needs_rule_details(
        params, settings, sort
    )

    added: list[str] = []
    to_retrieve = params.get("attributesToRetrieve")
    if to_retrieve is not None and "*" not in to_retrieve:
        wanted = [rule.field for rule in sort if not rule.is_geo]
        if distinct:
            wanted.append(distinct)
        for name in wanted:
            if name not in to_retrieve and name not in added:
                added.append(name)
        node_params["attributesToRetrieve"] = to_retrieve + added

    return NodePlan(
        node_params=node_params,
        query=params.get("q") or "",
        page_mode=page_mode,
        offset=offset,
        limit=limit,
        requested_offset=requested_offset,
        requested_limit=requested_limit,
        page=page,
        hits_per_page=hits_per_page,
        fetch_limit=fetch_limit,
        max_total_hits=max_total_hits,
        sort=sort,
        distinct=distinct,
        added_fields=tuple(added),
        show_ranking_score=show_score,
        show_ranking_score_details=show_details,
        facets_requested=params.get("facets") is not None,
        max_values_per_facet=max_values,
        sort_facet_values_by=dict(sort_values_by),
    )


def with_fetch_limit(plan: NodePlan, fetch_limit: int) -> NodePlan:
    """The same plan asking every node for `fetch_limit` hits (a distinct refetch)."""
    node_params = dict(plan.node_params)
    node_params["hitsPerPage" if plan.page_mode else "limit"] = fetch_limit
    return replace(plan, node_params=node_params, fetch_limit=fetch_limit)


def shard_filter(shards: Sequence[int]) -> str:
    """The filter expression selecting exactly `shards`."""
    return f"{SHARD_FIELD} IN [{', '.join(str(int(s)) for s in sorted(shards))}]"


def restrict_to_shards(node_params: Mapping[str, Any], shards: Sequence[int]) -> dict[str, Any]:
    """`node_params` answering only for `shards`: the client's filter AND the shard filter.

    The array form of `filter` is an AND of its elements, so the client's filter (string or
    array) is kept verbatim and never re-parsed here.
    """
    restricted = dict(node_params)
    own = shard_filter(shards)
    current = restricted.get("filter")
    if current is None or current == "" or current == []:
        restricted["filter"] = own
    elif isinstance(current, list):
        restricted["filter"] = [*current, own]
    else:
        restricted["filter"] = [current, own]
    return restricted
