"""Serving a devnode with hypercorn's trio worker: in-process for tests and `miroir dev`.

Owns the glue between DevnodeApp and hypercorn (bind, free loopback port, shutdown). It never
changes what the app answers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from miroir.devnode.app import DEFAULT_PAYLOAD_LIMIT, DevnodeApp
from miroir.devnode.engine import Engine


@dataclass
class RunningDevnode:
    url: str  # e.g. http://127.0.0.1:40123
    app: DevnodeApp

    @property
    def engine(self) -> Engine:
        return self.app.engine


def hypercorn_config(host: str, port: int) -> Config:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None  # the devnode answers every error itself; keep test output quiet
    config.keep_alive_timeout = 75
    return config


@asynccontextmanager
async def serve_devnode(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    master_key: str | None = None,
    payload_limit: int = DEFAULT_PAYLOAD_LIMIT,
    engine: Engine | None = None,
) -> AsyncIterator[RunningDevnode]:
    """Serve a devnode until the block exits; port 0 picks a free port (see `.url`)."""
    app = DevnodeApp(
        engine, master_key=master_key, payload_limit=payload_limit, searches_off_loop=True
    )
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        app.start_task_worker(nursery)
        binds = await nursery.start(
            lambda task_status: serve(
                app,
                hypercorn_config(host, port),
                shutdown_trigger=shutdown.wait,
                task_status=task_status,
            )
        )
        try:
            yield RunningDevnode(url=binds[0], app=app)
        finally:
            shutdown.set()
            nursery.cancel_scope.cancel()


async def run_devnode_forever(
    host: str, port: int, master_key: str | None, payload_limit: int
) -> None:
    async with serve_devnode(
        host=host, port=port, master_key=master_key, payload_limit=payload_limit
    ) as node:
        print(f"miroir devnode listening on {node.url}", flush=True)
        await trio.sleep_forever()
