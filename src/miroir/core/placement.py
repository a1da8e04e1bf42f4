"""Rendezvous placement of shards on nodes, byte-compatible with the Rust reference.

Never change the byte layout of `score` or `shard_for_key`: every document already written is
found again only because these two hashes are stable across versions and implementations.
Function names follow the reference (`assign_shard_in_group`, `write_targets`, `covering_set`)
so spec, code and tests line up.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

import xxhash

# Rust's `Hash for str` writes the bytes and then a 0xFF terminator; the reference hashes that.
_STR_TERMINATOR = b"\xff"
_LE_U32 = struct.Struct("<I")


def score(shard_id: int, node_id: str) -> int:
    """Rendezvous weight of `node_id` for `shard_id`.

    Invariant: xxh64(le_u32(shard_id) ++ utf8(node_id) ++ 0xFF, seed=0). Changing seed or byte
    order moves every shard in every deployed cluster.
    """
    return xxhash.xxh64_intdigest(_LE_U32.pack(shard_id) + node_id.encode() + _STR_TERMINATOR)


def shard_for_key(key: str, shards: int) -> int:
    """Shard of a document whose canonical id string is `key`.

    Invariant: xxh64(utf8(key) ++ 0xFF, seed=0) % shards.
    """
    return xxhash.xxh64_intdigest(key.encode() + _STR_TERMINATOR) % shards


def assign_shard_in_group(shard_id: int, nodes: Iterable[str], rf: int) -> list[str]:
    """The `rf` owners of a shard among `nodes`: highest score first, ties by node id ascending.

    The result does not depend on the order `nodes` is given in.
    """
    ranked = sorted(nodes, key=lambda node: (-score(shard_id, node), node))
    return ranked[:rf]


def write_targets(shard_id: int, groups: Sequence[Sequence[str]], rf: int) -> list[str]:
    """Every owner of a shard: the `rf` owners inside each replica group, group by group."""
    targets: list[str] = []
    for group_nodes in groups:
        targets.extend(assign_shard_in_group(shard_id, group_nodes, rf))
    return targets


def query_group(query_seq: int, replica_groups: int) -> int:
    """The replica group that serves query number `query_seq` (round robin)."""
    if replica_groups < 1:
        raise ValueError("replica_groups must be at least 1")
    return query_seq % replica_groups


def covering_set(
    owners_by_shard: Mapping[int, Sequence[str]], query_seq: int
) -> dict[str, list[int]]:
    """One owner per shard, rotated by `query_seq`, grouped per node.

    `owners_by_shard` holds the eligible owners of each shard inside one group (already filtered
    for health). Shards with no eligible owner are left out; the caller decides whether that
    is a partial answer or an error. Rotation spreads load across replicas of one shard.
    """
    plan: dict[str, list[int]] = {}
    for shard_id, owners in owners_by_shard.items():
        if not owners:
            continue
        node = owners[(query_seq + shard_id) % len(owners)]
        plan.setdefault(node, []).append(shard_id)
    return plan
