"""The devnode's ASGI app: HTTP in, `Router.dispatch` in the middle, JSON out.

Owns the HTTP edge of a devnode: reading the body under the payload limit, master-key auth
(constant-time compare, key never logged), rendering responses with orjson, and the background
trio task that applies enqueued tasks soon after they arrive, so clients see Meilisearch's
202 enqueued -> processing -> succeeded/failed. The request path is kept lean (it sits behind
every benchmark): headers are pre-built, nothing per request that can be hoisted. It never
decides what a route means (the router does) and never applies a task outside its worker.

With `searches_off_loop` (a served devnode: `serve.py`), searches run in a worker thread, one at
a time, so `/health` and every other request are answered while a long search computes (no
head-of-line blocking behind CPU-bound work). The task worker applies a task only between
searches (`_engine_lock`), so a search never sees an index half-changed; other routes only read
or enqueue. In-process apps (tests, proxy harness) keep dispatching on the loop: their callers
rely on one trio scheduling order, and the simulator drives the router directly.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
import trio

from miroir.core.errors import MeiliError
from miroir.devnode.engine import Engine
from miroir.devnode.router import Request, Response, Router, error_response
from miroir.meili.auth import PUBLIC_PATHS, check_bearer

DEFAULT_PAYLOAD_LIMIT = 100_000_000  # Meilisearch's default --http-payload-size-limit, 100 MB
_JSON_HEADER = (b"content-type", b"application/json")


def _size_text(limit: int) -> str:
    if limit % 1_000_000 == 0:
        return f"{limit // 1_000_000} MB"
    return f"{limit} B"


class DevnodeApp:
    """`await app(scope, receive, send)`; run `run_task_worker()` (lifespan does it) to apply tasks."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        master_key: str | None = None,
        payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
        now: Callable[[], datetime] | None = None,
        searches_off_loop: bool = False,
    ) -> None:
        self.engine = engine if engine is not None else Engine(now)
        self.router = Router(self.engine)
        self._master_key = master_key.encode() if master_key else None
        self.payload_limit = payload_limit
        self._too_large = MeiliError(
            "payload_too_large",
            "The provided payload reached the size limit. The maximum accepted payload size is "
            f"{_size_text(payload_limit)}.",
        )
        self._wakeup = trio.Event()
        self._worker_running = False
        self.searches_off_loop = searches_off_loop
        self._engine_lock = trio.Lock()  # held by the search thread, or by a task being applied

    # ------------------------------------------------------------------------------- ASGI

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        async with trio.open_nursery() as nursery:
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.start_task_worker(nursery)
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    nursery.cancel_scope.cancel()
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _http(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        path = scope["path"]
        content_type = None
        authorization = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value
        response = self._authorize(path, authorization)
        if response is None:
            body = await self._read_body(receive)
            if body is None:
                response = error_response(self._too_large)
            else:
                request = Request(
                    scope["method"],
                    path,
                    scope["query_string"].decode("latin-1"),
                    content_type,
                    body,
                )
                if self.searches_off_loop and _is_search(request.method, path):
                    async with self._engine_lock:
                        response = await trio.to_thread.run_sync(self.router.dispatch, request)
                else:
                    response = self.router.dispatch(request)
                if response.enqueued:
                    self._wakeup.set()
        await _send(send, response)

    async def _read_body(self, receive: Any) -> bytes | None:
        """The whole body, or None once it passes the payload limit."""
        message = await receive()
        body = message.get("body", b"")
        if not message.get("more_body"):
            return body if len(body) <= self.payload_limit else None
        chunks = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.payload_limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _authorize(self, path: str, authorization: bytes | None) -> Response | None:
        if self._master_key is None:
            if path == "/keys" or path.startswith("/keys/"):
                return error_response(
                    MeiliError(
                        "missing_master_key",
                        "Meilisearch is running without a master key. To access this API endpoint, "
                        "you must have set a master key at launch.",
                    )
                )
            return None
        if path in PUBLIC_PATHS:
            return None
        try:
            check_bearer(authorization, self._master_key)
        except MeiliError as refused:
            return error_response(refused)
        return None

    # ------------------------------------------------------------------------ task worker

    def start_task_worker(self, nursery: trio.Nursery) -> None:
        """Start the one task worker in `nursery`, unless one is already running."""
        if not self._worker_running:
            self._worker_running = True  # set now, not when the task first runs: no second worker
            nursery.start_soon(self.run_task_worker)

    async def run_task_worker(self) -> None:
        """Apply enqueued tasks one at a time, yielding between start and finish of each."""
        self._worker_running = True
        try:
            while True:
                if self.engine.start_next_task() is None:
                    wakeup = self._wakeup = trio.Event()
                    await wakeup.wait()
                    continue
                await trio.sleep(0)  # a reader can now see the task `processing`
                if self.searches_off_loop:
                    async with self._engine_lock:
                        self.engine.finish_started_task()
                else:
                    self.engine.finish_started_task()
        finally:
            self._worker_running = False


def _is_search(method: str, path: str) -> bool:
    """The CPU-bound read routes: search, facet search and multi-search."""
    path = path.rstrip("/")
    if method == "POST":
        return (
            path.endswith(("/search", "/facet-search", "/similar"))
            or path.rstrip("/") == "/multi-search"
        )
    return method == "GET" and path.endswith(("/search", "/similar"))


async def _send(send: Any, response: Response) -> None:
    payload = orjson.dumps(response.body)
    headers = [_JSON_HEADER, (b"content-length", str(len(payload)).encode()), *response.headers]
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
