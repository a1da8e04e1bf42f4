"""Read routes through the scatter path: search (POST and GET), multi-search, facet search, and
the documents listing (GET /documents, POST /documents/fetch).

Thin handlers: read the request and check it against Meilisearch's tables
(`miroir.meili.params`: GET query strings become the equivalent POST body, exactly as a node
reads them, and a bad parameter is refused in Meilisearch's words before any node is asked),
call one operation of `miroir.cluster.search` or `miroir.cluster.read_documents` with the
configured `unavailable_shard_policy`, and render the merged answer. A partial answer carries
`X-Miroir-Degraded: shards=<ids>`. Must never merge, route or retry anything itself.

`search_lane` is the hot path's exception to "thin handlers under Quart": an ASGI app in front
of Quart that answers POST /indexes/{uid}/search itself once the request is one the Quart route
would answer with a search, and hands everything else to Quart untouched (body replayed). It
must never answer anything differently from the Quart route (tests/proxy/test_search_lane.py).
"""

from __future__ import annotations

import itertools
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import trio
from quart import Blueprint, Response, request

from miroir.cluster import multi_search as multi_searches
from miroir.cluster import read_documents, search, similar
from miroir.core.errors import MeiliError
from miroir.meili import params as meili_params
from miroir.meili import payloads
from miroir.meili.extensions import DEGRADED_HEADER
from miroir.proxy import bodies, index_names
from miroir.proxy.access_log import log_request
from miroir.proxy.auth import Access, invalid_api_key, request_access, with_tenant_filter
from miroir.proxy.content_encoding import encoding_in
from miroir.proxy.errors import json_response
from miroir.proxy.index_names import node_name
from miroir.proxy.state import ProxyState, cluster, proxy_state

blueprint = Blueprint("search", __name__)
JSON_TYPE = b"application/json"


# requestUid: UUID-shaped (version 4 layout), unique per answer. A random per-process prefix
# and a counter, rather than `uuid.uuid4()` per search, which cost ~2 % of a search's CPU.
_uid_prefix = ""
_uid_counter = itertools.count()


def _new_uid_space() -> None:
    """A fresh random prefix and counter start (at import and in every forked child, so two
    workers never hand out the same uid)."""
    global _uid_prefix, _uid_counter
    r = os.urandom(10).hex()
    _uid_prefix = f"{r[:8]}-{r[8:12]}-4{r[12:15]}-{'89ab'[int(r[15], 16) % 4]}{r[16:19]}-"
    _uid_counter = itertools.count(int.from_bytes(os.urandom(5), "big"))


_new_uid_space()
os.register_at_fork(after_in_child=_new_uid_space)


def new_request_uid() -> str:
    return f"{_uid_prefix}{next(_uid_counter) & 0xFFFF_FFFF_FFFF:012x}"


def _policy() -> str:
    return proxy_state().config.scatter.unavailable_shard_policy


def _render(result: search.ReadResult, *, request_uid: bool = False) -> Response:
    payload = result.response
    if request_uid:
        payload["requestUid"] = new_request_uid()
    if "performanceDetails" in payload:  # last, as Meilisearch puts it
        payload["performanceDetails"] = payload.pop("performanceDetails")
    headers = {DEGRADED_HEADER: _degraded(result.missing)} if result.missing else None
    return json_response(payload, headers=headers)


def _degraded(missing: tuple[int, ...]) -> str:
    """The X-Miroir-Degraded value of a partial answer."""
    return "shards=" + ",".join(map(str, missing))


def _rendered_bytes(result: search.ReadResult) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """The body and headers `_render(result, request_uid=True)` gives, without building a
    Quart response (the lane's hot path)."""
    payload = result.response
    payload["requestUid"] = new_request_uid()
    if "performanceDetails" in payload:  # last, as Meilisearch puts it
        payload["performanceDetails"] = payload.pop("performanceDetails")
    body = orjson.dumps(payload)
    headers = [(b"content-type", JSON_TYPE), (b"content-length", str(len(body)).encode())]
    if result.missing:
        headers.append((DEGRADED_HEADER.lower().encode(), _degraded(result.missing).encode()))
    return body, headers


def _tenant(uid: str, params: dict[str, Any]) -> dict[str, Any]:
    return with_tenant_filter(request_access(request), uid, params)


