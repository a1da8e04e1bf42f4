"""Miroir tasks: the record, status aggregation over node tasks, the GET /tasks query, rendering.

Theory of operation. One client write becomes one Miroir task and one node task on every node
the write touched. The Miroir task's status is a pure function of its node tasks
(`aggregate_status`), applied every time a node task is seen to move (`apply_node_updates`):

    any acknowledged node task failed      -> failed (carrying the error of the first failed
                                              node by node id, so every proxy renders the same one)
    else any canceled                      -> canceled
    else all succeeded                     -> succeeded
    else all enqueued                      -> enqueued
    else (something started, not finished) -> processing

A node that never acknowledged the write (its `task_uid` is None) is left out: it holds no task
to wait for, and the write already counted its quorum without it. When no node acknowledged at
all there is nothing that could ever finish, so the task is failed with `miroir_no_quorum`.
Node statuses only move forward (enqueued -> processing -> a terminal status), so two pollers
racing with stale answers can never make a task go back.

Times are integer milliseconds since the Unix epoch (UTC), always passed in.

This module owns the task record, its storage dict form, how a part a node lost counts
(`with_lost_parts`), the Meilisearch JSON rendering and the parsing of the GET /tasks query
string. It must never do I/O, read a clock or import trio: the
stores and the proxy call it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, Generic, Protocol, TypeVar

import attrs

from miroir.core.errors import MeiliError, error_body
from miroir.core.routing import hide_shard_field
from miroir.core.task_params import (
    bad_value,
    invalid_date_detail,
    list_pieces,
    parse_bool,
    parse_filter_date,
    parse_u32,
    piece_name,
)

ENQUEUED = "enqueued"
PROCESSING = "processing"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELED = "canceled"
STATUSES: tuple[str, ...] = (ENQUEUED, PROCESSING, SUCCEEDED, FAILED, CANCELED)
FINISHED_STATUSES = frozenset({SUCCEEDED, FAILED, CANCELED})
# How far along a node status is; a node task never moves to a lower rank.
_STATUS_RANK = {ENQUEUED: 0, PROCESSING: 1, SUCCEEDED: 2, FAILED: 2, CANCELED: 2}

TASK_TYPES: tuple[str, ...] = (
    "documentAdditionOrUpdate", "documentEdition", "documentDeletion", "settingsUpdate",
    "indexCreation", "indexDeletion", "indexUpdate", "indexSwap", "taskCancelation",
    "taskDeletion", "dumpCreation", "snapshotCreation", "export", "upgradeDatabase",
    "indexCompaction", "networkTopologyChange", "dsrUpdate", "dsrClear",
)

DEFAULT_TASK_LIMIT = 20


# --------------------------------------------------------------------------------------------
# The record


@attrs.frozen
class NodeTask:
    """What one node did with its part of a write. `task_uid` None: the node never acknowledged."""

    task_uid: int | None
    status: str = ENQUEUED
    error: Mapping[str, Any] | None = None

    @property
    def acknowledged(self) -> bool:
        return self.task_uid is not None


@attrs.frozen
class Task:
    """A Miroir task: enough to render Meilisearch's task object, plus where it went.

    `missed_quorum` holds the (group, shard) pairs whose write missed quorum in that group.
    """

    uid: int
    type: str
    enqueued_at: int
    index_uid: str | None = None
    status: str = ENQUEUED
    details: Mapping[str, Any] | None = None
    error: Mapping[str, Any] | None = None
    canceled_by: int | None = None
    started_at: int | None = None
    finished_at: int | None = None
    node_tasks: Mapping[str, NodeTask] = attrs.field(factory=dict)
    missed_quorum: tuple[tuple[int, int], ...] = ()
    # The write's `?customMetadata=`, shown as the task's `customMetadata` (only when set).
    custom_metadata: str | None = None
    # The node-side index the task's index uid named when it was enqueued, when the two differ
    # (`miroir.core.index_layout`): node tasks and node errors speak of it, never clients.
    node_index: str | None = None
    # Meilisearch's task object for this task, kept by `render_task` on first use: a Task never
    # changes (a change is a new Task, and attrs.evolve starts it without one), while listings
    # render the same tasks again and again. Not part of equality or of the stored record.
    _rendered: dict[str, Any] | None = attrs.field(default=None, init=False, eq=False, repr=False)

    @property
    def degraded_groups(self) -> tuple[int, ...]:
        return tuple(sorted({group for group, _ in self.missed_quorum}))

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_STATUSES


def task_to_record(task: Task) -> dict[str, Any]:
    """The storage form of a task: plain JSON types, stable keys. Inverse of task_from_record."""
    return {
        "uid": task.uid,
        "type": task.type,
        "indexUid": task.index_uid,
        "status": task.status,
        "details": None if task.details is None else dict(task.details),
        "error": None if task.error is None else dict(task.error),
        "canceledBy": task.canceled_by,
        "enqueuedAt": task.enqueued_at,
        "startedAt": task.started_at,
        "finishedAt": task.finished_at,
        "nodeTasks": {
            node: {"taskUid": nt.task_uid, "status": nt.status,
                   "error": None if nt.error is None else dict(nt.error)}
            for node, nt in task.node_tasks.items()
        },
        "missedQuorum": [[group, shard] for group, shard in task.missed_quorum],
        "customMetadata": task.custom_metadata,
        "nodeIndex": task.node_index,
    }


def task_from_record(record: Mapping[str, Any]) -> Task:
    return Task(
        uid=record["uid"],
        type=record["type"],
        index_uid=record["indexUid"],
        status=record["status"],
        details=record["details"],
        error=record["error"],
        canceled_by=record["canceledBy"],
        enqueued_at=record["enqueuedAt"],
        started_at=record["startedAt"],
        finished_at=record["finishedAt"],
        node_tasks={
            node: NodeTask(nt["taskUid"], nt["status"], nt["error"])
            for node, nt in record["nodeTasks"].items()
        },
        missed_quorum=tuple((group, shard) for group, shard in record["missedQuorum"]),
        # Records stored before custom metadata existed have no such key.
        custom_metadata=record.get("customMetadata"),
        node_index=record.get("nodeIndex"),  # absent before index layouts existed
    )


# --------------------------------------------------------------------------------------------
# Status aggregation


def aggregate_status(
    node_tasks: Mapping[str, NodeTask],
) -> tuple[str, Mapping[str, Any] | None]:
    """The Miroir status and error implied by the node tasks (see the module docstring)."""
    acknowledged = {node: nt for node, nt in node_tasks.items() if nt.acknowledged}
    if not acknowledged:
        return FAILED, error_body(
            "miroir_no_quorum", "No node acknowledged this write, so it can never complete."
        )
    statuses = {nt.status for nt in acknowledged.values()}
    if FAILED in statuses:
        first_failed = min(node for node, nt in acknowledged.items() if nt.status == FAILED)
        error = acknowledged[first_failed].error
        if error is None:
            error = error_body("miroir_node_error", f"Node `{first_failed}` failed this task.")
        return FAILED, error
    if CANCELED in statuses:
        return CANCELED, None
    if statuses == {SUCCEEDED}:
        return SUCCEEDED, None
    if statuses == {ENQUEUED}:
        return ENQUEUED, None
    return PROCESSING, None


def merge_node_task(current: NodeTask | None, update: NodeTask) -> NodeTask:
    """The newer of two observations of one node task: statuses never move backwards."""
    if current is None or not current.acknowledged:
        return update
    if not update.acknowledged:
        return current
    if _STATUS_RANK[update.status] > _STATUS_RANK[current.status]:
        return update
    return current


def apply_node_updates(task: Task, updates: Mapping[str, NodeTask], now: int) -> Task:
    """`task` after observing `updates`, with status, error and times recomputed at `now`.

    startedAt is set the first time the task leaves `enqueued`; finishedAt the first time it
    reaches a finished status. A finished task keeps its status: later node answers are recorded
    but do not reopen it (a canceled task stays canceled even if a node later reports success).
    """
    for status in (nt.status for nt in updates.values()):
        if status not in _STATUS_RANK:
            raise ValueError(f"unknown node task status {status!r}")
    node_tasks = dict(task.node_tasks)
    for node, update in updates.items():
        node_tasks[node] = merge_node_task(node_tasks.get(node), update)
    if task.is_finished:
        return attrs.evolve(task, node_tasks=node_tasks)
    status, error = aggregate_status(node_tasks)
    started_at = task.started_at
    if status != ENQUEUED and started_at is None:
        started_at = now
    finished_at = task.finished_at
    if status in FINISHED_STATUSES and finished_at is None:
        finished_at = now
    return attrs.evolve(
        task, node_tasks=node_tasks, status=status, error=error,
        started_at=started_at, finished_at=finished_at,
    )


# --------------------------------------------------------------------------------------------
# Node tasks a node no longer knows
#
# A node that restarts with its state lost answers 404 task_not_found for the task uid it gave
# us, or, once it has taken new writes, that uid names a task of another index. That part will
# never finish, so it is made final. (A reused uid that names a task of the same index is not
# told apart: that part then ends as the other task did.) How it counts follows the rule for a
# node that never acknowledged ("it holds no task to wait for, and the write already counted its
# quorum without it"): when every shard the node owns has another owner that acknowledged the
# same task and did not lose it, the lost part is left out of the aggregate (recorded with
# `task_uid` None, status failed and a `miroir_node_task_lost` error, so operators see it in the
# task's nodeTasks): the write is durable elsewhere, and the repair worker copies it back onto
# the node. Otherwise the part stays acknowledged and failed with that error, and the client's
# task fails: some shard's only copies of the write are gone.


def lost_node_task(node: str, node_uid: int | None) -> dict[str, str]:
    """The error a lost node task is recorded with."""
    return error_body(
        "miroir_node_task_lost",
        f"Node `{node}` no longer knows its task `{node_uid}` for this write (it restarted "
        "with its state lost).",
    )


def with_lost_parts(
    task: Task,
    lost: Sequence[str],
    shards_of: Callable[[str], Sequence[int]],
    owners_of: Callable[[int], Sequence[tuple[int, str]]],
) -> Task:
    """`task` with the part of each node of `lost` made final (see above). `shards_of(node)` and
    `owners_of(shard)` (as (group, node)) describe the placement the write was made under."""
    node_tasks = dict(task.node_tasks)
    for node in sorted(lost):
        part = node_tasks.get(node)
        if part is None or part.task_uid is None or part.status in FINISHED_STATUSES:
            continue
        error = lost_node_task(node, part.task_uid)

        def kept_elsewhere(shard: int) -> bool:
            return any(
                owner not in lost and (other := node_tasks.get(owner)) is not None
                and other.acknowledged and other.status != FAILED
                for _, owner in owners_of(shard)
            )

        covered = all(kept_elsewhere(shard) for shard in shards_of(node))
        node_tasks[node] = NodeTask(None if covered else part.task_uid, FAILED, error)
    if not any(nt.acknowledged for nt in node_tasks.values()) and lost:
        # Every acknowledged part was lost and left out: aggregation would call it "no quorum".
        first = min(lost)
        node_tasks[first] = NodeTask(task.node_tasks[first].task_uid, FAILED,
                                     lost_node_task(first, task.node_tasks[first].task_uid))
    return attrs.evolve(task, node_tasks=node_tasks)


# The task types whose node tasks run after the client was answered and whose end changes what
# an index is (exists, primary key, uid): the index catalog is invalidated again when one
# finishes, since a process may have re-read the index from a node that had not applied it yet.
_INDEX_CHANGING_TYPES = frozenset({"indexDeletion", "indexUpdate"})


def indexes_changed_by(task: Task) -> tuple[str, ...]:
    """The index uids a finished task of an index-changing type changed (a rename: both)."""
    if task.type not in _INDEX_CHANGING_TYPES or task.index_uid is None:
        return ()
    renamed = (task.details or {}).get("newIndexUid")
    if isinstance(renamed, str) and renamed != task.index_uid:
        return (task.index_uid, renamed)
    return (task.index_uid,)


# --------------------------------------------------------------------------------------------
# Rendering to Meilisearch's JSON shape


def format_timestamp(ms: int) -> str:
    """RFC 3339 in UTC with a `Z` and always three fraction digits.

    Meilisearch trims trailing zeros and drops the fraction on a whole second; the official
    Python SDK (0.43) cannot parse a timestamp without a fraction, and at millisecond precision
    one task in a thousand lands on a whole second, so Miroir always prints the milliseconds.
    """
    moment = _UNIX_EPOCH + timedelta(milliseconds=ms)
    if 1000 <= moment.year:  # isoformat is a third cheaper than strftime (task listings)
        return moment.isoformat(timespec="milliseconds")[:-6] + "Z"  # drops "+00:00"
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def format_duration(ms: int | None) -> str | None:
    """ISO 8601 duration as Meilisearch prints it: `P{d}D` then `T{s}S`, never hours or minutes."""
    if ms is None or ms < 0:
        return None
    days, rest = divmod(ms, 86_400_000)
    text = "P" + (f"{days}D" if days else "")
    if rest or not days:
        seconds, millis = divmod(rest, 1000)
        text += f"T{seconds}.{millis:03d}S" if millis else f"T{seconds}S"
    return text


def task_object(
    *,
    uid: int,
    batch_uid: int | None,
    index_uid: str | None,
    status: str,
    type: str,
    canceled_by: int | None,
    details: Mapping[str, Any] | None,
    error: Mapping[str, Any] | None,
    duration: str | None,
    enqueued_at: str,
    started_at: str | None,
    finished_at: str | None,
    custom_metadata: str | None = None,
) -> dict[str, Any]:
    """Meilisearch's full task object, fields in its order, from values already formatted.

    Shared with the devnode, whose times have another precision. `details` is left out when
    absent (and copied when present); `error` is used as given; `customMetadata` is shown only
    when set (Meilisearch's `skip_serializing_if = "Option::is_none"`).
    """
    body: dict[str, Any] = {
        "uid": uid,
        "batchUid": batch_uid,
        "indexUid": index_uid,
        "status": status,
        "type": type,
        "canceledBy": canceled_by,
    }
    if details is not None:
        body["details"] = dict(details)
    body["error"] = error
    body["duration"] = duration
    body["enqueuedAt"] = enqueued_at
    body["startedAt"] = started_at
    body["finishedAt"] = finished_at
    if custom_metadata is not None:
        body["customMetadata"] = custom_metadata
    return body


def task_summary(
    *, uid: int, index_uid: str | None, status: str, type: str, enqueued_at: str,
    custom_metadata: str | None = None,
) -> dict[str, Any]:
    """Meilisearch's summarized task (the answer to a write), fields in its order."""
    summary = {
        "taskUid": uid,
        "indexUid": index_uid,
        "status": status,
        "type": type,
        "enqueuedAt": enqueued_at,
    }
    if custom_metadata is not None:
        summary["customMetadata"] = custom_metadata
    return summary


def render_task(task: Task) -> dict[str, Any]:
    """Meilisearch's full task object (GET /tasks/{uid}) for a Miroir task.

    Miroir has no batches, so `batchUid` is always null. Rendered once per Task object (see
    `Task._rendered`); each call returns a new top-level dict whose nested `details` and
    `error` are shared with the cache, so they are for reading (serializing) only.
    """
    rendered = task._rendered
    if rendered is None:
        rendered = _render_task(task)
        object.__setattr__(task, "_rendered", rendered)
    return dict(rendered)


def _render_task(task: Task) -> dict[str, Any]:
    duration = None
    if task.started_at is not None and task.finished_at is not None:
        duration = task.finished_at - task.started_at
    return task_object(
        uid=task.uid,
        batch_uid=None,
        index_uid=task.index_uid,
        status=task.status,
        type=task.type,
        canceled_by=task.canceled_by,
        details=task.details,
        error=None if task.error is None else _client_error(task.error),
        duration=format_duration(duration),
        enqueued_at=format_timestamp(task.enqueued_at),
        started_at=None if task.started_at is None else format_timestamp(task.started_at),
        finished_at=None if task.finished_at is None else format_timestamp(task.finished_at),
        custom_metadata=task.custom_metadata,
    )


def _client_error(error: Mapping[str, Any]) -> dict[str, Any]:
    # A node's error may name Miroir's `_miroir_shard` (e.g. a delete by filter on an attribute
    # that is not filterable); clients never see it.
    shown = dict(error)
    if isinstance(shown.get("message"), str):
        shown["message"] = hide_shard_field(shown["message"])
    return shown


def render_task_summary(task: Task) -> dict[str, Any]:
    """The summarized task every write answers with."""
    return task_summary(
        uid=task.uid, index_uid=task.index_uid, status=task.status, type=task.type,
        enqueued_at=format_timestamp(task.enqueued_at), custom_metadata=task.custom_metadata,
    )


def render_miroir_fields(task: Task) -> dict[str, Any]:
    """Miroir's own view of a task (node tasks, missed quorum), for operators, not for SDKs."""
    return {
        "nodeTasks": task_to_record(task)["nodeTasks"],
        "missedQuorum": [{"group": g, "shard": s} for g, s in task.missed_quorum],
        "degradedGroups": list(task.degraded_groups),
    }


# --------------------------------------------------------------------------------------------
# The GET /tasks query


class ValueFilters(Protocol):
    """The filters on one task value each; None means "no filter"."""

    @property
    def uids(self) -> frozenset[int] | None: ...

    @property
    def statuses(self) -> frozenset[str] | None: ...

    @property
    def types(self) -> frozenset[str] | None: ...

    @property
    def index_uids(self) -> frozenset[str] | None: ...

    @property
    def canceled_by(self) -> frozenset[int] | None: ...


class TaskValues(Protocol):
    """What those filters look at: a Miroir task here, the devnode's task record there."""

    @property
    def uid(self) -> int: ...

    @property
    def status(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def index_uid(self) -> str | None: ...

    @property
    def canceled_by(self) -> int | None: ...


def matches_value_filters(filters: ValueFilters, task: TaskValues) -> bool:
    """Whether `task` passes the uids, statuses, types, indexUids and canceledBy filters.

    Batches and dates are left to the caller: their meaning and time type differ per side.
    """
    return (
        (filters.uids is None or task.uid in filters.uids)
        and (filters.statuses is None or task.status in filters.statuses)
        and (filters.types is None or task.type in filters.types)
        and (filters.index_uids is None or task.index_uid in filters.index_uids)
        and (filters.canceled_by is None or task.canceled_by in filters.canceled_by)
    )


@attrs.frozen
class TaskQuery:
    """A parsed task filter. None means "no filter"; date bounds are exclusive, in nanoseconds.

    Date bounds keep the query's own precision (nanoseconds) so a bound like
    `...T00:00:00.0005Z` compares exactly against millisecond task times.
    """

    uids: frozenset[int] | None = None
    batch_uids: frozenset[int] | None = None
    statuses: frozenset[str] | None = None
    types: frozenset[str] | None = None
    index_uids: frozenset[str] | None = None
    canceled_by: frozenset[int] | None = None
    after_enqueued_at: int | None = None
    before_enqueued_at: int | None = None
    after_started_at: int | None = None
    before_started_at: int | None = None
    after_finished_at: int | None = None
    before_finished_at: int | None = None
    limit: int = DEFAULT_TASK_LIMIT
    from_uid: int | None = None
    reverse: bool = False

    def matches(self, task: Task) -> bool:
        """Whether `task` passes every filter (ignores limit, from and reverse)."""
        if self.batch_uids is not None:
            return False  # Miroir tasks are never batched, so no batch uid can match.
        if not matches_value_filters(self, task):
            return False
        if not self.has_time_bounds:
            return True  # the common case, without building the bounds per task
        for moment, after, before in self.time_bounds(task):
            if after is None and before is None:
                continue
            if moment is None:
                return False
            if after is not None and not moment > after:
                return False
            if before is not None and not moment < before:
                return False
        return True

    @property
    def has_time_bounds(self) -> bool:
        return not (
            self.after_enqueued_at is None and self.before_enqueued_at is None
            and self.after_started_at is None and self.before_started_at is None
            and self.after_finished_at is None and self.before_finished_at is None
        )

    def time_bounds(self, task: Task) -> Iterable[tuple[int | None, int | None, int | None]]:
        """(task time in ms, exclusive lower bound in ms, exclusive upper bound in ms) per date."""
        yield task.enqueued_at, *self.bounds_ms("enqueued")
        yield task.started_at, *self.bounds_ms("started")
        yield task.finished_at, *self.bounds_ms("finished")

    def bounds_ms(self, which: str) -> tuple[int | None, int | None]:
        """Exclusive millisecond bounds equivalent to the nanosecond ones for integer-ms times.

        t_ms*1e6 > after_ns  <=>  t_ms > floor(after_ns / 1e6);
        t_ms*1e6 < before_ns <=>  t_ms < ceil(before_ns / 1e6).
        """
        after = getattr(self, f"after_{which}_at")
        before = getattr(self, f"before_{which}_at")
        return (
            None if after is None else after // 1_000_000,
            None if before is None else -((-before) // 1_000_000),
        )


class Numbered(Protocol):
    """Anything listed by uid: a Miroir task here, the devnode's own task record there."""

    @property
    def uid(self) -> int: ...


class PageRequest(Protocol):
    """The paging part of a task query (this module's TaskQuery, or the devnode's)."""

    @property
    def limit(self) -> int: ...

    @property
    def from_uid(self) -> int | None: ...

    @property
    def reverse(self) -> bool: ...


Listed = TypeVar("Listed", bound=Numbered)


@attrs.frozen
class TaskPage(Generic[Listed]):
    """One page of GET /tasks: `from_` is the first uid shown, `next` the uid of the next page."""

    results: tuple[Listed, ...]
    total: int
    limit: int
    from_: int | None
    next: int | None


def render_task_page(page: TaskPage[Task]) -> dict[str, Any]:
    return {
        "results": [render_task(task) for task in page.results],
        "total": page.total,
        "limit": page.limit,
        "from": page.from_,
        "next": page.next,
    }


def page_after_cursor(query: PageRequest, uid: int) -> bool:
    """Whether `uid` is at or past the `from` cursor in the query's direction."""
    if query.from_uid is None:
        return True
    return uid >= query.from_uid if query.reverse else uid <= query.from_uid


_UID = attrgetter("uid")


def select_page(matching: Iterable[Listed], query: PageRequest) -> TaskPage[Listed]:
    """The page of `matching` (tasks that already passed `query.matches`) the query asks for.

    Order is uid descending (newest first), ascending with `reverse`. `total` ignores from and
    limit. Like Meilisearch, one task beyond the limit is looked at to know `next`.
    """
    ordered = sorted(matching, key=_UID, reverse=not query.reverse)
    return select_page_in_order(ordered, query, total=len(ordered))


def select_page_in_order(
    ordered: Iterable[Listed], query: PageRequest, *, total: int | None = None
) -> TaskPage[Listed]:
    """`select_page` for tasks that are already in display order (uid descending; ascending
    with `reverse`), so nothing is sorted.

    With `total` given (the caller knows how many tasks match, e.g. when there is no filter),
    it stops as soon as the window is full: a page then costs the tasks before the cursor plus
    limit+1, however long the task list is. Without it, every task is counted.
    """
    limit = query.limit
    window: list[Listed] = []
    counted = 0
    for task in ordered:
        counted += 1
        if len(window) <= limit and page_after_cursor(query, task.uid):
            window.append(task)
            if total is not None and len(window) > limit:
                break
    return page_from_window(window, total=counted if total is None else total, query=query)


def page_from_window(
    window: Sequence[Listed], total: int, query: PageRequest
) -> TaskPage[Listed]:
    """Build the page from up to limit+1 tasks in display order, starting at the cursor."""
    results = tuple(window[: query.limit])
    next_uid = window[query.limit].uid if len(window) > query.limit else None
    from_uid = results[0].uid if results else None
    return TaskPage(results=results, total=total, limit=query.limit, from_=from_uid, next=next_uid)


_LIST_PARAMS = {
    "uids": "uids", "batchUids": "batch_uids", "canceledBy": "canceled_by",
    "statuses": "statuses", "types": "types", "indexUids": "index_uids",
}
_DATE_PARAMS = {
    "afterEnqueuedAt": "after_enqueued_at", "beforeEnqueuedAt": "before_enqueued_at",
    "afterStartedAt": "after_started_at", "beforeStartedAt": "before_started_at",
    "afterFinishedAt": "after_finished_at", "beforeFinishedAt": "before_finished_at",
}
_DATE_PARAM_ORDER = (
    "afterEnqueuedAt", "beforeEnqueuedAt", "afterStartedAt", "beforeStartedAt",
    "afterFinishedAt", "beforeFinishedAt",
)
# The parameters each route takes, in the order Meilisearch's error lists them (the field order
# of its TasksFilterQuery and TaskDeletionOrCancelationQuery, which differ on batchUids).
_LIST_TASKS_PARAMS = (
    "limit", "from", "reverse", "batchUids", "uids", "canceledBy", "types", "statuses",
    "indexUids", *_DATE_PARAM_ORDER,
)
_CANCEL_OR_DELETE_PARAMS = (
    "uids", "batchUids", "canceledBy", "types", "statuses", "indexUids", *_DATE_PARAM_ORDER,
)
# Meilisearch's error code for a bad value of each GET /tasks parameter.
TASK_PARAM_ERROR_CODES = {
    "limit": "invalid_task_limit", "from": "invalid_task_from", "reverse": "invalid_task_reverse",
    "uids": "invalid_task_uids", "batchUids": "invalid_batch_uids",
    "canceledBy": "invalid_task_canceled_by", "statuses": "invalid_task_statuses",
    "types": "invalid_task_types", "indexUids": "invalid_index_uid",
    "afterEnqueuedAt": "invalid_task_after_enqueued_at",
    "beforeEnqueuedAt": "invalid_task_before_enqueued_at",
    "afterStartedAt": "invalid_task_after_started_at",
    "beforeStartedAt": "invalid_task_before_started_at",
    "afterFinishedAt": "invalid_task_after_finished_at",
    "beforeFinishedAt": "invalid_task_before_finished_at",
}
_INDEX_UID = re.compile(r"[A-Za-z0-9_-]{1,400}", re.ASCII)


# The filters Meilisearch's missing_task_filters message names, in its order.
_NAMED_TASK_FILTERS = (
    "uids", "indexUids", "statuses", "types", "canceledBy", "beforeEnqueuedAt",
    "afterEnqueuedAt", "beforeStartedAt", "afterStartedAt", "beforeFinishedAt", "afterFinishedAt",
)


def missing_task_filters_error(operation: str) -> MeiliError:
    """Meilisearch's error for POST /tasks/cancel (`cancel`) or DELETE /tasks (`delete`)
    sent with no query parameter at all."""
    names = ", ".join(f"`{p}`" for p in _NAMED_TASK_FILTERS)
    return MeiliError(
        "missing_task_filters",
        f"Query parameters to filter the tasks to {operation} are missing. "
        f"Available query parameters are: {names}.",
    )


def last_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """One value per parameter name, the last one sent (as Meilisearch reads a repeated one),
    in the order the names first appear."""
    return dict(pairs)


def parse_task_query(params: Mapping[str, str], *, operation: str | None = None) -> TaskQuery:
    """Parse GET /tasks, or with `operation` ("cancel" / "delete") POST /tasks/cancel and
    DELETE /tasks. The one parser of these routes: the proxy and the devnode both call it.

    `params` holds one raw (URL-decoded, untrimmed) value per name (`last_values`). Raises
    MeiliError with Meilisearch's code: `bad_request` for an unknown parameter, the parameter's
    own `invalid_*` code for a bad value (the first bad parameter in query order), and
    `missing_task_filters` when cancel/delete has no query parameter at all (Meilisearch counts
    parameters sent, so `statuses=*` is a filter that matches everything, not a missing one).
    Value rules: miroir.core.task_params.
    """
    allowed = _LIST_TASKS_PARAMS if operation is None else _CANCEL_OR_DELETE_PARAMS
    fields: dict[str, Any] = {}
    for name, raw in params.items():
        if name not in allowed:
            expected = ", ".join(f"`{p}`" for p in allowed)
            raise MeiliError("bad_request", f"Unknown parameter `{name}`: expected one of {expected}")
        code = TASK_PARAM_ERROR_CODES[name]
        if name == "limit":
            fields["limit"] = parse_u32(code, name, raw)
        elif name == "from":
            fields["from_uid"] = parse_u32(code, name, raw)
        elif name == "reverse":
            fields["reverse"] = parse_bool(code, name, raw)
        elif name in _LIST_PARAMS:
            fields[_LIST_PARAMS[name]] = _parse_list(name, raw)
        else:
            fields[_DATE_PARAMS[name]] = _parse_date(name, raw)
    if operation is not None and not params:
        raise missing_task_filters_error(operation)
    return TaskQuery(**fields)


def _parse_list(name: str, raw: str) -> frozenset[Any] | None:
    pieces = list_pieces(raw)
    values = set()
    star = False
    for index, piece in enumerate(pieces):
        if piece == "*":
            star = True  # still checks the other pieces, as Meilisearch does
        else:
            values.add(_parse_piece(name, piece, piece_name(name, index, len(pieces))))
    return None if star else frozenset(values)


def _parse_piece(name: str, piece: str, where: str) -> Any:
    code = TASK_PARAM_ERROR_CODES[name]
    if name == "statuses":
        return _parse_name(code, where, piece, STATUSES, "task status. Available statuses")
    if name == "types":
        return _parse_name(code, where, piece, TASK_TYPES, "task type. Available types")
    if name == "indexUids":
        if not _INDEX_UID.fullmatch(piece):
            # Meilisearch's message says 512 bytes; its check is 400.
            raise bad_value(
                code, where,
                f"`{piece}` is not a valid index uid. Index uid can be an integer or a string "
                "containing only alphanumeric characters, hyphens (-) and underscores (_), and "
                "can not be more than 512 bytes.",
            )
        return piece
    return parse_u32(code, where, piece)  # uids, batchUids, canceledBy


def _parse_name(code: str, where: str, piece: str, names: Sequence[str], what: str) -> str:
    """A status or type, matched ignoring ASCII case (Rust's eq_ignore_ascii_case), returned as
    spelled in `names`."""
    if piece.isascii():
        for name in names:
            if name.lower() == piece.lower():
                return name
    listed = ", ".join(f"`{n}`" for n in names)
    raise bad_value(code, where, f"`{piece}` is not a valid {what} are {listed}.")


def _parse_date(name: str, raw: str) -> int | None:
    """Nanoseconds since the epoch, None for `*` (see miroir.core.task_params)."""
    if raw == "*":
        return None
    nanos = parse_filter_date(raw, after=name.startswith("after"))
    if nanos is None:
        raise bad_value(TASK_PARAM_ERROR_CODES[name], name, invalid_date_detail(raw))
    return nanos
