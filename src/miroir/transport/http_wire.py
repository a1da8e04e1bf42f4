"""One HTTP/1.1 exchange on one pooled socket, and the loop that drives several from one task.

Owns the socket-level half of `HttpTransport`: the pooled connection (a non-blocking stdlib
socket, so a call costs one `send` and one `recv` system call when the node is quick, without
trio's stream wrappers), the httptools answer collector, the `Exchange` state of one request in
flight (bytes still to send, the answer so far, its deadline), and `drive`, which reads the
answers of many exchanges in one task. It must never decide about pools, retries or which
connection to use (that is `miroir.transport.http`), and never hand back a connection whose
answer was not read to its end: a connection leaves here either complete or closed.

Theory of operation of `drive`
------------------------------
Every exchange's request was already sent, so the nodes work in parallel while we read. Under a
cancel scope at the earliest pending deadline, `drive` first waits on one socket at a time for
SINGLE_WAIT_S (answers to one scatter arrive together, and one socket's wait is the cheapest),
reading every socket that has something each time it wakes. Whatever is still pending after
that is waited for all at once: the sockets are put in one epoll set and the task sleeps on
that set's own descriptor (an epoll descriptor is readable when any socket in it is), so a
failure anywhere is seen at once. One task, usually one or two wake-ups, however many nodes. An exchange whose
deadline passes is a timeout, its socket closed. Cancellation (from the caller's scope) closes
every exchange still in flight. Without epoll (not Linux) the sockets are waited for one by one,
the earliest deadline first, which keeps every deadline but may read a quick node late.
"""

from __future__ import annotations

import select
import socket
from collections.abc import Callable

import httptools
import trio

from miroir.transport.base import (
    NodeProtocolError,
    NodeReset,
    NodeResponse,
    NodeTimeout,
    TransportError,
)

RECEIVE_SIZE = 65536
_HAS_EPOLL = hasattr(select, "epoll")


class ExchangeFailed(Exception):
    """An exchange broke. `answer_started` says whether any answer byte arrived."""

    def __init__(self, error: TransportError, *, answer_started: bool, send_failed: bool) -> None:
        super().__init__(str(error))
        self.error = error
        self.answer_started = answer_started
        self.send_failed = send_failed


class Connection:
    """One keep-alive socket to a node (non-blocking, TCP_NODELAY)."""

    __slots__ = ("sock", "idle_since", "reused")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.idle_since = 0.0
        self.reused = False

    @classmethod
    def from_stream(cls, stream: trio.SocketStream) -> Connection:
        """Take the socket out of a freshly connected trio stream (trio did DNS and connect)."""
        trio_socket = stream.socket
        family, kind, proto = trio_socket.family, trio_socket.type, trio_socket.proto
        sock = socket.socket(family, kind, proto, fileno=trio_socket.detach())
        if family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(sock)

    def looks_stale(self) -> bool:
        """An idle keep-alive socket that is readable has been closed (or fed junk) by the node."""
        try:
            self.sock.recv(1, socket.MSG_PEEK)
        except BlockingIOError:
            return False  # nothing to read: still open and quiet
        except OSError:
            return True
        return True  # EOF or unexpected bytes

    def close(self) -> None:
        # Synchronous on purpose: it must also work inside a cancelled scope and in `finally`.
        if self.sock.fileno() < 0:
            return  # closed already
        try:
            trio.lowlevel.notify_closing(self.sock)
        except RuntimeError:  # outside trio: nobody can be waiting on it
            pass
        self.sock.close()


class Answer:
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


