"""Keep-alive safety: the outermost ASGI layer, so no answer can leave a connection stuck.

Theory of operation. hypercorn (0.18.0, trio worker, HTTP/1.1 over h11 0.16) decides what
becomes of a connection -- recycle it for the next request, or close it -- inside the ASGI
`send` call that carries the last body message, that is in the app's own task, under the app's
cancel scopes (`HTTPStream.app_send` -> `H11Protocol._maybe_recycle`). quart-trio (0.12) runs
each request in a nursery and cancels it as soon as its body reader receives `http.disconnect`,
which hypercorn delivers from inside that same `_maybe_recycle` (`_close_stream`). When an answer
goes out before the request body has fully arrived (a 401, 404, 405, 413 or 415 to a request
with a body: the client sent the headers and the body in two writes, as httpx does), h11 still
expects body bytes, so hypercorn takes its close path; Quart's cancellation lands on that path's
first checkpoint (`TCPServer._close` -> `send_eof`), and the socket is neither closed nor
recycled. The rest of the body then arrives, h11 reaches DONE/DONE with nobody to start the next
cycle, and the next request on the connection parks forever on `H11Protocol.can_read`. On the
recycle path the same cancellation lands later, in re-arming the idle timer, so the connection
never times out. Nothing newer of hypercorn, h11, Quart or quart-trio changes this (all at their
latest releases on 2026-12-04); docs/operations.md ("Keep-alive connections and early answers") has the trace.

Two rules, applied to every HTTP request before Quart or the search lane sees it:
1. The response does not start while the request body is still arriving. The body is drained
   (read and dropped: whoever answers no longer needs it) for up to `DRAIN_TIMEOUT_S` and
   `DRAIN_LIMIT_BYTES`, so the connection is recycled; a body larger than that, or one that does
   not come, gets the answer with `Connection: close`, and hypercorn closes the connection after
   it. Either way the client is never left waiting.
2. The last body message is sent shielded from the app's cancellation, so hypercorn's
   recycle-or-close bookkeeping always runs to its end.

Must never: answer, change a status or a body, or read a body that the app still needs (draining
starts only once the app has started its answer).
"""

from __future__ import annotations

from typing import Any

import trio

# Draining more than this to keep one connection costs more than opening a new one.
DRAIN_LIMIT_BYTES = 1 << 20
# A client that announced a body and does not send it keeps no answer waiting longer than this.
DRAIN_TIMEOUT_S = 1.0
_CLOSE = (b"connection", b"close")


def keep_alive_guard(inner: Any) -> Any:
    """`inner` (an ASGI app) with both rules of this module applied to every HTTP request."""

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await inner(scope, receive, send)
        exchange = _Exchange(scope, receive, send)
        await inner(scope, exchange.receive, exchange.send)

    return guarded


class _Exchange:
    """One request's view of both channels: what the app has read, and how it answers."""

    __slots__ = ("_scope", "_receive", "_send", "body_done", "received_bytes", "_arrived",
                 "_closing")

    def __init__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self._scope = scope
        self._receive = receive
        self._send = send
        self.body_done = False  # the last body message, or a disconnect, has been read
        self.received_bytes = 0
        self._arrived: trio.Event | None = None  # made only when an answer waits for the body
        self._closing = False

    async def receive(self) -> dict[str, Any]:
        message = await self._receive()
        if message["type"] == "http.request":
            self.received_bytes += len(message.get("body", b""))
            if message.get("more_body", False):
                return message
        self.body_done = True
        if self._arrived is not None:
            self._arrived.set()
        return message

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if not self.body_done:
                message = await self._settle_request_body(message)
            await self._send(message)
        elif kind == "http.response.body" and not message.get("more_body", False):
            await self._send_last(message)
        else:
            await self._send(message)

    async def _settle_request_body(self, start: dict[str, Any]) -> dict[str, Any]:
        """Rule 1: drain what is left of the body, or mark the answer `Connection: close`."""
        remaining = _declared_length(self._scope)
        if remaining is None or remaining - self.received_bytes <= DRAIN_LIMIT_BYTES:
            self._arrived = trio.Event()
            with trio.move_on_after(DRAIN_TIMEOUT_S):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._drain, nursery.cancel_scope)
                    # The app may have its own reader (Quart has): whichever of the two reads
                    # the last message ends the wait.
                    await self._arrived.wait()
                    nursery.cancel_scope.cancel()
        if self.body_done:
            return start
        self._closing = True
        return {**start, "headers": [*start.get("headers", ()), _CLOSE]}

    async def _drain(self, done: trio.CancelScope) -> None:
        limit = self.received_bytes + DRAIN_LIMIT_BYTES
        while not self.body_done and self.received_bytes <= limit:
            await self.receive()
        done.cancel()

    async def _send_last(self, message: dict[str, Any]) -> None:
        """Rule 2. When the connection is closing with body bytes still queued for the app, a
        reader keeps the queue moving, so hypercorn's own `http.disconnect` can be delivered."""
        if not self._closing:
            with trio.CancelScope(shield=True):
                await self._send(message)
            return
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._discard_until_disconnect)
            with trio.CancelScope(shield=True):
                await self._send(message)
            nursery.cancel_scope.cancel()

    async def _discard_until_disconnect(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass


def _declared_length(scope: dict[str, Any]) -> int | None:
    """The request's Content-Length, or None (chunked, or not a number)."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None
