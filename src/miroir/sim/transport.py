"""SimTransport: the transport protocol in front of in-process devnode engines, with seeded faults.

Owns the simulated network and the simulated node processes: per-node latency, 5xx answers,
stalls, dropped connections, replies lost after the node applied the request, crash and restart,
partitions, and when each node's task worker applies enqueued tasks. It honours the transport
contract exactly (absolute deadlines in trio time, `TransportError`s by kind, never raising for
a status, `trio.Cancelled` passes through), so cluster code runs on it unchanged. It must never
read the wall clock or unseeded randomness, and never decide anything about shards or quorum.

Theory of operation
-------------------
Each call samples one fate and one latency L from its node's seeded stream. The request reaches
the node at `start + L/2` and the answer reaches the caller at `start + L`:

    ok          delivered and applied, answered at start + L
    error       answered 500 `internal` at start + L, never applied
    stall       never answered (NodeTimeout at the deadline), never applied
    drop        connection reset before delivery (NodeReset at start + L/2), never applied
    lost_reply  delivered and applied, connection reset at start + L: the ambiguous write

A delivered request is applied at its delivery time even if the caller has given up by then
(timed out or cancelled): the bytes were on the wire. Deliveries and the task worker's steps are
node events kept in time order and applied lazily: before a node is observed (a delivery, an
answer, `catch_up`) every event due by `trio.current_time()` runs, with the engine's clock set to
the event's time. Nothing outside this class can observe an engine in between, so lazy is
indistinguishable from eager and needs no background task. A caller waits for its answer, its
deadline or its node's crash with `miroir.sim.clock.wait_until` (parked on the virtual clock's
timers beside the node's crash `Alarm`, not in a trio cancel scope: a node call costs half as
much CPU; docs/simulation.md, "Waiting on virtual time").

The task worker: after a write is enqueued (a 202 answer) or a task finishes, the next task
starts `task_delay` later and finishes `task_duration` after it starts (Meilisearch's
enqueued -> processing -> succeeded/failed, delayed as long as the fault model says).

A crash refuses new calls (NodeRefused), resets calls in flight (NodeReset) and forgets
deliveries not yet made. Engine state survives, as Meilisearch's data on disk does;
`restart(wipe=True)` starts from an empty engine instead. A partition blackholes the node: calls
time out at their deadline; a reply due while partitioned is lost (the request is still applied).

`request_many` (the optional `ManyTransport` half of the contract, which `HttpTransport` also
offers) starts every call of a scatter at once and waits for their results in one task, so
`miroir.cluster.scatter` runs the same path over simulated nodes as over real ones. Each call's
fate and timing are exactly those `request` would give it (tests/sim/test_transport_many.py).

Determinism: every random draw comes from a per-node stream seeded by (seed, node id), in the
order the node sees calls. Two runs are identical when trio schedules concurrent calls to the
same node in the same order; `miroir.sim.determinism.trio_determinism` makes it do so. A
`tracer` callable, if given, receives one line per call (virtual start time, node, request,
fate, latency): the node-level half of the simulator's event trace. Each callable in
`observers` is told what every caller sent and got: `(node_id, method, path, body, status or
None)`, None when the call raised a transport error (a cancelled call reports nothing).
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

import attrs
import orjson
import trio

from miroir.core.errors import MeiliError
from miroir.devnode.engine import Engine
from miroir.devnode.router import Request, Response, Router, error_response
from miroir.meili.auth import PUBLIC_PATHS, check_bearer
from miroir.sim.clock import Alarm, wait_until
from miroir.transport.base import (
    CallSpec,
    NodeRefused,
    NodeReset,
    NodeResponse,
    NodeResult,
    NodeTimeout,
    TransportError,
    UnknownNode,
)

_JSON_HEADERS = (("content-type", "application/json"),)
SIM_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _seconds_range(_instance: object, attribute: attrs.Attribute, value: tuple[float, float]) -> None:
    low, high = value
    if not 0 <= low <= high:
        raise ValueError(f"{attribute.name} must be (low, high) with 0 <= low <= high: {value}")


def _probability(_instance: object, attribute: attrs.Attribute, value: float) -> None:
    if not 0 <= value <= 1:
        raise ValueError(f"{attribute.name} must be a probability: {value}")


@attrs.frozen
class FaultModel:
    """How one node misbehaves. Rates are per call; ranges are uniform (low, high) seconds."""

    latency: tuple[float, float] = attrs.field(default=(0.001, 0.001), validator=_seconds_range)
    spike_rate: float = attrs.field(default=0.0, validator=_probability)
    spike: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))  # extra seconds
    error_rate: float = attrs.field(default=0.0, validator=_probability)
    stall_rate: float = attrs.field(default=0.0, validator=_probability)
    drop_rate: float = attrs.field(default=0.0, validator=_probability)
    lost_reply_rate: float = attrs.field(default=0.0, validator=_probability)
    task_delay: tuple[float, float] = attrs.field(default=(0.0, 0.0), validator=_seconds_range)
    task_duration: tuple[float, float] = attrs.field(
        default=(0.001, 0.001), validator=_seconds_range)

    def __attrs_post_init__(self) -> None:
        if self.error_rate + self.stall_rate + self.drop_rate + self.lost_reply_rate > 1:
            raise ValueError("error, stall, drop and lost_reply rates must sum to at most 1")

    def sample_call(self, rng: random.Random) -> tuple[str, float]:
        """(fate, latency) of one call. Always draws three numbers, so streams stay aligned."""
        roll, spike_roll, base = rng.random(), rng.random(), rng.random()
        latency = self.latency[0] + base * (self.latency[1] - self.latency[0])
        if spike_roll < self.spike_rate:
            latency += self.spike
        bound = 0.0
        for fate, rate in (("error", self.error_rate), ("stall", self.stall_rate),
                           ("drop", self.drop_rate), ("lost_reply", self.lost_reply_rate)):
            bound += rate
            if roll < bound:
                return fate, latency
        return "ok", latency


def _uniform(rng: random.Random, bounds: tuple[float, float]) -> float:
    return bounds[0] + rng.random() * (bounds[1] - bounds[0])


@attrs.define(eq=False)
class _Delivery:
    request: Request
    authorization: str | None
    response: Response | None = None
    dropped: bool = False


@attrs.define(eq=False)
class SimNode:
    """One simulated node process: its engine, fault model, event queue and counters."""

    node_id: str
    faults: FaultModel
    call_rng: random.Random
    task_rng: random.Random
    master_key: bytes | None = None
    engine: Engine | None = None  # None: a fresh engine whose clock is this node's event time
    router: Router = attrs.field(init=False)
    up: bool = True
    partitioned: bool = False
    crashed: Alarm = attrs.field(factory=Alarm)
    stats: Counter[str] = attrs.field(factory=Counter)
    # Engine clock while events run: seconds of trio time.
    event_time: float = 0.0
    _deliveries: list[tuple[float, int, _Delivery]] = attrs.field(factory=list)
    _worker_at: float | None = None
    _processing: bool = False

    def __attrs_post_init__(self) -> None:
        if self.engine is None:
            self.engine = Engine(now=self.now)
        self.router = Router(self.engine)

    def now(self) -> datetime:
        return SIM_EPOCH + timedelta(seconds=self.event_time)

    def schedule_delivery(self, at: float, seq: int, delivery: _Delivery) -> None:
        heapq.heappush(self._deliveries, (at, seq, delivery))

    def catch_up(self, until: float) -> None:
        """Run every delivery and worker step due by `until`, in time order."""
        while True:
            next_delivery = self._deliveries[0][0] if self._deliveries else float("inf")
            next_step = self._worker_at if self._worker_at is not None else float("inf")
            at = min(next_delivery, next_step)
            if at > until:
                return
            self.event_time = at
            if next_delivery <= next_step:
                _, _, delivery = heapq.heappop(self._deliveries)
                self._deliver(delivery)
            else:
                self._worker_step()

    def _deliver(self, delivery: _Delivery) -> None:
        response = self._authorize(delivery.request.path, delivery.authorization)
        if response is None:
            response = self.router.dispatch(delivery.request)
        delivery.response = response
        if response.status == 202:
            self._wake_worker()

    def _authorize(self, path: str, authorization: str | None) -> Response | None:
        """The devnode app's master-key rule, compared in constant time; the key never leaves."""
        if self.master_key is None or path in PUBLIC_PATHS:
            return None
        try:
            check_bearer(authorization, self.master_key)
        except MeiliError as refused:
            return error_response(refused)
        return None

    def wake_worker(self) -> None:
        self._wake_worker()

    def _wake_worker(self) -> None:
        if self._worker_at is None and not self._processing:
            self._worker_at = self.event_time + _uniform(self.task_rng, self.faults.task_delay)

    def _worker_step(self) -> None:
        if self._processing:
            self.engine.finish_started_task()
            self._processing = False
            self.stats["tasks_finished"] += 1
            self._worker_at = None
            if self.engine.has_pending_tasks():
                self._wake_worker()
            return
        if self.engine.start_next_task() is None:
            self._worker_at = None
            return
        self._processing = True
        self._worker_at = self.event_time + _uniform(self.task_rng, self.faults.task_duration)

    def crash(self, at: float) -> None:
        self.catch_up(at)
        self.up = False
        for _, _, delivery in self._deliveries:
            delivery.dropped = True
        self._deliveries.clear()
        self._worker_at = None
        self.crashed.set()

    def restart(self, at: float, *, wipe: bool) -> None:
        if wipe:
            self.engine = Engine(now=self.now)
            self.router = Router(self.engine)
            self._processing = False
        self.up = True
        self.crashed = Alarm()
        self.event_time = at
        if self._processing:  # the interrupted task runs again from the start
            self._worker_at = at + _uniform(self.task_rng, self.faults.task_duration)
        elif self.engine.has_pending_tasks():
            self._wake_worker()


