"""Ranking rules, per-document ranks, `_rankingScore` and `_rankingScoreDetails`.

Owns: the rule list a query runs under (settings' rankingRules, `sort` expanded from the
query, relevancy rules dropped for a placeholder search, `words` added or removed per
matchingStrategy), each rule's `Rank{rank, max_rank}` for one document, the sort values, the
global score (Meilisearch's `merge` fold: lexicographic in rule order) and the details JSON.

The law this module keeps: every rank and every detail is a pure function of (document, query,
settings). Nothing here reads another document or a corpus statistic, so a document scores the
same on any shard, and merging shards by these details is exact. Formulas and their sources:
shared/reference/meilisearch-ranking.md §1-§3.

Must never: depend on the candidate set, on document counts or on internal ids (ties between
equal rank vectors are broken by the caller, by internal id).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from miroir.core.errors import MeiliError
from miroir.devnode.search.index import codes_tuple
from miroir.devnode.search.query import ParsedQuery, Term

if TYPE_CHECKING:
    from miroir.devnode.search.index import IndexSearcher

RELEVANCY_RULES = (
    "words",
    "typo",
    "proximity",
    "attribute",
    "attributeRank",
    "wordPosition",
    "exactness",
)
_CUSTOM_SORT = re.compile(r"^(.+):(asc|desc)$")
_MATCH_TYPES = {3: "exactMatch", 2: "matchesStart", 1: "noExactMatch"}
POSITION_BITS = 16
POSITION_MASK = (1 << POSITION_BITS) - 1


@dataclass(frozen=True)
class Rule:
    kind: str  # a relevancy rule name, or "sort"
    field: str = ""
    ascending: bool = True


def merge_rank(outer: tuple[int, int], inner: tuple[int, int]) -> tuple[int, int]:
    """Meilisearch's `Rank::merge`: the inner rule refines the outer one."""
    rank = max(outer[0] - 1, 0) * inner[1] + inner[0]
    return rank, outer[1] * inner[1]


def global_score(ranks: list[tuple[int, int]]) -> float:
    """The fold of merge_rank from {1, 1}; no ranks (placeholder, sort only) scores 1.0."""
    acc = (1, 1)
    for rank in ranks:
        acc = merge_rank(acc, rank)
    return acc[0] / acc[1]


def position_cost(distance: int) -> int:
    """wordPosition's cost of a distance between document and query positions."""
    for limit, cost in (
        (0, 0),
        (1, 1),
        (4, 2),
        (7, 3),
        (11, 4),
        (16, 5),
        (24, 6),
        (64, 7),
        (256, 8),
        (1024, 9),
    ):
        if distance <= limit:
            return cost
    return 10


def bucketed_position(position: int) -> int:
    if position < 16:
        return position
    if position <= 23:
        return 24
    return 1 << (position - 1).bit_length()


BUCKETED = [bucketed_position(p) for p in range(POSITION_MASK + 1)]
_COST_TABLES: dict[int, list[int]] = {}
_MAX_COST_TABLES = 64  # each table is 65,536 ints


def position_costs(query_position: int) -> list[int]:
    """position_cost(|BUCKETED[p] - query_position|) for every position p, built once per
    query position: wordPosition then costs one list lookup per occurrence."""
    table = _COST_TABLES.get(query_position)
    if table is None:
        by_bucket = {b: position_cost(abs(b - query_position)) for b in set(BUCKETED)}
        table = [by_bucket[b] for b in BUCKETED]
        # Bounded: positions are small in practice, but a long phrase can push them anywhere.
        if len(_COST_TABLES) < _MAX_COST_TABLES:
            _COST_TABLES[query_position] = table
    return table


def is_constant(rule: Rule, query: ParsedQuery, searchable: list[str]) -> bool:
    """Whether a rule ranks every document of this query the same (so sorting may skip it)."""
    if rule.kind == "proximity":
        return len(query.terms) <= 1
    if rule.kind == "attributeRank":
        return searchable == ["*"]
    return False


