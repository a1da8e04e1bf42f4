"""Read routes through the scatter path: search (POST and GET), multi-search, facet search, and
the documents listing (GET /documents, POST /documents/fetch).

Thin handlers: read and shape the request (GET query strings become the equivalent POST body,
exactly as a node would read them), call one operation of `miroir.cluster.search` or
`miroir.cluster.read_documents` with the configured `unavailable_shard_policy`, and render the
merged answer. A partial answer carries `X-Miroir-Degraded: shards=<ids>`. Must never merge,
route or retry anything itself.
"""

from __future__ import annotations

import uuid
from typing import Any

from quart import Blueprint, Response, request

from miroir.cluster import read_documents, search
from miroir.core.errors import MeiliError
from miroir.devnode import deserr
from miroir.devnode.search_routes import search_params_from_query
from miroir.proxy import bodies
from miroir.proxy.errors import json_response
from miroir.proxy.state import cluster, proxy_state

blueprint = Blueprint("search", __name__)
DEGRADED_HEADER = "X-Miroir-Degraded"
_BROWSE_PARAMS = ("offset", "limit", "fields", "retrieveVectors", "sort", "ids", "filter")


def _policy() -> str:
    return proxy_state().config.scatter.unavailable_shard_policy


def _render(result: search.ReadResult, *, request_uid: bool = False) -> Response:
    payload = result.response
    if request_uid:
        payload["requestUid"] = str(uuid.uuid4())
    headers = None
    if result.missing:
        headers = {DEGRADED_HEADER: "shards=" + ",".join(str(s) for s in result.missing)}
    return json_response(payload, headers=headers)


async def _object_body() -> dict[str, Any]:
    body = await bodies.json_body()
    if not isinstance(body, dict):
        raise MeiliError(
            "bad_request", "Invalid value type: expected an object, but found something else."
        )
    return body


@blueprint.post("/indexes/<uid>/search")
async def search_post(uid: str) -> Response:
    bodies.index_uid(uid)
    params = await _object_body()
    return _render(await search.search_index(cluster(), uid, params, policy=_policy()),
                   request_uid=True)


@blueprint.get("/indexes/<uid>/search")
async def search_get(uid: str) -> Response:
    bodies.index_uid(uid)
    params = search_params_from_query(list(request.args.items(multi=True)))
    return _render(await search.search_index(cluster(), uid, params, policy=_policy()),
                   request_uid=True)


@blueprint.post("/multi-search")
async def multi_search() -> Response:
    body = await bodies.json_body()
    return _render(await search.multi_search(cluster(), body, policy=_policy()))


@blueprint.post("/indexes/<uid>/facet-search")
async def facet_search(uid: str) -> Response:
    bodies.index_uid(uid)
    params = await _object_body()
    return _render(await search.facet_search(cluster(), uid, params, policy=_policy()))


@blueprint.get("/indexes/<uid>/documents")
async def browse(uid: str) -> Response:
    bodies.index_uid(uid)
    params = _browse_params(bodies.only_params(_BROWSE_PARAMS))
    return _render(await read_documents.fetch_documents(cluster(), uid, params, policy=_policy()))


@blueprint.post("/indexes/<uid>/documents/fetch")
async def fetch(uid: str) -> Response:
    bodies.index_uid(uid)
    params = await _object_body()
    return _render(await read_documents.fetch_documents(cluster(), uid, params, policy=_policy()))


def _browse_params(query: dict[str, str]) -> dict[str, Any]:
    """A GET /documents query string as the equivalent POST /documents/fetch body."""
    params: dict[str, Any] = {}
    if "offset" in query:
        params["offset"] = deserr.parse_query_usize("invalid_document_offset", "offset", query["offset"])
    if "limit" in query:
        params["limit"] = deserr.parse_query_usize("invalid_document_limit", "limit", query["limit"])
    if "retrieveVectors" in query:
        params["retrieveVectors"] = deserr.parse_query_bool(
            "invalid_document_retrieve_vectors", "retrieveVectors", query["retrieveVectors"]
        )
    for name in ("fields", "ids", "sort"):
        if name in query:
            params[name] = [item.strip() for item in query[name].split(",") if item.strip()]
    if query.get("filter"):
        params["filter"] = query["filter"]
    return params
