"""Requests, the route table and the body helpers every devnode handler shares.

Owns how a request (method, path, query, content type, body bytes) finds its handler and how
JSON bodies and query strings are read with Meilisearch's errors. It knows nothing of ASGI or
sockets, so the simulator can drive a node through `Router.dispatch` with no HTTP at all; it
never checks auth (the app does) and never runs tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from miroir.core.errors import MeiliError
from miroir.devnode.engine import Engine
from miroir.meili.params import query_params
from miroir.meili.payloads import JSON, check_content_type, parse_json

PKG_VERSION = "1.53.0"  # the Meilisearch whose routes and shapes reference/ describes


@dataclass
class Request:
    method: str
    path: str
    query_string: str = ""
    content_type: str | None = None
    body: bytes = b""
    _query: list[tuple[str, str]] | None = field(default=None, repr=False)

    @property
    def query(self) -> list[tuple[str, str]]:
        if self._query is None:
            self._query = parse_qsl(self.query_string, keep_blank_values=True)
        return self._query

    def json(self) -> Any:
        """The JSON body of a JSON-only route, with Meilisearch's 415/400 answers."""
        check_content_type(self.content_type, (JSON,))
        return parse_json(self.body)

    def params(self, allowed: Iterable[str]) -> dict[str, str]:
        """Query parameters, rejecting unknown ones (`bad_request`); the last value wins."""
        return query_params(self.query, allowed)


@dataclass
class Response:
    status: int
    body: Any
    headers: tuple[tuple[bytes, bytes], ...] = ()
    enqueued: bool = False  # a task was enqueued: the app wakes its task worker


def accepted(task: Any, status: int = 202) -> Response:
    return Response(status, task.summary(), enqueued=True)


def ok(body: Any) -> Response:
    return Response(200, body)


def error_response(error: MeiliError) -> Response:
    headers = ((b"retry-after", b"10"),) if error.status == 503 else ()
    return Response(error.status, error.body(), headers)


Handler = Callable[..., Response]


class Router:
    """A node's routes over one engine: `dispatch(request) -> Response`, never raising."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.experimental_features: dict[str, bool] = {}
        # (method, number of segments) -> [(pattern segments, handler)]; `{}` is a parameter.
        self._table: dict[tuple[str, int], list[tuple[tuple[str, ...], Handler]]] = {}
        self._paths: dict[int, list[tuple[str, ...]]] = {}
        from miroir.devnode import document_routes, routes

        for method, pattern, handler in (*routes.ROUTES, *document_routes.ROUTES):
            self.add(method, pattern, handler)

    def add(self, method: str, pattern: str, handler: Handler) -> None:
        segments = tuple(pattern.strip("/").split("/")) if pattern != "/" else ()
        self._table.setdefault((method, len(segments)), []).append((segments, handler))
        self._paths.setdefault(len(segments), []).append(segments)

    def dispatch(self, request: Request) -> Response:
        try:
            return self._dispatch(request)
        except MeiliError as error:
            return error_response(error)
        except Exception as error:  # noqa: BLE001 - a bug answers 500 `internal`, as Meilisearch
            return error_response(MeiliError("internal", f"{type(error).__name__}: {error}"))

    def _dispatch(self, request: Request) -> Response:
        path = request.path.strip("/")
        segments = [unquote(s) for s in path.split("/")] if path else []
        for pattern, handler in self._table.get((request.method, len(segments)), ()):
            params = _match(pattern, segments)
            if params is not None:
                return handler(self, request, *params)
        if any(_match(p, segments) is not None for p in self._paths.get(len(segments), ())):
            raise MeiliError("method_not_allowed", "Method not allowed.")
        raise MeiliError("not_found", "Not found.")


def _match(pattern: tuple[str, ...], segments: list[str]) -> list[str] | None:
    params = []
    for literal, segment in zip(pattern, segments, strict=True):
        if literal == "{}":
            params.append(segment)
        elif literal != segment:
            return None
    return params
