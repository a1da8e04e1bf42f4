"""`HttpTransport`: the data-plane HTTP/1.1 client from Miroir to its nodes.

Owns per-node pools of keep-alive connections (non-blocking sockets waited on through trio,
answers parsed by httptools, the llhttp parser Node.js uses; the socket-level exchange is in
`miroir.transport.http_wire`), `request` and `request_many`, their limits, deadlines, the node master key header, and the mapping
of every socket or parser failure onto the `FailureKind` taxonomy of `miroir.transport.base`. It
must never retry a request the node may already have acted on, never put a connection back in the
pool unless the previous answer was read to its end (so a cancelled call never leaves half an
answer for the next caller), and never log or echo the API key. httpx stays the tool for the
control plane; this is the hot path, so it is written for it (see docs/transport.md for numbers).

Theory of operation
-------------------
A call takes one slot of its node's limit (`max_connections_per_node`), then the most recently
used idle connection (LIFO: the youngest is the least likely to have been closed by the node), or
connects a new one under `connect_timeout`. The request head is formatted here (after checking
every caller header for CR/LF/NUL, so no header can smuggle a second request) and sent with the
body; the answer is fed to a fresh httptools parser until it reports the message
complete. Content-Length and chunked answers are the parser's business; an answer delimited by
the node closing the socket ends at EOF. The connection goes back to the pool only when the
answer completed, the parser says keep-alive (so `Connection: close` and HTTP/1.0 close it), and
no byte beyond the answer arrived; the pool keeps at most `max_idle_per_node` idle connections for
`keepalive_expiry` seconds. Any error or cancellation closes the socket instead.

The tricky case is the stale connection: a node closes an idle keep-alive connection and we only
learn it when we use it. Before reuse we poll the socket: readable while idle means EOF (or junk),
so it is dropped unseen. If a reused connection still fails before a single byte of answer arrives,
the request is retried once on a fresh connection when that is safe: the send itself failed (the
node cannot have a complete request), or the request is read-only (`is_read_only`). A write that
may have reached the node is never silently repeated; it fails with `NodeReset` and the caller's
quorum accounting decides.

`request_many` makes one call to each of several nodes from the calling task (`_Batch` holds
one such call's state): it takes a slot
and an idle connection per node without waiting, writes every request, then reads all answers in
that one task (`http_wire.drive`). A node that has no idle connection or free slot, and a reused
connection that turns out stale, go through `request` in a task of their own, so they connect,
wait and retry exactly as a single call would; every rule above holds for both paths.

Deadlines are absolute `trio.current_time()` values, so everything here also runs under MockClock.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import trio

from miroir.transport.base import (
    CallSpec,
    NodeRefused,
    NodeResponse,
    NodeResult,
    NodeTimeout,
    TransportError,
    UnknownNode,
)
from miroir.transport.http_wire import Connection, Exchange, ExchangeFailed, drive

_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Meilisearch POST routes that only read: repeating them cannot change a node's state.
_READ_ONLY_POST_SUFFIXES = ("/search", "/multi-search", "/facet-search", "/similar", "/fetch")
# The transport owns framing and routing; callers' copies of these are dropped.
_TRANSPORT_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_IN_VALUE = re.compile(r"[\x00\r\n]")
_FORBIDDEN_IN_TARGET = re.compile(r"[\x00-\x20\x7f]")
_ASCII_PRINTABLE = "".join(chr(c) for c in range(0x21, 0x7F))


def is_read_only(method: str, path: str) -> bool:
    """True when sending this request twice cannot change the node (safe to retry)."""
    if method in _READ_ONLY_METHODS:
        return True
    if method == "POST":
        return path.split("?", 1)[0].endswith(_READ_ONLY_POST_SUFFIXES)
    return False


class _NodePool:
    """Connections to one node address. Replaced, not mutated, when the address changes."""

    __slots__ = (
        "node_id",
        "url",
        "host",
        "port",
        "prefix",
        "fixed_head",
        "limit",
        "idle",
        "closed",
    )

    def __init__(self, node_id: str, base_url: str, max_connections: int, auth: str | None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"node {node_id}: only http://host:port addresses, got {base_url!r}")
        self.node_id = node_id
        self.url = base_url.rstrip("/")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        fixed = f"host: {parts.netloc}\r\n"
        if auth is not None:
            fixed += f"authorization: {auth}\r\n"
        self.fixed_head = fixed
        self.limit = trio.Semaphore(max_connections)
        self.idle: deque[Connection] = deque()
        self.closed = False

    def close_idle(self) -> None:
        while self.idle:
            self.idle.pop().close()


class HttpTransport:
    """Pooled keep-alive HTTP/1.1 to nodes addressed by id. See the module docstring."""

    def __init__(
        self,
        addresses: Mapping[str, str],
        *,
        api_key: str | None,
        max_connections_per_node: int = 64,
        max_idle_per_node: int = 16,
        keepalive_expiry: float = 4.0,
        connect_timeout: float = 2.0,
        max_response_bytes: int = 256 * 1024 * 1024,
        is_read_only: Callable[[str, str], bool] = is_read_only,
    ) -> None:
        if api_key is not None and _FORBIDDEN_IN_VALUE.search(api_key):
            raise ValueError("the node API key contains a control character")
        self._auth = f"Bearer {api_key}" if api_key else None
        self._max_connections = max_connections_per_node
        self._max_idle = max_idle_per_node
        self._keepalive_expiry = keepalive_expiry
        self._connect_timeout = connect_timeout
        self._max_response_bytes = max_response_bytes
        self._is_read_only = is_read_only
        self._pools: dict[str, _NodePool] = {}
        self._closed = False
        self.set_addresses(addresses)

    def __repr__(self) -> str:  # never shows the key
        return f"HttpTransport({len(self._pools)} nodes)"

    # -- topology ---------------------------------------------------------------------------

    def set_addresses(self, addresses: Mapping[str, str]) -> None:
        """Point node ids at new base URLs. Pools of removed or moved nodes are closed; calls
        already running on them finish, and their connections are closed instead of reused."""
        fresh: dict[str, _NodePool] = {}
        for node_id, base_url in addresses.items():
            current = self._pools.get(node_id)
            if current is not None and current.url == base_url.rstrip("/"):
                fresh[node_id] = current
            else:
                fresh[node_id] = _NodePool(node_id, base_url, self._max_connections, self._auth)
        for node_id, pool in self._pools.items():
            if fresh.get(node_id) is not pool:
                pool.closed = True
                pool.close_idle()
        self._pools = fresh

    def addresses(self) -> dict[str, str]:
        return {node_id: pool.url for node_id, pool in self._pools.items()}

    def idle_connections(self, node_id: str) -> int:
        """How many idle keep-alive connections the pool of `node_id` holds (for tests/metrics)."""
        pool = self._pools.get(node_id)
        return len(pool.idle) if pool else 0

    async def aclose(self) -> None:
        self._closed = True
        for pool in self._pools.values():
            pool.closed = True
            pool.close_idle()
        await trio.lowlevel.checkpoint()

    # -- the call ---------------------------------------------------------------------------

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
        """See `Transport.request`. Raises ValueError, before any I/O, for a method, path or
        header that cannot be sent safely (a caller bug, not a node failure)."""
        if self._closed:
            raise RuntimeError("HttpTransport is closed")
        pool = self._pools.get(node_id)
        if pool is None:
            raise UnknownNode(node_id, "no address for this node id")
        wire = _format_request(pool, method, path, body, headers)
        with trio.move_on_at(deadline):
            return await self._request(pool, method, path, wire, deadline)
        raise NodeTimeout(node_id, f"{method} {path}: no answer by the deadline")

    async def _request(
        self, pool: _NodePool, method: str, path: str, wire: bytes, deadline: float
    ) -> NodeResponse:
        await trio.lowlevel.checkpoint_if_cancelled()
        try:
            pool.limit.acquire_nowait()
        except trio.WouldBlock:
            await pool.limit.acquire()
        try:
            for attempt in (1, 2):
                connection = self._take_idle(pool)
                if connection is None:
                    connection = await self._connect(pool, deadline)
                exchange = Exchange(
                    pool.node_id, connection, wire, method, path, deadline,
                    self._max_response_bytes,
                )
                try:
                    await exchange.send_all()
                    await exchange.receive_all()
                except ExchangeFailed as failed:
                    connection.close()
                    if attempt == 1 and self._may_retry(failed, connection, method, path):
                        continue
                    raise failed.error from None
                except BaseException:
                    # Cancelled (or a bug) mid-exchange: the socket may hold half an answer.
                    connection.close()
                    raise
                self._release(pool, connection, exchange.answer.keep_alive())
                return exchange.response()
            raise AssertionError("unreachable: the second attempt never retries")
        finally:
            pool.limit.release()

    def _may_retry(
        self, failed: ExchangeFailed, connection: Connection, method: str, path: str
    ) -> bool:
        """A reused connection that broke before any answer byte: the node closed it while it
        sat idle. Safe to repeat when the request never fully left, or when it only reads."""
        return (
            connection.reused
            and not failed.answer_started
            and (failed.send_failed or self._is_read_only(method, path))
        )

    def _take_idle(self, pool: _NodePool, now: float | None = None) -> Connection | None:
        if now is None:
            now = trio.current_time()
        while pool.idle:
            connection = pool.idle.pop()
            if now - connection.idle_since > self._keepalive_expiry or connection.looks_stale():
                connection.close()
                continue
            return connection
        return None

    def _release(self, pool: _NodePool, connection: Connection, keep_alive: bool) -> None:
        reusable = (
            keep_alive and not pool.closed and not self._closed and len(pool.idle) < self._max_idle
        )
        if not reusable:
            connection.close()
            return
        connection.reused = True
        now = connection.idle_since = trio.current_time()
        pool.idle.append(connection)
        # The oldest idle sockets sit at the left; close the expired ones now rather than
        # holding their file descriptors until the next call to this node.
        while now - pool.idle[0].idle_since > self._keepalive_expiry:
            pool.idle.popleft().close()

    async def _connect(self, pool: _NodePool, deadline: float) -> Connection:
        connect_deadline = min(deadline, trio.current_time() + self._connect_timeout)
        with trio.move_on_at(connect_deadline):
            try:
                stream = await trio.open_tcp_stream(pool.host, pool.port)
            except OSError as error:
                raise NodeRefused(pool.node_id, f"connect failed: {error}") from None
            return Connection.from_stream(stream)
        raise NodeTimeout(pool.node_id, "connect timed out")

    # -- many calls from one task -------------------------------------------------------------

    async def request_many(
        self,
        calls: Mapping[str, CallSpec],
        *,
        deadline: float,
        on_result: Callable[[str, NodeResult], None] | None = None,
    ) -> dict[str, NodeResult]:
        """See `ManyTransport.request_many`: one call per node, all sent before any answer is
        read, answers read by this one task (`http_wire.drive`); a node without an idle pooled
        connection (or whose reused connection turns out stale) goes through `request` in a
        task of its own. Raises ValueError, before any I/O, like `request`."""
        if self._closed:
            raise RuntimeError("HttpTransport is closed")
        await trio.lowlevel.checkpoint_if_cancelled()
        prepared: list[tuple[str, _NodePool | None, CallSpec, bytes, float]] = []
        for node_id, call in calls.items():
            pool = self._pools.get(node_id)
            wire = b"" if pool is None else _format_request(
                pool, call.method, call.path, call.body, call.headers
            )
            own = call.deadline
            prepared.append(
                (node_id, pool, call, wire, deadline if own is None else min(deadline, own))
            )
        batch = _Batch(self, on_result)
        try:
            await batch.run(batch.send(prepared))
        finally:
            batch.abandon()
        return batch.results

    def _take_idle_slot(self, pool: _NodePool, now: float) -> Connection | None:
        """A slot of the pool's limit and an idle connection, both without waiting, or None."""
        try:
            pool.limit.acquire_nowait()
        except trio.WouldBlock:
            return None
        connection = self._take_idle(pool, now)
        if connection is None:
            pool.limit.release()
        return connection

    async def _one(
        self,
        node_id: str,
        call: CallSpec,
        deadline: float,
        report: Callable[[str, NodeResult], None],
    ) -> None:
        try:
            result: NodeResult = await self.request(
                node_id, call.method, call.path, body=call.body, headers=call.headers,
                deadline=deadline,
            )
        except TransportError as error:
            result = error
        report(node_id, result)


