"""The devnode's document writes take Meilisearch's `customMetadata` (every write route) and
`skipCreation` (additions), as the single-node reference Miroir is held to."""

from __future__ import annotations

import orjson

from miroir.devnode.app import DevnodeApp
from miroir.devnode.router import Request

JSON = "application/json"


def call(app: DevnodeApp, method: str, path: str, query: str = "", body=None):
    raw = b"" if body is None else orjson.dumps(body)
    response = app.router.dispatch(
        Request(method, path, query, JSON if body is not None else None, raw))
    return response.status, response.body


def run_tasks(app: DevnodeApp) -> None:
    app.engine.process()


def test_every_document_write_keeps_custom_metadata_and_delete_routes_take_nothing_else():
    app = DevnodeApp()
    writes = [
        ("POST", "/indexes/m/documents", [{"id": 1}, {"id": 2}, {"id": 3}]),
        ("DELETE", "/indexes/m/documents/1", None),
        ("POST", "/indexes/m/documents/delete-batch", [2]),
        ("DELETE", "/indexes/m/documents", None),
    ]
    for number, (method, path, body) in enumerate(writes):
        status, summary = call(app, method, path, f"customMetadata=w{number}", body)
        assert status == 202 and summary["customMetadata"] == f"w{number}"
        run_tasks(app)
        assert app.engine.tasks[summary["taskUid"]].view()["customMetadata"] == f"w{number}"
        if method == "DELETE" or "delete" in path:
            status, error = call(app, method, path, "other=1", body)
            assert status == 400 and error["code"] == "bad_request"


def test_skip_creation_updates_only_existing_documents():
    app = DevnodeApp()
    call(app, "POST", "/indexes/m/documents", "", [{"id": 1, "n": 0}])
    run_tasks(app)
    status, summary = call(app, "PUT", "/indexes/m/documents", "skipCreation=True",
                           [{"id": 1, "n": 1}, {"id": 2, "n": 1}])
    assert status == 202
    run_tasks(app)
    task = app.engine.tasks[summary["taskUid"]].view()
    assert task["status"] == "succeeded" and task["details"]["indexedDocuments"] == 1
    assert app.engine.indexes["m"].documents == {"1": {"id": 1, "n": 1}}
    status, error = call(app, "PUT", "/indexes/m/documents", "skipCreation=maybe", [{"id": 3}])
    assert (status, error["code"]) == (400, "invalid_skip_creation")