class SimTransport:
    """A `Transport` whose nodes are devnode engines in this process, failing as told.

    Run it under `trio.testing.MockClock(autojump_threshold=0)`: latencies, stalls and task
    delays then cost no real time. Crash, restart and partition are plain method calls, so a
    seeded fault schedule is a trio task that sleeps and calls them.
    """

    def __init__(
        self,
        seed: int = 0,
        *,
        default_faults: FaultModel | None = None,
        tracer: Callable[[str], None] | None = None,
    ) -> None:
        self.seed = seed
        self.default_faults = default_faults or FaultModel()
        self.tracer = tracer
        self.observers: list[Callable[[str, str, str, bytes | None, int | None], None]] = []
        self.nodes: dict[str, SimNode] = {}
        self.closed = False
        self._sequence = itertools.count()
        # Set (and replaced) on every crash: what `request_many`'s one task waits on, since it
        # cannot wait on each callee's own `crashed` event at once.
        self._a_node_crashed = Alarm()

    # ------------------------------------------------------------------------- the fleet

    def add_node(
        self,
        node_id: str,
        *,
        faults: FaultModel | None = None,
        master_key: str | None = None,
        engine: Engine | None = None,
    ) -> SimNode:
        """A new node. Without `engine`, a fresh engine whose clock is simulated time."""
        if node_id in self.nodes:
            raise ValueError(f"node {node_id!r} already exists")
        node = SimNode(
            node_id=node_id,
            faults=faults or self.default_faults,
            call_rng=random.Random(f"miroir-simtransport:{self.seed}:{node_id}:calls"),
            task_rng=random.Random(f"miroir-simtransport:{self.seed}:{node_id}:tasks"),
            master_key=master_key.encode() if master_key else None,
            engine=engine,
        )
        self.nodes[node_id] = node
        return node

    def engine(self, node_id: str) -> Engine:
        """The node's engine, caught up to the current trio time."""
        node = self._node(node_id)
        if node.up:
            node.catch_up(trio.current_time())
        return node.engine

    def set_faults(self, node_id: str, faults: FaultModel) -> None:
        self._node(node_id).faults = faults

    def out_of_band(self, node_id: str, change: Callable[[Engine], object]) -> bool:
        """A change made on the node by someone other than Miroir (an operator's curl, a
        script): `change` enqueues it on the node's engine at the current virtual time, and the
        node's task worker applies it with its own timing. False when the node is down."""
        node = self._node(node_id)
        if not node.up:
            return False
        node.catch_up(trio.current_time())
        change(node.engine)
        node.wake_worker()
        return True

    def crash(self, node_id: str) -> None:
        node = self._node(node_id)
        if not node.up:
            raise ValueError(f"node {node_id!r} is already crashed")
        node.crash(trio.current_time())
        self._a_node_crashed.set()
        self._a_node_crashed = Alarm()

    def restart(self, node_id: str, *, wipe: bool = False) -> None:
        node = self._node(node_id)
        if node.up:
            raise ValueError(f"node {node_id!r} is not crashed")
        node.restart(trio.current_time(), wipe=wipe)

    def partition(self, *node_ids: str) -> None:
        for node_id in node_ids:
            self._node(node_id).partitioned = True

    def heal(self, *node_ids: str) -> None:
        """End the partition of `node_ids`, or of every node when none are named."""
        for node_id in node_ids or tuple(self.nodes):
            self._node(node_id).partitioned = False

    def catch_up(self) -> None:
        """Run every node's due events now (e.g. before a test inspects engines directly)."""
        now = trio.current_time()
        for node in self.nodes.values():
            if node.up:
                node.catch_up(now)

    def _node(self, node_id: str) -> SimNode:
        try:
            return self.nodes[node_id]
        except KeyError:
            raise UnknownNode(node_id, "no such simulated node") from None

    # --------------------------------------------------------------------- the protocol

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
        if not self.observers:
            return await self._request(node_id, method, path, body, headers, deadline)
        try:
            response = await self._request(node_id, method, path, body, headers, deadline)
        except TransportError:
            for observer in self.observers:
                observer(node_id, method, path, body, None)
            raise
        for observer in self.observers:
            observer(node_id, method, path, body, response.status)
        return response

    async def request_many(
        self,
        calls: Mapping[str, CallSpec],
        *,
        deadline: float,
        on_result: Callable[[str, NodeResult], None] | None = None,
    ) -> dict[str, NodeResult]:
        """`ManyTransport.request_many`, as `HttpTransport` offers it: every call is started
        (fates drawn, deliveries scheduled) in the order given, then this one task sleeps until
        the next moment some call's result is due -- or until any node crashes -- and reports
        every result due by then, in call order. Each call sees exactly what `request` would
        have given it at the same instants; what is saved is a task and two cancel scopes per
        call, and `miroir.cluster.scatter` takes the same path as with real nodes."""
        results: dict[str, NodeResult] = {}

        def report(node_id: str, call: CallSpec, result: NodeResult) -> None:
            results[node_id] = result
            status = result.status if isinstance(result, NodeResponse) else None
            for observer in self.observers:
                observer(node_id, call.method, call.path, call.body, status)
            if on_result is not None:
                on_result(node_id, result)

        pending: list[tuple[str, CallSpec, _Call]] = []
        for node_id, spec in calls.items():
            own = deadline if spec.deadline is None else min(deadline, spec.deadline)
            try:
                pending.append((node_id, spec, self._begin(
                    node_id, spec.method, spec.path, spec.body, spec.headers, own)))
            except TransportError as error:
                report(node_id, spec, error)
        if not pending:
            await trio.lowlevel.checkpoint()
        while pending:
            await wait_until(min(_due(call) for _, _, call in pending), self._a_node_crashed)
            now = trio.current_time()
            still: list[tuple[str, CallSpec, _Call]] = []
            for node_id, spec, call in pending:
                result = _settle(call, now)
                if result is None:
                    still.append((node_id, spec, call))
                else:
                    report(node_id, spec, result)
            pending = still
        return results

    async def _request(
        self,
        node_id: str,
        method: str,
        path: str,
        body: bytes | None,
        headers: Sequence[tuple[str, str]],
        deadline: float,
    ) -> NodeResponse:
        call = self._begin(node_id, method, path, body, headers, deadline)
        node, fate = call.node, call.fate
        if fate == "partitioned":
            await wait_until(deadline)
            raise NodeTimeout(node_id, "deadline passed (partitioned)")
        if fate == "stall":
            await _wait_unless_crashed(node, call.crashed, deadline)
            raise NodeTimeout(node_id, "deadline passed (stalled)")
        if fate == "drop":
            await _wait_unless_crashed(node, call.crashed, min(call.deliver_at, deadline))
            raise _dropped(call)
        await _wait_unless_crashed(node, call.crashed, min(call.answer_at, deadline))
        if call.answer_at > deadline:
            raise NodeTimeout(node_id, "deadline passed")
        if node.partitioned:  # the partition began while the call was in flight
            await wait_until(deadline)
            raise NodeTimeout(node_id, "deadline passed (partitioned)")
        return _answer(call)

    def _begin(
        self,
        node_id: str,
        method: str,
        path: str,
        body: bytes | None,
        headers: Sequence[tuple[str, str]],
        deadline: float,
    ) -> _Call:
        """Start one call now: draw its fate and latency, trace it, and schedule its delivery.
        A crashed or unknown node raises at once; a partitioned node's call has the fate
        `partitioned` (it times out at its deadline)."""
        if self.closed:
            raise RuntimeError("SimTransport is closed")
        node = self.nodes.get(node_id)
        if node is None:
            raise UnknownNode(node_id, "no such simulated node")
        start = trio.current_time()
        if not node.up:
            node.stats["refused"] += 1
            if self.tracer is not None:
                self.tracer(f"{start:.6f} node {node_id} {method} {path} refused")
            raise NodeRefused(node_id, "connection refused (node crashed)")
        if node.partitioned:
            node.stats["partitioned"] += 1
            if self.tracer is not None:
                self.tracer(f"{start:.6f} node {node_id} {method} {path} partitioned")
            return _Call(node, "partitioned", deadline, node.crashed, deadline, deadline, None)
        fate, latency = node.faults.sample_call(node.call_rng)
        node.stats[fate] += 1
        if self.tracer is not None:
            self.tracer(f"{start:.6f} node {node_id} {method} {path} {fate} {latency:.6f}")
        delivery = None
        if fate not in ("error", "stall", "drop"):
            delivery = _Delivery(_request(method, path, body, headers), _header(headers, "authorization"))
            node.schedule_delivery(start + latency / 2, next(self._sequence), delivery)
        return _Call(node, fate, deadline, node.crashed, start + latency / 2, start + latency,
                     delivery)

    async def aclose(self) -> None:
        self.closed = True


