"""Membership changes through the admin API: validated against the stored topology, planned,
and carried out by the migration engine when it is switched on.

Theory of operation. A change is always judged against the topology *in the store* (read fresh,
not this process's copy, which may be one health interval old), through the pure functions of
`miroir.core.membership`, and its plan is `miroir.core.rebalance_plan`'s. With `dry_run` the
caller gets the plan. Without it: forgetting a drained node is published at once (nothing
moves); with the engine on (`rebalance.enabled`) every other change, a forced removal included,
is handed to `cluster.rebalance.start_rebalance`; otherwise `MembershipUnavailable` says why
nothing changed: publishing a new membership without moving the data would route reads to nodes
that do not hold it.

Must never: publish a topology whose placement moves shards other than through the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from miroir.cluster.rebalance import REBALANCE_RECORD, progress, shard_counts, start_rebalance
from miroir.cluster.reshard import RESHARDS_RECORD, active_of
from miroir.cluster.runtime import Cluster
from miroir.cluster.topology_sync import publish, read_topology
from miroir.core.errors import MeiliError
from miroir.core.membership import MembershipChange
from miroir.core.rebalance_plan import RebalancePlan
from miroir.core.topology import Topology


class MembershipUnavailable(MeiliError):
    def __init__(self, change: MembershipChange) -> None:
        super().__init__(
            "miroir_rebalance_unavailable",
            f"The change ({change.kind}) is valid, but the migration engine that carries it out "
            "online is off (`rebalance.enabled: false`), so nothing was changed. Send it with "
            "`?dryRun=true` to see the plan; see docs/operations.md, \"Changing the fleet\".",
        )


async def change_membership(
    cluster: Cluster, change_of: Callable[[Topology], MembershipChange], *, dry_run: bool,
    engine_enabled: bool = False,
) -> dict[str, Any]:
    """Judge a change against the stored topology; its plan when `dry_run`; else carry it out
    (see the module docstring) or refuse."""
    found = await read_topology(cluster.store)
    epoch, durable = (found.epoch, found.topology) if found else (cluster.epoch, cluster.topology)
    change = change_of(durable)
    if dry_run:
        # Indexes of their own shard count move by their own plans (`rebalance.shard_counts`).
        others = sorted(await shard_counts(cluster) - {change.topology.shards})
        return {"dryRun": True, "kind": change.kind, "epoch": epoch,
                "plan": render_plan(change.plan(), change),
                "otherShardCounts": [{"shards": shards,
                                      **render_plan(change.plan(shards), change, shards)}
                                     for shards in others]}
    if change.kind == "forget_node":
        # A rebalance may be running: its migration stays in force (the forgotten node is in
        # neither of its memberships).
        migration = found.migration if found is not None else None
        published = await publish(cluster, epoch, change.topology, migration)
        if published is None:
            raise MeiliError("miroir_rebalance_in_progress",
                             "The topology changed while this change was judged; send it again.")
        return {"kind": change.kind, "epoch": published.epoch, "rebalanceId": None}
    if not engine_enabled:
        raise MembershipUnavailable(change)
    reshards = await cluster.store.get_record(RESHARDS_RECORD)
    running = active_of(None if reshards is None else reshards.value)
    if running is not None:
        # A rebalance would move the shadow's shards while the reshard copies into them.
        raise MeiliError("miroir_reshard_in_progress",
                         f"Reshard `{running['id']}` of index `{running['index']}` is in "
                         "progress; change the fleet once it is done.")
    return await start_rebalance(cluster, change, cluster.now_ms())


def render_plan(plan: RebalancePlan, change: MembershipChange,
                shards: int | None = None) -> dict[str, Any]:
    # every shard replica of the target: S x RF per group (S: the plan's count)
    shards = change.topology.shards if shards is None else shards
    replicas = shards * change.topology.replication_factor * len(change.target)
    return {
        "shardReplicasCopied": plan.replicas_copied,
        "shardReplicasDropped": plan.replicas_dropped,
        "fractionCopied": plan.replicas_copied / max(1, replicas),
        "moves": [
            {"group": m.group, "shard": m.shard, "gains": list(m.gains), "loses": list(m.loses),
             "keeps": list(m.keeps)}
            for m in plan
        ],
    }


async def rebalance_status(cluster: Cluster) -> dict[str, Any]:
    """`GET /_miroir/rebalance`: the last rebalance, or idle when there was none."""
    record = await cluster.store.get_record(REBALANCE_RECORD)
    if record is None:
        return {"state": "idle", "epoch": cluster.epoch, "id": None, "shardsDone": 0,
                "shardsTotal": 0, "documentsCopied": 0, "documentsPerSecond": None,
                "etaSeconds": None, "errors": []}
    return {**progress(record.value, cluster.now_ms()), "epoch": cluster.epoch}
