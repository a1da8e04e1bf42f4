"""Laws of the search merger (miroir.core.merge, merge_order, merge_facets, search_plan).

The model: a single node holding a whole generated corpus. Every document gets an integer rank
per relevancy rule and values for the sort fields; the single node's order is the
lexicographic order of those integers and values in the configured rule order, decided here
with plain comparisons (never with the merger's keys). The corpus is split over shards; each
"shard node" answers like Meilisearch would (its documents in that order, its own distinct, its
own truncation, totals and facet counts) with details rendered in Meilisearch's JSON shape.
The merger must then give the single node's answer, up to the order of exact ties.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from miroir.core.filters import normalize_facet
from miroir.core.merge import merge_search, merge_search_outcome, order_hits
from miroir.core.merge_documents import merge_documents, plan_documents_query
from miroir.core.merge_facets import merge_facet_search, merge_value_counts
from miroir.core.merge_federated import merge_federated, plan_federated_query
from miroir.core.merge_order import RankingKeys, ranking_key, sort_value_key
from miroir.core.search_plan import plan_node_query, restrict_to_shards

RELEVANCY = ["words", "typo", "proximity", "attributeRank", "wordPosition", "exactness"]
SORT_VALUES = st.one_of(
    st.none(), st.integers(-5, 5), st.sampled_from(["a", "B", "ab", "b", "ba", "é", ""])
)


# ----------------------------------------------------------------------------- the model


def compare_sort_values(a: Any, b: Any, ascending: bool) -> int:
    """Meilisearch's sort buckets, written out: numbers, strings, then no value."""

    def bucket(v: Any) -> int:
        return 2 if v is None else (0 if isinstance(v, int | float) else 1)

    if bucket(a) != bucket(b):
        return -1 if bucket(a) < bucket(b) else 1
    if a is None or a == b:
        return 0
    if isinstance(a, str):
        smaller = a.encode() < b.encode()
    else:
        smaller = a < b
    first = smaller if ascending else not smaller
    return -1 if first else 1


@st.composite
def scenarios(draw, *, with_sort: bool | None = None, with_distinct: bool | None = None):
    rules = draw(st.lists(st.sampled_from(RELEVANCY), min_size=1, max_size=5, unique=True))
    maxes = {rule: draw(st.integers(1, 4)) for rule in rules}
    use_sort = draw(st.booleans()) if with_sort is None else with_sort
    sort_fields: list[tuple[str, bool]] = []
    if use_sort:
        rules.insert(draw(st.integers(0, len(rules))), "sort")
        for name in draw(st.lists(st.sampled_from(["s1", "s2"]), min_size=1, max_size=2, unique=True)):
            sort_fields.append((name, draw(st.booleans())))
    use_distinct = draw(st.booleans()) if with_distinct is None else with_distinct
    shards = draw(st.integers(1, 4))
    docs = []
    for doc_id in range(draw(st.integers(0, 30))):
        docs.append({
            "id": doc_id,
            "ranks": {rule: draw(st.integers(1, maxes[rule])) for rule in maxes},
            "s1": draw(SORT_VALUES),
            "s2": draw(SORT_VALUES),
            "g": draw(st.sampled_from(["x", "y", "z", "w", None])),
            "color": draw(st.sampled_from(["red", "blue", "green", 3, 10, 2])),
            "year": draw(st.integers(1900, 2030)),
            "shard": draw(st.integers(0, shards - 1)),
        })
    page_mode = draw(st.booleans())
    params: dict[str, Any] = {"q": "query"}
    if page_mode:
        params["page"] = draw(st.integers(0, 4))
        params["hitsPerPage"] = draw(st.integers(0, 8))
    else:
        params["offset"] = draw(st.integers(0, 12))
        params["limit"] = draw(st.integers(0, 12))
    if sort_fields and draw(st.integers(0, 3)):
        params["sort"] = [f"{name}:{'asc' if asc else 'desc'}" for name, asc in sort_fields]
    # Otherwise the sort fields act as custom `field:asc` ranking rules of the settings: the
    # details report them although the query has no `sort`.
    if use_distinct:
        params["distinct"] = "g"
    params["showRankingScore"] = draw(st.booleans())
    params["facets"] = ["color", "year"]
    settings = {
        "pagination": {"maxTotalHits": draw(st.sampled_from([1000, 7, 15]))},
        "faceting": {"maxValuesPerFacet": draw(st.integers(1, 7)),
                     "sortFacetValuesBy": {"*": "alpha"}},
    }
    return {"rules": rules, "maxes": maxes, "sort": sort_fields, "docs": docs,
            "shards": shards, "params": params, "settings": settings}


