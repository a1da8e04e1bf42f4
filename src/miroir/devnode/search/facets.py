"""Per-attribute facet structures: filter evaluation over sets, facet counts, sort values.

Owns: for each attribute a filter, sort or facet request has touched, the map from normalized
string value / number to internal ids (roaring bitmaps), and the exists / null / empty /
has-a-number / has-a-string bitmaps, kept in step with every upsert and delete. Filters
evaluate here as bitmap algebra; the per-document meaning of each
operator is `miroir.core.filters` (this module takes a document's facts from `field_facts`, and
the tests check both agree).

Must never: parse filters or check filterability (core.filters does), or rank documents.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

from pyroaring import BitMap

from miroir.core import filters as f

_MISSING = object()


def union(bitmaps: Iterable[BitMap]) -> BitMap:
    bitmaps = list(bitmaps)
    return BitMap.union(*bitmaps) if bitmaps else BitMap()


class FieldIndex:
    """One attribute's facet values across the index."""

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute
        self.strings: dict[str, BitMap] = {}  # normalized value -> ids
        self.original: dict[str, str] = {}  # normalized value -> first-seen spelling
        self.numbers: dict[float, BitMap] = {}
        self.exists = BitMap()
        self.null = BitMap()
        self.empty = BitMap()
        self.with_numbers = BitMap()  # documents with at least one number
        self.with_strings = BitMap()
        self.facts: dict[int, f.FieldFacts] = {}
        self._sorted_strings: list[str] | None = None
        self._sorted_numbers: list[float] | None = None

    def add(self, internal_id: int, document: Mapping[str, Any]) -> None:
        facts = f.field_facts(document, self.attribute)
        if not facts.exists:
            return
        self.facts[internal_id] = facts
        self.exists.add(internal_id)
        if facts.is_null:
            self.null.add(internal_id)
        if facts.is_empty:
            self.empty.add(internal_id)
        if facts.numbers:
            self.with_numbers.add(internal_id)
        if facts.strings:
            self.with_strings.add(internal_id)
        for original in facts.strings:
            key = f.normalize_facet(original)
            bucket = self.strings.get(key)
            if bucket is None:
                self.strings[key] = bucket = BitMap()
                self.original.setdefault(key, original)
                self._sorted_strings = None
            bucket.add(internal_id)
        for number in facts.numbers:
            bucket = self.numbers.get(number)
            if bucket is None:
                self.numbers[number] = bucket = BitMap()
                self._sorted_numbers = None
            bucket.add(internal_id)

    # Over the complexity bar on purpose: `add` for every document at once, kept inline.
    def build(self, documents: Mapping[int, Mapping[str, Any]]) -> None:  # noqa: C901
        """`add` every document to this empty index, with each bitmap built once from a list.

        A top-level attribute holding one number or one string (the common case) is read
        without `field_facts`' path walk; anything else goes through it."""
        attribute = self.attribute
        flat = "." not in attribute
        exists: list[int] = []
        null: list[int] = []
        empty: list[int] = []
        with_numbers: list[int] = []
        with_strings: list[int] = []
        numbers: defaultdict[float, list[int]] = defaultdict(list)
        strings: defaultdict[str, list[int]] = defaultdict(list)
        normalized: dict[str, str] = {}  # original spelling -> normalized facet value
        for internal_id, document in documents.items():
            if flat:
                raw = document.get(attribute, _MISSING)
                if raw is _MISSING:
                    continue
                kind = type(raw)
                if (kind is int or kind is float) and math.isfinite(raw):
                    number = float(raw)
                    self.facts[internal_id] = f.FieldFacts(exists=True, numbers=[number])
                    exists.append(internal_id)
                    with_numbers.append(internal_id)
                    numbers[number].append(internal_id)
                    continue
                if kind is str:
                    self.facts[internal_id] = f.FieldFacts(
                        exists=True, is_empty=not raw, strings=[raw]
                    )
                    exists.append(internal_id)
                    if not raw:
                        empty.append(internal_id)
                    with_strings.append(internal_id)
                    key = normalized.get(raw)
                    if key is None:
                        key = normalized[raw] = f.normalize_facet(raw)
                        self.original.setdefault(key, raw)
                    strings[key].append(internal_id)
                    continue
            facts = f.field_facts(document, attribute)
            if not facts.exists:
                continue
            self.facts[internal_id] = facts
            exists.append(internal_id)
            if facts.is_null:
                null.append(internal_id)
            if facts.is_empty:
                empty.append(internal_id)
            if facts.numbers:
                with_numbers.append(internal_id)
            if facts.strings:
                with_strings.append(internal_id)
            for original in facts.strings:
                key = normalized.get(original)
                if key is None:
                    key = normalized[original] = f.normalize_facet(original)
                self.original.setdefault(key, original)
                strings[key].append(internal_id)
            for number in facts.numbers:
                numbers[number].append(internal_id)
        self.exists.update(exists)
        self.null.update(null)
        self.empty.update(empty)
        self.with_numbers.update(with_numbers)
        self.with_strings.update(with_strings)
        self.strings = {key: BitMap(ids) for key, ids in strings.items()}
        self.numbers = {number: BitMap(ids) for number, ids in numbers.items()}
        self._sorted_strings = self._sorted_numbers = None

    def remove(self, internal_id: int) -> None:
        facts = self.facts.pop(internal_id, None)
        if facts is None:
            return
        self.exists.discard(internal_id)
        self.null.discard(internal_id)
        self.empty.discard(internal_id)
        self.with_numbers.discard(internal_id)
        self.with_strings.discard(internal_id)
        for original in facts.strings:
            key = f.normalize_facet(original)
            bucket = self.strings.get(key)
            if bucket is not None:
                bucket.discard(internal_id)
                if not bucket:
                    del self.strings[key]
                    self.original.pop(key, None)
                    self._sorted_strings = None
        for number in facts.numbers:
            bucket = self.numbers.get(number)
            if bucket is not None:
                bucket.discard(internal_id)
                if not bucket:
                    del self.numbers[number]
                    self._sorted_numbers = None

    def sorted_strings(self) -> list[str]:
        if self._sorted_strings is None:
            self._sorted_strings = sorted(self.strings)
        return self._sorted_strings

    def sorted_numbers(self) -> list[float]:
        if self._sorted_numbers is None:
            self._sorted_numbers = sorted(self.numbers)
        return self._sorted_numbers

    # -- filter primitives -----------------------------------------------------------------
    def equal(self, value: str) -> BitMap:
        out = BitMap(self.strings.get(f.normalize_facet(value), ()))
        number = f.parse_finite_float(value)
        if number is not None and number in self.numbers:
            out |= self.numbers[number]
        return out

    def number_range(
        self, low: float, low_inclusive: bool, high: float, high_inclusive: bool
    ) -> BitMap:
        keys = self.sorted_numbers()
        lo = bisect.bisect_left(keys, low) if low_inclusive else bisect.bisect_right(keys, low)
        hi = bisect.bisect_right(keys, high) if high_inclusive else bisect.bisect_left(keys, high)
        return union(self.numbers[k] for k in keys[lo:hi])

    def string_range(
        self, low: str | None, low_inclusive: bool, high: str | None, high_inclusive: bool
    ) -> BitMap:
        keys = self.sorted_strings()
        if low is None:
            lo = 0
        else:
            lo = bisect.bisect_left(keys, low) if low_inclusive else bisect.bisect_right(keys, low)
        if high is None:
            hi = len(keys)
        else:
            hi = (
                bisect.bisect_right(keys, high)
                if high_inclusive
                else bisect.bisect_left(keys, high)
            )
        return union(self.strings[k] for k in keys[lo:hi])

    def compare(self, op: str, value: str) -> BitMap:
        number = f.parse_finite_float(value)
        out = BitMap()
        inf = math.inf
        if op == ">":
            if number is not None:
                out |= self.number_range(number, False, inf, True)
            out |= self.string_range(value, False, None, True)
        elif op == ">=":
            if number is not None:
                out |= self.number_range(number, True, inf, True)
            out |= self.string_range(value, True, None, True)
        elif op == "<":
            if number is not None:
                out |= self.number_range(-inf, True, number, False)
            out |= self.string_range(None, True, value, False)
        elif op == "<=":
            if number is not None:
                out |= self.number_range(-inf, True, number, True)
            out |= self.string_range(None, True, value, True)
        return out

    def between(self, low: str, high: str) -> BitMap:
        out = BitMap()
        low_number, high_number = f.parse_finite_float(low), f.parse_finite_float(high)
        if low_number is not None and high_number is not None and low_number <= high_number:
            out |= self.number_range(low_number, True, high_number, True)
        if low <= high:
            out |= self.string_range(low, True, high, True)
        return out


