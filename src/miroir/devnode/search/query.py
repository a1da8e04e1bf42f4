"""A search query `q` turned into terms, and each term into the index words it may match.

Owns: splitting `q` into words, quoted phrases and negative (`-word`, `-"phrase"`) terms; the
10-term limit; stop words (dropped unless last); which term is a prefix (the last word, when
nothing follows it); the typos each term allows under `typoTolerance`; and the derivations of a
term (exact word, prefixes, typo candidates, synonyms) looked up in the index's trie.

Must never: look at documents or corpus statistics; derivations depend on the vocabulary only
to know which words exist, and a word's typo count never depends on how many documents hold it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from miroir.devnode.search.text import normalize_word, tokenize, words
from miroir.devnode.search.trie import Trie

MAX_QUERY_TERMS = 10


@dataclass(frozen=True, slots=True)
class Derivation:
    """One index word a term may match: its typo count, and whether it is the original word."""

    typos: int
    exact: bool  # the original word itself (not a typo, prefix or synonym)
    prefix_length: int | None = None  # set for prefix matches: chars of the word that matched


@dataclass
class Term:
    """One query term: a word or a phrase (several words that must be adjacent)."""

    words: tuple[str, ...]
    position: int  # query position (hard separators count 8)
    is_phrase: bool = False
    is_prefix: bool = False
    allowed_typos: int = 0
    # index word -> Derivation (words only; a phrase matches its words exactly)
    derivations: dict[str, Derivation] = field(default_factory=dict)
    synonym_phrases: list[tuple[str, ...]] = field(default_factory=list)

    @property
    def word_count(self) -> int:
        return len(self.words)

    @property
    def max_typo_cost(self) -> int:
        # A word allowing no typo still has cost range 1 (a split word counts as one typo).
        return 0 if self.is_phrase else max(1, self.allowed_typos)


@dataclass
class ParsedQuery:
    terms: list[Term]
    negative_words: list[str]
    negative_phrases: list[tuple[str, ...]]
    has_phrase: bool
    cache: dict[str, Any] = field(default_factory=dict)  # per-query constants of the ranking

    @property
    def is_placeholder(self) -> bool:
        return not self.terms


def _split(q: str) -> list[tuple[str, bool, bool]]:
    """(text, is_phrase, is_negative) chunks of q, in order."""
    chunks: list[tuple[str, bool, bool]] = []
    i, n = 0, len(q)
    buffer: list[str] = []
    while i < n:
        ch = q[i]
        at_word_start = i == 0 or q[i - 1].isspace()
        if ch == '"' or (ch == "-" and at_word_start and i + 1 < n and q[i + 1] == '"'):
            negative = ch == "-"
            start = i + 2 if negative else i + 1
            end = q.find('"', start)
            if buffer:
                chunks.append(("".join(buffer), False, False))
                buffer = []
            if end == -1:
                chunks.append((q[start:], True, negative))
                return chunks
            chunks.append((q[start:end], True, negative))
            i = end + 1
            continue
        if ch == "-" and at_word_start and i + 1 < n and not q[i + 1].isspace():
            j = i + 1
            while j < n and not q[j].isspace() and q[j] != '"':
                j += 1
            if buffer:
                chunks.append(("".join(buffer), False, False))
                buffer = []
            chunks.append((q[i + 1 : j], False, True))
            i = j
            continue
        buffer.append(ch)
        i += 1
    if buffer:
        chunks.append(("".join(buffer), False, False))
    return chunks


def allowed_typos(word: str, typo_tolerance: dict[str, Any]) -> int:
    if not typo_tolerance.get("enabled", True):
        return 0
    disabled = {normalize_word(w) for w in typo_tolerance.get("disableOnWords") or ()}
    if word in disabled:
        return 0
    if typo_tolerance.get("disableOnNumbers") and word.isdigit():
        return 0
    sizes = typo_tolerance.get("minWordSizeForTypos") or {}
    length = len(word)
    if length < sizes.get("oneTypo", 5):
        return 0
    if length < sizes.get("twoTypos", 9):
        return 1
    return 2


def parse_query(q: str, settings: dict[str, Any]) -> ParsedQuery:
    """The terms of `q` (at most 10), negative terms aside."""
    stop_words = {normalize_word(w) for w in settings.get("stopWords") or ()}
    typo_tolerance = settings.get("typoTolerance") or {}
    terms: list[Term] = []
    negative_words: list[str] = []
    negative_phrases: list[tuple[str, ...]] = []
    position = 0
    chunks = _split(q)
    # The last word is a prefix only if nothing (not even a space or punctuation) follows it.
    trailing_free = bool(q) and q[-1].isalnum()
    for chunk_index, (text, is_phrase, negative) in enumerate(chunks):
        if negative:
            chunk_words = words(text)
            if is_phrase and chunk_words:
                negative_phrases.append(tuple(chunk_words))
            elif chunk_words:
                negative_words.append(chunk_words[0])
            continue
        if is_phrase:
            chunk_words = tuple(words(text))
            if chunk_words:
                terms.append(Term(chunk_words, position, is_phrase=True))
                position += len(chunk_words)
            continue
        tokens = tokenize(text, position)
        last_chunk = chunk_index == len(chunks) - 1
        for token_index, token in enumerate(tokens):
            is_last = last_chunk and token_index == len(tokens) - 1
            if token.word in stop_words and not is_last:
                continue
            term = Term((token.word,), token.position)
            term.is_prefix = is_last and trailing_free
            term.allowed_typos = allowed_typos(token.word, typo_tolerance)
            terms.append(term)
        if tokens:
            position = tokens[-1].position + 1
    return ParsedQuery(
        terms[:MAX_QUERY_TERMS],
        negative_words,
        negative_phrases,
        any(t.is_phrase for t in terms[:MAX_QUERY_TERMS]),
    )


def derive(term: Term, trie: Trie, settings: dict[str, Any], *, prefix_search: bool) -> None:
    """Fill `term.derivations` (and synonym phrases) from the vocabulary."""
    if term.is_phrase:
        return
    word = term.words[0]
    out: dict[str, Derivation] = {}
    prefix = term.is_prefix and prefix_search
    if term.allowed_typos:
        for candidate, typos in trie.fuzzy(word, term.allowed_typos, prefix=prefix).items():
            out[candidate] = Derivation(typos, False, None)
    if prefix:
        for candidate in trie.with_prefix(word):
            previous = out.get(candidate)
            if previous is None or previous.typos > 0:
                out[candidate] = Derivation(0, False, len(word))
    if word in trie:
        out[word] = Derivation(0, True, None)
    synonyms = settings.get("synonyms") or {}
    for key, alternatives in synonyms.items():
        if words(key) != [word]:
            continue
        for alternative in alternatives:
            alt_words = tuple(words(alternative))
            if len(alt_words) == 1:
                if alt_words[0] not in out and alt_words[0] in trie:
                    out[alt_words[0]] = Derivation(0, False, None)
            elif alt_words:
                term.synonym_phrases.append(alt_words)
    term.derivations = out