def single_node_order(sc: dict) -> list[dict]:
    def cmp(a: dict, b: dict) -> int:
        for rule in sc["rules"]:
            if rule == "sort":
                for name, asc in sc["sort"]:
                    c = compare_sort_values(a[name], b[name], asc)
                    if c:
                        return c
            elif a["ranks"][rule] != b["ranks"][rule]:
                return -1 if a["ranks"][rule] > b["ranks"][rule] else 1
        return a["id"] - b["id"]  # the single node's tie order: insertion

    return sorted(sc["docs"], key=functools.cmp_to_key(cmp))


def tie_class(sc: dict, doc: dict) -> tuple:
    """Two documents in one class have identical details: their order is not specified."""
    return (tuple(doc["ranks"][r] for r in sc["maxes"]),
            tuple(repr(doc[name]) for name, _ in sc["sort"]))


def global_score(sc: dict, doc: dict) -> float:
    """Meilisearch's fold of the relevancy ranks (reference/meilisearch-ranking.md §1)."""
    rank, maximum = 1, 1
    for rule in sc["rules"]:
        if rule != "sort":
            rank = max(rank - 1, 0) * sc["maxes"][rule] + doc["ranks"][rule]
            maximum *= sc["maxes"][rule]
    return rank / maximum


def render_hit(sc: dict, doc: dict) -> dict:
    details: dict[str, Any] = {}
    for rule in sc["rules"]:
        if rule == "sort":
            for name, asc in sc["sort"]:
                value = float(doc[name]) if isinstance(doc[name], int) else doc[name]
                details[f"{name}:{'asc' if asc else 'desc'}"] = {"order": len(details), "value": value}
        else:
            details[rule] = {"order": len(details),
                             "score": doc["ranks"][rule] / sc["maxes"][rule]}
    hit = {"id": doc["id"], "g": doc["g"], "s1": doc["s1"], "s2": doc["s2"],
           "_miroir_shard": doc["shard"]}
    hit["_rankingScore"] = global_score(sc, doc)
    hit["_rankingScoreDetails"] = details
    return hit


def local_distinct(docs: list[dict], attribute: str | None) -> list[dict]:
    if not attribute:
        return docs
    seen, kept = set(), []
    for doc in docs:
        if doc[attribute] is not None and doc[attribute] in seen:
            continue
        if doc[attribute] is not None:
            seen.add(doc[attribute])
        kept.append(doc)
    return kept


def facet_counts(docs: list[dict], name: str, max_values: int) -> dict[str, int]:
    counts: dict[Any, int] = {}
    for doc in docs:
        counts[doc[name]] = counts.get(doc[name], 0) + 1
    ordered = sorted(counts, key=lambda v: (0, v, "") if isinstance(v, int) else (1, 0, v))
    return {str(v): counts[v] for v in ordered[:max_values]}


def retrieve(hit: dict, attributes: list[str] | None) -> dict:
    if attributes is None:
        return hit
    return {k: v for k, v in hit.items() if k in attributes or k.startswith("_ranking")}


def node_answer(sc: dict, node_docs: list[dict], node_params: dict) -> dict:
    """A shard node's Meilisearch-shaped answer to `node_params` (docs in its own order)."""
    maximum = sc["settings"]["pagination"]["maxTotalHits"]
    max_values = sc["settings"]["faceting"]["maxValuesPerFacet"]
    ranked = local_distinct(node_docs, node_params.get("distinct"))
    if "page" in node_params:
        fetch = min(node_params["hitsPerPage"], maximum)
    else:
        fetch = min(node_params["limit"], maximum)
    body: dict[str, Any] = {
        "hits": [retrieve(render_hit(sc, doc), node_params.get("attributesToRetrieve"))
                 for doc in ranked[:fetch]],
        "query": node_params["q"],
        "processingTimeMs": len(node_docs),
        "facetDistribution": {
            "color": facet_counts(node_docs, "color", max_values),
            "year": facet_counts(node_docs, "year", max_values),
            "_miroir_shard": facet_counts(node_docs, "shard", max_values),
        },
        "facetStats": ({"year": {"min": float(min(d["year"] for d in node_docs)),
                                 "max": float(max(d["year"] for d in node_docs))}}
                       if node_docs else {}),
    }
    total = min(len(ranked), maximum)
    body["totalHits" if "page" in node_params else "estimatedTotalHits"] = total
    return body


