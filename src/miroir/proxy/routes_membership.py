"""Admin routes that list and change the fleet's membership (`/_miroir/nodes`, `/_miroir/groups`,
`/_miroir/rebalance`; admin key). One cluster call per handler (`miroir.cluster.membership`);
validation is `miroir.core.membership`'s, errors are Miroir's shape with the codes in
docs/http-api.md. Changes answer their plan with `?dryRun=true`; without it they start a
rebalance when `rebalance.enabled` (the default), and are refused with 501
`miroir_rebalance_unavailable` otherwise.
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir.cluster import membership as cluster_membership
from miroir.core import membership
from miroir.core.errors import MeiliError
from miroir.proxy.bodies import json_body
from miroir.proxy.errors import json_response
from miroir.proxy.state import cluster, proxy_state

blueprint = Blueprint("membership", __name__, url_prefix="/_miroir")


def _engine() -> bool:
    return proxy_state().config.rebalance.enabled


def _flag(name: str) -> bool:
    value = request.args.get(name, "false")
    if value not in ("true", "false"):
        raise MeiliError("bad_request", f"`{name}` must be `true` or `false`, got `{value}`.")
    return value == "true"


@blueprint.get("/nodes")
async def list_nodes() -> Response:
    the_cluster = cluster()
    durable = the_cluster.durable_topology
    membership_of = {} if durable is None else durable.states()
    shard_map = the_cluster.shard_map
    return json_response({
        "epoch": the_cluster.epoch,
        "nodes": [
            {
                "id": node.id,
                "address": node.address,
                "replicaGroup": node.replica_group,
                "membership": membership_of.get(node.id, node.state).value,
                "state": node.state.value,
                "shardCount": len(shard_map.shards_of(node.id)),
                "lastSeenMs": the_cluster.last_seen_ms.get(node.id),
            }
            for node in the_cluster.topology.nodes
        ],
    })


@blueprint.post("/nodes")
async def add_node() -> Response:
    body = await json_body()
    return json_response(await cluster_membership.change_membership(
        cluster(), lambda topology: membership.add_node(topology, body), dry_run=_flag("dryRun"), engine_enabled=_engine()))


@blueprint.post("/nodes/<node_id>/drain")
async def drain_node(node_id: str) -> Response:
    return json_response(await cluster_membership.change_membership(
        cluster(), lambda topology: membership.drain_node(topology, node_id),
        dry_run=_flag("dryRun"), engine_enabled=_engine()))


@blueprint.delete("/nodes/<node_id>")
async def remove_node(node_id: str) -> Response:
    force = _flag("force")
    return json_response(await cluster_membership.change_membership(
        cluster(), lambda topology: membership.remove_node(topology, node_id, force=force),
        dry_run=_flag("dryRun"), engine_enabled=_engine()))


@blueprint.post("/groups")
async def add_group() -> Response:
    body = await json_body()
    return json_response(await cluster_membership.change_membership(
        cluster(), lambda topology: membership.add_group(topology, body), dry_run=_flag("dryRun"), engine_enabled=_engine()))


@blueprint.get("/rebalance")
async def rebalance() -> Response:
    return json_response(await cluster_membership.rebalance_status(cluster()))
