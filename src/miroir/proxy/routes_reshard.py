"""The resharding routes (admin key): `POST /_miroir/indexes/{uid}/reshard` (202, the reshard
started), `GET /_miroir/reshards` (newest first), `GET /_miroir/reshards/{id}`, `POST
/_miroir/reshards/{id}/rollback`. One cluster call per handler (`miroir.cluster.reshard`, which
docs/operations.md, "Reshard an index", describes); the allowed windows are the config's
`resharding.allowed_windows`, the time the cluster's clock.
"""

from __future__ import annotations

from quart import Blueprint, Response

from miroir.cluster import reshard as cluster_reshard
from miroir.core.errors import MeiliError
from miroir.core.reshard_window import parse_windows
from miroir.meili.uids import check_index_uid
from miroir.proxy.bodies import json_body
from miroir.proxy.errors import json_response
from miroir.proxy.state import cluster, proxy_state

blueprint = Blueprint("reshard", __name__, url_prefix="/_miroir")


@blueprint.post("/indexes/<uid>/reshard")
async def reshard(uid: str) -> Response:
    check_index_uid(uid)
    body = await json_body()
    the_cluster = cluster()
    node_index = (await the_cluster.layouts.current()).node_index(uid)
    if node_index is None:
        raise MeiliError("index_not_found", f"Index `{uid}` not found.")
    windows = parse_windows(proxy_state().config.resharding.allowed_windows)
    started = await cluster_reshard.start_reshard(the_cluster, uid, node_index, body, windows)
    return json_response(started, status=202)


@blueprint.get("/reshards")
async def list_reshards() -> Response:
    found = await cluster_reshard.list_reshards(cluster())
    return json_response({"results": found, "total": len(found)})


@blueprint.get("/reshards/<reshard_id>")
async def get_reshard(reshard_id: str) -> Response:
    return json_response(await cluster_reshard.get_reshard(cluster(), reshard_id))


@blueprint.post("/reshards/<reshard_id>/rollback")
async def rollback(reshard_id: str) -> Response:
    return json_response(await cluster_reshard.request_rollback(cluster(), reshard_id),
                         status=202)
