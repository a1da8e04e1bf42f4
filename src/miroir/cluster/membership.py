"""Membership changes through the admin API, as far as this version carries them: validated
against the stored topology, planned, and shown; not yet carried out.

Theory of operation. A change is always judged against the topology *in the store* (read fresh,
not this process's copy, which may be one health interval old), through the pure functions of
`miroir.core.membership`, and its plan is `miroir.core.rebalance_plan`'s. With `dry_run` the
caller gets the plan; without it, `MembershipUnavailable` says why nothing was changed: moving
shards online needs the migration engine (dual writes, copy, verify, cutover), which is not
built yet, and publishing the new membership without it would route reads to nodes that do not
hold the data. The rebalance status is read from the store record `rebalance`, which only a
migration engine writes; without one it is always idle.

Must never: publish a topology whose placement moves shards before their data has moved.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from miroir.cluster.runtime import Cluster
from miroir.cluster.topology_sync import read_topology
from miroir.core.errors import MeiliError
from miroir.core.membership import MembershipChange
from miroir.core.rebalance_plan import RebalancePlan
from miroir.core.topology import Topology

REBALANCE_RECORD = "rebalance"


class MembershipUnavailable(MeiliError):
    def __init__(self, change: MembershipChange) -> None:
        super().__init__(
            "miroir_rebalance_unavailable",
            f"The change ({change.kind}) is valid, but this version of Miroir cannot move shards "
            "online yet, so nothing was changed. Send it again with `?dryRun=true` to see the "
            "plan; see docs/operations.md, \"Changing the fleet\".",
        )


async def change_membership(
    cluster: Cluster, change_of: Callable[[Topology], MembershipChange], *, dry_run: bool
) -> dict[str, Any]:
    """Judge a change against the stored topology; its plan when `dry_run`, else refuse."""
    found = await read_topology(cluster.store)
    epoch, durable = (found.epoch, found.topology) if found else (cluster.epoch, cluster.topology)
    change = change_of(durable)
    if not dry_run:
        raise MembershipUnavailable(change)
    return {"dryRun": True, "kind": change.kind, "epoch": epoch,
            "plan": render_plan(change.plan(), change)}


def render_plan(plan: RebalancePlan, change: MembershipChange) -> dict[str, Any]:
    # every shard replica of the target: S x RF per group
    replicas = change.topology.shards * change.topology.replication_factor * len(change.target)
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
    """`GET /_miroir/rebalance`: the stored rebalance, or idle when there is none."""
    record = await cluster.store.get_record(REBALANCE_RECORD)
    if record is None:
        return {"state": "idle", "epoch": cluster.epoch, "id": None, "shardsDone": 0,
                "shardsTotal": 0, "documentsCopied": 0, "documentsPerSecond": None,
                "etaSeconds": None, "errors": []}
    return {"epoch": cluster.epoch, **record.value}
