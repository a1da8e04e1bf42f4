"""A served devnode answers `/health` while a search is still computing.

The search is held inside the engine (a stand-in `run_search` that waits for a signal) until
`/health` has been answered, so the test states an order, not a speed: were searches run on the
event loop, the held search would block the loop, `/health` could not be answered, and the
stand-in would give up waiting and fail the search.
"""

from __future__ import annotations

import threading

import httpx
import trio

from miroir.devnode import search_routes
from miroir.devnode.serve import serve_devnode

JSON_TYPE = {"Content-Type": "application/json"}


async def test_health_is_answered_before_a_running_search_completes(monkeypatch) -> None:
    started, release = threading.Event(), threading.Event()
    real_search = search_routes.run_search

    def held_search(searcher, request):
        started.set()
        if not release.wait(timeout=20):
            raise AssertionError("/health was not answered while the search ran")
        return real_search(searcher, request)

    order: list[str] = []
    async with serve_devnode() as node, httpx.AsyncClient(base_url=node.url) as client:
        created = await client.post(
            "/indexes/movies/documents?primaryKey=id",
            content=b'[{"id": 1, "title": "dark knight"}]',
            headers=JSON_TYPE,
        )
        uid = created.json()["taskUid"]
        while (await client.get(f"/tasks/{uid}")).json()["status"] != "succeeded":
            await trio.sleep(0.005)
        monkeypatch.setattr(search_routes, "run_search", held_search)

        async def search() -> None:
            response = await client.post(
                "/indexes/movies/search", content=b'{"q": "dark"}', headers=JSON_TYPE,
                timeout=30,
            )
            order.append(f"search {response.status_code} {len(response.json()['hits'])}")

        async def health() -> None:
            await trio.to_thread.run_sync(started.wait)  # the search is inside the engine
            response = await client.get("/health", timeout=30)
            order.append(f"health {response.status_code}")
            release.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(search)
            nursery.start_soon(health)
    assert order == ["health 200", "search 200 1"]


async def test_a_task_is_applied_between_searches_not_during_one(monkeypatch) -> None:
    """While a search runs off the loop, the task worker waits: the index it reads is whole."""
    started, release = threading.Event(), threading.Event()
    real_search = search_routes.run_search
    seen: list[int] = []

    def held_search(searcher, request):
        started.set()
        release.wait(timeout=20)
        seen.append(len(searcher.documents))  # still the documents of before the write
        return real_search(searcher, request)

    async with serve_devnode() as node, httpx.AsyncClient(base_url=node.url) as client:
        created = await client.post(
            "/indexes/movies/documents?primaryKey=id",
            content=b'[{"id": 1, "title": "dark knight"}]',
            headers=JSON_TYPE,
        )
        uid = created.json()["taskUid"]
        while (await client.get(f"/tasks/{uid}")).json()["status"] != "succeeded":
            await trio.sleep(0.005)
        monkeypatch.setattr(search_routes, "run_search", held_search)
        statuses: list[str] = []

        async def search() -> None:
            await client.post("/indexes/movies/search", content=b"{}", headers=JSON_TYPE,
                              timeout=30)

        async def write() -> None:
            await trio.to_thread.run_sync(started.wait)
            added = await client.post(
                "/indexes/movies/documents", content=b'[{"id": 2, "title": "robin"}]',
                headers=JSON_TYPE,
            )
            task = added.json()["taskUid"]
            for _ in range(20):  # the worker gets every chance to run while the search is held
                await trio.sleep(0.005)
            statuses.append((await client.get(f"/tasks/{task}")).json()["status"])
            release.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(search)
            nursery.start_soon(write)
    assert seen == [1]
    assert statuses[0] in ("enqueued", "processing")