def build_rules(
    settings: dict[str, Any], query: ParsedQuery, sort: list[tuple[str, bool]], strategy: str
) -> list[Rule]:
    rules: list[Rule] = []
    ranking_rules = list(settings.get("rankingRules") or [])
    if sort and "sort" not in ranking_rules:
        raise MeiliError(
            "invalid_search_sort",
            "You must specify where `sort` is listed in the rankingRules setting to use the sort "
            "parameter at search time.",
        )
    for name in ranking_rules:
        if name == "sort":
            rules.extend(Rule("sort", field, asc) for field, asc in sort)
            continue
        custom = _CUSTOM_SORT.match(name)
        if custom:
            rules.append(Rule("sort", custom.group(1), custom.group(2) == "asc"))
            continue
        if query.is_placeholder or name not in RELEVANCY_RULES:
            continue
        if name == "words" and strategy == "all":
            continue
        rules.append(Rule(name))
    if not query.is_placeholder and strategy != "all" and not any(r.kind == "words" for r in rules):
        first = next((i for i, r in enumerate(rules) if r.kind != "sort"), len(rules))
        rules.insert(first, Rule("words"))
    return rules


# An occurrence of a term in a document: a plain tuple, as there are millions of them.
# (field id, first word position, last word position, typos, is the original word)
Occurrence = tuple[int, int, int, int, bool]
FIELD, START, END, TYPOS, EXACT = range(5)


@dataclass
class QueryPlan:
    """Per-query sets shared by every document's ranking (derived from the index, not ranks).

    They only answer "does this document contain one of these words" faster than looking at
    its positions; every rank computed from them equals the one computed from positions.
    """

    term_docs: list[set[int]]
    typo_docs: list[list[tuple[int, set[int]]]]  # per term: (typos, docs) ascending
    exact_docs: list[set[int]]
    fast: list[bool]  # per term: the sets above are exact for this term


