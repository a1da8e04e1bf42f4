"""Client idempotency keys: a write sent twice with the same `Idempotency-Key` is carried out once.

Owns the rule behind the `Idempotency-Key` request header (the proxy reads the header and
renders; this module decides). A key is kept in the store (`Store.claim_idempotency_key`), so
every proxy process sharing the store agrees on it, for `ttl_ms`, and at most `max_keys` keys
are held (the store evicts the ones expiring first).

Theory of operation. A request with a key is fingerprinted: SHA-256 over its method, path,
query string, content type and body (`request_fingerprint`). Then `claim_or_replay`:

1. No record for the key: allocate a task uid and claim the key with it. The store's claim is
   atomic, so of two proxies racing on one key exactly one wins. The winner gets a `Claim`: it
   runs the write with that uid *reserved* (`reserved_task_uid`), so the Miroir task the write
   records takes exactly the uid the key already names, and a concurrent duplicate can find it.
2. A record with another fingerprint: 409 `miroir_idempotency_key_reused` (fingerprints are
   compared in constant time).
3. A record with this fingerprint whose task exists: `Replay(task)`; nothing is written.
4. Its task does not exist yet: the first request is still running. Poll the store until the
   task appears (then replay it) or the key is given back (then claim it), for at most
   `wait_s`; past that, 409 `miroir_idempotency_key_in_progress`.

After the write, `settle` keeps the key only when the write was accepted (202): a write
answered with an error (a bad body, 503 `miroir_no_quorum`) gives its key back, so the client's
retry with the same key runs again rather than replaying a failure. An accepted task recorded
under another uid than the reserved one moves the key to that uid (a safeguard: a write that
creates its missing index does so within its own task, under the reserved uid, as Meilisearch
counts one task for it).

Must never: write anything for a replay, hold a key for a write that was not accepted, or
compare fingerprints with `==`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
from collections.abc import Iterator
from contextvars import ContextVar

import attrs
import trio

from miroir.cluster.runtime import Cluster
from miroir.cluster.write_retry import client_key
from miroir.core.errors import MeiliError
from miroir.core.tasks import Task

# The uid the next Miroir task recorded in this context must take (see the module docstring);
# consumed by `miroir.cluster.tasks` when it records a task.
_RESERVED_TASK_UID: ContextVar[int | None] = ContextVar("miroir_reserved_task_uid", default=None)
POLL_S = 0.05
MAX_KEY_LENGTH = 255


@attrs.frozen
class IdempotencySettings:
    ttl_ms: int = 24 * 3600 * 1000
    max_keys: int = 100_000
    wait_s: float = 10.0  # how long a duplicate waits for the first request's task


@attrs.frozen
class Claim:
    """This request won `key`: run the write under `reserving(claim)`, then `settle`."""

    key: str
    task_uid: int


@attrs.frozen
class Replay:
    """The key already names this task: answer with it, write nothing."""

    task: Task


def check_key(key: str) -> str:
    """A key is 1-255 visible ASCII characters; anything else is refused before any work."""
    if not 0 < len(key) <= MAX_KEY_LENGTH or not all(0x21 <= ord(c) <= 0x7E for c in key):
        raise MeiliError(
            "miroir_invalid_idempotency_key",
            f"The `Idempotency-Key` header must be 1 to {MAX_KEY_LENGTH} visible ASCII "
            "characters.",
        )
    return key


def request_fingerprint(
    method: str, path: str, query: bytes, content_type: str | None, body: bytes
) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query, (content_type or "").encode()):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    digest.update(body)
    return digest.hexdigest()


async def claim_or_replay(
    cluster: Cluster, key: str, fingerprint: str, settings: IdempotencySettings
) -> Claim | Replay:
    store = cluster.store
    deadline = trio.current_time() + settings.wait_s
    while True:
        now = cluster.now_ms()
        record = await store.get_idempotency_key(key, now)
        if record is None:
            uid = await store.allocate_task_uid()
            record = await store.claim_idempotency_key(
                key, fingerprint, uid, now, settings.ttl_ms, settings.max_keys
            )
            if record.task_uid == uid and hmac.compare_digest(record.body_hash, fingerprint):
                return Claim(key, uid)
        if not hmac.compare_digest(record.body_hash, fingerprint):
            raise MeiliError(
                "miroir_idempotency_key_reused",
                f"The idempotency key `{key}` was already used with another request; "
                "use a new key for a new request.",
            )
        task = await store.get_task(record.task_uid)
        if task is not None:
            return Replay(task)
        if trio.current_time() >= deadline:
            raise MeiliError(
                "miroir_idempotency_key_in_progress",
                f"A request with the idempotency key `{key}` is still being processed; "
                "retry later.",
            )
        await trio.sleep(POLL_S)


@contextlib.contextmanager
def reserving(claim: Claim) -> Iterator[None]:
    """Within this block, the first Miroir task recorded takes `claim.task_uid`."""
    token = _RESERVED_TASK_UID.set(claim.task_uid)
    try:
        with client_key(claim.key):  # node-write retries key their cache with it
            yield
    finally:
        _RESERVED_TASK_UID.reset(token)


async def reserve_task_uid(cluster: Cluster) -> int:
    """The uid the next task recorded in this context takes: the one an idempotency key
    reserved, else a fresh one from the store, reserved now (a write that needs its identity
    before its nodes are asked: `miroir.cluster.write_retry`)."""
    uid = _RESERVED_TASK_UID.get()
    if uid is None:
        uid = await cluster.store.allocate_task_uid()
        _RESERVED_TASK_UID.set(uid)
    return uid


def take_reserved_task_uid() -> int | None:
    """The reserved uid, once: the next task recorded in this context gets a fresh one."""
    uid = _RESERVED_TASK_UID.get()
    if uid is not None:
        _RESERVED_TASK_UID.set(None)
    return uid


async def settle(cluster: Cluster, claim: Claim, fingerprint: str, accepted_uid: int | None,
                 settings: IdempotencySettings) -> None:
    """Keep the key for an accepted write (its task is `accepted_uid`), give it back otherwise."""
    store = cluster.store
    if accepted_uid == claim.task_uid:
        return
    await store.release_idempotency_key(claim.key, claim.task_uid)
    if accepted_uid is not None:
        await store.claim_idempotency_key(
            claim.key, fingerprint, accepted_uid, cluster.now_ms(), settings.ttl_ms,
            settings.max_keys,
        )
