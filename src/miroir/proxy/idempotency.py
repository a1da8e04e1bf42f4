"""The `Idempotency-Key` request header on write routes.

`idempotent` wraps a write handler: without the header it only calls the handler; with it,
`miroir.cluster.idempotency` decides (see that module for the rule) between running the write
once under the key, answering with the task the key already names (202, the same `taskUid`,
header `Idempotent-Replayed: true`, nothing written), and 409 `miroir_idempotency_key_reused`.
Settings come from the config's `idempotency` section. Must never hold the rule itself.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from quart import Response, request

from miroir.cluster import idempotency
from miroir.core.tasks import render_task_summary
from miroir.proxy import bodies
from miroir.proxy.errors import json_response
from miroir.proxy.replies import DEGRADED_HEADER
from miroir.proxy.state import cluster, proxy_state

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"

Handler = Callable[..., Awaitable[Response]]


def settings() -> idempotency.IdempotencySettings:
    config = proxy_state().config
    return idempotency.IdempotencySettings(
        ttl_ms=config.idempotency.ttl_seconds * 1000,
        max_keys=config.idempotency.max_cached_keys,
        wait_s=2 * config.scatter.node_timeout_ms / 1000,
    )


def idempotent(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapper(*args: Any, **kwargs: Any) -> Response:
        key = request.headers.get(HEADER)
        if key is None:
            return await handler(*args, **kwargs)
        idempotency.check_key(key)
        body = await bodies.read_body()
        fingerprint = idempotency.request_fingerprint(
            request.method, request.path, request.query_string,
            request.headers.get("content-type"), body,
        )
        wanted = settings()
        outcome = await idempotency.claim_or_replay(cluster(), key, fingerprint, wanted)
        if isinstance(outcome, idempotency.Replay):
            return _replayed(outcome.task)
        accepted_uid: int | None = None
        try:
            with idempotency.reserving(outcome):
                response = await handler(*args, **kwargs)
            accepted_uid = await _accepted_task_uid(response)
        finally:
            await idempotency.settle(cluster(), outcome, fingerprint, accepted_uid, wanted)
        return response

    return wrapper


async def _accepted_task_uid(response: Response) -> int | None:
    if response.status_code != 202:
        return None
    try:
        uid = orjson.loads(await response.get_data()).get("taskUid")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return uid if isinstance(uid, int) else None


def _replayed(task) -> Response:
    response = json_response({**render_task_summary(task), "status": "enqueued"}, 202)
    response.headers[REPLAYED_HEADER] = "true"
    if task.missed_quorum:
        response.headers[DEGRADED_HEADER] = ",".join(f"{g}/{s}" for g, s in task.missed_quorum)
    return response
