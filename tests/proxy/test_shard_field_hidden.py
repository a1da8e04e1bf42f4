"""Refusals that list filterable attributes never show Miroir's `_miroir_shard`."""

import pytest

from tests.proxy.harness import running_proxy


@pytest.mark.parametrize(
    "query",
    [{"q": "", "facets": ["genre"]}, {"q": "", "filter": "genre = rock"}],
    ids=["facets", "filter"],
)
async def test_a_search_on_a_non_filterable_attribute_reads_as_on_meilisearch(query):
    async with running_proxy() as proxy:
        _, summary, _ = await proxy.send(
            "POST", "/indexes/songs/documents", [{"id": 1, "genre": "rock"}]
        )
        assert (await proxy.wait_task(summary["taskUid"]))["status"] == "succeeded"
        status, body, _ = await proxy.send("POST", "/indexes/songs/search", query)
        assert status == 400
        assert "_miroir" not in body["message"]
        assert "This index does not have configured filterable attributes." in body["message"]


async def test_a_facet_search_on_a_non_filterable_attribute_does_not_name_the_shard_field():
    async with running_proxy() as proxy:
        _, summary, _ = await proxy.send("POST", "/indexes/songs/documents", [{"id": 1, "genre": "rock"}])
        await proxy.wait_task(summary["taskUid"])
        status, body, _ = await proxy.send(
            "POST", "/indexes/songs/facet-search", {"facetName": "genre", "facetQuery": "r"}
        )
        assert status == 400
        assert "_miroir" not in body["message"]
        assert "does not have configured facet-searchable attributes" in body["message"]


async def test_a_failed_delete_by_filter_task_does_not_name_the_shard_field():
    async with running_proxy() as proxy:
        _, summary, _ = await proxy.send("POST", "/indexes/songs/documents", [{"id": 1, "genre": "rock"}])
        await proxy.wait_task(summary["taskUid"])
        status, summary, _ = await proxy.send(
            "POST", "/indexes/songs/documents/delete", {"filter": "genre = rock"}
        )
        assert status == 202
        task = await proxy.wait_task(summary["taskUid"])
        assert task["status"] == "failed"
        assert "_miroir" not in task["error"]["message"]
