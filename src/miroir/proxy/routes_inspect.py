"""Operator routes that look at the data on every node (admin key): per node and per shard
statistics (`GET /_miroir/stats`), read-only replica and settings checks (`GET
/_miroir/verify`), and each node's settings of an index (`GET
/_miroir/indexes/{uid}/settings/nodes`). `miroir ctl stats|verify|settings diff` read them.

One cluster call per handler (`miroir.cluster.fleet_stats`, `miroir.cluster.verify`). Must
never change anything on a node or in the store: the reconciler repairs, these only report.
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir.cluster import fleet_stats, verify
from miroir.core.errors import MeiliError
from miroir.meili.uids import check_index_uid
from miroir.proxy.errors import json_response
from miroir.proxy.state import cluster

blueprint = Blueprint("inspect", __name__, url_prefix="/_miroir")


@blueprint.get("/stats")
async def stats() -> Response:
    return json_response(await fleet_stats.fleet_stats(cluster(), _index_list()))


def _sample() -> int:
    raw = request.args.get("sample", str(verify.DEFAULT_SAMPLE))
    if not raw.isdigit() or int(raw) > verify.MAX_SAMPLE:
        raise MeiliError("bad_request", f"`sample` must be an integer from 0 to "
                         f"{verify.MAX_SAMPLE} (0 reads every document), got `{raw}`.")
    return int(raw)


def _index_list() -> list[str] | None:
    """`?indexes=a,b`: those indexes (each a valid uid); None when absent."""
    raw = request.args.get("indexes", "")
    uids = [uid for uid in raw.split(",") if uid] if raw else None
    for uid in uids or ():
        check_index_uid(uid)
    return uids


@blueprint.get("/verify")
async def verify_replicas() -> Response:
    sample = _sample()
    uids = _index_list()
    return json_response(await verify.verify(cluster(), uids, sample=sample))


@blueprint.get("/indexes/<uid>/settings/nodes")
async def settings_per_node(uid: str) -> Response:
    check_index_uid(uid)
    return json_response(await verify.node_settings(cluster(), uid))
