"""Meilisearch's filter grammar: parse, print, check and evaluate filter expressions.

Owns: the public face of the filter grammar (the AST lives in `filters_ast`, the parser in
`filters_parser`; both are re-exported here), the canonical printer (`to_filter_string`, which
re-parses to the same AST), the filterable-attribute check with Meilisearch's refusal, and the
per-document semantics of every operator (`matches`). The devnode's facet index evaluates
filters over sets; it takes its per-document facts from `field_facts` here so both sides agree
on what a document "has" for a field. The proxy reuses the parser to narrow primary-key queries.

Must never: import anything outside `miroir.core`, touch I/O, or depend on other documents
(a filter's truth for one document depends only on that document).
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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
    Leaf,
    Node,
    Not,
    Or,
    StartsWith,
    negate,
)
from miroir.core.filters_parser import (
    _FINITE_FLOAT,
    _INVALID_PRIMARY,
    COMPARISON_OPERATORS,
    KEYWORDS,
    MAX_FILTER_DEPTH,
    filter_error,
    parse_filter,
    parse_filter_json,
)

__all__ = [
    "COMPARISON_OPERATORS",
    "KEYWORDS",
    "MAX_FILTER_DEPTH",
    "And",
    "Between",
    "Compare",
    "Contains",
    "Exists",
    "FieldFacts",
    "FilterFeatures",
    "GeoBoundingBox",
    "GeoRadius",
    "In",
    "IsEmpty",
    "IsNull",
    "Leaf",
    "Node",
    "Not",
    "Or",
    "StartsWith",
    "ensure_filterable",
    "field_facts",
    "field_values",
    "filter_error",
    "filterable_patterns",
    "filterable_rules",
    "leaves",
    "matches",
    "matching_features",
    "negate",
    "normalize_facet",
    "parse_filter",
    "parse_filter_json",
    "parse_finite_float",
    "quote_value",
    "to_filter_string",
    "_INVALID_PRIMARY",
]

EARTH_RADIUS_METERS = 6371008.8

# ---------------------------------------------------------------------------------------------
# The printer: canonical text that parses back to an equal AST.


def quote_value(value: str) -> str:
    """Double-quoted, with `\\` and `"` escaped, so any string survives a re-parse."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_filter_string(node: Node) -> str:
    """Canonical text for `node`. Law: parse_filter(to_filter_string(n)) == n."""
    if isinstance(node, Compare):
        return f"{quote_value(node.field)} {node.op} {quote_value(node.value)}"
    if isinstance(node, Between):
        return f"{quote_value(node.field)} {quote_value(node.low)} TO {quote_value(node.high)}"
    if isinstance(node, Exists):
        return f"{quote_value(node.field)} EXISTS"
    if isinstance(node, IsNull):
        return f"{quote_value(node.field)} IS NULL"
    if isinstance(node, IsEmpty):
        return f"{quote_value(node.field)} IS EMPTY"
    if isinstance(node, In):
        return f"{quote_value(node.field)} IN [{', '.join(map(quote_value, node.values))}]"
    if isinstance(node, Contains):
        return f"{quote_value(node.field)} CONTAINS {quote_value(node.value)}"
    if isinstance(node, StartsWith):
        return f"{quote_value(node.field)} STARTS WITH {quote_value(node.value)}"
    if isinstance(node, GeoRadius):
        return f"_geoRadius({node.lat}, {node.lng}, {node.radius})"
    if isinstance(node, GeoBoundingBox):
        (a, b), (c, d) = node.top_right, node.bottom_left
        return f"_geoBoundingBox([{a}, {b}], [{c}, {d}])"
    if isinstance(node, Not):
        return f"NOT {_grouped(node.child)}"
    if isinstance(node, And):
        return " AND ".join(_grouped(child) for child in node.children)
    if isinstance(node, Or):
        return " OR ".join(_grouped(child) for child in node.children)
    raise TypeError(f"not a filter node: {node!r}")


def _grouped(node: Node) -> str:
    # Parenthesise every compound child: parentheses create no node, so structure is kept.
    text = to_filter_string(node)
    return f"({text})" if isinstance(node, (And, Or, Not)) else text


# ---------------------------------------------------------------------------------------------
# Checks against the index settings


def leaves(node: Node) -> Iterator[Node]:
    """Every leaf (conditions and geo rules), left to right."""
    if isinstance(node, Not):
        yield from leaves(node.child)
    elif isinstance(node, (And, Or)):
        for child in node.children:
            yield from leaves(child)
    else:
        yield node


def _pattern_matches(pattern: str, attribute: str) -> bool:
    if pattern == "*" or pattern == attribute or attribute.startswith(pattern + "."):
        return True
    if "*" not in pattern:
        return False
    if pattern.startswith("*") and pattern.endswith("*") and len(pattern) > 1:
        return pattern[1:-1] in attribute
    if pattern.endswith("*"):
        return attribute.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return attribute.endswith(pattern[1:])
    return False


