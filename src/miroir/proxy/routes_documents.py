"""Document routes: add/replace, update, delete (by id, batch, filter, all), get one.

Writes go through `miroir.cluster.writes` (validated whole, routed per node, quorum counted)
or `broadcast.broadcast_write` (by filter, delete all). GET /documents/{id} reads the shard's
readable owners one after another until one answers, and strips `_miroir_*` fields.
"""

from __future__ import annotations

from urllib.parse import quote

import orjson
from quart import Blueprint, Response, request

from miroir.cluster import broadcast, writes
from miroir.core.documents import canonical_document_id
from miroir.core.errors import MeiliError
from miroir.core.placement import shard_for_key
from miroir.core.routing import strip_internal_fields
from miroir.proxy import bodies
from miroir.proxy.errors import json_response, node_answer
from miroir.proxy.replies import task_accepted, write_accepted
from miroir.proxy.state import cluster
from miroir.transport.base import NodeResponse

blueprint = Blueprint("documents", __name__)
_WRITE_PARAMS = ("primaryKey", "csvDelimiter", "customMetadata", "skipCreation")


async def _write(uid: str, *, replace: bool) -> Response:
    bodies.index_uid(uid)
    params = bodies.only_params(_WRITE_PARAMS)
    documents = await bodies.document_body()
    primary_key = params.get("primaryKey") or None
    outcome = await writes.write_documents(
        cluster(), uid, documents, requested_primary_key=primary_key, replace=replace
    )
    return write_accepted(outcome)


@blueprint.post("/indexes/<uid>/documents")
async def add_or_replace(uid: str) -> Response:
    return await _write(uid, replace=True)


@blueprint.put("/indexes/<uid>/documents")
async def add_or_update(uid: str) -> Response:
    return await _write(uid, replace=False)


@blueprint.delete("/indexes/<uid>/documents")
async def delete_all(uid: str) -> Response:
    bodies.index_uid(uid)
    task = await broadcast.broadcast_write(
        cluster(), "DELETE", f"/indexes/{uid}/documents", None, "documentDeletion", uid,
        {"deletedDocuments": None},
    )
    return task_accepted(task)


@blueprint.post("/indexes/<uid>/documents/delete")
async def delete_by_filter(uid: str) -> Response:
    bodies.index_uid(uid)
    body = await bodies.json_object_body()
    if "filter" not in body:
        raise MeiliError("missing_document_filter", "Missing field `filter`")
    details = {
        "providedIds": 0,
        "deletedDocuments": None,
        "originalFilter": orjson.dumps(body["filter"]).decode(),
    }
    task = await broadcast.broadcast_write(
        cluster(), "POST", f"/indexes/{uid}/documents/delete", body, "documentDeletion", uid,
        details,
    )
    return task_accepted(task)


@blueprint.post("/indexes/<uid>/documents/delete-batch")
async def delete_batch(uid: str) -> Response:
    bodies.index_uid(uid)
    body = await bodies.json_array_body()
    return write_accepted(await writes.delete_documents_by_id(cluster(), uid, body))


@blueprint.delete("/indexes/<uid>/documents/<document_id>")
async def delete_one(uid: str, document_id: str) -> Response:
    bodies.index_uid(uid)
    return write_accepted(await writes.delete_documents_by_id(cluster(), uid, [document_id]))


@blueprint.get("/indexes/<uid>/documents/<document_id>")
async def get_one(uid: str, document_id: str) -> Response:
    bodies.index_uid(uid)
    params = bodies.only_params(("fields", "retrieveVectors"))
    the_cluster = cluster()
    try:
        doc_id = canonical_document_id(document_id)
    except MeiliError:
        doc_id = None
    if doc_id is None:
        raise MeiliError("document_not_found", f"Document `{document_id}` not found.")
    shard_map = the_cluster.shard_map
    shard = shard_for_key(doc_id, shard_map.shards)
    seq = the_cluster.next_query_seq()
    groups = shard_map.replica_groups
    candidates: list[str] = []
    for step in range(groups):
        owners = list(shard_map.readable_owners((seq + step) % groups, shard))
        if owners:
            rotation = seq % len(owners)
            candidates.extend(owners[rotation:] + owners[:rotation])
    query = "&".join(f"{k}={quote(v, safe=',*')}" for k, v in params.items())
    path = f"/indexes/{uid}/documents/{quote(doc_id)}" + (f"?{query}" if query else "")
    result = await the_cluster.first_success(candidates, "GET", path)
    if not isinstance(result, NodeResponse) or result.status >= 500:
        raise MeiliError(
            "miroir_shard_unavailable", f"No replica could be reached for shard {shard}."
        )
    if not result.ok:
        return node_answer(result)
    return json_response(strip_internal_fields(result.json()))


# GET /indexes/{uid}/documents and POST /documents/fetch are scatter reads: routes_search.


__all__ = ["blueprint", "request"]
