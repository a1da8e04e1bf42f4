"""Meilisearch's API-key model, as pure data and functions: actions, index patterns, key values,
the `/keys` payloads, and the decision "may this key do this action on this index now".

Theory of operation. A key is a record (uid, name, description, actions, index patterns, expiry,
creation and update times). Its *value* (the bearer string a client sends) is never stored: it is
HMAC-SHA256 of the key's lowercase hyphenated uid under the master key, in lowercase hex, exactly
as Meilisearch derives it (`meilisearch-auth/src/store.rs`, `generate_key_as_hexa`), so a client
that computes it locally agrees and rotating the master key rotates every value.

The action names and their order are Meilisearch's `Action` enum (`meilisearch-types/src/keys.rs`)
and appear in its error messages in that order. Wildcard actions (`*`, `*.get`, `documents.*`,
...) are expanded once, when a key is built (`ApiKey.granted`), the way Meilisearch fills its
inverted (key, action, index) database, so a check is two set lookups. An index pattern is `*`,
an exact uid, or `prefix*`. Some actions are global (`version`, `keys.*`, `dumps.create`, ...):
Meilisearch refuses to create an index-scoped key with them (`DENY_INDEX_SCOPE`).

Tenant tokens carry *search rules*: a list of index patterns, or a map of pattern -> `{filter}` or
null. `SearchRules.filter_for` picks the most specific matching pattern (exact first, then the
longest), and `fuse_filters` ANDs a rule's filter into the query's filter as Meilisearch does
(`search/mod.rs`, `fuse_filters`: the query's filter first, then the rule's, as one array).

Must never read a clock (times are milliseconds passed in), store anything, or log a key value.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import attrs

from miroir.core.errors import MeiliError
from miroir.core.json_values import describe

# ---- the action table --------------------------------------------------------------------------

# Meilisearch's `Action` enum, in declaration order (the order of its "expected one of" message).
ACTIONS: tuple[str, ...] = (
    "*", "search", "documents.*", "documents.add", "documents.get", "documents.delete",
    "indexes.*", "indexes.create", "indexes.get", "indexes.update", "indexes.delete",
    "indexes.swap", "tasks.*", "tasks.cancel", "tasks.delete", "tasks.get", "settings.*",
    "settings.get", "settings.update", "stats.*", "stats.get", "metrics.*", "metrics.get",
    "dumps.*", "dumps.create", "snapshots.*", "snapshots.create", "version", "keys.create",
    "keys.get", "keys.update", "keys.delete", "experimental.get", "experimental.update", "export",
    "network.get", "network.update", "chatCompletions", "chats.*", "chats.get", "chats.delete",
    "chatsSettings.*", "chatsSettings.get", "chatsSettings.update", "*.get", "webhooks.get",
    "webhooks.update", "webhooks.delete", "webhooks.create", "webhooks.*", "indexes.compact",
    "fields.post", "tasks.compact", "dynamicSearchRules.get", "dynamicSearchRules.create",
    "dynamicSearchRules.update", "dynamicSearchRules.delete", "dynamicSearchRules.*",
)
_ACTION_SET = frozenset(ACTIONS)

# Wildcards other than `*` and `*.get`: what each one grants (store.rs, `put_api_key`).
_FAMILIES: dict[str, tuple[str, ...]] = {
    "documents.*": ("documents.get", "documents.delete", "documents.add"),
    "indexes.*": ("indexes.create", "indexes.delete", "indexes.get", "indexes.update",
                  "indexes.swap", "indexes.compact"),
    "settings.*": ("settings.get", "settings.update"),
    "dumps.*": ("dumps.create",),
    "snapshots.*": ("snapshots.create",),
    "tasks.*": ("tasks.get", "tasks.delete", "tasks.cancel", "tasks.compact"),
    "stats.*": ("stats.get",),
    "metrics.*": ("metrics.get",),
    "chats.*": ("chats.get", "chats.delete"),
    "chatsSettings.*": ("chatsSettings.get", "chatsSettings.update"),
    "webhooks.*": ("webhooks.get", "webhooks.update", "webhooks.delete", "webhooks.create"),
    "dynamicSearchRules.*": ("dynamicSearchRules.get", "dynamicSearchRules.create",
                             "dynamicSearchRules.update", "dynamicSearchRules.delete"),
}

# `Action::is_read`: what `*.get` grants. `keys.get` is deliberately absent (privilege escalation).
READ_ACTIONS: frozenset[str] = frozenset((
    "search", "documents.get", "export", "indexes.get", "tasks.get", "settings.get", "stats.get",
    "metrics.get", "version", "experimental.get", "network.get", "chats.get", "chatsSettings.get",
    "webhooks.get", "fields.post", "dynamicSearchRules.get",
))

# `IndexScope::DenyIndexScope`: global actions an index-scoped key may not hold.
DENY_INDEX_SCOPE: frozenset[str] = frozenset((
    "metrics.*", "metrics.get", "dumps.*", "dumps.create", "snapshots.*", "snapshots.create",
    "version", "keys.create", "keys.get", "keys.update", "keys.delete", "experimental.get",
    "experimental.update", "export", "network.get", "network.update", "chats.*", "chats.get",
    "chats.delete", "chatsSettings.*", "chatsSettings.get", "chatsSettings.update",
    "webhooks.get", "webhooks.update", "webhooks.delete", "webhooks.create", "webhooks.*",
    "dynamicSearchRules.get", "dynamicSearchRules.create", "dynamicSearchRules.update",
    "dynamicSearchRules.delete", "dynamicSearchRules.*", "tasks.compact",
))

# `IndexScope::RouteHandlerChecksIndex`: actions that an index-scoped key may use on a route
# without an index in its path; the handler then shows only the key's indexes.
ROUTE_HANDLER_CHECKS_INDEX: frozenset[str] = frozenset((
    "documents.get", "search", "indexes.create", "indexes.get", "indexes.swap", "tasks.cancel",
    "tasks.delete", "tasks.get", "settings.get", "stats.*", "stats.get", "chatCompletions",
))

# The actions a tenant token may be used for (`authenticate_tenant_token`).
TENANT_TOKEN_ACTIONS: frozenset[str] = frozenset(("search", "chatCompletions"))


def expand_actions(actions: Iterable[str]) -> frozenset[str]:
    """Every concrete action a key holding `actions` may perform (wildcards expanded)."""
    granted: set[str] = set()
    for action in actions:
        if action == "*":
            granted.update(ACTIONS)
            granted.discard("*.get")
        elif action == "*.get":
            granted.update(READ_ACTIONS)
        elif action in _FAMILIES:
            granted.update(_FAMILIES[action])
        else:
            granted.add(action)
    return frozenset(granted)


# ---- index patterns ----------------------------------------------------------------------------

_INDEX_UID = re.compile(r"[A-Za-z0-9_-]{1,400}")


def valid_pattern(pattern: str) -> bool:
    """`*`, an index uid, or an index uid followed by `*` (`IndexUidPattern::try_from`)."""
    if pattern == "*":
        return True
    body = pattern[:-1] if pattern.endswith("*") else pattern
    return _INDEX_UID.fullmatch(body) is not None


def pattern_matches(pattern: str, index_uid: str) -> bool:
    """`IndexUidPattern::matches_str`: `prefix*` matches by prefix, anything else exactly."""
    if pattern.endswith("*"):
        return index_uid.startswith(pattern[:-1])
    return pattern == index_uid


def any_pattern_matches(patterns: Iterable[str], index_uid: str) -> bool:
    return any(pattern_matches(pattern, index_uid) for pattern in patterns)


# ---- key values --------------------------------------------------------------------------------


def derive_key(uid: str, master_key: str) -> str:
    """The key's value: hex HMAC-SHA256 of its lowercase hyphenated uid under the master key."""
    canonical = str(uuid.UUID(uid))
    return hmac.new(master_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()


def default_key_uid(master_key: str, name: str) -> str:
    """A default key's uid, derived from the master key and the key's name.

    Meilisearch draws them at random once; deriving them lets every proxy process that starts on
    an empty store write the *same* default keys, so concurrent first starts converge."""
    digest = hmac.new(master_key.encode(), b"miroir default key\0" + name.encode(),
                      hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


# ---- the key record ----------------------------------------------------------------------------


def rfc3339_ms(ms: int) -> str:
    """`2021-11-13T00:00:00.000000Z`: UTC, six fraction digits, as the devnode renders times
    (Meilisearch drops a whole second's fraction, which the official Python SDK cannot parse)."""
    instant = datetime.fromtimestamp(ms // 1000, UTC)
    return instant.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}000Z"


@attrs.frozen
class ApiKey:
    uid: str
    name: str | None
    description: str | None
    actions: tuple[str, ...]
    indexes: tuple[str, ...]
    expires_at: int | None  # ms since the epoch; None: never
    created_at: int
    updated_at: int
    granted: frozenset[str] = attrs.field(init=False, eq=False, repr=False)
    all_indexes: bool = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "granted", expand_actions(self.actions))
        object.__setattr__(self, "all_indexes", "*" in self.indexes)

    def expired(self, now_ms: int) -> bool:
        return self.expires_at is not None and now_ms >= self.expires_at

    def index_allowed(self, index_uid: str) -> bool:
        return self.all_indexes or any_pattern_matches(self.indexes, index_uid)

    def allows(self, action: str, index_uid: str | None, now_ms: int) -> bool:
        """`AuthController::is_key_authorized`: the key holds `action` on `index_uid` (or, for a
        route without an index, holds it globally, or on some index when the route handler
        restricts what it shows), and has not expired."""
        if action not in self.granted or self.expired(now_ms):
            return False
        if self.all_indexes:
            return True
        if index_uid is not None:
            return any_pattern_matches(self.indexes, index_uid)
        return action in ROUTE_HANDLER_CHECKS_INDEX and bool(self.indexes)

    def to_record(self) -> dict[str, Any]:
        """What the store keeps: everything but the value (which is derived, never stored)."""
        return {
            "uid": self.uid, "name": self.name, "description": self.description,
            "actions": list(self.actions), "indexes": list(self.indexes),
            "expiresAt": self.expires_at, "createdAt": self.created_at,
            "updatedAt": self.updated_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ApiKey:
        return cls(
            uid=record["uid"], name=record["name"], description=record["description"],
            actions=tuple(record["actions"]), indexes=tuple(record["indexes"]),
            expires_at=record["expiresAt"], created_at=record["createdAt"],
            updated_at=record["updatedAt"],
        )

    def view(self, value: str) -> dict[str, Any]:
        """Meilisearch's `KeyView` for this key with its value."""
        return {
            "name": self.name, "description": self.description, "key": value, "uid": self.uid,
            "actions": list(self.actions), "indexes": list(self.indexes),
            "expiresAt": None if self.expires_at is None else rfc3339_ms(self.expires_at),
            "createdAt": rfc3339_ms(self.created_at), "updatedAt": rfc3339_ms(self.updated_at),
        }


def default_keys(master_key: str, now_ms: int) -> list[ApiKey]:
    """Meilisearch's default keys (`generate_default_keys`), with derived uids."""
    specs = (
        ("Default Chat API Key", "Use it to chat and search from the frontend",
         ("chatCompletions", "search")),
        ("Default Read-Only Admin API Key", "Use it to read information across the whole "
         "database. Caution! Do not expose this key on a public frontend", ("*.get", "keys.get")),
        ("Default Admin API Key", "Use it for anything that is not a search operation. Caution! "
         "Do not expose it on a public frontend", ("*",)),
        ("Default Search API Key", "Use it to search from the frontend", ("search",)),
    )
    # Distinct creation times keep Meilisearch's listing order (newest first) deterministic.
    return [
        ApiKey(uid=default_key_uid(master_key, name), name=name, description=description,
               actions=actions, indexes=("*",), expires_at=None, created_at=now_ms + position,
               updated_at=now_ms + position)
        for position, (name, description, actions) in enumerate(specs)
    ]


def list_order(keys: Iterable[ApiKey]) -> list[ApiKey]:
    """GET /keys order: newest first (`list_api_keys`), uid as a deterministic tie-break."""
    return sorted(keys, key=lambda key: (-key.created_at, key.uid))


# ---- /keys payloads (Meilisearch's deserr wording) ---------------------------------------------

CREATE_FIELDS = ("description", "name", "uid", "actions", "indexes", "expiresAt")
PATCH_FIELDS = ("description", "name")
_IMMUTABLE = {
    "uid": "immutable_api_key_uid", "actions": "immutable_api_key_actions",
    "indexes": "immutable_api_key_indexes", "expiresAt": "immutable_api_key_expires_at",
    "createdAt": "immutable_api_key_created_at", "updatedAt": "immutable_api_key_updated_at",
}




def _type_error(code: str, path: str, expected: str, value: Any) -> MeiliError:
    return MeiliError(
        code, f"Invalid value type at `{path}`: expected {expected}, but found {describe(value)}"
    )


def _backticked(names: Iterable[str]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _optional_string(body: Mapping[str, Any], field: str, code: str) -> str | None:
    value = body.get(field)
    if value is not None and not isinstance(value, str):
        raise _type_error(code, f".{field}", "a string", value)
    return value


def _parse_uid(value: Any) -> str:
    if not isinstance(value, str):
        raise _type_error("invalid_api_key_uid", ".uid", "a string", value)
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise MeiliError("invalid_api_key_uid", f"Invalid value at `.uid`: {_uuid_problem(value)}"
                         ) from None


def _uuid_problem(text: str) -> str:
    """The `uuid` crate's complaint about `text`, for the common cases."""
    simple = text.replace("-", "")
    for position, char in enumerate(text, start=1):
        if char not in "0123456789abcdefABCDEF-":
            return f"invalid character: found `{char}` at {position}"
    if len(simple) != 32 or len(text) not in (32, 36):
        return f"invalid length: found {len(text)}"
    return "invalid group count"


_DATE_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d")


def parse_expires_at(value: Any, now_ms: int) -> int | None:
    """`parse_expiration_date`: RFC 3339, `YYYY-MM-DDTHH:MM:SS`, `YYYY-MM-DD HH:MM:SS` or
    `YYYY-MM-DD` (UTC), strictly in the future; None for null."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise _type_error("invalid_api_key_expires_at", ".expiresAt", "a string", value)
    instant = _parse_date(value)
    if instant is None or int(instant.timestamp() * 1000) <= now_ms:
        raise MeiliError(
            "invalid_api_key_expires_at",
            f"Invalid value at `.expiresAt`: `{value}` is not a valid date. It should follow the "
            "RFC 3339 format to represents a date or datetime in the future or specified as a "
            "null value. e.g. 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM:SS'.\n",
        )
    return int(instant.timestamp() * 1000)


_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})"
)


def _parse_date(text: str) -> datetime | None:
    try:
        if _RFC3339.fullmatch(text):
            normalized = text.replace("z", "Z").replace("Z", "+00:00")
            head, _, rest = normalized.partition(".")
            if rest:  # Python takes at most 6 fraction digits
                digits = re.match(r"\d+", rest).group()  # type: ignore[union-attr]
                normalized = f"{head}.{digits[:6]}{rest[len(digits):]}"
            return datetime.fromisoformat(normalized).astimezone(UTC)
        for form in _DATE_FORMATS:
            try:
                return datetime.strptime(text, form).replace(tzinfo=UTC)
            except ValueError:
                continue
    except (ValueError, OverflowError):
        return None
    return None


def parse_create(body: Any, *, now_ms: int, new_uid: str) -> ApiKey:
    """A POST /keys body as a key, or the MeiliError Meilisearch answers it with.

    Checked in Meilisearch's order: unknown fields, then each field as deserr visits it, then the
    missing required fields, then the index-scope rule. `new_uid` is used when no uid is given."""
    if not isinstance(body, dict):
        raise MeiliError("bad_request",
                         f"Invalid value type: expected an object, but found {describe(body)}")
    for field in body:
        if field not in CREATE_FIELDS:
            raise MeiliError("bad_request", f"Unknown field `{field}`: expected one of "
                             f"{_backticked(CREATE_FIELDS)}")
    description = _optional_string(body, "description", "invalid_api_key_description")
    name = _optional_string(body, "name", "invalid_api_key_name")
    uid = _parse_uid(body["uid"]) if "uid" in body else new_uid
    actions = _parse_actions(body["actions"]) if "actions" in body else None
    indexes = _parse_indexes(body["indexes"]) if "indexes" in body else None
    if actions is None:
        raise MeiliError("missing_api_key_actions", "Missing field `actions`")
    if indexes is None:
        raise MeiliError("missing_api_key_indexes", "Missing field `indexes`")
    if "expiresAt" not in body:
        raise MeiliError("missing_api_key_expires_at", "Missing field `expiresAt`")
    expires_at = parse_expires_at(body["expiresAt"], now_ms)
    if indexes and "*" not in indexes:
        for action in actions:
            if action in DENY_INDEX_SCOPE:
                raise MeiliError(
                    "index_scoped_api_key_with_global_action",
                    f'cannot create index-scoped API key with global action `"{action}"`\n'
                    f'  - Hint: remove action `"{action}"` from the action list, or remove '
                    "`indexes` to make the key global",
                )
    return ApiKey(uid=uid, name=name, description=description, actions=actions, indexes=indexes,
                  expires_at=expires_at, created_at=now_ms, updated_at=now_ms)


def _parse_actions(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _type_error("invalid_api_key_actions", ".actions", "an array", value)
    for position, action in enumerate(value):
        if not isinstance(action, str):
            raise _type_error("invalid_api_key_actions", f".actions[{position}]", "a string",
                              action)
        if action not in _ACTION_SET:
            raise MeiliError(
                "invalid_api_key_actions",
                f"Unknown value `{action}` at `.actions[{position}]`: expected one of "
                f"{_backticked(ACTIONS)}",
            )
    return tuple(value)


def _parse_indexes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _type_error("invalid_api_key_indexes", ".indexes", "an array", value)
    for position, pattern in enumerate(value):
        if not isinstance(pattern, str):
            raise _type_error("invalid_api_key_indexes", f".indexes[{position}]", "a string",
                              pattern)
        if not valid_pattern(pattern):
            raise MeiliError(
                "invalid_api_key_indexes",
                f"Invalid value at `.indexes[{position}]`: `{pattern}` is not a valid index uid "
                "pattern. Index uid patterns can be an integer or a string containing only "
                "alphanumeric characters, hyphens (-), underscores (_), and optionally end with "
                "a star (*).",
            )
    return tuple(value)


_UNSET = object()


def parse_patch(body: Any) -> dict[str, str | None]:
    """A PATCH /keys/{key} body: only `name` and `description` (null clears one)."""
    if not isinstance(body, dict):
        raise MeiliError("bad_request",
                         f"Invalid value type: expected an object, but found {describe(body)}")
    for field in body:
        if field in PATCH_FIELDS:
            continue
        message_tail = f"expected one of {_backticked(PATCH_FIELDS)}"
        if field in _IMMUTABLE:
            raise MeiliError(_IMMUTABLE[field], f"Immutable field `{field}`: {message_tail}")
        raise MeiliError("bad_request", f"Unknown field `{field}`: {message_tail}")
    changes: dict[str, str | None] = {}
    for field, code in (("description", "invalid_api_key_description"),
                        ("name", "invalid_api_key_name")):
        if field in body:
            changes[field] = _optional_string(body, field, code)
    return changes


def apply_patch(key: ApiKey, changes: Mapping[str, str | None], now_ms: int) -> ApiKey:
    return attrs.evolve(key, updated_at=now_ms, **changes)


# ---- tenant-token search rules -----------------------------------------------------------------


@attrs.frozen
class SearchRules:
    """A tenant token's `searchRules`: patterns, each with an optional filter."""

    rules: tuple[tuple[str, Any], ...]  # (pattern, filter or None)

    def index_allowed(self, index_uid: str) -> bool:
        return any(pattern_matches(pattern, index_uid) for pattern, _ in self.rules)

    def all_indexes(self) -> bool:
        return any(pattern == "*" for pattern, _ in self.rules)

    def filter_for(self, index_uid: str) -> Any:
        """The filter of the most specific matching rule (exact first, then the longest
        pattern: `get_index_search_rules`); None when that rule has none."""
        matching = [(pattern, rule) for pattern, rule in self.rules
                    if pattern_matches(pattern, index_uid)]
        if not matching:
            return None
        _, rule = max(matching, key=lambda item: (not item[0].endswith("*"), len(item[0])))
        return rule

    def allowed_list(self) -> list[str]:
        return sorted(pattern for pattern, _ in self.rules)


def parse_search_rules(value: Any) -> SearchRules:
    """`searchRules` as Meilisearch deserializes it, or ValueError with serde's complaint."""
    if isinstance(value, list):
        if not all(isinstance(item, str) and valid_pattern(item) for item in value):
            raise ValueError("searchRules: expected a list of index patterns")
        return SearchRules(tuple((pattern, None) for pattern in value))
    if isinstance(value, dict):
        rules = []
        for pattern, rule in value.items():
            if not valid_pattern(pattern):
                raise ValueError("searchRules: not an index pattern")
            if rule is None:
                rules.append((pattern, None))
            elif isinstance(rule, dict):
                if set(rule) - {"filter"}:
                    raise ValueError("searchRules: a rule holds only `filter`")
                rules.append((pattern, rule.get("filter")))
            else:
                raise ValueError("searchRules: a rule is an object or null")
        return SearchRules(tuple(rules))
    raise ValueError("searchRules: expected a list or a map of index patterns")


def fuse_filters(query_filter: Any, rule_filter: Any) -> Any:
    """`fuse_filters`: the query's filter and the rule's, ANDed as one array (either may be a
    string or an array of AND-ed parts); either alone when the other is absent."""
    if rule_filter is None:
        return query_filter
    if query_filter is None:
        return rule_filter
    left = query_filter if isinstance(query_filter, list) else [query_filter]
    right = rule_filter if isinstance(rule_filter, list) else [rule_filter]
    return [*left, *right]


# ---- route -> action ---------------------------------------------------------------------------

# (method, path template) -> action, for every Meilisearch route Miroir serves. `{uid}` is the
# index the action applies to. Anything not listed needs the master key (`None` action).
ROUTE_ACTIONS: dict[tuple[str, str], str] = {
    ("POST", "/indexes/{uid}/search"): "search",
    ("GET", "/indexes/{uid}/search"): "search",
    ("POST", "/indexes/{uid}/facet-search"): "search",
    ("POST", "/indexes/{uid}/similar"): "search",
    ("GET", "/indexes/{uid}/similar"): "search",
    ("POST", "/multi-search"): "search",
    ("GET", "/indexes/{uid}/documents"): "documents.get",
    ("POST", "/indexes/{uid}/documents/fetch"): "documents.get",
    ("GET", "/indexes/{uid}/documents/{doc}"): "documents.get",
    ("POST", "/indexes/{uid}/documents"): "documents.add",
    ("PUT", "/indexes/{uid}/documents"): "documents.add",
    ("POST", "/indexes/{uid}/documents/edit"): "documents.add",
    ("DELETE", "/indexes/{uid}/documents"): "documents.delete",
    ("DELETE", "/indexes/{uid}/documents/{doc}"): "documents.delete",
    ("POST", "/indexes/{uid}/documents/delete-batch"): "documents.delete",
    ("POST", "/indexes/{uid}/documents/delete"): "documents.delete",
    ("GET", "/indexes"): "indexes.get",
    ("POST", "/indexes"): "indexes.create",
    ("GET", "/indexes/{uid}"): "indexes.get",
    ("PATCH", "/indexes/{uid}"): "indexes.update",
    ("DELETE", "/indexes/{uid}"): "indexes.delete",
    ("POST", "/swap-indexes"): "indexes.swap",
    ("POST", "/indexes/{uid}/compact"): "indexes.compact",
    ("POST", "/indexes/{uid}/fields"): "fields.post",
    ("GET", "/indexes/{uid}/settings"): "settings.get",
    ("GET", "/indexes/{uid}/settings/{setting}"): "settings.get",
    ("PATCH", "/indexes/{uid}/settings"): "settings.update",
    ("PUT", "/indexes/{uid}/settings/{setting}"): "settings.update",
    ("PATCH", "/indexes/{uid}/settings/{setting}"): "settings.update",
    ("POST", "/indexes/{uid}/settings/{setting}"): "settings.update",
    ("DELETE", "/indexes/{uid}/settings"): "settings.update",
    ("DELETE", "/indexes/{uid}/settings/{setting}"): "settings.update",
    ("GET", "/indexes/{uid}/stats"): "stats.get",
    ("GET", "/stats"): "stats.get",
    ("GET", "/tasks"): "tasks.get",
    ("GET", "/tasks/{task}"): "tasks.get",
    ("POST", "/tasks/cancel"): "tasks.cancel",
    ("DELETE", "/tasks"): "tasks.delete",
    ("GET", "/batches"): "tasks.get",
    ("GET", "/batches/{batch}"): "tasks.get",
    ("POST", "/dumps"): "dumps.create",
    ("POST", "/snapshots"): "snapshots.create",
    ("GET", "/version"): "version",
    ("GET", "/metrics"): "metrics.get",
    ("GET", "/experimental-features"): "experimental.get",
    ("PATCH", "/experimental-features"): "experimental.update",
    ("GET", "/network"): "network.get",
    ("PATCH", "/network"): "network.update",
    ("GET", "/keys"): "keys.get",
    ("POST", "/keys"): "keys.create",
    ("GET", "/keys/{key}"): "keys.get",
    ("PATCH", "/keys/{key}"): "keys.update",
    ("DELETE", "/keys/{key}"): "keys.delete",
}

KEYS_ACTIONS: frozenset[str] = frozenset(("keys.get", "keys.create", "keys.update", "keys.delete"))


@attrs.frozen
class RouteNeed:
    action: str | None  # None: no action grants it (the master key only)
    index_uid: str | None


def _compile_routes() -> list[tuple[str, re.Pattern[str], str, bool]]:
    compiled = []
    for (method, template), action in ROUTE_ACTIONS.items():
        regex = "^" + re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[^/]+)",
                             re.escape(template)) + "/?$"
        compiled.append((method, re.compile(regex), action, "{uid}" in template))
    return compiled


_ROUTES = _compile_routes()


@functools.lru_cache(maxsize=4096)
def route_need(method: str, path: str) -> RouteNeed:
    """The action `method path` needs and the index it applies to (from the path).

    Memoized: the table is ~55 regexes (~4 µs a lookup), and a deployment's hot paths are few
    (its search routes); the cache is bounded, so paths naming many indexes only evict."""
    method = "GET" if method == "HEAD" else method
    for route_method, regex, action, has_index in _ROUTES:
        if route_method != method:
            continue
        matched = regex.match(path)
        if matched is not None:
            return RouteNeed(action, matched.group("uid") if has_index else None)
    return RouteNeed(None, None)


__all__ = [
    "ACTIONS", "ApiKey", "DENY_INDEX_SCOPE", "KEYS_ACTIONS", "READ_ACTIONS", "ROUTE_ACTIONS",
    "RouteNeed", "SearchRules", "TENANT_TOKEN_ACTIONS", "any_pattern_matches", "apply_patch",
    "default_key_uid", "default_keys", "derive_key", "expand_actions", "fuse_filters",
    "list_order", "parse_create", "parse_expires_at", "parse_patch", "parse_search_rules",
    "pattern_matches", "rfc3339_ms", "route_need", "valid_pattern",
]
