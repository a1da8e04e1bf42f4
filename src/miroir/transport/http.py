"""`HttpTransport`: the data-plane HTTP/1.1 client from Miroir to its nodes.

Owns per-node pools of keep-alive connections (trio sockets, answers parsed by httptools, the
llhttp parser Node.js uses), their limits, deadlines, the node master key header, and the mapping
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
body in one `send_all`; the answer is fed to a fresh httptools parser until it reports the message
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

Deadlines are absolute `trio.current_time()` values, so everything here also runs under MockClock.
"""

from __future__ import annotations

import re
import select
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from urllib.parse import urlsplit

import httptools
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
# The transport owns framing and routing; callers' copies of these are dropped.
_TRANSPORT_HEADERS = frozenset({"host", "content-length", "connection", "transfer-encoding"})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FORBIDDEN_IN_VALUE = re.compile(r"[\x00\r\n]")
_FORBIDDEN_IN_TARGET = re.compile(r"[\x00-\x20\x7f]")
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
    __slots__ = ("stream", "idle_since", "reused")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
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


class _Answer:
    """httptools callback target: collects one answer. 1xx interim answers are skipped."""

    __slots__ = (
        "parser",
        "headers",
        "chunks",
        "messages",
        "headers_done",
        "complete",
        "framed",
        "is_head",
        "node_keeps_alive",
    )

    def __init__(self, is_head: bool) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.headers: list[tuple[str, str]] = []
        self.chunks: list[bytes] = []
        self.messages = 0  # final (non-1xx) answers begun: more than one means trailing junk
        self.headers_done = False
        self.complete = False
        self.framed = False  # Content-Length or chunked; otherwise the body ends at EOF
        self.is_head = is_head
        self.node_keeps_alive = False  # llhttp forgets this once the message is complete

    def on_message_begin(self) -> None:
        self.messages += 1

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.decode("latin-1").lower()
        if lowered in ("content-length", "transfer-encoding"):
            self.framed = True
        self.headers.append((lowered, value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if status < 200:
            return
        self.headers_done = True
        self.node_keeps_alive = self.parser.should_keep_alive()
        if self.is_head or status in (204, 304):
            self.framed = True
            if self.is_head:
                self.complete = True  # llhttp cannot be told the request was HEAD

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:
            self.messages -= 1
            self.headers.clear()
            return
        self.complete = True

    def keep_alive(self) -> bool:
        return self.framed and self.messages == 1 and self.node_keeps_alive


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
                    response, keep_alive = await self._exchange(pool, connection, wire, method)
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
                self._release(pool, connection, keep_alive)
                return response
            raise AssertionError("unreachable: the second attempt never retries")
        finally:
            pool.limit.release()

    def _take_idle(self, pool: _NodePool) -> _Connection | None:
        now = trio.current_time()
        while pool.idle:
            connection = pool.idle.pop()
            if now - connection.idle_since > self._keepalive_expiry or connection.looks_stale():
                connection.close()
                continue
            return connection
        return None

    def _release(self, pool: _NodePool, connection: _Connection, keep_alive: bool) -> None:
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
        self, pool: _NodePool, connection: _Connection, wire: bytes, method: str
    ) -> tuple[NodeResponse, bool]:
        """Send `wire`, read one answer. Returns it and whether the socket may be reused."""
        stream = connection.stream
        node_id = pool.node_id
        try:
            await stream.send_all(wire)
        except (trio.BrokenResourceError, OSError) as error:
            raise _ExchangeFailed(
                NodeReset(node_id, f"send failed: {error}"), answer_started=False, send_failed=True
            ) from None
        answer = _Answer(is_head=method == "HEAD")
        received = 0
        while not answer.complete:
            try:
                data = await stream.receive_some(_RECEIVE_SIZE)
            except (trio.BrokenResourceError, OSError) as error:
                raise _ExchangeFailed(
                    NodeReset(node_id, f"receive failed: {error}"),
                    answer_started=received > 0,
                    send_failed=False,
                ) from None
            if not data:
                if answer.headers_done and not answer.framed:
                    answer.complete = True  # an answer delimited by the node closing
                    break
                raise _ExchangeFailed(
                    NodeReset(node_id, "connection closed before the answer was complete"),
                    answer_started=received > 0,
                    send_failed=False,
                )
            received += len(data)
            if received > self._max_response_bytes:
                raise _ExchangeFailed(
                    NodeProtocolError(node_id, "answer larger than max_response_bytes"),
                    answer_started=True,
                    send_failed=False,
                )
            try:
                answer.parser.feed_data(data)
            except httptools.HttpParserError as error:
                raise _ExchangeFailed(
                    NodeProtocolError(node_id, f"bad answer: {error}"),
                    answer_started=True,
                    send_failed=False,
                ) from None
        chunks = answer.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        status = answer.parser.get_status_code()
        return NodeResponse(node_id, status, answer.headers, body), answer.keep_alive()


def _format_request(
    pool: _NodePool,
    method: str,
    path: str,
    body: bytes | None,
    headers: Sequence[tuple[str, str]],
) -> bytes:
    """The request on the wire. Every caller-supplied piece is checked, so nothing can inject a
    header line or a second request; the node key replaces any client Authorization."""
    if not _TOKEN.fullmatch(method):
        raise ValueError(f"invalid HTTP method {method!r}")
    target = pool.prefix + path
    if not target.startswith("/") or _FORBIDDEN_IN_TARGET.search(target):
        raise ValueError(f"invalid request path {path!r}")
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
    if body is not None:
        if not has_content_type:
            lines.append("content-type: application/json\r\n")
        lines.append(f"content-length: {len(body)}\r\n\r\n")
        return "".join(lines).encode("latin-1") + body
    lines.append("\r\n")
    return "".join(lines).encode("latin-1")
