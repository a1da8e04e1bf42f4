"""Durable state shared by proxy processes: tasks, idempotency keys, settings versions, leases.

One protocol (`Store`, in base.py), backends beside it (sqlite.py, redis.py, memory.py) and
`open_store(config)` (factory.py) to get one from the `task_store` config section.
"""

from miroir.store.base import (
    IdempotencyRecord,
    Lease,
    Store,
    StoreError,
    StoreUnavailable,
)
from miroir.store.factory import StoreConfig, open_store

__all__ = [
    "IdempotencyRecord",
    "Lease",
    "Store",
    "StoreConfig",
    "StoreError",
    "StoreUnavailable",
    "open_store",
]
