"""Meilisearch's master-key rule for its own API: which paths are public, and the bearer check.

With no master key everything is open. Otherwise every path but the public ones needs
`Authorization: Bearer <master key>`: no header, or another scheme, is 401
`missing_authorization_header`; another key is 403 `invalid_api_key`. The key is compared in
constant time (`hmac.compare_digest`) and never appears in an error, a log line or a repr.

The proxy (for clients), the devnode (as a node) and the simulated transport (for its nodes)
all apply this one function. Miroir's admin key on `/_miroir/*` is the proxy's own rule.
"""

from __future__ import annotations

import hmac

from miroir.core.errors import MeiliError

PUBLIC_PATHS = frozenset(("/health", "/"))


def missing_authorization() -> MeiliError:
    return MeiliError(
        "missing_authorization_header",
        "The Authorization header is missing. It must use the bearer authorization method.",
    )


def bearer_token(authorization: str | bytes | None) -> str:
    """The token of `Authorization: Bearer <token>` (surrounding spaces trimmed), or raise what
    Meilisearch answers: no header, or another scheme than `Bearer`, is 401
    `missing_authorization_header`; `Bearer` with no token is 403 `invalid_api_key`. The
    proxy's key model (master key, API keys, tenant tokens) starts from this."""
    if authorization is None:
        raise missing_authorization()
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    scheme, space, token = authorization.partition(" ")
    if scheme != "Bearer":
        raise missing_authorization()
    if not space:
        raise MeiliError("invalid_api_key", "The provided API key is invalid.")
    return token.strip()


def check_bearer(authorization: str | bytes | None, master_key: bytes) -> None:
    """Return if `authorization` (the header's value, or None) carries `master_key` as a bearer
    token; otherwise raise the MeiliError Meilisearch answers."""
    if authorization is None:
        raise missing_authorization()
    if isinstance(authorization, str):
        authorization = authorization.encode()
    scheme, _, token = authorization.partition(b" ")
    if scheme != b"Bearer":
        raise missing_authorization()
    if not hmac.compare_digest(token.strip(), master_key):
        raise MeiliError("invalid_api_key", "The provided API key is invalid.")
