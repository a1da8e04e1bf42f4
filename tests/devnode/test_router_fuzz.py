"""Law: whatever JSON arrives, a devnode answers a Meilisearch error or a task, never a fault.

Random JSON is sent to every settings field, the whole settings body, document writes and the
index routes through `Router.dispatch`. Each answer is 2xx or a 4xx with a Meilisearch error
body; a rejected request enqueues nothing; every accepted task then runs to `succeeded` or
`failed` with a non-`internal` code.
"""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from miroir.devnode import settings as settings_mod
from miroir.devnode.engine import Engine
from miroir.devnode.router import Request, Router

from .helpers import SteppingClock

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
keys = st.sampled_from(settings_mod.SETTINGS_KEYS)
requests = st.one_of(
    st.builds(
        lambda key, value: ("PATCH", "/indexes/i/settings", {key: value}),
        keys,
        json_values,
    ),
    st.builds(lambda body: ("PATCH", "/indexes/i/settings", body), json_values),
    st.builds(
        lambda slug, value: (settings_mod.SUBROUTES[slug][1], f"/indexes/i/settings/{slug}", value),
        st.sampled_from(sorted(settings_mod.SUBROUTES)),
        json_values,
    ),
    st.builds(lambda body: ("POST", "/indexes/i/documents", body), json_values),
    st.builds(lambda body: ("PUT", "/indexes/i/documents", body), json_values),
    st.builds(
        lambda doc_id, extra: ("POST", "/indexes/i/documents", [{"id": doc_id, **extra}]),
        json_values,
        st.dictionaries(st.text(max_size=4), json_values, max_size=2),
    ),
    st.builds(lambda body: ("POST", "/indexes", body), json_values),
    st.builds(lambda body: ("PATCH", "/indexes/i", body), json_values),
    st.builds(lambda body: ("POST", "/indexes/i/documents/fetch", body), json_values),
    st.builds(lambda body: ("POST", "/indexes/i/documents/delete-batch", body), json_values),
    st.builds(lambda body: ("POST", "/indexes/i/documents/delete", body), json_values),
    st.builds(lambda body: ("POST", "/swap-indexes", body), json_values),
)


@given(st.lists(requests, min_size=1, max_size=6))
def test_any_json_gets_an_error_or_a_task_never_a_fault(program):
    engine = Engine(now=SteppingClock())
    router = Router(engine)
    router.dispatch(Request("POST", "/indexes/i/documents", "", "application/json", b'[{"id": 0}]'))
    for method, path, body in program:
        before = len(engine.tasks)
        response = router.dispatch(
            Request(method, path, "", "application/json", orjson.dumps(body))
        )
        assert response.status < 500, response.body
        if response.status >= 400:
            assert set(response.body) == {"message", "code", "type", "link"}
            assert len(engine.tasks) == before
        engine.process()
    for task in engine.tasks.values():
        assert task.status in ("succeeded", "failed")
        assert task.error is None or task.error["code"] != "internal", task.error


query_names = st.sampled_from(
    [
        "limit",
        "from",
        "reverse",
        "uids",
        "statuses",
        "types",
        "indexUids",
        "canceledBy",
        "batchUids",
        "afterEnqueuedAt",
        "beforeFinishedAt",
        "offset",
        "fields",
        "ids",
        "filter",
        "unknown",
    ]
)
query_values = st.text(max_size=12) | st.sampled_from(["*", "1,2", "2024-01-01", "true", "-1"])


@given(
    st.sampled_from(
        [
            ("GET", "/tasks"),
            ("DELETE", "/tasks"),
            ("POST", "/tasks/cancel"),
            ("GET", "/indexes"),
            ("GET", "/indexes/i/documents"),
            ("GET", "/indexes/i/documents/0"),
        ]
    ),
    st.lists(st.tuples(query_names, query_values), max_size=4),
)
def test_any_query_string_gets_an_answer_never_a_fault(route, pairs):
    from urllib.parse import urlencode

    engine = Engine(now=SteppingClock())
    router = Router(engine)
    router.dispatch(Request("POST", "/indexes/i/documents", "", "application/json", b'[{"id": 0}]'))
    engine.process()
    response = router.dispatch(Request(route[0], route[1], urlencode(pairs)))
    assert response.status < 500, response.body
    engine.process()
    assert all(
        task.error is None or task.error["code"] != "internal" for task in engine.tasks.values()
    )
