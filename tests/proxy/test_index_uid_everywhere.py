"""Issue 20's 500: an index uid Meilisearch refuses gets Meilisearch's `invalid_index_uid` 400
wherever a uid appears (path, body, multi-search queries, federated queries, a rename), in
Meilisearch's words, and never reaches a node path."""

from urllib.parse import quote

import pytest

from tests.proxy.harness import running_proxy

MESSAGE_TAIL = (" is not a valid index uid. Index uid can be an integer or a string containing "
                "only alphanumeric characters, hyphens (-) and underscores (_), and can not be "
                "more than 512 bytes.")
# Non-Latin-1, Latin-1 but not ASCII, punctuation, space, too long, an emoji (astral plane).
BAD_UIDS = ["中文", "hé", "a b", "a.b", "a!", "x" * 401, "😀", "\u017f", "\u212a", "\u0661"]  # long s, Kelvin sign, Arabic-Indic one


def refused(status, reply, uid, at=""):
    prefix = f"Invalid value at `{at}`: " if at else ""
    assert (status, reply["code"]) == (400, "invalid_index_uid"), reply
    assert reply["message"] == f"{prefix}`{uid}`{MESSAGE_TAIL}"
    assert set(reply) == {"message", "code", "type", "link"}


def untouched_by_nodes(h, uid):
    assert not [call for call in h.transport.calls if uid in call[2] or quote(uid) in call[2]]


@pytest.mark.parametrize("uid", BAD_UIDS)
async def test_a_refused_uid_in_a_body_is_invalid_index_uid_at_its_field(uid):
    async with running_proxy(nodes=2, shards=4) as h:
        added = (await h.send("POST", "/indexes/seed/documents", [{"id": 1}]))[1]
        await h.wait_task(added["taskUid"])
        status, reply, _ = await h.send("POST", "/multi-search",
                                        {"queries": [{"indexUid": uid}]})
        refused(status, reply, uid, ".queries[0].indexUid")
        status, reply, _ = await h.send(
            "POST", "/multi-search", {"queries": [{"indexUid": "seed"}, {"indexUid": uid}]})
        refused(status, reply, uid, ".queries[1].indexUid")
        status, reply, _ = await h.send(
            "POST", "/multi-search", {"federation": {}, "queries": [{"indexUid": uid}]})
        refused(status, reply, uid, ".queries[0].indexUid")
        status, reply, _ = await h.send("POST", "/indexes", {"uid": uid})
        refused(status, reply, uid, ".uid")
        status, reply, _ = await h.send("PATCH", "/indexes/seed", {"uid": uid})
        refused(status, reply, uid, ".uid")
        untouched_by_nodes(h, uid)


PATH_ROUTES = [
    ("POST", "/indexes/{}/search", {}),
    ("GET", "/indexes/{}/search", None),
    ("POST", "/indexes/{}/facet-search", {"facetName": "a"}),
    ("GET", "/indexes/{}", None),
    ("PATCH", "/indexes/{}", {}),
    ("DELETE", "/indexes/{}", None),
    ("GET", "/indexes/{}/stats", None),
    ("GET", "/indexes/{}/documents", None),
    ("POST", "/indexes/{}/documents", [{"id": 1}]),
    ("POST", "/indexes/{}/documents/fetch", {}),
    ("GET", "/indexes/{}/documents/1", None),
    ("DELETE", "/indexes/{}/documents/1", None),
    ("GET", "/indexes/{}/settings", None),
    ("PATCH", "/indexes/{}/settings", {}),
    ("GET", "/indexes/{}/settings/stop-words", None),
]


@pytest.mark.parametrize("uid", BAD_UIDS)
async def test_a_refused_uid_in_a_path_is_invalid_index_uid_on_every_route(uid):
    async with running_proxy(nodes=2, shards=4) as h:
        for method, template, body in PATH_ROUTES:
            status, reply, _ = await h.send(method, template.format(quote(uid)), body)
            refused(status, reply, uid)
        untouched_by_nodes(h, uid)
