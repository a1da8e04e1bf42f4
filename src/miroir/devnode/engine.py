"""The devnode engine: in-memory indexes and one ordered task queue, with no I/O and no clock.

Owns every index of a node and the task queue that changes them. Writes only enqueue a task
(validated enough to answer 400 at once, as Meilisearch does) and return it; nothing changes
until `process` (or `start_next_task` + `finish_started_task`) applies tasks in order, so the
simulator decides when a node has applied a write. Task cancelations run first, then task
deletions, then everything else oldest first (Meilisearch's scheduler priorities). Time comes
from the injected `now`; the engine never reads a clock, never sleeps, never touches a socket.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from miroir.core.errors import MeiliError
from miroir.core.tasks import FINISHED_STATUSES, select_page_in_order
from miroir.devnode import settings as settings_mod
from miroir.devnode.apply import APPLY
from miroir.devnode.index import (
    IndexState,
    Searcher,
    SearcherFactory,
    document_not_found,
)
from miroir.devnode.tasks import Task, TaskFilter, TaskQuery
from miroir.devnode.timefmt import rfc3339
from miroir.meili.uids import check_index_uid

_UNSET: Any = object()
_MAX_TASK_UID = 2**32 - 1


def _default_searcher_factory(settings: dict[str, Any]) -> Searcher:
    try:
        from miroir.devnode.search import IndexSearcher  # the search engineer's package
    except ImportError:  # not landed yet: documents work, filters answer an error
        return _NoSearchYet()
    return IndexSearcher(settings)


class _NoSearchYet:
    """Stands in for IndexSearcher until `miroir.devnode.search` exists: filters are refused."""

    def update_settings(self, settings: dict[str, Any]) -> None:
        pass

    def upsert(self, internal_id: int, document: dict[str, Any]) -> None:
        pass

    def delete(self, internal_id: int) -> None:
        pass

    def clear(self) -> None:
        pass

    def filter_ids(self, _filter_expr: Any, *, error_code: str) -> list[int]:
        raise MeiliError(
            error_code, "Filtering needs miroir.devnode.search, which is not installed."
        )


def index_not_found(uid: str) -> MeiliError:
    return MeiliError("index_not_found", f"Index `{uid}` not found.")


class Engine:
    def __init__(
        self,
        now: Callable[[], datetime] | None = None,
        searcher_factory: SearcherFactory | None = None,
    ) -> None:
        self.now = now or (lambda: datetime.now(UTC))
        self.searcher_factory = searcher_factory or _default_searcher_factory
        self.indexes: dict[str, IndexState] = {}
        self.tasks: dict[int, Task] = {}  # uid order
        self._next_task_uid = 0
        self._next_batch_uid = 0
        self._started: Task | None = None
        # Enqueued task uids by priority: cancelations, then deletions, then the rest (FIFO);
        # a uid whose task was canceled or deleted meanwhile is skipped when popped.
        self._queues: tuple[deque[int], deque[int], deque[int]] = (deque(), deque(), deque())
        self.last_update: datetime | None = None

    # ---------------------------------------------------------------------------------- reads

    def get_index(self, uid: str) -> IndexState:
        check_index_uid(uid)
        index = self.indexes.get(uid)
        if index is None:
            raise index_not_found(uid)
        return index

    def list_indexes(self, offset: int = 0, limit: int = 20) -> dict[str, Any]:
        uids = sorted(self.indexes, key=str.encode)
        return {
            "results": [self.indexes[uid].view() for uid in uids[offset : offset + limit]],
            "offset": offset,
            "limit": limit,
            "total": len(uids),
        }

    def get_document(
        self,
        index_uid: str,
        doc_id: str,
        fields: list[str] | None = None,
        retrieve_vectors: bool = False,
    ) -> dict:
        index = self.get_index(index_uid)
        if doc_id not in index.documents:
            raise document_not_found(doc_id)
        return index.present(doc_id, fields, retrieve_vectors)

    def get_task(self, uid: int) -> Task:
        task = self.tasks.get(uid)
        if task is None:
            raise MeiliError("task_not_found", f"Task `{uid}` not found.")
        return task

    def list_tasks(self, query: TaskQuery) -> dict[str, Any]:
        """`{results, total, limit, from, next}`: newest first unless `reverse`.

        `self.tasks` is kept in uid order (uids only grow, and a deleted task is only removed),
        so the display order needs no sort; with no filter every task matches, the total is
        the queue's length, and a page looks at no more tasks than it shows (the repair
        worker's `GET /tasks?limit=1` on every sweep costs the same on a long queue)."""
        tasks = self.tasks.values()
        ordered = iter(tasks) if query.reverse else reversed(tasks)
        if query.filter.is_empty():
            page = select_page_in_order(ordered, query, total=len(self.tasks))
        else:
            page = select_page_in_order(filter(query.filter.matches, ordered), query)
        return {
            "results": [task.view() for task in page.results],
            "total": page.total,
            "limit": page.limit,
            "from": page.from_,
            "next": page.next,
        }

    def index_stats(self, uid: str) -> dict[str, Any]:
        return self.get_index(uid).stats(is_indexing=self._is_indexing(uid))

    def stats(self) -> dict[str, Any]:
        indexes = {uid: self.index_stats(uid) for uid in sorted(self.indexes, key=str.encode)}
        size = sum(stats["rawDocumentDbSize"] for stats in indexes.values())
        return {
            "databaseSize": size,
            "usedDatabaseSize": size,
            "lastUpdate": rfc3339(self.last_update) if self.last_update else None,
            "indexes": indexes,
        }

    def _is_indexing(self, uid: str) -> bool:
        return self._started is not None and self._started.index_uid == uid

    def has_pending_tasks(self) -> bool:
        return any(
            uid in self.tasks and self.tasks[uid].status == "enqueued"
            for queue in self._queues
            for uid in queue
        )

    # --------------------------------------------------------------------------------- writes

    def _enqueue(
        self,
        index_uid: str | None,
        kind: str,
        details: dict[str, Any] | None,
        payload: dict[str, Any],
        custom_metadata: str | None = None,
    ) -> Task:
        if self._next_task_uid > _MAX_TASK_UID:
            raise MeiliError("internal", "The task queue is full.")
        task = Task(
            uid=self._next_task_uid,
            index_uid=index_uid,
            type=kind,
            enqueued_at=self.now(),
            details=details,
            payload=payload,
            custom_metadata=custom_metadata,
        )
        self._next_task_uid += 1
        self.tasks[task.uid] = task
        self._queues[_PRIORITY.get(kind, 2)].append(task.uid)
        return task

    def create_index(self, uid: str, primary_key: str | None = None) -> Task:
        check_index_uid(uid)
        return self._enqueue(
            uid, "indexCreation", {"primaryKey": primary_key}, {"primaryKey": primary_key}
        )

    def update_index(self, uid: str, primary_key: Any = _UNSET, new_uid: str | None = None) -> Task:
        check_index_uid(uid)
        if new_uid is not None:
            check_index_uid(new_uid)
        details: dict[str, Any] = {"primaryKey": None if primary_key is _UNSET else primary_key}
        if new_uid is not None:
            details.update(oldIndexUid=uid, newIndexUid=new_uid)
        return self._enqueue(
            uid, "indexUpdate", details, {"primaryKey": primary_key, "newUid": new_uid}
        )

    def compact_index(self, uid: str) -> Task:
        """POST /indexes/{uid}/compact. Details stay empty until it runs (Meilisearch leaves
        out the sizes it does not know yet)."""
        check_index_uid(uid)
        return self._enqueue(uid, "indexCompaction", {}, {})

    def delete_index(self, uid: str) -> Task:
        check_index_uid(uid)
        return self._enqueue(uid, "indexDeletion", {"deletedDocuments": None}, {})

    def add_documents(
        self,
        uid: str,
        documents: list[dict[str, Any]],
        *,
        primary_key: str | None = None,
        replace: bool = True,
        custom_metadata: str | None = None,
        skip_creation: bool = False,
    ) -> Task:
        """POST (replace=True) or PUT (replace=False) /indexes/{uid}/documents; with
        `skip_creation`, documents whose id the index does not hold are left out."""
        check_index_uid(uid)
        details = {"receivedDocuments": len(documents), "indexedDocuments": None}
        payload = {"documents": documents, "primaryKey": primary_key, "replace": replace,
                   "skipCreation": skip_creation}
        return self._enqueue(uid, "documentAdditionOrUpdate", details, payload, custom_metadata)

    def delete_documents(
        self, uid: str, ids: list[Any], *, custom_metadata: str | None = None
    ) -> Task:
        """DELETE /documents/{id} and POST /documents/delete-batch (non-strings become strings)."""
        check_index_uid(uid)
        as_text = [value if isinstance(value, str) else _json_text(value) for value in ids]
        details = {"providedIds": len(as_text), "deletedDocuments": None, "originalFilter": None}
        return self._enqueue(uid, "documentDeletion", details, {"ids": as_text}, custom_metadata)

    def delete_documents_by_filter(
        self, uid: str, filter_expr: Any, *, custom_metadata: str | None = None
    ) -> Task:
        check_index_uid(uid)
        self._check_filter_syntax(filter_expr)
        details = {
            "providedIds": 0,
            "deletedDocuments": None,
            "originalFilter": _json_text(filter_expr),
        }
        return self._enqueue(uid, "documentDeletion", details, {"filter": filter_expr},
                             custom_metadata)

    def clear_documents(self, uid: str, *, custom_metadata: str | None = None) -> Task:
        check_index_uid(uid)
        return self._enqueue(uid, "documentDeletion", {"deletedDocuments": None}, {"clear": True},
                             custom_metadata)

    def update_settings(self, uid: str, patch: dict[str, Any]) -> Task:
        """`patch` as returned by settings.validate_patch / validate_setting (None = reset)."""
        check_index_uid(uid)
        return self._enqueue(uid, "settingsUpdate", dict(patch), {"patch": patch, "creates": True})

    def reset_settings(self, uid: str, keys: tuple[str, ...] = settings_mod.SETTINGS_KEYS) -> Task:
        check_index_uid(uid)
        patch = dict.fromkeys(keys)
        return self._enqueue(uid, "settingsUpdate", dict(patch), {"patch": patch, "creates": False})

    def swap_indexes(self, swaps: list[tuple[str, str, bool]]) -> Task:
        """POST /swap-indexes: each (a, b, rename) swaps a and b, or renames a to b."""
        seen: set[str] = set()
        for pair in swaps:
            for uid in pair[:2]:
                check_index_uid(uid)
                if uid in seen:
                    raise MeiliError(
                        "invalid_swap_duplicate_index_found",
                        "Indexes must be declared only once during a swap. "
                        f"`{uid}` was specified several times.",
                    )
                seen.add(uid)
        details = {"swaps": [{"indexes": [a, b], "rename": rename} for a, b, rename in swaps]}
        return self._enqueue(None, "indexSwap", details, {"swaps": list(swaps)})

    def cancel_tasks(self, task_filter: TaskFilter, original_filter: str) -> Task:
        matched = [t.uid for t in self.tasks.values() if task_filter.matches(t)]
        details = {
            "matchedTasks": len(matched),
            "canceledTasks": None,
            "originalFilter": original_filter,
        }
        return self._enqueue(None, "taskCancelation", details, {"uids": matched})

    def delete_tasks(self, task_filter: TaskFilter, original_filter: str) -> Task:
        matched = [t.uid for t in self.tasks.values() if task_filter.matches(t)]
        details = {
            "matchedTasks": len(matched),
            "deletedTasks": None,
            "originalFilter": original_filter,
        }
        return self._enqueue(None, "taskDeletion", details, {"uids": matched})

    def _check_filter_syntax(self, filter_expr: Any) -> None:
        """Meilisearch rejects a filter's syntax at once (400); non-filterable fails the task."""
        if filter_expr is None or filter_expr == "" or filter_expr == []:
            raise MeiliError("invalid_document_filter", "Sending an empty filter is forbidden.")
        if not isinstance(filter_expr, str | list):
            raise MeiliError(
                "invalid_document_filter",
                "Invalid syntax for the filter parameter: `expected String, Array, found: "
                f"{_json_text(filter_expr)}`.",
            )
        permissive = settings_mod.default_settings()
        permissive["filterableAttributes"] = ["*"]
        self.searcher_factory(permissive).filter_ids(
            filter_expr, error_code="invalid_document_filter"
        )

    # ----------------------------------------------------------------------------- processing

    def process(self, max_tasks: int | None = None) -> int:
        """Apply up to `max_tasks` enqueued tasks (all if None); returns how many ran."""
        count = 0
        while max_tasks is None or count < max_tasks:
            if self.start_next_task() is None:
                break
            self.finish_started_task()
            count += 1
        return count

    def start_next_task(self) -> Task | None:
        """Mark the next task `processing` (the app yields between this and finishing it)."""
        if self._started is not None:
            return self._started
        task = self._pop_enqueued()
        if task is None:
            return None
        task.status = "processing"
        task.started_at = self.now()
        task.batch_uid = self._next_batch_uid
        self._next_batch_uid += 1
        self._started = task
        return task

    def _pop_enqueued(self) -> Task | None:
        for queue in self._queues:
            while queue:
                task = self.tasks.get(queue.popleft())
                if task is not None and task.status == "enqueued":
                    return task
        return None

    def finish_started_task(self) -> Task:
        task = self._started
        assert task is not None, "finish_started_task without start_next_task"
        try:
            APPLY[task.type](self, task)
            task.status = "succeeded"
        except Exception as error:  # noqa: BLE001 - a bug must fail its task, not the node
            if not isinstance(error, MeiliError):
                # Meilisearch reports its own faults as `internal`; tests assert none occur.
                error = MeiliError("internal", f"{type(error).__name__}: {error}")
            task.status = "failed"
            task.error = error.body()
            if task.details:
                task.details = {
                    k: (0 if v is None and k not in _NULLABLE_DETAILS else v)
                    for k, v in task.details.items()
                }
        task.finished_at = self.now()
        task.payload = {}
        self._started = None
        self.last_update = task.finished_at
        return task

    # -- helpers shared with the apply functions ----------------------------------------------

    def existing_index(self, uid: str) -> IndexState:
        index = self.indexes.get(uid)
        if index is None:
            raise index_not_found(uid)
        return index

    def new_index(self, uid: str, primary_key: str | None, *, register: bool = True) -> IndexState:
        index = IndexState(uid, primary_key, self.now(), self.searcher_factory)
        if register:
            self.indexes[uid] = index
        return index

    def finished(self, uids: list[int]) -> list[Task]:
        return [
            self.tasks[uid]
            for uid in uids
            if uid in self.tasks and self.tasks[uid].status in FINISHED_STATUSES
        ]


# Scheduler priorities (Meilisearch runs task cancelations first, then task deletions).
_PRIORITY = {"taskCancelation": 0, "taskDeletion": 1}

# Details keys that stay null when a task fails (they are not counts).
_NULLABLE_DETAILS = frozenset(settings_mod.SETTINGS_KEYS) | {
    "primaryKey",
    "originalFilter",
    "oldIndexUid",
    "newIndexUid",
    "context",
    "function",
}


def _json_text(value: Any) -> str:
    return orjson.dumps(value).decode()