@dataclass(frozen=True)
class FilterFeatures:
    """What one `filterableAttributes` rule allows for the attributes it matches."""

    filterable: bool = True
    comparison: bool = True
    facet_search: bool = True


def filterable_rules(
    filterable_attributes: Sequence[Any],
) -> list[tuple[list[str], FilterFeatures]]:
    """The settings' rules as (patterns, features): strings are legacy rules (all features on)."""
    rules: list[tuple[list[str], FilterFeatures]] = []
    for rule in filterable_attributes or ():
        if isinstance(rule, str):
            rules.append(([rule], FilterFeatures()))
        elif isinstance(rule, Mapping):
            features = rule.get("features") or {}
            filter_features = features.get("filter") or {}
            equality = filter_features.get("equality", True)
            comparison = filter_features.get("comparison", False)
            rules.append(
                (
                    list(rule.get("attributePatterns") or []),
                    FilterFeatures(
                        filterable=bool(equality or comparison),
                        comparison=bool(comparison),
                        facet_search=bool(features.get("facetSearch", False)),
                    ),
                )
            )
    return rules


def matching_features(
    attribute: str, filterable_attributes: Sequence[Any]
) -> FilterFeatures | None:
    """The features of the first rule whose pattern matches `attribute`, if any."""
    for patterns, features in filterable_rules(filterable_attributes):
        if any(_pattern_matches(p, attribute) for p in patterns):
            return features
    return None


def filterable_patterns(filterable_attributes: Sequence[Any]) -> list[str]:
    return sorted(
        {
            p
            for patterns, features in filterable_rules(filterable_attributes)
            if features.filterable
            for p in patterns
        }
    )


def ensure_filterable(
    node: Node | None,
    filterable_attributes: Sequence[Any],
    *,
    error_code: str = "invalid_search_filter",
) -> None:
    """Refuse, as Meilisearch does, a filter naming an attribute that is not filterable."""
    if node is None:
        return
    for leaf in leaves(node):
        if isinstance(leaf, (GeoRadius, GeoBoundingBox)):
            features = matching_features("_geo", filterable_attributes)
            if features is None or not features.filterable:
                _raise_not_filterable(error_code, "_geo", leaf, filterable_attributes)
            continue
        features = matching_features(leaf.field, filterable_attributes)
        if features is None or not features.filterable:
            _raise_not_filterable(error_code, leaf.field, leaf, filterable_attributes)
        if isinstance(leaf, (Contains, StartsWith)):
            keyword = "CONTAINS" if isinstance(leaf, Contains) else "STARTS WITH"
            raise MeiliError(
                "feature_not_enabled",
                f"Using `{keyword}` in a filter requires enabling the `contains filter` "
                "experimental feature. See https://github.com/orgs/meilisearch/discussions/763",
            )
        comparison = isinstance(leaf, Between) or (
            isinstance(leaf, Compare) and leaf.op in ("<", "<=", ">", ">=")
        )
        if comparison and not features.comparison:
            op = "TO" if isinstance(leaf, Between) else leaf.op
            raise filter_error(
                error_code,
                f"Filter operator `{op}` is not allowed for the attribute `{leaf.field}`.\n"
                "  - Note: allowed operators: OR, AND, NOT, =, !=, IN, IS EMPTY, IS NULL, "
                "EXISTS.\n"
                f"  - Note: field `{leaf.field}` matched a rule in `filterableAttributes` "
                "that does not allow comparison operators.",
                leaf.source,
                *leaf.span,
            )


def _raise_not_filterable(
    error_code: str, attribute: str, leaf: Node, filterable_attributes: Sequence[Any]
) -> None:
    patterns = filterable_patterns(filterable_attributes)
    diagnostic = f"Attribute `{attribute}` is not filterable."
    if not patterns:
        diagnostic += " This index does not have configured filterable attributes."
    else:
        diagnostic += (
            " Available filterable attribute patterns are: "
            + ", ".join(f"`{p}`" for p in patterns)
            + "."
        )
    span = leaf.span
    if isinstance(leaf, (GeoRadius, GeoBoundingBox)):
        span = (span[0], span[0])  # Meilisearch points at the first coordinate; close enough.
    raise filter_error(error_code, diagnostic, leaf.source, *span)


# ---------------------------------------------------------------------------------------------
# Per-document semantics


def normalize_facet(value: str) -> str:
    """Meilisearch's facet string normalization: trim, NFKD, lower-case."""
    return unicodedata.normalize("NFKD", value.strip()).lower()


def parse_finite_float(text: str) -> float | None:
    if not _FINITE_FLOAT.fullmatch(text):
        return None
    number = float(text)
    return number if math.isfinite(number) else None


@dataclass
class FieldFacts:
    """What a document holds under one attribute, as the facet databases see it."""

    exists: bool = False
    is_null: bool = False
    is_empty: bool = False
    numbers: list[float] = field(default_factory=list)
    strings: list[str] = field(default_factory=list)  # original spellings


