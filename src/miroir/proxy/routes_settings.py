"""Settings routes: GET/PATCH/DELETE /indexes/{uid}/settings and every sub-route.

Every write becomes one settings patch applied by `broadcast.update_settings` (node by node,
rolled back on failure); a reset is a patch of nulls. `foreign-keys` and `chat` sit behind
Meilisearch experimental features: written the same way (a node with the feature off refuses
with `feature_not_enabled`, passed through), read from a node's own sub-route. Reads come from one serving node with
`_miroir_shard` hidden from filterableAttributes.
"""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from miroir.cluster import broadcast
from miroir.core.errors import MeiliError
from miroir.meili.settings import GATED_SUBROUTES, SETTINGS_KEYS, SUBROUTES
from miroir.proxy import bodies
from miroir.proxy.errors import json_response, node_answer
from miroir.proxy.idempotency import idempotent
from miroir.proxy.index_names import node_name
from miroir.proxy.replies import task_accepted
from miroir.proxy.state import cluster
from miroir.transport.base import NodeResponse

blueprint = Blueprint("settings", __name__)


def _subroute(slug: str) -> tuple[str, str]:
    found = SUBROUTES.get(slug) or GATED_SUBROUTES.get(slug)
    if found is None:
        raise MeiliError("not_found", "Not found.")
    return found


async def _read_settings(uid: str) -> Any | Response:
    the_cluster = cluster()
    result = await the_cluster.first_success(
        the_cluster.serving_nodes(), "GET", f"/indexes/{uid}/settings"
    )
    if not isinstance(result, NodeResponse) or result.status >= 500:
        raise MeiliError("miroir_node_unavailable", "No node could answer this request.")
    if not result.ok:
        return node_answer(result)
    return broadcast.hide_in_settings(result.json())


async def _apply(uid: str, patch: dict[str, Any]) -> Response:
    return task_accepted(await broadcast.update_settings(cluster(), uid, patch))


@blueprint.get("/indexes/<uid>/settings")
async def get_settings(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    settings = await _read_settings(node_index)
    return settings if isinstance(settings, Response) else json_response(settings)


@blueprint.patch("/indexes/<uid>/settings")
@idempotent
async def patch_settings(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    body = await bodies.json_object_body()
    return await _apply(node_index, body)


@blueprint.delete("/indexes/<uid>/settings")
@idempotent
async def reset_settings(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    return await _apply(node_index, {key: None for key in SETTINGS_KEYS})


@blueprint.get("/indexes/<uid>/settings/<slug>")
async def get_setting(uid: str, slug: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    key, _ = _subroute(slug)
    if slug in GATED_SUBROUTES:
        # Behind an experimental feature: GET /settings leaves it out while the feature is
        # off, and the sub-route still shows the value (or default), so ask for the sub-route.
        the_cluster = cluster()
        result = await the_cluster.first_success(
            the_cluster.serving_nodes(), "GET", f"/indexes/{node_index}/settings/{slug}"
        )
        if not isinstance(result, NodeResponse) or result.status >= 500:
            raise MeiliError("miroir_node_unavailable", "No node could answer this request.")
        return node_answer(result)
    settings = await _read_settings(node_index)
    if isinstance(settings, Response):
        return settings
    return json_response(settings.get(key))


async def _write_setting(uid: str, slug: str, method: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    key, write_method = _subroute(slug)
    if write_method != method:
        raise MeiliError("method_not_allowed", "Method not allowed.")
    return await _apply(node_index, {key: await bodies.json_body()})


@blueprint.put("/indexes/<uid>/settings/<slug>")
@idempotent
async def put_setting(uid: str, slug: str) -> Response:
    return await _write_setting(uid, slug, "PUT")


@blueprint.patch("/indexes/<uid>/settings/<slug>")
@idempotent
async def patch_setting(uid: str, slug: str) -> Response:
    return await _write_setting(uid, slug, "PATCH")


@blueprint.delete("/indexes/<uid>/settings/<slug>")
@idempotent
async def reset_setting(uid: str, slug: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    key, _ = _subroute(slug)
    return await _apply(node_index, {key: None})
