"""A multi-search over indexes of different shard counts, as one scatter per shard count.

Theory of operation. A scatter asks a covering set of *shards*, and a shard number means
something only for one shard count S (`_miroir_shard = hash(id) mod S`): a node asked for
shards [0, 3] of an S=8 index and of an S=32 index holds different shares of each. So the
queries of a multi-search are grouped by their index's S (`group_positions`), each group is
sent as a multi-search of its own (`federated_part` for a federated body: the group's queries,
and the `facetsByIndex` entries of its indexes) to its own covering set, and the answers are
put back in terms of the client's body: each hit's `_federation.queriesPosition` and each
error's `.queries[i]` name the query's position in the client's body (`renumber_hits`,
`renumber_message`). Federated merging needs nothing else: every group's answers partition
its queries' data, and the merge orders hits from any number of answers. All queries of one
index fall in one group, so a node's de-duplication of a document found by several queries of
its index is unchanged.

With one shard count (the common case) there is one group holding every position, and the
callers send the client's body as before.

Must never: do I/O.
"""

from __future__ import annotations

import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

_POSITION = re.compile(r"Inside `\.queries\[(\d+)\]")


def group_positions(keys: Sequence[Hashable]) -> list[list[int]]:
    """The positions of `keys` grouped by equal key, groups in order of first appearance."""
    groups: dict[Hashable, list[int]] = {}
    for position, key in enumerate(keys):
        groups.setdefault(key, []).append(position)
    return list(groups.values())


def federated_part(
    node_body: Mapping[str, Any], positions: Sequence[int], *, first: bool
) -> dict[str, Any]:
    """The federated body for the queries at `positions` (a group): those queries, and the
    `facetsByIndex` entries of their indexes. The `first` group also keeps the entries of
    indexes no query uses, so a node still refuses them as Meilisearch does."""
    queries = node_body.get("queries") or []
    part = [queries[p] for p in positions]
    federation = dict(node_body.get("federation") or {})
    by_index = federation.get("facetsByIndex")
    if isinstance(by_index, Mapping):
        mine = {q.get("indexUid") for q in part}
        anyone = {q.get("indexUid") for q in queries}
        federation["facetsByIndex"] = {
            uid: names for uid, names in by_index.items()
            if uid in mine or (first and uid not in anyone)}
    return {**node_body, "federation": federation, "queries": part}


def renumber_hits(body: Mapping[str, Any], positions: Sequence[int]) -> dict[str, Any]:
    """A group's federated answer with each hit's `queriesPosition` (its position in the
    group's body) put as the position in the client's body."""
    hits = []
    for hit in body.get("hits") or ():
        federation = hit.get("_federation")
        if isinstance(federation, Mapping) and isinstance(federation.get("queriesPosition"), int):
            local = federation["queriesPosition"]
            if 0 <= local < len(positions):
                hit = {**hit, "_federation": {**federation, "queriesPosition": positions[local]}}
        hits.append(hit)
    return {**body, "hits": hits}


def renumber_message(message: str, positions: Sequence[int]) -> str:
    """A node's error about a group's body (`Inside .queries[i]`) about the client's body."""
    def client_position(match: re.Match[str]) -> str:
        local = int(match.group(1))
        found = positions[local] if local < len(positions) else local
        return f"Inside `.queries[{found}]"

    return _POSITION.sub(client_position, message, count=1)


def message_position(message: str) -> int | None:
    """The query position an error message names, if any (the first failing query wins)."""
    match = _POSITION.search(message)
    return None if match is None else int(match.group(1))
