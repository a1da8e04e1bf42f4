"""The bucket sort: candidates ordered rule by rule, best bucket first, computed only as deep
as the requested window reaches (Meilisearch's own strategy).

Owns: splitting a bucket (a roaring bitmap of internal ids) by one ranking rule into smaller
buckets, best first, and the recursion that refines a bucket by the next rule only when the
caller asks for its documents. A rule splits a bucket in one of two equivalent ways:
- per document: each id's `DocRanking.rule_key` (the definition), for small buckets and for
  the rules and queries the bitmaps below do not cover;
- with bitmaps, for large buckets of plain-word queries: words, typo, proximity, wordPosition,
  exactness (and `attribute` when every attribute is searchable) from the per-term bitmaps and
  the positional bitmaps of `IndexSearcher.word_codes`; sort rules by walking the facet values
  in order, lazily, so a placeholder sort reads only as many values as the window needs.
Both give exactly the same buckets in the same order (tests/devnode/search/
test_engine_equivalence.py checks every result field against the per-document oracle).

A bucket may hold documents that keep different terms under `matchingStrategy: last`; the
bitmap splitters work per kept term list (`kept_levels`) and merge the keys, which are the
same tuples `rule_key` gives. Phrases take part: a phrase's occurrences are its start codes
(`phrase_starts`), its length shifts proximity, and it is always exact and typo-free.

Must never: compute a rank differently from `ranking.DocRanking` (the bitmaps only find which
documents share a rank), or look at more buckets than the consumer of the order asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pyroaring import BitMap

from miroir.devnode.search.ranking import (
    POSITION_BITS,
    POSITION_MASK,
    DocRanking,
    QueryPlan,
    Rule,
    position_costs,
)

if TYPE_CHECKING:
    from miroir.devnode.search.index import IndexSearcher
    from miroir.devnode.search.query import ParsedQuery, Term

# Buckets smaller than this are split per document: a few microseconds per document beat the
# fixed cost of the bitmap joins. Tests set it to 0 to check the bitmap path on small corpora.
PER_DOCUMENT_BELOW = 100

# _pair_cost: right-term position minus left-term position (same field) -> proximity cost.
_PAIR_OFFSETS = ((0, (1, 0)), (1, (2, -1)), (2, (3, -2)))


def union(bitmaps: list[BitMap]) -> BitMap:
    """A new bitmap (never one of the arguments: callers may change it in place)."""
    if not bitmaps:
        return BitMap()
    if len(bitmaps) == 1:
        return BitMap(bitmaps[0])
    return BitMap.union(*bitmaps)


class Ranker:
    """One search's ranking state: per-document rankings and the bitmap splitters."""

    def __init__(
        self,
        searcher: IndexSearcher,
        query: ParsedQuery,
        strategy: str,
        plan: QueryPlan,
        allowed_fields: set[int] | None,
        kept_levels: dict[tuple[int, ...], BitMap] | None,
    ) -> None:
        self.searcher = searcher
        self.query = query
        self.strategy = strategy
        self.plan = plan
        self.allowed_fields = allowed_fields
        # kept term indices -> the documents keeping exactly those terms; set only for queries
        # of plain words and phrases, where the per-term bitmaps are exact.
        self.kept_levels = kept_levels
        self.rankings: dict[int, DocRanking] = {}
        self._term_codes: dict[int, dict[int, BitMap]] = {}
        self._min_typos: dict[int, list[tuple[int, BitMap]]] = {}
        self._min_costs: dict[int, list[tuple[int, BitMap]]] = {}
        self._pair_costs: dict[int, list[BitMap]] = {}
        self._starts: dict[tuple[int, ...], dict[int, BitMap]] = {}

    # -- per document ---------------------------------------------------------------------------
    def ranking_of(self, internal_id: int) -> DocRanking:
        ranking = self.rankings.get(internal_id)
        if ranking is None:
            ranking = self.rankings[internal_id] = DocRanking(
                self.searcher, self.query, self.strategy, internal_id, self.allowed_fields,
                self.plan,
            )
            if self.kept_levels is not None:
                for kept, docs in self.kept_levels.items():
                    if internal_id in docs:
                        ranking.__dict__["kept"] = list(kept)
                        break
        return ranking

    def _by_document(self, rule: Rule, bucket: BitMap) -> Iterator[BitMap]:
        groups: dict[Any, list[int]] = {}
        ranking_of = self.ranking_of
        for internal_id in bucket:
            key = ranking_of(internal_id).rule_key(rule)
            ids = groups.get(key)
            if ids is None:
                groups[key] = [internal_id]
            else:
                ids.append(internal_id)
        for key in sorted(groups):
            yield BitMap(groups[key])

    # -- the sort ------------------------------------------------------------------------------
    def order(self, bucket: BitMap, rules: list[Rule], level: int = 0) -> Iterator[int]:
        """The ids of `bucket` in rule order, ties by id; lazily, bucket by bucket."""
        if level == len(rules) or len(bucket) <= 1:
            yield from bucket
            return
        for sub in self.split(rules[level], bucket):
            yield from self.order(sub, rules, level + 1)

    def split(self, rule: Rule, bucket: BitMap) -> Iterator[BitMap]:
        if len(bucket) < PER_DOCUMENT_BELOW:
            return self._by_document(rule, bucket)
        if rule.kind == "sort":
            return self._by_sort_value(rule, bucket)
        keyed = self._keyed_parts(rule)
        if keyed is None:
            return self._by_document(rule, bucket)
        return self._by_keys(keyed, bucket)

    def _by_keys(
        self, keyed: Callable[[tuple[int, ...], BitMap], list[tuple[Any, BitMap]]], bucket: BitMap
    ) -> Iterator[BitMap]:
        merged: dict[Any, list[BitMap]] = {}
        for kept, docs in self.kept_levels.items():
            part = bucket & docs
            if part:
                for key, ids in keyed(kept, part):
                    if ids:
                        merged.setdefault(key, []).append(ids)
        for key in sorted(merged):
            yield union(merged[key])

    def _keyed_parts(
        self, rule: Rule
    ) -> Callable[[tuple[int, ...], BitMap], list[tuple[Any, BitMap]]] | None:
        if self.kept_levels is None:
            return None
        kind = rule.kind
        if kind == "words":
            return self._words_parts
        if kind == "typo":
            return self._typo_parts
        if kind == "proximity":
            if self.searcher.settings.get("proximityPrecision") == "byAttribute":
                return None
            return self._proximity_parts
        if kind == "wordPosition":
            return self._word_position_parts
        if kind == "attribute" and self.searcher.searchable == ["*"]:
            # attributeRank is 1/1 for every document, so only wordPosition splits.
            return lambda kept, part: [
                ((-1, key[0]), ids) for key, ids in self._word_position_parts(kept, part)
            ]
        if kind == "exactness":
            return self._exactness_parts
        return None

    # -- words and typo: per-term document sets -------------------------------------------------
    def _words_parts(self, kept: tuple[int, ...], part: BitMap) -> list[tuple[Any, BitMap]]:
        probe = DocRanking(self.searcher, self.query, self.strategy, -1)
        probe.__dict__["kept"] = list(kept)
        return [((-probe.words_rank()[0][0],), part)]

    def _typo_parts(self, kept: tuple[int, ...], part: BitMap) -> list[tuple[Any, BitMap]]:
        terms = self.query.terms
        max_typos = sum(terms[i].max_typo_cost for i in kept)
        sums = _sum_levels([self.min_typos(i) for i in kept], part)
        return [((-(1 + max_typos - total),), ids) for total, ids in sums.items()]

    def min_typos(self, index: int) -> list[tuple[int, BitMap]]:
        """(typos, documents whose least-typo derivation of the term has that many)."""
        levels = self._min_typos.get(index)
        if levels is None and self.query.terms[index].is_phrase:
            levels = self._min_typos[index] = [(0, self.plan.term_docs[index])]
        if levels is None:
            levels, seen = [], BitMap()
            for typos, docs in self.plan.typo_docs[index]:
                fresh = docs - seen
                if fresh:
                    levels.append((typos, fresh))
                seen |= docs
            self._min_typos[index] = levels
        return levels

    # -- positions: per-term positional bitmaps -------------------------------------------------
    def term_codes(self, index: int) -> dict[int, BitMap]:
        """packed (field, position) -> documents where a derivation of the term is there."""
        codes = self._term_codes.get(index)
        if codes is None:
            term = self.query.terms[index]
            if term.is_phrase:
                key: tuple = ("phrase", term.words)
            else:
                key = ("term_codes", term.words[0], term.is_prefix, term.allowed_typos)
            cache = self.searcher.query_cache
            codes = cache.get(key)
            if codes is None:
                if term.is_phrase:
                    codes = phrase_starts(self.searcher, term.words)
                else:
                    codes = self._build_term_codes(term)
                cache[key] = codes
            self._term_codes[index] = codes
        return codes

    def _build_term_codes(self, term: Term) -> dict[int, BitMap]:
        gathered: dict[int, list[BitMap]] = {}
        word_docs = self.searcher.word_docs
        for word in term.derivations:
            if word not in word_docs:
                continue
            for code, docs in self.searcher.word_codes(word).items():
                found = gathered.get(code)
                if found is None:
                    gathered[code] = [docs]
                else:
                    found.append(docs)
        return {code: union(found) for code, found in gathered.items()}

    def _word_position_parts(
        self, kept: tuple[int, ...], part: BitMap
    ) -> list[tuple[Any, BitMap]]:
        sums = _sum_levels([self.min_costs(i) for i in kept], part)
        max_rank = 1 + 10 * len(kept)
        return [((-(max_rank - cost),), ids) for cost, ids in sums.items()]

    def min_costs(self, index: int) -> list[tuple[int, BitMap]]:
        """(wordPosition cost, documents whose best occurrence of the term costs that)."""
        levels = self._min_costs.get(index)
        if levels is None:
            costs = position_costs(self.query.terms[index].position)
            by_cost: dict[int, list[BitMap]] = {}
            for code, docs in self.term_codes(index).items():
                by_cost.setdefault(costs[code & POSITION_MASK], []).append(docs)
            levels, seen = [], BitMap()
            for cost in sorted(by_cost):
                docs = union(by_cost[cost])
                fresh = docs - seen
                if fresh:
                    levels.append((cost, fresh))
                seen |= docs
            self._min_costs[index] = levels
        return levels

    def _proximity_parts(self, kept: tuple[int, ...], part: BitMap) -> list[tuple[Any, BitMap]]:
        pairs = len(kept) - 1
        if pairs <= 0:
            return [((-1,), part)]
        levels = []
        for left, right in zip(kept, kept[1:], strict=False):
            if right != left + 1:
                continue  # split by a dropped word: a fixed 0
            within = self.pair_costs(left)  # documents with cost <= 0, <= 1, <= 2
            pair_levels, seen = [], BitMap()
            for cost, docs in enumerate(within):
                fresh = (docs & part) - seen
                if fresh:
                    pair_levels.append((cost, fresh))
                seen |= fresh
            rest = part - seen
            if rest:
                pair_levels.append((3, rest))
            levels.append(pair_levels)
        sums = _sum_levels(levels, part)
        return [((-(1 + 3 * pairs - cost),), ids) for cost, ids in sums.items()]

    def pair_costs(self, left: int) -> list[BitMap]:
        """Documents whose terms left and left+1 come within proximity cost 0, 1 and 2.

        Offsets count from the left term's last word (a phrase ends length - 1 further)."""
        found = self._pair_costs.get(left)
        if found is None:
            lefts, rights = self.term_codes(left), self.term_codes(left + 1)
            shift = self.query.terms[left].word_count - 1
            found, gathered = [], []
            for _cost, offsets in _PAIR_OFFSETS:
                for code, docs in lefts.items():
                    field = code >> POSITION_BITS
                    end = code + shift
                    near = [
                        rights[end + offset]
                        for offset in offsets
                        if end + offset in rights and (end + offset) >> POSITION_BITS == field
                    ]
                    if near:
                        gathered.append(docs & union(near))
                found.append(union(gathered))
                gathered = [found[-1]]
            self._pair_costs[left] = found
        return found

    # -- exactness ------------------------------------------------------------------------------
    def _exactness_parts(self, kept: tuple[int, ...], part: BitMap) -> list[tuple[Any, BitMap]]:
        starts = self.field_starts(kept)  # field -> documents whose field starts with the terms
        count = len(kept)
        words = sum(self.query.terms[i].word_count for i in kept)
        out: list[tuple[Any, BitMap]] = []
        rest = part
        if starts:
            lengths = self.searcher.field_length_docs
            exact = union([docs & lengths[(field, words)]
                           for field, docs in starts.items() if (field, words) in lengths])
            exact &= part
            begins = (union(list(starts.values())) & part) - exact
            out.append(((-3, -(count + 1)), exact))
            out.append(((-2, -(count + 1)), begins))
            rest = part - exact - begins
        if rest:
            levels = []
            for i in kept:
                exact_docs = self.exact_docs(i)
                levels.append([(0, rest - exact_docs), (1, rest & exact_docs)])
            for words, ids in _sum_levels(levels, rest).items():
                out.append(((-1, -(words + 1)), ids))
        return out

    def exact_docs(self, index: int) -> BitMap:
        """Documents with an exact occurrence of the term (a phrase is always exact)."""
        if self.query.terms[index].is_phrase:
            return self.plan.term_docs[index]
        return self.plan.exact_docs[index]

    def exact_codes(self, index: int) -> dict[int, BitMap] | None:
        """The term's exact occurrences by (field, start) code, or None if it has none."""
        term = self.query.terms[index]
        if term.is_phrase:
            return self.term_codes(index)
        word = term.words[0]
        derivation = term.derivations.get(word)
        if derivation is None or not derivation.exact:
            return None
        return self.searcher.word_codes(word)

    def field_starts(self, kept: tuple[int, ...]) -> dict[int, BitMap]:
        """field -> documents where that field starts with the kept terms, exactly, in order."""
        starts = self._starts.get(kept)
        if starts is None:
            starts = {}
            exact = [self.exact_codes(i) for i in kept]
            if all(codes is not None for codes in exact):
                offsets = []
                offset = 0
                for i in kept:
                    offsets.append(offset)
                    offset += self.query.terms[i].word_count
                for code, docs in exact[0].items():
                    if code & POSITION_MASK:
                        continue
                    for at, codes in zip(offsets[1:], exact[1:], strict=True):
                        if at > POSITION_MASK:
                            docs = BitMap()
                        else:
                            docs = docs & codes.get(code | at, BitMap())
                        if not docs:
                            break
                    if docs:
                        starts[code >> POSITION_BITS] = docs
            self._starts[kept] = starts
        return starts

    # -- sort rules: facet values in order ------------------------------------------------------
    def _by_sort_value(self, rule: Rule, bucket: BitMap) -> Iterator[BitMap]:
        index = self.searcher.facets.field(rule.field)
        numbers = bucket & index.with_numbers
        if numbers:
            keys = index.sorted_numbers()
            yield from _walk(numbers, keys if rule.ascending else reversed(keys), index.numbers)
        strings = (bucket & index.with_strings) - index.with_numbers
        if strings:
            keys = index.sorted_strings()
            yield from _walk(strings, keys if rule.ascending else reversed(keys), index.strings)
        rest = bucket - index.with_numbers - index.with_strings
        if rest:
            yield rest


