"""The app factory: `create_app(config, *, transport=None, store=None, clock, services) ->
QuartTrio`.

Owns wiring only, one function per concern: the lifecycle (`proxy.lifecycle.Lifecycle`: open
what was not injected, build the `Cluster` on `clock`, start the background services `services`
describes), the request hooks (auth before every request; metrics and one access-log line
after), error rendering for every failure (`render_failure`), the route blueprints, and the ASGI
layers in front of Quart (the search lane that answers POST /indexes/{uid}/search,
`routes_search.search_lane`; the in-flight count; the keep-alive guard). Also works as
`hypercorn --worker-class trio 'miroir.proxy:create_app()'`.

Must never: hold routing or quorum logic (that is `miroir.cluster`), start a background task
itself (that is `miroir.cluster.services.run_services`, through the lifecycle), or render an
error body other than through `proxy.errors` (one table: `miroir.core.errors`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from miroir.cluster.clock import WALL_CLOCK, Clock
from miroir.cluster.runtime import NodeRejected
from miroir.cluster.services import Services
from miroir.config import MiroirConfig, load_config
from miroir.core.errors import MeiliError
from miroir.proxy import (
    index_names,
    routes_admin,
    routes_documents,
    routes_indexes,
    routes_inspect,
    routes_keys,
    routes_layouts,
    routes_membership,
    routes_reshard,
    routes_search,
    routes_settings,
    routes_tasks,
    routes_webhooks,
)
from miroir.proxy.access_log import log_request
from miroir.proxy.auth import Authenticator
from miroir.proxy.errors import code_response, error_response, node_answer
from miroir.proxy.keep_alive import keep_alive_guard
from miroir.proxy.lifecycle import Lifecycle, services_for
from miroir.proxy.metrics import Metrics
from miroir.proxy.refused_routes import refusal_for
from miroir.proxy.state import ProxyState
from miroir.store.base import Store, StoreError
from miroir.transport.base import Transport

logger = logging.getLogger("miroir.proxy")
ROUTE_MODULES = (
    routes_indexes, routes_documents, routes_settings, routes_tasks, routes_admin, routes_search,
    routes_keys, routes_layouts, routes_membership,
    routes_webhooks, routes_inspect, routes_reshard,
)


def create_app(
    config: MiroirConfig | None = None,
    *,
    transport: Transport | None = None,
    store: Store | None = None,
    clock: Clock = WALL_CLOCK,
    services: Services | None = None,
) -> QuartTrio:
    """The proxy app for `config` (default: `load_config()`, i.e. $MIROIR_CONFIG).

    `transport` and `store` are opened from the config when not given (and then closed when
    serving stops); `clock` is the wall clock every part of the cluster reads; `services` says
    which background services run with which settings (default: all of them,
    `lifecycle.services_for(config)`; `Services()` runs none)."""
    config = config if config is not None else load_config()
    app = QuartTrio("miroir", static_folder=None)
    # Quart's own limit would answer 413 with an HTML page; bodies.read_body enforces ours.
    app.config["MAX_CONTENT_LENGTH"] = None
    app.config["MIROIR_MAX_BODY_BYTES"] = config.server.max_body_bytes
    state = ProxyState(config=config, metrics=Metrics())
    app.extensions["miroir"] = state
    authenticator = Authenticator(
        config.master_key, config.admin.api_key, admin_enabled=config.admin.enabled,
        keyring=lambda: state.keyring, now_ms=lambda: _now_ms(state, clock),
    )
    lifecycle = Lifecycle(state, transport, store, clock,
                          services if services is not None else services_for(config))
    _install_lifecycle(app, lifecycle)
    _install_request_hooks(app, state, authenticator)
    _install_error_handlers(app)
    for module in ROUTE_MODULES:
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


def _now_ms(state: ProxyState, clock: Clock) -> int:
    """The cluster's wall clock in ms (key and tenant-token expiry), `clock` before serving."""
    return state.cluster.now_ms() if state.cluster is not None else clock.now_ms()


def _install_lifecycle(app: QuartTrio, lifecycle: Lifecycle) -> None:
    @app.before_serving
    async def start() -> None:
        await lifecycle.start(app.nursery)

    @app.after_serving
    async def stop() -> None:
        app.nursery.cancel_scope.cancel()  # the background services run in it
        await lifecycle.stop()


def _install_request_hooks(app: QuartTrio, state: ProxyState, authenticator: Authenticator) -> None:
    @app.before_request
    async def authenticate() -> None:
        current = request._get_current_object()  # type: ignore[attr-defined]  # one proxy lookup
        current.environ_started = time.perf_counter()
        index_names.forget()  # a keep-alive connection's previous request resolved its own
        current.miroir_access = await authenticator.check(
            current.method, current.path, current.headers)

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


def _install_error_handlers(app: QuartTrio) -> None:
    async def failed(error: Exception) -> Response:
        return render_failure(error, request.method, request.path)

    # Miroir's own failures, a node's refusal, the store, and anything unexpected.
    for kind in (MeiliError, NodeRejected, StoreError, Exception):
        app.register_error_handler(kind, failed)

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        if error.code in (404, 405):
            # A route Meilisearch documents but Miroir refuses says so (proxy/refused_routes).
            refusal = refusal_for(request.method, request.path)
            if refusal is not None:
                return error_response(refusal)
        if error.code == 404:
            return code_response("not_found", "Not found.")
        if error.code == 405:
            return code_response("method_not_allowed", "Method not allowed.")
        if error.code == 413:
            return code_response("payload_too_large", "The provided payload reached the size limit.")
        return code_response("bad_request", error.description or "Bad request.")


def counting_in_flight(inner: Any, state: ProxyState) -> Any:
    """`inner` with every HTTP request counted in `miroir_requests_in_flight` until it ends,
    however it ends. Quart's hooks cannot do it: a client that disconnects gets its handler
    cancelled, and `after_request` never runs for it. One process moves a plain integer the
    gauge reads at scrape time; several move the gauge, whose value the workers share."""
    metrics = state.metrics
    if metrics.multiprocess:
        gauge = metrics.requests_in_flight

        async def counted_in_gauge(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await inner(scope, receive, send)
            gauge.inc()
            try:
                await inner(scope, receive, send)
            finally:
                gauge.dec()

        return counted_in_gauge

    async def counted(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await inner(scope, receive, send)
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


__all__ = ["create_app"]
