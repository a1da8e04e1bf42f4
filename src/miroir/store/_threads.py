"""Running a blocking store client off the trio event loop.

sqlite3 and redis-py's sync client block; redis-py's asyncio client does not run on trio. Each
store therefore owns one `trio.CapacityLimiter` and runs every call in `trio.to_thread.run_sync`
under it, so a slow backend can tie up at most `limit` worker threads and never the event loop.
A cancelled caller waits for its thread to finish (trio's default): a write is never left
half-observed by the task that issued it.

The per-call cost of this hop is measured in benchmarks/bench_store.py (docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import trio

from miroir.store.base import StoreError

T = TypeVar("T")


class ThreadRunner:
    """Runs blocking calls in worker threads; the backend's own exceptions become StoreError."""

    def __init__(self, limit: int, backend_errors: tuple[type[Exception], ...], label: str) -> None:
        if limit < 1:
            raise ValueError("the store needs at least one worker thread")
        self.limiter = trio.CapacityLimiter(limit)
        self._backend_errors = backend_errors
        self._label = label

    async def run(self, fn: Callable[..., T], *args: object) -> T:
        try:
            return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)
        except self._backend_errors as exc:
            raise StoreError(f"{self._label}: {exc}") from exc
