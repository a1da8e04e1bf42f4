"""One store test suite, run against every backend.

`backend` opens stores that share one backing state: calling it twice gives two independent
store instances (own connections, own threads) over the same SQLite file or Redis key prefix,
which is how two proxy processes see the store. The memory backend has no backing state to
share, so it hands back its single instance (and restart tests skip it).
Redis runs use a fresh key prefix per test and delete their keys afterwards.
"""

from __future__ import annotations

import uuid

import pytest
import redis as redis_client

from miroir.store import open_store

REDIS_URL = "redis://127.0.0.1:6379/0"


class Backend:
    def __init__(self, name: str, config: dict) -> None:
        self.name = name
        self.config = config
        self.opened: list = []
        self._memory = None

    @property
    def persistent(self) -> bool:
        return self.name != "memory"

    async def open(self):
        if self.name == "memory":
            if self._memory is None:
                self._memory = await open_store(self.config)
            return self._memory
        store = await open_store(self.config)
        self.opened.append(store)
        return store


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
async def backend(request, tmp_path):
    name = request.param
    prefix = f"miroir-test:{uuid.uuid4().hex}:"
    config = {"backend": name, "ttl_seconds": 3600}
    if name == "sqlite":
        config["path"] = str(tmp_path / "state.db")
    if name == "redis":
        config.update(url=REDIS_URL, key_prefix=prefix)
    backend = Backend(name, config)
    yield backend
    for store in backend.opened:
        await store.close()
    if name == "redis":
        client = redis_client.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=prefix + "*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
async def store(backend):
    return await backend.open()
