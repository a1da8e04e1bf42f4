"""`POST /swap-indexes` and the alias admin routes (`/_miroir/aliases`, admin key).

Thin handlers over `miroir.cluster.aliases`: the body is checked (`miroir.meili.swaps` for a
swap, in Meilisearch's words; Miroir's codes for an alias), one cluster call changes the index
layouts record, and the answer is rendered: a swap's enqueued task summary, or an alias as
`{"alias", "index", "shards"}`.
"""

from __future__ import annotations

from quart import Blueprint, Response

from miroir.cluster import aliases
from miroir.core.errors import MeiliError
from miroir.meili.swaps import check_swaps
from miroir.meili.uids import check_index_uid
from miroir.proxy import bodies
from miroir.proxy.errors import json_response
from miroir.proxy.idempotency import idempotent
from miroir.proxy.replies import task_accepted
from miroir.proxy.state import cluster

blueprint = Blueprint("layouts", __name__)


@blueprint.post("/swap-indexes")
@idempotent
async def swap_indexes() -> Response:
    swaps = [aliases.Swap(*item) for item in check_swaps(await bodies.json_body())]
    return task_accepted(await aliases.swap_indexes(cluster(), swaps))


@blueprint.get("/_miroir/aliases")
async def list_aliases() -> Response:
    return json_response(await aliases.list_aliases(cluster()))


@blueprint.get("/_miroir/aliases/<alias>")
async def get_alias(alias: str) -> Response:
    return json_response(await aliases.get_alias(cluster(), alias))


@blueprint.put("/_miroir/aliases/<alias>")
async def put_alias(alias: str) -> Response:
    _valid_name(alias, "The alias")
    body = await bodies.json_body()
    if not isinstance(body, dict) or set(body) != {"index"} or not isinstance(body["index"], str):
        raise MeiliError("miroir_invalid_alias",
                         'The body must be {"index": "<node-side index name>"}.')
    _valid_name(body["index"], "`index`")
    return json_response(await aliases.put_alias(cluster(), alias, body["index"]))


@blueprint.delete("/_miroir/aliases/<alias>")
async def delete_alias(alias: str) -> Response:
    await aliases.delete_alias(cluster(), alias)
    return Response(b"", status=204)


def _valid_name(name: str, what: str) -> None:
    try:
        check_index_uid(name)
    except MeiliError as error:
        raise MeiliError("miroir_invalid_alias", f"{what} is not a valid index uid: "
                         f"{error.message}") from None