def _collect(value: Any, path: str, out: list[Any]) -> None:
    if isinstance(value, list):
        for item in value:
            if isinstance(item, Mapping):
                _collect(item, path, out)
        return
    if not isinstance(value, Mapping):
        return
    if path in value:
        out.append(value[path])
    for key, child in value.items():
        if path.startswith(key + ".") and isinstance(child, (Mapping, list)):
            _collect(child, path[len(key) + 1 :], out)


def field_values(document: Mapping[str, Any], attribute: str) -> list[Any]:
    """Every raw value reached by the dotted path `attribute` (through objects and arrays)."""
    out: list[Any] = []
    _collect(document, attribute, out)
    return out


def field_facts(document: Mapping[str, Any], attribute: str) -> FieldFacts:
    facts = FieldFacts()
    for raw in field_values(document, attribute):
        facts.exists = True
        if raw is None:
            facts.is_null = True
        elif raw == "" or raw == [] or raw == {}:
            facts.is_empty = True
        _flatten_scalars(raw, facts)
    return facts


def _flatten_scalars(raw: Any, facts: FieldFacts) -> None:
    if isinstance(raw, bool):
        facts.strings.append("true" if raw else "false")
    elif isinstance(raw, (int, float)):
        if math.isfinite(raw):
            facts.numbers.append(float(raw))
    elif isinstance(raw, str):
        facts.strings.append(raw)
    elif isinstance(raw, list):
        for item in raw:
            if not isinstance(item, Mapping):
                _flatten_scalars(item, facts)


def _compare_matches(facts: FieldFacts, op: str, value: str) -> bool:
    number = parse_finite_float(value)
    if op in ("=", "!="):
        norm = normalize_facet(value)
        hit = any(normalize_facet(s) == norm for s in facts.strings) or (
            number is not None and number in facts.numbers
        )
        return hit if op == "=" else not hit
    # Ranges: numbers against the number, and normalized strings against the raw value
    # (Meilisearch compares stored facet strings with the value as typed).
    checks = {
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
    }[op]
    if number is not None and any(checks(n, number) for n in facts.numbers):
        return True
    return any(checks(normalize_facet(s), value) for s in facts.strings)


def haversine_meters(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lng1, lat2, lng2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lng2 - lng1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_METERS * math.asin(min(1.0, math.sqrt(h)))


def geo_point(document: Mapping[str, Any]) -> tuple[float, float] | None:
    geo = document.get("_geo")
    if not isinstance(geo, Mapping):
        return None
    try:
        return float(geo["lat"]), float(geo["lng"])
    except (KeyError, TypeError, ValueError):
        return None


# Over the complexity bar on purpose: one branch per filter node type, read as a table.
def matches(node: Node | None, document: Mapping[str, Any]) -> bool:  # noqa: C901
    """Whether `document` satisfies `node` (None matches everything). Pure and per-document."""
    if node is None:
        return True
    if isinstance(node, Not):
        return not matches(node.child, document)
    if isinstance(node, And):
        return all(matches(child, document) for child in node.children)
    if isinstance(node, Or):
        return any(matches(child, document) for child in node.children)
    if isinstance(node, GeoRadius):
        point = geo_point(document)
        center = (float(node.lat), float(node.lng))
        return point is not None and haversine_meters(center, point) <= float(node.radius)
    if isinstance(node, GeoBoundingBox):
        point = geo_point(document)
        if point is None:
            return False
        top, right = float(node.top_right[0]), float(node.top_right[1])
        bottom, left = float(node.bottom_left[0]), float(node.bottom_left[1])
        if not bottom <= point[0] <= top:
            return False
        if right < left:  # wraps around the antimeridian
            return point[1] >= left or point[1] <= right
        return left <= point[1] <= right
    facts = field_facts(document, node.field)
    if isinstance(node, Exists):
        return facts.exists
    if isinstance(node, IsNull):
        return facts.is_null
    if isinstance(node, IsEmpty):
        return facts.is_empty
    if isinstance(node, Compare):
        return _compare_matches(facts, node.op, node.value)
    if isinstance(node, In):
        return any(_compare_matches(facts, "=", v) for v in node.values)
    if isinstance(node, Between):
        low, high = parse_finite_float(node.low), parse_finite_float(node.high)
        if low is not None and high is not None and any(low <= n <= high for n in facts.numbers):
            return True
        return any(node.low <= normalize_facet(s) <= node.high for s in facts.strings)
    if isinstance(node, Contains):
        needle = normalize_facet(node.value)
        return any(needle in normalize_facet(s) for s in facts.strings)
    if isinstance(node, StartsWith):
        prefix = normalize_facet(node.value)
        return any(normalize_facet(s).startswith(prefix) for s in facts.strings)
    raise TypeError(f"not a filter node: {node!r}")
