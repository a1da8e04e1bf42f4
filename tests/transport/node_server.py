"""A tiny scriptable HTTP/1.1 node on 127.0.0.1 for HttpTransport tests (server side of h11).

Each connection is served by one task; every request is handed to `handler(request)`, which
returns what the node does: answer (content-length or chunked, keep-alive or close), close the
connection without answering, send half an answer and close, or hang.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from contextlib import asynccontextmanager

import attrs
import h11
import trio


@attrs.define
class Seen:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    connection_id: int


@attrs.frozen
class Reply:
    status: int = 200
    body: bytes = b"{}"
    headers: tuple[tuple[str, str], ...] = ()
    chunked: bool = False
    close: bool = False  # send Connection: close and close afterwards
    close_silently: bool = False  # advertise keep-alive, then close anyway (a stale connection)
    delay: float = 0.0


@attrs.frozen
class Drop:
    """Close the connection without a byte of answer."""


@attrs.frozen
class HalfReply:
    """Promise a body, send part of it, close."""


@attrs.frozen
class Junk:
    """Answer with bytes that are not HTTP."""


@attrs.frozen
class Raw:
    """Send these exact bytes, then close the connection if `close`."""

    wire: bytes
    close: bool = True
    cuts: tuple[int, ...] = ()  # send the wire in pieces split at these offsets


@attrs.frozen
class Stall:
    """Never answer."""


Action = Reply | Drop | HalfReply | Junk | Raw | Stall


@attrs.define
class NodeServer:
    handler: Callable[[Seen], Action]
    port: int = 0
    seen: list[Seen] = attrs.Factory(list)
    connections: int = 0
    listeners: list = attrs.Factory(list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # Over the complexity bar on purpose: one scripted misbehaviour per branch.
    async def serve_connection(self, stream: trio.SocketStream) -> None:  # noqa: C901
        self.connections += 1
        connection_id = self.connections
        protocol = h11.Connection(h11.SERVER)
        try:
            while True:
                request = None
                body = b""
                while True:
                    event = protocol.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        protocol.receive_data(data)
                        continue
                    if isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        return
                assert request is not None
                seen = Seen(
                    request.method.decode(),
                    request.target.decode(),
                    {k.decode(): v.decode() for k, v in request.headers},
                    body,
                    connection_id,
                )
                self.seen.append(seen)
                action = self.handler(seen)
                if isinstance(action, Drop):
                    return
                if isinstance(action, Stall):
                    await trio.sleep_forever()
                if isinstance(action, Junk):
                    await stream.send_all(b"this is not http\r\n\r\n")
                    return
                if isinstance(action, Raw):
                    edges = [0, *sorted(action.cuts), len(action.wire)]
                    for begin, end in zip(edges, edges[1:], strict=False):
                        await stream.send_all(action.wire[begin:end])
                        await trio.sleep(0.001)  # let the pieces arrive as separate reads
                    if action.close:
                        return
                    protocol = h11.Connection(h11.SERVER)  # h11 never saw that answer
                    continue
                if isinstance(action, HalfReply):
                    await stream.send_all(b'HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n{"half":')
                    return
                await trio.sleep(action.delay)
                headers = list(action.headers)
                if action.chunked:
                    headers.append(("transfer-encoding", "chunked"))
                else:
                    headers.append(("content-length", str(len(action.body))))
                if action.close:
                    headers.append(("connection", "close"))
                wire = protocol.send(h11.Response(status_code=action.status, headers=headers))
                if action.chunked:
                    middle = len(action.body) // 2
                    for part in (action.body[:middle], action.body[middle:]):
                        if part:
                            wire += protocol.send(h11.Data(data=part))
                else:
                    wire += protocol.send(h11.Data(data=action.body))
                wire += protocol.send(h11.EndOfMessage())
                await stream.send_all(wire)
                if protocol.our_state is h11.MUST_CLOSE or action.close or action.close_silently:
                    return
                protocol.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError, OSError):
            return
        finally:
            with trio.CancelScope(shield=True):
                await stream.aclose()


@asynccontextmanager
async def node_server(handler: Callable[[Seen], Action]):
    server = NodeServer(handler)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, server.serve_connection, 0, host="127.0.0.1")
        )
        server.port = listeners[0].socket.getsockname()[1]
        server.listeners = listeners
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()
