"""Who may call what: Meilisearch's key model on the Meilisearch API (master key, API keys,
tenant tokens), the admin key on `/_miroir/*`, nothing on /health.

Rules, as Meilisearch applies them to its own API (`extractors/authentication/mod.rs`; the
header rules are `miroir.meili.auth.bearer_token`, beside the master-key-only `check_bearer` the
devnode and the simulated nodes apply):
- With no master key configured everything is open except `/keys`, which answers 401
  `missing_master_key`.
- No `Authorization` header: 401 `missing_authorization_header`; a header with another scheme
  than `Bearer`: the same; `Bearer` with nothing after it: 403 `invalid_api_key`.
- The master key may do anything. Otherwise the route's action (`miroir.core.keys.route_need`)
  decides: on a search route the bearer may be a tenant token (a JWT signed with an API key's
  value, see `_tenant_token`); anything else must be an API key's value. The key must exist,
  hold the action, cover the route's index, and not have expired; every refusal is 403
  `invalid_api_key` with Meilisearch's message.
- What is allowed comes back as an `Access` (the key, and a tenant token's search rules), which
  handlers use to show only the key's indexes and to AND a tenant's filter into every search.

Admin routes take `Authorization: Bearer <key>` or `X-Admin-Key: <key>` and answer 401
`miroir_invalid_auth`; with no admin key configured they fall back to the master key, and are
open only when neither is set.

Secrets are compared with `hmac.compare_digest` (API keys through `cluster.keys.KeyRing`) and
never logged, echoed, or put in a repr. Must never decide anything else about a request.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Mapping
from typing import Any
from uuid import UUID

import attrs
import jwt

from miroir.cluster.keys import KeyRing
from miroir.core.errors import MeiliError
from miroir.core.keys import (
    KEYS_ACTIONS,
    TENANT_TOKEN_ACTIONS,
    ApiKey,
    SearchRules,
    fuse_filters,
    parse_search_rules,
    route_need,
)
from miroir.meili.auth import PUBLIC_PATHS, bearer_token

ADMIN_PREFIX = "/_miroir/"
# A tenant token longer than this is refused before any decoding: no legitimate token (a few
# hundred bytes of claims) comes near it, and decoding costs grow with the size.
MAX_TOKEN_BYTES = 16 * 1024
TENANT_TOKEN_ALGORITHMS = ("HS256", "HS384", "HS512")
VERIFIED_TOKENS_CACHED = 10_000  # then the cache starts over (bounded memory)

INVALID_API_KEY = "The provided API key is invalid."
MISSING_MASTER_KEY = ("Meilisearch is running without a master key. To access this API endpoint, "
                      "you must have set a master key at launch.")


def invalid_api_key(message: str = INVALID_API_KEY) -> MeiliError:
    return MeiliError("invalid_api_key", message)


@attrs.frozen
class Access:
    """What an authenticated request may see: `key` None means everything (master key, or no
    master key configured); `rules` are a tenant token's search rules."""

    key: ApiKey | None = None
    rules: SearchRules | None = None

    @property
    def restricted(self) -> bool:
        return self.key is not None

    def index_allowed(self, index_uid: str) -> bool:
        return ((self.key is None or self.key.index_allowed(index_uid))
                and (self.rules is None or self.rules.index_allowed(index_uid)))

    def all_indexes(self) -> bool:
        return ((self.key is None or self.key.all_indexes)
                and (self.rules is None or self.rules.all_indexes()))

    def search_filter(self, index_uid: str) -> Any:
        """The tenant's filter for searches on `index_uid` (None: no restriction)."""
        return None if self.rules is None else self.rules.filter_for(index_uid)


FULL_ACCESS = Access()


def _rust_list(items: list[str]) -> str:
    """A list as Rust's `{:?}` prints a `Vec<String>` (Meilisearch's messages use it)."""
    return "[" + ", ".join('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'
                           for item in items) + "]"