def run_merge(sc: dict) -> tuple[dict, list[dict]]:
    """Scatter the plan to every shard (refetching while distinct asks), merge, and the docs."""
    plan = plan_node_query(sc["params"], sc["settings"])
    order = single_node_order(sc)
    per_shard = [[d for d in order if d["shard"] == s] for s in range(sc["shards"])]
    for _ in range(20):
        bodies = [node_answer(sc, docs, plan.node_params) for docs in per_shard]
        outcome = merge_search_outcome(plan, bodies)
        if outcome.refetch is None:
            return outcome.response, order
        assert outcome.refetch.fetch_limit > plan.fetch_limit
        plan = outcome.refetch
    raise AssertionError("distinct refetch did not converge")


def expected_window(sc: dict, order: list[dict]) -> tuple[list[dict], int]:
    params, maximum = sc["params"], sc["settings"]["pagination"]["maxTotalHits"]
    kept = local_distinct(order, params.get("distinct"))
    if "page" in params:
        page, per_page = params["page"], params["hitsPerPage"]
        offset, limit = ((page - 1) * per_page, per_page) if page > 0 else (0, 0)
    else:
        offset, limit = params["offset"], params["limit"]
    offset = min(offset, maximum)
    limit = min(limit, maximum - offset)
    return kept[offset : offset + limit], min(len(kept), maximum)


# ----------------------------------------------------------------------------- laws


@given(scenarios())
@example({"rules": ["words", "sort"], "maxes": {"words": 2}, "sort": [("s1", False)],
          "docs": [{"id": 0, "ranks": {"words": 2}, "s1": "ab", "s2": None, "g": "x",
                    "color": 3, "year": 2000, "shard": 0},
                   {"id": 1, "ranks": {"words": 2}, "s1": "a", "s2": None, "g": "x",
                    "color": "red", "year": 1999, "shard": 1}],
          "shards": 2, "params": {"q": "query", "offset": 0, "limit": 5, "sort": ["s1:desc"],
                                  "distinct": "g", "facets": ["color", "year"]},
          "settings": {"pagination": {"maxTotalHits": 1000},
                       "faceting": {"maxValuesPerFacet": 3, "sortFacetValuesBy": {"*": "alpha"}}}})
# Found by this property: a custom `s1:desc` ranking rule reports values with no query `sort`.
@example({"rules": ["sort", "words"], "maxes": {"words": 2}, "sort": [("s1", False)],
          "docs": [{"id": 0, "ranks": {"words": 2}, "s1": 1, "s2": None, "g": None,
                    "color": 3, "year": 2000, "shard": 0},
                   {"id": 1, "ranks": {"words": 1}, "s1": 5, "s2": None, "g": None,
                    "color": 3, "year": 2000, "shard": 1}],
          "shards": 2, "params": {"q": "query", "offset": 0, "limit": 5,
                                  "facets": ["color", "year"]},
          "settings": {"pagination": {"maxTotalHits": 1000},
                       "faceting": {"maxValuesPerFacet": 3, "sortFacetValuesBy": {"*": "alpha"}}}})
def test_merged_search_equals_the_single_node_up_to_exact_ties(sc):
    response, order = run_merge(sc)
    window, total = expected_window(sc, order)
    by_id = {doc["id"]: doc for doc in sc["docs"]}
    assert [tie_class(sc, by_id[h["id"]]) for h in response["hits"]] == [
        tie_class(sc, doc) for doc in window]
    classes = [tie_class(sc, doc) for doc in sc["docs"]]
    for hit, doc in zip(response["hits"], window, strict=True):
        if classes.count(tie_class(sc, doc)) == 1:
            assert hit["id"] == doc["id"]
    if "page" in sc["params"] or not sc["params"].get("distinct"):
        key = "totalHits" if "page" in sc["params"] else "estimatedTotalHits"
        assert response[key] == total
    else:
        # Offset/limit with distinct: an estimate, never below the truth nor above the shards' sum.
        maximum = sc["settings"]["pagination"]["maxTotalHits"]
        shard_sum = sum(min(len(local_distinct([d for d in order if d["shard"] == s], "g")), maximum)
                        for s in range(sc["shards"]))
        assert total <= response["estimatedTotalHits"] <= min(shard_sum, maximum)


