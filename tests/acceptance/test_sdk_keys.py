"""API keys and tenant tokens through a real `miroir serve`, with both Python SDKs as a user
would use them: create keys, search with a search key, be refused with it on writes, generate a
tenant token client side and search with it (its filter applied)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import meilisearch
import meilisearch.errors
import meilisearch_python_sdk
import meilisearch_python_sdk.errors
import meilisearch_python_sdk.models.settings
import pytest
from meilisearch_python_sdk.models.client import KeyCreate, KeyUpdate

from .conftest import MASTER_KEY, sdk, wait

pytestmark = pytest.mark.acceptance

MOVIES = [
    {"id": 1, "title": "Carol", "tenant": "a"},
    {"id": 2, "title": "Carol II", "tenant": "b"},
    {"id": 3, "title": "Carol III", "tenant": "a"},
]


def _fill(cluster, index: str) -> None:
    admin = sdk(cluster)
    wait(admin, admin.index(index).add_documents(MOVIES, primary_key="id"))
    wait(admin, admin.index(index).update_filterable_attributes(["tenant"]))


def test_official_sdk_keys_search_key_and_tenant_token(cluster):
    _fill(cluster, "sdk_keys_movies")
    admin = sdk(cluster)
    names = {key.name for key in admin.get_keys().results}
    assert {"Default Search API Key", "Default Admin API Key"} <= names
    created = admin.create_key({"description": "front", "actions": ["search"],
                                "indexes": ["sdk_keys_*"], "expiresAt": None})
    assert admin.get_key(created.key).uid == created.uid
    updated = admin.update_key(created.uid, {"name": "front end"})
    assert updated.name == "front end"

    searcher = meilisearch.Client(cluster.url, created.key, timeout=30)
    hits = searcher.index("sdk_keys_movies").search("carol")["hits"]
    assert {hit["id"] for hit in hits} == {1, 2, 3}
    with pytest.raises(meilisearch.errors.MeilisearchApiError) as refused:
        searcher.index("sdk_keys_movies").add_documents([{"id": 9}])
    assert refused.value.status_code == 403 and refused.value.code == "invalid_api_key"

    token = admin.generate_tenant_token(
        created.uid, {"sdk_keys_movies": {"filter": "tenant = a"}},
        expires_at=datetime.now(UTC) + timedelta(hours=1), api_key=created.key)
    tenant = meilisearch.Client(cluster.url, token, timeout=30)
    hits = tenant.index("sdk_keys_movies").search("carol")["hits"]
    assert {hit["id"] for hit in hits} == {1, 3}

    admin.delete_key(created.uid)
    with pytest.raises(meilisearch.errors.MeilisearchApiError) as gone:
        meilisearch.Client(cluster.url, created.key, timeout=30).index(
            "sdk_keys_movies").search("carol")
    assert gone.value.status_code == 403


def test_meilisearch_python_sdk_keys_search_key_and_tenant_token(cluster):
    _fill(cluster, "sdk2_keys_movies")
    with meilisearch_python_sdk.Client(cluster.url, MASTER_KEY, timeout=30) as admin:
        created = admin.create_key(KeyCreate(actions=["search"], indexes=["sdk2_keys_movies"],
                                             description="front"))
        assert admin.get_key(created.key).uid == created.uid
        assert admin.update_key(KeyUpdate(key=created.key, name="renamed")).name == "renamed"
        with meilisearch_python_sdk.Client(cluster.url, created.key, timeout=30) as searcher:
            result = searcher.index("sdk2_keys_movies").search("carol")
            assert {hit["id"] for hit in result.hits} == {1, 2, 3}
            with pytest.raises(meilisearch_python_sdk.errors.MeilisearchApiError) as refused:
                searcher.index("sdk2_keys_movies").add_documents([{"id": 9}])
            assert refused.value.status_code == 403
        token = admin.generate_tenant_token(
            {"sdk2_keys_movies": {"filter": "tenant = b"}}, api_key=created,
            expires_at=datetime.now(UTC) + timedelta(hours=1))
        with meilisearch_python_sdk.Client(cluster.url, token, timeout=30) as tenant:
            result = tenant.index("sdk2_keys_movies").search("carol")
            assert {hit["id"] for hit in result.hits} == {2}
        admin.delete_key(created.key)
