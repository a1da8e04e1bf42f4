"""Tenant tokens: JWTs signed with an API key's value whose search rules restrict (and filter)
every search, multi-search (federated too) and facet search; anything else, or anything
malformed, is a 401/403 in Meilisearch's words and never a 500."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from tests.proxy.harness import running_proxy
from tests.proxy.test_keys import AUTH, MASTER, add_documents, bearer, create_key

MOVIES = [
    {"id": 1, "title": "Carol", "genre": "drama", "tenant": "a"},
    {"id": 2, "title": "Carol II", "genre": "comedy", "tenant": "b"},
    {"id": 3, "title": "Mad Max", "genre": "action", "tenant": "a"},
    {"id": 4, "title": "Mad Max 2", "genre": "comedy", "tenant": "a"},
]


def token(key: dict, rules, *, algorithm: str = "HS256", **claims) -> str:
    payload = {"apiKeyUid": key["uid"], "searchRules": rules, **claims}
    return jwt.encode(payload, key["key"], algorithm=algorithm)


async def movies_proxy(h) -> dict:
    await add_documents(h, "movies", MOVIES)
    await add_documents(h, "songs", [{"id": 1, "tenant": "a"}])
    for index in ("movies", "songs"):
        status, task, _ = await h.send("PATCH", f"/indexes/{index}/settings",
                                       {"filterableAttributes": ["genre", "tenant"]},
                                       headers=AUTH)
        assert status == 202
        await h.wait_task(task["taskUid"], headers=AUTH)
    return await create_key(h, actions=["search"], indexes=["*"])


def ids(result: dict) -> set[int]:
    return {hit["id"] for hit in result["hits"]}


async def test_a_tenant_filter_is_anded_into_every_kind_of_search():
    async with running_proxy(master_key=MASTER) as h:
        key = await movies_proxy(h)
        tenant = bearer(token(key, {"movies": {"filter": "tenant = a"}}))
        status, result, _ = await h.send("POST", "/indexes/movies/search", {"q": ""},
                                         headers=tenant)
        assert status == 200 and ids(result) == {1, 3, 4}
        status, result, _ = await h.send("POST", "/indexes/movies/search",
                                         {"q": "", "filter": "genre = comedy"}, headers=tenant)
        assert status == 200 and ids(result) == {4}
        status, result, _ = await h.send("GET", "/indexes/movies/search?filter=genre%20%3D%20comedy",
                                         headers=tenant)
        assert status == 200 and ids(result) == {4}
        status, result, _ = await h.send(
            "POST", "/multi-search",
            {"queries": [{"indexUid": "movies", "filter": ["genre = comedy OR genre = drama"]}]},
            headers=tenant)
        assert status == 200 and ids(result["results"][0]) == {1, 4}
        status, result, _ = await h.send(
            "POST", "/multi-search",
            {"federation": {}, "queries": [{"indexUid": "movies"}]}, headers=tenant)
        assert status == 200 and ids(result) == {1, 3, 4}
        status, result, _ = await h.send("POST", "/indexes/movies/facet-search",
                                         {"facetName": "genre"}, headers=tenant)
        assert status == 200
        assert {f["value"]: f["count"] for f in result["facetHits"]} == {
            "drama": 1, "action": 1, "comedy": 1}


async def test_search_rules_as_a_list_and_the_most_specific_rule_wins():
    async with running_proxy(master_key=MASTER) as h:
        key = await movies_proxy(h)
        listed = bearer(token(key, ["mov*"]))
        status, result, _ = await h.send("POST", "/indexes/movies/search", {}, headers=listed)
        assert status == 200 and ids(result) == {1, 2, 3, 4}
        status, body, _ = await h.send("POST", "/indexes/songs/search", {}, headers=listed)
        assert (status, body["code"]) == (403, "invalid_api_key")
        assert body["message"] == ("The provided tenant token cannot acces the index `songs`, "
                                   'allowed indexes are ["mov*"].')
        rules = {"*": {"filter": "tenant = b"}, "movies": {"filter": "genre = comedy"}}
        status, result, _ = await h.send("POST", "/indexes/movies/search", {},
                                         headers=bearer(token(key, rules)))
        assert status == 200 and ids(result) == {2, 4}


async def test_multi_search_refuses_a_query_outside_the_tokens_rules():
    async with running_proxy(master_key=MASTER) as h:
        key = await movies_proxy(h)
        tenant = bearer(token(key, {"movies": None}))
        status, body, _ = await h.send(
            "POST", "/multi-search",
            {"queries": [{"indexUid": "movies"}, {"indexUid": "songs"}]}, headers=tenant)
        assert (status, body["code"]) == (403, "invalid_api_key")
        assert body["message"].startswith("Inside `.queries[1]`")


async def test_a_token_authorises_nothing_but_search():
    async with running_proxy(master_key=MASTER) as h:
        key = await movies_proxy(h)
        admin = await create_key(h, actions=["*"], indexes=["*"])
        tenant = bearer(token(admin, ["*"]))
        for method, path, body in [("GET", "/indexes/movies/documents", None),
                                   ("POST", "/indexes/movies/documents", [{"id": 9}]),
                                   ("GET", "/indexes", None), ("GET", "/keys", None),
                                   ("GET", "/tasks", None), ("GET", "/stats", None)]:
            status, answer, _ = await h.send(method, path, body, headers=tenant)
            assert (status, answer["code"]) == (403, "invalid_api_key"), (method, path)
        status, _, _ = await h.send("POST", "/indexes/movies/search", {},
                                    headers=bearer(token(key, ["*"])))
        assert status == 200


def _b64(data: dict | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _forged(header: dict, payload: dict, signature: bytes = b"sig") -> str:
    return f"{_b64(header)}.{_b64(payload)}.{_b64(signature)}"


def _bad_inputs(key: dict, no_search_key: dict, deleted_key: dict) -> list[tuple[str, dict, int]]:
    good = token(key, ["*"])
    head, payload, signature = good.split(".")
    claims = {"apiKeyUid": key["uid"], "searchRules": ["*"]}
    tampered_payload = _b64({"apiKeyUid": key["uid"], "searchRules": {"*": None}})
    past = int(time.time()) - 60
    return [
        ("no header", {}, 401),
        ("basic scheme", {"Authorization": "Basic abc"}, 401),
        ("lowercase bearer", {"Authorization": "bearer " + good}, 401),
        ("bearer alone", {"Authorization": "Bearer"}, 403),
        ("empty token", {"Authorization": "Bearer "}, 403),
        ("garbage", bearer("not-a-token"), 403),
        ("three garbage parts", bearer("a.b.c"), 403),
        ("alg none", bearer(_forged({"alg": "none", "typ": "JWT"}, claims, b"")), 403),
        ("alg none unsigned", bearer(_b64({"alg": "none"}) + "." + _b64(claims) + "."), 403),
        ("wrong algorithm", bearer(_forged({"alg": "RS256", "typ": "JWT"}, claims)), 403),
        ("tampered payload", bearer(f"{head}.{tampered_payload}.{signature}"), 403),
        ("tampered signature", bearer(f"{head}.{payload}.{signature[::-1]}"), 403),
        ("signed with the master key",
         bearer(jwt.encode(claims, MASTER, algorithm="HS256")), 403),
        ("unknown apiKeyUid",
         bearer(jwt.encode({**claims, "apiKeyUid": "4bc0887a-0e41-4f3b-935d-0c451dcee9c8"},
                           key["key"], algorithm="HS256")), 403),
        ("apiKeyUid not a uuid", bearer(jwt.encode({**claims, "apiKeyUid": "x"}, key["key"],
                                                   algorithm="HS256")), 403),
        ("no apiKeyUid", bearer(jwt.encode({"searchRules": ["*"]}, key["key"],
                                           algorithm="HS256")), 403),
        ("no searchRules", bearer(jwt.encode({"apiKeyUid": key["uid"]}, key["key"],
                                             algorithm="HS256")), 403),
        ("searchRules a string", bearer(token(key, "movies")), 403),
        ("expired", bearer(token(key, ["*"], exp=past)), 403),
        ("exp not a number", bearer(token(key, ["*"], exp="tomorrow")), 403),
        ("rules that name no index", bearer(token(key, [])), 403),
        ("a rule that is no index pattern", bearer(token(key, {"mov ies": None})), 403),
        ("a listed rule that is no index pattern", bearer(token(key, ["a/b"])), 403),
        ("rules for another index", bearer(token(key, {"songs": None})), 403),
        ("key without search", bearer(token(no_search_key, ["*"])), 403),
        ("deleted key", bearer(token(deleted_key, ["*"])), 403),
        ("oversized", bearer(token(key, ["*"], padding="x" * 40_000)), 403),
        ("HS512 oversized header", bearer("e" * 100_000 + "." + payload + "." + signature), 403),
    ]


async def test_bad_tokens_are_refused_in_meilisearchs_words_never_a_500():
    async with running_proxy(master_key=MASTER) as h:
        key = await movies_proxy(h)
        no_search = await create_key(h, actions=["documents.get"], indexes=["*"])
        deleted = await create_key(h, actions=["search"], indexes=["*"])
        status, _, _ = await h.send("DELETE", f"/keys/{deleted['uid']}", headers=AUTH)
        assert status == 204
        for name, headers, expected in _bad_inputs(key, no_search, deleted):
            status, body, _ = await h.send("POST", "/indexes/movies/search", {},
                                           headers=headers)
            assert status == expected, (name, body)
            code = "missing_authorization_header" if expected == 401 else "invalid_api_key"
            assert body["code"] == code, (name, body)
            assert set(body) == {"message", "code", "type", "link"}
            assert key["key"] not in body["message"] and MASTER not in body["message"]
            sent = headers.get("Authorization", "")
            if len(sent) > 20:
                assert sent.split(" ", 1)[-1] not in body["message"], name


@pytest.mark.parametrize("algorithm", ["HS256", "HS384", "HS512"])
async def test_every_hmac_algorithm_is_accepted(algorithm):
    async with running_proxy(master_key=MASTER) as h:
        key = await movies_proxy(h)
        future = int(time.time()) + 3600
        signed = token(key, {"movies": {"filter": "genre = comedy"}}, algorithm=algorithm,
                       exp=future)
        status, result, _ = await h.send("POST", "/indexes/movies/search", {},
                                         headers=bearer(signed))
        assert status == 200 and ids(result) == {2, 4}


async def test_the_messages_of_an_expired_token_and_a_bad_signature():
    async with running_proxy(master_key=MASTER) as h:
        key = await movies_proxy(h)
        status, body, _ = await h.send("POST", "/indexes/movies/search", {},
                                       headers=bearer(token(key, ["*"], exp=1)))
        assert status == 403
        assert body["message"].startswith("Tenant token expired. Was valid up to `1` and we're now `")
        forged = jwt.encode({"apiKeyUid": key["uid"], "searchRules": ["*"]}, "not-the-key",
                            algorithm="HS256")
        status, body, _ = await h.send("POST", "/indexes/movies/search", {},
                                       headers=bearer(forged))
        assert (status, body["message"]) == (
            403, "Could not decode tenant token, InvalidSignature.")


async def test_a_tenant_filter_is_anded_into_similar_search():
    """`/similar` is a search: a tenant sees only the similar documents its rule lets through
    (the route was added after the token work; without the filter it leaked other tenants')."""
    from tests.proxy.test_vectors import EMBEDDERS

    async with running_proxy(master_key=MASTER) as h:
        docs = [{"id": i, "title": f"movie {i}", "tenant": "ab"[i % 2],
                 "_vectors": {"default": [1.0, i / 10, 0.5]}} for i in range(12)]
        await add_documents(h, "movies", docs)
        status, task, _ = await h.send(
            "PATCH", "/indexes/movies/settings",
            {"embedders": EMBEDDERS, "filterableAttributes": ["tenant"]}, headers=AUTH)
        assert status == 202
        assert (await h.wait_task(task["taskUid"], headers=AUTH))["status"] == "succeeded"
        await add_documents(h, "movies", docs)  # again, now that the embedder exists
        key = await create_key(h, actions=["search"], indexes=["*"])
        tenant = bearer(token(key, {"movies": {"filter": "tenant = a"}}))
        body = {"id": 1, "embedder": "default", "limit": 20}
        status, master_view, _ = await h.send("POST", "/indexes/movies/similar", body,
                                              headers=AUTH)
        assert status == 200 and {d["tenant"] for d in master_view["hits"]} == {"a", "b"}
        for method, path, payload in (
            ("POST", "/indexes/movies/similar", body),
            ("GET", "/indexes/movies/similar?id=1&embedder=default&limit=20", None),
        ):
            status, result, _ = await h.send(method, path, payload, headers=tenant)
            assert status == 200, result
            assert result["hits"] and {d["tenant"] for d in result["hits"]} == {"a"}