@given(scenarios())
def test_distinct_keeps_at_most_one_hit_per_value(sc):
    response, _ = run_merge(sc)
    if sc["params"].get("distinct"):
        values = [h["g"] for h in response["hits"] if h["g"] is not None]
        assert len(values) == len(set(values))
    assert len({h["id"] for h in response["hits"]}) == len(response["hits"])


@given(scenarios())
def test_facets_are_the_single_nodes_under_alpha_order(sc):
    response, _ = run_merge(sc)
    max_values = sc["settings"]["faceting"]["maxValuesPerFacet"]
    expected = {name: facet_counts(sc["docs"], name, max_values) for name in ("color", "year")}
    got = response["facetDistribution"]
    assert {k: list(v.items()) for k, v in got.items()} == {
        k: list(v.items()) for k, v in expected.items()}
    if sc["docs"]:
        years = [d["year"] for d in sc["docs"]]
        assert response["facetStats"] == {"year": {"min": min(years), "max": max(years)}}
    else:
        assert response["facetStats"] == {}


@given(scenarios(), st.booleans())
def test_reserved_fields_never_reach_the_client_and_scores_only_when_asked(sc, narrow):
    if narrow:
        sc["params"]["attributesToRetrieve"] = ["id"]
    response, _ = run_merge(sc)
    for hit in response["hits"]:
        assert not any(k.startswith("_miroir_") for k in hit)
        fields = {"id"} if narrow else {"id", "g", "s1", "s2"}
        assert set(hit) - {"_rankingScore"} == fields
        assert ("_rankingScore" in hit) == bool(sc["params"]["showRankingScore"])
        assert "_rankingScoreDetails" not in hit


@given(scenarios(with_sort=False))
def test_without_sort_global_score_orders_like_the_rule_by_rule_key(sc):
    hits = [render_hit(sc, d) for d in sc["docs"]]
    by_score = sorted(hits, key=lambda h: -h["_rankingScore"])
    by_rules = sorted(hits, key=lambda h: ranking_key(h["_rankingScoreDetails"]))
    assert [ranking_key(h["_rankingScoreDetails"]) for h in by_score] == [
        ranking_key(h["_rankingScoreDetails"]) for h in by_rules]


@given(SORT_VALUES, SORT_VALUES, st.booleans())
@example("ab", "a", False)
@example(3, "a", False)
@example(None, -1, True)
def test_sort_value_key_orders_like_meilisearch(a, b, ascending):
    expected = compare_sort_values(a, b, ascending)
    ka, kb = sort_value_key(a, ascending), sort_value_key(b, ascending)
    assert (ka < kb, ka == kb, ka > kb) == (expected < 0, expected == 0, expected > 0)


@given(st.integers(0, 3000), st.integers(0, 3000), st.integers(0, 2000))
def test_plan_asks_every_node_for_the_capped_window_from_zero(offset, limit, maximum):
    plan = plan_node_query({"offset": offset, "limit": limit},
                           {"pagination": {"maxTotalHits": maximum}})
    assert plan.offset == min(offset, maximum)
    assert plan.offset + plan.limit == min(offset + limit, maximum)
    assert plan.node_params["offset"] == 0
    assert plan.node_params["limit"] == plan.offset + plan.limit
    assert plan.node_params["showRankingScore"]


