"""Index and document lifecycle through the SDK: settings round trips that hide Miroir's shard
field, deletes that reach every copy, index deletion everywhere, and the task list.

Runs against the shared cluster (3 nodes, RG=1, RF=1); each test uses its own index.
"""

from __future__ import annotations

import pytest
from meilisearch.errors import MeilisearchApiError

from .conftest import node_sdk, sdk, wait

pytestmark = pytest.mark.acceptance

SHARD_FIELD = "_miroir_shard"


def fill(client, uid: str, count: int = 60) -> list[dict]:
    docs = [{"id": i, "kind": "even" if i % 2 == 0 else "odd", "n": i} for i in range(count)]
    assert wait(client, client.create_index(uid, {"primaryKey": "id"})).status == "succeeded"
    assert wait(client, client.index(uid).add_documents(docs)).status == "succeeded"
    return docs


def ids_on_nodes(cluster, uid: str) -> set[int]:
    found: set[int] = set()
    for node in cluster.config.nodes:
        found |= {d.id for d in node_sdk(cluster, node.id).index(uid).get_documents({"limit": 1000}).results}
    return found


def test_filterable_attributes_round_trip_without_the_shard_field(cluster):
    client = sdk(cluster)
    fill(client, "settings_rt")
    index = client.index("settings_rt")
    assert SHARD_FIELD not in index.get_filterable_attributes()
    task = wait(client, index.update_filterable_attributes(["kind"]))
    assert task.status == "succeeded", task.error
    assert index.get_filterable_attributes() == ["kind"]
    assert SHARD_FIELD not in str(index.get_settings())
    for node in cluster.config.nodes:
        on_node = node_sdk(cluster, node.id).index("settings_rt").get_filterable_attributes()
        assert set(on_node) >= {"kind", SHARD_FIELD}, f"{node.id} lost a filterable attribute"


# `ids=` is how the SDK reaches POST /documents/delete-batch, the route under test.
@pytest.mark.filterwarnings("ignore:The use of ids is depreciated:DeprecationWarning")
def test_deletes_by_id_batch_filter_and_all_reach_every_copy(cluster):
    client = sdk(cluster)
    docs = fill(client, "deletes")
    index = client.index("deletes")
    assert wait(client, index.update_filterable_attributes(["kind"])).status == "succeeded"

    assert wait(client, index.delete_document(0)).status == "succeeded"
    assert wait(client, index.delete_documents(ids=[1, 2, 3])).status == "succeeded"
    remaining = {d["id"] for d in docs} - {0, 1, 2, 3}
    assert ids_on_nodes(cluster, "deletes") == remaining
    with pytest.raises(MeilisearchApiError) as caught:
        index.get_document(2)
    assert caught.value.code == "document_not_found"

    assert wait(client, index.delete_documents(filter="kind = odd")).status == "succeeded"
    remaining = {i for i in remaining if i % 2 == 0}
    assert ids_on_nodes(cluster, "deletes") == remaining
    assert index.get_stats().number_of_documents == len(remaining)

    assert wait(client, index.delete_all_documents()).status == "succeeded"
    assert ids_on_nodes(cluster, "deletes") == set()
    assert index.get_stats().number_of_documents == 0


def test_deleting_an_index_removes_it_from_every_node(cluster):
    client = sdk(cluster)
    fill(client, "doomed", count=10)
    assert "doomed" in {i.uid for i in client.get_indexes({"limit": 100})["results"]}
    assert wait(client, client.delete_index("doomed")).status == "succeeded"
    with pytest.raises(MeilisearchApiError) as caught:
        client.get_index("doomed")
    assert caught.value.code == "index_not_found"
    for node in cluster.config.nodes:
        with pytest.raises(MeilisearchApiError):
            node_sdk(cluster, node.id).get_index("doomed")


def test_the_task_list_shows_miroir_tasks_newest_first(cluster):
    client = sdk(cluster)
    fill(client, "listed", count=5)
    tasks = client.get_tasks({"indexUids": ["listed"]}).results
    assert [t.type for t in tasks] == ["documentAdditionOrUpdate", "indexCreation"]
    assert all(t.status == "succeeded" for t in tasks)
    assert tasks[0].uid > tasks[1].uid
