"""Auth: Meilisearch's master-key rules on the Meilisearch API, the admin key on /_miroir/*."""

import pytest

from tests.proxy.harness import running_proxy

MASTER = "master-key-0123456789"
ADMIN = "admin-key-9876543210"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "missing_authorization_header"),
        ({"Authorization": MASTER}, 401, "missing_authorization_header"),  # no Bearer scheme
        ({"Authorization": "Basic " + MASTER}, 401, "missing_authorization_header"),
        ({"Authorization": "Bearer wrong"}, 403, "invalid_api_key"),
        ({"Authorization": "Bearer "}, 403, "invalid_api_key"),
        ({"Authorization": "Bearer " + ADMIN}, 403, "invalid_api_key"),
        ({"Authorization": "Bearer " + MASTER}, 200, None),
    ],
)
async def test_master_key_guards_the_meilisearch_api(headers, status, code):
    async with running_proxy(master_key=MASTER, admin_key=ADMIN) as h:
        got, body, _ = await h.send("GET", "/indexes", headers=headers)
        assert got == status
        if code is not None:
            assert body["code"] == code
            assert set(body) == {"message", "code", "type", "link"}
            assert body["type"] == "auth"
            assert MASTER not in body["message"]


async def test_health_is_public_and_everything_is_open_without_a_master_key():
    async with running_proxy(master_key=MASTER) as h:
        status, body, _ = await h.send("GET", "/health")
        assert (status, body) == (200, {"status": "available"})
    async with running_proxy() as h:
        status, _, _ = await h.send("GET", "/indexes")
        assert status == 200


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer " + MASTER}, 401),
        ({"X-Admin-Key": "nope"}, 401),
        ({"Authorization": "Bearer " + ADMIN}, 200),
        ({"X-Admin-Key": ADMIN}, 200),
    ],
)
async def test_admin_routes_take_the_admin_key(headers, status):
    async with running_proxy(master_key=MASTER, admin_key=ADMIN) as h:
        got, body, _ = await h.send("GET", "/_miroir/topology", headers=headers)
        assert got == status
        if status == 401:
            assert body["code"] == "miroir_invalid_auth"
            assert ADMIN not in body["message"]


async def test_admin_routes_fall_back_to_the_master_key():
    async with running_proxy(master_key=MASTER) as h:
        assert (await h.send("GET", "/_miroir/ready"))[0] == 401
        headers = {"Authorization": "Bearer " + MASTER}
        assert (await h.send("GET", "/_miroir/ready", headers=headers))[0] == 200


async def test_admin_enabled_false_hides_the_admin_api_whatever_the_key():
    import pytest

    from miroir.core.errors import MeiliError
    from miroir.proxy.auth import Authenticator

    enabled = Authenticator("master", "admin")
    await enabled.check("GET", "/_miroir/topology", {"x-admin-key": "admin"})  # allowed
    disabled = Authenticator("master", "admin", admin_enabled=False)
    for path in ("/_miroir/topology", "/_miroir/metrics", "/_miroir"):
        with pytest.raises(MeiliError) as raised:
            await disabled.check("GET", path, {"x-admin-key": "admin"})
        assert (raised.value.code, raised.value.status) == ("not_found", 404)
    # The Meilisearch API keeps its own rules.
    await disabled.check("GET", "/indexes", {"authorization": "Bearer master"})
    await disabled.check("GET", "/health", {})