@given(
    st.lists(st.sampled_from(RELEVANCY + ["sort", "attribute", "year:desc", "title:asc"]),
             unique=True),
    st.booleans(), st.booleans(), st.sampled_from([None, "vector", "hybrid"]),
)
def test_details_are_asked_for_exactly_when_a_rule_outside_the_score_may_apply(
    rules, query_sort, client_asks, semantic
):
    """`_rankingScore` folds the relevancy rules only: the nodes must send details when a sort,
    a custom `field:asc|desc` rule or a vector/hybrid ranking can apply (or the client wants
    them), and need not otherwise (details are ~40 % of an answer)."""
    params: dict[str, Any] = {"q": "night"}
    if query_sort:
        params["sort"] = ["year:asc"]
    if client_asks:
        params["showRankingScoreDetails"] = True
    if semantic == "vector":
        params["vector"] = [0.1, 0.2]
    elif semantic == "hybrid":
        params["hybrid"] = {"embedder": "default", "semanticRatio": 0.5}
    plan = plan_node_query(params, {"rankingRules": rules})
    value_rule = any(rule.endswith((":asc", ":desc")) for rule in rules)
    expected = query_sort or client_asks or semantic is not None or value_rule
    assert plan.node_params["showRankingScoreDetails"] is expected
    assert plan.show_ranking_score_details is client_asks
    # Without settings (an index on Meilisearch's default rules) only the query decides.
    assert plan_node_query({"q": "x"}, {}).node_params["showRankingScoreDetails"] is False


@given(st.integers(0, 50), st.integers(0, 50))
def test_plan_translates_pages_into_the_first_page_of_the_whole_window(page, per_page):
    plan = plan_node_query({"page": page, "hitsPerPage": per_page}, {})
    assert plan.node_params["page"] == 1
    assert "offset" not in plan.node_params and "limit" not in plan.node_params
    if page == 0:
        assert plan.limit == 0
    else:
        assert plan.node_params["hitsPerPage"] == min(page * per_page, 1000)


@given(st.one_of(st.none(), st.text(max_size=10),
                 st.lists(st.one_of(st.text(max_size=5), st.lists(st.text(max_size=5))),
                          max_size=3)),
       st.lists(st.integers(0, 63), min_size=1, max_size=5, unique=True))
def test_shard_restriction_keeps_the_clients_filter_verbatim(client_filter, shards):
    params = {"q": "x"} if client_filter is None else {"q": "x", "filter": client_filter}
    restricted = restrict_to_shards(params, shards)
    own = f"_miroir_shard IN [{', '.join(map(str, sorted(shards)))}]"
    got = restricted["filter"]
    if client_filter in (None, "", []):
        assert got == own
    elif isinstance(client_filter, list):
        assert got == [*client_filter, own]
    else:
        assert got == [client_filter, own]
    assert params.get("filter") == client_filter  # input untouched


@given(st.lists(st.dictionaries(st.sampled_from(["a", "B", "c", "1", "20", "3.5"]),
                                st.integers(1, 9)), max_size=4),
       st.integers(1, 6))
def test_count_order_sums_exactly_what_the_shards_sent(per_shard, max_values):
    merged = merge_value_counts(per_shard, "count", max_values)
    totals: dict[str, int] = {}
    for counts in per_shard:
        for value, count in counts.items():
            totals[value] = totals.get(value, 0) + count
    assert all(merged[v] == totals[v] for v in merged)
    assert len(merged) == min(max_values, len(totals))
    # Numbers before strings; inside each, highest counts first, and nothing left out
    # outranks what was kept.
    def is_number(value):
        return value[0].isdigit()

    kinds = [is_number(v) for v in merged]
    assert kinds == sorted(kinds, reverse=True)
    for kind in (True, False):
        kept = [c for v, c in merged.items() if is_number(v) == kind]
        assert kept == sorted(kept, reverse=True)
        left_out = [c for v, c in totals.items() if v not in merged and is_number(v) == kind]
        if left_out:
            assert not any(not is_number(v) for v in merged) if kind else True
            assert all(c <= min(kept, default=c) for c in left_out)


@given(st.lists(st.lists(st.tuples(st.sampled_from(["x", "y", "z"]), st.integers(1, 5)),
                         unique_by=lambda t: t[0]), max_size=3))