class Exchange:
    """One request on one connection: send it, feed the answer in, end complete or failed."""

    __slots__ = (
        "node_id",
        "connection",
        "unsent",
        "answer",
        "received",
        "deadline",
        "max_bytes",
        "label",
    )

    def __init__(
        self,
        node_id: str,
        connection: Connection,
        wire: bytes,
        method: str,
        path: str,
        deadline: float,
        max_bytes: int,
    ) -> None:
        self.node_id = node_id
        self.connection = connection
        self.unsent = memoryview(wire)
        self.answer = Answer(is_head=method == "HEAD")
        self.received = 0
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.label = f"{method} {path}"

    def send_available(self) -> bool:
        """Send what the socket takes now; True when the whole request is out."""
        sock = self.connection.sock
        try:
            while self.unsent:
                self.unsent = self.unsent[sock.send(self.unsent) :]
        except BlockingIOError:
            return False
        except OSError as error:
            raise ExchangeFailed(
                NodeReset(self.node_id, f"send failed: {error}"),
                answer_started=False,
                send_failed=True,
            ) from None
        return True

    async def send_all(self) -> None:
        while not self.send_available():
            await trio.lowlevel.wait_writable(self.connection.sock)

    def receive_available(self) -> bool:
        """Read and parse what has arrived; True when the answer is complete."""
        sock = self.connection.sock
        answer = self.answer
        while not answer.complete:
            try:
                data = sock.recv(RECEIVE_SIZE)
            except BlockingIOError:
                return False
            except OSError as error:
                raise ExchangeFailed(
                    NodeReset(self.node_id, f"receive failed: {error}"),
                    answer_started=self.received > 0,
                    send_failed=False,
                ) from None
            self._feed(data)
        return True

    async def receive_all(self) -> None:
        while not self.receive_available():
            await trio.lowlevel.wait_readable(self.connection.sock)

    def _feed(self, data: bytes) -> None:
        answer = self.answer
        if not data:
            if answer.headers_done and not answer.framed:
                answer.complete = True  # an answer delimited by the node closing
                return
            raise ExchangeFailed(
                NodeReset(self.node_id, "connection closed before the answer was complete"),
                answer_started=self.received > 0,
                send_failed=False,
            )
        self.received += len(data)
        if self.received > self.max_bytes:
            raise ExchangeFailed(
                NodeProtocolError(self.node_id, "answer larger than max_response_bytes"),
                answer_started=True,
                send_failed=False,
            )
        try:
            answer.parser.feed_data(data)
        except httptools.HttpParserError as error:
            raise ExchangeFailed(
                NodeProtocolError(self.node_id, f"bad answer: {error}"),
                answer_started=True,
                send_failed=False,
            ) from None

    def response(self) -> NodeResponse:
        """The complete answer. Call once: it unhooks the parser from the answer (they point at
        each other, a reference cycle that would leave every answer to the cyclic garbage
        collector, which then costs more CPU than parsing it did)."""
        answer = self.answer
        chunks = answer.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        status = answer.parser.get_status_code()
        answer.parser = None
        return NodeResponse(self.node_id, status, answer.headers, body)

    def timeout(self) -> NodeTimeout:
        return NodeTimeout(self.node_id, f"{self.label}: no answer by the deadline")


# How long `drive` waits on one socket at a time before it watches all of them at once.
SINGLE_WAIT_S = 0.002

# finished(exchange, None) when its answer is complete, finished(exchange, failure) otherwise.
Finished = Callable[[Exchange, ExchangeFailed | None], None]


