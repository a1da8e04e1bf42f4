"""Which version of a replicated value wins when replicas disagree: the anti-entropy vote.

Pure rules for `miroir.cluster.reconcile` (documents) and `miroir.cluster.settings_sync`
(settings without a committed version): no I/O, no clock.

Theory of operation. When the owners of a shard (in every group) hold different versions of a
document, the reconciler repairs every owner to one version, chosen by `repair_version`:

1. *Majority.* The version most owners hold (an absent document is a version like any other)
   wins: one owner edited behind Miroir's back, or one that missed a write, is outvoted.
2. *Tie: the group that met write quorum last.* Two versions held by as many owners each (say
   group 0's two owners against group 1's two, after a write that met quorum in group 1 only)
   are decided by `LastQuorum`: per (node-side index, shard), the replica group that most
   recently met write quorum *while another group of that shard missed it* (the write path
   records it; `miroir.cluster.runtime.Cluster.quorum_write`). That group took the newest
   write the others missed, so among the tied versions the one most of *its* owners hold wins.
   A write that met quorum in every group of the shard says nothing about which group is
   newer and leaves the record as it was (otherwise the order in which two healthy groups
   happened to answer would overwrite what a degraded write taught).
3. *No record, or the record does not separate the tied versions* (both held equally inside
   the last-quorum group, e.g. one group of two owners disagreeing): the version held by the
   owner that comes first in the caller's order (placement order, lowest group first). Any
   fixed choice makes the replicas agree; the caller counts the tie.

The record is per shard, not per document: a tie on a document written by an older degraded
write can be decided by a newer degraded write of another document of the same shard that
missed in the other group. It only ever breaks ties, and an exact tie needs owners that missed
writes in both groups; the reconciler counts every tie and how it was broken.

Must never: let the tie-break overrule a strict majority, or depend on anything but its
arguments (two processes given the same inputs choose the same version).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from enum import Enum

import attrs

from miroir.core.quorum import Pair


class Decided(Enum):
    """How `repair_version` chose."""

    UNANIMOUS = "unanimous"  # every owner holds the same version
    MAJORITY = "majority"
    LAST_QUORUM = "last_quorum"  # a tie, broken by the group that met quorum last
    ORDER = "order"  # a tie the record did not break: the caller's (placement) order


def majority_version(versions: Sequence[str]) -> tuple[str, bool]:
    """The version most holders hold (`versions` in preference order) and whether it was a
    tie, broken by that order."""
    counts = Counter(versions)
    best = max(counts.values())
    leaders = [v for v in versions if counts[v] == best]
    return leaders[0], len(set(leaders)) > 1


def repair_version(held: Sequence[tuple[str, int, str]],
                   last_quorum_group: int | None) -> tuple[str, Decided]:
    """The version every owner should hold. `held` is (owner, its group, the version it holds)
    for every owner asked, in the fallback order (placement order, lowest group first);
    `last_quorum_group` is `LastQuorum.group` for the shard (None: no record)."""
    if not held:
        raise ValueError("repair_version needs at least one owner")
    versions = [version for _, _, version in held]
    counts = Counter(versions)
    if len(counts) == 1:
        return versions[0], Decided.UNANIMOUS
    best = max(counts.values())
    leaders = [v for v in dict.fromkeys(versions) if counts[v] == best]
    if len(leaders) == 1:
        return leaders[0], Decided.MAJORITY
    if last_quorum_group is not None:
        inside = Counter(v for _, group, v in held if group == last_quorum_group and v in leaders)
        if inside:
            top = max(inside.values())
            favoured = [v for v in leaders if inside[v] == top]
            if len(favoured) == 1:
                return favoured[0], Decided.LAST_QUORUM
    return leaders[0], Decided.ORDER


def decisive_group(met_in_order: Sequence[Pair], missed: Iterable[Pair], shard: int) -> int | None:
    """The group a finished write teaches `LastQuorum` about for `shard`: the last of the
    shard's pairs to meet quorum (`met_in_order`, in the order they met), if another group of
    the shard missed it; else None (every group met, or none did)."""
    if not any(s == shard for s, _ in missed):
        return None
    groups = [group for s, group in met_in_order if s == shard]
    return groups[-1] if groups else None


@attrs.define
class LastQuorum:
    """Per (node-side index, shard): the group that most recently met write quorum while another
    group of the shard missed it. One small integer per (index, shard) a degraded write ever
    touched, in this process's memory (see docs/consistency.md for why not the store)."""

    _groups: dict[tuple[str, int], int] = attrs.field(factory=dict)

    def record(self, index_uid: str, met_in_order: Sequence[Pair],
               missed: Iterable[Pair]) -> None:
        """A write of `index_uid` finished: its pairs that met quorum in the order they met,
        and those that missed it."""
        missed = frozenset(missed)
        for shard in sorted({s for s, _ in met_in_order} & {s for s, _ in missed}):
            group = decisive_group(met_in_order, missed, shard)
            if group is not None:
                self._groups[(index_uid, shard)] = group

    def group(self, index_uid: str, shard: int) -> int | None:
        return self._groups.get((index_uid, shard))

    def forget(self, index_uid: str) -> None:
        """The index was deleted (or replaced): its record no longer says anything."""
        for key in [k for k in self._groups if k[0] == index_uid]:
            del self._groups[key]

    def __len__(self) -> int:
        return len(self._groups)
