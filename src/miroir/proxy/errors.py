"""Rendering errors as Meilisearch-shaped HTTP responses.

Owns only the rendering: the codes, their types and statuses live in `miroir.core.errors` (one
table). A node's own refusal (`NodeRejected`) is passed through byte for byte, since one
Meilisearch would have said exactly that. Must never leak a traceback or a key to a client.
"""

from __future__ import annotations

import orjson
from quart import Response

from miroir.core.errors import MeiliError, error_body, error_type_and_status
from miroir.proxy import index_names
from miroir.transport.base import NodeResponse

JSON = "application/json"


def json_response(payload: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(payload), status=status, content_type=JSON, headers=headers)


def error_response(error: MeiliError) -> Response:
    retry_after = getattr(error, "retry_after_s", None)  # miroir_overloaded: when to come back
    headers = None if retry_after is None else {"Retry-After": str(retry_after)}
    body = error.body()
    body["message"] = index_names.client_text(body["message"])
    return json_response(body, error.status, headers)


def code_response(code: str, message: str) -> Response:
    return json_response(error_body(code, message), error_type_and_status(code)[1])


def node_answer(response: NodeResponse) -> Response:
    """A node's answer, as the node gave it (status and JSON body), except that an index the
    request named under another node-side name is spoken of by its client uid."""
    body = response.body
    if index_names.resolving():
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        if isinstance(answer, dict):
            if isinstance(answer.get("message"), str):
                answer["message"] = index_names.client_text(answer["message"])
            if isinstance(answer.get("uid"), str):
                answer["uid"] = index_names.client_uid(answer["uid"])
            body = orjson.dumps(answer)
    return Response(body, status=response.status, content_type=JSON)
