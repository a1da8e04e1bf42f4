"""`open_store`: from the `task_store` config section to an open Store.

The config section (YAML or a dict), with its defaults:

    task_store:
      backend: sqlite            # sqlite | redis | memory
      path: miroir-tasks.sqlite3 # sqlite: the database file (":memory:" for a private one)
      url: null                  # redis: redis://host:6379/0, required
      key_prefix: "miroir:"      # redis: every key starts with this
      ttl_seconds: 604800        # tasks finished longer ago than this are pruned (7 days)
      timeout_seconds: 5         # sqlite busy timeout; redis connect and socket timeout
      threads: 4                 # worker threads (and connections) per store
      sqlite_synchronous: full   # full: fsync every commit; normal: faster, may lose the last
                                 # commits (and reuse their task uids) on a power cut

miroir.config (TaskStoreConfig) is where the service's defaults live; the same values are
repeated here only so that a bare dict (tests, the simulator, scripts) can open a store.
This module owns that validation; it must never hold an open store itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from miroir.store.base import DEFAULT_TASK_TTL_MS, Store

DEFAULTS: dict[str, Any] = {
    "backend": "sqlite",
    "path": "miroir-tasks.sqlite3",
    "url": None,
    "key_prefix": "miroir:",
    "ttl_seconds": DEFAULT_TASK_TTL_MS // 1000,
    "timeout_seconds": 5.0,
    "threads": 4,
    "sqlite_synchronous": "full",
}
BACKENDS = ("sqlite", "redis", "memory")


@attrs.frozen
class StoreConfig:
    backend: str
    path: str
    url: str | None
    key_prefix: str
    ttl_seconds: float
    timeout_seconds: float
    threads: int
    sqlite_synchronous: str

    @classmethod
    def from_mapping(cls, section: Mapping[str, Any]) -> StoreConfig:
        """Validate a `task_store` section (a whole config with that key is accepted too)."""
        if "task_store" in section and isinstance(section["task_store"], Mapping):
            section = section["task_store"]
        unknown = set(section) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"unknown task_store settings: {', '.join(sorted(unknown))}")
        values = {**DEFAULTS, **{k: v for k, v in section.items() if v is not None}}
        if values["backend"] not in BACKENDS:
            raise ValueError(
                f"task_store.backend must be one of {', '.join(BACKENDS)}, not {values['backend']!r}")
        for name in ("ttl_seconds", "timeout_seconds"):
            if not isinstance(values[name], int | float) or values[name] <= 0:
                raise ValueError(f"task_store.{name} must be a positive number")
        if not isinstance(values["threads"], int) or values["threads"] < 1:
            raise ValueError("task_store.threads must be a positive integer")
        if values["sqlite_synchronous"] not in ("full", "normal"):
            raise ValueError("task_store.sqlite_synchronous must be 'full' or 'normal'")
        if values["backend"] == "redis" and not values["url"]:
            raise ValueError("task_store.url is required when the backend is redis")
        return cls(**values)


async def open_store(config: Mapping[str, Any] | object) -> Store:
    """Open the configured store. Raises StoreUnavailable (fast) when the backend is unreachable.

    `config` is the `task_store` section as a dict, a whole config dict holding one, or an object
    whose attributes are the section's keys (miroir.config.TaskStoreConfig, an argparse
    namespace); attributes it lacks take the defaults.
    """
    if not isinstance(config, Mapping):
        config = {k: getattr(config, k) for k in DEFAULTS if hasattr(config, k)}
    settings = StoreConfig.from_mapping(config)
    ttl_ms = int(settings.ttl_seconds * 1000)
    if settings.backend == "sqlite":
        from miroir.store.sqlite import SqliteStore

        return await SqliteStore.open(settings.path, busy_timeout_s=settings.timeout_seconds,
                                      threads=settings.threads, task_ttl_ms=ttl_ms,
                                      synchronous=settings.sqlite_synchronous)
    if settings.backend == "redis":
        from miroir.store.redis import RedisStore

        return await RedisStore.open(settings.url, key_prefix=settings.key_prefix,
                                     timeout_s=settings.timeout_seconds,
                                     threads=settings.threads, task_ttl_ms=ttl_ms)
    from miroir.store.memory import MemoryStore

    return MemoryStore(task_ttl_ms=ttl_ms)
