"""The live cluster one proxy process talks to: topology, shard map, node calls, health.

Owns the mutable runtime state of a proxy: the current `Topology` and its `ShardMap` (rebuilt
through `ShardMap.build(topology, previous=...)` whenever a node changes state), the per-node
`HealthCounter`s, the per-process query sequence used for round robin, and the index catalog
(`catalog`: what this process knows of each index, checked against the store; see
`cluster.catalog`). Every node call goes through `call`, `call_each`, `fan_out`,
`first_success` or `quorum_write` here, so each one carries the node master key and a deadline from
`node_timeout_ms`, runs through the one mechanism for its shape (`scatter.call_node`,
`scatter.scatter`, `race.first_success`, `quorum_write.quorum_write`), and every result on a
real request is observed: metrics, and a transport failure fed to health like a failed probe.

Must never: import the proxy or the config module (it is handed plain values), render HTTP
responses, or log a key. Wall time (task records, "last seen") is read from the injected
`clock` (`miroir.cluster.clock`) when needed, so a simulator can drive it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import orjson
import trio

from miroir.cluster.admission import Gates
from miroir.cluster.catalog import IndexCatalog
from miroir.cluster.clock import WALL_CLOCK, Clock
from miroir.cluster.layouts import LayoutCache
from miroir.cluster.quorum_write import QuorumWriteResult, quorum_write
from miroir.cluster.race import first_success
from miroir.cluster.scatter import NodeCall, call_node, scatter
from miroir.cluster.write_retry import RetryAs, WriteRetries, WriteRetrySettings
from miroir.core.migration_map import MigratingShardMap, Migration
from miroir.core.node_state import (
    HealthCounter,
    IllegalTransition,
    NodeEvent,
    NodeState,
    Signal,
)
from miroir.core.quorum import Pair
from miroir.core.replica_choice import (
    HedgeBudget,
    LatencyStats,
    adaptive_covering_set,
    replica_score,
)
from miroir.core.tasks import Task
from miroir.core.topology import ShardMap, Topology
from miroir.core.topology_record import live_topology
from miroir.store.base import Store
from miroir.transport.base import (
    FailureKind,
    NodeResponse,
    NodeResult,
    NodeTimeout,
    Transport,
    failure_kind,
)

# Observers get (node_id, state) whenever a node's state changes: the metrics hook.
StateObserver = Callable[[str, NodeState], None]
# Observers of every node call: (node_id, seconds, result) -- the metrics hook.
CallObserver = Callable[[str, float, NodeResult], None]


@attrs.frozen
class ClusterSettings:
    """The plain values the cluster needs from the config (cluster must not import config)."""

    node_timeout_ms: int = 5000
    node_master_key: str | None = attrs.field(default=None, repr=False)
    unhealthy_threshold: int = 3
    recovery_threshold: int = 2
    # Reads: a node that times out hands its shards to another replica (like a failure). When
    # off, its shards are reported missing instead and every attempt gets the whole deadline.
    retry_on_timeout: bool = True
    # Reads: per-node concurrency limit and queue patience (`cluster.admission`); 0 = no limit.
    max_in_flight_per_node: int = 0
    queue_timeout_ms: int = 2000
    # Reads with a choice of replica (RF > 1): the one expected to answer soonest
    # (`core.replica_choice`); hedged reads: a shard later than its node's p95 is asked of
    # another replica too, within `hedge_budget` (a fraction of node calls).
    adaptive_replica_selection: bool = False
    hedging: bool = False
    hedge_budget: float = 0.1
    # Document writes: a failed or timed-out node write is sent again (at most this many times
    # per node, within `write_retry_budget` extra attempts per first attempt and the write's
    # deadline, `write_deadline_ms`, 0: twice the node timeout); see `cluster.write_retry`.
    write_retries: int = 2
    write_retry_budget: float = 0.2
    write_deadline_ms: int = 0


class Cluster:
    """One proxy process's view of the cluster and its only way of reaching nodes."""

    def __init__(
        self,
        topology: Topology,
        transport: Transport,
        store: Store,
        settings: ClusterSettings | None = None,
        *,
        clock: Clock = WALL_CLOCK,
    ) -> None:
        self.settings = settings or ClusterSettings()
        self.transport = transport
        self.store = store
        self.clock = clock
        self.topology = topology
        self.shard_map = ShardMap.build(topology)
        # The epoch of the durable topology this process routes by (`cluster.topology_sync`);
        # 0 until it adopted one from the store. `_durable` is that record's topology.
        self.epoch = 0
        self._durable: Topology | None = None
        # This process's name in the store's process records (`topology_sync.announce`): which
        # epoch it routes by, so the rebalancer knows when every live process adopted one.
        self.process_id = f"proc-{uuid.uuid4().hex[:12]}"
        # The migration in force at that epoch (shards moving: `core.migration_map`), or None.
        self.migration: Migration | None = None
        # Told (epoch, topology) after an epoch is adopted: the transport's addresses, metrics.
        self.epoch_observers: list[Callable[[int, Topology], None]] = []
        self.health = {
            node.id: HealthCounter(
                self.settings.unhealthy_threshold, self.settings.recovery_threshold
            )
            for node in topology.nodes
        }
        self.last_seen_ms: dict[str, int | None] = {node.id: None for node in topology.nodes}
        self.catalog = IndexCatalog(store)
        # Client uid -> node-side index (`cluster.layouts`); cluster paths speak node-side names.
        self.layouts = LayoutCache(store)
        self.gates = Gates(self.settings.max_in_flight_per_node, self.settings.queue_timeout_ms)
        # Per node, the latency of its answers (adaptive replica choice, hedging thresholds).
        self.latency: dict[str, LatencyStats] = {node.id: LatencyStats() for node in topology.nodes}
        self.hedge_budget = HedgeBudget(ratio=self.settings.hedge_budget)
        self.hedge_observers: list[Callable[[str], None]] = []
        # Node-write retries: cache, order, budget; `write_retries.observers` is the metrics hook.
        self.write_retries = WriteRetries(
            WriteRetrySettings(
                max_retries=self.settings.write_retries,
                budget_ratio=self.settings.write_retry_budget,
                write_deadline_ms=self.settings.write_deadline_ms,
                retry_on_timeout=self.settings.retry_on_timeout,
            ),
            self.settings.node_timeout_ms,
        )
        # Readable owners per group, per map (`adaptive_read_plan`): a few maps at once when
        # indexes of different shard counts are read, so keyed by the map's identity.
        self._readable: dict[int, tuple[ShardMap, dict[int, dict[int, tuple[str, ...]]]]] = {}
        # `shard_map_for`'s maps of other shard counts, for the map they were derived from.
        self._maps_by_shards: tuple[ShardMap | None, dict[int, ShardMap]] = (None, {})
        self._index_locks: dict[str, trio.Lock] = {}
        self._query_seq = 0
        self.state_observers: list[StateObserver] = []
        self.call_observers: list[CallObserver] = []
        # Told of every task this process saw finish (exactly one process sees each finish:
        # the one whose store update made it final); the webhook delivery listens here.
        self.task_finished_listeners: list[Callable[[Task], None]] = []
        self._auth_headers: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {self.settings.node_master_key}"),)
            if self.settings.node_master_key
            else ()
        )

    # ---- topology and health ------------------------------------------------------------

    def node_ids(self) -> list[str]:
        return [node.id for node in self.topology.nodes]

    def state_of(self, node_id: str) -> NodeState:
        return self.topology.node(node_id).state

    def now_ms(self) -> int:
        """Wall time in ms from this cluster's clock: what task records and "last seen" store."""
        return self.clock.now_ms()

    def next_query_seq(self) -> int:
        """A per-process sequence number for round robin over groups and replicas."""
        self._query_seq += 1
        return self._query_seq

    def record_node_result(
        self, node_id: str, ok: bool | Signal, now_ms: int, *, probe: bool = True
    ) -> NodeState:
        """Feed one probe's verdict (or, with `probe=False`, one real request's outcome) into
        the node's health (`HealthCounter`: thresholds and hysteresis); returns its new state.
        `ok` is a `Signal`, or a bool for a probe's plain verdict."""
        node = self.topology.node(node_id)
        if ok is True or ok is Signal.ANSWERED:
            self.last_seen_ms[node_id] = now_ms
        event = self.health[node_id].record(node.state, ok, probe=probe)
        if event is None:
            return node.state
        try:
            return self.apply_node_event(node_id, event)
        except IllegalTransition:
            return node.state  # e.g. a removed node: nothing to change

    def apply_node_event(self, node_id: str, event: NodeEvent) -> NodeState:
        """Apply one event to a node (the transition table decides; IllegalTransition if it has
        no row) and tell every state observer; returns the node's new state. Health results come
        through `record_node_result`; the repair worker sends `rejoin` and `caught_up` here.

        Observers are told the node's state as it is when each one is called, so an observer
        that applies an event itself (the repair worker's `rejoin`) is not contradicted by the
        observers after it."""
        topology = self.topology.with_event(node_id, event)
        if topology is not self.topology:
            self.topology = topology
            self.shard_map = self._build_map(topology)
        for observer in list(self.state_observers):
            observer(node_id, self.topology.node(node_id).state)
        return self.topology.node(node_id).state

    def shard_map_for(self, node_index: str) -> ShardMap:
        """The shard map routing the node-side index `node_index`: `shard_map` itself when the
        index has the topology's shard count (no layout says otherwise: the common case, one
        dict lookup), else the same membership, node states and migration for the index's own
        S (`ShardMap.with_shards`), built once per S and per `shard_map`: a map rebuilt by a
        node event or an epoch drops them, whatever assigned it.

        Reads the layouts from `layouts.cached()`: a request resolved its uid through
        `layouts.current()` before coming here. A background service that did not should
        use `current_shard_map_for`."""
        shard_map = self.shard_map
        shards = self.layouts.cached().node_shards.get(node_index)
        if shards is None or shards == shard_map.shards:
            return shard_map
        return self._shard_map_with(shard_map, shards)

    def _shard_map_with(self, shard_map: ShardMap, shards: int) -> ShardMap:
        """`shard_map.with_shards(shards)`, built once per `shard_map` and count."""
        base, maps = self._maps_by_shards
        if base is not shard_map:
            maps = {}
            self._maps_by_shards = (shard_map, maps)
        found = maps.get(shards)
        if found is None:
            found = maps[shards] = shard_map.with_shards(shards)
        return found

    async def current_shard_map_for(self, node_index: str) -> ShardMap:
        """`shard_map_for` after bringing the layouts up to date (`layouts.current()`): for
        services that do not run inside a request (repair, reconcile, verify, rebalance)."""
        await self.layouts.current()
        return self.shard_map_for(node_index)

    def _build_map(self, topology: Topology) -> ShardMap:
        if self.migration is not None:
            return MigratingShardMap.build_migrating(topology, self.migration)
        previous = None if isinstance(self.shard_map, MigratingShardMap) else self.shard_map
        return ShardMap.build(topology, previous=previous)

    def adopt_epoch(
        self, epoch: int, durable: Topology, migration: Migration | None = None
    ) -> bool:
        """Route by the durable topology of `epoch` from now on, if it is newer than the one in
        force; returns whether it was adopted. Membership and addresses come from `durable`;
        each node's state is merged with this process's health view
        (`miroir.core.topology_record.live_topology`). The new `ShardMap` replaces the old one
        in one assignment, so a request holding the old map finishes under the old epoch."""
        if epoch <= self.epoch:
            return False
        before = self.topology
        topology = live_topology(durable, self._durable, before)
        self.migration = migration
        self.topology = topology
        self.shard_map = self._build_map(topology)
        self.epoch, self._durable = epoch, durable
        for node in topology.nodes:
            if node.id not in self.health:
                self.health[node.id] = HealthCounter(
                    self.settings.unhealthy_threshold, self.settings.recovery_threshold)
                self.last_seen_ms[node.id] = None
            self.latency.setdefault(node.id, LatencyStats())
        for observer in list(self.epoch_observers):
            observer(epoch, topology)
        known = before.states()
        for node in topology.nodes:
            if known.get(node.id) is not node.state:
                for state_observer in list(self.state_observers):
                    state_observer(node.id, node.state)
        return True

    @property
    def durable_topology(self) -> Topology | None:
        """The membership view of the epoch in force (None before one was adopted)."""
        return self._durable

    def fully_covered(self) -> bool:
        """Every shard of every shard count in use (the topology's, and each one the layouts
        give an index) has a readable owner: a node may own shards at one count and none at
        another."""
        shard_map = self.shard_map
        return shard_map.fully_covered() and all(
            self._shard_map_with(shard_map, shards).fully_covered()
            for shards in set(self.layouts.cached().node_shards.values()))

    def serving_nodes(self) -> list[str]:
        """Nodes that serve reads, healthy ones first (for single-node reads like /version)."""
        order = {NodeState.HEALTHY: 0, NodeState.ACTIVE: 1, NodeState.DEGRADED: 2}
        nodes = [n for n in self.topology.nodes if n.state in order]
        nodes.sort(key=lambda n: (order[n.state], n.id))
        return [n.id for n in nodes]

    def writable_nodes(self) -> list[str]:
        """Every node a broadcast must reach: all but failed and removed ones."""
        return [
            n.id
            for n in self.topology.nodes
            if n.state not in (NodeState.FAILED, NodeState.REMOVED)
        ]

    def all_nodes(self) -> list[str]:
        """Every node that is part of the cluster, whatever its state (removed ones excluded)."""
        return [n.id for n in self.topology.nodes if n.state is not NodeState.REMOVED]

    def index_lock(self, index_uid: str) -> trio.Lock:
        """Serialises this process's index creation / primary-key setting for one index, so two
        concurrent first writes do not both try to create it."""
        lock = self._index_locks.get(index_uid)
        if lock is None:
            lock = self._index_locks[index_uid] = trio.Lock()
        return lock

    # ---- node calls ---------------------------------------------------------------------

    def _node_call(
        self, method: str, path: str, body: Any, raw_body: bytes | None, content_type: str
    ) -> NodeCall:
        payload = raw_body if raw_body is not None else (
            None if body is None else orjson.dumps(body)
        )
        headers = self._auth_headers
        if payload is not None:
            headers = (*headers, ("content-type", content_type))
        return NodeCall(method, path, payload, headers)

    def _node_calls(
        self,
        node_ids: Iterable[str],
        method: str,
        path: str | Callable[[str], str],
        body: Any | Callable[[str], Any],
        raw_body: bytes | None,
        content_type: str,
    ) -> dict[str, NodeCall]:
        return {
            node_id: self._node_call(
                method,
                path(node_id) if callable(path) else path,
                body(node_id) if callable(body) else body,
                raw_body,
                content_type,
            )
            for node_id in node_ids
        }

    def _deadline(self, timeout_ms: int | None) -> float:
        return trio.current_time() + (timeout_ms or self.settings.node_timeout_ms) / 1000

    def _observe(self, node_id: str, elapsed: float, result: NodeResult) -> None:
        """Every node answer on a real request: metrics, and health's passive signal (an
        answer, 2xx or 4xx, ends a failure streak and heals a degraded node; a timeout, a
        refusal, a reset or a 5xx is a failure; a failed node heals only through probes)."""
        for observer in self.call_observers:
            observer(node_id, elapsed, result)
        signal = request_signal(result)
        if signal is not Signal.DOWN:
            # A timeout is a latency too (at least `elapsed`): a node that only ever times out
            # would otherwise stay unmeasured, which adaptive selection scores as the fastest.
            stats = self.latency.get(node_id)
            if stats is not None:
                stats.record(elapsed)
        self.record_node_result(node_id, signal, self.now_ms(), probe=False)

    def observe_hedge(self, outcome: str) -> None:
        """A hedged call's step: `sent`, then exactly one outcome: `won`, `lost` (cancelled),
        `dropped` (answered after the winner) or `failed` (`cluster.search`)."""
        for observer in self.hedge_observers:
            observer(outcome)

    def replica_score(self, node_id: str) -> float:
        stats = self.latency.get(node_id)
        gate = self.gates.gates.get(node_id)
        ahead = 0 if gate is None else gate.in_flight + len(gate.queue)
        return replica_score(None if stats is None else stats.average_s, ahead)

    def adaptive_read_plan(
        self, shard_map: ShardMap, group: int, seq: int
    ) -> tuple[tuple[tuple[str, list[int], bool], ...], list[int]]:
        """`ShardMap.read_plan`'s shape, each shard's replica chosen by `replica_score`
        (`core.replica_choice.adaptive_covering_set`); readable owners cached per map."""
        cached = self._readable.get(id(shard_map))
        if cached is None or cached[0] is not shard_map:
            if len(self._readable) >= 8:
                self._readable.clear()  # maps of past epochs: drop them all at once
            by_group: dict[int, dict[int, tuple[str, ...]]] = {}
            self._readable[id(shard_map)] = (shard_map, by_group)
        else:
            by_group = cached[1]
        owners = by_group.get(group)
        if owners is None:
            owners = by_group[group] = {
                s: shard_map.readable_owners(group, s) for s in range(shard_map.shards)
            }
        plan = adaptive_covering_set(owners, seq, self.replica_score)
        uncovered = [s for s, found in owners.items() if not found]
        nodes = tuple((node_id, plan[node_id], shard_map.owns_exactly(node_id, plan[node_id]))
                      for node_id in sorted(plan))
        return nodes, uncovered

    def observe_unanswered(self, node_id: str, elapsed: float, why: str) -> None:
        """A call the caller's own deadline cut off before the node answered (the read path's
        cancel scope fired first): for health and metrics it is the node's timeout."""
        self._observe(node_id, elapsed, NodeTimeout(node_id, why))

    def _observer_from(self, started: float) -> Callable[[str, NodeResult], None]:
        """`_observe` for calls that all started at `started` (one scatter)."""
        return lambda node_id, result: self._observe(
            node_id, trio.current_time() - started, result
        )

    async def call(
        self,
        node_id: str,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw_body: bytes | None = None,
        content_type: str = "application/json",
        timeout_ms: int | None = None,
    ) -> NodeResult:
        """One request to one node under its deadline; a failure is returned, not raised.

        `body` is JSON-encoded (orjson); `raw_body` is sent as is. The deadline is enforced by
        `scatter.call_node` (a cancel scope), even against a transport that ignores it.
        """
        call = self._node_call(method, path, body, raw_body, content_type)
        started = trio.current_time()
        result = await call_node(self.transport, node_id, call, self._deadline(timeout_ms))
        self._observe(node_id, trio.current_time() - started, result)
        return result

    async def call_each(
        self,
        method: str,
        path: str,
        bodies: Mapping[str, bytes | None],
        *,
        content_type: str = "application/json",
        timeout_ms: int | None = None,
        on_result: Callable[[str, NodeResult], None] | None = None,
    ) -> dict[str, NodeResult]:
        """The read path's batch: `method path` to every node of `bodies`, each with its own raw
        body, all under one deadline (`scatter.scatter`, so one task drives them when the
        transport offers `request_many`). Every result is observed like `call`'s, then handed
        to `on_result` as it arrives."""
        calls = {
            node_id: self._node_call(method, path, None, body, content_type)
            for node_id, body in bodies.items()
        }
        if not calls:
            return {}
        started = trio.current_time()

        def observed(node_id: str, result: NodeResult) -> None:
            self._observe(node_id, trio.current_time() - started, result)
            if on_result is not None:
                on_result(node_id, result)

        return await scatter(
            self.transport, calls, deadline=self._deadline(timeout_ms), on_result=observed
        )

    async def fan_out(
        self,
        node_ids: Iterable[str],
        method: str,
        path: str | Callable[[str], str],
        body: Any | Callable[[str], Any] = None,
        *,
        raw_body: bytes | None = None,
        content_type: str = "application/json",
        timeout_ms: int | None = None,
    ) -> dict[str, NodeResult]:
        """The same kind of call to many nodes at once (`scatter.scatter`): every node's result,
        keyed by node. `path` and `body` may be functions of the node id (per-node batches)."""
        calls = self._node_calls(node_ids, method, path, body, raw_body, content_type)
        if not calls:
            return {}
        return await scatter(
            self.transport,
            calls,
            deadline=self._deadline(timeout_ms),
            on_result=self._observer_from(trio.current_time()),
        )

    async def quorum_write(
        self,
        node_ids: Iterable[str],
        method: str,
        path: str,
        body: Any | Callable[[str], Any],
        targets: Mapping[Pair, Iterable[str]],
        *,
        timeout_ms: int | None = None,
        retry_as: RetryAs | None = None,
    ) -> QuorumWriteResult:
        """A write fanned out like `fan_out`, with quorum counted per (shard, group) as the
        answers arrive (`quorum_write.quorum_write`, at this topology's RF).

        `targets` are the nodes whose acknowledgement counts for each pair; an acknowledgement
        is a 2xx carrying the node's task uid (a write Miroir could not follow is no ack).
        `retry_as` makes a failed node write retried (`cluster.write_retry`; off when
        `write_retries` is 0)."""
        calls = self._node_calls(node_ids, method, path, body, None, "application/json")
        plan = None
        if retry_as is not None and self.settings.write_retries > 0:
            plan = self.write_retries.plan(self.transport, retry_as, calls, self._auth_headers)
            calls = plan.calls
        return await quorum_write(
            self.transport,
            calls,
            targets,
            replication_factor=self.topology.replication_factor,
            deadline=self._deadline(timeout_ms),
            on_result=self._observer_from(trio.current_time()),
            acknowledged=enqueued_a_task,
            retry=plan,
        )

    async def first_success(
        self,
        node_ids: Sequence[str],
        method: str,
        path: str,
        body: Any = None,
        *,
        stagger_s: float | None = None,
        deadline: float | None = None,
    ) -> NodeResult | None:
        """Ask `node_ids` in the caller's order until one answers without failing (a 4xx counts
        as an answer): `race.first_success` with this runtime's headers, deadlines and health.

        The next node is asked when the previous one fails or times out; with `stagger_s`, also
        after that many seconds of silence (a hedged read: the slower attempt is cancelled once
        one answers). Every attempt gets the full node deadline from its own start, as if it were
        called alone, so a hung first node delays the answer but does not lose it. `deadline`
        (absolute, trio time) caps the whole race and every attempt in it, for callers that
        answer a client within a bound.

        Returns the winning answer; None when `node_ids` is empty; otherwise the last failure.
        """
        call = self._node_call(method, path, body, None, "application/json")
        started_at: dict[str, float] = {}

        def attempt(node_id: str) -> NodeCall:  # race.first_success calls it as the attempt starts
            started_at[node_id] = trio.current_time()
            own = self._deadline(None)
            return attrs.evolve(call, deadline=own if deadline is None else min(own, deadline))

        # Without a cap, attempts end by their own deadlines and the race as a whole is bounded
        # by the worst case of asking every node one after another.
        worst = self._deadline(self.settings.node_timeout_ms * max(len(node_ids), 1))
        race = await first_success(
            self.transport,
            node_ids,
            attempt,
            deadline=worst if deadline is None else min(worst, deadline),
            stagger=stagger_s,
            on_result=lambda node_id, result: self._observe(
                node_id, trio.current_time() - started_at[node_id], result
            ),
        )
        if race.response is not None:
            return race.response
        return next(reversed(race.failures.values()), None)

    # ---- node tasks ---------------------------------------------------------------------

    async def wait_for_node_tasks(
        self, task_uids: Mapping[str, int], *, timeout_ms: int | None = None, poll_s: float = 0.01
    ) -> dict[str, dict[str, Any] | None]:
        """Poll each node's task until it finishes; node -> final task view (None: no answer
        before the deadline, or the node does not know the task any more).

        A 404 means the node lost its task queue (restarted with its state gone: Meilisearch
        never forgets an unfinished task otherwise), so the task will never finish there; waiting
        out the deadline would stall the caller (the repair worker waits up to a minute) for
        nothing."""
        deadline = trio.current_time() + (timeout_ms or self.settings.node_timeout_ms) / 1000
        finished: dict[str, dict[str, Any] | None] = {}

        async def one(node_id: str, uid: int) -> None:
            delay = poll_s
            while trio.current_time() < deadline:
                result = await self.call(node_id, "GET", f"/tasks/{uid}")
                if isinstance(result, NodeResponse) and result.ok:
                    view = result.json()
                    if view.get("status") in ("succeeded", "failed", "canceled"):
                        finished[node_id] = view
                        return
                elif isinstance(result, NodeResponse) and result.status == 404:
                    finished[node_id] = None
                    return
                await trio.sleep(delay)
                delay = min(delay * 2, 0.2)
            finished[node_id] = None

        async with trio.open_nursery() as nursery:
            for node_id, uid in task_uids.items():
                nursery.start_soon(one, node_id, uid)
        return finished


