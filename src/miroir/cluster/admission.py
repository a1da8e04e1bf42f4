"""Per-node admission for the read path: concurrency limits, FIFO queues, shedding (trio).

Owns the live side of `miroir.core.admission` (which decides): per node, how many read calls of
this process are running (`in_flight`), who waits for a slot (a FIFO of waiters), and the
moving average of the node's call durations the decision uses. The read path
(`cluster.search`) enters a node's gate before sending it a call and leaves it when the answer
arrives (or the call is cut off); a read that would wait longer than it can afford is refused
with `Overloaded` (503 `miroir_overloaded`, `Retry-After`) before any node sees it.

Rules that keep it safe:
- a read that needs several nodes enters their gates in node-id order, so two reads can never
  each hold a slot the other waits for;
- a slot is handed directly to the first waiter when it is left (nobody overtakes, and a slot
  is never idle while someone waits); a waiter cancelled after being handed one passes it on;
- a waiter never waits longer than its patience (the core's verdict), then it is shed;
- every slot entered is left exactly once: the caller's `finally` leaves what it still holds.

Only reads are gated: a write must reach every owner to count toward quorum (shedding half of
one helps nobody), and probes must not queue behind searches (a probe measures the node, not
this proxy's queue). `max_in_flight <= 0` turns the gate off.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

import trio

from miroir.core.admission import Admission, Verdict, admit, ewma
from miroir.core.errors import Overloaded

# Observers of a shed read: (node_id) -- the metrics hook.
ShedObserver = Callable[[str], None]
# Observers of a queue's length when it changes: (node_id, depth) -- the metrics hook. Called
# only on the slow path (someone waits), never when a call goes straight through.
DepthObserver = Callable[[str, int], None]


class _Waiter:
    __slots__ = ("event", "granted")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.granted = False


class NodeGate:
    """One node's slots and queue (see the module docstring)."""

    def __init__(self, node_id: str, max_in_flight: int, queue_timeout_s: float,
                 depth_observers: list[DepthObserver] | None = None) -> None:
        self.node_id = node_id
        self.depth_observers = depth_observers if depth_observers is not None else []
        self.max_in_flight = max_in_flight
        self.queue_timeout_s = queue_timeout_s
        self.in_flight = 0
        self.queue: deque[_Waiter] = deque()
        self.service_time_s: float | None = None

    def admission(self, deadline: float) -> Admission:
        return admit(
            in_flight=self.in_flight,
            waiting=len(self.queue),
            max_in_flight=self.max_in_flight,
            service_time_s=self.service_time_s or 0.0,
            time_left_s=deadline - trio.current_time(),
            queue_timeout_s=self.queue_timeout_s,
        )

    async def enter(self, deadline: float) -> None:
        """Take a slot, waiting in line if need be; `Overloaded` when it cannot be afforded."""
        admission = self.admission(deadline)
        if admission.verdict is Verdict.GO:
            self.in_flight += 1
            return
        if admission.verdict is Verdict.SHED:
            raise self._overloaded(admission)
        waiter = _Waiter()
        self.queue.append(waiter)
        self._depth_changed()
        try:
            with trio.move_on_after(admission.patience_s):
                await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self.leave(None)  # handed a slot, then cancelled: pass it on
            else:
                self._drop(waiter)
            raise
        if not waiter.granted:
            self._drop(waiter)
            raise self._overloaded(admission)

    def _drop(self, waiter: _Waiter) -> None:
        self.queue.remove(waiter)
        self._depth_changed()

    def _depth_changed(self) -> None:
        for observer in self.depth_observers:
            observer(self.node_id, len(self.queue))

    def leave(self, elapsed_s: float | None) -> None:
        """Give the slot back (to the first waiter, if any); `elapsed_s` is the call's duration
        when it got an answer (None when it did not: no sample for the average)."""
        if elapsed_s is not None:
            self.service_time_s = ewma(self.service_time_s, elapsed_s)
        if self.queue:
            waiter = self.queue.popleft()
            waiter.granted = True
            waiter.event.set()
            self._depth_changed()
        else:
            self.in_flight -= 1

    def _overloaded(self, admission: Admission) -> Overloaded:
        return Overloaded(self.node_id, admission.retry_after_s)


class Gates:
    """Every node's gate, created on first use with the configured limits."""

    def __init__(self, max_in_flight: int, queue_timeout_ms: int) -> None:
        self.max_in_flight = max_in_flight
        self.queue_timeout_s = queue_timeout_ms / 1000
        self.enabled = max_in_flight > 0
        self.gates: dict[str, NodeGate] = {}
        self.shed_observers: list[ShedObserver] = []
        self.depth_observers: list[DepthObserver] = []

    def __getitem__(self, node_id: str) -> NodeGate:
        gate = self.gates.get(node_id)
        if gate is None:
            gate = self.gates[node_id] = NodeGate(node_id, self.max_in_flight,
                                                  self.queue_timeout_s, self.depth_observers)
        return gate

    async def enter_all(self, node_ids: Iterable[str], deadline: float) -> None:
        """One slot on each node, entered in node-id order; all or none (`Overloaded`)."""
        entered: list[str] = []
        try:
            for node_id in sorted(node_ids):
                await self[node_id].enter(deadline)
                entered.append(node_id)
        except BaseException as error:
            for node_id in entered:
                self[node_id].leave(None)
            if isinstance(error, Overloaded):
                for observer in self.shed_observers:
                    observer(error.node_id)
            raise

    async def enter(self, node_id: str, deadline: float) -> None:
        await self.enter_all((node_id,), deadline)

    def leave(self, node_id: str, elapsed_s: float | None) -> None:
        self[node_id].leave(elapsed_s)
