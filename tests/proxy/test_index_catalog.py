"""The index catalog across proxy processes: two apps over one store and the same devnodes.

Each app is what one proxy process (a hypercorn worker, another machine) holds: its own
`Cluster` and catalog. What one changes, the other must stop believing within the catalog's
check interval (about a second; the tests run under trio's MockClock, so waiting costs nothing).
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from miroir.cluster.catalog import CHECK_INTERVAL_S
from tests.proxy.harness import running_proxies


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


async def ok_task(harness, call) -> dict:
    status, body, _ = await call
    assert status == 202, body
    task = await harness.wait_task(body["taskUid"])
    assert task["status"] == "succeeded", task
    return task


async def test_an_index_recreated_with_another_key_by_one_proxy_is_routed_by_it_on_the_other(
    autojump_clock,
):
    async with running_proxies(2, shards=16) as (a, b):
        await ok_task(a, a.send("POST", "/indexes", {"uid": "items", "primaryKey": "id"}))
        await ok_task(a, a.send("POST", "/indexes/items/documents", [{"id": 1, "sku": "x1"}]))
        # Proxy B deletes the index and creates it again, keyed by `sku`.
        await ok_task(b, b.send("DELETE", "/indexes/items"))
        await ok_task(b, b.send("POST", "/indexes", {"uid": "items", "primaryKey": "sku"}))
        await trio.sleep(CHECK_INTERVAL_S * 1.1)
        # Proxy A must route by `sku` now: the documents land on the shard of their sku.
        documents = [{"sku": f"s{i}", "id": i} for i in range(40)]
        await ok_task(a, a.send("POST", "/indexes/items/documents", documents))
        for proxy in (a, b):
            for doc in documents:
                status, body, _ = await proxy.send("GET", f"/indexes/items/documents/{doc['sku']}")
                assert (status, body) == (200, doc)
            status, body, _ = await proxy.send("GET", "/indexes/items/documents?limit=100")
            assert status == 200 and body["total"] == 40


async def test_settings_changed_through_one_proxy_reach_the_others_searches(autojump_clock):
    async with running_proxies(2) as (a, b):
        docs = [{"id": i, "genre": "drama" if i % 2 else "comedy", "title": "film"}
                for i in range(10)]
        await ok_task(a, a.send("POST", "/indexes/films/documents", docs))
        status, body, _ = await a.send("POST", "/indexes/films/search", {"q": "film"})
        assert status == 200 and body["estimatedTotalHits"] == 10  # A now knows the settings
        await ok_task(b, b.send("PATCH", "/indexes/films/settings",
                                {"distinctAttribute": "genre", "filterableAttributes": ["genre"]}))
        await trio.sleep(CHECK_INTERVAL_S * 1.1)
        status, body, _ = await a.send("POST", "/indexes/films/search", {"q": "film"})
        assert status == 200
        assert sorted(hit["genre"] for hit in body["hits"]) == ["comedy", "drama"]


async def test_a_deleted_index_leaves_nothing_behind_in_the_proxy_that_deleted_it():
    # Settings and sortability used to survive a delete in the proxy that made it: a recreated
    # index with other settings was merged with the old ones until a cache ran out.
    async with running_proxies(1) as (a,):
        docs = [{"id": i, "genre": "drama", "title": "film"} for i in range(6)]
        await ok_task(a, a.send("POST", "/indexes/films/documents", docs))
        await ok_task(a, a.send("PATCH", "/indexes/films/settings", {"distinctAttribute": "genre"}))
        status, body, _ = await a.send("POST", "/indexes/films/search", {"q": "film"})
        assert len(body["hits"]) == 1  # distinct: one per genre
        await ok_task(a, a.send("DELETE", "/indexes/films"))
        await ok_task(a, a.send("POST", "/indexes/films/documents", docs))
        status, body, _ = await a.send("POST", "/indexes/films/search", {"q": "film"})
        assert status == 200 and len(body["hits"]) == 6
