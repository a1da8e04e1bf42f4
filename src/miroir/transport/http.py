"""`HttpTransport`: the data-plane HTTP/1.1 client from Miroir to its nodes.

Owns per-node pools of keep-alive connections (trio sockets + an h11 state machine each), their
limits, deadlines, the node master key header, and the mapping of every socket or protocol failure
onto the `FailureKind` taxonomy of `miroir.transport.base`. It must never retry a request the node
may already have acted on, never put a connection back in the pool unless h11 says the previous
exchange ended cleanly (so a cancelled call never leaves half an answer for the next caller), and
never log or echo the API key. httpx stays the tool for the control plane; this is the hot path.

Theory of operation
-------------------
A call takes one slot of its node's limit (`max_connections_per_node`), then the most recently
used idle connection (LIFO: the youngest is the least likely to have been closed by the node), or
connects a new one under `connect_timeout`. The request is serialised through h11 and sent with
one `send_all`; the answer is read until h11 says `EndOfMessage`. Content-Length and chunked
answers are both h11's business. Afterwards the connection goes back to the pool only if both
sides of h11 are `DONE` (so `Connection: close`, HTTP/1.0 and any error or cancellation close it
instead), and the pool keeps at most `max_idle_per_node` of them for `keepalive_expiry` seconds.

The tricky case is the stale connection: a node closes an idle keep-alive connection and we only
learn it when we use it. Before reuse we poll the socket: readable while idle means EOF (or junk),
so it is dropped unseen. If a reused connection still fails before a single byte of answer arrives,
the request is retried once on a fresh connection when that is safe: the send itself failed (the
node cannot have a complete request), or the request is read-only (`is_read_only`). A write that
may have reached the node is never silently repeated; it fails with `NodeReset` and the caller's
quorum accounting decides.

Deadlines are absolute `trio.current_time()` values, so everything here also runs under MockClock.
"""

from __future__ import annotations

import select
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

import h11
import trio

from miroir.transport.base import (
    NodeProtocolError,
    NodeRefused,
    NodeReset,
    NodeResponse,
    NodeTimeout,
    TransportError,
    UnknownNode,
)

_READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Meilisearch POST routes that only read: repeating them cannot change a node's state.
_READ_ONLY_POST_SUFFIXES = ("/search", "/multi-search", "/facet-search", "/similar", "/fetch")
_RECEIVE_SIZE = 65536


def is_read_only(method: str, path: str) -> bool:
    """True when sending this request twice cannot change the node (safe to retry)."""
    if method in _READ_ONLY_METHODS:
        return True
    if method == "POST":
        return path.split("?", 1)[0].endswith(_READ_ONLY_POST_SUFFIXES)
    return False


