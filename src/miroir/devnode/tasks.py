"""Task records, their JSON views, and the task filters of GET/DELETE /tasks and /tasks/cancel.

Owns the devnode's task record (datetime times, batches, customMetadata, the engine's private
payload), its JSON views and the matching of task query filters. What Meilisearch's GET /tasks
means on both sides comes from miroir.core.tasks: the query parser itself (`parse_task_query`,
whose result this module only moves onto datetimes), the value filters
(`matches_value_filters`), the field order of the task object and summary (`task_object`,
`task_summary`), and paging (`select_page_in_order`, used by the engine).
It never applies a task: the engine decides when a task runs and what it does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from miroir.core.tasks import (
    last_values,
    matches_value_filters,
    task_object,
    task_summary,
)
from miroir.core.tasks import parse_task_query as parse_shared_task_query
from miroir.devnode.timefmt import iso_duration, rfc3339


@dataclass(eq=False)
class Task:
    uid: int
    index_uid: str | None
    type: str
    enqueued_at: datetime
    details: dict[str, Any] | None
    # What the task will do when it runs; private to the engine, never shown.
    payload: dict[str, Any] = field(default_factory=dict)
    status: str = "enqueued"
    batch_uid: int | None = None
    canceled_by: int | None = None
    error: dict[str, str] | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    custom_metadata: str | None = None

    def summary(self) -> dict[str, Any]:
        """The 202 body of the write that enqueued this task."""
        return task_summary(
            uid=self.uid, index_uid=self.index_uid, status="enqueued", type=self.type,
            enqueued_at=rfc3339(self.enqueued_at), custom_metadata=self.custom_metadata,
        )

    def view(self) -> dict[str, Any]:
        """GET /tasks/{uid}: the full task."""
        duration = None
        if self.started_at is not None and self.finished_at is not None:
            duration = iso_duration(self.finished_at - self.started_at)
        return task_object(
            uid=self.uid,
            batch_uid=self.batch_uid,
            index_uid=self.index_uid,
            status=self.status,
            type=self.type,
            canceled_by=self.canceled_by,
            details=self.details,
            error=self.error,
            duration=duration,
            enqueued_at=rfc3339(self.enqueued_at),
            started_at=rfc3339(self.started_at) if self.started_at else None,
            finished_at=rfc3339(self.finished_at) if self.finished_at else None,
            custom_metadata=self.custom_metadata,
        )


# (parameter's field in the shared query, attribute of Task, is an `after*` bound)
_DATE_FILTERS = (
    ("after_enqueued_at", "enqueued_at", True),
    ("before_enqueued_at", "enqueued_at", False),
    ("after_started_at", "started_at", True),
    ("before_started_at", "started_at", False),
    ("after_finished_at", "finished_at", True),
    ("before_finished_at", "finished_at", False),
)


@dataclass
class TaskFilter:
    uids: frozenset[int] | None = None
    batch_uids: frozenset[int] | None = None
    canceled_by: frozenset[int] | None = None
    statuses: frozenset[str] | None = None
    types: frozenset[str] | None = None
    index_uids: frozenset[str] | None = None
    # (attribute of Task, bound, is_after) for each date filter given.
    dates: tuple[tuple[str, datetime, bool], ...] = ()

    def is_empty(self) -> bool:
        return not self.dates and all(
            value is None
            for value in (
                self.uids,
                self.batch_uids,
                self.canceled_by,
                self.statuses,
                self.types,
                self.index_uids,
            )
        )

    def matches(self, task: Task) -> bool:
        if self.batch_uids is not None and task.batch_uid not in self.batch_uids:
            return False
        if not matches_value_filters(self, task):
            return False
        for attribute, bound, is_after in self.dates:
            instant = getattr(task, attribute)
            if instant is None:
                return False
            if (instant <= bound) if is_after else (instant >= bound):
                return False
        return True


@dataclass
class TaskQuery:
    filter: TaskFilter
    limit: int = 20
    from_uid: int | None = None
    reverse: bool = False


def parse_task_query(
    pairs: Iterable[tuple[str, str]], *, paging: bool, operation: str = "delete"
) -> TaskQuery:
    """GET /tasks (paging=True), or the filters of DELETE /tasks or POST /tasks/cancel
    (paging=False, `operation` "delete" or "cancel", which only words the missing-filters error).

    Parsing is miroir.core.tasks.parse_task_query, the proxy's own; this only moves its result
    onto the devnode's datetime-based filter.
    """
    shared = parse_shared_task_query(
        last_values(pairs), operation=None if paging else operation
    )
    dates = tuple(
        (attribute, _bound_instant(nanos, is_after), is_after)
        for field_name, attribute, is_after in _DATE_FILTERS
        if (nanos := getattr(shared, field_name)) is not None
    )
    task_filter = TaskFilter(
        uids=shared.uids,
        batch_uids=shared.batch_uids,
        canceled_by=shared.canceled_by,
        statuses=shared.statuses,
        types=shared.types,
        index_uids=shared.index_uids,
        dates=dates,
    )
    return TaskQuery(task_filter, shared.limit, shared.from_uid, shared.reverse)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_MICROS = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_MICROS = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


def _bound_instant(nanos: int, is_after: bool) -> datetime:
    """The exclusive bound as a datetime that compares the same against microsecond times.

    t_us*1000 > after_ns <=> t_us > floor(after_ns / 1000); t_us*1000 < before_ns <=>
    t_us < ceil(before_ns / 1000). A bound past datetime's range (a date filter may name any
    year from -9999 to 9999) is pulled to its end, where it still keeps or drops every task.
    """
    micros = nanos // 1000 if is_after else -(-nanos // 1000)
    micros = min(max(micros, _MIN_MICROS), _MAX_MICROS)
    return _EPOCH + timedelta(microseconds=micros)
