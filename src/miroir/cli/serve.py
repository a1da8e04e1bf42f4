"""`miroir serve --config miroir.yaml`: run the proxy under hypercorn's trio worker.

Owns turning a MiroirConfig into a running server: the hypercorn settings (bind, workers, the
graceful-shutdown budget), the Prometheus endpoint on its own port, and signal handling. It must
never build the app's internals (that is `miroir.proxy.create_app`) and never print a key.

Two ways to run, the same app:
- one worker (the default): the app is built here and served in this process by
  `hypercorn.trio.serve`; SIGINT/SIGTERM stop accepting connections and give in-flight requests
  until the graceful deadline (node timeout + 1 s, so a write either finishes or reaches its own
  node deadline) before the app's shutdown hooks run. A second signal stops at once.
- N > 1 workers: `hypercorn.run` spawns N processes, each calling `miroir.proxy:create_app()`,
  which reads the config from $MIROIR_CONFIG (set here to the file given). Metrics are then
  aggregated over the workers with prometheus_client's multiprocess mode.
Equivalent by hand: `MIROIR_CONFIG=miroir.yaml hypercorn --worker-class trio
'miroir.proxy:create_app()'` (that serves no separate metrics port; /_miroir/metrics still works).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
from collections.abc import Callable
from typing import Any

import attrs
import trio

from miroir.config import ConfigError, MiroirConfig, load_config

APP_FACTORY_PATH = "miroir.proxy:create_app()"
# Grace on top of a write's deadline: a write in flight at shutdown gets its full deadline.
SHUTDOWN_MARGIN_SECONDS = 1.0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the Miroir proxy (hypercorn, trio worker)",
        description="Run the Miroir proxy in front of the nodes listed in the config file.",
    )
    parser.add_argument("--config", help="YAML config file (default: $MIROIR_CONFIG)")
    parser.add_argument("--bind", help="address to listen on (default: server.bind)")
    parser.add_argument("--port", type=int, help="port to listen on (default: server.port)")
    parser.add_argument("--workers", type=int, help="worker processes (default: server.workers)")
    parser.add_argument(
        "--metrics-port", type=int, help="Prometheus port (default: metrics.port, 9090)"
    )
    parser.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    path = args.config or os.environ.get("MIROIR_CONFIG")
    try:
        config = load_config(path)
        config = with_overrides(
            config, bind=args.bind, port=args.port, workers=args.workers,
            metrics_port=args.metrics_port,
        )
    except ConfigError as error:
        print(f"miroir serve: invalid configuration: {error}", file=sys.stderr)
        return 2
    if not config.nodes:
        print("miroir serve: the configuration lists no nodes", file=sys.stderr)
        return 2
    if path:
        # Worker processes (and anything else calling create_app() bare) read the same file.
        os.environ["MIROIR_CONFIG"] = os.path.abspath(path)
    if config.server.workers == 1:
        try:
            return serve_in_process(config)
        except OSError as error:  # typically: the port is in use
            print(f"miroir serve: cannot serve: {error}", file=sys.stderr)
            return 1
    if not path:
        print("miroir serve: --workers > 1 needs a config file", file=sys.stderr)
        return 2
    return serve_workers(config)


def with_overrides(
    config: MiroirConfig,
    *,
    bind: str | None = None,
    port: int | None = None,
    workers: int | None = None,
    metrics_port: int | None = None,
) -> MiroirConfig:
    """The config with command-line overrides applied (None leaves a field as it is)."""
    server = config.server
    if bind is not None:
        server = attrs.evolve(server, bind=bind)
    if port is not None:
        if not 0 <= port <= 65535:
            raise ConfigError("--port", "must be a TCP port (0-65535)")
        server = attrs.evolve(server, port=port)
    if workers is not None:
        if workers < 1:
            raise ConfigError("--workers", "must be at least 1")
        server = attrs.evolve(server, workers=workers)
    metrics = config.metrics
    if metrics_port is not None:
        if not 0 <= metrics_port <= 65535:
            raise ConfigError("--metrics-port", "must be a TCP port (0-65535)")
        metrics = attrs.evolve(metrics, port=metrics_port)
    return attrs.evolve(config, server=server, metrics=metrics)


def hypercorn_config(config: MiroirConfig) -> Any:
    from hypercorn.config import Config

    hconfig = Config()
    hconfig.bind = [_host_port(config.server.bind, config.server.port)]
    hconfig.worker_class = "trio"
    hconfig.workers = config.server.workers
    hconfig.application_path = APP_FACTORY_PATH
    hconfig.graceful_timeout = longest_write_s(config) + SHUTDOWN_MARGIN_SECONDS
    hconfig.accesslog = None  # the app writes one JSON line per request itself
    return hconfig


def longest_write_s(config: MiroirConfig) -> float:
    """How long a write in flight may still run: one node timeout, or with node-write retries
    the write's whole deadline (`scatter.write_deadline_ms`, 0: twice the node timeout)."""
    scatter = config.scatter
    if scatter.write_retries == 0:
        return scatter.node_timeout_ms / 1000
    return (scatter.write_deadline_ms or 2 * scatter.node_timeout_ms) / 1000


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# ---- one worker, in this process -----------------------------------------------------------