def test_facet_search_sums_counts_per_value(per_shard):
    bodies = [{"facetHits": [{"value": v, "count": c} for v, c in hits],
               "facetQuery": "q", "processingTimeMs": i} for i, hits in enumerate(per_shard)]
    merged = merge_facet_search({"facetName": "g", "facetQuery": "q"}, {}, bodies)
    totals: dict[str, int] = {}
    for hits in per_shard:
        for v, c in hits:
            totals[v] = totals.get(v, 0) + c
    assert {h["value"]: h["count"] for h in merged["facetHits"]} == totals
    assert [h["value"] for h in merged["facetHits"]] == sorted(totals)
    assert merged["processingTimeMs"] == max(range(len(per_shard)), default=0)


def test_page_mode_reports_pages_from_the_merged_total():
    sc_params = {"q": "", "page": 2, "hitsPerPage": 3}
    plan = plan_node_query(sc_params, {})
    bodies = [{"hits": [], "totalHits": 4, "processingTimeMs": 1},
              {"hits": [], "totalHits": 3, "processingTimeMs": 2}]
    response = merge_search(plan, bodies)
    assert response["totalHits"] == 7
    assert response["totalPages"] == math.ceil(7 / 3)
    assert (response["page"], response["hitsPerPage"]) == (2, 3)


# ----------------------------------------------------------------------------- documents


# Ids differing only by case tie once normalized; ties are left to the nodes' order.
PRIMARY_KEYS = st.one_of(st.integers(-50, 50), st.text("abcB_-09", min_size=1, max_size=3))


@given(st.lists(st.tuples(PRIMARY_KEYS, st.integers(0, 3)), unique_by=lambda t: repr(t[0]),
                max_size=25),
       st.integers(0, 10), st.integers(0, 10), st.booleans())
@example([(1, 0), ("1a", 1), (-3, 1)], 0, 2, True)
def test_documents_are_listed_by_primary_key_across_shards(docs, offset, limit, narrow):
    def cmp(a, b):
        # Documents sort string facets normalized (lower-case, NFKD), as Meilisearch stores them.
        left, right = a["id"], b["id"]
        if isinstance(left, str) and isinstance(right, str):
            left, right = normalize_facet(left), normalize_facet(right)
        return compare_sort_values(left, right, True)

    corpus = [{"id": pk, "title": f"t{pk}", "_miroir_shard": shard} for pk, shard in docs]
    params: dict[str, Any] = {"offset": offset, "limit": limit}
    if narrow:
        params["fields"] = ["title"]
    plan = plan_documents_query(params, "id", order="primary_key")
    assert plan.node_params["sort"] == ["id:asc"]
    bodies = []
    for shard in range(4):
        own = sorted((d for d in corpus if d["_miroir_shard"] == shard), key=functools.cmp_to_key(cmp))
        page = own[: plan.node_params["limit"]]
        if narrow:
            page = [{k: d[k] for k in plan.node_params["fields"]} for d in page]
        bodies.append({"results": page, "offset": 0, "limit": plan.node_params["limit"],
                       "total": len(own)})
    merged = merge_documents(plan, bodies)
    expected = sorted(corpus, key=functools.cmp_to_key(cmp))[offset : offset + limit]
    if narrow:
        assert merged["results"] == [{"title": d["title"]} for d in expected]
    else:
        assert merged["results"] == [{"id": d["id"], "title": d["title"]} for d in expected]
    assert (merged["offset"], merged["limit"], merged["total"]) == (offset, limit, len(corpus))


# ----------------------------------------------------------------------------- federation


@given(st.lists(st.tuples(st.integers(0, 2), st.integers(0, 8), st.integers(0, 2)), max_size=25),
       st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=3, max_size=3),
       st.integers(0, 6), st.integers(0, 8))
