"""Graceful shutdown of `miroir serve` (one worker): the signal handling around hypercorn.

An in-process ASGI app stands in for the proxy so the test controls exactly when a request is
in flight; the code under test is `serve._serve_until_signalled`, the same function
`miroir serve` and `miroir dev` run. Signals are sent to this very process, which is safe because
the serve loop holds a trio signal receiver for SIGINT/SIGTERM the whole time.
"""

from __future__ import annotations

import os
import signal

import httpx
import pytest
import trio
from hypercorn.config import Config

from miroir.cli.dev import free_port
from miroir.cli.serve import _serve_until_signalled


def slow_app(arrived: trio.Event, seconds: float):
    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                kind = message["type"].rsplit(".", 1)[1]
                await send({"type": f"lifespan.{kind}.complete"})
                if kind == "shutdown":
                    return
        arrived.set()
        await trio.sleep(seconds)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished"})

    return app


def config(graceful_timeout: float) -> Config:
    hconfig = Config()
    hconfig.bind = [f"127.0.0.1:{free_port()}"]
    hconfig.graceful_timeout = graceful_timeout
    hconfig.accesslog = None
    hconfig.errorlog = None
    return hconfig


async def run_until_signalled(app, hconfig, signals: list[int]):
    ready = trio.Event()
    binds: list[str] = []
    answers: list[object] = []

    def on_ready(addresses, metrics_url):
        binds.extend(addresses)
        ready.set()

    async def client():
        async with httpx.AsyncClient(timeout=30) as http:
            try:
                answers.append(await http.get(binds[0] + "/write"))
            except httpx.HTTPError as error:
                answers.append(error)

    arrived = app.arrived
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_serve_until_signalled, app, hconfig, None, on_ready)
        await ready.wait()
        nursery.start_soon(client)
        await arrived.wait()
        for signum in signals:
            os.kill(os.getpid(), signum)
            await trio.sleep(0.05)
    return binds, answers


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_request_in_flight_at_the_signal_still_gets_its_answer(signum):
    arrived = trio.Event()
    app = slow_app(arrived, seconds=0.5)
    app.arrived = arrived
    binds, answers = await run_until_signalled(app, config(graceful_timeout=10), [signum])
    assert [(a.status_code, a.text) for a in answers] == [(200, "finished")]
    # And the server is gone afterwards.
    async with httpx.AsyncClient(timeout=5) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(binds[0] + "/health")


async def test_a_second_signal_stops_without_waiting_for_the_drain():
    arrived = trio.Event()
    app = slow_app(arrived, seconds=3600)
    app.arrived = arrived
    _, answers = await run_until_signalled(
        app, config(graceful_timeout=3600), [signal.SIGTERM, signal.SIGTERM]
    )
    assert len(answers) == 1 and isinstance(answers[0], httpx.HTTPError)
