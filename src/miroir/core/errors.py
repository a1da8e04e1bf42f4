"""The one table of error codes Miroir and the devnode answer with.

Every error body is Meilisearch's envelope `{message, code, type, link}`. A code's type and HTTP
status live here and nowhere else; Meilisearch's own codes keep Meilisearch's values, and
Miroir's additions are prefixed `miroir_`. Codes not listed are `invalid_request` + 400, which
is Meilisearch's rule for every `invalid_*`/`missing_*` code.
"""

from __future__ import annotations

from typing import Any

ERROR_LINK_BASE = "https://docs.meilisearch.com/errors#"

# code -> (type, HTTP status), for every code that is not `invalid_request` + 400.
_NON_DEFAULT: dict[str, tuple[str, int]] = {
    "missing_authorization_header": ("auth", 401),
    "missing_master_key": ("auth", 401),
    "invalid_api_key": ("auth", 403),
    "index_not_found": ("invalid_request", 404),
    "document_not_found": ("invalid_request", 404),
    "task_not_found": ("invalid_request", 404),
    "batch_not_found": ("invalid_request", 404),
    "api_key_not_found": ("invalid_request", 404),
    "webhook_not_found": ("invalid_request", 404),
    "index_already_exists": ("invalid_request", 409),
    "api_key_already_exists": ("invalid_request", 409),
    "payload_too_large": ("invalid_request", 413),
    "missing_content_type": ("invalid_request", 415),
    "invalid_content_type": ("invalid_request", 415),
    "unsupported_media_type": ("invalid_request", 415),
    "internal": ("internal", 500),
    "index_creation_failed": ("internal", 500),
    "too_many_search_requests": ("system", 503),
    "unretrievable_document": ("internal", 400),
    "not_found": ("invalid_request", 404),
    "method_not_allowed": ("invalid_request", 405),
    # Miroir's own codes.
    "miroir_invalid_auth": ("auth", 401),
    "miroir_no_quorum": ("system", 503),
    "miroir_shard_unavailable": ("system", 503),
    "miroir_node_unavailable": ("system", 503),
    "miroir_not_ready": ("system", 503),
    "miroir_reserved_field": ("invalid_request", 400),
    "miroir_node_error": ("system", 502),
    # a node no longer knows a task it acknowledged (it restarted with its state lost)
    "miroir_node_task_lost": ("system", 502),
    "miroir_store_unavailable": ("system", 503),  # the task store (SQLite/Redis) failed a call
    "miroir_overloaded": ("system", 503),  # a read would wait past what it can afford for a node
    # Idempotency-Key: the key came with another request / its first request is still running.
    "miroir_idempotency_key_reused": ("invalid_request", 409),
    "miroir_idempotency_key_in_progress": ("invalid_request", 409),
    "miroir_reconciler_disabled": ("invalid_request", 409),
    # membership changes (`POST /_miroir/nodes`, ...; miroir.core.membership)
    "miroir_invalid_node": ("invalid_request", 400),
    "miroir_invalid_group": ("invalid_request", 400),
    "miroir_node_not_found": ("invalid_request", 404),
    "miroir_node_already_exists": ("invalid_request", 409),
    "miroir_invalid_node_state": ("invalid_request", 409),
    "miroir_node_not_drained": ("invalid_request", 409),
    "miroir_rebalance_in_progress": ("invalid_request", 409),
    # the change is valid but cannot be carried out online here (engine off, or a forced removal)
    "miroir_rebalance_unavailable": ("system", 501),
    # resharding (miroir_invalid_reshard is the default invalid_request + 400)
    "miroir_reshard_in_progress": ("invalid_request", 409),
    "miroir_reshard_outside_window": ("invalid_request", 409),
    "miroir_reshard_not_found": ("invalid_request", 404),
    "miroir_reshard_rollback_too_late": ("invalid_request", 409),
    # index layouts (aliases); miroir_invalid_alias is the default invalid_request + 400
    "miroir_alias_not_found": ("invalid_request", 404),
    "miroir_node_index_not_found": ("invalid_request", 404),
}


def error_type_and_status(code: str) -> tuple[str, int]:
    """The Meilisearch type and HTTP status of an error code."""
    return _NON_DEFAULT.get(code, ("invalid_request", 400))


def error_body(code: str, message: str) -> dict[str, str]:
    """The Meilisearch-shaped error body for `code`."""
    error_type, _ = error_type_and_status(code)
    return {"message": message, "code": code, "type": error_type, "link": ERROR_LINK_BASE + code}


class MeiliError(Exception):
    """An error a client should see as a Meilisearch error body.

    Raised by pure code (validation, parsing) and rendered by whichever layer answers HTTP.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return error_type_and_status(self.code)[1]

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message)

    def __repr__(self) -> str:
        return f"MeiliError({self.code!r}, {self.message!r})"


class Overloaded(MeiliError):
    """`miroir_overloaded`: a read was refused before any node saw it, because it would have
    waited for `node_id` longer than it could afford (`miroir.core.admission`). Answered with
    `Retry-After: retry_after_s`."""

    def __init__(self, node_id: str, retry_after_s: int) -> None:
        super().__init__(
            "miroir_overloaded",
            "Miroir is at its concurrency limit for a node this request needs; "
            f"retry in {retry_after_s} s.",
        )
        self.node_id = node_id
        self.retry_after_s = retry_after_s
