"""A Miroir proxy over in-process devnodes, for the proxy tests.

`AsgiTransport` is a real `Transport`: it hands each request to a devnode's ASGI app in the same
process (no sockets), honours the absolute deadline, and can be told to refuse calls to a node
(`down`), which looks to Miroir exactly like a node that stopped answering.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import attrs
import orjson
import trio

from miroir.cluster.services import ReconcileSettings, RepairSettings, Services
from miroir.config import config_from_dict
from miroir.devnode.app import DevnodeApp
from miroir.proxy import create_app
from miroir.store.memory import MemoryStore
from miroir.transport.base import NodeRefused, NodeResponse, NodeTimeout, UnknownNode


class AsgiTransport:
    def __init__(self, apps: dict[str, DevnodeApp]) -> None:
        self.apps = apps
        self.down: set[str] = set()
        # (node, method, path) -> True makes that one call fail as if the node were down.
        self.refuse: Callable[[str, str, str], bool] = lambda node, method, path: False
        self.calls: list[tuple[str, str, str]] = []
        # node -> seconds every call to it takes before the devnode sees it (a slow node).
        self.delay: dict[str, float] = {}

    async def request(
        self,
        node_id: str,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        headers: Sequence[tuple[str, str]] = (),
        deadline: float,
    ) -> NodeResponse:
        self.calls.append((node_id, method, path))
        app = self.apps.get(node_id)
        if app is None:
            raise UnknownNode(node_id, "no such devnode")
        if node_id in self.down or self.refuse(node_id, method, path):
            raise NodeRefused(node_id, "connection refused (test)")
        if self.delay.get(node_id):
            with trio.move_on_at(deadline):
                await trio.sleep(self.delay[node_id])
            if trio.current_time() >= deadline:
                raise NodeTimeout(node_id, "deadline passed (slow test node)")
        raw_path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "method": method,
            "path": raw_path,
            "query_string": query.encode(),
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                await trio.sleep_forever()
            sent = True
            return {"type": "http.request", "body": body or b"", "more_body": False}

        start: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        with trio.move_on_at(deadline):
            await app(scope, receive, send)
            return NodeResponse(
                node_id,
                start["status"],
                [(k.decode().lower(), v.decode()) for k, v in start.get("headers", [])],
                b"".join(chunks),
            )
        raise NodeTimeout(node_id, "deadline passed")

    async def aclose(self) -> None:
        pass


@attrs.define
class Harness:
    app: Any
    client: Any
    nodes: dict[str, DevnodeApp]
    transport: AsgiTransport
    store: MemoryStore
    nursery: Any = None
    _workers: Any = None

    def start_node_workers(self) -> None:
        """Let the devnodes apply their enqueued tasks (they do from the start)."""

        async def run_all() -> None:
            async with trio.open_nursery() as workers:
                self._workers = workers.cancel_scope
                for devnode in self.nodes.values():
                    workers.start_soon(devnode.run_task_worker)

        self.nursery.start_soon(run_all)

    def pause_node_workers(self) -> None:
        """Node tasks stay `enqueued` until `start_node_workers` (to catch tasks mid-flight)."""
        self._workers.cancel()

    @property
    def cluster(self):
        return self.app.extensions["miroir"].cluster

    async def wait_task(self, uid: int, headers: dict[str, str] | None = None) -> dict[str, Any]:
        with trio.fail_after(10):
            while True:
                response = await self.client.get(f"/tasks/{uid}", headers=headers)
                task = await response.get_json()
                if task["status"] in ("succeeded", "failed", "canceled"):
                    return task
                await trio.sleep(0.005)

    async def send(self, method: str, path: str, body: Any = None, **kwargs: Any):
        headers = dict(kwargs.pop("headers", {}) or {})
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else orjson.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        response = await self.client.open(path, method=method, data=data, headers=headers, **kwargs)
        return response.status_code, await response.get_json(), response.headers


def node_config(count: int, groups: int = 1) -> list[dict[str, Any]]:
    return [
        {"id": f"n{i}", "address": f"http://node{i}.invalid:7700", "replica_group": i % groups}
        for i in range(count)
    ]


@asynccontextmanager
async def running_proxy(**options: Any) -> AsyncIterator[Harness]:
    """One proxy over fresh devnodes and a fresh MemoryStore (options: `running_proxies`)."""
    async with running_proxies(1, **options) as (harness,):
        yield harness


@asynccontextmanager
async def running_proxies(
    count: int,
    *,
    nodes: int = 3,
    shards: int = 8,
    replication_factor: int = 1,
    replica_groups: int = 1,
    master_key: str | None = None,
    admin_key: str | None = None,
    max_body_bytes: int | None = None,
    node_timeout_ms: int = 2000,
    task_poll_interval_s: float | None = None,
    node_master_key: str | None = None,
    health_interval_ms: int | None = None,
    task_ttl_ms: int | None = None,
    prune_interval_s: float | None = None,
    max_in_flight_per_node: int | None = None,
    queue_timeout_ms: int | None = None,
    adaptive: bool = False,
    reconcile: ReconcileSettings | None = None,
    webhooks: Any = None,
    resharding: dict[str, Any] | None = None,
    clock: Any = None,
    store: Any = None,
) -> AsyncIterator[tuple[Harness, ...]]:
    """`count` proxy apps (as separate proxy processes would be) over the same devnodes and one
    shared MemoryStore; the devnodes' task workers run once, under the first harness.

    Adaptive replica selection and hedging are off unless `adaptive`: both choose replicas by
    measured (wall clock) latency, which would make which of two exactly tied documents a
    merge keeps vary between runs of tests that compare with a single node."""
    raw: dict[str, Any] = {
        "shards": shards,
        "replication_factor": replication_factor,
        "replica_groups": replica_groups,
        "nodes": node_config(nodes, replica_groups),
        "scatter": {"node_timeout_ms": node_timeout_ms,
                    "adaptive_replica_selection": adaptive, "hedging": adaptive},
    }
    if max_in_flight_per_node is not None:
        raw["scatter"]["max_in_flight_per_node"] = max_in_flight_per_node
    if queue_timeout_ms is not None:
        raw["scatter"]["queue_timeout_ms"] = queue_timeout_ms
    if master_key:
        raw["master_key"] = master_key
    if admin_key:
        raw["admin"] = {"api_key": admin_key}
    if node_master_key:
        raw["node_master_key"] = node_master_key
    if health_interval_ms:
        raw["health"] = {"interval_ms": health_interval_ms, "timeout_ms": health_interval_ms}
    if max_body_bytes:
        raw["server"] = {"max_body_bytes": max_body_bytes}
    if resharding is not None:
        raw["resharding"] = resharding
    config = config_from_dict(raw, env={})
    apps = {node["id"]: DevnodeApp(master_key=node_master_key) for node in raw["nodes"]}
    transport = AsgiTransport(apps)
    if store is None:
        store = MemoryStore() if task_ttl_ms is None else MemoryStore(task_ttl_ms=task_ttl_ms)
    # Only the services a test asks for run: the others would add calls it does not expect.
    services = Services(
        task_poll_interval_s=task_poll_interval_s,
        prune_interval_s=prune_interval_s,
        repair=RepairSettings() if health_interval_ms is not None else None,
        health=config.health if health_interval_ms is not None else None,
        reconcile=reconcile,
        webhooks=webhooks,
    )
    proxies = [
        create_app(config, transport=transport, store=store, services=services,
                   **({} if clock is None else {"clock": clock}))
        for _ in range(count)
    ]
    async with trio.open_nursery() as nursery, AsyncExitStack() as stack:
        harnesses = []
        for app in proxies:
            test_app = await stack.enter_async_context(app.test_app())
            harnesses.append(
                Harness(app, test_app.test_client(), apps, transport, store, nursery)
            )
        harnesses[0].start_node_workers()
        yield tuple(harnesses)
        await stack.aclose()
        nursery.cancel_scope.cancel()
