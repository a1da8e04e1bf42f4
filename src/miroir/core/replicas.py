"""Which replica a read asks, in which order; which replica a returning node copies from.

Owns the two replica-choice rules the cluster layer applies, as pure functions of a `ShardMap`:

- `read_candidates(shard_map, shard, seq)`: the readable owners of one shard in the order read
  number `seq` asks them. Group `seq % RG` first (`placement.query_group`), then the next
  groups in round-robin order; inside a group the readable owners (degraded ones last, as
  `ShardMap.readable_owners` gives them) rotated by `seq + shard`. That rotation is
  `placement.covering_set`'s, so a scatter's first pick for a shard is its first candidate, and
  a shard's fallback (`cluster.search`) and a single-document read (`cluster.read_documents`)
  follow one rule: consecutive reads of a shard start on different replicas, and the shards of
  one read start on different replicas of their groups.
- `repair_sources(shard_map, node_id, intact)`: for a node coming back (`joining`), which other
  owner each of its shards is copied from, which shards must wait for a source, and which are
  lost (see `cluster.repair` for the worker that carries it out).

Must never: do I/O, read a clock, or look at anything but the shard map and what it is handed.
The laws are in tests/properties/test_replicas.py.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

from miroir.core.node_state import NodeState
from miroir.core.placement import query_group
from miroir.core.topology import ShardMap


def read_candidates(shard_map: ShardMap, shard: int, seq: int) -> list[str]:
    """Readable owners of `shard` in the order read number `seq` asks them (module docstring):
    every readable owner in every group exactly once, the covering set's choice first."""
    groups = shard_map.replica_groups
    first = query_group(seq, groups)
    candidates: list[str] = []
    for step in range(groups):
        owners = shard_map.readable_owners((first + step) % groups, shard)
        if owners:
            turn = (seq + shard) % len(owners)
            candidates.extend(owners[turn:] + owners[:turn])
    return candidates


@attrs.frozen
class RepairSources:
    """What a returning node's shards are copied from: source node -> the node's shards it will
    copy (each shard once); the shards that wait for a source; the shards whose copies are all
    gone. A shard in none of them needs no copy (the node itself was judged intact)."""

    by_source: dict[str, list[int]]
    waiting: list[int]
    lost: list[int]


def repair_sources(
    shard_map: ShardMap, node_id: str, intact: Mapping[str, bool]
) -> RepairSources:
    """The source of each shard of `node_id`, given which joining nodes were judged `intact`
    (True: kept their data; False: came back empty; absent: not judged yet).

    A shard's source is a readable owner (any group, group order); failing that, a draining
    owner (it still holds its data) or a joining owner judged intact. When the node itself is
    judged intact, its own copy is the best there is and the shard needs no copy. Otherwise the
    shard is lost when every other owner is joining and was judged to have come back empty too,
    and waits in every other case (an owner is `failed` and may come back with its data, or is
    not judged yet)."""
    state_of = shard_map.state_of
    fallbacks = {n for n, kept in intact.items() if kept and state_of(n) is NodeState.JOINING}
    by_source: dict[str, list[int]] = {}
    waiting: list[int] = []
    lost: list[int] = []
    for shard in shard_map.shards_of(node_id):
        owners = [owner for _, owner in shard_map.all_owners(shard) if owner != node_id]
        readable = [
            owner
            for group in range(shard_map.replica_groups)
            for owner in shard_map.readable_owners(group, shard)
            if owner != node_id
        ] or [
            owner for owner in owners
            if owner in fallbacks or state_of(owner) is NodeState.DRAINING
        ]
        if readable:
            by_source.setdefault(readable[0], []).append(shard)
        elif node_id in fallbacks:
            continue
        elif all(
            state_of(owner) is NodeState.JOINING and intact.get(owner) is False
            for owner in owners
        ):
            lost.append(shard)
        else:
            waiting.append(shard)
    return RepairSources(by_source, waiting, lost)
