"""What a hit shows: retrieved attributes, `_formatted` (highlight, crop) and `_matchesPosition`.

Owns: attribute selection by patterns (displayedAttributes ∩ attributesToRetrieve, dotted paths
reaching into nested objects), which tokens of a text match the query (any derivation of any
term: exact, typo, synonym, or the matched part of a prefix), highlight tags, the crop window
(the `cropLength` words holding the most distinct query terms, centred on them, with the crop
marker where text was cut) and match positions (UTF-8 byte offsets, as Meilisearch reports).

Must never: change ranking or which documents match.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from miroir.devnode.search.query import ParsedQuery
from miroir.devnode.search.text import Token, tokenize


def _path_selected(path: str, patterns: list[str]) -> bool:
    return any(p == "*" or p == path or path.startswith(p + ".") for p in patterns)


def _path_is_parent(path: str, patterns: list[str]) -> bool:
    return any(p.startswith(path + ".") for p in patterns)


def select_attributes(document: Mapping[str, Any], patterns: list[str], prefix: str = "") -> dict:
    """The parts of `document` whose dotted paths match `patterns` (a path or a parent of it)."""
    out: dict[str, Any] = {}
    for key, value in document.items():
        path = prefix + key
        if _path_selected(path, patterns):
            out[key] = value
        elif _path_is_parent(path, patterns):
            if isinstance(value, Mapping):
                inner = select_attributes(value, patterns, path + ".")
                if inner:
                    out[key] = inner
            elif isinstance(value, list):
                items = [
                    select_attributes(item, patterns, path + ".")
                    for item in value
                    if isinstance(item, Mapping)
                ]
                items = [item for item in items if item]
                if items:
                    out[key] = items
    return out


class Matcher:
    """Finds the tokens of a text that match a query."""

    def __init__(self, query: ParsedQuery) -> None:
        # normalized word -> (term index, chars to highlight or None for the whole word)
        self.words: dict[str, tuple[int, int | None]] = {}
        for index, term in enumerate(query.terms):
            if term.is_phrase:
                for word in term.words:
                    self.words.setdefault(word, (index, None))
                continue
            for word, derivation in term.derivations.items():
                previous = self.words.get(word)
                if previous is None or (
                    previous[1] is not None and derivation.prefix_length is None
                ):
                    self.words[word] = (index, derivation.prefix_length)
            for phrase in term.synonym_phrases:
                for word in phrase:
                    self.words.setdefault(word, (index, None))

    def matches(self, tokens: list[Token]) -> list[tuple[Token, int, int]]:
        """(token, term index, matched char length) for every matching token."""
        out = []
        for token in tokens:
            found = self.words.get(token.word)
            if found is not None:
                term, prefix_length = found
                length = token.end - token.start
                if prefix_length is not None:
                    length = min(length, prefix_length)
                out.append((token, term, length))
        return out


def _highlight(
    text: str, matches: list[tuple[Token, int, int]], start: int, end: int, pre: str, post: str
) -> str:
    pieces: list[str] = []
    cursor = start
    for token, _, length in matches:
        if token.start < start or token.end > end:
            continue
        pieces.append(text[cursor : token.start])
        pieces.append(pre + text[token.start : token.start + length] + post)
        cursor = token.start + length
    pieces.append(text[cursor:end])
    return "".join(pieces)


def format_text(
    text: str,
    matcher: Matcher,
    *,
    highlight: bool,
    crop: int | None,
    marker: str,
    pre: str,
    post: str,
) -> str:
    tokens = tokenize(text)
    matches = matcher.matches(tokens)
    start, end = 0, len(text)
    prefix_marker = suffix_marker = ""
    if crop is not None and tokens:
        if crop == 0:
            return ""
        first, last = _crop_window(tokens, matches, crop)
        if len(tokens) > crop or first > 0:
            start, end = tokens[first].start, tokens[last].end
            prefix_marker = marker if first > 0 else ""
            suffix_marker = marker if last < len(tokens) - 1 else ""
    body = _highlight(text, matches, start, end, pre, post) if highlight else text[start:end]
    return prefix_marker + body + suffix_marker


def _crop_window(
    tokens: list[Token], matches: list[tuple[Token, int, int]], crop: int
) -> tuple[int, int]:
    """Token indices [first, last] of the crop window."""
    n = len(tokens)
    if n <= crop:
        return 0, n - 1
    index_of = {id(token): i for i, token in enumerate(tokens)}
    matched = [(index_of[id(token)], term) for token, term, _ in matches]
    if not matched:
        return 0, crop - 1
    best = (-1, 0, 0)
    for a, _ in matched:
        window_terms = {term for i, term in matched if a <= i < a + crop}
        span = [i for i, _ in matched if a <= i < a + crop]
        score = len(window_terms)
        if score > best[0]:
            best = (score, a, span[-1])
    _, first_match, last_match = best
    extra = crop - (last_match - first_match + 1)
    first = max(0, first_match - extra // 2)
    first = min(first, n - crop)
    return first, first + crop - 1


def _format_value(
    value: Any,
    matcher: Matcher,
    *,
    highlight: bool,
    crop: int | None,
    marker: str,
    pre: str,
    post: str,
) -> Any:
    if isinstance(value, str):
        return format_text(
            value, matcher, highlight=highlight, crop=crop, marker=marker, pre=pre, post=post
        )
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return [
            _format_value(
                v, matcher, highlight=highlight, crop=crop, marker=marker, pre=pre, post=post
            )
            for v in value
        ]
    if isinstance(value, Mapping):
        return {
            k: _format_value(
                v, matcher, highlight=highlight, crop=crop, marker=marker, pre=pre, post=post
            )
            for k, v in value.items()
        }
    return value


def formatted(
    document: Mapping[str, Any],
    matcher: Matcher,
    *,
    highlight: list[str],
    crop: dict[str, int],
    default_crop: int,
    marker: str,
    pre: str,
    post: str,
    prefix: str = "",
) -> dict[str, Any]:
    """`_formatted`: every shown attribute, highlighted/cropped where asked."""
    out: dict[str, Any] = {}
    for key, value in document.items():
        path = prefix + key
        if isinstance(value, Mapping):
            out[key] = formatted(
                value,
                matcher,
                highlight=highlight,
                crop=crop,
                default_crop=default_crop,
                marker=marker,
                pre=pre,
                post=post,
                prefix=path + ".",
            )
            continue
        do_highlight = _path_selected(path, highlight)
        crop_length = None
        for pattern, length in crop.items():
            if pattern == "*" or pattern == path or path.startswith(pattern + "."):
                crop_length = length if length is not None else default_crop
        if do_highlight or crop_length is not None:
            out[key] = _format_value(
                value,
                matcher,
                highlight=do_highlight,
                crop=crop_length,
                marker=marker,
                pre=pre,
                post=post,
            )
        else:
            out[key] = value
    return out


def matches_position(
    document: Mapping[str, Any], matcher: Matcher, prefix: str = ""
) -> dict[str, list[dict[str, int]]]:
    """`_matchesPosition`: {path: [{start, length}]} in UTF-8 bytes."""
    out: dict[str, list[dict[str, int]]] = {}
    for key, value in document.items():
        path = prefix + key
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, Mapping):
                for sub, found in matches_position(item, matcher, path + ".").items():
                    out.setdefault(sub, []).extend(found)
                continue
            if isinstance(item, bool) or item is None:
                continue
            text = item if isinstance(item, str) else str(item)
            for token, _, length in matcher.matches(tokenize(text)):
                start = len(text[: token.start].encode())
                size = len(text[token.start : token.start + length].encode())
                out.setdefault(path, []).append({"start": start, "length": size})
    return out
