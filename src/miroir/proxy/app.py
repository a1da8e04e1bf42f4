"""The app factory: `create_app(config, *, transport=None, store=None, ...) -> QuartTrio`.

Owns wiring only: auth before every request, error rendering for every failure
(`render_failure`), metrics and one access-log line per request, the route blueprints (and the
search lane that answers POST /indexes/{uid}/search in front of Quart,
`routes_search.search_lane`), and the lifecycle (`before_serving` opens what was not injected --
HttpTransport, the configured store -- builds the `Cluster`, and starts the task poller, the
task pruner, the repair worker and the health checker in the app's nursery; `after_serving` closes what it opened). Also works as `hypercorn --worker-class trio 'miroir.proxy:create_app()'`.

Must never: hold routing or quorum logic (that is `miroir.cluster`), or render an error body
other than through `proxy.errors` (one table: `miroir.core.errors`).
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import attrs
import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from miroir.cluster.runtime import Cluster, ClusterSettings, NodeRejected
from miroir.cluster.tasks import poll_tasks_forever
from miroir.config import MiroirConfig, load_config
from miroir.core.errors import MeiliError
from miroir.proxy import (
    routes_admin,
    routes_documents,
    routes_indexes,
    routes_search,
    routes_settings,
    routes_tasks,
)
from miroir.proxy.access_log import ensure_output, log_request
from miroir.proxy.auth import Authenticator
from miroir.proxy.errors import code_response, error_response, node_answer
from miroir.proxy.keep_alive import keep_alive_guard
from miroir.proxy.metrics import Metrics
from miroir.proxy.state import ProxyState
from miroir.store.base import Store, StoreError
from miroir.store.maintenance import prune_periodically
from miroir.transport.base import Transport

logger = logging.getLogger("miroir.proxy")
TASK_POLL_INTERVAL_S = 0.5
# While serving, the cyclic garbage collector runs only after this many more container objects
# were allocated than freed (Python's default is 700). A search holds a few thousand parsed
# objects per request in flight; with 700 the collector ran every few requests and rescanned
# them, ~12% of a search's CPU (docs/benchmarks.md). Miroir's own request path leaves no cyclic
# garbage, so the collector has little to find; the cost is at most this many objects of cyclic
# garbage (a few MB) held a while longer. Restored when serving stops.
GC_YOUNG_THRESHOLD_WHILE_SERVING = 100_000
# How often finished tasks older than the store's TTL are pruned.
TASK_PRUNE_INTERVAL_S = 60.0


def create_app(
    config: MiroirConfig | None = None,
    *,
    transport: Transport | None = None,
    store: Store | None = None,
    run_health_checker: bool = True,
    run_task_poller: bool = True,
    task_poll_interval_s: float = TASK_POLL_INTERVAL_S,
    prune_interval_s: float | None = TASK_PRUNE_INTERVAL_S,
) -> QuartTrio:
    config = config if config is not None else load_config()
    app = QuartTrio("miroir", static_folder=None)
    # Quart's own limit would answer 413 with an HTML page; bodies.read_body enforces ours.
    app.config["MAX_CONTENT_LENGTH"] = None
    app.config["MIROIR_MAX_BODY_BYTES"] = config.server.max_body_bytes
    state = ProxyState(config=config, metrics=Metrics())
    app.extensions["miroir"] = state
    authenticator = Authenticator(
        config.master_key, config.admin.api_key, admin_enabled=config.admin.enabled
    )
    opened: dict[str, Any] = {}

    @app.before_serving
    async def open_cluster() -> None:
        nonlocal transport, store
        ensure_output()
        if transport is None:
            from miroir.transport.http import HttpTransport

            transport = opened["transport"] = HttpTransport(
                {node.id: node.address for node in config.nodes},
                api_key=config.node_master_key,
            )
        if store is None:
            from miroir.store.factory import open_store

            store = opened["store"] = await open_store(attrs.asdict(config.task_store))
        cluster = Cluster(
            config.topology(),
            transport,
            store,
            ClusterSettings(
                node_timeout_ms=config.scatter.node_timeout_ms,
                node_master_key=config.node_master_key,
                unhealthy_threshold=config.health.unhealthy_threshold,
                recovery_threshold=config.health.recovery_threshold,
                retry_on_timeout=config.scatter.retry_on_timeout,
            ),
        )
        cluster.state_observers.append(state.metrics.observe_node_state)
        cluster.state_observers.append(lambda *_: _update_coverage(state))
        cluster.call_observers.append(state.metrics.observe_node_call)
        for node_id in cluster.node_ids():
            state.metrics.observe_node_state(node_id, cluster.state_of(node_id))
        state.cluster = cluster
        _update_coverage(state)
        opened["gc_threshold"] = gc.get_threshold()
        gc.set_threshold(GC_YOUNG_THRESHOLD_WHILE_SERVING, *opened["gc_threshold"][1:])
        if run_task_poller:
            app.nursery.start_soon(poll_tasks_forever, cluster, task_poll_interval_s)
        if prune_interval_s is not None:
            # Tasks older than task_store.ttl_seconds go; every proxy may prune (idempotent).
            # Look the clock up on each pass: the simulator swaps `cluster.now_ms` after startup.
            app.nursery.start_soon(
                prune_periodically, store, lambda: cluster.now_ms(), prune_interval_s
            )
        if run_health_checker:
            from miroir.cluster.health import HealthChecker
            from miroir.cluster.repair import RepairWorker

            # Beside the checker that notices a node's return: re-provision and catch it up.
            app.nursery.start_soon(RepairWorker(cluster).run)
            app.nursery.start_soon(HealthChecker(cluster, config.health).run)

    @app.after_serving
    async def close_cluster() -> None:
        app.nursery.cancel_scope.cancel()
        if "gc_threshold" in opened:
            gc.set_threshold(*opened.pop("gc_threshold"))
        if "transport" in opened:
            await opened.pop("transport").aclose()
        if "store" in opened:
            await opened.pop("store").close()

    @app.before_request
    async def authenticate() -> None:
        current = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
        current.environ_started = time.perf_counter()
        authenticator.check(current.path, current.headers)

    @app.after_request
    async def account(response: Response) -> Response:
        # The request proxy resolves the context on every attribute; resolve it once.
        current = request._get_current_object()  # type: ignore[attr-defined]
        started = getattr(current, "environ_started", None)
        elapsed = time.perf_counter() - started if started is not None else 0.0
        rule = current.url_rule
        route = rule.rule if rule is not None else "unmatched"
        method, status = current.method, response.status_code
        state.metrics.observe_request(method, route, status, elapsed)
        log_request(method, current.path, status, elapsed, current.remote_addr)
        return response

    @app.errorhandler(MeiliError)
    async def meili_error(error: MeiliError) -> Response:
        return render_failure(error, request.method, request.path)

    @app.errorhandler(NodeRejected)
    async def node_rejected(error: NodeRejected) -> Response:
        return render_failure(error, request.method, request.path)

    @app.errorhandler(StoreError)
    async def store_failed(error: StoreError) -> Response:
        return render_failure(error, request.method, request.path)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        if error.code == 404:
            return code_response("not_found", "Not found.")
        if error.code == 405:
            return code_response("method_not_allowed", "Method not allowed.")
        if error.code == 413:
            return code_response("payload_too_large", "The provided payload reached the size limit.")
        return code_response("bad_request", error.description or "Bad request.")

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        return render_failure(error, request.method, request.path)

    for module in (
        routes_indexes, routes_documents, routes_settings, routes_tasks, routes_admin, routes_search
    ):
        app.register_blueprint(module.blueprint)
    # POST /indexes/{uid}/search is answered below Quart (same bytes, less CPU; see
    # docs/benchmarks.md "Search"); anything the lane would not answer exactly goes to Quart.
    lane = routes_search.search_lane(
        app.asgi_app, state, authenticator, config.server.max_body_bytes,
        render_failure, app.config["BODY_TIMEOUT"],
    )
    # Outermost: no early answer may leave a keep-alive connection stuck (proxy/keep_alive.py).
    app.asgi_app = keep_alive_guard(counting_in_flight(lane, state))  # type: ignore[method-assign]
    return app


def counting_in_flight(inner: Any, state: ProxyState) -> Any:
    """`inner` with every HTTP request counted in `miroir_requests_in_flight` until it ends,
    however it ends. Quart's hooks cannot do it: a client that disconnects gets its handler
    cancelled, and `after_request` never runs for it."""

    async def counted(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await inner(scope, receive, send)
        metrics = state.metrics
        metrics.in_flight += 1
        try:
            await inner(scope, receive, send)
        finally:
            metrics.in_flight -= 1

    return counted


def render_failure(error: BaseException, method: str, path: str) -> Response:
    """The answer to a failed request, one rule for the error handlers and the search lane."""
    if isinstance(error, MeiliError):
        return error_response(error)
    if isinstance(error, NodeRejected):
        return node_answer(error.response)
    if isinstance(error, StoreError):
        logger.error("task store failed answering %s %s: %s", method, path, error)
        return code_response(
            "miroir_store_unavailable", "The task store could not be reached; try again."
        )
    logger.exception("unexpected error answering %s %s", method, path, exc_info=error)
    return code_response("internal", "An internal error occurred in Miroir.")


def _update_coverage(state: ProxyState) -> None:
    cluster = state.cluster
    if cluster is None:
        return
    shard_map = cluster.shard_map
    covered = sum(
        1
        for shard in range(shard_map.shards)
        if any(shard_map.readable_owners(g, shard) for g in range(shard_map.replica_groups))
    )
    state.metrics.shard_coverage.set(covered / shard_map.shards)


__all__ = ["create_app", "trio"]
