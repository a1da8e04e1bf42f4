"""Task uids as a client of a fresh Meilisearch sees them, through both Python SDKs against a
fresh `miroir serve` (SQLite task store) over devnodes.

Meilisearch numbers tasks from 0, one uid per accepted write: a write to a missing index creates
it inside that write's own task (one `documentAdditionOrUpdate`, or one `settingsUpdate`), never
as a task of its own. Miroir must hand a client the same uids for the same sequence.
"""

from __future__ import annotations

import pytest
from meilisearch_python_sdk import Client as CommunityClient

from tests.acceptance.conftest import MASTER_KEY, sdk, wait

pytestmark = pytest.mark.acceptance


def test_official_sdk_first_write_to_a_missing_index_is_task_0_and_the_only_task(launch):
    client = sdk(launch(nodes=2, shards=4))
    info = client.index("movies").add_documents([{"id": 1, "title": "Carol"}])
    assert info.task_uid == 0
    task = wait(client, info)
    assert task.status == "succeeded", task.error
    listed = client.get_tasks()
    assert [(t.uid, t.type) for t in listed.results] == [(0, "documentAdditionOrUpdate")]
    assert listed.total == 1
    # The next write to the existing index is task 1, and a settings update on another missing
    # index is one settingsUpdate task: 2.
    assert client.index("movies").add_documents([{"id": 2, "title": "Heat"}]).task_uid == 1
    settings = client.index("books").update_settings({"searchableAttributes": ["title"]})
    assert settings.task_uid == 2
    assert wait(client, settings).status == "succeeded"
    types = [(t.uid, t.type) for t in client.get_tasks().results]
    assert types == [(2, "settingsUpdate"), (1, "documentAdditionOrUpdate"),
                     (0, "documentAdditionOrUpdate")]


def test_community_sdk_index_creation_then_documents_are_tasks_0_then_1(launch):
    cluster = launch(nodes=2, shards=4)
    client = CommunityClient(cluster.url, MASTER_KEY, timeout=30)
    created = client.create_index("movies", primary_key="id")  # waits for its task
    assert created.uid == "movies"
    added = client.index("movies").add_documents([{"id": 1, "title": "Carol"}])
    assert added.task_uid == 1
    finished = client.wait_for_task(added.task_uid, timeout_in_ms=30_000)
    assert finished.status == "succeeded"
    tasks = client.get_tasks()
    assert [(t.uid, t.task_type) for t in tasks.results] == [
        (1, "documentAdditionOrUpdate"), (0, "indexCreation")]