def phrase_starts(searcher: IndexSearcher, phrase: tuple[str, ...]) -> dict[int, BitMap]:
    """packed (field, position) of the phrase's first word -> documents where the phrase starts
    there: `DocRanking._phrase_codes`, for every document at once (same arithmetic)."""
    checks = [
        (offset, searcher.word_codes(word))
        for offset, word in enumerate(phrase)
        if word not in searcher.stop_words
    ]
    if not checks:
        return {}
    first_offset, first = checks[0]
    out: dict[int, BitMap] = {}
    empty = BitMap()
    for code, docs in first.items():
        start = code - first_offset
        for offset, codes in checks[1:]:
            docs = docs & codes.get(start + offset, empty)
            if not docs:
                break
        if docs:
            out[start] = docs
    return out


def _walk(left: BitMap, keys: Any, buckets: dict[Any, BitMap]) -> Iterator[BitMap]:
    """Each document under the first of `keys` it has (its least, or greatest, value)."""
    left = BitMap(left)
    for key in keys:
        ids = buckets[key] & left
        if ids:
            yield ids
            left -= ids
            if not left:
                return


def _sum_levels(per_term: list[list[tuple[int, BitMap]]], part: BitMap) -> dict[int, BitMap]:
    """value -> documents of `part` whose per-term values add up to it.

    per_term[i] partitions (at least) `part` by term i's value: (value, documents).
    """
    acc: dict[int, BitMap] = {0: part}
    for levels in per_term:
        following: dict[int, BitMap] = {}
        for total, docs in acc.items():
            for value, ids in levels:
                both = docs & ids
                if both:
                    key = total + value
                    previous = following.get(key)
                    following[key] = both if previous is None else previous | both
        acc = following
    return acc
