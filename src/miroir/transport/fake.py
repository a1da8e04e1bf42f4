"""A scripted transport for tests: per-node behaviour in trio time, and a record of every call.

Owns nothing but its script and its call log. It honours the transport contract exactly (absolute
deadlines, `NodeTimeout` when an answer would come later than the deadline, `Cancelled` passes
through), so code tested against it behaves the same against `HttpTransport`. It must never touch
sockets or the wall clock: run it under `trio.testing.MockClock(autojump_threshold=0)` and a
"5 second" hang costs nothing.

    fake = FakeTransport()
    fake.script("n1", Answer(202, json={"taskUid": 1}))           # every call to n1
    fake.script("n2", Fail(FailureKind.RESET), Answer(200))        # first call resets, then 200s
    fake.script("n3", Hang())                                      # times out at its deadline
    fake.handle("n4", lambda call: Answer(200, delay=0.5) if call.method == "GET" else Hang())
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import attrs
import orjson
import trio

from miroir.transport.base import (
    FailureKind,
    NodeResponse,
    NodeTimeout,
    UnknownNode,
    error_for_kind,
)


@attrs.frozen
class Answer:
    """Answer with `status` after `delay` seconds of trio time. `json` wins over `body`."""

    status: int = 200
    json: Any = None
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = ()
    delay: float = 0.0

    def payload(self) -> bytes:
        return orjson.dumps(self.json) if self.json is not None else self.body


@attrs.frozen
class Fail:
    """Raise the transport error of `kind` after `delay` seconds of trio time."""

    kind: FailureKind
    delay: float = 0.0


@attrs.frozen
class Hang:
    """Never answer: the call ends at its deadline with `NodeTimeout` (or when cancelled)."""


Behaviour = Answer | Fail | Hang
Handler = Callable[["FakeCall"], Behaviour]


@attrs.define
class FakeCall:
    """One recorded call. `outcome` is set when it ends: 'answered', a FailureKind value, or
    'cancelled'; `ended_at` is the trio time it ended."""

    node_id: str
    method: str
    path: str
    body: bytes | None
    headers: tuple[tuple[str, str], ...]
    deadline: float
    started_at: float
    ended_at: float | None = None
    outcome: str | None = None
    status: int | None = None

    def json(self) -> Any:
        return orjson.loads(self.body) if self.body else None


class FakeTransport:
    """A `Transport` whose nodes do what the test scripted."""

    def __init__(self, default: Behaviour | None = None) -> None:
        self._handlers: dict[str, Handler] = {}
        self._default = default
        self.calls: list[FakeCall] = []
        self.closed = False

    def script(self, node_id: str, *behaviours: Behaviour) -> None:
        """Calls to `node_id` take `behaviours` in order; the last one repeats forever."""
        if not behaviours:
            raise ValueError("script at least one behaviour")
        queue = list(behaviours)

        def next_behaviour(_call: FakeCall) -> Behaviour:
            return queue.pop(0) if len(queue) > 1 else queue[0]

        self._handlers[node_id] = next_behaviour

    def handle(self, node_id: str, handler: Handler) -> None:
        """Calls to `node_id` do whatever `handler(call)` returns."""
        self._handlers[node_id] = handler

    def calls_to(self, node_id: str) -> list[FakeCall]:
        return [call for call in self.calls if call.node_id == node_id]

    def in_flight(self) -> list[FakeCall]:
        return [call for call in self.calls if call.ended_at is None]

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
        if self.closed:
            raise RuntimeError("FakeTransport is closed")
        now = trio.current_time()
        call = FakeCall(node_id, method, path, body, tuple(headers), deadline, now)
        self.calls.append(call)
        try:
            response = await self._play(call)
        except trio.Cancelled:
            self._end(call, "cancelled")
            raise
        except Exception as error:
            kind = getattr(error, "kind", None)
            self._end(call, kind.value if kind is not None else type(error).__name__)
            raise
        self._end(call, "answered", response.status)
        return response

    async def _play(self, call: FakeCall) -> NodeResponse:
        handler = self._handlers.get(call.node_id)
        if handler is None:
            if self._default is None:
                raise UnknownNode(call.node_id, "no script for this node")
            behaviour: Behaviour = self._default
        else:
            behaviour = handler(call)
        ready_at = (
            float("inf") if isinstance(behaviour, Hang) else call.started_at + behaviour.delay
        )
        if ready_at >= call.deadline:  # an answer due exactly at the deadline is too late
            await trio.sleep_until(call.deadline)
            raise NodeTimeout(call.node_id, "deadline passed (scripted)")
        await trio.sleep_until(ready_at)
        if isinstance(behaviour, Fail):
            raise error_for_kind(behaviour.kind, call.node_id, "scripted failure")
        assert isinstance(behaviour, Answer)
        return NodeResponse(call.node_id, behaviour.status, behaviour.headers, behaviour.payload())

    @staticmethod
    def _end(call: FakeCall, outcome: str, status: int | None = None) -> None:
        call.ended_at = trio.current_time()
        call.outcome = outcome
        call.status = status

    async def aclose(self) -> None:
        self.closed = True