def test_federated_merge_orders_by_weighted_score_then_query_position(hits, weights, offset, limit):
    """Without sort, federation ranks by global x weight; full ties by queriesPosition."""
    body = {"federation": {"offset": offset, "limit": limit},
            "queries": [{"indexUid": "i", "q": "x", "federationOptions": {"weight": w}}
                        for w in weights]}
    plan = plan_federated_query(body)
    assert plan.node_body["federation"] == {"offset": 0, "limit": offset + limit}
    corpus = []
    for n, (position, rank, shard) in enumerate(hits):
        score = rank / 8
        corpus.append({"id": n, "_miroir_shard": shard, "_rankingScore": score,
                       "_rankingScoreDetails": {"words": {"order": 0, "score": score}},
                       "_federation": {"indexUid": "i", "queriesPosition": position,
                                       "weightedRankingScore": score * weights[position]}})

    def single_node_key(hit):
        return (-hit["_federation"]["weightedRankingScore"], hit["_federation"]["queriesPosition"])

    bodies = []
    for shard in range(3):
        own = sorted((h for h in corpus if h["_miroir_shard"] == shard), key=single_node_key)
        bodies.append({"hits": own[: offset + limit], "estimatedTotalHits": len(own),
                       "processingTimeMs": shard})
    merged = merge_federated(plan, bodies)
    expected = sorted(corpus, key=single_node_key)[offset : offset + limit]
    by_id = {h["id"]: h for h in corpus}
    assert [single_node_key(by_id[h["id"]]) for h in merged["hits"]] == [
        single_node_key(h) for h in expected]
    assert all(set(h) == {"id", "_federation"} for h in merged["hits"])
    assert merged["estimatedTotalHits"] == len(corpus)


def test_a_hidden_sort_value_ties_instead_of_failing():
    # Meilisearch writes {"order", "value": "<hidden>"}; a bare "<hidden>" must not crash either.
    shaped = {"words": {"order": 0, "score": 0.5}, "<hidden-rule-1>": {"order": 1, "value": "<hidden>"}}
    bare = {"words": {"order": 0, "score": 0.5}, "<hidden-rule-1>": "<hidden>"}
    assert ranking_key(shaped) == ranking_key(bare)
    better = {"words": {"order": 0, "score": 0.75}, "<hidden-rule-1>": "<hidden>"}
    assert ranking_key(better) < ranking_key(bare)


@given(st.dictionaries(st.sampled_from(["title", "year", "_miroir_shard", "_miroir_version",
                                        "_rankingScore", "a_miroir_"]),
                       st.integers(0, 3), min_size=1), st.booleans())
def test_every_reserved_field_is_stripped_from_hits_and_formatting(fields, keep_score):
    hits = []
    for n in range(3):
        hit = {"id": n, **fields, "_rankingScore": 0.5,
               "_rankingScoreDetails": {"words": {"order": 0, "score": 0.5}}}
        hit["_formatted"] = {k: str(v) for k, v in hit.items() if not k.startswith("_ranking")}
        hit["_matchesPosition"] = {k: [] for k in fields}
        hits.append(hit)
    plan = plan_node_query({"q": "x", "showRankingScore": keep_score}, {})
    before = copy.deepcopy(hits)
    response = merge_search(plan, [{"hits": hits, "estimatedTotalHits": 3}])
    assert hits == before  # the node bodies are not mutated
    for hit in response["hits"]:
        for part in (hit, hit["_formatted"], hit["_matchesPosition"]):
            assert not any(k.startswith("_miroir_") for k in part)
        assert ("_rankingScore" in hit) == keep_score
        assert set(hit) - {"_formatted", "_matchesPosition", "_rankingScore"} == {
            k for k in fields if not k.startswith("_")} | {"id"}


@given(st.lists(st.tuples(st.one_of(st.none(), st.floats(0, 1e6)), st.integers(0, 2)),
                max_size=12), st.booleans())
def test_geo_sort_orders_by_distance_with_missing_points_last(points, ascending):
    direction = "asc" if ascending else "desc"
    name = f"_geoPoint(48.8, 2.3):{direction}"
    hits = [{"id": n, "_rankingScore": 1.0, "_miroir_shard": shard, "_rankingScoreDetails": {
        name: {"order": 0, "value": None if d is None else {"lat": 1.0, "lng": 2.0},
               "distance": d}}} for n, (d, shard) in enumerate(points)]
    bodies = []
    for shard in range(3):
        own = [h for h in hits if h["_miroir_shard"] == shard]
        own.sort(key=lambda h: (h["_rankingScoreDetails"][name]["distance"] is None,
                                (1 if ascending else -1)
                                * (h["_rankingScoreDetails"][name]["distance"] or 0)))
        bodies.append({"hits": own, "estimatedTotalHits": len(own)})
    plan = plan_node_query({"q": "", "sort": [f"_geoPoint(48.8, 2.3):{direction}"],
                            "limit": 20}, {})
    got = [points[h["id"]][0] for h in merge_search(plan, bodies)["hits"]]
    present = [d for d in got if d is not None]
    assert present == sorted(present, reverse=not ascending)
    assert got == present + [None] * (len(got) - len(present))
    assert len(got) == len(points)


