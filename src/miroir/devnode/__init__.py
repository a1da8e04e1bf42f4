"""A Meilisearch-compatible node in pure Python: an engine and an ASGI app that serves it.

It is the single-node reference merged results are proved against, the node behind
`miroir dev`, and the node inside the simulator. It is not a Meilisearch replacement.
"""