def serve_in_process(
    config: MiroirConfig, *, on_ready: Callable[[list[str], str | None], None] | None = None
) -> int:
    """Serve until SIGINT/SIGTERM. `on_ready(binds, metrics_url)` runs once the port accepts."""
    from miroir.proxy import create_app

    app = create_app(config)
    metrics = _start_metrics(config, registry=_app_registry(app))
    try:
        trio.run(_serve_until_signalled, app, hypercorn_config(config), metrics, on_ready)
    except BaseExceptionGroup as group:
        # trio wraps everything in groups; a start-up failure (port in use, store unreachable)
        # is one plain error for the caller to report.
        error = single_error(group)
        if isinstance(error, OSError) and error.strerror:
            address = _host_port(config.server.bind, config.server.port)
            raise OSError(error.errno, f"{address}: {error.strerror}") from None
        raise error from None
    finally:
        if metrics is not None:
            metrics.stop()
    return 0


def single_error(group: BaseExceptionGroup) -> BaseException:
    """The one leaf error of a (nested) exception group, or the group if there are several."""
    leaves: list[BaseException] = []

    def collect(error: BaseException) -> None:
        if isinstance(error, BaseExceptionGroup):
            for inner in error.exceptions:
                collect(inner)
        else:
            leaves.append(error)

    collect(group)
    return leaves[0] if len(leaves) == 1 else group


async def _serve_until_signalled(app, hconfig, metrics, on_ready) -> None:
    import hypercorn.trio

    stop = trio.Event()
    # Open the receiver before serving, so an early Ctrl-C is a clean stop, not a traceback.
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:

            async def watch_signals() -> None:
                async for _ in signals:
                    if stop.is_set():
                        nursery.cancel_scope.cancel()  # second signal: do not wait any longer
                        return
                    stop.set()

            async def serve(task_status: trio.TaskStatus[list[str]]) -> None:
                # Returns after the graceful drain and the app's shutdown hooks.
                await hypercorn.trio.serve(
                    app, hconfig, shutdown_trigger=stop.wait, task_status=task_status
                )
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch_signals)
            binds = await nursery.start(serve)
            if on_ready is not None:
                on_ready(binds, metrics.url if metrics is not None else None)


def _app_registry(app: Any) -> Any:
    """The Prometheus registry the app records into: its own (`extensions["miroir"].metrics`,
    one registry per app), else prometheus_client's default one."""
    import prometheus_client

    state = (getattr(app, "extensions", None) or {}).get("miroir")
    registry = getattr(getattr(state, "metrics", None), "registry", None)
    return registry if registry is not None else prometheus_client.REGISTRY


# ---- N workers ---------------------------------------------------------------------------------


def serve_workers(config: MiroirConfig) -> int:
    """hypercorn's own multi-process runner; metrics aggregated across the worker processes."""
    from hypercorn.run import run as hypercorn_run

    with tempfile.TemporaryDirectory(prefix="miroir-metrics-") as metrics_dir:
        # Must be in the environment before any worker imports prometheus_client.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        registry = None
        if config.metrics.enabled:
            from prometheus_client import CollectorRegistry
            from prometheus_client.multiprocess import MultiProcessCollector

            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=metrics_dir)
        metrics = _start_metrics(config, registry=registry)
        try:
            return hypercorn_run(hypercorn_config(config))
        finally:
            if metrics is not None:
                metrics.stop()


# ---- the metrics port --------------------------------------------------------------------------


@attrs.define
class MetricsServer:
    server: Any
    thread: Any
    url: str

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _start_metrics(config: MiroirConfig, *, registry: Any) -> MetricsServer | None:
    """prometheus_client's HTTP server, in a thread, on metrics.port (0 = any free port)."""
    if not config.metrics.enabled or registry is None:
        return None
    import prometheus_client

    try:
        server, thread = prometheus_client.start_http_server(
            config.metrics.port, addr=config.server.bind, registry=registry
        )
    except OSError as error:
        raise OSError(error.errno, f"metrics port {config.metrics.port}: {error.strerror}") from None
    host, port = server.server_address[:2]
    return MetricsServer(server, thread, f"http://{_host_port(host, port)}/metrics")
