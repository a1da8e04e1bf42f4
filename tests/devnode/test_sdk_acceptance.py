"""Acceptance: the official `meilisearch` Python SDK drives a devnode process end to end.

Starts `miroir devnode` (the console script) on a free loopback port with a master key, then
uses only the SDK: create index, add documents, wait for the task, read documents, update
settings, search, delete documents and the index.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import meilisearch
import pytest
from meilisearch.errors import MeilisearchApiError

pytestmark = pytest.mark.acceptance

KEY = "sdk-acceptance-key"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def client():
    port = _free_port()
    script = Path(sys.executable).with_name("miroir")
    process = subprocess.Popen(
        [str(script), "devnode", "--host", "127.0.0.1", "--port", str(port), "--master-key", KEY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    sdk = meilisearch.Client(f"http://127.0.0.1:{port}", KEY)
    try:
        for _ in range(300):  # patience for a slow, shared machine; no duration is asserted
            if process.poll() is not None:
                raise RuntimeError(process.stderr.read().decode())
            try:
                if sdk.is_healthy():
                    break
            except Exception:  # noqa: BLE001 - the SDK's and requests' errors while the node starts
                pass
            time.sleep(0.05)
        yield sdk
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_sdk_round_trip(client):
    created = client.create_index("movies", {"primaryKey": "id"})
    assert client.wait_for_task(created.task_uid).status == "succeeded"
    index = client.index("movies")
    movies = [
        {"id": 1, "title": "Carol", "genre": "romance", "year": 2015},
        {"id": 2, "title": "Wonder Woman", "genre": "action", "year": 2017},
        {"id": 3, "title": "Life of Pi", "genre": "adventure", "year": 2012},
    ]
    added = index.add_documents(movies)
    task = client.wait_for_task(added.task_uid)
    assert task.status == "succeeded"
    assert task.details == {"receivedDocuments": 3, "indexedDocuments": 3}

    documents = index.get_documents({"limit": 2, "fields": ["id", "title"]})
    assert documents.total == 3
    assert [vars(document) for document in documents.results] == [
        {"id": 1, "title": "Carol"},
        {"id": 2, "title": "Wonder Woman"},
    ]
    assert index.get_document(3).title == "Life of Pi"

    updated = index.update_settings(
        {"filterableAttributes": ["genre"], "sortableAttributes": ["year"]}
    )
    assert client.wait_for_task(updated.task_uid).status == "succeeded"
    settings = index.get_settings()
    assert settings["filterableAttributes"] == ["genre"]
    assert settings["sortableAttributes"] == ["year"]
    assert index.get_filterable_attributes() is not None

    hits = index.search("", {"filter": "genre = action"})["hits"]
    assert [hit["id"] for hit in hits] == [2]

    deleted = index.delete_document(2)
    assert client.wait_for_task(deleted.task_uid).details["deletedDocuments"] == 1
    with pytest.raises(MeilisearchApiError) as missing:
        index.get_document(2)
    assert missing.value.code == "document_not_found"

    by_filter = index.delete_documents(filter="genre = romance")
    assert client.wait_for_task(by_filter.task_uid).details["deletedDocuments"] == 1
    assert index.get_stats().number_of_documents == 1

    dropped = client.delete_index("movies")
    assert client.wait_for_task(dropped.task_uid).status == "succeeded"
    with pytest.raises(MeilisearchApiError) as gone:
        client.get_index("movies")
    assert gone.value.code == "index_not_found"


def test_sdk_sees_auth_errors(client):
    intruder = meilisearch.Client(client.config.url, "wrong-key")
    with pytest.raises(MeilisearchApiError) as denied:
        intruder.get_indexes()
    assert denied.value.code == "invalid_api_key"
    assert client.get_version()["pkgVersion"] == "1.53.0"
    tasks = client.get_tasks({"limit": 1})
    assert tasks.limit == 1 and tasks.total >= 1
