"""The filter AST: the nodes `miroir.core.filters` parses Meilisearch filters into.

Owns: one frozen dataclass per operator, and `negate` (the parser's double-negation rule).
Spans and sources ride along for error messages only and never take part in equality, so two
parses of the same filter are equal wherever they came from.

Must never: parse, print or evaluate (filters_parser and filters do).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class _Leaf:
    field: str
    span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)
    source: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class Compare(_Leaf):
    op: str = "="
    value: str = ""


@dataclass(frozen=True)
class Between(_Leaf):
    low: str = ""
    high: str = ""


@dataclass(frozen=True)
class Exists(_Leaf):
    pass


@dataclass(frozen=True)
class IsNull(_Leaf):
    pass


@dataclass(frozen=True)
class IsEmpty(_Leaf):
    pass


@dataclass(frozen=True)
class In(_Leaf):
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Contains(_Leaf):
    value: str = ""


@dataclass(frozen=True)
class StartsWith(_Leaf):
    value: str = ""


@dataclass(frozen=True)
class GeoRadius:
    lat: str
    lng: str
    radius: str
    span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)
    source: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class GeoBoundingBox:
    top_right: tuple[str, str]
    bottom_left: tuple[str, str]
    span: tuple[int, int] = field(default=(0, 0), compare=False, repr=False)
    source: str = field(default="", compare=False, repr=False)


@dataclass(frozen=True)
class Not:
    child: Node


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]


Leaf = Compare | Between | Exists | IsNull | IsEmpty | In | Contains | StartsWith
Node = Leaf | GeoRadius | GeoBoundingBox | Not | And | Or


def negate(node: Node) -> Node:
    """`NOT node` the way the parser builds it: a double negation cancels."""
    return node.child if isinstance(node, Not) else Not(node)
