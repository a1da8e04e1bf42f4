"""Webhooks: the record, Meilisearch's validation, limits, errors and rendering, and the delivery
payload and retry schedule.

Theory of operation. Meilisearch (routes/webhooks.rs) keeps up to 20 webhooks, each a URL and up
to 200 headers, under a uuid; a client creates one with POST (`url` required), changes it with
PATCH (a header set to null is removed, `headers: null` clears them all, `url: null` is an
error) and deletes it. `uuid` and `isEditable` are read-only. The Authorization header's value
is redacted whenever a webhook is shown (`Webhook::redact_authorization_header`). When tasks
finish, every webhook receives them as gzip-compressed NDJSON (one task object per line) with
its headers.

Miroir owns its webhooks (the nodes never see them): they live in the store, so every proxy
process shows and serves the same list. This module is the pure part: applying a parsed
request body (`WebhookChange`; the proxy parses it with deserr's wording) through `created`
and `patched` under Meilisearch's checks
(`check_webhook`), rendering (`render_webhook`), the payload (`delivery_body`) and how long to
wait before each retry (`retry_delays`). Meilisearch itself does not retry; Miroir retries a
failed delivery with exponential backoff, since a sharding proxy is the one place a client's
receiver can count on. The delivery service is `miroir.cluster.webhooks`.

Must never do I/O, read a clock, or render a header value unredacted to a client.
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

import attrs
import orjson

from miroir.core.errors import MeiliError

MAX_WEBHOOKS = 20
MAX_HEADERS = 200
FIELDS = ("url", "headers")
# RFC 7230 token characters: what an HTTP header name may be made of.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                   r"[0-9a-fA-F]{12}")
UNSET: Any = object()


@attrs.frozen
class Webhook:
    """A stored webhook: its uuid (canonical lowercase, hyphenated), URL and headers."""

    uuid: str
    url: str
    headers: Mapping[str, str] = attrs.field(factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "url": self.url, "headers": dict(self.headers)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Webhook:
        return cls(record["uuid"], record["url"], dict(record.get("headers") or {}))


@attrs.frozen
class WebhookChange:
    """A parsed POST/PATCH body: `url` and `headers` are `UNSET` when absent; a header value
    None means "remove it"; `headers` None means "clear them all"."""

    url: Any = UNSET
    headers: Any = UNSET


# ---- errors, worded as Meilisearch words them ----------------------------------------------


def not_found(uuid: str) -> MeiliError:
    return MeiliError("webhook_not_found", f"Webhook `{uuid}` not found.")


def immutable(uuid: str) -> MeiliError:
    return MeiliError(
        "immutable_webhook",
        f"Webhook `{uuid}` is immutable. The webhook defined from the command line cannot be "
        "modified using the API.",
    )


def missing_url(uuid: str) -> MeiliError:
    return MeiliError("invalid_webhook_url", f"The URL for the webhook `{uuid}` is missing.")


def too_many_webhooks() -> MeiliError:
    return MeiliError(
        "invalid_webhooks",
        f"Defining too many webhooks would crush the server. Please limit the number of webhooks "
        f"to {MAX_WEBHOOKS}. You may use a third-party proxy server to dispatch events to more "
        f"than {MAX_WEBHOOKS} endpoints.",
    )


def too_many_headers(uuid: str) -> MeiliError:
    return MeiliError(
        "invalid_webhook_headers",
        f"Too many headers for the webhook `{uuid}`. Please limit the number of headers to "
        f"{MAX_HEADERS}. Hint: To remove an already defined header set its value to `null`",
    )


def parse_uuid(text: str) -> str:
    """The canonical form of a uuid from a path, or `invalid_webhook_uuid`."""
    if not _UUID.fullmatch(text):
        raise MeiliError("invalid_webhook_uuid", f"Invalid UUID: invalid character: `{text}`")
    digits = text.replace("-", "").lower()
    return f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}"


NIL_UUID = "00000000-0000-0000-0000-000000000000"


# ---- parsing and applying -------------------------------------------------------------------


def check_webhook(webhook: Webhook) -> Webhook:
    """Meilisearch's `check_changed`: a URL, at most 200 valid headers, a parseable URL."""
    if webhook.uuid == NIL_UUID:
        raise immutable(webhook.uuid)
    if not webhook.url:
        raise missing_url(webhook.uuid)
    if len(webhook.headers) > MAX_HEADERS:
        raise too_many_headers(webhook.uuid)
    for name, value in webhook.headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise MeiliError("invalid_webhook_headers",
                             f"Invalid header name `{name}`: invalid HTTP header name")
        if any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in value):
            raise MeiliError("invalid_webhook_headers",
                             f"Invalid header value `{name}`: failed to parse header value")
    parts = urlsplit(webhook.url)
    if not parts.scheme or not (parts.netloc or parts.path) or " " in webhook.url:
        raise MeiliError("invalid_webhook_url",
                         f"Invalid URL `{webhook.url}`: relative URL without a base")
    return webhook


