"""Devnode handlers for documents: add/replace, add/update, browse, fetch, get one, delete.

Owns the query parameters and body shapes of the document routes and Meilisearch's errors for
them; payloads are parsed here at request time (malformed bodies are a 400, nothing enqueued),
ids and primary keys are checked when the task runs. It never applies tasks.
"""

from __future__ import annotations

from typing import Any

from miroir.core.documents import canonical_document_id
from miroir.core.errors import MeiliError
from miroir.devnode import deserr
from miroir.devnode.payloads import (
    CSV,
    DOCUMENT_CONTENT_TYPES,
    check_content_type,
    csv_delimiter_from_query,
    parse_documents,
)
from miroir.devnode.router import Request, Response, Router, accepted, ok
from miroir.devnode.uids import check_index_uid

_WRITE_PARAMS = ("primaryKey", "csvDelimiter", "customMetadata", "skipCreation")
_BROWSE_PARAMS = ("offset", "limit", "fields", "retrieveVectors", "sort", "ids", "filter")
_FETCH_FIELDS = ("offset", "limit", "fields", "retrieveVectors", "sort", "ids", "filter")


def _write(replace: bool):
    def write(router: Router, request: Request, uid: str) -> Response:
        check_index_uid(uid)
        params = request.params(_WRITE_PARAMS)
        kind = check_content_type(request.content_type, DOCUMENT_CONTENT_TYPES)
        delimiter = ","
        if "csvDelimiter" in params:
            delimiter = csv_delimiter_from_query(params["csvDelimiter"])
            if kind != CSV:
                raise MeiliError(
                    "invalid_document_csv_delimiter",
                    "The Content-Type must be `text/csv` when `csvDelimiter` is given.",
                )
        if "skipCreation" in params:
            skip = deserr.parse_query_bool(
                "invalid_skip_creation", "skipCreation", params["skipCreation"]
            )
            if skip and uid not in router.engine.indexes:
                raise MeiliError("index_not_found", f"Index `{uid}` not found.")
        documents = parse_documents(request.body, kind, delimiter)
        task = router.engine.add_documents(
            uid,
            documents,
            primary_key=params.get("primaryKey") or None,
            replace=replace,
            custom_metadata=params.get("customMetadata"),
        )
        return accepted(task)

    return write


def document_id_from_path(text: str) -> str:
    """A document id from a URL or a fetch body: `007` stays `007`; an invalid id simply
    matches no document."""
    try:
        return canonical_document_id(text)
    except MeiliError:
        return text


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",")]


def browse(router: Router, request: Request, uid: str) -> Response:
    index = router.engine.get_index(uid)
    params = request.params(_BROWSE_PARAMS)
    offset = deserr.parse_query_usize(
        "invalid_document_offset", "offset", params.get("offset", "0")
    )
    limit = deserr.parse_query_usize("invalid_document_limit", "limit", params.get("limit", "20"))
    if "retrieveVectors" in params:
        deserr.parse_query_bool(
            "invalid_document_retrieve_vectors", "retrieveVectors", params["retrieveVectors"]
        )
    if "sort" in params:
        raise _sort_unsupported()
    fields = _comma_list(params["fields"]) if "fields" in params else None
    ids = (
        [document_id_from_path(i) for i in _comma_list(params["ids"])] if "ids" in params else None
    )
    filter_expr = params.get("filter") or None
    return ok(
        index.browse(offset=offset, limit=limit, fields=fields, ids=ids, filter_expr=filter_expr)
    )


def fetch(router: Router, request: Request, uid: str) -> Response:
    index = router.engine.get_index(uid)
    body = deserr.body_object("bad_request", "", request.json())
    deserr.check_fields(body, _FETCH_FIELDS, path="", code="bad_request")
    offset = deserr.body_usize("invalid_document_offset", ".offset", body.get("offset", 0))
    limit = deserr.body_usize("invalid_document_limit", ".limit", body.get("limit", 20))
    fields = body.get("fields")
    if fields is not None:
        fields = deserr.body_string_list("invalid_document_fields", ".fields", fields)
    if body.get("retrieveVectors") is not None:
        deserr.body_bool(
            "invalid_document_retrieve_vectors", ".retrieveVectors", body["retrieveVectors"]
        )
    if body.get("sort") is not None:
        raise _sort_unsupported()
    ids = body.get("ids")
    if ids is not None:
        if not isinstance(ids, list):
            raise deserr.type_error("invalid_document_ids", ".ids", "an array", ids)
        ids = [_fetch_id(value, position) for position, value in enumerate(ids)]
    filter_expr = body.get("filter")
    if filter_expr is not None and not isinstance(filter_expr, str | list):
        raise deserr.type_error(
            "invalid_document_filter", ".filter", "a string or an array", filter_expr
        )
    return ok(
        index.browse(
            offset=offset, limit=limit, fields=fields, ids=ids, filter_expr=filter_expr or None
        )
    )


def _fetch_id(value: Any, position: int) -> str:
    if isinstance(value, str):
        return document_id_from_path(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise deserr.type_error("invalid_document_ids", f".ids[{position}]", "a string", value)


def _sort_unsupported() -> MeiliError:
    return MeiliError("invalid_document_sort", "The devnode does not sort documents on browse.")


def get_document(router: Router, request: Request, uid: str, doc_id: str) -> Response:
    params = request.params(("fields", "retrieveVectors"))
    fields = _comma_list(params["fields"]) if "fields" in params else None
    return ok(router.engine.get_document(uid, document_id_from_path(doc_id), fields))


def delete_document(router: Router, request: Request, uid: str, doc_id: str) -> Response:
    return accepted(router.engine.delete_documents(uid, [doc_id]))


def delete_batch(router: Router, request: Request, uid: str) -> Response:
    check_index_uid(uid)
    body = request.json()
    if not isinstance(body, list):
        raise deserr.type_error("bad_request", "", "an array", body)
    for position, value in enumerate(body):
        if isinstance(value, dict | list) or value is None:
            raise deserr.type_error("bad_request", f"[{position}]", "a string or an integer", value)
    return accepted(router.engine.delete_documents(uid, body))


def delete_by_filter(router: Router, request: Request, uid: str) -> Response:
    check_index_uid(uid)
    body = deserr.body_object("bad_request", "", request.json())
    deserr.check_fields(body, ("filter",), path="", code="bad_request")
    if "filter" not in body:
        raise MeiliError("missing_document_filter", "Missing field `filter`")
    return accepted(router.engine.delete_documents_by_filter(uid, body["filter"]))


def clear(router: Router, request: Request, uid: str) -> Response:
    return accepted(router.engine.clear_documents(uid))


ROUTES = (
    ("POST", "/indexes/{}/documents", _write(replace=True)),
    ("PUT", "/indexes/{}/documents", _write(replace=False)),
    ("GET", "/indexes/{}/documents", browse),
    ("DELETE", "/indexes/{}/documents", clear),
    ("POST", "/indexes/{}/documents/fetch", fetch),
    ("POST", "/indexes/{}/documents/delete-batch", delete_batch),
    ("POST", "/indexes/{}/documents/delete", delete_by_filter),
    ("GET", "/indexes/{}/documents/{}", get_document),
    ("DELETE", "/indexes/{}/documents/{}", delete_document),
)
