"""Canned HTTP/1.1 servers for benchmarks: asyncio, stdlib only, one prebuilt answer per request.

Owns the request framing (read the head, skip `content-length` bytes of body, answer, repeat
on the same keep-alive connection) that every canned node of the benchmarks needs. A benchmark
says only which answer a request gets (`choose(head, body) -> bytes`). It runs in a child process, so
it sits on the other core and costs every client it serves the same; it must never import
miroir (the child must start fast and measure nothing of ours).

A benchmark starts it with `child_script(code)`: the code runs with this folder on sys.path,
calls `serve_forever([choose, ...])`, which prints the ports (one per chooser, space-separated)
on one line, then serves until killed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

Choose = Callable[[bytes, bytes], bytes]  # (lower-cased request head, request body) -> answer


def http_answer(body: bytes) -> bytes:
    """A complete 200 response carrying `body` as JSON."""
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\n\r\n" + body)


class CannedNode(asyncio.Protocol):
    """Answers each request on a connection with `choose(lowercased request head, body)`."""

    def __init__(self, choose: Choose) -> None:
        self.choose = choose
        self.buffer = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = self.buffer[:head_end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(head[at + 15:].split(b"\r\n", 1)[0])
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            body = self.buffer[head_end + 4:end]
            self.buffer = self.buffer[end:]
            self.transport.write(self.choose(head, body))


async def serve_forever(choosers: list[Choose], backlog: int = 1024) -> None:
    """One loopback port per chooser; prints the ports on one line, then serves until killed."""
    loop = asyncio.get_running_loop()
    ports = []
    for choose in choosers:
        server = await loop.create_server(
            lambda choose=choose: CannedNode(choose), "127.0.0.1", 0, backlog=backlog
        )
        ports.append(str(server.sockets[0].getsockname()[1]))
    print(" ".join(ports), flush=True)
    await asyncio.Event().wait()


def child_script(code: str) -> str:
    """`code` prefixed so that it can `from _canned_http import ...` in a child interpreter."""
    return f"import sys\nsys.path.insert(0, {str(Path(__file__).resolve().parent)!r})\n" + code
