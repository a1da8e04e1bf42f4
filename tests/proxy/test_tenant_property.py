"""The tenant-token property: for random documents, tenant filters and client queries, every hit
a tenant gets satisfies the tenant's filter, and the answer is what one devnode holding the whole
corpus gives for the conjunction of the client's filter and the tenant's."""

from __future__ import annotations

import jwt
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miroir.core.filters import matches
from miroir.core.filters_parser import parse_filter_json
from miroir.devnode import search_routes as routes
from tests.devnode.search.helpers import engine_with
from tests.proxy.harness import running_proxy
from tests.proxy.test_keys import AUTH, MASTER, add_documents, bearer, create_key

WORDS = ["dark", "knight", "night", "gotham", "joker", "city"]
FILTERABLE = ["genre", "year", "tenant"]
documents = st.lists(
    st.fixed_dictionaries({
        "title": st.lists(st.sampled_from(WORDS), min_size=1, max_size=3).map(" ".join),
        "genre": st.sampled_from(["action", "drama", "comedy"]),
        "year": st.integers(1990, 1994),
        "tenant": st.sampled_from(["a", "b", "c"]),
    }),
    min_size=1, max_size=14,
).map(lambda docs: [dict(doc, id=i) for i, doc in enumerate(docs)])
filters = st.sampled_from([
    "tenant = a", "tenant != b", "tenant IN [a, c]", "year > 1991", "genre = drama OR year = 1990",
    "NOT genre = action", "tenant = a AND year >= 1992",
])
tenant_filters = st.one_of(filters, st.lists(filters, min_size=1, max_size=2))
client_queries = st.fixed_dictionaries(
    {"q": st.lists(st.sampled_from(WORDS), max_size=2).map(" ".join)},
    optional={"filter": st.one_of(filters, st.lists(filters, min_size=1, max_size=2))},
)


async def _tenant_answer(docs, tenant_filter, query) -> dict:
    async with running_proxy(master_key=MASTER) as h:
        await add_documents(h, "items", docs)
        status, task, _ = await h.send("PATCH", "/indexes/items/settings",
                                       {"filterableAttributes": FILTERABLE}, headers=AUTH)
        assert status == 202
        await h.wait_task(task["taskUid"], headers=AUTH)
        key = await create_key(h, actions=["search"], indexes=["items"])
        signed = jwt.encode(
            {"apiKeyUid": key["uid"], "searchRules": {"items": {"filter": tenant_filter}}},
            key["key"], algorithm="HS256")
        status, answer, _ = await h.send("POST", "/indexes/items/search",
                                         dict(query, limit=50), headers=bearer(signed))
        assert status == 200, answer
        return answer


def _conjunction(client, tenant) -> list:
    parts = []
    for part in (client, tenant):
        if part is not None:
            parts.extend(part if isinstance(part, list) else [part])
    return parts


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, tenant_filters, client_queries)
def test_every_hit_satisfies_the_tenant_filter_and_matches_one_devnode(docs, tenant, query):
    answer = trio.run(_tenant_answer, docs, tenant, query)
    by_id = {doc["id"]: doc for doc in docs}
    tenant_node = parse_filter_json(tenant)
    for hit in answer["hits"]:
        assert matches(tenant_node, by_id[hit["id"]]), (hit, tenant)
    single = engine_with("items", docs, filterableAttributes=FILTERABLE)
    expected = routes.search(single, "items", dict(
        query, limit=50, filter=_conjunction(query.get("filter"), tenant)))
    assert answer["estimatedTotalHits"] == expected["estimatedTotalHits"]
    assert sorted(hit["id"] for hit in answer["hits"]) == sorted(
        hit["id"] for hit in expected["hits"])
