"""Task records, their JSON views, and the task filters of GET/DELETE /tasks and /tasks/cancel.

Owns the devnode's task record (datetime times, batches, customMetadata, the engine's private
payload), its JSON views and the parsing/matching of task query filters. What Meilisearch's
GET /tasks means on both sides comes from miroir.core.tasks: statuses and types, comma lists
with `*`, status/type name sets, the value filters (`matches_value_filters`), the field order
of the task object and summary (`task_object`, `task_summary`), and paging
(`select_page_in_order`, used by the engine).
It never applies a task: the engine decides when a task runs and what it does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from miroir.core.tasks import (
    STATUSES,
    TASK_PARAM_ERROR_CODES,
    TASK_TYPES,
    matches_value_filters,
    missing_task_filters_error,
    parse_name_set,
    split_task_list,
    task_object,
    task_summary,
)
from miroir.devnode import deserr
from miroir.devnode.timefmt import iso_duration, parse_filter_date, rfc3339
from miroir.devnode.uids import check_index_uid


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
        view = task_summary(
            uid=self.uid, index_uid=self.index_uid, status="enqueued", type=self.type,
            enqueued_at=rfc3339(self.enqueued_at),
        )
        if self.custom_metadata is not None:
            view["customMetadata"] = self.custom_metadata
        return view

    def view(self) -> dict[str, Any]:
        """GET /tasks/{uid}: the full task."""
        duration = None
        if self.started_at is not None and self.finished_at is not None:
            duration = iso_duration(self.finished_at - self.started_at)
        view = task_object(
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
        )
        if self.custom_metadata is not None:
            view["customMetadata"] = self.custom_metadata
        return view


_DATE_FILTERS = (
    ("beforeEnqueuedAt", "enqueued_at", False),
    ("afterEnqueuedAt", "enqueued_at", True),
    ("beforeStartedAt", "started_at", False),
    ("afterStartedAt", "started_at", True),
    ("beforeFinishedAt", "finished_at", False),
    ("afterFinishedAt", "finished_at", True),
)
_FILTER_PARAMS = (
    "batchUids",
    "uids",
    "canceledBy",
    "types",
    "statuses",
    "indexUids",
    *(name for name, _, _ in _DATE_FILTERS),
)
_PAGING_PARAMS = ("limit", "from", "reverse")


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


def _uid_set(code: str, name: str, text: str) -> frozenset[int] | None:
    items = split_task_list(text)
    if items is None:
        return None
    return frozenset(deserr.parse_query_usize(code, name, item) for item in items)


def parse_task_query(pairs: Iterable[tuple[str, str]], *, paging: bool) -> TaskQuery:
    """GET /tasks (paging=True) or DELETE /tasks and POST /tasks/cancel (paging=False)."""
    allowed = (_PAGING_PARAMS + _FILTER_PARAMS) if paging else _FILTER_PARAMS
    query = TaskQuery(TaskFilter())
    found = query.filter
    dates = []
    for name, text in pairs:
        if name not in allowed:
            raise deserr.unknown_parameter(name, allowed)
        if name == "limit":
            query.limit = deserr.parse_query_usize(TASK_PARAM_ERROR_CODES[name], name, text)
        elif name == "from":
            query.from_uid = deserr.parse_query_usize(TASK_PARAM_ERROR_CODES[name], name, text)
        elif name == "reverse":
            query.reverse = deserr.parse_query_bool(TASK_PARAM_ERROR_CODES[name], name, text)
        elif name == "uids":
            found.uids = _uid_set(TASK_PARAM_ERROR_CODES[name], name, text)
        elif name == "batchUids":
            found.batch_uids = _uid_set(TASK_PARAM_ERROR_CODES[name], name, text)
        elif name == "canceledBy":
            found.canceled_by = _uid_set(TASK_PARAM_ERROR_CODES[name], name, text)
        elif name == "statuses":
            found.statuses = parse_name_set(name, text, STATUSES, "status")
        elif name == "types":
            found.types = parse_name_set(name, text, TASK_TYPES, "type")
        elif name == "indexUids":
            items = split_task_list(text)
            if items is not None:
                for item in items:
                    check_index_uid(item)
                found.index_uids = frozenset(items)
        else:
            attribute, is_after = next((a, after) for n, a, after in _DATE_FILTERS if n == name)
            bound = parse_filter_date(text, is_after_bound=is_after)
            if bound is None:
                raise deserr.bad_parameter(
                    TASK_PARAM_ERROR_CODES[name],
                    name,
                    f"`{text}` is an invalid date-time. It should follow the YYYY-MM-DD or "
                    "RFC 3339 date-time format.",
                )
            dates.append((attribute, bound, is_after))
    found.dates = tuple(dates)
    return query


# The same error and wording as the proxy's (one place for the message).
missing_filters_error = missing_task_filters_error
