"""Webhook delivery: POST finished tasks to every webhook, off the request path, with retries.

Theory of operation. Every task this process sees finish (`Cluster.task_finished_listeners`;
exactly one process sees each finish, the one whose store update made it final) is queued on an
in-memory channel without waiting (`WebhookDelivery.notify`: a full queue drops the task and
logs it, never blocks a client). The delivery loop takes what is queued -- everything waiting,
as one batch, as Meilisearch sends a batch's tasks in one body -- reads the webhooks from the
store (so a webhook added through any proxy is used at once), and POSTs the batch to each one
concurrently: the gzip-compressed NDJSON of the task objects with Meilisearch's headers plus the
webhook's own (`miroir.core.webhooks.delivery_body`, `delivery_headers`). A delivery that fails
(connection error, timeout, a status >= 300) is retried after `retry_delays` (exponential
backoff); one webhook's retries never hold back another's, and never the next batch for long:
each batch's deliveries run in their own tasks.

Limits, said plainly: the queue is in memory, so tasks that finished in a process that stops
before delivering are not delivered by another (Meilisearch's own delivery is fire-and-forget
from one thread, with no retry at all).

Must never: block or fail a request, log a header value (they carry secrets), or deliver from a
process that was not asked to run it (`Services.webhooks` None).
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import httpx
import trio

from miroir.cluster.runtime import Cluster
from miroir.core.tasks import Task, render_task
from miroir.core.webhooks import Webhook, delivery_body, delivery_headers, retry_delays

logger = logging.getLogger("miroir.webhooks")


@attrs.frozen
class WebhookSettings:
    """How deliveries behave: tries per webhook and batch, the first backoff, the per-request
    timeout, how many finished tasks may wait in memory."""

    attempts: int = 6
    first_backoff_s: float = 0.5
    timeout_s: float = 30.0
    queue_size: int = 10_000


class WebhookDelivery:
    def __init__(self, cluster: Cluster, settings: WebhookSettings,
                 client: httpx.AsyncClient | None = None) -> None:
        self.cluster = cluster
        self.settings = settings
        self._client = client
        self._send, self._receive = trio.open_memory_channel[Task](settings.queue_size)
        cluster.task_finished_listeners.append(self.notify)
        self.delivered = 0  # successful POSTs, for tests and reports
        self.failed = 0  # deliveries given up after every attempt

    def notify(self, task: Task) -> None:
        try:
            self._send.send_nowait(task)
        except trio.WouldBlock:
            logger.error("webhook queue full: task %s will not be delivered", task.uid)

    async def run(self) -> None:
        client = self._client or httpx.AsyncClient(timeout=self.settings.timeout_s)
        try:
            async with trio.open_nursery() as deliveries:
                async for first in self._receive:
                    batch = [first]
                    while True:
                        try:
                            batch.append(self._receive.receive_nowait())
                        except trio.WouldBlock:
                            break
                    await self._dispatch(client, batch, deliveries)
        finally:
            if self._client is None:
                with trio.CancelScope(shield=True):
                    await client.aclose()

    async def _dispatch(self, client: httpx.AsyncClient, batch: list[Task],
                        deliveries: trio.Nursery) -> None:
        try:
            records = await self.cluster.store.get_webhooks()
        except Exception:
            logger.exception("could not read the webhooks; %d task(s) not delivered", len(batch))
            return
        if not records:
            return
        body = delivery_body(render_task(task) for task in sorted(batch, key=lambda t: t.uid))
        for record in records.values():
            deliveries.start_soon(self._deliver, client, Webhook.from_record(record), body)

    async def _deliver(self, client: httpx.AsyncClient, webhook: Webhook, body: bytes) -> None:
        delays = retry_delays(self.settings.attempts, self.settings.first_backoff_s)
        for attempt in range(self.settings.attempts):
            problem = await self._post(client, webhook, body)
            if problem is None:
                self.delivered += 1
                return
            if attempt < len(delays):
                logger.warning("webhook %s: %s; retry in %.1fs", webhook.uuid, problem,
                               delays[attempt])
                await trio.sleep(delays[attempt])
        self.failed += 1
        logger.error("webhook %s: gave up after %d attempts", webhook.uuid,
                     self.settings.attempts)

    async def _post(self, client: httpx.AsyncClient, webhook: Webhook, body: bytes) -> Any:
        """None when the receiver took it, else what went wrong (never a header value)."""
        try:
            response = await client.post(webhook.url, content=body,
                                         headers=delivery_headers(webhook))
        except httpx.HTTPError as error:
            return type(error).__name__
        if response.status_code >= 300:
            return f"answered {response.status_code}"
        return None