@blueprint.post("/indexes/<uid>/search")
async def search_post(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    params = _tenant(uid, meili_params.check_search(await bodies.json_body()))
    return _render(await search.search_index(cluster(), node_index, params, policy=_policy()),
                   request_uid=True)


@blueprint.get("/indexes/<uid>/search")
async def search_get(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    params = _tenant(uid, meili_params.search_body_from_query(request.args.items(multi=True)))
    return _render(await search.search_index(cluster(), node_index, params, policy=_policy()),
                   request_uid=True)


@blueprint.post("/multi-search")
async def multi_search() -> Response:
    body = meili_params.check_multi_search(await bodies.json_body())
    bodies.multi_search_index_uids(body)
    body = authorized_queries(request_access(request), body)
    body = await _on_node_indexes(body)
    result = await multi_searches.multi_search(cluster(), body, policy=_policy())
    _name_client_indexes(result.response)
    return _render(result)


async def _on_node_indexes(body: Any) -> Any:
    """A checked multi-search body with every index uid (each query's, and the federation's
    `facetsByIndex` keys) put as its node-side index."""
    if not isinstance(body, dict) or not isinstance(body.get("queries"), list):
        return body
    queries = [
        {**query, "indexUid": await node_name(query["indexUid"])}
        if isinstance(query, dict) and isinstance(query.get("indexUid"), str) else query
        for query in body["queries"]
    ]
    federation = body.get("federation")
    if isinstance(federation, dict) and isinstance(federation.get("facetsByIndex"), dict):
        federation = {**federation, "facetsByIndex": {
            await node_name(uid): facets for uid, facets in federation["facetsByIndex"].items()}}
        return {**body, "queries": queries, "federation": federation}
    return {**body, "queries": queries}


def _name_client_indexes(response: dict[str, Any]) -> None:
    """A multi-search answer's node-side index names put back as client uids, in place."""
    if not index_names.resolving():
        return
    for result in response.get("results") or ():
        if isinstance(result, dict) and isinstance(result.get("indexUid"), str):
            result["indexUid"] = index_names.client_uid(result["indexUid"])
    for hit in response.get("hits") or ():
        federation = hit.get("_federation") if isinstance(hit, dict) else None
        if isinstance(federation, dict) and isinstance(federation.get("indexUid"), str):
            federation["indexUid"] = index_names.client_uid(federation["indexUid"])
    if isinstance(response.get("facetsByIndex"), dict):
        response["facetsByIndex"] = {index_names.client_uid(name): facets
                                     for name, facets in response["facetsByIndex"].items()}


@blueprint.post("/indexes/<uid>/facet-search")
async def facet_search(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    params = _tenant(uid, meili_params.check_facet_search(await bodies.json_body()))
    return _render(await search.facet_search(cluster(), node_index, params, policy=_policy()))


@blueprint.post("/indexes/<uid>/similar")
async def similar_post(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    params = _tenant(uid, meili_params.check_similar(await bodies.json_object_body()))
    return _render(await similar.similar(cluster(), node_index, params, policy=_policy()))


@blueprint.get("/indexes/<uid>/similar")
async def similar_get(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    params = _tenant(uid, meili_params.check_similar(
        meili_params.similar_params_from_query(list(request.args.items(multi=True)))
    ))
    return _render(await similar.similar(cluster(), node_index, params, policy=_policy()))


@blueprint.get("/indexes/<uid>/documents")
async def browse(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    params = meili_params.documents_body_from_query(request.args.items(multi=True))
    return _render(
        await read_documents.fetch_documents(cluster(), node_index, params, policy=_policy()))


@blueprint.post("/indexes/<uid>/documents/fetch")
async def fetch(uid: str) -> Response:
    bodies.index_uid(uid)
    node_index = await node_name(uid)
    params = meili_params.check_documents_fetch(await bodies.json_body())
    return _render(
        await read_documents.fetch_documents(cluster(), node_index, params, policy=_policy()))


def authorized_queries(access: Access, body: Any) -> Any:
    """A multi-search body with every query's index checked against `access` and the tenant's
    filter ANDed into each query (federated or not), as Meilisearch's multi-search does. A body
    too malformed to read an index from is passed on untouched for validation to refuse."""
    if not access.restricted or not isinstance(body, dict):
        return body
    queries = body.get("queries")
    if not isinstance(queries, list):
        return body
    checked = []
    for position, query in enumerate(queries):
        if isinstance(query, dict) and isinstance(query.get("indexUid"), str):
            index_uid = query["indexUid"]
            if not access.index_allowed(index_uid):
                raise invalid_api_key(
                    f"Inside `.queries[{position}]`: The provided API key is invalid.")
            query = with_tenant_filter(access, index_uid, query)
        checked.append(query)
    return {**body, "queries": checked}


# ---- the search lane: POST /indexes/{uid}/search below Quart ------------------------------------

_SEARCH_PATH = re.compile(r"/indexes/([^/]+)/search")
SEARCH_ROUTE = "/indexes/<uid>/search"
ASGIApp = Callable[[dict[str, Any], Callable[[], Awaitable[dict[str, Any]]],
                    Callable[[dict[str, Any]], Awaitable[None]]], Awaitable[None]]


def search_lane(inner: ASGIApp, state: ProxyState, authenticator: Any, max_body_bytes: int,
                render_error: Callable[[BaseException, str, str], Response],
                body_timeout_s: float) -> ASGIApp:
    """An ASGI app in front of Quart's that answers `POST /indexes/{uid}/search` itself.

    Quart's request machinery is ~15 % of a search's CPU (docs/benchmarks.md). The lane answers
    only a request the Quart route would answer with a search: authorised, a JSON body within
    the limit that passes `check_search`, a valid index uid. Anything else (a refusal, a bad
    body) is handed to Quart with the body replayed, so every refusal keeps Quart's exact
    rendering. Once the search runs, its answer or failure is rendered by the same functions
    the app's error handlers use (`render_error`), and metrics and the access-log line are the
    `after_request` hook's. `tests/proxy/test_search_lane.py` holds both paths to the same
    bytes.
    """

    async def lane(scope: dict[str, Any], receive: Any, send: Any) -> None:
        matched = (
            _SEARCH_PATH.fullmatch(scope["path"])
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if matched is None or state.cluster is None or scope.get("root_path"):
            return await inner(scope, receive, send)
        started = time.perf_counter()
        path, uid = scope["path"], matched.group(1)
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
        received: list[dict[str, Any]] = []
        params: Any = None
        try:
            access = await authenticator.check("POST", path, headers)
            bodies.index_uid(uid)
            payloads.check_content_type(headers.get("content-type"), (payloads.JSON,))
            if encoding_in(headers) is not None:
                raise _HandOver  # compressed: Quart's route decodes it (proxy/bodies.py)
            declared = headers.get("content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > max_body_bytes):
                raise _HandOver
            size = 0
            # A body that does not arrive in time is Quart's to time out (its BODY_TIMEOUT).
            with trio.move_on_after(body_timeout_s) as waiting:
                while True:
                    message = await receive()
                    received.append(message)
                    if message["type"] != "http.request":
                        raise _HandOver
                    size += len(message.get("body", b""))
                    if size > max_body_bytes:
                        raise _HandOver
                    if not message.get("more_body"):
                        break
            if waiting.cancelled_caught:
                raise _HandOver
            # A body the Quart route would refuse is handed over, to be refused there.
            params = meili_params.check_search(
                orjson.loads(b"".join(m.get("body", b"") for m in received))
            )
            params = with_tenant_filter(access, uid, params)
        except (MeiliError, _HandOver, orjson.JSONDecodeError):
            return await inner(scope, _replay(received, receive), send)
        metrics = state.metrics
        index_names.forget()  # a keep-alive connection's previous request resolved its own
        try:
            node_index = await index_names.node_index(state.cluster, uid)
            result = await search.search_index(
                state.cluster, node_index, params,
                policy=state.config.scatter.unavailable_shard_policy,
            )
            status, body, response_headers = 200, *_rendered_bytes(result)
        except Exception as error:  # noqa: BLE001 - rendered exactly as the app's handlers do
            response = render_error(error, "POST", path)
            body = await response.get_data()
            status = response.status_code
            response_headers = [(name.lower().encode("latin-1"), value.encode("latin-1"))
                                for name, value in response.headers.items()]
        # Counted and logged before sending, as Quart's `after_request` hook does.
        elapsed = time.perf_counter() - started
        metrics.observe_request("POST", SEARCH_ROUTE, status, elapsed)
        # The remote address exactly as Quart derives `request.remote_addr` from the scope.
        log_request("POST", path, status, elapsed, (scope.get("client") or ["<local>"])[0])
        await send({"type": "http.response.start", "status": status, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})

    return lane


class _HandOver(Exception):
    """The lane does not answer this request: Quart does, with the body replayed."""


def _replay(received: list[dict[str, Any]], receive: Any) -> Any:
    pending = list(received)

    async def replay() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay
