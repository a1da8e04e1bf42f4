"""Quorum accounting for one logical write, fed one node outcome at a time.

Owns the rule that decides whether a write is durable: a (shard, group) pair is *met* when at
least `floor(RF/2) + 1` of its targets acknowledged, and the write as a whole succeeds when every
shard is met in at least one group. It must never do I/O, read a clock or know what an
acknowledgement looks like on the wire: the cluster layer decides "this node acked" (a 2xx, 202
for Meilisearch writes) and feeds that in.

Theory of operation
-------------------
A write has targets per (shard, group): the owners of that shard inside that group whose answer
counts toward quorum (the caller leaves out owners that receive the write but must not count,
such as a node still joining). One node usually carries several shards of one batch, so one node
outcome can move several pairs; `WriteTally.record` fans it out through an index built once.

Each pair is in one of three states, decided from (acks, still pending, needed):

    state    when                              terminal?
    MET      acks >= needed                    yes: acks never decrease
    MISSED   acks + pending < needed           yes: not enough answers left to get there
    OPEN     otherwise                         no

`needed` comes from the configured RF, not from how many targets a pair has, so a group that has
fewer than RF nodes for a shard misses quorum for it, visibly, rather than lowering the bar.
Because MET and MISSED are terminal, a verdict read mid-write never contradicts the final one:
that is the law tests/properties/test_quorum.py checks against a brute-force oracle. In the
final verdict (`finish()`), nodes that never answered count as failed, so nothing stays OPEN.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

import attrs

Pair = tuple[int, int]  # (shard, group)


class PairState(enum.Enum):
    OPEN = "open"
    MET = "met"
    MISSED = "missed"


def quorum_size(replication_factor: int) -> int:
    """Acknowledgements one (shard, group) needs: a strict majority of RF."""
    if replication_factor < 1:
        raise ValueError("replication factor must be at least 1")
    return replication_factor // 2 + 1


def pair_state(acks: int, pending: int, needed: int) -> PairState:
    """The table in the module docstring, as code."""
    if acks >= needed:
        return PairState.MET
    if acks + pending < needed:
        return PairState.MISSED
    return PairState.OPEN


@attrs.frozen
class QuorumVerdict:
    """Where a write stands. Mid-write, `open` pairs are undecided; after `finish()` none are.

    - `met` / `missed` / `open`: the pairs in each state.
    - `shards_without_quorum`: shards no group can still bring to quorum (every group MISSED).
      Non-empty in a final verdict means the write failed (`miroir_no_quorum`).
    - `degraded_groups`: groups with at least one MISSED pair (`X-Miroir-Degraded`).
    """

    met: frozenset[Pair]
    missed: frozenset[Pair]
    open: frozenset[Pair]
    shards_without_quorum: frozenset[int]
    degraded_groups: frozenset[int]

    @property
    def decided(self) -> bool:
        return not self.open

    @property
    def succeeded(self) -> bool:
        """Every shard has a group at quorum (possibly degraded elsewhere)."""
        shards = {shard for shard, _ in self.met | self.missed | self.open}
        return shards == {shard for shard, _ in self.met}

    @property
    def degraded(self) -> bool:
        return bool(self.missed)


class WriteTally:
    """Counts acknowledgements for one write as node outcomes arrive (see module docstring)."""

    def __init__(self, targets: Mapping[Pair, Iterable[str]], replication_factor: int) -> None:
        self.needed = quorum_size(replication_factor)
        self._targets: dict[Pair, frozenset[str]] = {
            pair: frozenset(nodes) for pair, nodes in targets.items()
        }
        self._pairs_of_node: dict[str, list[Pair]] = {}
        for pair, nodes in self._targets.items():
            for node in nodes:
                self._pairs_of_node.setdefault(node, []).append(pair)
        self._acks: dict[Pair, int] = dict.fromkeys(self._targets, 0)
        self._pending: dict[Pair, int] = {pair: len(n) for pair, n in self._targets.items()}
        self._outcomes: dict[str, bool] = {}
        self._finished = False

    @property
    def nodes(self) -> frozenset[str]:
        return frozenset(self._pairs_of_node)

    @property
    def pending_nodes(self) -> frozenset[str]:
        return frozenset(self._pairs_of_node.keys() - self._outcomes.keys())

    def record(self, node_id: str, acked: bool) -> list[Pair]:
        """Feed one node's outcome. Each node has exactly one outcome per write. Returns the
        pairs this outcome made met (the write path records which group met quorum last)."""
        if self._finished:
            raise ValueError(f"record({node_id!r}) after finish(): the verdict is final")
        pairs = self._pairs_of_node.get(node_id)
        if pairs is None:
            raise ValueError(f"record({node_id!r}): not a target of this write")
        if node_id in self._outcomes:
            raise ValueError(
                f"record({node_id!r}, {acked}): already recorded as {self._outcomes[node_id]}"
            )
        self._outcomes[node_id] = acked
        newly_met: list[Pair] = []
        for pair in pairs:
            self._pending[pair] -= 1
            if acked:
                self._acks[pair] += 1
                if self._acks[pair] == self.needed:
                    newly_met.append(pair)
        return newly_met

    def state(self, pair: Pair) -> PairState:
        if self._finished:
            return pair_state(self._acks[pair], 0, self.needed)
        return pair_state(self._acks[pair], self._pending[pair], self.needed)

    def finish(self) -> QuorumVerdict:
        """Close the tally: nodes with no outcome count as failed. Returns the final verdict."""
        self._finished = True
        return self.verdict()

    def verdict(self) -> QuorumVerdict:
        by_state: dict[PairState, set[Pair]] = {state: set() for state in PairState}
        for pair in self._targets:
            by_state[self.state(pair)].add(pair)
        groups_of_shard: dict[int, list[Pair]] = {}
        for pair in self._targets:
            groups_of_shard.setdefault(pair[0], []).append(pair)
        missed = by_state[PairState.MISSED]
        return QuorumVerdict(
            met=frozenset(by_state[PairState.MET]),
            missed=frozenset(missed),
            open=frozenset(by_state[PairState.OPEN]),
            shards_without_quorum=frozenset(
                shard
                for shard, pairs in groups_of_shard.items()
                if all(pair in missed for pair in pairs)
            ),
            degraded_groups=frozenset(group for _, group in missed),
        )


def with_required_acks(
    verdict: QuorumVerdict, required: Mapping[Pair, Iterable[str]], acked: Iterable[str]
) -> QuorumVerdict:
    """A final verdict under one more rule: a pair in `required` is met only if, besides its
    quorum, every node required for it acknowledged (a rebalance's cutting phase requires the
    shard's new owners: `miroir.core.migration_map`). A pair that was met and lacks a required
    acknowledgement becomes missed; nothing else changes, so the result is never more
    successful than `verdict`."""
    acknowledged = frozenset(acked)
    demoted = frozenset(
        pair for pair in verdict.met
        if not frozenset(required.get(pair, ())) <= acknowledged
    )
    if not demoted:
        return verdict
    met = verdict.met - demoted
    missed = verdict.missed | demoted
    pairs_of_shard: dict[int, list[Pair]] = {}
    for pair in met | missed | verdict.open:
        pairs_of_shard.setdefault(pair[0], []).append(pair)
    return QuorumVerdict(
        met=met,
        missed=missed,
        open=verdict.open,
        shards_without_quorum=frozenset(
            shard for shard, pairs in pairs_of_shard.items()
            if all(pair in missed for pair in pairs)
        ),
        degraded_groups=frozenset(group for _, group in missed),
    )