@given(scenarios(with_sort=True), st.data())
def test_compiled_keys_order_like_the_general_keys_even_when_shapes_differ(sc, data):
    hits = [render_hit(sc, d) for d in single_node_order(sc)]
    for hit in hits:
        if data.draw(st.integers(0, 9)) == 0:  # a cutoff adds an entry to some hits
            hit["_rankingScoreDetails"] = {**hit["_rankingScoreDetails"],
                                           "skipped": {"order": 99}}
    ordered = order_hits([{"hits": hits[::2]}, {"hits": hits[1::2]}])
    general = RankingKeys()
    keys = [general.hit_key(h) for h in ordered]
    assert keys == sorted(keys)


@given(st.lists(st.lists(st.one_of(st.none(), st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])),
                         max_size=6), min_size=1, max_size=4))
def test_global_score_order_is_stable_and_survives_hits_without_a_score(scores_per_node):
    """Without value rules the order is `_rankingScore` descending, ties in node-then-position
    order; a hit without a score counts as 0 (never an error)."""
    bodies = [
        {"hits": [{"id": f"{n}-{i}", **({} if s is None else {"_rankingScore": s}),
                   "_rankingScoreDetails": {"words": {"order": 0, "score": s or 0.0}}}
                  for i, s in enumerate(scores)]}
        for n, scores in enumerate(scores_per_node)
    ]
    everything = [(n, i, s or 0.0) for n, scores in enumerate(scores_per_node)
                  for i, s in enumerate(scores)]
    expected = [f"{n}-{i}" for n, i, _ in sorted(everything, key=lambda t: (-t[2], t[0], t[1]))]
    assert [hit["id"] for hit in order_hits(bodies)] == expected


# ----------------------------------------------------------------------------- hybrid


SCORES = st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.5, 0.75, 0.9, 1.0])


@given(st.lists(st.tuples(st.integers(0, 12), SCORES), max_size=10),
       st.lists(st.tuples(st.integers(0, 12), SCORES), max_size=10),
       st.sampled_from([0.1, 0.3, 0.5, 0.8]), st.integers(0, 4), st.integers(0, 8))
def test_hybrid_merge_is_a_weighted_merge_sort_without_duplicates(semantic, keyword, ratio,
                                                                   offset, limit):
    """Two lists each best first: the mix is one list by weighted score, a semantic hit first
    on a tie, each document at its first place, then the window (Meilisearch's merge_by)."""
    from miroir.core.merge_hybrid import hybrid_values, merge_hybrid

    def hits(pairs, semantic_side):
        seen, out = set(), []
        for doc, score in pairs:
            if doc in seen:
                continue  # one list never holds a document twice
            seen.add(doc)
            details = ({"vectorSort": {"order": 0, "similarity": score}} if semantic_side
                       else {"words": {"order": 0, "score": score}})
            out.append({"id": doc, "_rankingScore": score, "_rankingScoreDetails": details})
        return sorted(out, key=lambda h: -h["_rankingScore"])

    sem, key = hits(semantic, True), hits(keyword, False)
    merged, count = merge_hybrid(
        sem, key,
        values_of=lambda hit, is_sem: hybrid_values(
            hit["_rankingScoreDetails"], hit["_rankingScore"], ratio if is_sem else 1 - ratio),
        identity=lambda hit: hit["id"], offset=offset, limit=limit)
    tagged = [(-h["_rankingScore"] * ratio, 0, i, h, True) for i, h in enumerate(sem)]
    tagged += [(-h["_rankingScore"] * (1 - ratio), 1, i, h, False) for i, h in enumerate(key)]
    tagged.sort(key=lambda t: t[:3])
    expected, seen = [], set()
    for *_, hit, from_semantic in tagged:
        if hit["id"] not in seen:
            seen.add(hit["id"])
            expected.append((hit["id"], from_semantic))
    expected = expected[offset: offset + limit]
    assert [(h["id"], s) for h, s in merged] == expected
    assert count == sum(1 for _, s in expected if s)
