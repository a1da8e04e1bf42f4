"""What the long-running engines (the rebalancer, the resharder) share: one worker in the whole
cluster at a time, chosen by a store lease.

Theory of operation. Every proxy process runs the engine's `run` loop; a pass (`drive_once`,
the engine's own) first looks at the engine's record in the store and, if there is work,
takes the lease (`_hold_lease`). Every record write renews the lease first (`_renew`), so a
process that lost it (expired while it was stalled, taken by another) stops with `LeaseLost`
before writing anything; the next pass starts over from the record. A pass that fails for
any other reason is logged and retried on the next pass: the record, not the process, holds
the progress.

Must never: write an engine's record without renewing the lease just before.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from miroir.cluster.runtime import Cluster


class LeaseLost(Exception):
    """Another process holds the engine's lease now, or changed its record: stop at once."""


class LeasedEngine:
    """An engine's lease and pass loop; subclasses set `LEASE_NAME` and `logger` and
    implement `drive_once`. `settings` needs `lease_ttl_ms` and `poll_s`."""

    LEASE_NAME = ""
    logger = logging.getLogger("miroir")

    def __init__(self, cluster: Cluster, settings: Any, holder: str) -> None:
        self.cluster = cluster
        self.settings = settings
        self.holder = holder

    async def drive_once(self) -> str | None:
        raise NotImplementedError

    async def run(self) -> None:
        while True:
            try:
                await self.drive_once()
            except LeaseLost:
                self.logger.warning("the %s lease (or its record) moved to another process",
                                    self.LEASE_NAME)
            except Exception:
                self.logger.exception("%s pass failed; retrying", self.LEASE_NAME)
            await trio.sleep(self.settings.poll_s)

    async def _hold_lease(self) -> bool:
        lease = await self.cluster.store.acquire_lease(
            self.LEASE_NAME, self.holder, self.cluster.now_ms(), self.settings.lease_ttl_ms)
        return lease is not None

    async def _release_lease(self) -> None:
        await self.cluster.store.release_lease(self.LEASE_NAME, self.holder)

    async def _renew(self) -> None:
        lease = await self.cluster.store.renew_lease(
            self.LEASE_NAME, self.holder, self.cluster.now_ms(), self.settings.lease_ttl_ms)
        if lease is None:
            raise LeaseLost()
