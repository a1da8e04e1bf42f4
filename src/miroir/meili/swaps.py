"""`POST /swap-indexes`: Meilisearch's body rule and wording.

A body is an array of `{"indexes": [a, b], "rename": bool}` objects; every index uid appears
once in the whole request. Checked before anything happens, as Meilisearch checks it before
enqueuing; whether the indexes exist is the task's question, not the request's.
"""

from __future__ import annotations

import json
from typing import Any

from miroir.core.errors import MeiliError
from miroir.meili import deserr
from miroir.meili.uids import check_index_uid

_FIELDS = ("indexes", "rename")


def check_swaps(body: Any) -> list[tuple[str, str, bool]]:
    """The (first, second, rename) items of a swap body, or the error Meilisearch answers."""
    if not isinstance(body, list):
        raise deserr.type_error("bad_request", "", "an array", body)
    swaps = []
    for position, item in enumerate(body):
        path = f".[{position}]"
        if not isinstance(item, dict):
            raise deserr.type_error("bad_request", path, "an object", item)
        deserr.check_fields(item, _FIELDS, path=path, code="bad_request")
        if "indexes" not in item:
            raise deserr.missing_field("missing_swap_indexes", path, "indexes")
        indexes = deserr.body_string_list("invalid_swap_indexes", f"{path}.indexes",
                                          item["indexes"])
        for at, uid in enumerate(indexes):
            try:
                check_index_uid(uid)
            except MeiliError as error:
                raise deserr.invalid_value("invalid_swap_indexes", f"{path}.indexes[{at}]",
                                           error.message) from None
        if len(indexes) != 2:
            raise MeiliError(
                "invalid_swap_indexes",
                f"Two indexes must be given for each swap. The list `{json.dumps(indexes)}` "
                f"contains {len(indexes)} indexes.")
        rename = deserr.body_bool("invalid_swap_rename", f"{path}.rename",
                                  item.get("rename", False))
        swaps.append((indexes[0], indexes[1], rename))
    seen: set[str] = set()
    repeated: list[str] = []
    for first, second, _ in swaps:
        for uid in (first, second):
            if uid in seen and uid not in repeated:
                repeated.append(uid)
            seen.add(uid)
    if len(repeated) == 1:
        raise MeiliError("invalid_swap_duplicate_index_found",
                         "Indexes must be declared only once during a swap. "
                         f"`{repeated[0]}` was specified several times.")
    if repeated:
        listed = ", ".join(f"`{uid}`" for uid in repeated)
        raise MeiliError("invalid_swap_duplicate_index_found",
                         f"Indexes must be declared only once during a swap. {listed} were "
                         "specified several times.")
    return swaps
