"""The vocabulary of one index, shaped for prefix and typo lookups.

Owns: a sorted word list (prefix lookups are one bisect; words added since the last lookup
wait in a list and are sorted in together, so a bulk load does not shift the list once per new
word) and a character trie walked with a
Damerau-Levenshtein row per node (typo lookups visit only the branches still within budget,
never the whole vocabulary). Meilisearch's first-letter rule is applied here: with one typo
allowed a candidate keeps the first letter; with two, a different first letter is allowed only
within distance 1 and then counts as two typos.

Answers are cached per (word, typos, prefix) until the vocabulary changes: the same query
words come back again and again, and a typo walk costs milliseconds. Callers must not mutate
what they get.

Must never: know about documents or positions; it answers "which words", not "where".
"""

from __future__ import annotations

import bisect
from typing import Any

_END = ""  # trie key marking that the path so far is a word
MAX_ANSWERS = 4096
_INSORT_AT_MOST = 16  # more words waiting than this are merged by one sort


class Trie:
    def __init__(self) -> None:
        self.root: dict[str, Any] = {}
        self._sorted_words: list[str] = []
        self._unsorted: list[str] = []  # added since the last lookup, not in _sorted_words yet
        self._answers: dict[tuple[str, int, bool], Any] = {}

    def add(self, word: str) -> None:
        node = self.root
        for ch in word:
            child = node.get(ch)
            if child is None:  # not setdefault: it would build a dict per letter to drop
                child = node[ch] = {}
            node = child
        if _END not in node:
            node[_END] = True
            self._unsorted.append(word)
            if self._answers:
                self._answers.clear()

    @property
    def sorted_words(self) -> list[str]:
        """Every word, in code point order."""
        unsorted = self._unsorted
        if unsorted:
            words = self._sorted_words
            if len(unsorted) <= _INSORT_AT_MOST:
                for word in unsorted:
                    bisect.insort(words, word)
            else:
                words += unsorted  # a sorted run and a tail: timsort merges them in O(n)
                words.sort()
            unsorted.clear()
        return self._sorted_words

    def remove(self, word: str) -> None:
        node = self.root
        for ch in word:
            node = node.get(ch)
            if node is None:
                return
        if node.pop(_END, None) is not None:
            words = self.sorted_words
            index = bisect.bisect_left(words, word)
            if index < len(words) and words[index] == word:
                del words[index]
            self._answers.clear()

    def _remember(self, key: tuple[str, int, bool], answer: Any) -> Any:
        if len(self._answers) >= MAX_ANSWERS:
            self._answers.clear()
        self._answers[key] = answer
        return answer

    def __contains__(self, word: str) -> bool:
        words = self.sorted_words
        index = bisect.bisect_left(words, word)
        return index < len(words) and words[index] == word

    def with_prefix(self, prefix: str, limit: int | None = None) -> list[str]:
        """Words starting with `prefix` (the prefix itself included), in byte order."""
        if limit is not None:
            return self._with_prefix(prefix, limit)
        key = (prefix, -1, True)
        found = self._answers.get(key)
        if found is None:
            found = self._remember(key, self._with_prefix(prefix, None))
        return found

    def _with_prefix(self, prefix: str, limit: int | None) -> list[str]:
        words = self.sorted_words
        start = bisect.bisect_left(words, prefix)
        out = []
        for index in range(start, len(words)):
            word = words[index]
            if not word.startswith(prefix):
                break
            out.append(word)
            if limit is not None and len(out) >= limit:
                break
        return out

    def fuzzy(self, query: str, max_typos: int, *, prefix: bool) -> dict[str, int]:
        """Words within `max_typos` of `query` (of one of their prefixes if `prefix`) -> typos.

        Exact matches (0 typos) are included. The first-letter rule applies (see module doc).
        """
        key = (query, max_typos, prefix)
        found = self._answers.get(key)
        if found is None:
            found = self._remember(key, self._fuzzy(query, max_typos, prefix=prefix))
        return found

    def _fuzzy(self, query: str, max_typos: int, *, prefix: bool) -> dict[str, int]:
        found: dict[str, int] = {}
        if max_typos <= 0 or not query:
            return found
        first = query[0]
        width = len(query) + 1
        start_row = list(range(width))
        for ch, child in self.root.items():
            if ch == _END:
                continue
            budget = max_typos if ch == first else min(1, max_typos)
            penalty = 0 if ch == first or max_typos < 2 else 2
            if ch != first and max_typos < 2:
                continue
            self._walk(
                child,
                ch,
                "",
                ch,
                start_row,
                None,
                query,
                budget,
                prefix,
                max_typos + 1,
                penalty,
                found,
            )
        return found

    def _walk(
        self,
        node: dict[str, Any],
        ch: str,
        prev_ch: str,
        path: str,
        row: list[int],
        prev_row: list[int] | None,
        query: str,
        budget: int,
        prefix: bool,
        best_prefix: int,
        penalty: int,
        found: dict[str, int],
    ) -> None:
        n = len(query)
        # Only the band |i - j| <= budget can hold a distance within budget (i = len(path)):
        # cells outside it keep budget + 1, which stands for "too far" as well as the true
        # value would (Ukkonen's cut-off), so answers within budget are exact.
        depth = len(path)
        new = [budget + 1] * (n + 1)
        new[0] = row[0] + 1
        for j in range(max(1, depth - budget), min(n, depth + budget) + 1):
            qc = query[j - 1]
            value = min(row[j] + 1, new[j - 1] + 1, row[j - 1] + (qc != ch))
            if prev_row is not None and j > 1 and qc == prev_ch and query[j - 2] == ch:
                value = min(value, prev_row[j - 2] + 1)
            new[j] = value
        distance = new[n]
        if prefix and distance < best_prefix:
            best_prefix = distance
        if _END in node:
            cost = best_prefix if prefix else distance
            if cost <= budget:
                typos = penalty if penalty else cost
                previous = found.get(path)
                if previous is None or typos < previous:
                    found[path] = typos
        if min(new) > budget and not (prefix and best_prefix <= budget):
            return
        for next_ch, child in node.items():
            if next_ch == _END:
                continue
            if min(new) > budget:
                # Only enumerating a subtree already matched as a prefix.
                self._enumerate(child, path + next_ch, penalty or best_prefix, found)
            else:
                self._walk(
                    child,
                    next_ch,
                    ch,
                    path + next_ch,
                    new,
                    row,
                    query,
                    budget,
                    prefix,
                    best_prefix,
                    penalty,
                    found,
                )

    def _enumerate(
        self, node: dict[str, Any], path: str, typos: int, found: dict[str, int]
    ) -> None:
        stack = [(node, path)]
        while stack:
            current, current_path = stack.pop()
            for ch, child in current.items():
                if ch == _END:
                    previous = found.get(current_path)
                    if previous is None or typos < previous:
                        found[current_path] = typos
                else:
                    stack.append((child, current_path + ch))
