"""Search through a real `miroir serve` and real node processes, with the official SDK.

Shared cluster (3 nodes, RG=1, RF=1, 16 shards): unique keywords find exactly their document,
facet counts add up, pages concatenate, synonyms reach every node and are used, a finished task
leaves every document searchable, and the documents listing pages through the global order.
Own clusters (RG=1, RF=2): a killed node changes nothing a client can see, and once it is back
(and re-filled, since a devnode keeps its data in memory) searches are routed to it again.
"""

from __future__ import annotations

import re
import string
import time

import httpx
import pytest

from .conftest import ADMIN_KEY, MASTER_KEY, node_sdk, sdk, wait

pytestmark = pytest.mark.acceptance

GENRES = ("drama", "comedy", "action", "horror", "western")
DEGRADED = "X-Miroir-Degraded"


def keyword(i: int) -> str:
    """A unique word per document: fixed length 4 (no typo allowed below 5 letters), so no
    keyword is a prefix of or a typo away from another."""
    letters = string.ascii_lowercase
    return "zz" + letters[i // 26 % 26] + letters[i % 26]


def hundred_documents() -> list[dict]:
    return [
        {"id": i, "title": f"movie number {i}", "tag": keyword(i), "genre": GENRES[i % 5],
         "rank": (i * 37) % 100}
        for i in range(100)
    ]


@pytest.fixture(scope="module")
def films(cluster):
    client = sdk(cluster)
    assert wait(client, client.create_index("films", {"primaryKey": "id"})).status == "succeeded"
    index = client.index("films")
    task = wait(client, index.update_settings({
        "filterableAttributes": ["genre"], "sortableAttributes": ["rank"],
        "searchableAttributes": ["title", "tag"],
    }))
    assert task.status == "succeeded", task.error
    docs = hundred_documents()
    assert wait(client, index.add_documents(docs)).status == "succeeded"
    return docs


def test_a_unique_keyword_finds_exactly_its_document(cluster, films):
    index = sdk(cluster).index("films")
    for doc in films:
        answer = index.search(doc["tag"])
        assert [hit["id"] for hit in answer["hits"]] == [doc["id"]], doc["tag"]
        assert answer["estimatedTotalHits"] == 1


def test_facet_counts_over_100_documents_sum_to_100(cluster, films):
    answer = sdk(cluster).index("films").search("", {"facets": ["genre"], "limit": 0})
    distribution = answer["facetDistribution"]["genre"]
    assert distribution == {genre: 20 for genre in GENRES}
    assert sum(distribution.values()) == 100
    facet = sdk(cluster).index("films").facet_search("genre", "dra")
    assert facet["facetHits"] == [{"value": "drama", "count": 20}]


@pytest.mark.parametrize("options", [{}, {"sort": ["rank:desc"]}, {"filter": "genre != drama"}])
def test_five_pages_of_ten_concatenate_to_the_limit_50_answer(cluster, films, options):
    index = sdk(cluster).index("films")
    whole = index.search("movie", {**options, "limit": 50})["hits"]
    pages = []
    for page in range(5):
        pages.extend(index.search("movie", {**options, "limit": 10, "offset": 10 * page})["hits"])
    ids = [hit["id"] for hit in pages]
    assert ids == [hit["id"] for hit in whole]
    assert len(set(ids)) == len(ids) == 50
    paged = []
    for page in range(1, 6):
        paged.extend(index.search("movie", {**options, "hitsPerPage": 10, "page": page})["hits"])
    assert [hit["id"] for hit in paged] == ids
    if "sort" in options:
        assert [hit["rank"] for hit in pages] == sorted((d["rank"] for d in films), reverse=True)[:50]


def test_a_synonyms_update_reaches_every_node_and_is_used_by_search(cluster, films):
    client = sdk(cluster)
    index = client.index("films")
    assert index.search("flick")["hits"] == []
    assert wait(client, index.update_synonyms({"flick": ["movie"]})).status == "succeeded"
    for node in cluster.config.nodes:
        assert node_sdk(cluster, node.id).index("films").get_synonyms() == {"flick": ["movie"]}
    answer = index.search("flick", {"limit": 100})
    assert sorted(hit["id"] for hit in answer["hits"]) == list(range(100))
    assert wait(client, index.reset_synonyms()).status == "succeeded"


def test_a_task_polled_until_it_succeeds_leaves_every_document_searchable(cluster):
    client = sdk(cluster)
    index = client.index("fresh")
    docs = [{"id": f"doc-{i}", "body": f"fresh document {keyword(i + 200)}"} for i in range(300)]
    task = index.add_documents(docs, primary_key="id")
    assert wait(client, task).status == "succeeded"
    answer = index.search("", {"limit": 1000})
    assert sorted(hit["id"] for hit in answer["hits"]) == sorted(d["id"] for d in docs)
    assert answer["estimatedTotalHits"] == 300
    for doc in docs[::25]:
        hits = index.search(doc["body"].split()[-1])["hits"]
        assert [hit["id"] for hit in hits] == [doc["id"]]


def test_documents_listing_pages_through_the_primary_key_order(cluster, films):
    index = sdk(cluster).index("films")
    seen = []
    for offset in range(0, 100, 30):
        page = index.get_documents({"offset": offset, "limit": 30})
        assert page.total == 100
        seen.extend(doc.id for doc in page.results)
    assert seen == list(range(100))
    dramas = index.get_documents({"filter": "genre = drama", "limit": 5, "fields": ["id"]})
    assert dramas.total == 20 and [d.id for d in dramas.results] == [0, 5, 10, 15, 20]


def test_multi_search_through_the_sdk(cluster, films):
    client = sdk(cluster)
    answer = client.multi_search([
        {"indexUid": "films", "q": keyword(7)},
        {"indexUid": "films", "q": "movie", "limit": 3, "sort": ["rank:asc"]},
    ])
    first, second = answer["results"]
    assert [hit["id"] for hit in first["hits"]] == [7]
    assert [hit["rank"] for hit in second["hits"]] == [0, 1, 2]
    federated = client.multi_search(
        [{"indexUid": "films", "q": keyword(3)}, {"indexUid": "films", "q": keyword(4)}],
        federation={"limit": 5},
    )
    assert sorted(hit["id"] for hit in federated["hits"]) == [3, 4]


# ---- a node killed for real -----------------------------------------------------------------


def raw_search(cluster, body: dict) -> httpx.Response:
    return httpx.post(f"{cluster.url}/indexes/items/search", json=body,
                      headers={"Authorization": f"Bearer {MASTER_KEY}"}, timeout=30)


def calls_to(cluster, node_id: str) -> float:
    metrics = httpx.get(f"{cluster.url}/_miroir/metrics",
                        headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30).text
    pattern = rf'^miroir_node_request_duration_seconds_count\{{node="{node_id}"\}} (\S+)$'
    match = re.search(pattern, metrics, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def node_state(cluster, node_id: str) -> str:
    topology = sdk(cluster, ADMIN_KEY).http.get("_miroir/topology")
    return next(n["state"] for n in topology["nodes"] if n["id"] == node_id)


def wait_for_state(cluster, node_id: str, wanted: str, patience: float = 15.0) -> None:
    give_up = time.monotonic() + patience
    while (state := node_state(cluster, node_id)) != wanted:
        assert time.monotonic() < give_up, f"{node_id} stayed {state!r}, expected {wanted!r}"
        time.sleep(0.05)


def test_rf2_with_a_node_killed_every_search_is_complete_and_routing_resumes(launch):
    cluster = launch(nodes=3, groups=1, rf=2, shards=16)
    client = sdk(cluster)
    index = client.index("items")
    docs = [{"id": i, "word": keyword(i), "kind": GENRES[i % 5]} for i in range(120)]
    assert wait(client, index.add_documents(docs, primary_key="id")).status == "succeeded"
    assert wait(client, index.update_filterable_attributes(["kind"])).status == "succeeded"
    wait_for_state(cluster, "node-1", "healthy")

    def every_search_is_complete() -> None:
        for turn in range(6):  # every rotation of the replicas, twice
            answer = raw_search(cluster, {"q": "", "limit": 200, "facets": ["kind"]})
            assert answer.status_code == 200, answer.text
            assert DEGRADED not in answer.headers
            body = answer.json()
            assert sorted(hit["id"] for hit in body["hits"]) == list(range(120)), turn
            assert sum(body["facetDistribution"]["kind"].values()) == 120
        for doc in docs[::17]:
            assert [h["id"] for h in index.search(doc["word"])["hits"]] == [doc["id"]]

    every_search_is_complete()
    cluster.node("node-1").kill()
    every_search_is_complete()  # before and after the health checker notices
    wait_for_state(cluster, "node-1", "failed")
    every_search_is_complete()
    before = calls_to(cluster, "node-1")
    every_search_is_complete()
    assert calls_to(cluster, "node-1") == before, "a failed node was still asked"

    cluster.node("node-1").restart()
    wait_for_state(cluster, "node-1", "healthy")
    # A devnode restarts empty (a Meilisearch node would keep its data): write the documents and
    # the settings again, which reach the returned node like any owner.
    assert wait(client, index.add_documents(docs)).status == "succeeded"
    assert wait(client, index.update_filterable_attributes(["kind"])).status == "succeeded"
    before = calls_to(cluster, "node-1")
    every_search_is_complete()
    assert calls_to(cluster, "node-1") > before, "searches were not routed to the returned node"
