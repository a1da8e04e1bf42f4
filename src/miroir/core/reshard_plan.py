"""A reshard's pure decisions: the request rule, the shadow's name, the states and what each
allows, where each document of the old index lands, and the progress a client sees.

Theory of operation. A reshard (`miroir.cluster.reshard` drives it) moves an index's documents
from its node-side index with S shards into a shadow node-side index with S2 shards while the
index keeps taking writes, then flips the client's uid to the shadow. Its record moves through
`waiting -> copying -> verifying -> grace -> done`; `failed` and `rolledBack` end it early.
- `waiting`: the shadow exists on every node and every write is mirrored to it; the engine waits
  until every live process routes with the mirror.
- `copying`: every old shard is paged through and written into the shadow re-hashed, then the
  two are compared by content digest and the differences copied again (`core.shard_copy`).
- `verifying`: the mirror is required (a write is acknowledged only if the shadow took it too);
  once every process requires it, one more comparison is final: counts, every document's
  digest and the settings equal.
- `grace`: the uid names the shadow; writes are mirrored back to the old index (required), so a
  rollback (flip back) loses nothing. Then the mirror is dropped and the old index deleted.
A rollback before the flip abandons the reshard (the shadow is deleted, the uid never moved);
during the grace period it flips back; after it (`done`, or once the old index is being
deleted, `finishing`) it is refused.

Must never: do I/O or read a clock (times are passed in, ms since the Unix epoch).
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from miroir.core.errors import MeiliError
from miroir.core.reshard_window import Window, allowed, next_opening

MAX_SHARDS = 4096
ACTIVE_STATES = ("waiting", "copying", "verifying", "grace")
FINAL_STATES = ("done", "failed", "rolledBack")
STATES = ACTIVE_STATES + FINAL_STATES
# What the engine may move a record to from each state (rollback and failure included).
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "waiting": frozenset({"copying", "failed", "rolledBack"}),
    "copying": frozenset({"verifying", "failed", "rolledBack"}),
    "verifying": frozenset({"copying", "grace", "failed", "rolledBack"}),
    "grace": frozenset({"done", "rolledBack"}),
    "done": frozenset(),
    "failed": frozenset(),
    "rolledBack": frozenset(),
}
# The fields `GET /_miroir/reshards/{id}` shows (the record keeps a few more for the engine).
SHOWN = ("id", "index", "fromShards", "toShards", "state", "documentsCopied", "documentsTotal",
         "documentsRecopied",
         "documentsPerSecond", "etaSeconds", "errors", "startedAtMs", "finishedAtMs")


def can_move(before: str, after: str) -> bool:
    return before == after or after in TRANSITIONS[before]


def read_request(body: Any, current_shards: int) -> tuple[int, bool]:
    """The target shard count and `force` of a `POST .../reshard` body; MeiliError
    `miroir_invalid_reshard` (400) saying what is wrong otherwise."""
    if not isinstance(body, Mapping):
        raise MeiliError("miroir_invalid_reshard", "The body must be a JSON object "
                         "`{\"shards\": <count>, \"force\": <bool>}`.")
    unknown = sorted(set(body) - {"shards", "force"})
    if unknown:
        raise MeiliError("miroir_invalid_reshard", f"Unknown field `{unknown[0]}`: expected "
                         "`shards` and optionally `force`.")
    shards, force = body.get("shards"), body.get("force", False)
    if not isinstance(shards, int) or isinstance(shards, bool) or not 1 <= shards <= MAX_SHARDS:
        raise MeiliError("miroir_invalid_reshard", f"`shards` must be an integer from 1 to "
                         f"{MAX_SHARDS}, got `{shards!r}`.")
    if not isinstance(force, bool):
        raise MeiliError("miroir_invalid_reshard", f"`force` must be a boolean, got `{force!r}`.")
    if shards == current_shards:
        raise MeiliError("miroir_invalid_reshard",
                         f"The index already has {current_shards} shards.")
    return shards, force


def window_refusal(now_ms: int, windows: Sequence[Window]) -> str | None:
    """Why a reshard may not start at `now_ms` (naming the next window), or None."""
    if allowed(now_ms, windows):
        return None
    opens = datetime.datetime.fromtimestamp(next_opening(now_ms, windows) / 1000,
                                            tz=datetime.UTC)
    listed = ", ".join(f"`{w}`" for w in windows)
    return (f"Resharding is allowed only inside a window ({listed}); the next window opens at "
            f"{opens.strftime('%Y-%m-%dT%H:%M:%SZ')} (resharding.allowed_windows). Send "
            "`force: true` to start now.")


def shadow_name(node_index: str, shards: int, taken: Iterable[str]) -> str:
    """`<node_index>--s<shards>-<n>`, the smallest n >= 1 not in `taken` (the layouts' names and
    the node-side indexes the nodes hold)."""
    taken = frozenset(taken)
    n = 1
    while f"{node_index}--s{shards}-{n}" in taken:
        n += 1
    return f"{node_index}--s{shards}-{n}"


def progress(record: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """The record as the routes show it: copy rate and ETA derived while copying."""
    rate = eta = None
    started = record.get("copyStartedAtMs")
    if started is not None and record.get("state") == "copying" and now_ms > started:
        copied = record.get("documentsCopied", 0)
        rate = copied * 1000 / (now_ms - started)
        total = record.get("documentsTotal") or 0
        if rate > 0:
            eta = max(0.0, (total - copied) / rate)
    shown = {key: record.get(key) for key in SHOWN}
    return {**shown, "errors": list(record.get("errors", ())), "documentsPerSecond": rate,
            "etaSeconds": eta}
