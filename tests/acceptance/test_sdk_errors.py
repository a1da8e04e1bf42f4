"""Every error a client can provoke, seen through the official SDK as Meilisearch would show it:
the `{message, code, type, link}` body with the right status, and nothing written.

Runs against the shared cluster (3 nodes, RG=1, RF=1, max body 512 KiB). The quorum errors
need a broken cluster and live in test_replication.py.
"""

from __future__ import annotations

import meilisearch
import pytest
from meilisearch.errors import MeilisearchApiError

from .conftest import ADMIN_KEY, MASTER_KEY, sdk, wait

pytestmark = pytest.mark.acceptance

ERROR_LINK = "https://docs.meilisearch.com/errors#"


def assert_api_error(caught: pytest.ExceptionInfo, code: str, status: int, error_type: str) -> None:
    error = caught.value
    assert (error.code, error.status_code, error.type) == (code, status, error_type), error.message
    assert error.link == ERROR_LINK + code
    assert error.message


@pytest.fixture(scope="module")
def books(cluster):
    client = sdk(cluster)
    assert wait(client, client.create_index("books", {"primaryKey": "isbn"})).status == "succeeded"
    added = wait(client, client.index("books").add_documents([{"isbn": "b-1", "title": "One"}]))
    assert added.status == "succeeded", added.error
    return client.index("books")


def document_count(index) -> int:
    return index.get_stats().number_of_documents


def test_no_key_is_missing_authorization_header(cluster):
    # The SDK always sends `Bearer <key>` (even `Bearer None`); a None header makes requests
    # drop it, which is what a client without any key configured looks like on the wire.
    client = meilisearch.Client(cluster.url, None, custom_headers={"Authorization": None})
    with pytest.raises(MeilisearchApiError) as caught:
        client.get_indexes()
    assert_api_error(caught, "missing_authorization_header", 401, "auth")


def test_a_wrong_key_is_invalid_api_key(cluster):
    with pytest.raises(MeilisearchApiError) as caught:
        sdk(cluster, api_key="not-the-key").get_indexes()
    assert_api_error(caught, "invalid_api_key", 403, "auth")


def test_health_is_public(cluster):
    assert sdk(cluster, api_key=None).health() == {"status": "available"}


def test_admin_routes_want_the_admin_key_not_the_master_key(cluster):
    with pytest.raises(MeilisearchApiError) as caught:
        sdk(cluster, api_key=MASTER_KEY).http.get("_miroir/topology")
    assert_api_error(caught, "miroir_invalid_auth", 401, "auth")
    topology = sdk(cluster, api_key=ADMIN_KEY).http.get("_miroir/topology")
    assert {n["id"] for n in topology["nodes"]} == {n.id for n in cluster.config.nodes}


def test_a_missing_index_is_index_not_found(cluster):
    with pytest.raises(MeilisearchApiError) as caught:
        sdk(cluster).get_index("no_such_index")
    assert_api_error(caught, "index_not_found", 404, "invalid_request")


def test_a_missing_document_is_document_not_found(books):
    with pytest.raises(MeilisearchApiError) as caught:
        books.get_document("no-such-isbn")
    assert_api_error(caught, "document_not_found", 404, "invalid_request")


def test_an_invalid_index_uid_is_refused_at_once(cluster):
    with pytest.raises(MeilisearchApiError) as caught:
        sdk(cluster).create_index("not a valid uid!")
    assert_api_error(caught, "invalid_index_uid", 400, "invalid_request")


def test_creating_an_existing_index_fails_its_task(cluster, books):
    client = sdk(cluster)
    task = wait(client, client.create_index("books", {"primaryKey": "isbn"}))
    assert task.status == "failed"
    assert task.error["code"] == "index_already_exists"
    assert document_count(books) == 1


def test_a_bare_sdk_key_of_none_is_an_invalid_key(cluster):
    with pytest.raises(MeilisearchApiError) as caught:
        sdk(cluster, api_key=None).get_indexes()
    assert_api_error(caught, "invalid_api_key", 403, "auth")


def test_a_reserved_field_fails_the_whole_batch_and_writes_nothing(cluster, books):
    # Reported like Meilisearch reports a bad id: a 202 whose task has failed.
    client = sdk(cluster)
    batch = [{"isbn": "b-2", "title": "Two"}, {"isbn": "b-3", "_miroir_shard": 3}]
    task = wait(client, books.add_documents(batch))
    assert task.status == "failed"
    assert task.error["code"] == "miroir_reserved_field"
    assert task.error["link"] == ERROR_LINK + "miroir_reserved_field"
    assert document_count(books) == 1


@pytest.mark.parametrize(
    ("bad_document", "code"),
    [
        ({"isbn": "has space", "title": "x"}, "invalid_document_id"),
        ({"isbn": 1.5, "title": "x"}, "invalid_document_id"),
        ({"isbn": True, "title": "x"}, "invalid_document_id"),
        ({"title": "no isbn at all"}, "missing_document_id"),
    ],
)
def test_a_bad_id_fails_the_task_and_writes_nothing_of_the_batch(cluster, books, bad_document, code):
    client = sdk(cluster)
    good = {"isbn": "fine-1", "title": "would be fine alone"}
    task = wait(client, books.add_documents([good, bad_document]))
    assert task.status == "failed"
    assert task.error["code"] == code
    with pytest.raises(MeilisearchApiError):
        books.get_document("fine-1")
    assert document_count(books) == 1


def test_an_ambiguous_primary_key_fails_inference_and_writes_nothing(cluster):
    client = sdk(cluster)
    task = wait(client, client.index("ambiguous").add_documents([{"id": 1, "user_id": 2}]))
    assert task.status == "failed"
    assert task.error["code"] == "index_primary_key_multiple_candidates_found"


def test_a_malformed_body_is_malformed_payload(books):
    with pytest.raises(MeilisearchApiError) as caught:
        books.add_documents_ndjson(b'{"isbn": "x-1"}\n{"isbn": ')
    assert_api_error(caught, "malformed_payload", 400, "invalid_request")
    assert document_count(books) == 1


def test_a_body_over_the_limit_is_payload_too_large(books):
    big = [{"isbn": f"big-{i}", "text": "x" * 1000} for i in range(600)]  # ~ 620 KB > 512 KiB
    with pytest.raises(MeilisearchApiError) as caught:
        books.add_documents(big)
    assert_api_error(caught, "payload_too_large", 413, "invalid_request")
    assert document_count(books) == 1


def test_the_sdk_sees_a_meilisearch(cluster):
    client = meilisearch.Client(cluster.url, MASTER_KEY)
    assert client.is_healthy()
    assert "pkgVersion" in client.get_version()
