"""Operator routes under `/_miroir/` (admin key): topology, shards, readiness, metrics, tasks.

Read-only views of the cluster runtime. Must never change the topology or a node's state.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

from quart import Blueprint, Response, request

from miroir.cluster.reconcile import ConsistencyReport
from miroir.core.errors import MeiliError
from miroir.core.tasks import render_miroir_fields, render_task
from miroir.proxy.errors import error_response, json_response
from miroir.proxy.state import cluster, proxy_state

blueprint = Blueprint("admin", __name__, url_prefix="/_miroir")


@blueprint.get("/topology")
async def topology() -> Response:
    the_cluster = cluster()
    shard_map = the_cluster.shard_map
    nodes = [
        {
            "id": node.id,
            "address": node.address,
            "replicaGroup": node.replica_group,
            "state": node.state.value,
            "shardCount": len(shard_map.shards_of(node.id)),
            "lastSeenMs": the_cluster.last_seen_ms.get(node.id),
        }
        for node in the_cluster.topology.nodes
    ]
    return json_response(
        {
            "shards": shard_map.shards,
            "replicationFactor": the_cluster.topology.replication_factor,
            "replicaGroups": the_cluster.topology.replica_groups,
            "fullyCovered": the_cluster.fully_covered(),
            "nodes": nodes,
            # what `miroir ctl status` shows besides the shards: the epoch this process routes
            # by, its version, its store backend, and whether the rebalance engine runs
            "epoch": the_cluster.epoch,
            "version": _miroir_version(),
            "storeBackend": proxy_state().config.task_store.backend,
            "rebalanceEnabled": proxy_state().config.rebalance.enabled,
        }
    )


def _miroir_version() -> str:
    try:
        return version("miroir")
    except PackageNotFoundError:  # a source tree that was never installed
        return "unknown"


@blueprint.get("/shards")
async def shards() -> Response:
    """The shard table of the topology's S, or with `?index=uid` of that index's own S (the
    index layouts may give it one: `Cluster.shard_map_for`)."""
    the_cluster = cluster()
    shard_map = the_cluster.shard_map
    extra = {}
    uid = request.args.get("index")
    if uid is not None:
        node_index = (await the_cluster.layouts.current()).node_index(uid)
        if node_index is None:
            raise MeiliError("index_not_found", f"Index `{uid}` not found.")
        shard_map = the_cluster.shard_map_for(node_index)
        extra = {"index": uid, "shardCount": shard_map.shards}
    table = []
    for shard in range(shard_map.shards):
        groups = []
        for group in range(shard_map.replica_groups):
            groups.append(
                {
                    "group": group,
                    "owners": list(shard_map.owners(group, shard)),
                    "readable": list(shard_map.readable_owners(group, shard)),
                }
            )
        table.append({"shard": shard, "groups": groups})
    return json_response({**extra, "shards": table})


@blueprint.get("/ready")
async def ready() -> Response:
    if cluster().fully_covered():
        return json_response({"status": "ready"})
    return error_response(
        MeiliError("miroir_not_ready", "Some shard has no readable owner in any replica group.")
    )


@blueprint.get("/consistency")
async def consistency() -> Response:
    """What the reconciler (anti-entropy) found in its last pass, and its running totals."""
    services = proxy_state().services
    reconciler = services.reconciler if services is not None else None
    if reconciler is None:
        return json_response({"enabled": False})
    return json_response(await _consistency_body(reconciler.report))


@blueprint.post("/consistency")
async def check_consistency() -> Response:
    """Run a reconciler pass now (repairing what it finds) and answer with its report."""
    services = proxy_state().services
    reconciler = services.reconciler if services is not None else None
    if reconciler is None:
        raise MeiliError("miroir_reconciler_disabled", "The reconciler does not run in this "
                         "process.")
    report = await reconciler.run_pass()
    return json_response(await _consistency_body(report))


async def _consistency_body(report: ConsistencyReport) -> dict[str, Any]:
    """The reconciler's report, which speaks of node-side indexes, by client uid: each index
    under the uid the index layouts map to it, its node-side name in `nodeIndex`. A node-side
    index no client uid reaches (an orphan) goes under `orphans`, by its node-side name: in
    `indexes` it could collide with the client uid spelled like it (after a swap and an alias
    removed, client `a` may read node-side `a--1` while node-side `a` is an orphan)."""
    layouts = await cluster().layouts.current()
    body = report.render()
    indexes: dict[str, Any] = {}
    orphans: dict[str, Any] = {}
    for name, found in body["indexes"].items():
        uid = layouts.client_uid(name)
        if uid is None:
            orphans[name] = {"nodeIndex": name, **found}
        else:
            indexes[uid] = {"nodeIndex": name, **found}
    return {"enabled": True, **body, "indexes": dict(sorted(indexes.items())),
            "orphans": orphans}


@blueprint.get("/metrics")
async def metrics() -> Response:
    payload, content_type = proxy_state().metrics.render()
    return Response(payload, status=200, content_type=content_type)


@blueprint.get("/tasks/<int:uid>")
async def task_with_nodes(uid: int) -> Response:
    task = await cluster().store.get_task(uid)
    if task is None:
        raise MeiliError("task_not_found", f"Task `{uid}` not found.")
    return json_response({**render_task(task), "miroir": render_miroir_fields(task)})
