"""The resharding routes (`POST /_miroir/indexes/{uid}/reshard`, `GET /_miroir/reshards`,
`GET /_miroir/reshards/{id}`; admin key), refused in this version.

Resharding (issue #17) is not built: what exists is what it will stand on (the index layouts
record and its atomic flip, the allowed-windows check in `miroir.core.reshard_window`). These
routes answer 501 `miroir_reshard_unavailable` rather than a bare 404, so `miroir ctl reshard`
and scripts learn why; docs/operations.md, "Resharding: what exists", lists what is missing.
"""

from __future__ import annotations

from quart import Blueprint, Response

from miroir.core.errors import MeiliError
from miroir.meili.uids import check_index_uid

blueprint = Blueprint("reshard", __name__, url_prefix="/_miroir")

_UNAVAILABLE = ("Resharding is not available in this version of Miroir: an index keeps the "
                "shard count it was created with. See docs/operations.md, \"Resharding: what "
                "exists\".")


@blueprint.post("/indexes/<uid>/reshard")
async def reshard(uid: str) -> Response:
    check_index_uid(uid)
    raise MeiliError("miroir_reshard_unavailable", _UNAVAILABLE)


@blueprint.get("/reshards")
async def list_reshards() -> Response:
    raise MeiliError("miroir_reshard_unavailable", _UNAVAILABLE)


@blueprint.get("/reshards/<reshard_id>")
async def get_reshard(reshard_id: str) -> Response:  # noqa: ARG001 - the path names it
    raise MeiliError("miroir_reshard_unavailable", _UNAVAILABLE)
