"""Answers every write route shares: the 202 task summary and the degraded-write header.

`X-Miroir-Degraded` lists the (group, shard) pairs that missed write quorum as
`group/shard` items separated by commas, e.g. `0/3,0/17`. When a shard reached quorum in no
group at all the answer is 503 `miroir_no_quorum` instead (the task is still recorded; its uid
is in the message).
"""

from __future__ import annotations

from quart import Response

from miroir.cluster.writes import WriteOutcome
from miroir.core.errors import MeiliError
from miroir.core.tasks import Task, render_task_summary
from miroir.meili.extensions import DEGRADED_HEADER
from miroir.proxy.errors import error_response, json_response
from miroir.proxy.state import proxy_state


def task_accepted(task: Task, status: int = 202) -> Response:
    """The summarized task. Its status is always `enqueued`, as Meilisearch's always is, even
    when Miroir already carried the task out (index creation, settings): clients read the real
    status from GET /tasks/{uid}."""
    proxy_state().metrics.tasks_total.labels(task.type).inc()
    return json_response({**render_task_summary(task), "status": "enqueued"}, status)


def write_accepted(outcome: WriteOutcome) -> Response:
    metrics = proxy_state().metrics
    metrics.scatter_fan_out_size.observe(len(outcome.task.node_tasks))
    if outcome.degraded:
        metrics.degraded_shards_total.inc(len(outcome.degraded))
    if outcome.lost_shards:
        metrics.tasks_total.labels(outcome.task.type).inc()
        shards = ", ".join(str(s) for s in outcome.lost_shards[:10])
        return error_response(
            MeiliError(
                "miroir_no_quorum",
                f"No replica group acknowledged the write for shard(s) {shards}; "
                f"see task {outcome.task.uid}.",
            )
        )
    response = task_accepted(outcome.task)
    if outcome.degraded:
        response.headers[DEGRADED_HEADER] = ",".join(f"{g}/{s}" for g, s in outcome.degraded)
    return response
