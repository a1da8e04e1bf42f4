"""Tokenization and normalization shared by indexing, querying and highlighting.

Owns: how text becomes words (Unicode-aware: runs of letters and digits; each CJK ideograph is
its own word), how words are normalized (lower-case, diacritics folded), and word positions
(+1 across soft separators, +8 across a hard separator or into the next array value, as
Meilisearch's `tokenize_document` counts them). Also Damerau-Levenshtein distance.
`tokenize` is the reference (tokens with spans, for queries and highlighting); `word_positions`
is the indexer's shortcut, equal to it word for word and position for position (a property
test checks), with a regular-expression path for ASCII text.

Must never: know about documents, settings or ranking. It is plain text in, tokens out.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

HARD_SEPARATORS = frozenset(".!?;\n\r…。！？；")
HARD_GAP = 8


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a text: its normalized form, its char span in the text, and its position."""

    word: str
    start: int
    end: int
    position: int


def _is_cjk(ch: str) -> bool:
    code = ord(ch)
    return (
        0x4E00 <= code <= 0x9FFF
        or 0x3400 <= code <= 0x4DBF
        or 0x3040 <= code <= 0x30FF
        or 0xAC00 <= code <= 0xD7AF
        or 0x20000 <= code <= 0x2A6DF
    )


@lru_cache(maxsize=200_000)
def normalize_word(word: str) -> str:
    """Lower-case and strip diacritics (é -> e, Ö -> o); ß and ligatures are decomposed."""
    if word.isascii():
        return word.lower()
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _is_word_char(ch: str) -> bool:
    return ch.isalnum() or unicodedata.category(ch) in ("Mn", "Mc")


def tokenize(text: str, first_position: int = 0) -> list[Token]:
    """The words of `text`, with positions starting at `first_position`."""
    tokens: list[Token] = []
    n = len(text)
    i = 0
    position = first_position
    pending_gap = 0  # 0 before the first word, else 1 or HARD_GAP
    while i < n:
        ch = text[i]
        if _is_cjk(ch):
            if tokens:
                position += pending_gap or 1
            tokens.append(Token(normalize_word(ch), i, i + 1, position))
            pending_gap = 1
            i += 1
            continue
        if _is_word_char(ch):
            j = i + 1
            while j < n and _is_word_char(text[j]) and not _is_cjk(text[j]):
                j += 1
            if tokens:
                position += pending_gap or 1
            word = normalize_word(text[i:j])
            if word:
                tokens.append(Token(word, i, j, position))
            pending_gap = 1
            i = j
            continue
        if ch in HARD_SEPARATORS and tokens:
            pending_gap = HARD_GAP
        i += 1
    return tokens


_ASCII_WORD = re.compile(r"[a-z0-9]+")
_ASCII_HARD = re.compile(r"[.!?;\n\r]")
_ASCII_WORD_OR_HARD = re.compile(r"([a-z0-9]+)|[.!?;\n\r]")
_ASCII_NOT_WORD_OR_SPACE = re.compile(r"[^a-z0-9 ]")


def ascii_single_run(lowered: str) -> list[str] | None:
    """The words of a lower-cased ASCII text without hard separators (one run, consecutive
    positions), else None. Words and spaces only is `split()`, half the cost of the regex."""
    if _ASCII_NOT_WORD_OR_SPACE.search(lowered) is None:
        return lowered.split()
    if _ASCII_HARD.search(lowered) is None:
        return _ASCII_WORD.findall(lowered)
    return None


def ascii_runs(text: str) -> list[list[str]] | None:
    """The words of an ASCII text as runs between hard separators (empty runs dropped), else
    None. Inside a run words are one position apart; a run starts HARD_GAP after the last word
    of the one before (`tokenize`'s positions)."""
    if not text.isascii():
        return None
    lowered = text.lower()
    if _ASCII_HARD.search(lowered) is None:
        found = _ASCII_WORD.findall(lowered)
        return [found] if found else []
    runs = (_ASCII_WORD.findall(part) for part in _ASCII_HARD.split(lowered))
    return [run for run in runs if run]


def word_positions(text: str, first_position: int = 0) -> list[tuple[str, int]]:
    """(word, position) of every token of `text`: exactly `tokenize`'s words and positions.

    ASCII text has no CJK, no combining marks and no letter that normalizes away, so its words
    are the runs of [a-z0-9] of the lower-cased text; without a hard separator they follow
    each other one position apart.
    """
    if not text.isascii():
        return [(token.word, token.position) for token in tokenize(text, first_position)]
    lowered = text.lower()
    if _ASCII_HARD.search(lowered) is None:
        found = _ASCII_WORD.findall(lowered)
        return list(zip(found, range(first_position, first_position + len(found)), strict=True))
    out: list[tuple[str, int]] = []
    position = first_position
    gap = 0  # pending gap before the next word: 1, or HARD_GAP after a hard separator
    for match in _ASCII_WORD_OR_HARD.finditer(lowered):
        word = match.group(1)
        if word is None:
            if out:
                gap = HARD_GAP
            continue
        if out:
            position += gap
        out.append((word, position))
        gap = 1
    return out


def words(text: str) -> list[str]:
    return [token.word for token in tokenize(text)]


def damerau_levenshtein(a: str, b: str, limit: int) -> int:
    """Optimal-string-alignment distance, or limit+1 as soon as it must exceed `limit`."""
    if abs(len(a) - len(b)) > limit:
        return limit + 1
    previous_previous: list[int] | None = None
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        row_min = i
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            value = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if (
                previous_previous is not None
                and i > 1
                and j > 1
                and a[i - 1] == b[j - 2]
                and a[i - 2] == b[j - 1]
            ):
                value = min(value, previous_previous[j - 2] + 1)
            current[j] = value
            row_min = min(row_min, value)
        if row_min > limit:
            return limit + 1
        previous_previous, previous = previous, current
    return min(previous[len(b)], limit + 1)


def iter_text_values(value: object) -> Iterator[str]:
    """The searchable strings inside a JSON value (numbers and booleans as text)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, (int, float)):
        yield str(value)
    elif isinstance(value, list):
        for item in value:
            yield from iter_text_values(item)
