"""An index whose node-side name differs from its uid, driven through the official SDK against a
real `miroir serve` and real nodes: results are right, and no answer names the node-side index.

`library` is made an alias of the node-side index `library_node` (which then belongs to
`library` only), so every byte the proxy sends back is searched for `library_node`.
"""

from __future__ import annotations

import pytest
import requests
from meilisearch.errors import MeilisearchApiError

from .conftest import ADMIN_KEY, MASTER_KEY, node_sdk, sdk, wait

pytestmark = pytest.mark.acceptance

NODE_SIDE = "library_node"


@pytest.fixture
def answers(monkeypatch):
    """Every response body the SDK receives during the test."""
    seen: list[str] = []
    send = requests.Session.send

    def recording(self, request, **kwargs):
        response = send(self, request, **kwargs)
        seen.append(response.text)
        return response

    monkeypatch.setattr(requests.Session, "send", recording)
    return seen


def test_a_broad_sdk_workload_on_an_alias_never_sees_the_node_side_name(cluster, answers):
    client = sdk(cluster)
    assert wait(client, client.create_index(NODE_SIDE, {"primaryKey": "id"})).status == "succeeded"
    answer = requests.put(f"{cluster.url}/_miroir/aliases/library", json={"index": NODE_SIDE},
                          headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"alias": "library", "index": NODE_SIDE, "shards": 16}
    answers.clear()  # from here on, every answer is one a client of `library` sees

    index = client.index("library")
    books = [{"id": i, "title": f"book {i}", "genre": ["sf", "crime", "poetry"][i % 3],
              "year": 1950 + i} for i in range(90)]
    task = wait(client, index.update_settings({"filterableAttributes": ["genre", "year"],
                                               "sortableAttributes": ["year"]}))
    assert task.status == "succeeded", task.error
    task = wait(client, index.add_documents(books))
    assert (task.status, task.index_uid) == ("succeeded", "library")
    assert index.get_stats().number_of_documents == 90
    assert index.get_document(7).title == "book 7"
    assert len(index.get_documents({"limit": 200}).results) == 90
    hits = index.search("", {"filter": "genre = crime", "sort": ["year:desc"], "limit": 5})["hits"]
    assert [h["id"] for h in hits] == [88, 85, 82, 79, 76]
    assert index.search("book", {"facets": ["genre"]})["facetDistribution"]["genre"] == {
        "sf": 30, "crime": 30, "poetry": 30}
    assert index.facet_search("genre", "cri")["facetHits"] == [{"value": "crime", "count": 30}]
    multi = client.multi_search([{"indexUid": "library", "q": "book", "limit": 1}])
    assert multi["results"][0]["indexUid"] == "library"
    federated = client.multi_search([{"indexUid": "library", "filter": "year = 1960"}],
                                    federation={})
    assert [(h["id"], h["_federation"]["indexUid"]) for h in federated["hits"]] == [
        (10, "library")]
    assert index.get_filterable_attributes() == ["genre", "year"]
    assert client.get_index("library").uid == "library"
    assert "library" in [i.uid for i in client.get_indexes({"limit": 100})["results"]]
    assert NODE_SIDE not in [i.uid for i in client.get_indexes({"limit": 100})["results"]]
    assert "library" in client.get_all_stats()["indexes"]
    tasks = client.get_tasks({"indexUids": ["library"]}).results
    assert tasks and {t.index_uid for t in tasks} == {"library"}

    with pytest.raises(MeilisearchApiError) as caught:
        index.get_document(10_000)
    assert caught.value.code == "document_not_found"
    with pytest.raises(MeilisearchApiError) as caught:
        index.search("", {"filter": "unknown = 1"})
    assert caught.value.code == "invalid_search_filter"
    task = wait(client, index.add_documents([{"title": "no id"}]))
    assert task.status == "failed"

    assert wait(client, index.delete_document(0)).status == "succeeded"
    assert wait(client, index.delete_documents(filter="genre = poetry")).status == "succeeded"
    assert index.get_stats().number_of_documents == 59
    # The documents live in the node-side index, on the nodes.
    on_nodes = sum(node_sdk(cluster, n.id).index(NODE_SIDE).get_stats().number_of_documents
                   for n in cluster.config.nodes)
    assert on_nodes == 59
    assert wait(client, index.delete()).status == "succeeded"
    with pytest.raises(MeilisearchApiError) as caught:
        index.fetch_info()
    assert caught.value.code == "index_not_found"
    assert "`library`" in caught.value.message

    assert len(answers) > 30
    assert [text for text in answers if NODE_SIDE in text] == []


def test_swap_indexes_through_the_sdk_is_one_flip(cluster):
    client = sdk(cluster, MASTER_KEY)
    for uid, color in (("live", "old"), ("staging", "new")):
        assert wait(client, client.create_index(uid, {"primaryKey": "id"})).status == "succeeded"
        docs = [{"id": i, "color": color} for i in range(30)]
        assert wait(client, client.index(uid).add_documents(docs)).status == "succeeded"
    task = wait(client, client.swap_indexes([{"indexes": ["live", "staging"]}]))
    assert (task.status, task.type) == ("succeeded", "indexSwap")
    assert task.details["swaps"] == [{"indexes": ["live", "staging"], "rename": False}]
    assert {h["color"] for h in client.index("live").search("", {"limit": 100})["hits"]} == {"new"}
    assert {h["color"] for h in client.index("staging").search("", {"limit": 100})["hits"]} == {
        "old"}