class DocRanking:
    """The ranks of one document for one query; every value is computed from this doc only."""

    def __init__(
        self,
        searcher: IndexSearcher,
        query: ParsedQuery,
        strategy: str,
        internal_id: int,
        allowed_fields: set[int] | None = None,
        plan: QueryPlan | None = None,
    ) -> None:
        self.searcher = searcher
        self.plan = plan
        self.allowed_fields = allowed_fields
        self.query = query
        self.strategy = strategy
        self.internal_id = internal_id
        self.doc_words = searcher.doc_words.get(internal_id, {})
        self._occurrences: dict[int, list[Occurrence]] = {}
        self._codes: dict[int, list[int]] = {}
        # Ranks are pure in (document, query), and a hit asks for each several times (sort
        # key, score, details, federation values): computed once per rule kind. `kept` must be
        # settled before the first rank is asked for.
        self._ranks: dict[str, Any] = {}

    # -- matching ---------------------------------------------------------------------------
    def occurrences(self, index: int) -> list[Occurrence]:
        cached = self._occurrences.get(index)
        if cached is None:
            cached = self._occurrences[index] = self._find(self.query.terms[index])
        return cached

    def _find(self, term: Term) -> list[Occurrence]:
        out: list[Occurrence] = []
        if term.is_phrase:
            for start_code, length in self._phrase_codes(term.words):
                out.append(self._occ(start_code, length, 0, True))
            if self.allowed_fields is not None:
                out = [o for o in out if o[FIELD] in self.allowed_fields]
            return out
        doc_words = self.doc_words
        derivations = term.derivations
        typo_off = self.searcher.typo_disabled_fields()
        allowed = self.allowed_fields
        for word in derivations.keys() & doc_words.keys():
            derivation = derivations[word]
            typos, exact = derivation.typos, derivation.exact
            codes = doc_words[word]
            if type(codes) is int:
                codes = (codes,)
            if not (typos and typo_off) and allowed is None:
                out.extend(
                    [
                        (c >> POSITION_BITS, c & POSITION_MASK, c & POSITION_MASK, typos, exact)
                        for c in codes
                    ]
                )
                continue
            for code in codes:
                field_id = code >> POSITION_BITS
                if typos and field_id in typo_off:
                    continue
                if allowed is not None and field_id not in allowed:
                    continue
                start = code & POSITION_MASK
                out.append((field_id, start, start, typos, exact))
        for phrase in term.synonym_phrases:
            for start_code, length in self._phrase_codes(phrase):
                out.append(self._occ(start_code, length, 0, False))
        if allowed is not None:
            out = [o for o in out if o[FIELD] in allowed]
        return out

    @staticmethod
    def _occ(code: int, length: int, typos: int, exact: bool) -> Occurrence:
        start = code & POSITION_MASK
        return (code >> POSITION_BITS, start, start + length - 1, typos, exact)

    def _phrase_codes(self, phrase: tuple[str, ...]) -> list[tuple[int, int]]:
        stop_words = self.searcher.stop_words
        checks = [
            (offset, set(codes_tuple(self.doc_words.get(w, ()))))
            for offset, w in enumerate(phrase)
            if w not in stop_words
        ]
        if not checks:
            return []
        first_offset, first_codes = checks[0]
        out = []
        for code in sorted(first_codes):
            start = code - first_offset
            if all(start + offset in codes for offset, codes in checks[1:]):
                out.append((start, len(phrase)))
        return out

    def matched(self, index: int) -> bool:
        plan = self.plan
        if plan is not None and plan.fast[index]:
            return self.internal_id in plan.term_docs[index]
        return bool(self.occurrences(index))

    def term_typos(self, index: int) -> int:
        plan = self.plan
        if plan is not None and plan.fast[index]:
            for typos, docs in plan.typo_docs[index]:
                if self.internal_id in docs:
                    return typos
        return min(o[TYPOS] for o in self.occurrences(index))

    def term_exact(self, index: int) -> bool:
        plan = self.plan
        if plan is not None and plan.fast[index]:
            return self.internal_id in plan.exact_docs[index]
        return any(o[EXACT] for o in self.occurrences(index))

    def excluded(self) -> bool:
        """Whether a negative term removes this document."""
        if any(w in self.doc_words for w in self.query.negative_words):
            return True
        return any(self._phrase_codes(p) for p in self.query.negative_phrases)

    # -- words --------------------------------------------------------------------------------
    def removal_order(self) -> list[int]:
        order = self.query.cache.get("removal")
        if order is None:
            terms = self.query.terms
            order = [i for i in reversed(range(len(terms))) if not terms[i].is_phrase]
            if not self.query.has_phrase and order and order[-1] == 0:
                order.pop()  # the first word is never dropped unless the query has a phrase
            self.query.cache["removal"] = order
        return order

    @cached_property
    def kept(self) -> list[int] | None:
        """Indices of the terms this document matches after dropping words; None: no match."""
        terms = range(len(self.query.terms))
        if self.strategy == "all":
            return list(terms) if all(self.matched(i) for i in terms) else None
        dropped: set[int] = set()
        order = self.removal_order()
        for step in range(len(order) + 1):
            if step:
                dropped.add(order[step - 1])
            kept = [i for i in terms if i not in dropped]
            if kept and all(self.matched(i) for i in kept):
                return kept
        return None

    def words_rank(self) -> tuple[tuple[int, int], dict[str, Any]]:
        found = self._ranks.get("words_rank")
        if found is None:
            found = self._ranks["words_rank"] = self._words_rank()
        return found

    def _words_rank(self) -> tuple[tuple[int, int], dict[str, Any]]:
        terms = self.query.terms
        kept = self.kept or []
        constants = self.query.cache.get("words")
        if constants is None:
            removable_words = sum(terms[i].word_count for i in self.removal_order())
            phrase_words = sum(t.word_count for t in terms if t.is_phrase)
            constants = self.query.cache["words"] = (
                1 + removable_words + max(0, phrase_words - 1),
                sum(t.word_count for t in terms),
            )
        max_rank, total_words = constants
        dropped_words = total_words - sum(terms[i].word_count for i in kept)
        rank = max_rank - dropped_words
        return (rank, max_rank), {
            "matchingWords": total_words - dropped_words,
            "maxMatchingWords": total_words,
        }

    # -- typo -----------------------------------------------------------------------------------
    def typo_rank(self) -> tuple[tuple[int, int], dict[str, Any]]:
        found = self._ranks.get("typo_rank")
        if found is None:
            found = self._ranks["typo_rank"] = self._typo_rank()
        return found

    def _typo_rank(self) -> tuple[tuple[int, int], dict[str, Any]]:
        terms = self.query.terms
        kept = self.kept or []
        max_typos = sum(terms[i].max_typo_cost for i in kept)
        typos = sum(self.term_typos(i) for i in kept)
        return (1 + max_typos - typos, 1 + max_typos), {
            "typoCount": typos,
            "maxTypoCount": max_typos,
        }

    # -- proximity ------------------------------------------------------------------------------
    def proximity_rank(self) -> tuple[int, int]:
        kept = self.kept or []
        pairs = max(0, len(kept) - 1)
        if not pairs:
            return 1, 1
        by_attribute = self.searcher.settings.get("proximityPrecision") == "byAttribute"
        cost = 0
        for left, right in zip(kept, kept[1:], strict=False):
            if right != left + 1:
                continue  # split by a dropped word: a fixed 0
            cost += self._pair_cost(left, right, by_attribute)
        return 1 + 3 * pairs - cost, 1 + 3 * pairs

    def _word_codes(self, index: int) -> list[int] | None:
        """The packed (field, position) codes of a plain word term, or None if not plain."""
        plan = self.plan
        if plan is None or not plan.fast[index]:
            return None
        codes = self._codes.get(index)  # cached: a middle term pairs twice, wordPosition reuses
        if codes is None:
            doc_words = self.doc_words
            codes = self._codes[index] = []
            for word in self.query.terms[index].derivations.keys() & doc_words.keys():
                found = doc_words[word]
                if type(found) is int:
                    codes.append(found)
                else:
                    codes += found
        return codes

    def _pair_cost(self, left: int, right: int, by_attribute: bool) -> int:
        left_codes = self._word_codes(left)
        right_codes = self._word_codes(right) if left_codes is not None else None
        if right_codes is not None and not by_attribute:
            # Both plain words: a code is field << 16 | position, so in one field the
            # difference of codes is the difference of positions.
            best = 3
            for a in left_codes:
                field = a >> POSITION_BITS
                for b in right_codes:
                    if b >> POSITION_BITS != field:
                        continue
                    distance = b - a if b > a else a - b + 1
                    if distance <= 3:
                        if distance == 1:
                            return 0
                        best = min(best, distance - 1)
            return best
        best = 3
        for a in self.occurrences(left):
            for b in self.occurrences(right):
                if a[FIELD] != b[FIELD]:
                    continue
                if by_attribute:
                    return 0
                a_end, b_start = a[END], b[START]
                distance = b_start - a_end if b_start > a_end else a_end - b_start + 1
                if distance <= 3:
                    best = min(best, distance - 1)
                    if best == 0:
                        return 0
        return best

    # -- attribute ------------------------------------------------------------------------------
    def attribute_rank_rank(self) -> tuple[int, int]:
        kept = self.kept or []
        searchable = self.searcher.searchable
        per_term_max = 0 if searchable == ["*"] else len(searchable) - 1
        if not per_term_max:
            return 1, 1
        weights = self.searcher.field_weights
        cost = sum(min(weights[o[FIELD]] or 0 for o in self.occurrences(i)) for i in kept)
        max_rank = 1 + per_term_max * len(kept)
        return max_rank - cost, max_rank

    def word_position_rank(self) -> tuple[int, int]:
        kept = self.kept or []
        terms = self.query.terms
        cost = 0
        plan = self.plan
        for i in kept:
            # The cost is monotone in the distance, so the least cost over occurrences equals
            # the cost of the least distance.
            costs = position_costs(terms[i].position)
            if i not in self._occurrences and plan is not None and plan.fast[i]:
                # A plain word: its start positions straight from the index, no tuples.
                cost += min([costs[code & POSITION_MASK] for code in self._word_codes(i)])
            else:
                cost += min([costs[o[START]] for o in self.occurrences(i)])
        max_rank = 1 + 10 * len(kept)
        return max_rank - cost, max_rank

    # -- exactness ------------------------------------------------------------------------------
    def exactness_ranks(self) -> tuple[tuple[int, int], tuple[int, int], dict[str, Any]]:
        found = self._ranks.get("exactness_ranks")
        if found is None:
            found = self._ranks["exactness_ranks"] = self._exactness_ranks()
        return found

    def _exactness_ranks(self) -> tuple[tuple[int, int], tuple[int, int], dict[str, Any]]:
        kept = self.kept or []
        exact_words = sum(1 for i in kept if self.term_exact(i))
        n = len(kept)
        match = self._exact_attribute(kept)
        if match > 1:
            inner = (n + 1, n + 1)
            return (match, 3), inner, {"matchType": _MATCH_TYPES[match]}
        detail = {"matchType": "noExactMatch", "matchingWords": exact_words, "maxMatchingWords": n}
        return (1, 3), (exact_words + 1, n + 1), detail

    def _exact_attribute(self, kept: list[int]) -> int:
        """3 if an attribute is exactly the query words, 2 if one starts with them, else 1."""
        if not kept:
            return 1
        terms = self.query.terms
        query_words = sum(terms[i].word_count for i in kept)
        best = 1
        plan = self.plan
        if plan is not None and all(plan.fast[i] for i in kept):
            return self._exact_attribute_from_codes(kept, query_words)
        candidate_fields = {
            o[FIELD] for o in self.occurrences(kept[0]) if o[EXACT] and o[START] == 0
        }
        for field_id in candidate_fields:
            expected = 0
            ok = True
            for i in kept:
                if not any(
                    o[EXACT] and o[FIELD] == field_id and o[START] == expected
                    for o in self.occurrences(i)
                ):
                    ok = False
                    break
                expected += terms[i].word_count
            if ok:
                count = self.searcher.doc_field_lengths.get(self.internal_id, {}).get(field_id)
                best = max(best, 3 if count == query_words else 2)
        return best

    def _exact_attribute_from_codes(self, kept: list[int], query_words: int) -> int:
        """_exact_attribute for plain word terms, from packed codes instead of occurrences.

        A plain word's exact occurrences are the codes of its exact derivations (never
        filtered: plan.fast excludes allowed fields and typo-disabled fields).
        """
        terms = self.query.terms
        doc_words = self.doc_words
        exact_codes: list[set[int]] = []
        for i in kept:
            codes: set[int] = set()
            for word, derivation in terms[i].derivations.items():
                if derivation.exact and word in doc_words:
                    codes.update(codes_tuple(doc_words[word]))
            if not codes:
                return 1
            exact_codes.append(codes)
        best = 1
        for first in exact_codes[0]:
            if first & POSITION_MASK:
                continue
            field_base = first  # field << POSITION_BITS | 0
            expected = 0
            ok = True
            for i, codes in zip(kept, exact_codes, strict=True):
                if expected > POSITION_MASK or field_base | expected not in codes:
                    ok = False
                    break
                expected += terms[i].word_count
            if ok:
                field_id = first >> POSITION_BITS
                count = self.searcher.doc_field_lengths.get(self.internal_id, {}).get(field_id)
                best = max(best, 3 if count == query_words else 2)
        return best

    # -- all rules ------------------------------------------------------------------------------
    def sort_value(self, rule: Rule) -> tuple[int, Any]:
        """(bucket, value): numbers (0), then strings (1), then no value (2)."""
        facts = self.searcher.facets.field(rule.field).facts.get(self.internal_id)
        if facts is not None and facts.numbers:
            return 0, (min(facts.numbers) if rule.ascending else max(facts.numbers))
        if facts is not None and facts.strings:
            from miroir.core.filters import normalize_facet

            values = [normalize_facet(s) for s in facts.strings]
            return 1, (min(values) if rule.ascending else max(values))
        return 2, None

    def rule_key(self, rule: Rule) -> Any:
        """A key whose ascending order is the rule's best-first order."""
        if rule.kind == "sort":
            bucket, value = self.sort_value(rule)
            if value is None:
                return (bucket,)
            if rule.ascending:
                return (bucket, value)
            return (bucket, -value) if bucket == 0 else (bucket, Descending(value))
        # The rules sorted most often, spelled out: the generic path builds lists per call.
        kind = rule.kind
        if kind == "attribute":
            return (-self.attribute_rank_rank()[0], -self.word_position_rank()[0])
        if kind == "proximity":
            return (-self.proximity_rank()[0],)
        if kind == "wordPosition":
            return (-self.word_position_rank()[0],)
        return tuple(-rank for rank, _ in self.rule_ranks(rule))

    def rule_ranks(self, rule: Rule) -> list[tuple[int, int]]:
        kind = rule.kind
        found = self._ranks.get(kind)
        if found is None:
            found = self._ranks[kind] = self._rule_ranks(kind)
        return found

    def _rule_ranks(self, kind: str) -> list[tuple[int, int]]:
        if kind == "words":
            return [self.words_rank()[0]]
        if kind == "typo":
            return [self.typo_rank()[0]]
        if kind == "proximity":
            return [self.proximity_rank()]
        if kind == "attributeRank":
            return [self.attribute_rank_rank()]
        if kind == "wordPosition":
            return [self.word_position_rank()]
        if kind == "attribute":
            return [self.attribute_rank_rank(), self.word_position_rank()]
        if kind == "exactness":
            outer, inner, _ = self.exactness_ranks()
            return [outer, inner]
        return []

    def federation_values(self, rules: list[Rule]) -> list[tuple]:
        """Meilisearch's weighted score values, unweighted: consecutive relevancy rules make one
        ("score", global score of the group); a sort rule is ("sort", ascending, bucket, value).
        """
        values: list[tuple] = []
        group: list[tuple[int, int]] = []
        for rule in rules:
            if rule.kind == "sort":
                if group:
                    values.append(("score", global_score(group)))
                    group = []
                values.append(("sort", rule.ascending, *self.sort_value(rule)))
            else:
                group.extend(self.rule_ranks(rule))
        if group:
            values.append(("score", global_score(group)))
        return values or [("score", 1.0)]

    def score_and_details(self, rules: list[Rule], displayed: Any) -> tuple[float, dict]:
        ranks: list[tuple[int, int]] = []
        details: dict[str, Any] = {}
        order = 0
        for rule in rules:
            if rule.kind == "sort":
                key = f"{rule.field}:{'asc' if rule.ascending else 'desc'}"
                if not displayed(rule.field):
                    details[f"<hidden-rule-{order}>"] = {"order": order, "value": "<hidden>"}
                else:
                    _, value = self.sort_value(rule)
                    details[key] = {"order": order, "value": value}
                order += 1
                continue
            rule_ranks = self.rule_ranks(rule)
            ranks.extend(rule_ranks)
            entry: dict[str, Any] = {"order": order}
            if rule.kind == "words":
                entry.update(self.words_rank()[1])
            elif rule.kind == "typo":
                entry.update(self.typo_rank()[1])
            elif rule.kind == "attribute":
                fid, position = rule_ranks
                entry["attributeRankingOrderScore"] = fid[0] / fid[1]
                entry["queryWordDistanceScore"] = position[0] / position[1]
            elif rule.kind == "exactness":
                entry.update(self.exactness_ranks()[2])
            entry["score"] = global_score(rule_ranks)
            details[rule.kind] = entry
            order += 1
        return global_score(ranks), details


class Descending:
    """Wraps a string so that ascending sorts put larger strings first (descending sort keys
    of ranking rules, sort in search and documents browse)."""

    __slots__ = ("value",)

    def __init__(self, value: str) -> None:
        self.value = value

    def __lt__(self, other: Descending) -> bool:
        return self.value > other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descending) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)
