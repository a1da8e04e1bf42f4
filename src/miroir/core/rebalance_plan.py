"""The rebalance plan: which shard replicas move when the membership changes between two epochs.

Theory of operation. Placement (`miroir.core.placement`) is a pure function of a group's members,
so a membership change is fully described by the two epochs' `Placement`s. The plan is their
diff, one `ShardMove` per (group, shard) whose owner set changed: the owners it `gains` (each one
needs a copy of the shard), the owners it `loses` (each one drops its copy after cutover) and the
owners it `keeps` (untouched). Nothing else is in the plan: a (group, shard) whose owners did not
change moves nothing, and a move never names a node of another group.

Where a gained replica copies from is `copy_sources`: the shard's owners in the same group in the
old epoch (kept ones first, since they stay readable throughout; then the leaving ones); only a
group that had no owner of the shard before (a replica group just added) copies from the owners
of the other groups. Data crosses groups only then; ownership never does.

Laws (tests/properties/test_rebalance_plan.py): adding a node moves only shards the new node
owns, each gaining exactly that node; removing a node moves only shards it owned, each losing
exactly that node; nothing moves in a group whose members did not change; the number of
replicas copied is the minimum any plan could achieve, |new owners - old owners| summed over
(group, shard); applying the plan's gains and losses to the old owners gives the new owners.

Must never: do I/O or read clocks; it is a value computed from two values. The migration engine
(`miroir.cluster.rebalance`) and the resharding work build on `plan_rebalance` and `ShardMove`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import attrs

from miroir.core.topology import Placement, Topology


class PlanError(ValueError):
    """Two placements that no rebalance can go between (a different shard count)."""


@attrs.frozen
class ShardMove:
    """One (group, shard) whose owners change: who gains a copy, who loses it, who keeps it."""

    group: int
    shard: int
    gains: tuple[str, ...]
    loses: tuple[str, ...]
    keeps: tuple[str, ...]

    @property
    def old_owners(self) -> tuple[str, ...]:
        return tuple(sorted((*self.keeps, *self.loses)))

    @property
    def new_owners(self) -> tuple[str, ...]:
        return tuple(sorted((*self.keeps, *self.gains)))

    @property
    def key(self) -> str:
        """A stable name for the move: `g<group>/s<shard>` (store keys, progress reports)."""
        return f"g{self.group}/s{self.shard}"


@attrs.frozen
class RebalancePlan:
    """Every move between two placements, in (group, shard) order."""

    shards: int
    moves: tuple[ShardMove, ...]

    def __iter__(self) -> Iterator[ShardMove]:
        return iter(self.moves)

    def __len__(self) -> int:
        return len(self.moves)

    @property
    def replicas_copied(self) -> int:
        """Shard replicas that get a new copy: the plan's cost in copies."""
        return sum(len(move.gains) for move in self.moves)

    @property
    def replicas_dropped(self) -> int:
        return sum(len(move.loses) for move in self.moves)


def plan_rebalance(before: Placement, after: Placement) -> RebalancePlan:
    """The diff of two epochs' placements: one move per (group, shard) whose owners changed.

    Groups may be added (`after` has more) or emptied; the shard count must not change
    (resharding is a different operation and raises PlanError here)."""
    if before.shards != after.shards:
        raise PlanError(
            f"a rebalance keeps the shard count; {before.shards} -> {after.shards} is a reshard"
        )
    moves = []
    for group in range(max(len(before.owners), len(after.owners))):
        for shard in range(after.shards):
            old = set(_owners(before, group, shard))
            new = set(_owners(after, group, shard))
            if old != new:
                moves.append(
                    ShardMove(
                        group=group,
                        shard=shard,
                        gains=tuple(sorted(new - old)),
                        loses=tuple(sorted(old - new)),
                        keeps=tuple(sorted(old & new)),
                    )
                )
    return RebalancePlan(shards=after.shards, moves=tuple(moves))


def plan_between(before: Topology, after: Topology) -> RebalancePlan:
    """`plan_rebalance` of two topologies' placements."""
    return plan_rebalance(Placement.compute(before), Placement.compute(after))


def minimum_copies(before: Placement, after: Placement) -> int:
    """The fewest replica copies any plan from `before` to `after` needs: every owner of a
    (group, shard) in `after` that did not own it in `before` must receive it once."""
    groups = max(len(before.owners), len(after.owners))
    return sum(
        len(set(_owners(after, g, s)) - set(_owners(before, g, s)))
        for g in range(groups)
        for s in range(after.shards)
    )


def copy_sources(move: ShardMove, before: Placement) -> tuple[str, ...]:
    """Where a gained replica of `move` copies from, best first: the old owners in its group
    that stay (readable throughout), then the leaving ones; for a group that had no owner of
    the shard (a new replica group), the owners of the shard in the other groups."""
    if move.keeps or move.loses:
        return (*move.keeps, *move.loses)
    return tuple(
        node
        for group in range(len(before.owners))
        if group != move.group
        for node in _owners(before, group, move.shard)
    )


@attrs.frozen
class CountPlan:
    """The moves of the indexes of one shard count (an index the layouts give its own S moves
    by the placement of that S over the same memberships): their source placement and plan."""

    shards: int
    default: bool  # the topology's S: its moves keep their historical names
    source: Placement
    plan: RebalancePlan
    indexes: tuple[Any, ...]

    def name(self, move: ShardMove) -> str:
        """`g<group>/s<shard>`, with `@<S>` for an index of its own shard count."""
        return move.key if self.default else f"{move.key}@{self.shards}"

    def key(self, move: ShardMove, node: str) -> str:
        """The move's name in a rebalance record's `done` list."""
        return f"{self.name(move)}:{node}"


def count_plans(
    source: Sequence[Sequence[str]], target: Sequence[Sequence[str]], replication_factor: int,
    default_shards: int, indexes_by_count: Mapping[int, Sequence[Any]],
) -> list[CountPlan]:
    """One `CountPlan` per shard count of `indexes_by_count` (and the topology's,
    `default_shards`, always), in count order, between the members per group `source` and
    `target` (of equal length: the caller pads them to the topology's groups)."""
    found = []
    for shards in sorted({default_shards, *indexes_by_count}):
        before = Placement.from_members(shards, replication_factor, source)
        after = Placement.from_members(shards, replication_factor, target)
        found.append(CountPlan(shards, shards == default_shards, before,
                               plan_rebalance(before, after),
                               tuple(indexes_by_count.get(shards, ()))))
    return found


def _owners(placement: Placement, group: int, shard: int) -> tuple[str, ...]:
    if group >= len(placement.owners):
        return ()
    return placement.owners[group][shard]
