"""The Quart-trio app served by hypercorn: thin Meilisearch-compatible handlers."""
