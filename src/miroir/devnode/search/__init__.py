"""The devnode's search engine: tokenizer, inverted index, ranking rules, formatting, facets.

`IndexSearcher` is the engine-facing object (one per index); `run_search` answers one search
query against it. Ranking is a pure function of (document, query, settings): see `ranking`.
"""

from miroir.devnode.search.index import IndexSearcher

__all__ = ["IndexSearcher"]
