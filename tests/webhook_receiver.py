"""A local HTTP receiver for webhook deliveries: a trio TCP server speaking HTTP/1.1 with h11.

It records every request (method, path, headers, body decoded from gzip) and answers the first
`fail_first` of them 500, the rest 200, so tests see retries happen on a real socket.
"""

from __future__ import annotations

import functools
import gzip
from typing import Any

import attrs
import h11
import trio


@attrs.define
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def lines(self) -> list[bytes]:
        return [line for line in gzip.decompress(self.body).split(b"\n") if line]


@attrs.define
class Receiver:
    fail_first: int = 0
    port: int = 0
    received: list[Received] = attrs.field(factory=list)
    answered: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def serve(self, nursery: trio.Nursery) -> None:
        listeners = await nursery.start(
            functools.partial(trio.serve_tcp, self._handle, 0, host="127.0.0.1")
        )
        self.port = listeners[0].socket.getsockname()[1]

    async def _handle(self, stream: trio.SocketStream) -> None:
        # A client that resets a kept-alive connection (the proxy's pool closing an idle socket)
        # ends that connection, not the receiver: under load the reset raced the next read and
        # took the whole test down with it.
        try:
            await self._serve_connection(stream)
        except trio.BrokenResourceError:
            return

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        request: Any = None
        body = b""
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                connection.receive_data(data)
                if not data:
                    return
                continue
            if isinstance(event, h11.Request):
                request, body = event, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                headers = {k.decode().lower(): v.decode() for k, v in request.headers}
                self.received.append(Received(request.method.decode(), request.target.decode(),
                                              headers, body))
                status = 500 if self.answered < self.fail_first else 200
                self.answered += 1
                await stream.send_all(connection.send(h11.Response(
                    status_code=status, headers=[("content-length", "0")])))
                await stream.send_all(connection.send(h11.EndOfMessage()))
                connection.start_next_cycle()
            elif isinstance(event, h11.ConnectionClosed):
                return
