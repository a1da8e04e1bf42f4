"""Who may call what: the Meilisearch master key on the Meilisearch API, the admin key on
`/_miroir/*`, nothing on /health.

Rules, as Meilisearch applies them to its own API (`miroir.meili.auth`, the one bearer check the
devnode and the simulator apply too): with no master key configured everything is open; without
an `Authorization: Bearer` header the answer is 401 `missing_authorization_header`; with a wrong
key, 403 `invalid_api_key`. Admin routes take `Authorization: Bearer <key>` or
`X-Admin-Key: <key>` and answer 401 `miroir_invalid_auth`; with no admin key configured they fall
back to the master key, and are open only when neither is set.

Keys are compared with `hmac.compare_digest` and never logged or echoed. Must never decide
anything else about a request.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from miroir.core.errors import MeiliError
from miroir.meili.auth import PUBLIC_PATHS, check_bearer

ADMIN_PREFIX = "/_miroir/"


def _same(given: str, expected: bytes) -> bool:
    return hmac.compare_digest(given.encode(), expected)


class Authenticator:
    def __init__(
        self, master_key: str | None, admin_key: str | None, *, admin_enabled: bool = True
    ) -> None:
        self._admin_enabled = admin_enabled
        self._master = master_key.encode() if master_key else None
        admin = admin_key or master_key
        self._admin = admin.encode() if admin else None

    def check(self, path: str, headers: Mapping[str, str]) -> None:
        """Raise the MeiliError the request deserves, or return if it may go on."""
        if path.startswith(ADMIN_PREFIX) or path == ADMIN_PREFIX.rstrip("/"):
            if not self._admin_enabled:
                raise MeiliError("not_found", "The admin API is disabled (`admin.enabled: false`).")
            self._check_admin(headers)
        elif path not in PUBLIC_PATHS:
            self._check_master(headers.get("authorization"))

    def _check_master(self, authorization: str | None) -> None:
        if self._master is not None:
            check_bearer(authorization, self._master)

    def _check_admin(self, headers: Mapping[str, str]) -> None:
        if self._admin is None:
            return
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        candidates = [token.strip()] if scheme == "Bearer" else []
        if headers.get("x-admin-key") is not None:
            candidates.append(headers["x-admin-key"].strip())
        # Compare every candidate, so timing does not say which header was tried.
        matched = [_same(candidate, self._admin) for candidate in candidates]
        if not any(matched):
            raise MeiliError(
                "miroir_invalid_auth",
                "The admin API needs the admin key in `Authorization: Bearer <key>` or "
                "`X-Admin-Key`.",
            )