class _Batch:
    """The state of one `request_many`: its results, the exchanges holding a pool slot, and the
    calls that go through `request` in a task of their own instead (`later`: no idle pooled
    connection, or a pooled one found stale while reading, retried at once so the retry gets
    the time a per-call `request` would have given it). `send`, then `run`, then `abandon`
    (always: it closes what a cancellation left mid-exchange)."""

    __slots__ = ("transport", "on_result", "results", "holding", "later", "nursery")

    def __init__(
        self, transport: HttpTransport, on_result: Callable[[str, NodeResult], None] | None
    ) -> None:
        self.transport = transport
        self.on_result = on_result
        self.results: dict[str, NodeResult] = {}
        self.holding: dict[Exchange, tuple[_NodePool, CallSpec]] = {}
        self.later: list[tuple[str, CallSpec, float]] = []
        self.nursery: trio.Nursery | None = None  # once `later` calls run beside the drive

    def report(self, node_id: str, result: NodeResult) -> None:
        self.results[node_id] = result
        if self.on_result is not None:
            self.on_result(node_id, result)

    def send(
        self, prepared: list[tuple[str, _NodePool | None, CallSpec, bytes, float]]
    ) -> list[Exchange]:
        """Write every call that gets a pool slot and an idle connection without waiting; the
        others are reported (unknown node, deadline already past) or left in `later`."""
        transport = self.transport
        exchanges: list[Exchange] = []
        now = trio.current_time()  # one clock read for every pooled-connection check
        for node_id, pool, call, wire, deadline in prepared:
            if pool is None:
                self.report(node_id, UnknownNode(node_id, "no address for this node id"))
                continue
            if deadline <= now:  # as `request` would: time out without sending
                self.report(node_id, NodeTimeout(
                    node_id, f"{call.method} {call.path}: no answer by the deadline"
                ))
                continue
            connection = transport._take_idle_slot(pool, now)
            if connection is None:
                self.later.append((node_id, call, deadline))
                continue
            exchange = Exchange(node_id, connection, wire, call.method, call.path, deadline,
                                transport._max_response_bytes)
            self.holding[exchange] = (pool, call)
            try:
                exchange.send_available()
            except ExchangeFailed:
                # A pooled socket the node had closed: nothing reached it, ask afresh.
                connection.close()
                pool.limit.release()
                del self.holding[exchange]
                self.later.append((node_id, call, deadline))
                continue
            exchanges.append(exchange)
        return exchanges

    async def run(self, exchanges: list[Exchange]) -> None:
        """Read every answer in this task; run the `later` calls beside it when there are
        any (the common case has none: every node had a pooled connection)."""
        if not self.later:
            exchanges = await drive(exchanges, self.finished, stop=self.has_later,
                                    just_sent=True)
        if not self.later:
            return
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                for node_id, call, deadline in self.later:
                    nursery.start_soon(self.transport._one, node_id, call, deadline, self.report)
                self.later.clear()
                await drive(exchanges, self.finished)
        except BaseExceptionGroup as group:
            # A bug (e.g. in `on_result`) in one of the tasks: raise it as itself, as the
            # one-task path would, not wrapped in a group.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    def has_later(self) -> bool:
        return bool(self.later)

    def finished(self, exchange: Exchange, failed: ExchangeFailed | None) -> None:
        """`drive`'s report of one exchange: release its slot, then its result, or a retry
        through `request` when a stale pooled connection broke before any answer."""
        pool, call = self.holding.pop(exchange)
        pool.limit.release()
        transport = self.transport
        if failed is None:
            transport._release(pool, exchange.connection, exchange.answer.keep_alive())
            self.report(exchange.node_id, exchange.response())
        elif transport._may_retry(failed, exchange.connection, call.method, call.path):
            if self.nursery is not None:
                self.nursery.start_soon(transport._one, exchange.node_id, call,
                                        exchange.deadline, self.report)
            else:
                self.later.append((exchange.node_id, call, exchange.deadline))
        else:
            self.report(exchange.node_id, failed.error)

    def abandon(self) -> None:
        """Close the exchanges a cancellation left mid-way (none after a normal end)."""
        for exchange, (pool, _) in self.holding.items():
            exchange.connection.close()
            pool.limit.release()
        self.holding.clear()


