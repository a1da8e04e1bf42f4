"""Building searchers and engines for the search tests."""

from __future__ import annotations

from typing import Any

from miroir.devnode.engine import Engine
from miroir.devnode.search import IndexSearcher
from miroir.devnode.search.execute import SearchRequest, run_search
from miroir.devnode.settings import default_settings


def searcher_with(documents: list[dict[str, Any]], **settings: Any) -> IndexSearcher:
    full = default_settings()
    full.update(settings)
    searcher = IndexSearcher(full)
    for internal_id, document in enumerate(documents):
        searcher.upsert(internal_id, document)
    return searcher


def titles(searcher: IndexSearcher, q: str, **request: Any) -> list[str]:
    outcome = run_search(searcher, SearchRequest(q=q, limit=request.pop("limit", 50), **request))
    return [searcher.documents[hit.internal_id]["title"] for hit in outcome.hits]


def engine_with(uid: str, documents: list[dict[str, Any]], **settings: Any) -> Engine:
    engine = Engine()
    engine.add_documents(uid, documents, primary_key="id")
    if settings:
        engine.update_settings(uid, settings)
    engine.process()
    return engine
