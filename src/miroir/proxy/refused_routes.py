"""Routes Meilisearch documents that Miroir refuses on purpose, each with the reason why.

Theory of operation. A client must never mistake a deliberate refusal for a typo in its URL,
so a route in Meilisearch's API that Miroir does not carry out answers 400
`miroir_unsupported_route` with a message naming the route and the reason, never a bare 404
`not_found`. 400 rather than 501 (Not Implemented), though 501 names the situation better: a
4xx tells every client that the request will not succeed as sent and must not be retried,
while HTTP clients and load balancers treat a 5xx as a server fault worth retrying, and Miroir
keeps its 5xx answers for availability (no quorum, overload, the store); the schemathesis run
over Meilisearch's OpenAPI document (tests/fuzz) holds every documented operation to "no
5xx".

The table is consulted only when no served route matched (the app's 404 and 405 handlers call
`refusal_for`), so a route that another part of Miroir serves always wins over an entry here:
adding a served route never needs this table changed first, and an entry left behind is
harmless (docs/http-api.md lists which is which). The two stream routes that a served route's
pattern would swallow (`/tasks/{uid}`, `/batches/{uid}`) are named in routes_tasks. `tests/proxy/test_openapi_routes.py` walks
Meilisearch's OpenAPI document and fails on any route that still answers a bare `not_found`.
"""

from __future__ import annotations

import re

import attrs

from miroir.core.errors import MeiliError

_ANY = ("GET", "POST", "PUT", "PATCH", "DELETE")
_SEGMENT = r"[^/]+"


@attrs.frozen
class Refusal:
    methods: tuple[str, ...]
    pattern: str  # the route as Meilisearch's documentation writes it, `{name}` for a segment
    reason: str

    @property
    def regex(self) -> re.Pattern[str]:
        parts = re.split(r"\{\w+\}", self.pattern)
        return re.compile(_SEGMENT.join(re.escape(part) for part in parts))


# Routes other parts of Miroir are adding: refused here only until their served routes land.
PENDING: tuple[str, ...] = ()
_NODE_LEVEL = ("this acts on one Meilisearch node's own state, which behind Miroir holds only "
               "some shards; call the nodes directly")
REFUSALS: tuple[Refusal, ...] = (
    Refusal(("GET",), "/batches/stream", "Miroir tasks are never batched, so there is nothing "
            "to stream"),
    Refusal(("GET",), "/tasks/stream", "task events are not streamed across proxy processes "
            "yet; poll GET /tasks or register a webhook"),
    Refusal(_ANY, "/chats", "chat completions need one engine that sees the whole index and an "
            "LLM, which a sharding proxy does not provide"),
    Refusal(_ANY, "/chats/{workspace_uid}", "chat completions are not served behind a sharding "
            "proxy"),
    Refusal(_ANY, "/chats/{workspace_uid}/settings", "chat completions are not served behind a "
            "sharding proxy"),
    Refusal(_ANY, "/chats/{workspace_uid}/chat/completions", "chat completions are not served "
            "behind a sharding proxy"),
    Refusal(("POST",), "/dumps", f"a dump is per node: {_NODE_LEVEL}"),
    Refusal(("POST",), "/snapshots", f"a snapshot is per node: {_NODE_LEVEL}"),
    Refusal(_ANY, "/dynamic-search-rules", "dynamic search rules are not carried across shards "
            "yet"),
    Refusal(_ANY, "/dynamic-search-rules/{uid}", "dynamic search rules are not carried across "
            "shards yet"),
    Refusal(("POST",), "/export", "export copies one node's indexes to another Meilisearch: "
            f"{_NODE_LEVEL}"),
    Refusal(_ANY, "/network", "Miroir's topology is its own configuration (see /_miroir/topology),"
            " not Meilisearch's network"),
    Refusal(_ANY, "/network/control", "Miroir's topology is its own configuration, not "
            "Meilisearch's network"),
    Refusal(("POST",), "/indexes/{index_uid}/documents/edit", "editing documents by function "
            "runs a script that could rewrite Miroir's shard field; not carried out across shards"),
    Refusal(("POST",), "/indexes/{index_uid}/fields", "the field list of a sharded index is not "
            "merged across shards yet"),
    Refusal(("POST",), "/render-template", "not carried out behind a sharding proxy yet"),
    Refusal(_ANY, "/logs/stream", f"log streaming: {_NODE_LEVEL}; Miroir's own logs follow "
            "--log-level"),
    Refusal(_ANY, "/logs/stderr", f"log levels: {_NODE_LEVEL}; Miroir's own logs follow "
            "--log-level"),
    Refusal(("GET",), "/metrics", "Miroir's Prometheus metrics are at /_miroir/metrics; each "
            "node keeps its own"),
    Refusal(("POST",), "/tasks/compact", "Miroir's tasks live in its own store, which prunes "
            "itself; compact the nodes' task databases on the nodes"),
    Refusal(("GET",), "/tasks/{task_id}/documents", "Miroir does not keep the documents a task "
            "carried"),
    # Planned (issue #14's swap as an atomic flip of Miroir's uid -> node index mapping); until
    # then, refused rather than unknown.
)


def refusal_for(method: str, path: str) -> MeiliError | None:
    """`miroir_unsupported_route` for a refused route, None for any other path."""
    for refusal in REFUSALS:
        if method in refusal.methods and refusal.regex.fullmatch(path):
            return MeiliError(
                "miroir_unsupported_route",
                f"`{method} {refusal.pattern}` is not supported by Miroir: {refusal.reason}.",
            )
    return None