@attrs.define(eq=False)
class _Call:
    """One call whose fate is drawn: when it reaches the node and when its answer is due."""

    node: SimNode
    fate: str  # ok, error, stall, drop, lost_reply (`FaultModel.sample_call`), or partitioned
    deadline: float
    crashed: Alarm  # the node's crash alarm when the call started
    deliver_at: float
    answer_at: float
    delivery: _Delivery | None


def _dropped(call: _Call) -> TransportError:
    if call.deliver_at > call.deadline:
        return NodeTimeout(call.node.node_id, "deadline passed")
    return NodeReset(call.node.node_id, "connection reset before the request arrived")


def _answer(call: _Call) -> NodeResponse:
    """The result of an ok, error or lost_reply call whose answer is due now."""
    node = call.node
    node.catch_up(trio.current_time())
    if call.fate == "lost_reply":
        raise NodeReset(node.node_id, "connection reset before the answer arrived")
    if call.delivery is None:
        response = error_response(MeiliError("internal", "Simulated internal error."))
    else:
        assert call.delivery.response is not None and not call.delivery.dropped
        response = call.delivery.response
    return NodeResponse(node.node_id, response.status, _headers(response), orjson.dumps(response.body))


def _due(call: _Call) -> float:
    """When `request` would next wake up for this call."""
    if call.fate in ("partitioned", "stall"):
        return call.deadline
    if call.fate == "drop":
        return min(call.deliver_at, call.deadline)
    return min(call.answer_at, call.deadline)