class Authenticator:
    def __init__(
        self, master_key: str | None, admin_key: str | None, *, admin_enabled: bool = True,
        keyring: Callable[[], KeyRing | None] = lambda: None,
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._admin_enabled = admin_enabled
        self._master = master_key.encode() if master_key else None
        admin = admin_key or master_key
        self._admin = admin.encode() if admin else None
        self._keyring = keyring
        self._now_ms = now_ms
        # token -> (apiKeyUid, rules, exp) of tokens whose signature held: verifying a JWT costs
        # ~0.5 ms, the rest of a search's auth ~0.02 ms. Safe to keep: a token cannot change,
        # and the signing key's existence, rights and the expiry are checked on every request.
        self._verified: dict[str, tuple[str, SearchRules, int | None]] = {}

    def __repr__(self) -> str:
        return f"Authenticator(master_key={'set' if self._master else 'unset'})"

    async def check(self, method: str, path: str, headers: Mapping[str, str]) -> Access:
        """What the request may do, or raise the MeiliError it deserves."""
        if path.startswith(ADMIN_PREFIX) or path == ADMIN_PREFIX.rstrip("/"):
            if not self._admin_enabled:
                raise MeiliError("not_found", "The admin API is disabled (`admin.enabled: false`).")
            self._check_admin(headers)
            return FULL_ACCESS
        if path in PUBLIC_PATHS:
            return FULL_ACCESS
        if self._master is None:
            if path.startswith("/keys") and route_need(method, path).action in KEYS_ACTIONS:
                raise MeiliError("missing_master_key", MISSING_MASTER_KEY)
            return FULL_ACCESS
        token = bearer_token(headers.get("authorization"))
        if hmac.compare_digest(token.encode(), self._master):
            return FULL_ACCESS
        keyring = self._keyring()
        if keyring is None:
            raise invalid_api_key()
        need = route_need(method, path)
        return await self._with_key(keyring, need.action, need.index_uid, token)

    async def _with_key(self, keyring: KeyRing, action: str | None, index_uid: str | None,
                        token: str) -> Access:
        rules: SearchRules | None = None
        key: ApiKey | None = None
        if action in TENANT_TOKEN_ACTIONS:
            found = await self._tenant_token(keyring, token)
            if found is not None:
                key, rules = found
                if key is None:
                    raise invalid_api_key()
        if rules is None:
            key = await keyring.by_value(token)
            if key is None:
                raise invalid_api_key()
        assert key is not None
        access = Access(key, rules)
        if index_uid is not None:
            if rules is not None and not rules.index_allowed(index_uid):
                raise invalid_api_key(
                    f"The provided tenant token cannot acces the index `{index_uid}`, allowed "
                    f"indexes are {_rust_list(rules.allowed_list())}.")
            if not key.index_allowed(index_uid):
                if rules is not None:
                    raise invalid_api_key(
                        "The API key used to generate this tenant token cannot acces the index "
                        f"`{index_uid}`.")
                raise invalid_api_key(
                    f"The API key cannot acces the index `{index_uid}`, authorized indexes are "
                    f"{_rust_list(sorted(key.indexes))}.")
        now = self._now_ms()
        if action is None:
            # A route no action names (one Miroir does not serve): only a key that may do
            # anything passes, and the route's own answer (404) follows.
            if "*" in key.actions and key.all_indexes and not key.expired(now):
                return access
            raise invalid_api_key()
        if key.allows(action, index_uid, now):
            return access
        raise invalid_api_key()

    async def _tenant_token(
        self, keyring: KeyRing, token: str
    ) -> tuple[ApiKey | None, SearchRules] | None:
        """(the signing key or None when it no longer exists, the token's rules) for a valid
        tenant token; None for a bearer that is not a JWT at all (then it is tried as an API
        key, as Meilisearch does); raises for a JWT that fails verification."""
        if token.count(".") != 2:
            return None  # not a JWT (an API key's value is hex): no decoding attempted
        if len(token) > MAX_TOKEN_BYTES:
            raise invalid_api_key("Could not decode tenant token, InvalidToken.")
        verified = self._verified.get(token)
        if verified is None:
            verified = self._verify(keyring, token)
            if verified is None:
                return None
            if len(self._verified) >= VERIFIED_TOKENS_CACHED:
                self._verified.clear()
            self._verified[token] = verified
        uid, rules, exp = verified
        if exp is not None:
            now = self._now_ms() // 1000
            if now > exp:
                raise invalid_api_key(
                    f"Tenant token expired. Was valid up to `{exp}` and we're now `{now}`.")
        return await keyring.by_uid(uid), rules

    def _verify(self, keyring: KeyRing, token: str) -> tuple[str, SearchRules, int | None] | None:
        """(apiKeyUid, search rules, exp) of a token whose signature holds; what only depends on
        the token and the master key, so it is cached per token (`_verified`)."""
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            return None  # not a JWT: jsonwebtoken's InvalidToken, which falls back to API keys
        if not isinstance(unverified, dict) or not isinstance(header, dict):
            return None
        uid = unverified.get("apiKeyUid")
        if not isinstance(uid, str):
            raise _could_not_decode("JSON error: missing field `apiKeyUid`" if uid is None
                                    else "JSON error: invalid type for `apiKeyUid`")
        try:
            uid = str(UUID(uid))
        except ValueError:
            raise _could_not_decode("JSON error: `apiKeyUid` is not a UUID") from None
        if header.get("alg") not in TENANT_TOKEN_ALGORITHMS:
            raise _could_not_decode("InvalidAlgorithm")
        signing_value = keyring.value_of(_placeholder(uid))
        try:
            claims = jwt.decode(
                token, signing_value, algorithms=list(TENANT_TOKEN_ALGORITHMS),
                options={"verify_exp": False, "verify_nbf": False, "verify_iat": False,
                         "verify_aud": False, "verify_iss": False, "require": []},
            )
        except jwt.InvalidSignatureError:
            raise _could_not_decode("InvalidSignature") from None
        except jwt.InvalidAlgorithmError:
            raise _could_not_decode("InvalidAlgorithm") from None
        except jwt.PyJWTError:
            raise _could_not_decode("InvalidToken") from None
        if "searchRules" not in claims:
            raise _could_not_decode("JSON error: missing field `searchRules`")
        try:
            rules = parse_search_rules(claims["searchRules"])
        except ValueError:
            raise _could_not_decode("JSON error: invalid `searchRules`") from None
        exp = claims.get("exp")
        if exp is not None and (not isinstance(exp, int) or isinstance(exp, bool)):
            raise _could_not_decode("JSON error: invalid type for `exp`")
        return uid, rules, exp

    def _check_admin(self, headers: Mapping[str, str]) -> None:
        if self._admin is None:
            return
        scheme, _, token = (headers.get("authorization") or "").partition(" ")
        candidates = [token.strip()] if scheme == "Bearer" else []
        if headers.get("x-admin-key") is not None:
            candidates.append(headers["x-admin-key"].strip())
        # Compare every candidate, so timing does not say which header was tried.
        matched = [hmac.compare_digest(candidate.encode(), self._admin)
                   for candidate in candidates]
        if not any(matched):
            raise MeiliError(
                "miroir_invalid_auth",
                "The admin API needs the admin key in `Authorization: Bearer <key>` or "
                "`X-Admin-Key`.",
            )


def _could_not_decode(reason: str) -> MeiliError:
    return invalid_api_key(f"Could not decode tenant token, {reason}.")


def _placeholder(uid: str) -> ApiKey:
    """A key record with only `uid` set: what `KeyRing.value_of` needs to derive a value.
    Meilisearch, too, checks the signature with the value the uid derives to before it asks
    whether that key exists."""
    return ApiKey(uid=uid, name=None, description=None, actions=(), indexes=(),
                  expires_at=None, created_at=0, updated_at=0)


def request_access(request: Any) -> Access:
    """The Access the auth hook recorded on this Quart request (full access if none was)."""
    return getattr(request, "miroir_access", FULL_ACCESS)


def with_tenant_filter(access: Access, index_uid: str, params: dict[str, Any]) -> dict[str, Any]:
    """`params` with the tenant's filter for `index_uid` ANDed into its `filter` (Meilisearch's
    `add_search_rules`), so no shard answers outside the tenant's rule; `params` itself when the
    request carries no tenant token or its rule has no filter."""
    rule_filter = access.search_filter(index_uid)
    if rule_filter is None:
        return params
    return {**params, "filter": fuse_filters(params.get("filter"), rule_filter)}
