"""Meilisearch's request contract, owned once: what a client may send and the words of a refusal.

Pure, beside `miroir.core` (it imports only the core, the standard library and orjson, and
never does I/O): `params` (the tables of search, multi-search, facet-search and documents parameters),
`settings` (the settings keys, their defaults and checks), `payloads` (content types, JSON and
document bodies), `uids` (the index uid rule), `auth` (the master-key bearer check, public
paths), `deserr` (the wording of every validation error), `extensions` (what Miroir adds, such
as `X-Miroir-Degraded`). The proxy, the devnode and the simulator all read requests through it,
so a bad request gets the same answer from Miroir as from one node.
"""
