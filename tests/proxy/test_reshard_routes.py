"""The resharding routes are refused with a clear Miroir error (resharding is not built yet),
behind the admin key like every /_miroir route, and change nothing."""

from __future__ import annotations

import pytest

from miroir.core.errors import ERROR_LINK_BASE
from tests.proxy.harness import running_proxy

ROUTES = [("POST", "/_miroir/indexes/movies/reshard", {"shards": 32}),
          ("GET", "/_miroir/reshards", None),
          ("GET", "/_miroir/reshards/r-1", None)]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_a_reshard_route_answers_501_reshard_unavailable(method, path, body):
    async with running_proxy(nodes=2, shards=4) as h:
        status, answer, _ = await h.send(method, path, body)
        assert status == 501
        assert answer == {"message": answer["message"], "code": "miroir_reshard_unavailable",
                          "type": "system", "link": ERROR_LINK_BASE + "miroir_reshard_unavailable"}
        assert "not available" in answer["message"]
        assert (await h.send("GET", "/_miroir/aliases"))[1]["total"] == 0


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
async def test_a_reshard_route_wants_the_admin_key(method, path, body):
    async with running_proxy(nodes=2, shards=4, master_key="master-key-1234567",
                             admin_key="admin-key-1234567") as h:
        status, answer, _ = await h.send(method, path, body)
        assert (status, answer["code"]) == (401, "miroir_invalid_auth")
        status, answer, _ = await h.send(method, path, body,
                                         headers={"X-Admin-Key": "admin-key-1234567"})
        assert (status, answer["code"]) == (501, "miroir_reshard_unavailable")


async def test_a_bad_index_uid_is_refused_first():
    async with running_proxy(nodes=2, shards=4) as h:
        status, answer, _ = await h.send("POST", "/_miroir/indexes/bad uid!/reshard", {"shards": 2})
        assert (status, answer["code"]) == (400, "invalid_index_uid")
