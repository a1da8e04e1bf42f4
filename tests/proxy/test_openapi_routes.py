"""Every path and method of Meilisearch's published OpenAPI document (1.53, in the team's shared
reference) is answered by Miroir: served, or refused with a Miroir error that says why. A bare
404 `not_found` (no such route) fails the walk; so does a 405 or a 500."""

from __future__ import annotations

import json
import pathlib
import re

from tests.proxy.harness import running_proxy

# Meilisearch's OpenAPI document (1.53), vendored so CI walks it wherever the clone lives.
OPENAPI = pathlib.Path(__file__).resolve().parents[1] / "data" / "meilisearch-openapi-1.53.json"
METHODS = ("get", "post", "put", "patch", "delete")
# A value for each path parameter: the index exists, the others name nothing in particular.
PATH_VALUES = {
    "index_uid": "movies", "document_id": "1", "task_id": "0", "batch_id": "0",
    "key": "00000000-0000-0000-0000-000000000000",
    "uuid": "00000000-0000-0000-0000-000000000000", "workspace_uid": "ws", "uid": "rule",
}


def openapi_routes() -> list[tuple[str, str]]:
    if not OPENAPI.exists():
        return []
    document = json.loads(OPENAPI.read_text())
    return [(method.upper(), path) for path, item in document["paths"].items()
            for method in METHODS if method in item]


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES[m.group(1)], path)


async def test_no_route_meilisearch_documents_answers_a_bare_not_found():
    routes = openapi_routes()
    assert len(routes) > 100  # the walk really walked the document
    async with running_proxy(nodes=2) as h:
        created = (await h.send("POST", "/indexes/movies/documents", [{"id": 1}]))[1]
        await h.wait_task(created["taskUid"])
        unanswered = []
        for method, path in routes:
            body = None if method in ("GET", "DELETE") else {}
            status, answer, _ = await h.send(method, concrete(path), body)
            code = (answer or {}).get("code") if isinstance(answer, dict) else None
            if (status == 404 and code == "not_found") or status in (405, 500, 501):
                unanswered.append(f"{method} {path} -> {status} {code}")
        assert unanswered == [], "\n".join(unanswered)
