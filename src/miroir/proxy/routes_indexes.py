"""Index lifecycle and instance routes: /indexes, /indexes/{uid}, stats, /version, /health,
/experimental-features.

Reads answer from one serving node (all nodes hold every index); creation goes through
`broadcast.create_index` (everywhere or nowhere); update and delete broadcast
(`broadcast.update_index`, `broadcast.delete_index`, which also tell the index catalog). Thin
handlers: validate, one cluster operation, render.
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir.cluster import aliases, broadcast, stats
from miroir.core.errors import MeiliError
from miroir.meili import deserr
from miroir.proxy import bodies
from miroir.proxy.auth import request_access
from miroir.proxy.errors import json_response, node_answer
from miroir.proxy.idempotency import idempotent
from miroir.proxy.index_names import node_name
from miroir.proxy.replies import task_accepted
from miroir.proxy.state import cluster

_ALL_INDEXES = 2**31  # "every index" as a page size the nodes accept
blueprint = Blueprint("indexes", __name__)


async def read_from_one_node(path: str) -> Response:
    """A read any node can answer: the first serving node that answers, passed through."""
    result = await cluster().first_success(cluster().serving_nodes(), "GET", path)
    if result is None or not hasattr(result, "status") or result.status >= 500:
        raise MeiliError("miroir_node_unavailable", "No node could answer this request.")
    return node_answer(result)


def _query_suffix() -> str:
    text = request.query_string.decode("latin-1")
    return f"?{text}" if text else ""


@blueprint.get("/health")
async def health() -> Response:
    return json_response({"status": "available"})


@blueprint.get("/version")
async def version() -> Response:
    return await read_from_one_node("/version")


@blueprint.get("/experimental-features")
async def get_experimental_features() -> Response:
    return await read_from_one_node("/experimental-features")


@blueprint.patch("/experimental-features")
async def patch_experimental_features() -> Response:
    body = await bodies.json_body()
    results = await cluster().fan_out(cluster().all_nodes(), "PATCH", "/experimental-features", body)
    answered = [results[n] for n in sorted(results) if hasattr(results[n], "status")]
    for result in answered:
        if result.status < 500:
            return node_answer(result)
    raise MeiliError("miroir_node_unavailable", "No node took the experimental features.")


@blueprint.get("/indexes")
async def list_indexes() -> Response:
    params = bodies.only_params(("offset", "limit"))
    access = request_access(request)
    layouts = await cluster().layouts.current()
    if access.all_indexes() and not layouts.entries:
        return await read_from_one_node("/indexes" + _query_suffix())
    # A key limited to some indexes sees only those (Meilisearch filters the listing by the
    # key's patterns), and node-side indexes are listed under their client uids (an orphan no
    # uid reaches is not listed): the whole listing from one node, renamed, filtered, then
    # paged here, sorted by uid as Meilisearch lists.
    offset = deserr.parse_query_usize("invalid_index_offset", "offset", params["offset"]) \
        if "offset" in params else 0
    limit = deserr.parse_query_usize("invalid_index_limit", "limit", params["limit"]) \
        if "limit" in params else 20
    answer = await cluster().first_success(
        cluster().serving_nodes(), "GET", f"/indexes?offset=0&limit={_ALL_INDEXES}")
    if answer is None or not hasattr(answer, "status") or answer.status != 200:
        raise MeiliError("miroir_node_unavailable", "No node could answer this request.")
    listed = [{**index, "uid": layouts.client_uid(index["uid"])}
              for index in answer.json()["results"]]
    visible = sorted((index for index in listed
                      if index["uid"] is not None and access.index_allowed(index["uid"])),
                     key=lambda index: index["uid"])
    return json_response({"results": visible[offset:offset + limit], "offset": offset,
                          "limit": limit, "total": len(visible)})


@blueprint.post("/indexes")
@idempotent
async def create_index() -> Response:
    body = await bodies.json_object_body()
    for key in body:
        if key not in ("uid", "primaryKey"):
            raise MeiliError(
                "bad_request", f"Unknown field `{key}`: expected one of `uid`, `primaryKey`"
            )
    if "uid" not in body:
        raise MeiliError("missing_index_uid", "Missing field `uid`")
    uid = body["uid"]
    if not isinstance(uid, str):
        raise MeiliError("invalid_index_uid", "Invalid value type at `.uid`: expected a string.")
    bodies.index_uid(uid, ".uid")
    node_index = await node_name(uid)
    primary_key = body.get("primaryKey")
    if primary_key is not None and not isinstance(primary_key, str):
        raise MeiliError(
            "invalid_index_primary_key",
            "Invalid value type at `.primaryKey`: expected a string.",
        )
    return task_accepted(await broadcast.create_index(cluster(), node_index, primary_key))


@blueprint.get("/indexes/<uid>")
async def get_index(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    return await read_from_one_node(f"/indexes/{node_index}")


@blueprint.patch("/indexes/<uid>")
@idempotent
async def update_index(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    body = await bodies.json_body()
    if isinstance(body, dict) and isinstance(body.get("uid"), str):
        bodies.index_uid(body["uid"], ".uid")  # a rename's new uid, refused before any node
        if body["uid"] != uid and body.get("primaryKey") is None and await _mapped(
                uid, node_index, body["uid"]):
            # The nodes would rename the node-side index under the layouts' feet: the rename
            # is a layouts change instead, like a swap's.
            return task_accepted(await aliases.rename_index(cluster(), uid, body["uid"]))
    return task_accepted(await broadcast.update_index(cluster(), node_index, body))


async def _mapped(uid: str, node_index: str, new_uid: str) -> bool:
    """Whether either uid of a rename has a layout of its own, or the index a shard count of
    its own (the count belongs to the node-side name: renamed on the nodes, the data would
    lose it). Else the nodes rename."""
    layouts = await cluster().layouts.current()
    return node_index != uid or uid in layouts.entries or \
        layouts.node_index(new_uid) != new_uid or new_uid in layouts.entries or \
        node_index in layouts.node_shards


@blueprint.delete("/indexes/<uid>")
@idempotent
async def delete_index(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    return task_accepted(await broadcast.delete_index(cluster(), node_index))


@blueprint.post("/indexes/<uid>/compact")
async def compact_index(uid: str) -> Response:
    """Every node compacts its copy of the index; the task follows the nodes' tasks. Its
    details stay empty: each node's sizes describe only its shards, and their sum would be
    no size Meilisearch ever reports."""
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    return task_accepted(await broadcast.broadcast_write(
        cluster(), "POST", f"/indexes/{node_index}/compact", None, "indexCompaction",
        node_index, {},
    ))


@blueprint.get("/indexes/<uid>/stats")
async def get_index_stats(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    # sizeFormat is taken and ignored: Miroir always shows raw byte counts (it must add them).
    params = bodies.only_params(("showInternalDatabaseSizes", "sizeFormat"))
    show = params.get("showInternalDatabaseSizes", "false") == "true"
    try:
        return json_response(
            await stats.index_stats(cluster(), node_index, internal_database_sizes=show)
        )
    except stats.StatsUnavailable as missing:
        raise _shards_unavailable(missing) from None


@blueprint.get("/stats")
async def get_stats() -> Response:
    access = request_access(request)
    try:
        answer = await stats.global_stats(cluster())
        layouts = await cluster().layouts.current()
        if layouts.entries:  # node-side names to client uids; an orphan is nobody's index
            named = ((layouts.client_uid(name), index)
                     for name, index in answer["indexes"].items())
            answer["indexes"] = dict(sorted((uid, index) for uid, index in named
                                            if uid is not None))
        if not access.all_indexes():
            answer["indexes"] = {uid: index for uid, index in answer["indexes"].items()
                                 if access.index_allowed(uid)}
        return json_response(answer)
    except stats.StatsUnavailable as missing:
        raise _shards_unavailable(missing) from None


def _shards_unavailable(missing: stats.StatsUnavailable) -> MeiliError:
    shards = ", ".join(map(str, missing.shards[:10])) or "(no node answered)"
    return MeiliError(
        "miroir_shard_unavailable", f"No replica could be reached for shard(s) {shards}."
    )
