"""The `/keys` routes: Meilisearch's API-key management, answered by Miroir itself.

The nodes only ever see Miroir's `node_master_key`; the keys clients hold live in the task store
(through `cluster.keys.KeyRing`, shared by every proxy process). Shapes, defaults, validation and
error codes are Meilisearch's (`routes/api_key.rs`; the payload rules are in
`miroir.core.keys`). Who may call these routes (the master key, or a key holding `keys.*`) is
decided by the auth hook before a handler runs. Must never log or echo a key's value except in
the key view Meilisearch itself returns.
"""

from __future__ import annotations

import uuid

from quart import Blueprint, Response

from miroir.cluster.keys import KeyRing
from miroir.core.errors import MeiliError
from miroir.core.keys import ApiKey, apply_patch, parse_create, parse_patch
from miroir.meili import deserr
from miroir.proxy import bodies
from miroir.proxy.errors import json_response
from miroir.proxy.state import cluster, proxy_state

blueprint = Blueprint("keys", __name__)
DEFAULT_LIMIT = 20


def _keyring() -> KeyRing:
    keyring = proxy_state().keyring
    if keyring is None:
        raise RuntimeError("the proxy is not serving yet (before_serving has not run)")
    return keyring


def _view(keyring: KeyRing, key: ApiKey) -> dict:
    return key.view(keyring.value_of(key))


def not_found(uid_or_key: str) -> MeiliError:
    """Meilisearch's `API key `<what was asked>` not found.`, except that only a uid is echoed:
    a string that is not one may be (a typo of) a key's value, which no error message carries."""
    try:
        shown = str(uuid.UUID(uid_or_key))
    except ValueError:
        shown = "<key>"
    return MeiliError("api_key_not_found", f"API key `{shown}` not found.")


async def _find(keyring: KeyRing, uid_or_key: str) -> ApiKey:
    key = await keyring.by_uid_or_value(uid_or_key)
    if key is None:
        raise not_found(uid_or_key)
    return key


@blueprint.get("/keys")
async def list_keys() -> Response:
    params = bodies.only_params(("offset", "limit"))
    offset = deserr.parse_query_usize("invalid_api_key_offset", "offset", params["offset"]) \
        if "offset" in params else 0
    limit = deserr.parse_query_usize("invalid_api_key_limit", "limit", params["limit"]) \
        if "limit" in params else DEFAULT_LIMIT
    keyring = _keyring()
    keys = await keyring.listing()
    return json_response({
        "results": [_view(keyring, key) for key in keys[offset:offset + limit]],
        "offset": offset, "limit": limit, "total": len(keys),
    })


@blueprint.post("/keys")
async def create_key() -> Response:
    body = await bodies.json_object_body()
    keyring = _keyring()
    key = parse_create(body, now_ms=cluster().now_ms(), new_uid=str(uuid.uuid4()))
    if not await keyring.create(key):
        raise MeiliError("api_key_already_exists",
                         f"`uid` field value `{key.uid}` is already an existing API key.")
    return json_response(_view(keyring, key), status=201)


@blueprint.get("/keys/<uid_or_key>")
async def get_key(uid_or_key: str) -> Response:
    keyring = _keyring()
    return json_response(_view(keyring, await _find(keyring, uid_or_key)))


@blueprint.patch("/keys/<uid_or_key>")
async def patch_key(uid_or_key: str) -> Response:
    body = await bodies.json_object_body()
    changes = parse_patch(body)
    keyring = _keyring()
    key = apply_patch(await _find(keyring, uid_or_key), changes, cluster().now_ms())
    if not await keyring.replace(key):  # deleted meanwhile
        raise not_found(uid_or_key)
    return json_response(_view(keyring, key))


@blueprint.delete("/keys/<uid_or_key>")
async def delete_key(uid_or_key: str) -> Response:
    keyring = _keyring()
    key = await _find(keyring, uid_or_key)
    if not await keyring.delete(key.uid):
        raise not_found(uid_or_key)
    return Response(b"", status=204)