async def drive(
    exchanges: list[Exchange],
    finished: Finished,
    *,
    stop: Callable[[], bool] | None = None,
    just_sent: bool = False,
) -> list[Exchange]:
    """Read every exchange's answer in this task; report each through `finished` as it ends.

    A timeout is reported as an `ExchangeFailed` holding a `NodeTimeout`. The connection of a
    failed or timed-out exchange is closed before `finished` sees it; on cancellation every
    exchange still pending is closed and not reported. When `stop()` turns true (checked after
    each round of reports) the exchanges still in flight are returned untouched, for the caller
    to drive on once it has done what it stopped for; otherwise the result is empty.
    """
    pending = list(exchanges)
    # Made on the first wait for several sockets: most scatters on a LAN find their answers
    # already in when they first look, and an epoll set costs three syscalls.
    watch: _Watch | None = None
    # One cancel scope for all the waits, its deadline moved to the earliest pending one before
    # each (entering a scope per wait cost more than the wait's bookkeeping); a scope that fired
    # is spent, so the next round opens a new one. None until the first wait.
    scope: trio.CancelScope | None = None
    single_until = trio.current_time() + SINGLE_WAIT_S
    handed_back = False
    # Requests that just left cannot have answers yet: look at the sockets only once one of
    # them is ready (saves a failed receive per exchange and a pass over all of them).
    fresh = just_sent
    try:
        while pending:
            if not fresh:
                pending = _settle_ready(pending, watch, finished)
            fresh = False
            if not pending or (stop is not None and stop()):
                handed_back = True
                return pending
            if scope is None or scope.cancel_called:
                scope = trio.CancelScope()
            with scope:
                while pending:
                    deadline = min(exchange.deadline for exchange in pending)
                    # Early on, wait for one socket and then look at all of them: answers to
                    # one scatter arrive together, and one socket's wait costs a fifth of an
                    # epoll set's. Past SINGLE_WAIT_S, wait for whichever comes first, so a
                    # failure elsewhere is never noticed more than that late.
                    single = len(pending) == 1 or not _HAS_EPOLL
                    if not single and trio.current_time() < single_until:
                        single = True
                        deadline = min(deadline, single_until)
                    scope.deadline = deadline
                    if single:
                        first = min(pending, key=lambda exchange: exchange.deadline)
                        if first.unsent:
                            await trio.lowlevel.wait_writable(first.connection.sock)
                        else:
                            await trio.lowlevel.wait_readable(first.connection.sock)
                    else:
                        if watch is None:
                            watch = _Watch()
                        await watch.wait(pending)
                    pending = _settle_ready(pending, watch, finished)
                    if stop is not None and stop():
                        handed_back = True
                        return pending
        handed_back = True
        return pending
    finally:
        if not handed_back:  # cancelled, or a callback raised
            for exchange in pending:
                exchange.connection.close()
        if watch is not None:
            watch.close()


def _settle_ready(
    pending: list[Exchange], watch: _Watch | None, finished: Finished
) -> list[Exchange]:
    """Move every exchange as far as its socket allows without waiting; report the ones that
    ended (complete, failed, or past their deadline); return those still in flight."""
    still: list[Exchange] = []
    now = trio.current_time()
    for exchange in pending:
        try:
            if exchange.unsent and not exchange.send_available():
                done = False
            else:
                done = exchange.receive_available()
            if not done and exchange.deadline <= now:
                raise ExchangeFailed(
                    exchange.timeout(), answer_started=exchange.received > 0, send_failed=False
                )
        except ExchangeFailed as failed:
            if watch is not None:
                watch.forget(exchange)
            exchange.connection.close()
            finished(exchange, failed)
            continue
        if done:
            if watch is not None:
                watch.forget(exchange)
            finished(exchange, None)
        else:
            still.append(exchange)
    return still


class _Watch:
    """An epoll set of the pending sockets, waited on as one descriptor."""

    __slots__ = ("poller", "watched")

    def __init__(self) -> None:
        self.poller = select.epoll()
        self.watched: dict[int, int] = {}  # fd -> the events it is watched for

    async def wait(self, pending: list[Exchange]) -> None:
        for exchange in pending:
            events = select.EPOLLOUT if exchange.unsent else select.EPOLLIN
            fileno = exchange.connection.sock.fileno()
            known = self.watched.get(fileno)
            if known is None:
                self.poller.register(fileno, events)
            elif known != events:
                self.poller.modify(fileno, events)
            self.watched[fileno] = events
        await trio.lowlevel.wait_readable(self.poller.fileno())

    def forget(self, exchange: Exchange) -> None:
        """Stop watching a finished exchange's socket (before it is closed or pooled: a pooled
        socket that the node later closes must not wake this set)."""
        fileno = exchange.connection.sock.fileno()
        if self.watched.pop(fileno, None) is not None:
            self.poller.unregister(fileno)

    def close(self) -> None:
        try:
            trio.lowlevel.notify_closing(self.poller.fileno())
        except RuntimeError:
            pass
        self.poller.close()