# Request heads by everything but the body: a scatter sends the same head to every node of a
# pool, search after search. Bounded because paths may carry query strings.
_HEADS: dict[tuple[Any, ...], str] = {}
_HEADS_MAX = 1024


def _format_request(
    pool: _NodePool,
    method: str,
    path: str,
    body: bytes | None,
    headers: Sequence[tuple[str, str]],
) -> bytes:
    """The request on the wire. Every caller-supplied piece is checked, so nothing can inject a
    header line or a second request; the node key replaces any client Authorization."""
    try:
        key: tuple[Any, ...] | None = (pool.prefix, pool.fixed_head, method, path, headers,
                                       body is None)
        head = _HEADS.get(key)  # type: ignore[arg-type]
    except TypeError:  # unhashable headers (a list): format every time
        key = head = None
    if head is None:
        head = _format_head(pool, method, path, body is not None, headers)
        if key is not None:
            if len(_HEADS) >= _HEADS_MAX:
                _HEADS.clear()
            _HEADS[key] = head
    if body is not None:
        return f"{head}content-length: {len(body)}\r\n\r\n".encode("latin-1") + body
    return f"{head}\r\n".encode("latin-1")


def _format_head(
    pool: _NodePool, method: str, path: str, has_body: bool, headers: Sequence[tuple[str, str]]
) -> str:
    """The head up to (not including) the content-length line or the blank line; raises
    ValueError for anything that could inject a header line or a second request."""
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"invalid HTTP method {method!r}")
    target = pool.prefix + path
    if not target.startswith("/") or _FORBIDDEN_IN_TARGET.search(target):
        raise ValueError(f"invalid request path {path!r}")
    if not target.isascii():
        # A request line is bytes: a character beyond ASCII (an index uid or a document id a
        # client wrote in any script) travels percent-encoded as UTF-8, as a client would send
        # it, never as a latin-1 encoding error. Lone surrogates pass through as their bytes.
        target = quote(target, safe=_ASCII_PRINTABLE, errors="surrogatepass")
    lines = [f"{method} {target} HTTP/1.1\r\n{pool.fixed_head}"]
    has_content_type = False
    for name, value in headers:
        lowered = name.lower()
        if lowered in _TRANSPORT_HEADERS:
            continue
        if lowered == "authorization" and "authorization:" in pool.fixed_head:
            continue
        if not _TOKEN.fullmatch(name) or _FORBIDDEN_IN_VALUE.search(value):
            raise ValueError(f"invalid header {name!r}")
        has_content_type = has_content_type or lowered == "content-type"
        lines.append(f"{name}: {value}\r\n")
    if has_body and not has_content_type:
        lines.append("content-type: application/json\r\n")
    return "".join(lines)
