"""KeyRing: the store's keys version is read at most once a second; a change through the ring
is seen at once; a store that fails keeps the keys last read working."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from miroir.cluster.keys import REFRESH_INTERVAL_S, KeyRing
from miroir.core.keys import ApiKey, derive_key
from miroir.store.base import StoreError
from miroir.store.memory import MemoryStore

MASTER = "keyring-master-key"


def search_key(uid: str = "4bc0887a-0e41-4f3b-935d-0c451dcee9c8") -> ApiKey:
    return ApiKey(uid=uid, name=None, description=None, actions=("search",), indexes=("*",),
                  expires_at=None, created_at=0, updated_at=0)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.version_reads = 0
        self.failing = False

    async def get_api_keys_version(self) -> int:
        self.version_reads += 1
        if self.failing:
            raise StoreError("down (test)")
        return await super().get_api_keys_version()


async def test_the_store_is_asked_at_most_once_a_second(autojump_clock):
    store = CountingStore()
    ring = KeyRing(store, MASTER)
    key = search_key()
    await store.insert_api_key(key.uid, key.to_record())
    value = derive_key(key.uid, MASTER)
    for _ in range(50):
        assert await ring.by_value(value) == key
    assert store.version_reads == 1
    await store.delete_api_key(key.uid)  # through another process: this ring does not know
    assert await ring.by_value(value) == key
    await trio.sleep(REFRESH_INTERVAL_S)
    assert await ring.by_value(value) is None
    assert store.version_reads == 2


async def test_a_change_through_the_ring_is_seen_at_once():
    ring = KeyRing(MemoryStore(), MASTER)
    key = search_key()
    assert await ring.create(key)
    assert await ring.by_value(derive_key(key.uid, MASTER)) == key
    assert await ring.delete(key.uid)
    assert await ring.by_value(derive_key(key.uid, MASTER)) is None


async def test_a_failing_store_keeps_the_last_keys_and_fails_before_any(autojump_clock):
    store = CountingStore()
    key = search_key()
    await store.insert_api_key(key.uid, key.to_record())
    cold = KeyRing(store, MASTER)
    store.failing = True
    with pytest.raises(StoreError):
        await cold.by_value(derive_key(key.uid, MASTER))
    store.failing = False
    warm = KeyRing(store, MASTER)
    assert await warm.by_value(derive_key(key.uid, MASTER)) == key
    store.failing = True
    await trio.sleep(REFRESH_INTERVAL_S)
    assert await warm.by_value(derive_key(key.uid, MASTER)) == key


def test_the_ring_never_shows_a_value():
    ring = KeyRing(MemoryStore(), MASTER)
    assert MASTER not in repr(ring)
