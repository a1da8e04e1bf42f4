"""Devnode handlers for documents: add/replace, add/update, browse, fetch, get one, delete.

Owns the write routes' query parameters and Meilisearch's errors for them; payloads are parsed
here at request time (malformed bodies are a 400, nothing enqueued), ids and primary keys are
checked when the task runs. Browse and fetch parameters are checked by `miroir.meili.params`
(the table the proxy checks with too). It never applies tasks.
"""

from __future__ import annotations

from typing import Any

from miroir.core.documents import canonical_document_id
from miroir.core.errors import MeiliError
from miroir.devnode.router import Request, Response, Router, accepted, ok
from miroir.meili import deserr
from miroir.meili.params import (
    DOCUMENT_DELETE_PARAMS,
    DOCUMENT_WRITE_PARAMS,
    DOCUMENTS,
    check_documents_fetch,
    documents_body_from_query,
    parse_skip_creation,
    value_of,
)
from miroir.meili.payloads import (
    CSV,
    DOCUMENT_CONTENT_TYPES,
    check_content_type,
    csv_delimiter_from_query,
    parse_documents,
)
from miroir.meili.uids import check_index_uid


def _write(replace: bool):
    def write(router: Router, request: Request, uid: str) -> Response:
        check_index_uid(uid)
        params = request.params(DOCUMENT_WRITE_PARAMS)
        kind = check_content_type(request.content_type, DOCUMENT_CONTENT_TYPES)
        delimiter = ","
        if "csvDelimiter" in params:
            delimiter = csv_delimiter_from_query(params["csvDelimiter"])
            if kind != CSV:
                raise MeiliError(
                    "invalid_document_csv_delimiter",
                    "The Content-Type must be `text/csv` when `csvDelimiter` is given.",
                )
        skip = False
        if "skipCreation" in params:
            skip = parse_skip_creation(params["skipCreation"])
        documents = parse_documents(request.body, kind, delimiter)
        task = router.engine.add_documents(
            uid,
            documents,
            primary_key=params.get("primaryKey") or None,
            replace=replace,
            custom_metadata=params.get("customMetadata"),
            skip_creation=skip,
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
    return _browse(router, uid, documents_body_from_query(request.query))


def fetch(router: Router, request: Request, uid: str) -> Response:
    return _browse(router, uid, check_documents_fetch(request.json()))


def _browse(router: Router, uid: str, body: dict[str, Any]) -> Response:
    """GET /documents and POST /documents/fetch, once the parameters are checked (as
    Meilisearch does, before the index is looked up)."""
    index = router.engine.get_index(uid)
    sort = None if body.get("sort") is None else _sort_rules(index, body["sort"])
    ids = body.get("ids")
    return ok(
        index.browse(
            offset=value_of(body, DOCUMENTS["offset"]),
            limit=value_of(body, DOCUMENTS["limit"]),
            fields=body.get("fields"),
            ids=None if ids is None else [_fetch_id(value) for value in ids],
            filter_expr=body.get("filter") or None,
            sort=sort,
            retrieve_vectors=bool(value_of(body, DOCUMENTS["retrieveVectors"])),
        )
    )


def _fetch_id(value: str | int) -> str:
    return document_id_from_path(value) if isinstance(value, str) else str(value)


def _sort_rules(index: Any, expressions: list[str]) -> list[tuple[str, bool]]:
    """`field:asc|desc` expressions checked as Meilisearch's documents sort checks them: the
    syntax first, then each field sortable (itself or a parent in sortableAttributes)."""
    rules: list[tuple[str, bool]] = []
    for expression in expressions:
        expression = expression.strip()
        field, _, direction = expression.rpartition(":")
        if not field or direction not in ("asc", "desc"):
            raise MeiliError(
                "invalid_document_sort",
                "Invalid syntax for the sort parameter: expected expression ending by `:asc` "
                f"or `:desc`, found `{expression}`.",
            )
        rules.append((field, direction == "asc"))
    sortable = sorted(set(index.settings.get("sortableAttributes") or []))
    for field, _ in rules:
        name = "_geo" if field.startswith("_geoPoint(") else field
        if name != "_geo" and any(s == name or name.startswith(s + ".") for s in sortable):
            continue
        tail = (
            f"Available sortable attributes are: `{', '.join(sortable)}`."
            if sortable
            else "This index does not have configured sortable attributes."
        )
        raise MeiliError("invalid_document_sort", f"Attribute `{name}` is not sortable. {tail}")
    return rules


def get_document(router: Router, request: Request, uid: str, doc_id: str) -> Response:
    params = request.params(("fields", "retrieveVectors"))
    fields = _comma_list(params["fields"]) if "fields" in params else None
    retrieve_vectors = False
    if "retrieveVectors" in params:
        retrieve_vectors = deserr.parse_query_bool(
            "invalid_document_retrieve_vectors", "retrieveVectors", params["retrieveVectors"]
        )
    return ok(
        router.engine.get_document(uid, document_id_from_path(doc_id), fields, retrieve_vectors)
    )


def _custom_metadata(request: Request) -> str | None:
    """The delete routes' one query parameter (Meilisearch's `CustomMetadataQuery`)."""
    return request.params(DOCUMENT_DELETE_PARAMS).get("customMetadata")


def delete_document(router: Router, request: Request, uid: str, doc_id: str) -> Response:
    metadata = _custom_metadata(request)
    return accepted(router.engine.delete_documents(uid, [doc_id], custom_metadata=metadata))


def delete_batch(router: Router, request: Request, uid: str) -> Response:
    check_index_uid(uid)
    metadata = _custom_metadata(request)
    body = request.json()
    if not isinstance(body, list):
        raise deserr.type_error("bad_request", "", "an array", body)
    for position, value in enumerate(body):
        if isinstance(value, dict | list) or value is None:
            raise deserr.type_error("bad_request", f"[{position}]", "a string or an integer", value)
    return accepted(router.engine.delete_documents(uid, body, custom_metadata=metadata))


def delete_by_filter(router: Router, request: Request, uid: str) -> Response:
    check_index_uid(uid)
    metadata = _custom_metadata(request)
    body = deserr.body_object("bad_request", "", request.json())
    deserr.check_fields(body, ("filter",), path="", code="bad_request")
    if "filter" not in body:
        raise MeiliError("missing_document_filter", "Missing field `filter`")
    return accepted(
        router.engine.delete_documents_by_filter(uid, body["filter"], custom_metadata=metadata)
    )


def clear(router: Router, request: Request, uid: str) -> Response:
    metadata = _custom_metadata(request)
    return accepted(router.engine.clear_documents(uid, custom_metadata=metadata))


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
