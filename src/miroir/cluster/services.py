"""The background services of one proxy process: which run, with which settings, and how they
start.

Seven services keep a proxy's view of the cluster current while it serves:
- the task poller (`tasks.poll_tasks_forever`) refreshes every unfinished task from its node
  tasks (task times from the cluster's clock);
- the task pruner (`store.maintenance.prune_periodically`) forgets finished tasks older than the
  store's TTL, "older" by the cluster's clock;
- the repair worker (`repair.RepairWorker`), a node state observer, re-provisions and catches up
  a node back from `failed` and finds serving nodes that lost their state;
- the health checker (`health.HealthChecker`) probes every node and feeds the verdicts, stamped
  by the cluster's clock, to the node state machine;
- the reconciler (`reconcile.Reconciler`) compares every shard's replicas and every node's
  settings with the committed ones, and repairs what differs (anti-entropy, rate-limited).
- the topology follower (`topology_sync.TopologyFollower`) adopts every newer epoch of the
  topology stored by any process (in production on the health interval);
- the rebalancer (`rebalance.Rebalancer`, when `rebalance.enabled`: the default) moves
  shards for a membership change, one process at a time under a store lease;
- the webhook delivery (`webhooks.WebhookDelivery`) POSTs every task this process sees finish
  to the webhooks in the store, with retries, never on a request's path.

`Services` describes which of them run (a field left `None` does not run) and with which
settings; `run_services` starts them in a nursery the caller owns and cancels to stop them. The
app calls it when it starts serving (`miroir.proxy.lifecycle`), with `services_for(config)` unless
it was handed a description; the simulator hands the app its own description, so the same
services run in both, started by the same function, on whatever clock the `Cluster` was built
with. Every service waits with `trio.sleep`, so under trio's MockClock they run on virtual time.

Must never: read the config module (the proxy turns the config into a `Services`), or start a
service any other way than here (one place decides the start order, which the simulator's
traces depend on: poller, pruner, repair worker, health checker, reconciler, topology
follower, rebalancer, webhook delivery).
"""

from __future__ import annotations

import attrs
import trio

from miroir.cluster.health import HealthChecker, HealthSettings
from miroir.cluster.rebalance import Rebalancer, RebalanceSettings
from miroir.cluster.reconcile import INTERVAL_S as RECONCILE_INTERVAL_S
from miroir.cluster.reconcile import SHARD_PAUSE_S, Reconciler
from miroir.cluster.repair import RETRY_S, SWEEP_S, RepairWorker
from miroir.cluster.reshard import Resharder, ReshardSettings
from miroir.cluster.runtime import Cluster
from miroir.cluster.tasks import poll_tasks_forever
from miroir.cluster.topology_sync import TopologyFollower
from miroir.cluster.webhooks import WebhookDelivery, WebhookSettings
from miroir.store.maintenance import prune_periodically

# How often unfinished tasks are refreshed from their node tasks.
TASK_POLL_INTERVAL_S = 0.5
# How often finished tasks older than the store's TTL are pruned.
TASK_PRUNE_INTERVAL_S = 60.0


@attrs.frozen
class RepairSettings:
    """The repair worker's pacing: retry an unfinished repair every `retry_s`, look at every
    serving node for a lost state every `sweep_s`."""

    retry_s: float = RETRY_S
    sweep_s: float = SWEEP_S


@attrs.frozen
class ReconcileSettings:
    """The reconciler's pacing: a pass every `interval_s`, `shard_pause_s` between shards."""

    interval_s: float = RECONCILE_INTERVAL_S
    shard_pause_s: float = SHARD_PAUSE_S


@attrs.frozen
class Services:
    """Which background services run, with which settings; `None` means that one does not run.
    `Services()` runs nothing (tests that drive the cluster by hand)."""

    task_poll_interval_s: float | None = None
    prune_interval_s: float | None = None
    repair: RepairSettings | None = None
    health: HealthSettings | None = None
    reconcile: ReconcileSettings | None = None
    topology_follow_interval_s: float | None = None
    rebalance: RebalanceSettings | None = None
    webhooks: WebhookSettings | None = None
    reshard: ReshardSettings | None = None


@attrs.frozen
class RunningServices:
    """The service objects `run_services` started (None for those not run), for callers that
    inspect them (reports, tests). The poller and the pruner are plain loops with no state."""

    repair_worker: RepairWorker | None
    health_checker: HealthChecker | None
    reconciler: Reconciler | None = None
    topology_follower: TopologyFollower | None = None
    rebalancer: Rebalancer | None = None
    webhook_delivery: WebhookDelivery | None = None
    resharder: Resharder | None = None


def run_services(cluster: Cluster, settings: Services, nursery: trio.Nursery) -> RunningServices:
    """Start the services `settings` names in `nursery`; cancel the nursery to stop them.

    Synchronous on purpose: every service is constructed (the repair worker registered as a
    state observer) before this returns, so no node state change can slip past it."""
    if settings.task_poll_interval_s is not None:
        nursery.start_soon(poll_tasks_forever, cluster, settings.task_poll_interval_s)
    if settings.prune_interval_s is not None:
        # Every proxy may prune (idempotent); what is old enough is the store's TTL.
        nursery.start_soon(prune_periodically, cluster.store, cluster.now_ms,
                           settings.prune_interval_s)
    repair_worker = health_checker = None
    if settings.repair is not None:
        repair_worker = RepairWorker(
            cluster, retry_s=settings.repair.retry_s, sweep_s=settings.repair.sweep_s
        )
        nursery.start_soon(repair_worker.run)
    if settings.health is not None:
        health_checker = HealthChecker(cluster, settings.health)
        nursery.start_soon(health_checker.run)
    reconciler = None
    if settings.reconcile is not None:
        reconciler = Reconciler(cluster, interval_s=settings.reconcile.interval_s,
                                shard_pause_s=settings.reconcile.shard_pause_s)
        nursery.start_soon(reconciler.run)
    topology_follower = None
    if settings.topology_follow_interval_s is not None:
        topology_follower = TopologyFollower(cluster, settings.topology_follow_interval_s)
        nursery.start_soon(topology_follower.run)
    rebalancer = None
    if settings.rebalance is not None:
        rebalancer = Rebalancer(cluster, settings.rebalance)
        nursery.start_soon(rebalancer.run)
    webhook_delivery = None
    if settings.webhooks is not None:
        # Listening from here on: a task that finishes after this returns is delivered.
        webhook_delivery = WebhookDelivery(cluster, settings.webhooks)
        nursery.start_soon(webhook_delivery.run)
    resharder = None
    if settings.reshard is not None:
        resharder = Resharder(cluster, settings.reshard)
        nursery.start_soon(resharder.run)
    return RunningServices(repair_worker, health_checker, reconciler, topology_follower,
                           rebalancer, webhook_delivery, resharder)
