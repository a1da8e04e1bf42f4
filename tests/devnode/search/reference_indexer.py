"""The indexer as it was before the bulk word maps: one dict lookup and one append per word.

`ReferenceSearcher` is an `IndexSearcher` whose `_index` walks every word occurrence of a
document with the reference tokenizer path (`word_positions`, which a property ties to
`tokenize`) and builds `word -> [codes]` one append at a time, in document order. Everything
else (postings, trie, caches, search) is the searcher's own, so a test that builds one of each
from the same writes compares only how documents become index structures.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyroaring import BitMap

from miroir.devnode.search.index import (
    ARRAY_GAP,
    MAX_POSITION,
    POSITION_BITS,
    IndexSearcher,
    iter_fields,
)
from miroir.devnode.search.text import iter_text_values, word_positions


class ReferenceSearcher(IndexSearcher):
    def searchable_values(self, document: Mapping[str, Any]) -> list[tuple[int, list[str]]]:
        out: list[tuple[int, list[str]]] = []
        for path, value in iter_fields(document):
            field_id = self.field_id(path)
            if self.field_weights[field_id] is not None:
                out.append((field_id, list(iter_text_values(value))))
        return out

    def _index(self, internal_id: int, document: Mapping[str, Any]) -> None:
        words: dict[str, list[int]] = {}
        next_start: dict[int, int] = {}
        counts: dict[int, int] = {}
        for field_id, texts in self.searchable_values(document):
            start = next_start.get(field_id, 0)
            for text in texts:
                pairs = word_positions(text, start)
                if not pairs:
                    continue
                counts[field_id] = counts.get(field_id, 0) + len(pairs)
                for word, position in pairs:
                    if word in self.stop_words:
                        continue
                    code = (field_id << POSITION_BITS) | min(position, MAX_POSITION)
                    words.setdefault(word, []).append(code)
                start = pairs[-1][1] + ARRAY_GAP
            next_start[field_id] = start
        for word in words:
            docs = self.word_docs.get(word)
            if docs is None:
                self.word_docs[word] = docs = BitMap()
                self.trie.add(word)
            docs.add(internal_id)
            self._word_codes.pop(word, None)
        self.query_cache.clear()
        self.doc_words[internal_id] = words  # type: ignore[assignment]
        self.doc_field_lengths[internal_id] = counts
        for key in counts.items():
            self.field_length_docs.setdefault(key, BitMap()).add(internal_id)
