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
from miroir.core.filters import normalize_facet
from miroir.devnode.search import vectors as vec
from miroir.devnode.search.ranking import Descending
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
        # embedder name -> internal id -> the document's embeddings (userProvided only).
        self.embeddings: dict[str, dict[int, list[list[float]]]] = {}

    def view(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "createdAt": rfc3339(self.created_at),
            "updatedAt": rfc3339(self.updated_at),
            "primaryKey": self.primary_key,
        }

    # -- writes (called by the engine while a task applies) -------------------------------------

    def add_documents(
        self, documents: list[dict[str, Any]], *, replace: bool, skip_creation: bool = False
    ) -> int:
        """Add or replace (replace=True) / add or update (False). Returns indexed count.

        With `skip_creation` (Meilisearch's `MissingDocumentPolicy::Skip`), a document whose id
        the index does not hold yet is left out, and not counted."""
        assert self.primary_key is not None
        ids = [document_id(document, self.primary_key) for document in documents]  # may raise
        embedders = self.settings.get("embedders") or {}
        final: dict[str, dict[str, Any]] = {}
        indexed = 0
        for doc_id, document in zip(ids, documents, strict=True):
            existing = final.get(doc_id, self.documents.get(doc_id))
            if existing is None and skip_creation:
                continue
            indexed += 1
            if existing is not None and not replace:
                document = {**existing, **document}
            else:
                document = dict(document)
            final[doc_id] = document
        # Every document's vectors are checked before anything is written (all-or-nothing).
        found = {
            doc_id: vec.document_embeddings(document, doc_id, embedders)
            for doc_id, document in final.items()
        }
        for doc_id, document in final.items():
            internal_id = self.internal_ids.get(doc_id)
            if internal_id is None:
                internal_id = self._next_internal_id
                self._next_internal_id += 1
                self.internal_ids[doc_id] = internal_id
                self.document_ids[internal_id] = doc_id
            self.documents[doc_id] = document
            self._set_embeddings(internal_id, found[doc_id])
            self.searcher.upsert(internal_id, _searchable(document))
        return indexed

    def _set_embeddings(self, internal_id: int, found: dict[str, list[list[float]]]) -> None:
        for store in self.embeddings.values():
            store.pop(internal_id, None)
        for name, embeddings in found.items():
            self.embeddings.setdefault(name, {})[internal_id] = embeddings

    def delete_documents(self, ids: Iterable[str]) -> int:
        deleted = 0
        for doc_id in ids:
            if self.documents.pop(doc_id, None) is None:
                continue
            internal_id = self.internal_ids.pop(doc_id)
            del self.document_ids[internal_id]
            self._set_embeddings(internal_id, {})
            self.searcher.delete(internal_id)
            deleted += 1
        return deleted

    def clear(self) -> int:
        count = len(self.documents)
        self.documents.clear()
        self.internal_ids.clear()
        self.document_ids.clear()
        self.embeddings.clear()
        self.searcher.clear()
        return count

    def set_settings(self, settings: dict[str, Any]) -> None:
        embedders_changed = settings.get("embedders") != self.settings.get("embedders")
        self.settings = settings
        self.searcher.update_settings(settings)
        if embedders_changed:
            # Vectors sent before their embedder existed are in the documents: index them now.
            self.embeddings.clear()
            embedders = settings.get("embedders") or {}
            for doc_id, document in self.documents.items():
                try:
                    found = vec.document_embeddings(document, doc_id, embedders)
                except MeiliError:
                    continue  # not embeddable under the new settings: left without vectors
                self._set_embeddings(self.internal_ids[doc_id], found)

    def present(
        self, doc_id: str, fields: list[str] | None, retrieve_vectors: bool
    ) -> dict[str, Any]:
        """A stored document as documents routes show it (`_vectors` only on request)."""
        document = self.documents[doc_id]
        shown = select_fields(document, fields)
        wants_vectors = retrieve_vectors and (
            fields is None or "*" in fields or vec.VECTORS_FIELD in fields
        )
        embeddings = (
            {name: store.get(self.internal_ids[doc_id], []) for name, store in self.embeddings.items()}
            if wants_vectors
            else {}
        )
        if wants_vectors and vec.VECTORS_FIELD not in shown:
            shown[vec.VECTORS_FIELD] = document.get(vec.VECTORS_FIELD)
        return vec.present_vectors(
            shown, embeddings, self.settings.get("embedders") or {}, wants_vectors
        )

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
        sort: list[tuple[str, bool]] | None = None,
        retrieve_vectors: bool = False,
    ) -> dict[str, Any]:
        """GET /documents and POST /documents/fetch: `{results, offset, limit, total}`.

        With `sort` ((field, ascending) rules, already checked sortable), documents are ordered
        as Meilisearch's documents sort orders them: per rule, numbers, then strings
        (normalized), then documents without a value, in either direction; a document with
        several values sorts by its best one; full ties stay in internal-id order."""
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
        if sort:
            selected = self._sorted(selected, sort)
        page = selected[offset : offset + limit]
        return {
            "results": [self.present(doc_id, fields, retrieve_vectors) for doc_id in page],
            "offset": offset,
            "limit": limit,
            "total": len(selected),
        }

    def _sorted(self, selected: list[str], sort: list[tuple[str, bool]]) -> list[str]:
        facets = self.searcher.facets  # type: ignore[attr-defined]
        fields = [(facets.field(name), ascending) for name, ascending in sort]

        def key(doc_id: str) -> tuple:
            internal_id = self.internal_ids[doc_id]
            return tuple(document_sort_key(index.facts.get(internal_id), asc) for index, asc in fields)

        return sorted(selected, key=key)  # stable: ties keep internal-id order

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
            "numberOfEmbeddings": sum(
                len(e) for store in self.embeddings.values() for e in store.values()
            ),
            "numberOfEmbeddedDocuments": len(
                {i for store in self.embeddings.values() for i in store}
            ),
            "isIndexing": is_indexing,
            "fieldDistribution": dict(sorted(distribution.items())),
        }


def _searchable(document: dict[str, Any]) -> dict[str, Any]:
    """The document the search structures index: `_vectors` is neither text nor a facet."""
    if vec.VECTORS_FIELD not in document:
        return document
    return {k: v for k, v in document.items() if k != vec.VECTORS_FIELD}


def document_sort_key(facts: Any, ascending: bool) -> tuple:
    """One rule's key of one document: numbers (0), strings (1), no value (2), either way."""
    if facts is not None and facts.numbers:
        return (0, min(facts.numbers) if ascending else -max(facts.numbers))
    if facts is not None and facts.strings:
        values = [normalize_facet(s) for s in facts.strings]
        return (1, min(values)) if ascending else (1, Descending(max(values)))
    return (2,)


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
