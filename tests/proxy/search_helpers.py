"""Shared by the search proxy tests: a proxy over devnodes beside one reference devnode that
holds the whole corpus (the single-node answer the merged answer must equal)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
import trio

from miroir.devnode.app import DevnodeApp
from tests.proxy.harness import AsgiTransport, Harness, running_proxy


class Reference:
    """One devnode with every document: what one big Meilisearch would answer."""

    def __init__(self, app: DevnodeApp) -> None:
        self.transport = AsgiTransport({"ref": app})

    async def send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else orjson.dumps(body)
        headers = [("content-type", "application/json")] if payload is not None else []
        response = await self.transport.request(
            "ref", method, path, body=payload, headers=headers, deadline=trio.current_time() + 10
        )
        return response.status, orjson.loads(response.body) if response.body else None

    async def wait_task(self, uid: int) -> dict[str, Any]:
        with trio.fail_after(10):
            while True:
                _, task = await self.send("GET", f"/tasks/{uid}")
                if task["status"] in ("succeeded", "failed", "canceled"):
                    return task
                await trio.sleep(0.005)


@asynccontextmanager
async def proxy_and_reference(**kwargs: Any) -> AsyncIterator[tuple[Harness, Reference]]:
    async with running_proxy(**kwargs) as h:
        app = DevnodeApp()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app.run_task_worker)
            yield h, Reference(app)
            nursery.cancel_scope.cancel()


async def write_both(h: Harness, ref: Reference, method: str, path: str, body: Any) -> None:
    """Apply one write through Miroir and to the reference, and wait for both to succeed."""
    status, answer, _ = await h.send(method, path, body)
    assert status == 202, answer
    assert (await h.wait_task(answer["taskUid"]))["status"] == "succeeded"
    status, answer = await ref.send(method, path, body)
    assert status == 202, answer
    assert (await ref.wait_task(answer["taskUid"]))["status"] == "succeeded"
