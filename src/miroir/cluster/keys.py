"""Every process's view of the API keys: `KeyRing`, a cache over the store's key records.

The hot path (every request with an API key or tenant token) must not pay a store round trip,
yet a key deleted or changed through any process must stop working everywhere within a second.
So the ring keeps every key in memory, indexed by uid and by the SHA-256 digest of its value,
and compares the store's keys version with the one it loaded at most once a second
(`REFRESH_INTERVAL_S`, on trio's clock, so virtual time in the simulator); a different version
reloads every record. A change made through this ring marks it stale, so this process sees its
own change at once. When the store cannot be reached the keys as last read keep working (no key
can be changed meanwhile either); before the first read, a request with an API key fails.

Key values are never stored: the ring derives each one from the master key
(`miroir.core.keys.derive_key`) when it loads. A bearer token is looked up by its SHA-256 digest
(which says nothing about any key's value) and then confirmed with `hmac.compare_digest`, so
neither step compares the secret in variable time. Must never log a key value or put one in an
exception, and never decide who may do what (that is `miroir.core.keys` and the proxy's auth).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
from uuid import UUID

import trio

from miroir.core.keys import ApiKey, default_keys, derive_key, list_order
from miroir.store.base import Store, StoreError

REFRESH_INTERVAL_S = 1.0
logger = logging.getLogger("miroir.cluster.keys")


class KeyRing:
    def __init__(self, store: Store, master_key: str | None) -> None:
        self._store = store
        self._master_key = master_key
        self._by_uid: dict[str, ApiKey] = {}
        self._by_digest: dict[bytes, tuple[ApiKey, bytes]] = {}
        self._version = -1
        self._checked_at = -math.inf

    def __repr__(self) -> str:  # never the master key or a key value
        return f"KeyRing({len(self._by_uid)} keys, version {self._version})"

    def value_of(self, key: ApiKey) -> str:
        """The key's value (the bearer string), derived from the master key."""
        if self._master_key is None:
            return ""
        return derive_key(key.uid, self._master_key)

    # ---- reads (through the cache)

    async def refresh(self) -> None:
        """Reload the keys if the store's version moved; asks the store at most once a second."""
        now = trio.current_time()
        if now - self._checked_at < REFRESH_INTERVAL_S:
            return
        try:
            version = await self._store.get_api_keys_version()
            if version != self._version:
                records = await self._store.list_api_keys()
                self._load([ApiKey.from_record(record) for record in records], version)
        except StoreError as error:
            if self._version < 0:
                raise  # nothing loaded yet: the request fails (503), it is not let through
            # The keys as last read keep working while the store cannot be reached (a key
            # cannot be changed without it either); asked again after the interval.
            logger.warning("API keys not refreshed, the task store failed: %s", error)
        self._checked_at = now

    def _load(self, keys: list[ApiKey], version: int) -> None:
        by_uid: dict[str, ApiKey] = {}
        by_digest: dict[bytes, tuple[ApiKey, bytes]] = {}
        for key in keys:
            by_uid[key.uid] = key
            if self._master_key is not None:
                value = self.value_of(key).encode()
                by_digest[hashlib.sha256(value).digest()] = (key, value)
        self._by_uid, self._by_digest, self._version = by_uid, by_digest, version

    def _stale(self) -> None:
        self._checked_at = -math.inf

    async def by_value(self, token: str) -> ApiKey | None:
        """The key whose value is `token`, compared in constant time; None if there is none."""
        await self.refresh()
        given = token.encode()
        found = self._by_digest.get(hashlib.sha256(given).digest())
        if found is None:
            return None
        key, value = found
        return key if hmac.compare_digest(given, value) else None

    async def by_uid(self, uid: str) -> ApiKey | None:
        await self.refresh()
        return self._by_uid.get(uid)

    async def by_uid_or_value(self, uid_or_value: str) -> ApiKey | None:
        """`/keys/{key}` takes either; a well-formed uuid is read as a uid (as Meilisearch)."""
        await self.refresh()

        try:
            return self._by_uid.get(str(UUID(uid_or_value)))
        except ValueError:
            return await self.by_value(uid_or_value.lower())

    async def listing(self) -> list[ApiKey]:
        await self.refresh()
        return list_order(self._by_uid.values())

    # ---- writes (through the store, then this cache is stale)

    async def create(self, key: ApiKey) -> bool:
        """Store a new key; False if its uid is taken."""
        try:
            return await self._store.insert_api_key(key.uid, key.to_record())
        finally:
            self._stale()

    async def replace(self, key: ApiKey) -> bool:
        try:
            return await self._store.replace_api_key(key.uid, key.to_record())
        finally:
            self._stale()

    async def delete(self, uid: str) -> bool:
        try:
            return await self._store.delete_api_key(uid)
        finally:
            self._stale()

    async def seed_defaults(self, now_ms: int) -> bool:
        """Meilisearch's default keys, written iff the store holds no key (a fresh deployment).
        Their uids derive from the master key, so processes starting together agree."""
        if self._master_key is None:
            return False
        keys = default_keys(self._master_key, now_ms)
        try:
            return await self._store.seed_api_keys({key.uid: key.to_record() for key in keys})
        finally:
            self._stale()


__all__ = ["KeyRing", "REFRESH_INTERVAL_S"]