def request_signal(result: NodeResult) -> Signal:
    """What a real request's result says about its node (`HealthCounter`'s passive signal)."""
    kind = failure_kind(result)
    if kind is None:
        return Signal.ANSWERED
    return Signal.TIMED_OUT if kind is FailureKind.TIMEOUT else Signal.DOWN


def enqueued_a_task(result: NodeResult) -> bool:
    """A write acknowledgement: the node answered 2xx with the uid of the task it enqueued."""
    return task_uid_of(result) is not None


def task_uid_of(result: NodeResult) -> int | None:
    """The node's taskUid from a 202 answer, or None when the node did not enqueue a task."""
    if isinstance(result, NodeResponse) and result.ok:
        try:
            uid = result.json().get("taskUid")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        return uid if isinstance(uid, int) else None
    return None


class NodeRejected(Exception):
    """A node refused a request with a 4xx before enqueuing anything (bad settings, bad filter):
    the proxy hands that answer to the client unchanged, since every node would say the same."""

    def __init__(self, response: NodeResponse) -> None:
        super().__init__(f"{response.node_id} answered {response.status}")
        self.response = response


def first_rejection(results: Mapping[str, NodeResult]) -> NodeResponse | None:
    """The 4xx answer of the first node (by id) that refused, if any node did."""
    for node_id in sorted(results):
        result = results[node_id]
        if isinstance(result, NodeResponse) and 400 <= result.status < 500:
            return result
    return None
