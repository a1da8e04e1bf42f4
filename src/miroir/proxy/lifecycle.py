"""What the proxy does when it starts serving and when it stops: `Lifecycle`.

Start (Quart's `before_serving`): open what was not injected (an `HttpTransport` to the
configured nodes, the configured task store), build the `Cluster` on the injected clock, hook
the metrics onto it (node states, node calls, shard coverage), raise the garbage collector's
threshold, and start the background services in the app's nursery through
`miroir.cluster.services.run_services` (`services_for(config)` unless the app was handed a
description). Stop (`after_serving`, after Quart cancelled the nursery the services run in):
restore the threshold and close what start opened, never what was injected.

Must never: start a background service other than through `run_services`, close an injected
transport or store, or hold request handling (that is `miroir.proxy.app` and the routes).
"""

from __future__ import annotations

import contextlib
import gc
import logging
from typing import Any

import attrs
import trio

from miroir.cluster.clock import Clock
from miroir.cluster.keys import KeyRing
from miroir.cluster.rebalance import RebalanceSettings
from miroir.cluster.reshard import ReshardSettings
from miroir.cluster.runtime import Cluster, ClusterSettings
from miroir.cluster.services import (
    TASK_POLL_INTERVAL_S,
    TASK_PRUNE_INTERVAL_S,
    ReconcileSettings,
    RepairSettings,
    Services,
    run_services,
)
from miroir.cluster.topology_sync import announce, load_or_seed, process_ttl_ms
from miroir.cluster.webhooks import WebhookSettings
from miroir.config import MiroirConfig
from miroir.core.topology import Topology
from miroir.core.topology_record import RecordError
from miroir.proxy.access_log import ensure_output
from miroir.proxy.state import ProxyState
from miroir.store.base import Store, StoreError
from miroir.transport.base import Addressable, Transport

logger = logging.getLogger("miroir.topology")

# While serving, the cyclic garbage collector runs only after this many more container objects
# were allocated than freed (Python's default is 700). A search holds a few thousand parsed
# objects per request in flight; with 700 the collector ran every few requests and rescanned
# them, ~12% of a search's CPU (docs/benchmarks.md). Miroir's own request path leaves no cyclic
# garbage, so the collector has little to find; the cost is at most this many objects of cyclic
# garbage (a few MB) held a while longer. Restored when serving stops.
GC_YOUNG_THRESHOLD_WHILE_SERVING = 100_000


def services_for(config: MiroirConfig) -> Services:
    """What a proxy runs in production: every service, the health checker on `config.health`,
    the webhook delivery with its default pacing."""
    return Services(
        task_poll_interval_s=TASK_POLL_INTERVAL_S,
        prune_interval_s=TASK_PRUNE_INTERVAL_S,
        repair=RepairSettings(),
        health=config.health,
        reconcile=ReconcileSettings(
            interval_s=config.reconcile.interval_seconds,
            shard_pause_s=config.reconcile.shard_pause_ms / 1000,
        ) if config.reconcile.enabled else None,
        topology_follow_interval_s=config.health.interval_ms / 1000,
        rebalance=rebalance_settings(config) if config.rebalance.enabled else None,
        webhooks=WebhookSettings(),
        reshard=reshard_settings(config),
    )


def reshard_settings(config: MiroirConfig) -> ReshardSettings:
    """The reshard engine's pacing: the rebalancer's copy rate, the config's grace period."""
    return ReshardSettings(
        max_docs_per_second=config.rebalance.max_docs_per_second,
        grace_ms=max(config.resharding.grace_seconds * 1000, 2 * config.health.interval_ms),
        settle_ms=2 * config.scatter.node_timeout_ms,
        poll_s=config.health.interval_ms / 1000,
    )


def rebalance_settings(config: MiroirConfig) -> RebalanceSettings:
    """The engine's pacing from the config: it waits two follow intervals before copying."""
    return RebalanceSettings(
        max_docs_per_second=config.rebalance.max_docs_per_second,
        settle_ms=2 * config.health.interval_ms,
        grace_ms=max(config.rebalance.grace_ms, 2 * config.health.interval_ms),
        poll_s=config.health.interval_ms / 1000,
    )


async def adopt_stored_topology(cluster: Cluster, config_topology: Topology) -> None:
    """Start under the store's topology (seeded from the config on first start). A store that
    fails here does not stop the proxy: it serves by the config's topology at epoch 0 and the
    topology follower loads or seeds the record once the store answers."""
    try:
        found = await load_or_seed(cluster.store, config_topology)
    except (StoreError, RecordError) as exc:
        logger.warning("serving by the config's topology: the store's could not be read (%s)", exc)
        return
    cluster.adopt_epoch(found.epoch, found.topology, found.migration)


