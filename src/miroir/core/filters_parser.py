"""The parser of Meilisearch's filter expressions (its `filter-parser` crate, in Python).

Owns: the grammar, the keywords, and the error messages with their `start:end` column marker,
exactly as Meilisearch words them; the array form (outer AND of strings or inner-OR arrays).

Must never: check attributes against settings or evaluate anything (filters does).

Theory of operation. The parser mirrors nom's two failure modes: a *soft* failure lets an
alternative be tried (`_Soft`), a *hard* one (nom's `cut`) aborts the whole parse (`_Hard`).
Meilisearch's messages depend on which mode fires where, so the code keeps the same shape as
the grammar: or -> and -> not -> primary, with the same depth accounting (max 200).
Grammar (the Rust crate's, in its words): `filter = expression EOF; or = and ("OR" and)*;
and = not ("AND" not)*; not = "NOT" not | primary; primary = "(" expression ")" | geoRadius |
geoBoundingBox | in | not_in | condition | IS [NOT] NULL | IS [NOT] EMPTY | EXISTS | NOT EXISTS |
to | [NOT] CONTAINS | [NOT] STARTS WITH`.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from typing import Any

from miroir.core.errors import MeiliError
from miroir.core.filters_ast import (
    And,
    Between,
    Compare,
    Contains,
    Exists,
    GeoBoundingBox,
    GeoRadius,
    In,
    IsEmpty,
    IsNull,
    Node,
    Not,
    Or,
    StartsWith,
    negate,
)

MAX_FILTER_DEPTH = 200
KEYWORDS = frozenset(
    {
        "AND",
        "OR",
        "IN",
        "NOT",
        "TO",
        "EXISTS",
        "IS",
        "NULL",
        "EMPTY",
        "CONTAINS",
        "STARTS",
        "WITH",
        "_geoRadius",
        "_geoBoundingBox",
    }
)
COMPARISON_OPERATORS = ("<=", ">=", "!=", "<", ">", "=")
_INVALID_PRIMARY = (
    "Was expecting an operation `=`, `!=`, `>=`, `>`, `<=`, `<`, `IN`, `NOT IN`, `TO`, `EXISTS`, "
    "`NOT EXISTS`, `IS NULL`, `IS NOT NULL`, `IS EMPTY`, `IS NOT EMPTY`, `CONTAINS`, "
    "`NOT CONTAINS`, `STARTS WITH`, `NOT STARTS WITH`, `_geoRadius`, or `_geoBoundingBox` "
)
_RESERVED_GEO = (
    "`{}` is a reserved keyword and thus can't be used as a filter expression. Use the "
    "`_geoRadius(latitude, longitude, distance)` or `_geoBoundingBox([latitude, longitude], "
    "[latitude, longitude])` built-in rules to filter on `_geo` coordinates."
)
_GEO_RADIUS_ARGS = (
    "The `_geoRadius` filter expects three arguments: `_geoRadius(latitude, longitude, radius)`."
)
_GEO_BBOX_ARGS = (
    "The `_geoBoundingBox` filter expects two pairs of arguments: "
    "`_geoBoundingBox([latitude, longitude], [latitude, longitude])`."
)
# Rust's f64::from_str for finite values; Python's float() also takes "1_0" and spaces.
# (nom's `recognize_float` accepts the same shapes inside `_geoRadius(...)`.)
_FINITE_FLOAT = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_FLOAT_TOKEN = _FINITE_FLOAT


# ---------------------------------------------------------------------------------------------
# Errors


class _Soft(Exception):
    """A recoverable parse failure (nom's `Err::Error`): the caller may try another branch."""

    def __init__(self, message: str, start: int, end: int, *, reserved: bool = False) -> None:
        self.message, self.start, self.end = message, start, end
        self.reserved = reserved  # "a reserved keyword where a value belongs"


class _Hard(_Soft):
    """An unrecoverable parse failure (nom's `Err::Failure`, after a `cut`)."""


def _escape_debug(text: str) -> str:
    # Rust's str::escape_debug for the characters that occur in practice.
    out = []
    for ch in text:
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\0":
            out.append("\\0")
        else:
            out.append(ch)
    return "".join(out)


def _column(source: str, offset: int) -> int:
    """nom_locate's `get_utf8_column`: 1 + characters since the last newline."""
    line_start = source.rfind("\n", 0, offset) + 1
    return offset - line_start + 1


def filter_error(code: str, diagnostic: str, source: str, start: int, end: int) -> MeiliError:
    """A filter error in Meilisearch's shape: the diagnostic, then `start:end filter`."""
    first = _column(source, start)
    return MeiliError(code, f"{diagnostic}\n{first}:{first + (end - start)} {source}")


# ---------------------------------------------------------------------------------------------
# The parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.n = len(text)

    # -- lexical helpers ------------------------------------------------------------------
    def ws(self, i: int) -> int:
        # nom's multispace0: spaces, tabs, CR and LF only.
        while i < self.n and self.text[i] in " \t\r\n":
            i += 1
        return i

    def ws1(self, i: int) -> int:
        j = self.ws(i)
        if j == i:
            raise _Soft("", i, i)
        return j

    def uws(self, i: int) -> int:
        while i < self.n and self.text[i].isspace():
            i += 1
        return i

    @staticmethod
    def is_value_char(ch: str) -> bool:
        return ch.isalnum() or ch in "_-."

    def word(self, i: int) -> tuple[str, int]:
        j = i
        while j < self.n and self.is_value_char(self.text[j]):
            j += 1
        if j == i:
            raise _Soft("", i, i)
        return self.text[i:j], j

    def word_exact(self, i: int, tag: str) -> int:
        word, j = self.word(i)
        if word != tag:
            raise _Soft("", i, i)
        return j

    def tag(self, i: int, tag: str) -> int:
        if not self.text.startswith(tag, i):
            raise _Soft("", i, i)
        return i + len(tag)

    def error_word_end(self, i: int) -> int:
        j = i
        while j < self.n and not (self.text[j].isspace() or self.text[j] in "()=<>!"):
            j += 1
        return j

    # -- values -----------------------------------------------------------------------------
    def quoted(self, i: int, quote: str) -> tuple[str, int]:
        """The body of a quoted value starting after the opening quote; returns the end."""
        j = i
        escaped_quote = False
        while j < self.n:
            ch = self.text[j]
            if ch == quote:
                raw = self.text[i:j]
                return (raw.replace("\\" + quote, quote) if escaped_quote else raw), j
            if ch == "\\":
                if j + 1 >= self.n:
                    raise _Soft("malformed", i, self.n)
                escaped_quote |= self.text[j + 1] == quote
                j += 2
                continue
            j += 1
        # Unterminated: the caller reports the missing closing delimiter.
        raise _Hard(f"missing:{quote}", i, self.n)

    def geo_call(self, i: int, name: str, exact_word: bool) -> int | None:
        """Where the keyword `name` (after optional spaces) ends, or None if it is not there."""
        j = self.ws(i)
        try:
            k = self.word_exact(j, name) if exact_word else self.tag(j, name)
        except _Soft:
            return None
        return k

    def float_list(self, i: int, close: str) -> tuple[list[str], int]:
        """`(` already consumed: `ws float ws ("," ws float ws)* close`."""
        out: list[str] = []
        while True:
            j = self.ws(i)
            m = _FLOAT_TOKEN.match(self.text, j)
            if not m:
                raise _Soft("", j, j)
            out.append(m.group(0))
            j = self.ws(m.end())
            if j < self.n and self.text[j] == ",":
                i = j + 1
                continue
            if j < self.n and self.text[j] == close:
                return out, j + 1
            raise _Soft("", j, j)

    def reserved_geo_checks(self, i: int) -> None:
        """`_geoPoint(`, `_geoDistance(`, `_geo(` anywhere a value or primary is expected."""
        for name, exact in (("_geoPoint", False), ("_geoDistance", False), ("_geo", True)):
            if self.geo_call(i, name, exact) is not None:
                raise _Hard(_RESERVED_GEO.format(name), i, self.n)

    def value(self, i: int) -> tuple[str, tuple[int, int], int]:
        """value = WS* (word | 'single' | "double") WS*; returns (value, span, next)."""
        i = self.uws(i)
        self.reserved_geo_checks(i)
        if self.geo_call(i, "_geoRadius", True) is not None:
            raise _Hard(
                "The `_geoRadius` filter is an operation and can't be used as a value.", i, self.n
            )
        if self.geo_call(i, "_geoBoundingBox", True) is not None:
            raise _Hard(
                "The `_geoBoundingBox` filter is an operation and can't be used as a value.",
                i,
                self.n,
            )
        ch = self.text[i] if i < self.n else ""
        if ch in ("'", '"'):
            try:
                raw, close = self.quoted(i + 1, ch)
            except _Hard:
                raise _Hard(
                    f"Expression `{_escape_debug(self.text[i:])}` is missing the following "
                    f"closing delimiter: `{ch}`.",
                    i,
                    self.n,
                ) from None
            except _Soft:
                # A lone trailing backslash: nom's `cut` makes it final.
                raise _Hard(
                    f"Malformed value: `{_escape_debug(self.text[i + 1 :])}`.", i + 1, self.n
                ) from None
            span = (i + 1, close)
            end = close + 1
        else:
            try:
                raw, end = self.word(i)
            except _Soft:
                raise self.expected_value(i, reserved=False) from None
            if raw in KEYWORDS:
                raise self.expected_value(i, reserved=True)
            span = (i, end)
        try:
            unescaped = _unescape(raw)
        except ValueError:
            raise _Soft(f"Malformed value: `{_escape_debug(raw)}`.", *span) from None
        return unescaped, span, self.ws(end)

    def expected_value(self, i: int, reserved: bool) -> _Soft:
        end = self.error_word_end(i)
        got = self.text[i:end]
        if not got.strip():
            return _Soft("Was expecting a value but instead got nothing.", i, end)
        if reserved:
            return _Soft(
                f"Was expecting a value but instead got `{_escape_debug(got)}`, which is a "
                f"reserved keyword. To use `{_escape_debug(got)}` as a field name or a value, "
                "surround it by quotes.",
                i,
                end,
                reserved=True,
            )
        return _Soft(f"Was expecting a value but instead got `{_escape_debug(got)}`.", i, end)

    def cut_value(self, i: int) -> tuple[str, tuple[int, int], int]:
        try:
            return self.value(i)
        except _Hard:
            raise
        except _Soft as soft:
            raise _Hard(soft.message, soft.start, soft.end, reserved=soft.reserved) from None

    # -- grammar ----------------------------------------------------------------------------
    def parse(self) -> Node:
        try:
            node, i = self.parse_or(0, 0)
            if i != self.n:
                raise _Soft(
                    "Found unexpected characters at the end of the filter: "
                    f"`{_escape_debug(self.text[i:])}`. You probably forgot an `OR` or an "
                    "`AND` rule.",
                    i,
                    self.n,
                )
            return node
        except _Soft as err:
            raise _ParseFailure(err.message, err.start, err.end) from None

    def depth_check(self, i: int, depth: int) -> None:
        if depth > MAX_FILTER_DEPTH:
            raise _Soft(
                "The filter exceeded the maximum depth limit. Try rewriting the filter so that "
                "it contains fewer nested conditions.",
                i,
                self.n,
            )

    def parse_or(self, i: int, depth: int) -> tuple[Node, int]:
        self.depth_check(i, depth)
        first, i = self.parse_and(i, depth + 1)
        items = [first]
        while True:
            try:
                j = self.ws(self.word_exact(self.ws(i), "OR"))
            except _Soft:
                break
            node, i = self.cut(self.parse_and, j, depth + 1)
            items.append(node)
        return (first if len(items) == 1 else Or(tuple(items))), i

    def parse_and(self, i: int, depth: int) -> tuple[Node, int]:
        self.depth_check(i, depth)
        first, i = self.parse_not(i, depth + 1)
        items = [first]
        while True:
            try:
                j = self.ws(self.word_exact(self.ws(i), "AND"))
            except _Soft:
                break
            node, i = self.cut(self.parse_not, j, depth + 1)
            items.append(node)
        return (first if len(items) == 1 else And(tuple(items))), i

    def cut(self, rule: Any, i: int, depth: int) -> tuple[Node, int]:
        try:
            return rule(i, depth)
        except _Hard:
            raise
        except _Soft as soft:
            raise _Hard(soft.message, soft.start, soft.end) from None

    def parse_not(self, i: int, depth: int) -> tuple[Node, int]:
        self.depth_check(i, depth)
        try:
            j = self.ws(self.word_exact(self.ws(i), "NOT"))
        except _Soft:
            return self.parse_primary(i, depth + 1)
        node, k = self.cut(self.parse_not, j, depth + 1)
        return negate(node), k

    def parse_primary(self, i: int, depth: int) -> tuple[Node, int]:
        self.depth_check(i, depth)
        start = self.ws(i)
        if start < self.n and self.text[start] == "(":
            node, j = self.cut(self.parse_or, self.ws(start + 1), depth + 1)
            j = self.ws(j)
            if j < self.n and self.text[j] == ")":
                return node, self.ws(j + 1)
            raise _Hard(
                f"Expression `{_escape_debug(self.text[i:])}` is missing the following closing "
                "delimiter: `)`.",
                i,
                self.n,
            )
        alternatives = (
            self.geo_radius,
            self.geo_bounding_box,
            self.in_,
            self.not_in,
            self.condition,
            self.is_null,
            self.is_not_null,
            self.is_empty,
            self.is_not_empty,
            self.exists,
            self.not_exists,
            self.to,
            self.contains,
            self.not_contains,
            self.starts_with,
            self.not_starts_with,
            self.reserved_geo_primary,
            self.reserved_keyword,
        )
        for alternative in alternatives:
            try:
                return alternative(i)
            except _Hard:
                raise
            except _Soft:
                continue
        rest = self.text[i:]
        text = "but instead got nothing." if not rest.strip() else f"at `{_escape_debug(rest)}`."
        raise _Soft(_INVALID_PRIMARY + text, i, self.n)

    def leaf_args(self, span: tuple[int, int]) -> dict[str, Any]:
        return {"span": span, "source": self.text}

    def geo_radius(self, i: int) -> tuple[Node, int]:
        j = self.geo_call(i, "_geoRadius", True)
        if j is None:
            raise _Soft("", i, i)
        try:
            if j >= self.n or self.text[j] != "(":
                raise _Soft("", j, j)
            args, k = self.float_list(j + 1, ")")
        except _Soft:
            raise _Hard(_GEO_RADIUS_ARGS, i, self.n) from None
        if len(args) != 3:
            raise _Hard(_GEO_RADIUS_ARGS, k, self.n)
        start = self.ws(i)
        return GeoRadius(args[0], args[1], args[2], (start, k), self.text), self.ws(k)

    def geo_bounding_box(self, i: int) -> tuple[Node, int]:
        j = self.geo_call(i, "_geoBoundingBox", True)
        if j is None:
            raise _Soft("", i, i)
        try:
            if j >= self.n or self.text[j] != "(":
                raise _Soft("", j, j)
            pairs: list[list[str]] = []
            k = j + 1
            while True:
                k = self.ws(k)
                if k >= self.n or self.text[k] != "[":
                    raise _Soft("", k, k)
                pair, k = self.float_list(k + 1, "]")
                pairs.append(pair)
                k = self.ws(k)
                if k < self.n and self.text[k] == ",":
                    k += 1
                    continue
                if k < self.n and self.text[k] == ")":
                    k += 1
                    break
                raise _Soft("", k, k)
        except _Soft:
            raise _Hard(_GEO_BBOX_ARGS, i, self.n) from None
        if len(pairs) != 2 or len(pairs[0]) != 2 or len(pairs[1]) != 2:
            raise _Hard(_GEO_BBOX_ARGS, k, self.n)
        start = self.ws(i)
        node = GeoBoundingBox(
            (pairs[0][0], pairs[0][1]), (pairs[1][0], pairs[1][1]), (start, k), self.text
        )
        return node, self.ws(k)

    def in_body(self, i: int) -> tuple[tuple[str, ...], int]:
        j = self.ws(self.word_exact(self.ws(i), "IN"))
        if j >= self.n or self.text[j] != "[":
            raise _Hard("Expected `[` after `IN` keyword.", j, self.n)
        k = j + 1
        values: list[str] = []
        try:
            value, _, k = self.value(k)
            values.append(value)
            while True:
                c = self.ws(k)
                if c < self.n and self.text[c] == ",":
                    try:
                        value, _, k2 = self.value(self.ws(c + 1))
                    except _Hard:
                        raise
                    except _Soft:
                        break
                    values.append(value)
                    k = k2
                else:
                    break
        except _Hard:
            raise
        except _Soft:
            pass
        c = self.ws(k)
        if c < self.n and self.text[c] == ",":
            k = self.ws(c + 1)
        c = self.ws(k)
        if c < self.n and self.text[c] == "]":
            return tuple(values), self.ws(c + 1)
        if k >= self.n:
            raise _Hard(
                "Expected matching `]` after the list of field names given to `IN[`", k, self.n
            )
        raise _Hard(
            "Expected only comma-separated field names inside `IN[..]` but instead found "
            f"`{_escape_debug(self.text[k:])}`.",
            k,
            self.n,
        )

    def in_(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        values, k = self.in_body(j)
        return In(name, values=values, **self.leaf_args(span)), k

    def not_in(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        j = self.word_exact(j, "NOT")
        values, k = self.in_body(j)
        return Not(In(name, values=values, **self.leaf_args(span))), k

    def condition(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        for op in COMPARISON_OPERATORS:
            if self.text.startswith(op, j):
                value, _, k = self.cut_value(j + len(op))
                return Compare(name, op=op, value=value, **self.leaf_args(span)), k
        raise _Soft("", j, j)

    def keywords(self, i: int, *words: str) -> int:
        """`tag(w1) multispace1 tag(w2) ...` as the Rust crate writes them."""
        for index, word in enumerate(words):
            if index:
                i = self.ws1(i)
            i = self.tag(i, word)
        return i

    def is_null(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        return IsNull(name, **self.leaf_args(span)), self.keywords(j, "IS", "NULL")

    def is_not_null(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        return Not(IsNull(name, **self.leaf_args(span))), self.keywords(j, "IS", "NOT", "NULL")

    def is_empty(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        return IsEmpty(name, **self.leaf_args(span)), self.keywords(j, "IS", "EMPTY")

    def is_not_empty(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        k = self.keywords(j, "IS", "NOT", "EMPTY")
        return Not(IsEmpty(name, **self.leaf_args(span))), k

    def exists(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        return Exists(name, **self.leaf_args(span)), self.keywords(j, "EXISTS")

    def not_exists(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        return Not(Exists(name, **self.leaf_args(span))), self.keywords(j, "NOT", "EXISTS")

    def to(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        low, _, j = self.value(j)
        j = self.ws1(self.tag(j, "TO"))
        high, _, k = self.cut_value(j)
        return Between(name, low=low, high=high, **self.leaf_args(span)), k

    def contains(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        value, _, k = self.cut_value(self.tag(j, "CONTAINS"))
        return Contains(name, value=value, **self.leaf_args(span)), k

    def not_contains(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        value, _, k = self.cut_value(self.keywords(j, "NOT", "CONTAINS"))
        return Not(Contains(name, value=value, **self.leaf_args(span))), k

    def starts_with(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        value, _, k = self.cut_value(self.tag(j, "STARTS WITH"))
        return StartsWith(name, value=value, **self.leaf_args(span)), k

    def not_starts_with(self, i: int) -> tuple[Node, int]:
        name, span, j = self.value(i)
        value, _, k = self.cut_value(self.keywords(j, "NOT", "STARTS WITH"))
        return Not(StartsWith(name, value=value, **self.leaf_args(span))), k

    def reserved_geo_primary(self, i: int) -> tuple[Node, int]:
        self.reserved_geo_checks(i)
        raise _Soft("", i, i)

    def reserved_keyword(self, i: int) -> tuple[Node, int]:
        # Only to turn "a reserved keyword where a field name belongs" into a hard error.
        try:
            return self.condition(i)
        except _Soft as soft:
            if soft.reserved:
                raise _Hard(soft.message, soft.start, soft.end) from None
            raise


class _ParseFailure(Exception):
    def __init__(self, message: str, start: int, end: int) -> None:
        self.message, self.start, self.end = message, start, end


_SIMPLE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0", "\\": "\\", "'": "'", '"': '"'}


def _unescape(raw: str) -> str:
    """The `unescaper` crate: backslash escapes, `\\xHH`, `\\u{H...}`. ValueError if malformed."""
    if "\\" not in raw:
        return raw
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        if i + 1 >= len(raw):
            raise ValueError(raw)
        esc = raw[i + 1]
        if esc in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[esc])
            i += 2
        elif esc == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", raw[i + 2 : i + 4]):
            out.append(chr(int(raw[i + 2 : i + 4], 16)))
            i += 4
        elif esc == "u" and (m := re.match(r"\{([0-9a-fA-F]{1,6})\}", raw[i + 2 :])):
            code = int(m.group(1), 16)
            if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise ValueError(raw)
            out.append(chr(code))
            i += 2 + m.end()
        else:
            raise ValueError(raw)
    return "".join(out)


def parse_filter(expression: str, *, error_code: str = "invalid_search_filter") -> Node | None:
    """Parse one filter string. Blank means no filter (None); bad syntax raises MeiliError.

    Recent short filters are remembered: the same few strings come back on every request
    (the proxy's `_miroir_shard IN [...]` restriction on each node search, a client's usual
    filters), and the tree is immutable, so it can be shared. Errors are not remembered."""
    if len(expression) <= _REMEMBERED_FILTER_CHARS:
        return _parse_remembered(expression, error_code)
    return _parse_filter(expression, error_code)


_REMEMBERED_FILTER_CHARS = 2000  # with 512 entries, at most about 1 MB of filter text


@functools.lru_cache(maxsize=512)
def _parse_remembered(expression: str, error_code: str) -> Node | None:
    return _parse_filter(expression, error_code)


def _parse_filter(expression: str, error_code: str) -> Node | None:
    if not expression.strip():
        return None
    try:
        return _Parser(expression).parse()
    except _ParseFailure as failure:
        raise filter_error(
            error_code, failure.message, expression, failure.start, failure.end
        ) from None


def parse_filter_json(value: Any, *, error_code: str = "invalid_search_filter") -> Node | None:
    """A filter as JSON: a string, or the array form (outer AND of strings or inner-OR arrays)."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse_filter(value, error_code=error_code)
    if not isinstance(value, list):
        raise _bad_filter_type(error_code, ("String", "Array"), value)
    ands: list[Node] = []
    for item in value:
        if isinstance(item, str):
            node = parse_filter(item, error_code=error_code)
            if node is not None:
                ands.append(node)
        elif isinstance(item, list):
            ors: list[Node] = []
            for inner in item:
                if not isinstance(inner, str):
                    raise _bad_filter_type(error_code, ("String",), inner)
                node = parse_filter(inner, error_code=error_code)
                if node is not None:
                    ors.append(node)
            if len(ors) == 1:
                ands.append(ors[0])
            elif ors:
                ands.append(Or(tuple(ors)))
        else:
            raise _bad_filter_type(error_code, ("String", "[String]"), item)
    if not ands:
        return None
    return ands[0] if len(ands) == 1 else And(tuple(ands))


def _bad_filter_type(error_code: str, expected: Sequence[str], found: Any) -> MeiliError:
    rendered = json.dumps(found, ensure_ascii=False, separators=(",", ":"))
    return MeiliError(
        error_code,
        f"Invalid syntax for the filter parameter: `expected {', '.join(expected)}, "
        f"found: {rendered}`.",
    )
