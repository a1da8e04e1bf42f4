"""Client-side cost of one keep-alive round trip: HttpTransport beside httpx.AsyncClient.

Starts its own fast HTTP/1.1 server in a child process (asyncio, canned answer, so it sits on the
other core and costs both clients the same), then drives the same POST through both clients,
sequentially and with concurrent callers, all on trio. Cost is client CPU time per request
(`time.process_time` of this process, which excludes the server); wall time is printed beside it.
Absolute numbers drift between runs on shared machines; compare within one run.

    .venv/bin/python benchmarks/bench_node_client.py [--requests 3000] [--concurrency 8]

The last line is `ratio=<httpx CPU per request / HttpTransport CPU per request>` over the
sequential and concurrent runs. A 3-node scatter is printed for reference, its cost per scatter,
not per request: three httpx posts in a trio nursery; three `HttpTransport.request` calls, one
task per node; and one `miroir.cluster.scatter` call, which drives all three from one task
through `HttpTransport.request_many`.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import httpx
import trio
from _canned_http import child_script

from miroir.cluster.scatter import NodeCall, scatter
from miroir.transport.http import HttpTransport

# One canned node (see _canned_http) answering every request with the same search answer.
SERVER = child_script(r"""
import asyncio
from _canned_http import http_answer, serve_forever
BODY = b'{"hits":[{"id":1,"title":"Carol","_rankingScore":0.91}],"query":"c","processingTimeMs":0,"limit":20,"offset":0,"estimatedTotalHits":1}'
ANSWER = http_answer(BODY)
asyncio.run(serve_forever([lambda head, body: ANSWER], backlog=512))
""")

PATH = "/indexes/bench/search"
BODY = b'{"q":"carol","limit":20,"offset":0,"showRankingScore":true}'
HEADERS = [("content-type", "application/json")]


async def run_transport(url: str, requests: int, concurrency: int) -> None:
    transport = HttpTransport({"node": url}, api_key="bench-key")

    async def caller(count: int) -> None:
        for _ in range(count):
            response = await transport.request(
                "node",
                "POST",
                PATH,
                body=BODY,
                headers=HEADERS,
                deadline=trio.current_time() + 10,
            )
            assert response.status == 200

    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(caller, requests // concurrency)
    await transport.aclose()


async def run_httpx(url: str, requests: int, concurrency: int) -> None:
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=url, headers={"authorization": "Bearer bench-key"}, limits=limits
    ) as client:

        async def caller(count: int) -> None:
            for _ in range(count):
                response = await client.post(PATH, content=BODY, headers=HEADERS, timeout=10)
                assert response.status_code == 200

        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(caller, requests // concurrency)


async def scatter_transport(url: str, requests: int, _concurrency: int) -> None:
    """`requests` 3-node scatters through `miroir.cluster.scatter` (3 ids, one server)."""
    transport = HttpTransport({f"n{i}": url for i in range(3)}, api_key="bench-key")
    calls = {f"n{i}": NodeCall("POST", PATH, body=BODY, headers=HEADERS) for i in range(3)}
    for _ in range(requests):
        results = await scatter(transport, calls, deadline=trio.current_time() + 10)
        assert all(result.status == 200 for result in results.values())
    await transport.aclose()


async def scatter_tasks(url: str, requests: int, _concurrency: int) -> None:
    """The same scatters as one task per node calling `HttpTransport.request` (the path every
    transport without `request_many` takes), to show what driving them from one task saves."""
    transport = HttpTransport({f"n{i}": url for i in range(3)}, api_key="bench-key")

    async def one(node_id: str) -> None:
        response = await transport.request(
            node_id, "POST", PATH, body=BODY, headers=HEADERS, deadline=trio.current_time() + 10
        )
        assert response.status == 200

    for _ in range(requests):
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(one, f"n{i}")
    await transport.aclose()


async def scatter_httpx(url: str, requests: int, _concurrency: int) -> None:
    async with httpx.AsyncClient(
        base_url=url, headers={"authorization": "Bearer bench-key"}
    ) as client:

        async def one() -> None:
            response = await client.post(PATH, content=BODY, headers=HEADERS, timeout=10)
            assert response.status_code == 200

        for _ in range(requests):
            async with trio.open_nursery() as nursery:
                for _ in range(3):
                    nursery.start_soon(one)


def measure(runner, url: str, requests: int, concurrency: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per request, after a warm-up that fills the pool."""
    trio.run(runner, url, max(concurrency * 20, 100), concurrency)
    cpu, wall = time.process_time(), time.perf_counter()
    trio.run(runner, url, requests, concurrency)
    done = requests - requests % concurrency
    return (
        (time.process_time() - cpu) / done * 1e6,
        (time.perf_counter() - wall) / done * 1e6,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{server.stdout.readline().strip()}"
        total = {"HttpTransport": 0.0, "httpx": 0.0}
        print(f"{'scenario':<22}{'client':<15}{'CPU µs/req':>12}{'wall µs/req':>13}")
        for label, concurrency in (
            ("sequential", 1),
            (f"concurrent x{args.concurrency}", args.concurrency),
        ):
            for name, runner in (("httpx", run_httpx), ("HttpTransport", run_transport)):
                cpu, wall = measure(runner, url, args.requests, concurrency)
                total[name] += cpu
                print(f"{label:<22}{name:<15}{cpu:>12.0f}{wall:>13.0f}")
        # One 3-node scatter per "request" (for reference; not part of the ratio).
        for name, runner in (
            ("httpx", scatter_httpx),
            ("task per node", scatter_tasks),
            ("request_many", scatter_transport),
        ):
            cpu, wall = measure(runner, url, args.requests // 3, 1)
            print(f"{'3-node scatter':<22}{name:<15}{cpu:>12.0f}{wall:>13.0f}")
        print(f"ratio={total['httpx'] / total['HttpTransport']:.2f}")
    finally:
        server.kill()
        server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
