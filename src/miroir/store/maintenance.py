"""Background upkeep of a store: pruning old tasks and expired idempotency keys.

Every proxy may run the pruner; pruning is idempotent, so several pruners on one backend only
repeat each other's work. Time comes from an injected `now_ms` function and waiting from
`trio.sleep`, so under the simulator's MockClock the pruner runs on virtual time.

This module owns the loop only; what is old enough to go is decided by the store's TTL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from miroir.store.base import Store, StoreError

logger = logging.getLogger("miroir.store")


async def prune_periodically(store: Store, now_ms: Callable[[], int], interval_s: float) -> None:
    """Prune every `interval_s` seconds until cancelled. A failed pass is logged and retried at
    the next interval: a store that is briefly unreachable must not stop the proxy."""
    while True:
        try:
            pruned = await store.prune_tasks(now_ms())
            if pruned:
                logger.info("pruned %d tasks older than the task TTL", pruned)
        except StoreError as exc:
            logger.warning("task pruning failed, will retry: %s", exc)
        await trio.sleep(interval_s)
