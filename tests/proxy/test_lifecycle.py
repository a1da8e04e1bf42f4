"""The app's lifecycle: the injected clock is the one every part reads, the services it runs by
default are every service on the config's settings, and it closes only what it opened."""

from __future__ import annotations

from miroir.cluster.rebalance import RebalanceSettings
from miroir.cluster.reshard import ReshardSettings
from miroir.cluster.services import (
    TASK_POLL_INTERVAL_S,
    TASK_PRUNE_INTERVAL_S,
    ReconcileSettings,
    RepairSettings,
    Services,
)
from miroir.cluster.webhooks import WebhookSettings
from miroir.config import RebalanceConfig, ReshardingConfig, config_from_dict
from miroir.core.tasks import format_timestamp
from miroir.proxy import create_app
from miroir.proxy.lifecycle import services_for
from miroir.store.memory import MemoryStore
from tests.proxy.harness import AsgiTransport, node_config

CLOCK_MS = 2_500_000_000_123


class FixedClock:
    def now_ms(self) -> int:
        return CLOCK_MS


def config():
    return config_from_dict({"shards": 4, "nodes": node_config(2),
                             "health": {"interval_ms": 300, "timeout_ms": 200}}, env={})


def devnodes(cfg):
    from miroir.devnode.app import DevnodeApp

    return AsgiTransport({node.id: DevnodeApp() for node in cfg.nodes})


async def test_the_injected_clock_stamps_tasks(nursery):
    cfg = config()
    transport = devnodes(cfg)
    for devnode in transport.apps.values():
        nursery.start_soon(devnode.run_task_worker)
    app = create_app(cfg, transport=transport, store=MemoryStore(), clock=FixedClock(),
                     services=Services())
    async with app.test_app() as test_app:
        response = await test_app.test_client().post("/indexes", json={"uid": "movies"})
        assert (await response.get_json())["enqueuedAt"] == format_timestamp(CLOCK_MS)
        cluster = app.extensions["miroir"].cluster
        assert cluster.now_ms() == CLOCK_MS
        assert cluster.clock.__class__ is FixedClock


def test_by_default_every_service_runs_on_the_config_settings():
    cfg = config()
    assert services_for(cfg) == Services(
        task_poll_interval_s=TASK_POLL_INTERVAL_S, prune_interval_s=TASK_PRUNE_INTERVAL_S,
        repair=RepairSettings(), health=cfg.health, reconcile=ReconcileSettings(),
        topology_follow_interval_s=cfg.health.interval_ms / 1000,
        webhooks=WebhookSettings(),
        rebalance=RebalanceSettings(
            settle_ms=2 * cfg.health.interval_ms,
            grace_ms=max(RebalanceConfig().grace_ms, 2 * cfg.health.interval_ms),
            poll_s=cfg.health.interval_ms / 1000),
        reshard=ReshardSettings(
            max_docs_per_second=RebalanceConfig().max_docs_per_second,
            grace_ms=ReshardingConfig().grace_seconds * 1000,
            settle_ms=2 * cfg.scatter.node_timeout_ms,
            poll_s=cfg.health.interval_ms / 1000),
    )


async def test_a_default_app_starts_every_service_and_stops_them_with_the_app():
    cfg = config()
    app = create_app(cfg, transport=devnodes(cfg), store=MemoryStore())
    async with app.test_app():
        running = app.extensions["miroir"].services
        assert running.repair_worker is not None and running.health_checker is not None
        assert running.reconciler is not None
        assert running.topology_follower is not None
        assert running.webhook_delivery is not None
        assert running.rebalancer is not None  # the migration engine is on by default
        started = {task.name.rsplit(".", 1)[-1] for task in app.nursery.child_tasks}
        assert {"poll_tasks_forever", "prune_periodically", "run"} <= started
    assert not app.nursery.child_tasks


class ClosableStore(MemoryStore):
    closed = False

    async def close(self) -> None:
        self.closed = True


async def test_what_was_injected_is_not_closed():
    cfg = config()
    store = ClosableStore()
    app = create_app(cfg, transport=devnodes(cfg), store=store, services=Services())
    async with app.test_app():
        pass
    assert not store.closed


def test_the_reconciler_follows_its_config_section():
    paced = config_from_dict({"nodes": node_config(2), "reconcile": {
        "interval_seconds": 5, "shard_pause_ms": 0}}, env={})
    assert services_for(paced).reconcile == ReconcileSettings(interval_s=5, shard_pause_s=0.0)
    off = config_from_dict({"nodes": node_config(2), "reconcile": {"enabled": False}}, env={})
    assert services_for(off).reconcile is None


async def test_the_app_starts_under_the_stored_topology_and_points_the_transport_at_it():
    """A node added through another process (stored, epoch 2) is routed to from the start, at
    the address the store gives; the config's topology only seeds an empty store."""
    from miroir.cluster.topology_sync import load_or_seed
    from miroir.core.node_state import NodeState
    from miroir.core.topology import Node
    from miroir.core.topology_record import TOPOLOGY_RECORD, encode_topology
    from miroir.transport.http import HttpTransport

    cfg = config()
    store = MemoryStore()
    seeded = await load_or_seed(store, cfg.topology())
    grown = seeded.topology.with_node(Node("late", "http://127.0.0.1:1", 0, NodeState.JOINING))
    await store.put_record_if(TOPOLOGY_RECORD, seeded.epoch, encode_topology(grown))
    transport = HttpTransport({n.id: n.address for n in cfg.nodes}, api_key=None)
    app = create_app(cfg, transport=transport, store=store, services=Services())
    async with app.test_app():
        cluster = app.extensions["miroir"].cluster
        assert cluster.epoch == 2
        assert cluster.state_of("late") is NodeState.JOINING
        assert transport.addresses()["late"] == "http://127.0.0.1:1"
    await transport.aclose()