class _ExchangeFailed(Exception):
    """Internal: an exchange broke. `answer_started` says whether any answer byte arrived."""

    def __init__(self, error: TransportError, *, answer_started: bool, send_failed: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.answer_started = answer_started
        self.send_failed = send_failed


class _Connection:
    __slots__ = ("stream", "protocol", "idle_since", "reused")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.protocol = h11.Connection(h11.CLIENT)
        self.idle_since = 0.0
        self.reused = False

    def looks_stale(self) -> bool:
        """An idle keep-alive socket that is readable has been closed (or fed junk) by the node."""
        poller = select.poll()
        poller.register(self.stream.socket.fileno(), select.POLLIN | select.POLLERR)
        return bool(poller.poll(0))

    def close(self) -> None:
        # Synchronous on purpose: it must also work inside a cancelled scope and in `finally`.
        self.stream.socket.close()


class _NodePool:
    """Connections to one node address. Replaced, not mutated, when the address changes."""

    __slots__ = ("node_id", "host", "port", "prefix", "host_header", "limit", "idle", "closed")

    def __init__(self, node_id: str, base_url: str, max_connections: int) -> None:
        parts = urlsplit(base_url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"node {node_id}: only http://host:port addresses, got {base_url!r}")
        self.node_id = node_id
        self.host = parts.hostname
        self.port = parts.port or 80
        self.prefix = parts.path.rstrip("/")
        self.host_header = parts.netloc.encode()
        self.limit = trio.Semaphore(max_connections)
        self.idle: deque[_Connection] = deque()
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
        self._max_connections = max_connections_per_node
        self._max_idle = max_idle_per_node
        self._keepalive_expiry = keepalive_expiry
        self._connect_timeout = connect_timeout
        self._max_response_bytes = max_response_bytes
        self._is_read_only = is_read_only
        self._auth: tuple[bytes, bytes] | None = (
            (b"authorization", b"Bearer " + api_key.encode()) if api_key else None
        )
        self._pools: dict[str, _NodePool] = {}
        self._closed = False
        self.set_addresses(addresses)

    # -- topology ---------------------------------------------------------------------------

    def set_addresses(self, addresses: Mapping[str, str]) -> None:
        """Point node ids at new base URLs. Pools of removed or moved nodes are closed; calls
        already running on them finish, and their connections are closed instead of reused."""
        fresh: dict[str, _NodePool] = {}
        for node_id, base_url in addresses.items():
            current = self._pools.get(node_id)
            same = current is not None and _pool_url(current) == base_url.rstrip("/")
            fresh[node_id] = (
                current if same else _NodePool(node_id, base_url, self._max_connections)
            )
        for node_id, pool in self._pools.items():
            if fresh.get(node_id) is not pool:
                pool.closed = True
                pool.close_idle()
        self._pools = fresh

    def addresses(self) -> dict[str, str]:
        return {node_id: _pool_url(pool) for node_id, pool in self._pools.items()}

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
        if self._closed:
            raise RuntimeError("HttpTransport is closed")
        pool = self._pools.get(node_id)
        if pool is None:
            raise UnknownNode(node_id, "no address for this node id")
        with trio.move_on_at(deadline):
            return await self._request(pool, method, path, body, headers, deadline)
        raise NodeTimeout(node_id, f"{method} {path}: no answer by the deadline")

    async def _request(
        self,
        pool: _NodePool,
        method: str,
        path: str,
        body: bytes | None,
        headers: Sequence[tuple[str, str]],
        deadline: float,
    ) -> NodeResponse:
        request = h11.Request(
            method=method,
            target=pool.prefix + path,
            headers=self._request_headers(pool, body, headers),
        )
        try:
            pool.limit.acquire_nowait()
        except trio.WouldBlock:
            await pool.limit.acquire()
        try:
            for attempt in (1, 2):
                connection = self._take_idle(pool)
                if connection is None:
                    connection = await self._connect(pool, deadline)
                try:
                    response = await self._exchange(pool, connection, request, body)
                except _ExchangeFailed as failed:
                    connection.close()
                    retry = (
                        attempt == 1
                        and connection.reused
                        and not failed.answer_started
                        and (failed.send_failed or self._is_read_only(method, path))
                    )
                    if retry:
                        continue
                    raise failed.error from None
                except BaseException:
                    # Cancelled (or a bug) mid-exchange: the socket may hold half an answer.
                    connection.close()
                    raise
                self._release(pool, connection)
                return response
            raise AssertionError("unreachable: the second attempt never retries")
        finally:
            pool.limit.release()

    def _request_headers(
        self, pool: _NodePool, body: bytes | None, headers: Sequence[tuple[str, str]]
    ) -> list[tuple[bytes | str, bytes | str]]:
        out: list[tuple[bytes | str, bytes | str]] = [(b"host", pool.host_header)]
        if self._auth is not None:
            out.append(self._auth)
        has_content_type = False
        for name, value in headers:
            lowered = name.lower()
            if lowered in ("host", "content-length", "connection"):
                continue  # the transport owns framing and routing headers
            if lowered == "authorization" and self._auth is not None:
                continue  # the node key wins over whatever the client sent
            has_content_type = has_content_type or lowered == "content-type"
            out.append((name, value))
        if body is not None:
            if not has_content_type:
                out.append((b"content-type", b"application/json"))
            out.append((b"content-length", str(len(body)).encode()))
        return out

    def _take_idle(self, pool: _NodePool) -> _Connection | None:
        now = trio.current_time()
        while pool.idle:
            connection = pool.idle.pop()
            if now - connection.idle_since > self._keepalive_expiry or connection.looks_stale():
                connection.close()
                continue
            return connection
        return None

    def _release(self, pool: _NodePool, connection: _Connection) -> None:
        protocol = connection.protocol
        reusable = (
            not pool.closed
            and not self._closed
            and protocol.our_state is h11.DONE
            and protocol.their_state is h11.DONE
            and len(pool.idle) < self._max_idle
        )
        if not reusable:
            connection.close()
            return
        protocol.start_next_cycle()
        connection.reused = True
        connection.idle_since = trio.current_time()
        pool.idle.append(connection)

    async def _connect(self, pool: _NodePool, deadline: float) -> _Connection:
        connect_deadline = min(deadline, trio.current_time() + self._connect_timeout)
        with trio.move_on_at(connect_deadline):
            try:
                stream = await trio.open_tcp_stream(pool.host, pool.port)
            except OSError as error:
                raise NodeRefused(pool.node_id, f"connect failed: {error}") from None
            return _Connection(stream)
        raise NodeTimeout(pool.node_id, "connect timed out")

    async def _exchange(
        self, pool: _NodePool, connection: _Connection, request: h11.Request, body: bytes | None
    ) -> NodeResponse:
        protocol = connection.protocol
        stream = connection.stream
        node_id = pool.node_id
        try:
            wire = protocol.send(request)
            if body:
                wire += protocol.send(h11.Data(data=body))
            wire += protocol.send(h11.EndOfMessage())
        except h11.LocalProtocolError as error:
            # A bad header from the caller: nothing was sent, the connection is still clean,
            # but its h11 state is not, so it is closed by the caller of _exchange.
            raise _ExchangeFailed(
                NodeProtocolError(node_id, f"cannot send request: {error}"),
                answer_started=True,  # never retry a request we cannot even serialise
                send_failed=False,
            ) from None
        try:
            await stream.send_all(wire)
        except (trio.BrokenResourceError, OSError) as error:
            raise _ExchangeFailed(
                NodeReset(node_id, f"send failed: {error}"), answer_started=False, send_failed=True
            ) from None

        received = 0
        eof = False
        status = 0
        response_headers: list[tuple[str, str]] = []
        chunks: list[bytes] = []
        while True:
            try:
                event = protocol.next_event()
            except h11.RemoteProtocolError as error:
                if eof:
                    failure: TransportError = NodeReset(node_id, f"closed mid-answer: {error}")
                else:
                    failure = NodeProtocolError(node_id, f"bad answer: {error}")
                raise _ExchangeFailed(
                    failure, answer_started=received > 0, send_failed=False
                ) from None
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive_some(_RECEIVE_SIZE)
                except (trio.BrokenResourceError, OSError) as error:
                    raise _ExchangeFailed(
                        NodeReset(node_id, f"receive failed: {error}"),
                        answer_started=received > 0,
                        send_failed=False,
                    ) from None
                received += len(data)
                eof = not data
                if received > self._max_response_bytes:
                    raise _ExchangeFailed(
                        NodeProtocolError(node_id, "answer larger than max_response_bytes"),
                        answer_started=True,
                        send_failed=False,
                    )
                protocol.receive_data(data)  # b"" tells h11 the node closed the connection
                continue
            event_type = type(event)
            if event_type is h11.Data:
                chunks.append(event.data)
            elif event_type is h11.Response:
                status = event.status_code
                response_headers = [
                    (name.decode("latin-1"), value.decode("latin-1"))
                    for name, value in event.headers
                ]
            elif event_type is h11.EndOfMessage:
                break
            elif event_type is h11.InformationalResponse:
                continue
            else:  # ConnectionClosed before the answer was complete
                raise _ExchangeFailed(
                    NodeReset(node_id, "connection closed before an answer"),
                    answer_started=received > 0,
                    send_failed=False,
                )
        body_bytes = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return NodeResponse(node_id, status, response_headers, body_bytes)


def _pool_url(pool: _NodePool) -> str:
    return f"http://{pool.host_header.decode()}{pool.prefix}"
