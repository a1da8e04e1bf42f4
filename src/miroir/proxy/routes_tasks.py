"""Task routes: GET /tasks, GET /tasks/{uid}, POST /tasks/cancel, DELETE /tasks.

Task uids are Miroir's (from the store); each Miroir task remembers its node tasks. A read
refreshes the unfinished tasks it shows from the nodes before rendering, so a client polling
one task never waits for the background poller.
"""

from __future__ import annotations

import attrs
from quart import Blueprint, Response, request

from miroir.cluster import tasks as cluster_tasks
from miroir.cluster.stats import all_index_uids
from miroir.core.errors import MeiliError
from miroir.core.tasks import (
    TaskQuery,
    last_values,
    parse_task_query,
    render_task,
    render_task_page,
)
from miroir.proxy.auth import request_access
from miroir.proxy.errors import json_response
from miroir.proxy.idempotency import idempotent
from miroir.proxy.refused_routes import refusal_for
from miroir.proxy.replies import task_accepted
from miroir.proxy.state import cluster

blueprint = Blueprint("tasks", __name__)


def _params() -> dict[str, str]:
    # A repeated parameter counts once, with its last value, as in Meilisearch (and the devnode).
    return last_values(request.args.items(multi=True))


async def _visible(query: TaskQuery) -> TaskQuery:
    """`query` narrowed to the tasks of the indexes the request's key may see.

    Exact patterns name their index; a `prefix*` pattern covers the indexes that exist now (a
    task of a deleted index under a prefix pattern is not shown: less, never more). A key
    limited to some indexes sees no index-less task, as in Meilisearch."""
    access = request_access(request)
    if access.all_indexes():
        return query
    patterns = [pattern for pattern in (access.key.indexes if access.key else ())]
    visible = {pattern for pattern in patterns if not pattern.endswith("*")}
    if any(pattern.endswith("*") for pattern in patterns):
        visible.update(await all_index_uids(cluster()))
    allowed = frozenset(uid for uid in visible if access.index_allowed(uid))
    if query.index_uids is not None:
        allowed = allowed & query.index_uids
    return attrs.evolve(query, index_uids=allowed)


@blueprint.get("/tasks")
async def list_tasks() -> Response:
    query = await _visible(parse_task_query(_params()))
    the_cluster = cluster()
    page = await the_cluster.store.list_tasks(query)
    unfinished = [task.uid for task in page.results if not task.is_finished]
    if unfinished:
        # One after another (each refresh already asks its nodes at once): at most `limit`
        # tasks, and a store failure surfaces as itself rather than inside an exception group.
        for uid in unfinished:
            await cluster_tasks.refresh_task(the_cluster, uid)
        page = await the_cluster.store.list_tasks(query)
    return json_response(render_task_page(page))


@blueprint.get("/tasks/stream")
@blueprint.get("/batches/stream")
async def refused_streams() -> Response:
    # Named here because `/tasks/<uid>` and `/batches/<uid>` would otherwise take them.
    refusal = refusal_for(request.method, request.path)
    assert refusal is not None
    raise refusal


@blueprint.get("/tasks/<task_uid>")
async def get_task(task_uid: str) -> Response:
    text = task_uid.strip()
    if not text.isascii() or not text.isdigit() or int(text) > 2**32 - 1:
        raise MeiliError(
            "invalid_task_uids",
            f"Invalid value in parameter `taskUid`: could not parse `{task_uid}` as a positive "
            "integer",
        )
    task = await cluster_tasks.refresh_task(cluster(), int(text))
    access = request_access(request)
    if task is not None and not access.all_indexes() and (
            task.index_uid is None or not access.index_allowed(task.index_uid)):
        task = None  # a task the key may not see is not found, as in Meilisearch
    if task is None:
        raise MeiliError("task_not_found", f"Task `{int(text)}` not found.")
    return json_response(render_task(task))


def _original_filter() -> str:
    return "?" + request.query_string.decode("latin-1")


@blueprint.post("/tasks/cancel")
@idempotent
async def cancel_tasks() -> Response:
    query = await _visible(parse_task_query(_params(), operation="cancel"))
    task = await cluster_tasks.cancel_tasks(cluster(), query, _original_filter())
    return task_accepted(task, 200)


@blueprint.delete("/tasks")
@idempotent
async def delete_tasks() -> Response:
    query = await _visible(parse_task_query(_params(), operation="delete"))
    task = await cluster_tasks.delete_tasks(cluster(), query, _original_filter())
    return task_accepted(task, 200)


# Batches. Meilisearch groups the tasks it runs together into batches; Miroir's tasks are never
# batched (their `batchUid` is null), so the list is always empty and no batch exists. The query
# is still checked as Meilisearch checks it (the same TasksFilterQuery as GET /tasks).


@blueprint.get("/batches")
async def list_batches() -> Response:
    query = parse_task_query(_params())
    return json_response({"results": [], "total": 0, "limit": query.limit, "from": None,
                          "next": None})


@blueprint.get("/batches/<batch_uid>")
async def get_batch(batch_uid: str) -> Response:
    if not batch_uid.isascii() or not batch_uid.isdigit() or int(batch_uid) > 2**32 - 1:
        raise MeiliError(
            "invalid_batch_uids",
            f"Batch uid `{batch_uid}` is invalid. It should only contain numeric characters.",
        )
    raise MeiliError("batch_not_found", f"Batch `{int(batch_uid)}` not found.")