class FacetIndex:
    """The FieldIndexes of one searcher, built on first use and maintained afterwards."""

    def __init__(self, documents: Mapping[int, Mapping[str, Any]]) -> None:
        self.documents = documents
        self.fields: dict[str, FieldIndex] = {}

    def field(self, attribute: str) -> FieldIndex:
        index = self.fields.get(attribute)
        if index is None:
            index = FieldIndex(attribute)
            index.build(self.documents)
            self.fields[attribute] = index
        return index

    def upsert(self, internal_id: int, document: Mapping[str, Any]) -> None:
        for index in self.fields.values():
            index.remove(internal_id)
            index.add(internal_id, document)

    def delete(self, internal_id: int) -> None:
        for index in self.fields.values():
            index.remove(internal_id)

    def clear(self) -> None:
        self.fields.clear()

    def evaluate(self, node: f.Node, universe: Iterable[int]) -> BitMap:
        """The ids in `universe` matching `node` (same meaning as `filters.matches`)."""
        if not isinstance(universe, BitMap):
            universe = BitMap(universe)
        return self._evaluate(node, universe)

    # Over the complexity bar on purpose: one branch per filter node type.
    def _evaluate(self, node: f.Node, universe: BitMap) -> BitMap:  # noqa: C901
        if isinstance(node, f.Not):
            return universe - self._evaluate(node.child, universe)
        if isinstance(node, f.And):
            result = universe
            for child in node.children:
                if not result:
                    break
                result = self._evaluate(child, result)
            return result
        if isinstance(node, f.Or):
            out = BitMap()
            for child in node.children:
                out |= self._evaluate(child, universe)
            return out
        if isinstance(node, (f.GeoRadius, f.GeoBoundingBox, f.Contains, f.StartsWith)):
            return BitMap(i for i in universe if f.matches(node, self.documents[i]))
        index = self.field(node.field)
        if isinstance(node, f.Exists):
            hits = index.exists
        elif isinstance(node, f.IsNull):
            hits = index.null
        elif isinstance(node, f.IsEmpty):
            hits = index.empty
        elif isinstance(node, f.Compare):
            if node.op == "=":
                hits = index.equal(node.value)
            elif node.op == "!=":
                return universe - index.equal(node.value)
            else:
                hits = index.compare(node.op, node.value)
        elif isinstance(node, f.In):
            hits = BitMap()
            for value in node.values:
                hits |= index.equal(value)
        elif isinstance(node, f.Between):
            hits = index.between(node.low, node.high)
        else:
            raise TypeError(f"not a filter node: {node!r}")
        return universe & hits
