"""Request bodies and query strings: reading under the size limit, JSON parsing, documents.

Owns the Meilisearch errors for bodies: missing/invalid content type (415), empty body
(`missing_payload`), malformed JSON (`malformed_payload`), too large (`payload_too_large`, 413).
Bodies are parsed by `miroir.meili.payloads` (JSON routes and JSON, NDJSON, CSV documents), the
one parser in the project, which the devnode uses too. A body sent with `Content-Encoding` gzip,
deflate or br is decoded as it arrives (`miroir.proxy.content_encoding`), and the limit counts
the decoded bytes, as Meilisearch's does. Must never parse a body twice or hold more than
`max_body_bytes` (+1) decoded bytes.
"""

from __future__ import annotations

from typing import Any

from quart import current_app, g, request

from miroir.core.errors import MeiliError
from miroir.meili import deserr, payloads
from miroir.meili.params import query_params
from miroir.meili.uids import check_index_uid
from miroir.proxy.content_encoding import BodyDecoder, encoding_of, too_large


async def read_body() -> bytes:
    """The whole body, decoded, or `payload_too_large` once it passes the configured limit.

    Read from the socket once per request and kept (`g.miroir_body`): the `Idempotency-Key`
    check fingerprints the body before the handler parses it."""
    cached = getattr(g, "miroir_body", None)
    if cached is not None:
        return cached
    g.miroir_body = body = await _read_body()
    return body


async def _read_body() -> bytes:
    limit = current_app.config["MIROIR_MAX_BODY_BYTES"]
    encoding = encoding_of(request.headers.get("content-encoding"))
    declared = request.content_length
    # A plain body is refused by its declared size at once. A compressed one is judged by its
    # decoded size (which may be far larger than what was sent), still refusing sent bytes
    # past the limit: they never make a smaller body once decoded, bar a few header bytes.
    if declared is not None and declared > limit:
        raise too_large(limit)
    decoder = BodyDecoder(encoding, limit)
    received = 0
    chunks = []
    async for chunk in request.body:
        received += len(chunk)
        if received > limit:
            raise too_large(limit)
        chunks.append(decoder.feed(chunk))
    chunks.append(decoder.finish())
    return b"".join(chunks)


async def json_body() -> Any:
    """The JSON body of a JSON route, with Meilisearch's content-type and payload errors."""
    payloads.check_content_type(request.headers.get("content-type"), (payloads.JSON,))
    return payloads.parse_json(await read_body())


async def json_object_body() -> dict[str, Any]:
    """The JSON body of a route that takes an object (settings, index creation, filters)."""
    return deserr.body_object("bad_request", "", await json_body())


async def json_array_body() -> list[Any]:
    """The JSON body of a route that takes an array (delete-batch)."""
    body = await json_body()
    if not isinstance(body, list):
        raise deserr.type_error("bad_request", "", "an array", body)
    return body


async def document_body() -> list[dict[str, Any]]:
    """The documents of a POST/PUT /documents body (JSON, NDJSON or CSV)."""
    kind = payloads.check_content_type(
        request.headers.get("content-type"), payloads.DOCUMENT_CONTENT_TYPES
    )
    delimiter = ","
    if "csvDelimiter" in request.args:
        delimiter = payloads.csv_delimiter_from_query(request.args["csvDelimiter"])
        if kind != payloads.CSV:
            raise MeiliError(
                "invalid_document_csv_delimiter",
                "The Content-Type must be `text/csv` to use the `csvDelimiter` parameter.",
            )
    body = await read_body()
    return payloads.parse_documents(body, kind, delimiter)


def index_uid(uid: str, at: str = "") -> str:
    """`uid` if Meilisearch would take it as an index uid, else its `invalid_index_uid`; `at`
    names the body field it came from (`.uid`), as deserr's message does."""
    try:
        return check_index_uid(uid)
    except MeiliError as error:
        if not at:
            raise
        raise deserr.invalid_value(error.code, at, error.message) from None


def multi_search_index_uids(body: Any) -> None:
    """Every `indexUid` of a /multi-search body (federated or not) checked by Meilisearch's rule
    before any of them reaches a node path: a uid a node would refuse must be refused here, in
    Meilisearch's words (`Invalid value at `.queries[0].indexUid``), never sent on. Stops at the
    first query that is not well formed: that error is the cluster's to word."""
    queries = body.get("queries") if isinstance(body, dict) else None
    if not isinstance(queries, list):
        return
    for position, query in enumerate(queries):
        if not isinstance(query, dict) or not isinstance(query.get("indexUid"), str):
            return
        index_uid(query["indexUid"], f".queries[{position}].indexUid")


def only_params(allowed: tuple[str, ...]) -> dict[str, str]:
    """The query string as a dict; an unknown parameter is Meilisearch's `bad_request`."""
    return query_params(request.args.items(multi=True), allowed)