def cluster_settings(config: MiroirConfig) -> ClusterSettings:
    """The plain values the cluster takes from the config (the cluster never reads config)."""
    return ClusterSettings(
        node_timeout_ms=config.scatter.node_timeout_ms,
        node_master_key=config.node_master_key,
        unhealthy_threshold=config.health.unhealthy_threshold,
        recovery_threshold=config.health.recovery_threshold,
        retry_on_timeout=config.scatter.retry_on_timeout,
        max_in_flight_per_node=config.scatter.max_in_flight_per_node,
        queue_timeout_ms=config.scatter.queue_timeout_ms,
        adaptive_replica_selection=config.scatter.adaptive_replica_selection,
        hedging=config.scatter.hedging,
        hedge_budget=config.scatter.hedge_budget_percent / 100,
        write_retries=config.scatter.write_retries,
        write_retry_budget=config.scatter.write_retry_budget_percent / 100,
        write_deadline_ms=config.scatter.write_deadline_ms,
    )


@attrs.define
class Lifecycle:
    """One app's start and stop; see the module docstring."""

    state: ProxyState
    transport: Transport | None
    store: Store | None
    clock: Clock
    services: Services
    # What `start` opened or changed, and `stop` must close or restore.
    _opened: dict[str, Any] = attrs.field(factory=dict, init=False)

    async def start(self, nursery: trio.Nursery) -> None:
        config = self.state.config
        ensure_output()
        transport = self.transport if self.transport is not None else self._open_transport()
        store = self.store if self.store is not None else await self._open_store()
        cluster = Cluster(config.topology(), transport, store, cluster_settings(config),
                          clock=self.clock)
        await adopt_stored_topology(cluster, config.topology())
        follow_s = self.services.topology_follow_interval_s
        if follow_s is not None:
            # Before serving: the rebalancer must see this process (and its epoch) at once.
            await announce(cluster, process_ttl_ms(follow_s))
        if isinstance(transport, Addressable):
            cluster.epoch_observers.append(
                lambda _epoch, topology: transport.set_addresses(
                    {n.id: n.address for n in topology.nodes}))
            transport.set_addresses({n.id: n.address for n in cluster.topology.nodes})
        self._observe(cluster)
        self.state.cluster = cluster
        keyring = KeyRing(store, config.master_key)
        await keyring.seed_defaults(cluster.now_ms())
        self.state.keyring = keyring
        self._opened["gc_threshold"] = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD_WHILE_SERVING, *self._opened["gc_threshold"][1:])
        self.state.services = running = run_services(cluster, self.services, nursery)
        if running.reconciler is not None:
            running.reconciler.observers.append(self.state.metrics.observe_reconcile)
        if running.rebalancer is not None:
            running.rebalancer.observers.append(self.state.metrics.observe_rebalance)
        if running.resharder is not None:
            running.resharder.observers.append(self.state.metrics.observe_reshard)

    async def stop(self) -> None:
        cluster = self.state.cluster
        if cluster is not None and self.services.topology_follow_interval_s is not None:
            with contextlib.suppress(StoreError):  # it lapses anyway
                await cluster.store.delete_process_record(cluster.process_id)
        if "gc_threshold" in self._opened:
            gc.set_threshold(*self._opened.pop("gc_threshold"))
        if "transport" in self._opened:
            await self._opened.pop("transport").aclose()
        if "store" in self._opened:
            await self._opened.pop("store").close()

    def _open_transport(self) -> Transport:
        from miroir.transport.http import HttpTransport

        config = self.state.config
        transport = self._opened["transport"] = HttpTransport(
            {node.id: node.address for node in config.nodes}, api_key=config.node_master_key
        )
        return transport

    async def _open_store(self) -> Store:
        from miroir.store.factory import open_store

        store = self._opened["store"] = await open_store(attrs.asdict(self.state.config.task_store))
        return store

    def _observe(self, cluster: Cluster) -> None:
        metrics = self.state.metrics
        cluster.state_observers.append(metrics.observe_node_state)
        cluster.state_observers.append(lambda *_: update_coverage(self.state))
        cluster.call_observers.append(metrics.observe_node_call)
        cluster.gates.shed_observers.append(metrics.observe_shed)
        cluster.gates.depth_observers.append(metrics.observe_queue_depth)
        cluster.hedge_observers.append(metrics.observe_hedge)
        cluster.write_retries.observers.append(metrics.observe_write_retry)
        cluster.epoch_observers.append(metrics.observe_epoch)
        metrics.observe_epoch(cluster.epoch)
        for node_id in cluster.node_ids():
            metrics.observe_node_state(node_id, cluster.state_of(node_id))
        update_coverage(self.state)


def update_coverage(state: ProxyState) -> None:
    """`miroir_shard_coverage`: the fraction of shards some group can read."""
    cluster = state.cluster
    if cluster is None:
        return
    shard_map = cluster.shard_map
    covered = sum(
        1
        for shard in range(shard_map.shards)
        if any(shard_map.readable_owners(g, shard) for g in range(shard_map.replica_groups))
    )
    state.metrics.shard_coverage.set(covered / shard_map.shards)
