"""Shared test helpers for the devnode: a stepping clock and a tiny recording searcher."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from miroir.core.errors import MeiliError


class SteppingClock:
    """Each call is `step` later than the previous: deterministic, strictly increasing."""

    def __init__(self, start: datetime | None = None, step: timedelta = timedelta(milliseconds=1)):
        self.current = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.step = step

    def __call__(self) -> datetime:
        self.current += self.step
        return self.current


class RecordingSearcher:
    """Keeps what the engine told it; filters understand only `attr = value` (string form).

    Enough to test the engine's wiring of filter_ids without the real search package.
    """

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.documents: dict[int, dict[str, Any]] = {}

    def update_settings(self, settings: dict[str, Any]) -> None:
        self.settings = settings

    def upsert(self, internal_id: int, document: dict[str, Any]) -> None:
        self.documents[internal_id] = document

    def delete(self, internal_id: int) -> None:
        del self.documents[internal_id]

    def clear(self) -> None:
        self.documents.clear()

    def filter_ids(self, filter_expr: Any, *, error_code: str) -> list[int]:
        if not isinstance(filter_expr, str) or filter_expr.count("=") != 1:
            raise MeiliError(error_code, f"Was expecting an operation in `{filter_expr}`.")
        attribute, value = (part.strip() for part in filter_expr.split("="))
        filterable = self.settings["filterableAttributes"]
        if "*" not in filterable and attribute not in filterable:
            raise MeiliError(error_code, f"Attribute `{attribute}` is not filterable.")
        return sorted(
            internal_id
            for internal_id, document in self.documents.items()
            if str(document.get(attribute)) == value
        )