def created(uuid: str, change: WebhookChange) -> Webhook:
    """The webhook a POST makes (`uuid` freshly drawn by the caller)."""
    if isinstance(change.headers, dict) and len(change.headers) > MAX_HEADERS:
        raise too_many_headers(uuid)
    if change.url is UNSET or change.url is None:
        raise missing_url(uuid)
    headers = {} if not isinstance(change.headers, dict) else {
        name: value if value is not None else "" for name, value in change.headers.items()
    }
    return check_webhook(Webhook(uuid, change.url, headers))


def patched(current: Webhook, change: WebhookChange) -> Webhook:
    """`current` after a PATCH (Meilisearch's `patch_webhook_inner`, then `check_changed`)."""
    if change.url is None:
        raise missing_url(current.uuid)
    url = current.url if change.url is UNSET else change.url
    headers = dict(current.headers)
    if change.headers is None:
        headers.clear()
    elif isinstance(change.headers, dict):
        for name, value in change.headers.items():
            if value is None:
                headers.pop(name, None)
            else:
                headers[name] = value
    if len(headers) > MAX_HEADERS:
        raise too_many_headers(current.uuid)
    return check_webhook(Webhook(current.uuid, url, headers))


# ---- rendering ------------------------------------------------------------------------------


def hide_secret(secret: str, offset: int) -> str:
    """Meilisearch's `hide_secret`: keep a few leading characters past `offset`, mask the rest."""
    rest = len(secret.encode()) - offset
    if rest < 0:
        return secret
    keep, mask = ((0, "XXX...") if rest < 10 else (2, "XXXX...") if rest < 20
                  else (3, "XXXXX...") if rest < 30 else (5, "XXXXXX..."))
    return secret[: offset + keep] + mask


def redacted_headers(headers: Mapping[str, str]) -> dict[str, str]:
    shown = {}
    for name, value in sorted(headers.items()):
        if name.lower() == "authorization":
            value = hide_secret(value, len("Bearer ") if value.startswith("Bearer ") else 0)
        shown[name] = value
    return shown


def render_webhook(webhook: Webhook) -> dict[str, Any]:
    """Meilisearch's `WebhookWithMetadataRedactedAuthorization`: uuid, isEditable, url, headers
    (sorted, as its BTreeMap is), Authorization redacted."""
    return {
        "uuid": webhook.uuid,
        "isEditable": webhook.uuid != NIL_UUID,
        "url": webhook.url,
        "headers": redacted_headers(webhook.headers),
    }


def render_webhooks(webhooks: Iterable[Webhook]) -> dict[str, Any]:
    return {"results": [render_webhook(w) for w in sorted(webhooks, key=lambda w: w.uuid)]}


# ---- delivery -------------------------------------------------------------------------------


def delivery_body(task_objects: Iterable[Mapping[str, Any]]) -> bytes:
    """The gzip-compressed NDJSON body Meilisearch POSTs: one task object per line."""
    ndjson = b"".join(orjson.dumps(task) + b"\n" for task in task_objects)
    return gzip.compress(ndjson)


def delivery_headers(webhook: Webhook) -> list[tuple[str, str]]:
    """What a delivery sends: Meilisearch's encoding and type, then the webhook's headers."""
    return [("Content-Encoding", "gzip"), ("Content-Type", "application/x-ndjson"),
            *webhook.headers.items()]


def retry_delays(attempts: int, first_s: float = 0.5, factor: float = 2.0,
                 cap_s: float = 30.0) -> list[float]:
    """The waits before retries 1..attempts-1: exponential from `first_s`, at most `cap_s`."""
    return [min(cap_s, first_s * factor**i) for i in range(max(0, attempts - 1))]
