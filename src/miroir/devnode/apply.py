"""What each task type does to the engine when it runs, one function per type.

Owns the task-time semantics Meilisearch gives each write: which index must exist, which writes
create their index, primary-key resolution for document additions, and the counts written into
`details`. Each function either changes state completely or raises a MeiliError before changing
anything (the engine then marks the task failed). Never called except by Engine.finish_started_task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from miroir.core.documents import infer_primary_key
from miroir.core.errors import MeiliError
from miroir.devnode import settings as settings_mod

if TYPE_CHECKING:
    from miroir.devnode.engine import Engine
    from miroir.devnode.tasks import Task

_UNCHANGED_KEY = object()


def _index_exists(uid: str) -> MeiliError:
    return MeiliError("index_already_exists", f"Index `{uid}` already exists.")


def _primary_key_exists(uid: str, primary_key: str) -> MeiliError:
    return MeiliError(
        "index_primary_key_already_exists",
        f"Index `{uid}`: Index already has a primary key: `{primary_key}`.",
    )


def index_creation(engine: Engine, task: Task) -> None:
    uid = task.index_uid
    if uid in engine.indexes:
        raise _index_exists(uid)
    engine.new_index(uid, task.payload["primaryKey"])


def index_update(engine: Engine, task: Task) -> None:
    index = engine.existing_index(task.index_uid)
    primary_key = task.payload["primaryKey"]
    new_uid = task.payload["newUid"]
    changes_key = isinstance(primary_key, str) and primary_key != index.primary_key
    if changes_key and index.documents:
        raise _primary_key_exists(index.uid, index.primary_key or primary_key)
    if new_uid is not None and new_uid != index.uid and new_uid in engine.indexes:
        raise _index_exists(new_uid)
    if changes_key:
        index.primary_key = primary_key
    if new_uid is not None and new_uid != index.uid:
        del engine.indexes[index.uid]
        index.uid = new_uid
        engine.indexes[new_uid] = index
    index.updated_at = engine.now()


def index_compaction(engine: Engine, task: Task) -> None:
    # Nothing to compact in memory; the index must exist, and the sizes are the same before
    # and after (Meilisearch prints them human-readable).
    engine.existing_index(task.index_uid)
    task.details.update(preCompactionSize="0 B", postCompactionSize="0 B")


def index_deletion(engine: Engine, task: Task) -> None:
    index = engine.existing_index(task.index_uid)
    task.details["deletedDocuments"] = len(index.documents)
    del engine.indexes[index.uid]


def document_addition(engine: Engine, task: Task) -> None:
    documents: list[dict[str, Any]] = task.payload["documents"]
    requested_key: str | None = task.payload["primaryKey"]
    index = engine.indexes.get(task.index_uid)
    if index is not None and index.primary_key is not None:
        if requested_key is not None and requested_key != index.primary_key:
            raise _primary_key_exists(index.uid, index.primary_key)
        primary_key = index.primary_key
    else:
        primary_key = requested_key or infer_primary_key(documents)
    skip_creation = task.payload.get("skipCreation", False)
    if index is None:
        # Build the new index aside and register it only once every document is accepted.
        index = engine.new_index(task.index_uid, primary_key, register=False)
        indexed = index.add_documents(
            documents, replace=task.payload["replace"], skip_creation=skip_creation
        )
        engine.indexes[index.uid] = index
    else:
        previous_key = index.primary_key
        index.primary_key = primary_key
        try:
            indexed = index.add_documents(
                documents, replace=task.payload["replace"], skip_creation=skip_creation
            )
        except MeiliError:
            index.primary_key = previous_key
            raise
        index.updated_at = engine.now()
    task.details["indexedDocuments"] = indexed


def document_deletion(engine: Engine, task: Task) -> None:
    index = engine.existing_index(task.index_uid)
    payload = task.payload
    if payload.get("clear"):
        deleted = index.clear()
    elif "filter" in payload:
        ids = index.ids_matching(payload["filter"], error_code="invalid_document_filter")
        deleted = index.delete_documents(ids)
    else:
        deleted = index.delete_documents(payload["ids"])
    index.updated_at = engine.now()
    task.details["deletedDocuments"] = deleted


def settings_update(engine: Engine, task: Task) -> None:
    index = engine.indexes.get(task.index_uid)
    if index is None and not task.payload["creates"]:
        engine.existing_index(task.index_uid)  # raises index_not_found
    current = index.settings if index is not None else settings_mod.default_settings()
    updated = settings_mod.apply_patch(current, task.payload["patch"])
    if index is None:
        index = engine.new_index(task.index_uid, None)
    index.set_settings(updated)
    index.updated_at = engine.now()


def index_swap(engine: Engine, task: Task) -> None:
    swaps: list[tuple[str, str, bool]] = task.payload["swaps"]
    missing = [
        uid
        for a, b, rename in swaps
        for uid in ((a,) if rename else (a, b))
        if uid not in engine.indexes
    ]
    if missing:
        listed = ", ".join(f"`{uid}`" for uid in missing)
        raise MeiliError("index_not_found", f"Indexes {listed} not found.")
    for a, b, rename in swaps:
        if rename and b in engine.indexes:
            raise MeiliError(
                "invalid_swap_rename",
                f"Cannot rename `{a}` to `{b}` as the index already exists.",
            )
    now = engine.now()
    for a, b, rename in swaps:
        first = engine.indexes.pop(a)
        second = None if rename else engine.indexes.pop(b)
        first.uid, first.updated_at = b, now
        engine.indexes[b] = first
        if second is not None:
            second.uid, second.updated_at = a, now
            engine.indexes[a] = second


def task_cancelation(engine: Engine, task: Task) -> None:
    canceled = 0
    finished_at = engine.now()
    for uid in task.payload["uids"]:
        target = engine.tasks.get(uid)
        if target is None or target.status != "enqueued":
            continue
        target.status = "canceled"
        target.canceled_by = task.uid
        target.finished_at = finished_at
        target.payload = {}
        if target.details:
            target.details = {
                k: (0 if v is None and _is_count(k) else v) for k, v in target.details.items()
            }
        canceled += 1
    task.details["canceledTasks"] = canceled


def task_deletion(engine: Engine, task: Task) -> None:
    deleted = 0
    for target in engine.finished(task.payload["uids"]):
        if target.uid != task.uid:
            del engine.tasks[target.uid]
            deleted += 1
    task.details["deletedTasks"] = deleted


_COUNTS = frozenset(
    {
        "receivedDocuments",
        "indexedDocuments",
        "deletedDocuments",
        "providedIds",
        "matchedTasks",
        "canceledTasks",
        "deletedTasks",
        "editedDocuments",
    }
)


def _is_count(key: str) -> bool:
    return key in _COUNTS


APPLY: dict[str, Callable[[Engine, Task], None]] = {
    "indexCreation": index_creation,
    "indexUpdate": index_update,
    "indexDeletion": index_deletion,
    "indexCompaction": index_compaction,
    "documentAdditionOrUpdate": document_addition,
    "documentDeletion": document_deletion,
    "settingsUpdate": settings_update,
    "indexSwap": index_swap,
    "taskCancelation": task_cancelation,
    "taskDeletion": task_deletion,
}
