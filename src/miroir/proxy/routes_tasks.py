"""Task routes: GET /tasks, GET /tasks/{uid}, POST /tasks/cancel, DELETE /tasks.

Task uids are Miroir's (from the store); each Miroir task remembers its node tasks. A read
refreshes the unfinished tasks it shows from the nodes before rendering, so a client polling
one task never waits for the background poller.
"""

from __future__ import annotations

from quart import Blueprint, Response, request

from miroir.cluster import tasks as cluster_tasks
from miroir.core.errors import MeiliError
from miroir.core.tasks import last_values, parse_task_query, render_task, render_task_page
from miroir.proxy.errors import json_response
from miroir.proxy.replies import task_accepted
from miroir.proxy.state import cluster

blueprint = Blueprint("tasks", __name__)


def _params() -> dict[str, str]:
    # A repeated parameter counts once, with its last value, as in Meilisearch (and the devnode).
    return last_values(request.args.items(multi=True))


@blueprint.get("/tasks")
async def list_tasks() -> Response:
    query = parse_task_query(_params())
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
    if task is None:
        raise MeiliError("task_not_found", f"Task `{int(text)}` not found.")
    return json_response(render_task(task))


def _original_filter() -> str:
    return "?" + request.query_string.decode("latin-1")


@blueprint.post("/tasks/cancel")
async def cancel_tasks() -> Response:
    query = parse_task_query(_params(), operation="cancel")
    task = await cluster_tasks.cancel_tasks(cluster(), query, _original_filter())
    return task_accepted(task, 200)


@blueprint.delete("/tasks")
async def delete_tasks() -> Response:
    query = parse_task_query(_params(), operation="delete")
    task = await cluster_tasks.delete_tasks(cluster(), query, _original_filter())
    return task_accepted(task, 200)
