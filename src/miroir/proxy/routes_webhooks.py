"""Webhook routes: GET/POST /webhooks, GET/PATCH/DELETE /webhooks/{uuid}.

Miroir owns the webhooks (the nodes never see them): they live in the store, shared by every
proxy process, and `miroir.cluster.webhooks` delivers finished tasks to them. Shapes, limits
and errors are Meilisearch's (routes/webhooks.rs); the rules are `miroir.core.webhooks`, the
body is read here with deserr's wording. Every change is one atomic `Store.modify_webhooks`, so
two proxies adding the 20th webhook at once cannot make 21.
"""

from __future__ import annotations

import uuid as uuid_module
from typing import Any

from quart import Blueprint, Response

from miroir.core.errors import MeiliError
from miroir.core.webhooks import (
    FIELDS,
    MAX_HEADERS,
    MAX_WEBHOOKS,
    NIL_UUID,
    UNSET,
    Webhook,
    WebhookChange,
    created,
    immutable,
    not_found,
    parse_uuid,
    patched,
    render_webhook,
    render_webhooks,
    too_many_headers,
    too_many_webhooks,
)
from miroir.meili import deserr
from miroir.proxy import bodies
from miroir.proxy.errors import json_response
from miroir.proxy.state import cluster

blueprint = Blueprint("webhooks", __name__)


def parse_change(body: Any) -> WebhookChange:
    """A POST/PATCH body, refused in Meilisearch's words (`WebhookSettings`, deserr)."""
    accepted = ", ".join(f"`{name}`" for name in FIELDS)
    for key in body:
        if key == "uuid":
            raise MeiliError("immutable_webhook_uuid",
                             f"Immutable field `uuid`: expected one of {accepted}")
        if key == "isEditable":
            raise MeiliError("immutable_webhook_is_editable",
                             f"Immutable field `isEditable`: expected one of {accepted}")
    deserr.check_fields(body, FIELDS, path="", code="bad_request")
    url = body.get("url", UNSET)
    if url is not UNSET and url is not None and not isinstance(url, str):
        raise deserr.type_error("invalid_webhook_url", ".url", "a string", url)
    headers = body.get("headers", UNSET)
    if headers is not UNSET and headers is not None:
        if not isinstance(headers, dict):
            raise deserr.type_error("invalid_webhook_headers", ".headers", "an object", headers)
        for name, value in headers.items():
            if value is not None and not isinstance(value, str):
                raise deserr.type_error("invalid_webhook_headers", f".headers.{name}",
                                        "a string", value)
    return WebhookChange(url, headers)


def _by_uuid(records: dict[str, dict]) -> dict[str, Webhook]:
    return {uuid: Webhook.from_record(record) for uuid, record in records.items()}


@blueprint.get("/webhooks")
async def list_webhooks() -> Response:
    return json_response(render_webhooks(_by_uuid(await cluster().store.get_webhooks()).values()))


@blueprint.post("/webhooks")
async def create_webhook() -> Response:
    change = parse_change(await bodies.json_object_body())
    uuid = str(uuid_module.uuid4())
    if isinstance(change.headers, dict) and len(change.headers) > MAX_HEADERS:
        raise too_many_headers(uuid)
    made: list[Webhook] = []

    def add(records: dict[str, dict]) -> dict[str, dict]:
        if len(records) >= MAX_WEBHOOKS:
            raise too_many_webhooks()
        webhook = created(uuid, change)
        made[:] = [webhook]
        return {**records, uuid: webhook.to_record()}

    await cluster().store.modify_webhooks(add)
    return json_response(render_webhook(made[0]), 201)


@blueprint.get("/webhooks/<uuid>")
async def get_webhook(uuid: str) -> Response:
    uuid = parse_uuid(uuid)
    record = (await cluster().store.get_webhooks()).get(uuid)
    if record is None:
        raise not_found(uuid)
    return json_response(render_webhook(Webhook.from_record(record)))


@blueprint.patch("/webhooks/<uuid>")
async def patch_webhook(uuid: str) -> Response:
    uuid = parse_uuid(uuid)
    if uuid == NIL_UUID:
        raise immutable(uuid)
    change = parse_change(await bodies.json_object_body())
    changed: list[Webhook] = []

    def patch(records: dict[str, dict]) -> dict[str, dict]:
        if uuid not in records:
            raise not_found(uuid)
        webhook = patched(Webhook.from_record(records[uuid]), change)
        changed[:] = [webhook]
        return {**records, uuid: webhook.to_record()}

    await cluster().store.modify_webhooks(patch)
    return json_response(render_webhook(changed[0]))


@blueprint.delete("/webhooks/<uuid>")
async def delete_webhook(uuid: str) -> Response:
    uuid = parse_uuid(uuid)
    if uuid == NIL_UUID:
        raise immutable(uuid)

    def remove(records: dict[str, dict]) -> dict[str, dict]:
        if uuid not in records:
            raise not_found(uuid)
        return {key: record for key, record in records.items() if key != uuid}

    await cluster().store.modify_webhooks(remove)
    return Response(b"", status=204)
