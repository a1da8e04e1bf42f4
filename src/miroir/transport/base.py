"""The transport protocol: how Miroir asks one node one HTTP question.

Owns the seam every layer above talks through: `Transport.request(...)`, the answer
(`NodeResponse`) and the one exception family for failing to get an answer (`TransportError`,
with a `FailureKind`). It must never know about shards, groups, quorum or Meilisearch routes, and
it never raises for an HTTP status: a node answering 4xx or 5xx *did* answer, so that is a
`NodeResponse`. Callers that need "did this node fail?" use `is_node_failure` / `classify`, the one
place where "5xx counts as a node failure" is written down.

Theory of operation
-------------------
A call names a node by id, never by address; the transport maps ids to wherever the node lives
(a URL for `HttpTransport`, an in-process engine for `SimTransport`, a script for
`FakeTransport`). `deadline` is an absolute `trio.current_time()` value, so a `MockClock` drives
it in tests and in the simulator exactly as the real clock does in production. A call either
returns a `NodeResponse`, raises a `TransportError` subclass, or is cancelled (trio's
`Cancelled` passes through untouched: cancellation is the caller's decision, not a node failure).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import orjson


class FailureKind(enum.Enum):
    """Why a node gave no usable answer. Health tracking and quorum counting key on this."""

    REFUSED = "refused"  # never connected: refused, unreachable, unknown node id
    TIMEOUT = "timeout"  # the deadline passed (while connecting or while waiting for the answer)
    RESET = "reset"  # the connection broke or closed before the answer was complete
    PROTOCOL = "protocol"  # the node answered something that is not valid HTTP
    NODE_ERROR = "node_error"  # the node answered 5xx; only ever produced by `classify`


class Outcome(enum.Enum):
    """What one node call amounts to for the caller, from `classify`."""

    OK = "ok"  # 2xx
    REJECTED = "rejected"  # 4xx (and 1xx/3xx): the node is healthy, the request was refused
    FAILED = "failed"  # 5xx or a TransportError: the node is not serving


class TransportError(Exception):
    """A node call that produced no HTTP answer. `.kind` says which class of failure."""

    kind: FailureKind = FailureKind.PROTOCOL

    def __init__(self, node_id: str, message: str) -> None:
        super().__init__(f"{node_id}: {message}")
        self.node_id = node_id
        self.message = message

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.node_id!r}, {self.message!r})"


class NodeRefused(TransportError):
    kind = FailureKind.REFUSED


class UnknownNode(NodeRefused):
    """The node id has no address: a topology bug or a race with `set_addresses`."""


class NodeTimeout(TransportError):
    kind = FailureKind.TIMEOUT


class NodeReset(TransportError):
    kind = FailureKind.RESET


class NodeProtocolError(TransportError):
    kind = FailureKind.PROTOCOL


_KIND_TO_ERROR: dict[FailureKind, type[TransportError]] = {
    FailureKind.REFUSED: NodeRefused,
    FailureKind.TIMEOUT: NodeTimeout,
    FailureKind.RESET: NodeReset,
    FailureKind.PROTOCOL: NodeProtocolError,
}


def error_for_kind(kind: FailureKind, node_id: str, message: str) -> TransportError:
    """The exception a transport raises for a failure of `kind` (fakes and simulators use it)."""
    try:
        return _KIND_TO_ERROR[kind](node_id, message)
    except KeyError:
        raise ValueError(
            f"{kind} is not raised by a transport; answer with a 5xx instead"
        ) from None


class NodeResponse:
    """One HTTP answer from one node: status, headers (lower-case names), raw body bytes.

    `.json()` parses the body with orjson on first use and caches it; most merges read it once.
    """

    __slots__ = ("node_id", "status", "headers", "body", "_json")

    _UNPARSED: Any = object()

    def __init__(
        self, node_id: str, status: int, headers: Sequence[tuple[str, str]], body: bytes
    ) -> None:
        self.node_id = node_id
        self.status = status
        self.headers = headers
        self.body = body
        self._json = NodeResponse._UNPARSED

    def json(self) -> Any:
        if self._json is NodeResponse._UNPARSED:
            self._json = orjson.loads(self.body)
        return self._json

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first header called `name` (case-insensitive), or `default`."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return default

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def __repr__(self) -> str:
        return f"NodeResponse({self.node_id!r}, {self.status}, {len(self.body)} bytes)"


NodeResult = NodeResponse | TransportError


def classify(result: NodeResult) -> Outcome:
    """The one rule: 2xx is OK, 5xx or no answer is a node failure, anything else is REJECTED."""
    if isinstance(result, TransportError):
        return Outcome.FAILED
    if 200 <= result.status < 300:
        return Outcome.OK
    if result.status >= 500:
        return Outcome.FAILED
    return Outcome.REJECTED


def is_node_failure(result: NodeResult) -> bool:
    """True when `result` says the node is not serving (5xx or a TransportError)."""
    return classify(result) is Outcome.FAILED


def failure_kind(result: NodeResult) -> FailureKind | None:
    """The failure class of `result`, treating a 5xx answer as `NODE_ERROR`; None if served."""
    if isinstance(result, TransportError):
        return result.kind
    if result.status >= 500:
        return FailureKind.NODE_ERROR
    return None


@runtime_checkable
class Transport(Protocol):
    """What the cluster layer needs from a way of reaching nodes. Keep it this small."""

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
        """Send one request to `node_id` and return its answer.

        `path` includes the query string. `deadline` is absolute, in `trio.current_time()`.
        Raises a `TransportError` subclass when there is no answer by then; `trio.Cancelled` when
        the caller cancels. Never raises for a 4xx/5xx status.
        """
        ...

    async def aclose(self) -> None:
        """Release every connection. Calls made afterwards fail."""
        ...


@runtime_checkable
class Addressable(Protocol):
    """A transport whose node addresses can change while it runs (`HttpTransport`): the proxy
    points it at the addresses of every topology epoch it adopts."""

    def set_addresses(self, addresses: Mapping[str, str]) -> None: ...


class CallSpec(Protocol):
    """One call of `request_many` (`miroir.cluster.scatter.NodeCall` fits): the arguments of
    `Transport.request`, and an optional own deadline that may only shorten the batch's."""

    method: str
    path: str
    body: bytes | None
    headers: Sequence[tuple[str, str]]
    deadline: float | None


@runtime_checkable
class ManyTransport(Protocol):
    """Optional: a transport that can drive one call to each of several nodes at once more
    cheaply than one task per call (`HttpTransport`). Callers use it when offered and fall back
    to `request` per node otherwise; the contract is the same as N `request`s in a nursery."""

    async def request_many(
        self,
        calls: Mapping[str, CallSpec],
        *,
        deadline: float,
        on_result: Callable[[str, NodeResult], None] | None = None,
    ) -> dict[str, NodeResult]:
        """{node_id: NodeResponse | TransportError} for every call, never raising a
        `TransportError`: failures are classified exactly as `request` raises them, and a call
        with no answer by its deadline (the earlier of `deadline` and its own) is a
        `NodeTimeout`. `on_result(node_id, result)` runs as each result is known. Cancellation
        passes through; every connection it interrupts is closed, never reused. Raises
        ValueError before any I/O for a call that cannot be sent safely."""
        ...
