"""Document routes: add/replace, update, delete (by id, batch, filter, all), get one.

Writes go through `miroir.cluster.writes` (validated whole, routed per node, quorum counted)
or `broadcast.delete_documents_by_filter` / `delete_all_documents` (every node, each call
retried like a document write's). GET /documents/{id} is
`read_documents.get_document` (the shard's readable owners, one after another).

Every write takes `?customMetadata=` (kept on the Miroir task, shown as Meilisearch shows it)
and refuses any other query parameter as Meilisearch's `CustomMetadataQuery` does; document
additions also take `primaryKey`, `csvDelimiter` and `skipCreation`.
"""

from __future__ import annotations

import orjson
from quart import Blueprint, Response, request

from miroir.cluster import broadcast, read_documents, writes
from miroir.core.errors import MeiliError
from miroir.meili.params import (
    DOCUMENT_DELETE_PARAMS,
    DOCUMENT_WRITE_PARAMS,
    parse_skip_creation,
)
from miroir.proxy import bodies
from miroir.proxy.errors import json_response
from miroir.proxy.idempotency import idempotent
from miroir.proxy.index_names import node_name
from miroir.proxy.replies import task_accepted, write_accepted
from miroir.proxy.state import cluster

blueprint = Blueprint("documents", __name__)


async def _write(uid: str, *, replace: bool) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    params = bodies.only_params(DOCUMENT_WRITE_PARAMS)
    skip = parse_skip_creation(params["skipCreation"]) if "skipCreation" in params else False
    documents = await bodies.document_body()
    primary_key = params.get("primaryKey") or None
    outcome = await writes.write_documents(
        cluster(), node_index, documents, requested_primary_key=primary_key, replace=replace,
        skip_creation=skip, custom_metadata=params.get("customMetadata"),
    )
    return write_accepted(outcome)


def _custom_metadata() -> str | None:
    return bodies.only_params(DOCUMENT_DELETE_PARAMS).get("customMetadata")


@blueprint.post("/indexes/<uid>/documents")
@idempotent
async def add_or_replace(uid: str) -> Response:
    return await _write(uid, replace=True)


@blueprint.put("/indexes/<uid>/documents")
@idempotent
async def add_or_update(uid: str) -> Response:
    return await _write(uid, replace=False)


@blueprint.delete("/indexes/<uid>/documents")
@idempotent
async def delete_all(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    metadata = _custom_metadata()
    task = await broadcast.delete_all_documents(cluster(), node_index, metadata)
    return task_accepted(task)


@blueprint.post("/indexes/<uid>/documents/delete")
@idempotent
async def delete_by_filter(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    metadata = _custom_metadata()
    body = await bodies.json_object_body()
    if "filter" not in body:
        raise MeiliError("missing_document_filter", "Missing field `filter`")
    details = {
        "providedIds": 0,
        "deletedDocuments": None,
        "originalFilter": orjson.dumps(body["filter"]).decode(),
    }
    task = await broadcast.delete_documents_by_filter(cluster(), node_index, body, details,
                                                      metadata)
    return task_accepted(task)


@blueprint.post("/indexes/<uid>/documents/delete-batch")
@idempotent
async def delete_batch(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    metadata = _custom_metadata()
    body = await bodies.json_array_body()
    return write_accepted(
        await writes.delete_documents_by_id(cluster(), node_index, body, metadata))


@blueprint.delete("/indexes/<uid>/documents/<document_id>")
@idempotent
async def delete_one(uid: str, document_id: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    metadata = _custom_metadata()
    return write_accepted(
        await writes.delete_documents_by_id(cluster(), node_index, [document_id], metadata)
    )


@blueprint.get("/indexes/<uid>/documents/<document_id>")
async def get_one(uid: str, document_id: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    params = bodies.only_params(("fields", "retrieveVectors"))
    return json_response(
        await read_documents.get_document(cluster(), node_index, document_id, params))


# GET /indexes/{uid}/documents and POST /documents/fetch are scatter reads: routes_search.


__all__ = ["blueprint", "request"]