def _settle(call: _Call, now: float) -> NodeResult | None:
    """The call's result at `now` as `request` would raise or return it; None while it is still
    in flight. An ok call whose node was partitioned meanwhile turns `partitioned`: it waits
    out its deadline with no crash check, as `request` does."""
    node_id = call.node.node_id
    if call.fate != "partitioned" and call.crashed.is_set():
        return NodeReset(node_id, "connection reset (node crashed)")
    if now < _due(call):
        return None
    if call.fate == "partitioned":
        return NodeTimeout(node_id, "deadline passed (partitioned)")
    if call.fate == "stall":
        return NodeTimeout(node_id, "deadline passed (stalled)")
    if call.fate == "drop":
        return _dropped(call)
    if call.answer_at > call.deadline:
        return NodeTimeout(node_id, "deadline passed")
    if call.node.partitioned:
        call.fate = "partitioned"
        return None if now < call.deadline else NodeTimeout(node_id, "deadline passed (partitioned)")
    try:
        return _answer(call)
    except TransportError as error:
        return error


async def _wait_unless_crashed(node: SimNode, crashed: Alarm, until: float) -> None:
    """Sleep until `until`; raise NodeReset at once if the node crashes meanwhile."""
    if await wait_until(until, crashed):
        raise NodeReset(node.node_id, "connection reset (node crashed)")


def _request(method: str, path: str, body: bytes | None, headers: Sequence[tuple[str, str]]) -> Request:
    route, _, query = path.partition("?")
    return Request(method, route, query, _header(headers, "content-type"), body or b"")


def _header(headers: Sequence[tuple[str, str]], wanted: str) -> str | None:
    for name, value in headers:
        if name.lower() == wanted:
            return value
    return None


def _headers(response: Response) -> tuple[tuple[str, str], ...]:
    extra = tuple((name.decode("latin-1"), value.decode("latin-1"))
                  for name, value in response.headers)
    return _JSON_HEADERS + extra
