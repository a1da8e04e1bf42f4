"""IndexSearcher: the search structures of one devnode index, kept in step with its documents.

Owns: the document copies the searcher ranks and formats (by internal id), the inverted index
(normalized word -> roaring bitmap of internal ids, and per document word -> its packed
(field id, position) code, or a tuple of them for a word seen more than once), the documents
of each (field, word count), the vocabulary trie that
yields prefix and typo candidates without scanning the vocabulary, the per-attribute facet
index, and `filter_ids`. The engine calls upsert / delete / clear / update_settings as tasks
apply; searching is `miroir.devnode.search.execute.run_search`.

Positional bitmaps (word -> packed code -> ids) are not kept while indexing: a search builds
them for the words it ranks on large buckets (`word_codes`), and they are cached until a
document holding the word changes. Indexing thus pays one bitmap insertion per distinct word of
a document, not one per occurrence, and builds each document's map with whole-list operations
(`word_codes_map`): a Python step per occurrence is what a pure-Python indexer pays most for.

Must never: assign internal ids (the engine does: order of first addition), enqueue tasks, or
let one document's ranking depend on another document (see `ranking`).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping
from functools import partial
from itertools import chain, compress, repeat
from operator import is_, is_not, itemgetter, ne, not_
from typing import Any

from pyroaring import BitMap

from miroir.core import filters as f
from miroir.devnode.search.facets import FacetIndex
from miroir.devnode.search.text import (
    HARD_GAP,
    ascii_runs,
    ascii_single_run,
    iter_text_values,
    normalize_word,
    word_positions,
)
from miroir.devnode.search.trie import Trie

POSITION_BITS = 16
MAX_POSITION = (1 << POSITION_BITS) - 1
ARRAY_GAP = 8
MAX_CACHED_WORDS = 4096  # positional bitmaps kept for this many words at most
_IS_NONE = partial(is_, None)
_IS_NOT_NONE = partial(is_not, None)


def pack(field_id: int, position: int) -> int:
    return (field_id << POSITION_BITS) | min(position, MAX_POSITION)


def word_codes_map(
    tokens: list[str], codes: list[int], *, codes_unique: bool = True
) -> dict[str, int | tuple[int, ...]]:
    """A document's `word -> code` (a word seen once) or `word -> (codes...)` (seen more than
    once, in order), from its word occurrences and their codes, in first-occurrence order.

    Built mostly with whole-list operations rather than a dict lookup and an append per word:
    the dict of last codes is one `dict(zip(...))`; a word occurs more than once exactly when
    its first and last entries differ (by code when codes are unique, else by index), and
    only those words' occurrences are then walked one by one.
    """
    words: dict[str, Any] = dict(zip(tokens, codes, strict=True))
    if len(words) == len(tokens):
        return words
    if codes_unique:
        last: dict[str, int] = words
        first = dict(zip(reversed(tokens), reversed(codes), strict=True))
    else:
        count = len(tokens)
        last = dict(zip(tokens, range(count), strict=True))
        first = dict(zip(reversed(tokens), range(count - 1, -1, -1), strict=True))
    repeated = set(compress(last, map(ne, last.values(), map(first.__getitem__, last))))
    mask = list(map(repeated.__contains__, tokens))
    found: dict[str, list[int]] = {}
    for word, code in zip(compress(tokens, mask), compress(codes, mask), strict=True):
        seen = found.get(word)
        if seen is None:
            found[word] = [code]
        else:
            seen.append(code)
    for word, seen in found.items():
        words[word] = tuple(seen)
    return words


def codes_tuple(codes: int | tuple[int, ...]) -> tuple[int, ...]:
    """A `word_codes_map` value as a tuple of codes."""
    return (codes,) if type(codes) is int else codes


def pattern_matches(pattern: str, attribute: str) -> bool:
    """A searchable/displayed pattern: `*`, the attribute itself, or one of its parents."""
    return pattern == "*" or pattern == attribute or attribute.startswith(pattern + ".")


def iter_fields(document: Mapping[str, Any], prefix: str = "") -> Any:
    """(dotted path, value) for every leaf of a document; arrays of objects are walked into."""
    for key, value in document.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from iter_fields(value, path + ".")
        elif isinstance(value, list) and any(isinstance(item, Mapping) for item in value):
            scalars = [item for item in value if not isinstance(item, Mapping)]
            if scalars:
                yield path, scalars
            for item in value:
                if isinstance(item, Mapping):
                    yield from iter_fields(item, path + ".")
        else:
            yield path, value


class IndexSearcher:
    def __init__(self, settings: dict[str, Any]) -> None:
        self.documents: dict[int, dict[str, Any]] = {}
        self.ids = BitMap()  # the keys of `documents`
        self.settings: dict[str, Any] = {}
        self.update_settings(settings)

    # -- the engine's interface -------------------------------------------------------------
    def update_settings(self, settings: dict[str, Any]) -> None:
        """Take the full settings dict and rebuild everything that depends on it.

        Only searchableAttributes and stopWords shape the inverted index; any other change
        keeps it and only drops the caches that read settings (facets are rebuilt lazily).
        """
        searchable = list(settings.get("searchableAttributes") or ["*"])
        stop_words = frozenset(normalize_word(w) for w in settings.get("stopWords") or ())
        reindex = not self.settings or (searchable, stop_words) != (
            self.searchable,
            self.stop_words,
        )
        self.settings = settings
        self.searchable: list[str] = searchable
        self.stop_words = stop_words
        if reindex:
            self._rebuild()
        else:
            self._typo_off_for = -1
            self.query_cache.clear()
            self.facets = FacetIndex(self.documents)

    def upsert(self, internal_id: int, document: dict[str, Any]) -> None:
        if internal_id in self.documents:
            self._unindex(internal_id)
        self.documents[internal_id] = document
        self.ids.add(internal_id)
        self._index(internal_id, document)
        self.facets.upsert(internal_id, document)

    def delete(self, internal_id: int) -> None:
        if internal_id not in self.documents:
            return
        self._unindex(internal_id)
        del self.documents[internal_id]
        self.ids.discard(internal_id)
        self.facets.delete(internal_id)

    def clear(self) -> None:
        self.documents.clear()
        self.ids = BitMap()
        self._rebuild()

    def filter_ids(self, filter_expr: Any, *, error_code: str) -> list[int]:
        """Internal ids matching `filter_expr` (string or array form), ascending."""
        node = self.parse_filter(filter_expr, error_code=error_code)
        if node is None:
            return list(self.ids)
        return list(self.facets.evaluate(node, self.ids))

    def parse_filter(self, filter_expr: Any, *, error_code: str) -> f.Node | None:
        node = f.parse_filter_json(filter_expr, error_code=error_code)
        f.ensure_filterable(
            node, self.settings.get("filterableAttributes") or [], error_code=error_code
        )
        return node

    # -- the inverted index -----------------------------------------------------------------
    def _rebuild(self) -> None:
        self.field_ids: dict[str, int] = {}
        self.field_names: list[str] = []
        self.field_weights: list[int | None] = []  # None: not searchable
        self.word_docs: dict[str, BitMap] = {}
        # internal id -> word -> code, or (codes...) for a word seen more than once
        self.doc_words: dict[int, dict[str, int | tuple[int, ...]]] = {}
        self.doc_field_lengths: dict[int, dict[int, int]] = {}
        self.field_length_docs: dict[tuple[int, int], BitMap] = {}  # (field, words) -> ids
        self._word_codes: dict[str, dict[int, BitMap]] = {}
        self.query_cache: dict[Any, Any] = {}  # per-search derived structures; any write empties
        self.trie = Trie()
        self._typo_off: frozenset[int] = frozenset()
        self._typo_off_for = -1
        self.facets = FacetIndex(self.documents)
        for internal_id, document in self.documents.items():
            self._index(internal_id, document)

    def field_id(self, path: str) -> int:
        field_id = self.field_ids.get(path)
        if field_id is None:
            field_id = len(self.field_names)
            self.field_ids[path] = field_id
            self.field_names.append(path)
            self.field_weights.append(self.weight_of(path))
        return field_id

    def typo_disabled_fields(self) -> frozenset[int]:
        """Field ids where typo'd words do not count (`typoTolerance.disableOnAttributes`)."""
        if self._typo_off_for != len(self.field_names):
            disabled = (self.settings.get("typoTolerance") or {}).get("disableOnAttributes") or ()
            self._typo_off = frozenset(
                field_id
                for field_id, path in enumerate(self.field_names)
                if any(pattern_matches(p, path) for p in disabled)
            )
            self._typo_off_for = len(self.field_names)
        return self._typo_off

    def weight_of(self, path: str) -> int | None:
        for weight, pattern in enumerate(self.searchable):
            if pattern_matches(pattern, path):
                return 0 if pattern == "*" and self.searchable == ["*"] else weight
        return None

    # Over the complexity bar on purpose: the indexer's hot loop, kept inline
    # (docs/benchmarks.md).
    def _index(self, internal_id: int, document: Mapping[str, Any]) -> None:  # noqa: C901
        tokens: list[str] = []  # every indexed word occurrence of the document, in order
        codes: list[int] = []  # its packed (field, position) code
        counts: dict[int, int] = {}  # field id -> words (stop words included)
        next_start: dict[int, int] = {}
        clamped = False
        plain = not self.stop_words
        field_ids, weights = self.field_ids, self.field_weights
        for key, value in document.items():
            kind = type(value)
            if kind is str:
                texts: Any = (value,)
            elif (kind is int or kind is float) and plain:
                field_id = field_ids.get(key)
                if field_id is None:
                    field_id = self.field_id(key)
                if weights[field_id] is None:
                    continue
                start = next_start.get(field_id, 0)
                if start < MAX_POSITION - HARD_GAP:
                    # A number spelled out: an integer is one word, its digits; a float
                    # without an exponent is two, `12.5` -> `12`, `5`, a hard gap apart.
                    if kind is int:
                        tokens.append(str(abs(value)))
                        codes.append(field_id << POSITION_BITS | start)
                        counts[field_id] = counts.get(field_id, 0) + 1
                        next_start[field_id] = start + ARRAY_GAP
                        continue
                    whole, dot, fraction = repr(abs(value)).partition(".")
                    if dot and fraction.isdigit():
                        tokens.append(whole)
                        tokens.append(fraction)
                        code = field_id << POSITION_BITS | start
                        codes.append(code)
                        codes.append(code + HARD_GAP)
                        counts[field_id] = counts.get(field_id, 0) + 2
                        next_start[field_id] = start + HARD_GAP + ARRAY_GAP
                        continue
                texts = (str(value),)
            elif isinstance(value, (Mapping, list)):
                for path, inner in iter_fields({key: value}):
                    field_id = self.field_id(path)
                    if weights[field_id] is not None:
                        clamped |= self._add_texts(
                            field_id, iter_text_values(inner), tokens, codes, counts, next_start
                        )
                continue
            else:
                texts = iter_text_values(value)
            field_id = field_ids.get(key)
            if field_id is None:
                field_id = self.field_id(key)
            if weights[field_id] is None:
                continue
            clamped |= self._add_texts(field_id, texts, tokens, codes, counts, next_start)
        words = word_codes_map(tokens, codes, codes_unique=not clamped)
        self._post(internal_id, words)
        if self._word_codes:
            for word in words.keys() & self._word_codes.keys():
                del self._word_codes[word]
        if self.query_cache:
            self.query_cache.clear()
        self.doc_words[internal_id] = words
        self.doc_field_lengths[internal_id] = counts
        self._post_lengths(internal_id, counts)

    def _post_lengths(self, internal_id: int, counts: dict[int, int]) -> None:
        """Add a document to the bitmap of each of its (field, word count) pairs, as `_post`."""
        lengths = self.field_length_docs
        bitmaps = list(map(lengths.get, counts.items()))
        if None in bitmaps:
            for key, docs in zip(counts.items(), bitmaps, strict=True):
                if docs is None:
                    lengths[key] = BitMap()
            bitmaps = list(map(lengths.__getitem__, counts.items()))
        deque(map(BitMap.add, bitmaps, repeat(internal_id)), 0)

    def _post(self, internal_id: int, words: Iterable[str]) -> None:
        """Add a document to the posting bitmap of each of its (distinct) words.

        One dict lookup per word, and no Python loop unless a word is new to the index (then
        its bitmap is created and the trie learns it, in first-occurrence order)."""
        word_docs = self.word_docs
        bitmaps = list(map(word_docs.get, words))
        new_words = list(compress(words, map(_IS_NONE, bitmaps)))
        if new_words:
            trie = self.trie
            for word in new_words:
                word_docs[word] = BitMap((internal_id,))
                trie.add(word)
            deque(map(BitMap.add, filter(_IS_NOT_NONE, bitmaps), repeat(internal_id)), 0)
        else:
            deque(map(BitMap.add, bitmaps, repeat(internal_id)), 0)

    def _add_texts(
        self,
        field_id: int,
        texts: Iterable[str],
        tokens: list[str],
        codes: list[int],
        counts: dict[int, int],
        next_start: dict[int, int],
    ) -> bool:
        """Append the words of one field's texts to `tokens` and their codes to `codes`;
        True if a position was clamped (so two occurrences may share a code)."""
        start = next_start.get(field_id, 0)
        base = field_id << POSITION_BITS
        total = counts.get(field_id, 0)
        stop_words = self.stop_words
        clamped = False
        for text in texts:
            if not stop_words and text.isascii():
                # The common case, spelled out: ASCII words, consecutive positions between
                # hard separators, no clamping (`text.ascii_runs`).
                lowered = text.lower()
                found = ascii_single_run(lowered)
                if found is not None:
                    if not found:
                        continue
                    count = len(found)
                    if start + count <= MAX_POSITION:
                        tokens += found
                        code = base | start
                        codes += range(code, code + count)
                        total += count
                        start += count - 1 + ARRAY_GAP
                        continue
                else:
                    runs = ascii_runs(lowered)
                    if not runs:
                        continue
                    count = sum(map(len, runs))
                    last = start + count - 1 + (len(runs) - 1) * (HARD_GAP - 1)
                    if last < MAX_POSITION:
                        total += count
                        code = base | start
                        for run in runs:
                            tokens += run
                            codes += range(code, code + len(run))
                            code += len(run) - 1 + HARD_GAP
                        start = last + ARRAY_GAP
                        continue
            pairs = word_positions(text, start)
            if not pairs:
                continue
            total += len(pairs)
            for word, position in pairs:
                if word in stop_words:
                    continue
                if position >= MAX_POSITION:
                    clamped = True
                    position = MAX_POSITION
                tokens.append(word)
                codes.append(base | position)
            start = pairs[-1][1] + ARRAY_GAP
        if total:
            counts[field_id] = total
        next_start[field_id] = start
        return clamped

    def _unindex(self, internal_id: int) -> None:
        for word in self.doc_words.pop(internal_id, {}):
            self._word_codes.pop(word, None)
            docs = self.word_docs.get(word)
            if docs is not None:
                docs.discard(internal_id)
                if not docs:
                    del self.word_docs[word]
                    self.trie.remove(word)
        for key in self.doc_field_lengths.pop(internal_id, {}).items():
            docs = self.field_length_docs.get(key)
            if docs is not None:
                docs.discard(internal_id)
                if not docs:
                    del self.field_length_docs[key]
        self.query_cache.clear()

    # -- positional bitmaps, built on demand --------------------------------------------------
    def word_codes(self, word: str) -> dict[int, BitMap]:
        """packed (field, position) code -> ids of the documents with `word` there."""
        cached = self._word_codes.get(word)
        if cached is not None:
            return cached
        # Whole-list operations rather than a loop per document: a common word is in most
        # documents, and this runs the first time a search ranks on it.
        ids = list(self.word_docs.get(word, ()))
        found = list(map(itemgetter(word), map(self.doc_words.__getitem__, ids)))
        once = list(map(is_, map(type, found), repeat(int)))
        by_code: defaultdict[int, list[int]] = defaultdict(list)
        deque(map(list.append, map(by_code.__getitem__, compress(found, once)),
                  compress(ids, once)), 0)
        if not all(once):  # words seen more than once in a document: every code of theirs
            several = list(compress(found, map(not_, once)))
            holders = chain.from_iterable(
                map(repeat, compress(ids, map(not_, once)), map(len, several))
            )
            # a document holding the word twice at one code is one id in the BitMap
            deque(map(list.append, map(by_code.__getitem__, chain.from_iterable(several)),
                      holders), 0)
        built = {code: BitMap(docs) for code, docs in by_code.items()}
        if len(self._word_codes) >= MAX_CACHED_WORDS:
            self._word_codes.clear()
        self._word_codes[word] = built
        return built
