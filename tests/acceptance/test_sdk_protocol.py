"""Both Python SDKs -- the official `meilisearch` and the community `meilisearch-python-sdk` --
driving a real `miroir serve` over devnodes: compressed bodies, custom metadata, skipCreation,
webhooks delivered to a local receiver, compaction and the routes Miroir refuses."""

from __future__ import annotations

import gzip
import http.server
import threading
import time
from collections.abc import Iterator

import orjson
import pytest
from meilisearch.errors import MeilisearchApiError
from meilisearch_python_sdk import Client as CommunityClient
from meilisearch_python_sdk.errors import MeilisearchApiError as CommunityApiError
from meilisearch_python_sdk.models.webhook import WebhookCreate

from tests.acceptance.conftest import MASTER_KEY, TASK_TIMEOUT_MS, sdk, wait

pytestmark = pytest.mark.acceptance


def community(cluster) -> CommunityClient:
    return CommunityClient(cluster.url, MASTER_KEY, timeout=30)


class _Receiver(http.server.ThreadingHTTPServer):
    """A local webhook receiver: keeps every POST's headers and gzip-decoded NDJSON lines."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], list[dict]]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(handler) -> None:
                body = handler.rfile.read(int(handler.headers["Content-Length"]))
                lines = gzip.decompress(body).splitlines()
                self.received.append(({k.lower(): v for k, v in handler.headers.items()},
                                      [orjson.loads(line) for line in lines if line]))
                handler.send_response(200)
                handler.send_header("Content-Length", "0")
                handler.end_headers()

            def log_message(handler, *args) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/tasks-done"


@pytest.fixture
def receiver() -> Iterator[_Receiver]:
    server = _Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_community_sdk_compressed_documents_with_custom_metadata(cluster):
    client = community(cluster)
    index = client.index("compressed")
    docs = [{"id": i, "title": f"film {i}"} for i in range(50)]
    info = index.add_documents(docs, primary_key="id", custom_metadata="import-42", compress=True)
    task = client.wait_for_task(info.task_uid, timeout_in_ms=TASK_TIMEOUT_MS)
    assert task.status == "succeeded", task.error
    assert task.custom_metadata == "import-42"
    assert task.details["receivedDocuments"] == 50
    assert index.get_documents(limit=100).total == 50


def test_official_sdk_custom_metadata_and_skip_creation(cluster):
    client = sdk(cluster)
    index = client.index("skipping")
    wait(client, index.add_documents([{"id": i, "n": 0} for i in range(10)], "id"))
    info = index.update_documents([{"id": 1, "n": 1}, {"id": 99, "n": 1}], skip_creation=True,
                                  metadata="nightly")
    task = wait(client, info)
    assert task.status == "succeeded"
    assert task.custom_metadata == "nightly"
    with pytest.raises(MeilisearchApiError) as missing:
        index.get_document("99")
    assert missing.value.code == "document_not_found"
    assert index.get_document("1").n == 1


def test_webhooks_through_both_sdks_and_a_delivery_to_a_local_receiver(cluster, receiver):
    official = sdk(cluster)
    client = community(cluster)
    for hook in official.get_webhooks().results:  # fixtures of other suites may leave some
        official.delete_webhook(hook.uuid)
    made = client.create_webhook(WebhookCreate(
        url=receiver.url, headers={"Authorization": "Bearer receiver-secret-0123456789"}))
    assert made.is_editable is True
    listed = official.get_webhooks().results
    assert [hook.uuid for hook in listed] == [made.uuid]
    assert listed[0].headers["Authorization"].startswith("Bearer rec")
    assert "secret" not in listed[0].headers["Authorization"]

    info = official.index("hooked").add_documents([{"id": 1}], "id", metadata="hook-me")
    finished = wait(official, info)
    deadline = time.monotonic() + 20
    seen = None
    while time.monotonic() < deadline and seen is None:
        for headers, tasks in list(receiver.received):
            for task in tasks:
                if task["uid"] == finished.uid:
                    seen = (headers, task)
        time.sleep(0.05)
    assert seen is not None, "the finished task never reached the receiver"
    headers, task = seen
    assert headers["authorization"] == "Bearer receiver-secret-0123456789"
    assert headers["content-encoding"] == "gzip"
    assert task["status"] == "succeeded" and task["customMetadata"] == "hook-me"

    official.delete_webhook(made.uuid)
    assert official.get_webhooks().results == []
    with pytest.raises(CommunityApiError):
        client.get_webhook(made.uuid)


def test_compaction_and_a_refused_route_through_the_sdks(cluster):
    official = sdk(cluster)
    wait(official, official.index("compact-me").add_documents([{"id": 1}], "id"))
    task = community(cluster).index("compact-me").compact()
    done = community(cluster).wait_for_task(task.task_uid, timeout_in_ms=TASK_TIMEOUT_MS)
    assert done.status == "succeeded" and done.task_type == "indexCompaction"
    with pytest.raises(MeilisearchApiError) as refused:
        official.http.post("export", {"url": "http://elsewhere:7700"})
    assert refused.value.code == "miroir_unsupported_route"
    assert refused.value.status_code == 400


def test_a_gzip_body_from_any_http_client_is_decoded(cluster):
    """The official SDK has no compression switch; a gzip body from a plain HTTP client is
    decoded the same way, and the official SDK reads the result."""
    import requests

    client = sdk(cluster)
    body = gzip.compress(orjson.dumps([{"id": "g1"}, {"id": "g2"}]))
    response = requests.post(
        f"{cluster.url}/indexes/gzipped/documents?primaryKey=id", data=body,
        headers={"Authorization": f"Bearer {MASTER_KEY}", "Content-Type": "application/json",
                 "Content-Encoding": "gzip"}, timeout=30)
    assert response.status_code == 202, response.text
    task = wait(client, response.json()["taskUid"])
    assert task.status == "succeeded"
    assert client.index("gzipped").get_documents().total == 2
