"""Search over real HTTP: the app's routes reach search_routes, GET and POST agree, and errors
come back in Meilisearch's envelope with the right status."""

from __future__ import annotations

import httpx
import trio

from miroir.devnode.serve import serve_devnode

DOCS = [
    {"id": 1, "title": "Batman Returns", "genre": "action", "year": 1992},
    {"id": 2, "title": "The Dark Knight", "genre": "action", "year": 2008},
    {"id": 3, "title": "Knight and Day", "genre": "comedy", "year": 2010},
]


async def _wait(client: httpx.AsyncClient, uid: int) -> None:
    while (await client.get(f"/tasks/{uid}")).json()["status"] in ("enqueued", "processing"):
        await trio.sleep(0.005)


async def test_search_routes_over_http() -> None:
    async with serve_devnode() as running:
        async with httpx.AsyncClient(base_url=running.url) as client:
            added = await client.post("/indexes/movies/documents?primaryKey=id", json=DOCS)
            settings = await client.patch(
                "/indexes/movies/settings",
                json={"filterableAttributes": ["genre", "year"], "sortableAttributes": ["year"]},
            )
            await _wait(client, added.json()["taskUid"])
            await _wait(client, settings.json()["taskUid"])

            posted = await client.post(
                "/indexes/movies/search",
                json={
                    "q": "knight",
                    "filter": "genre = action",
                    "facets": ["genre"],
                    "showRankingScore": True,
                },
            )
            assert posted.status_code == 200
            body = posted.json()
            assert [h["id"] for h in body["hits"]] == [2]
            assert body["facetDistribution"] == {"genre": {"action": 1}}
            assert 0 < body["hits"][0]["_rankingScore"] <= 1

            got = await client.get(
                "/indexes/movies/search", params={"q": "knight", "sort": "year:desc", "limit": "1"}
            )
            assert [h["id"] for h in got.json()["hits"]] == [3]

            bad = await client.post("/indexes/movies/search", json={"filter": "title = x"})
            assert bad.status_code == 400
            assert bad.json()["code"] == "invalid_search_filter"
            missing = await client.post("/indexes/nope/search", json={})
            assert missing.status_code == 404

            multi = await client.post(
                "/multi-search", json={"queries": [{"indexUid": "movies", "q": "batman"}]}
            )
            assert multi.json()["results"][0]["hits"][0]["id"] == 1
            facets = await client.post(
                "/indexes/movies/facet-search", json={"facetName": "genre", "facetQuery": "com"}
            )
            assert facets.json()["facetHits"] == [{"value": "comedy", "count": 1}]
