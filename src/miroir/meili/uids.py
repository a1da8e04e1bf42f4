"""Index uid validation, exactly Meilisearch's rule (reference/meilisearch-api.md §3).

Owns only the rule and its error; never looks an index up.
"""

from __future__ import annotations

import re

from miroir.core.errors import MeiliError

MAX_INDEX_UID_BYTES = 400  # what the code enforces; its message says 512
_INDEX_UID = re.compile(r"[A-Za-z0-9_-]+")


def is_valid_index_uid(uid: str) -> bool:
    return 0 < len(uid) <= MAX_INDEX_UID_BYTES and _INDEX_UID.fullmatch(uid) is not None


def check_index_uid(uid: str) -> str:
    if not is_valid_index_uid(uid):
        raise MeiliError(
            "invalid_index_uid",
            f"`{uid}` is not a valid index uid. Index uid can be an integer or a string "
            "containing only alphanumeric characters, hyphens (-) and underscores (_), and can "
            "not be more than 512 bytes.",
        )
    return uid
