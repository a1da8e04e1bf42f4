"""One index of the devnode engine: its documents, settings and search structures.

Owns the documents of an index in insertion order, each with its internal id (the order of the
first addition of that document id; replacing a document keeps it), and keeps the searcher in
step with every change. Every mutation here is all-or-nothing: ids are checked for the whole
batch before anything is written. It never enqueues or orders tasks; the engine does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol

import orjson

from miroir.core.documents import document_id
from miroir.core.errors import MeiliError
from miroir.devnode.settings import default_settings
from miroir.devnode.timefmt import rfc3339


class Searcher(Protocol):
    """What the engine needs of `miroir.devnode.search.IndexSearcher`."""

    def update_settings(self, settings: dict[str, Any]) -> None: ...
    def upsert(self, internal_id: int, document: dict[str, Any]) -> None: ...
    def delete(self, internal_id: int) -> None: ...
    def clear(self) -> None: ...
    def filter_ids(self, filter_expr: Any, *, error_code: str) -> list[int]: ...


SearcherFactory = Callable[[dict[str, Any]], Searcher]


class IndexState:
    def __init__(
        self,
        uid: str,
        primary_key: str | None,
        created_at: datetime,
        searcher_factory: SearcherFactory,
    ) -> None:
        self.uid = uid
        self.primary_key = primary_key
        self.created_at = created_at
        self.updated_at = created_at
        self.settings: dict[str, Any] = default_settings()
        self.searcher: Searcher = searcher_factory(self.settings)
        # document id -> document; dict order is internal-id order (replacing keeps the slot).
        self.documents: dict[str, dict[str, Any]] = {}
        self.internal_ids: dict[str, int] = {}
        self.document_ids: dict[int, str] = {}
        self._next_internal_id = 0

    def view(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at),
            "primaryKey": self.primary_key,
        }

    # -- writes (called by the engine while a task applies) -------------------------------------

    def add_documents(self, documents: list[dict[str, Any]], *, replace: bool) -> int:
        """Add or replace (replace=True) / add or update (False). Returns indexed count."""
        assert self.primary_key is not None
        ids = [document_id(document, self.primary_key) for document in documents]  # may raise
        for doc_id, document in zip(ids, documents, strict=True):
            existing = self.documents.get(doc_id)
            if existing is not None and not replace:
                document = {**existing, **document}
            else:
                document = dict(document)
            internal_id = self.internal_ids.get(doc_id)
            if internal_id is None:
                internal_id = self._next_internal_id
                self._next_internal_id += 1
                self.internal_ids[doc_id] = internal_id
                self.document_ids[internal_id] = doc_id
            self.documents[doc_id] = document
            self.searcher.upsert(internal_id, document)
        return len(documents)

    def delete_documents(self, ids: Iterable[str]) -> int:
        deleted = 0
        for doc_id in ids:
            if self.documents.pop(doc_id, None) is None:
                continue
            internal_id = self.internal_ids.pop(doc_id)
            del self.document_ids[internal_id]
            self.searcher.delete(internal_id)
            deleted += 1
        return deleted

    def clear(self) -> int:
        count = len(self.documents)
        self.documents.clear()
        self.internal_ids.clear()
        self.document_ids.clear()
        self.searcher.clear()
        return count

    def set_settings(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.searcher.update_settings(settings)

    # -- reads -----------------------------------------------------------------------------------

    def ids_matching(self, filter_expr: Any, *, error_code: str) -> list[str]:
        """Document ids whose documents match `filter_expr`, in internal-id order."""
        return [
            self.document_ids[internal_id]
            for internal_id in self.searcher.filter_ids(filter_expr, error_code=error_code)
            if internal_id in self.document_ids
        ]

    def browse(
        self,
        *,
        offset: int,
        limit: int,
        fields: list[str] | None,
        ids: list[str] | None,
        filter_expr: Any,
    ) -> dict[str, Any]:
        """GET /documents and POST /documents/fetch: `{results, offset, limit, total}`."""
        if filter_expr is not None:
            selected = self.ids_matching(filter_expr, error_code="invalid_document_filter")
            if ids is not None:
                wanted = set(ids)
                selected = [doc_id for doc_id in selected if doc_id in wanted]
        elif ids is not None:
            wanted = set(ids)
            selected = [doc_id for doc_id in self.documents if doc_id in wanted]
        else:
            selected = list(self.documents)
        page = selected[offset : offset + limit]
        return {
            "results": [select_fields(self.documents[doc_id], fields) for doc_id in page],
            "offset": offset,
            "limit": limit,
            "total": len(selected),
        }

    def stats(self, *, is_indexing: bool) -> dict[str, Any]:
        sizes = [len(orjson.dumps(document)) for document in self.documents.values()]
        distribution: dict[str, int] = {}
        for document in self.documents.values():
            for field in document:
                distribution[field] = distribution.get(field, 0) + 1
        raw = sum(sizes)
        # Field order of Meilisearch's own example (OpenAPI IndexStats); sizes are JSON bytes.
        return {
            "numberOfDocuments": len(self.documents),
            "indexSize": raw,
            "usedIndexSize": raw,
            "rawDocumentDbSize": raw,
            "avgDocumentSize": raw // len(sizes) if sizes else 0,
            "numberOfEmbeddings": 0,
            "numberOfEmbeddedDocuments": 0,
            "isIndexing": is_indexing,
            "fieldDistribution": dict(sorted(distribution.items())),
        }


def select_fields(document: Mapping[str, Any], fields: list[str] | None) -> dict[str, Any]:
    """The document restricted to `fields` (None or `*` = all); dotted names reach into objects."""
    if fields is None or "*" in fields:
        return dict(document)
    selected: dict[str, Any] = {}
    for key, value in document.items():
        if key in fields:
            selected[key] = value
            continue
        inner = [field[len(key) + 1 :] for field in fields if field.startswith(key + ".")]
        if inner and isinstance(value, Mapping):
            nested = select_fields(value, inner)
            if nested:
                selected[key] = nested
        elif inner and isinstance(value, list):
            items = [select_fields(item, inner) for item in value if isinstance(item, Mapping)]
            if any(items):
                selected[key] = [item for item in items if item]
    return selected


def document_not_found(doc_id: str) -> MeiliError:
    return MeiliError("document_not_found", f"Document `{doc_id}` not found.")
