"""GET /tasks reads its query the same way on the proxy and on the devnode, and as Meilisearch.

Both call miroir.core.tasks.parse_task_query. For every row the proxy and the devnode must give
the same status and the same error body, and that answer must be the expected one: a good row
parses to exactly the listed values, a bad row fails with exactly the listed code and message.
Each expectation comes from Meilisearch's source (see docs/http-api.md, "GET /tasks query").
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
import trio

from miroir.core.errors import MeiliError
from miroir.core.tasks import TaskQuery, last_values, parse_task_query
from tests.proxy.harness import running_proxy

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns(*moment: int, nanos: int = 0) -> int:
    return (datetime(*moment, tzinfo=UTC) - EPOCH) // timedelta(microseconds=1) * 1000 + nanos


def qs(*pairs: tuple[str, str]) -> str:
    """A query string that carries each raw value exactly (spaces, `+` and all)."""
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in pairs)


DAY = 86_400 * 10**9
STATUS_NAMES = "`enqueued`, `processing`, `succeeded`, `failed`, `canceled`"
LIST_PARAMS = (
    "`limit`, `from`, `reverse`, `batchUids`, `uids`, `canceledBy`, `types`, `statuses`, "
    "`indexUids`, `afterEnqueuedAt`, `beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, "
    "`afterFinishedAt`, `beforeFinishedAt`"
)
CANCEL_PARAMS = (
    "`uids`, `batchUids`, `canceledBy`, `types`, `statuses`, `indexUids`, `afterEnqueuedAt`, "
    "`beforeEnqueuedAt`, `afterStartedAt`, `beforeStartedAt`, `afterFinishedAt`, "
    "`beforeFinishedAt`"
)
BAD_UID = (
    "is not a valid index uid. Index uid can be an integer or a string containing only "
    "alphanumeric characters, hyphens (-) and underscores (_), and can not be more than 512 "
    "bytes."
)


def bad_date(name: str, raw: str) -> tuple[str, str]:
    code = "invalid_task_" + "".join(f"_{c.lower()}" if c.isupper() else c for c in name)
    return code, (
        f"Invalid value in parameter `{name}`: `{raw}` is an invalid date-time. It should "
        "follow the YYYY-MM-DD or RFC 3339 date-time format."
    )


# (query string, TaskQuery fields it parses to)
GOOD: list[tuple[str, dict[str, Any]]] = [
    (qs(("limit", "5")), {"limit": 5}),
    (qs(("limit", "+5")), {"limit": 5}),  # Rust's u32 parse takes a leading `+`
    (qs(("limit", "4294967295")), {"limit": 2**32 - 1}),
    (qs(("from", "0"), ("reverse", "true")), {"from_uid": 0, "reverse": True}),
    ("limit=1&limit=2", {"limit": 2}),  # a repeated parameter: the last value
    (qs(("uids", "1,2")), {"uids": {1, 2}}),
    (qs(("uids", "1,,2,")), {"uids": {1, 2}}),  # empty pieces are dropped
    (qs(("uids", "")), {"uids": frozenset()}),  # an empty list: a filter nothing matches
    (qs(("uids", "1,*")), {}),  # `*` anywhere: no filter
    (qs(("canceledBy", "*")), {}),
    (qs(("batchUids", "7")), {"batch_uids": {7}}),
    (qs(("statuses", "ENQUEUED,failed")), {"statuses": {"enqueued", "failed"}}),
    (qs(("types", "indexcreation,*")), {}),
    (qs(("types", "indexcreation")), {"types": {"indexCreation"}}),
    (qs(("indexUids", "movies,books")), {"index_uids": {"movies", "books"}}),
    (qs(("beforeEnqueuedAt", "2024-01-01")), {"before_enqueued_at": ns(2024, 1, 1)}),
    (qs(("afterEnqueuedAt", "2024-01-01")), {"after_enqueued_at": ns(2024, 1, 2)}),
    # The next day of the last day time can hold is that day itself.
    (qs(("afterFinishedAt", "9999-12-31")), {"after_finished_at": ns(9999, 12, 31)}),
    (qs(("beforeStartedAt", "+2024-01-01")), {"before_started_at": ns(2024, 1, 1)}),
    (qs(("beforeStartedAt", "-0001-12-31")), {"before_started_at": ns(1, 1, 1) - 367 * DAY}),
    (qs(("beforeStartedAt", "2024-01-01T00:00:00Z")), {"before_started_at": ns(2024, 1, 1)}),
    (qs(("afterStartedAt", "2024-01-01t10:00:00.5z")),
     {"after_started_at": ns(2024, 1, 1, 10, nanos=500_000_000)}),
    (qs(("afterStartedAt", "2024-01-01T00:00:00.1234567891Z")),
     {"after_started_at": ns(2024, 1, 1, nanos=123_456_789)}),
    (qs(("beforeFinishedAt", "2024-01-01T02:00:00+02:00")),
     {"before_finished_at": ns(2024, 1, 1)}),
    (qs(("beforeFinishedAt", "2024-01-01T00:00:00-25:59")),
     {"before_finished_at": ns(2024, 1, 2, 1, 59)}),
    (qs(("beforeFinishedAt", "2016-12-31T23:59:60Z")),  # a leap second, at a month's end
     {"before_finished_at": ns(2016, 12, 31, 23, 59, 59, nanos=999_999_999)}),
    (qs(("afterEnqueuedAt", "*")), {}),
]

# (query string, error code, error message)
BAD: list[tuple[str, str, str]] = [
    (qs(("limit", " 5")), "invalid_task_limit",
     "Invalid value in parameter `limit`: could not parse ` 5` as a positive integer"),
    (qs(("limit", "4294967296")), "invalid_task_limit",
     "Invalid value in parameter `limit`: could not parse `4294967296` as a positive integer"),
    (qs(("limit", "")), "invalid_task_limit",
     "Invalid value in parameter `limit`: could not parse `` as a positive integer"),
    (qs(("from", "-1")), "invalid_task_from",
     "Invalid value in parameter `from`: could not parse `-1` as a positive integer"),
    (qs(("reverse", "True")), "invalid_task_reverse",
     "Invalid value in parameter `reverse`: could not parse `True` as a boolean, expected "
     "either `true` or `false`"),
    (qs(("uids", "1, 2")), "invalid_task_uids",
     "Invalid value in parameter `uids[1]`: could not parse ` 2` as a positive integer"),
    (qs(("uids", "abc")), "invalid_task_uids",
     "Invalid value in parameter `uids`: could not parse `abc` as a positive integer"),
    (qs(("uids", "*,abc")), "invalid_task_uids",  # `*` does not hide a bad piece
     "Invalid value in parameter `uids[1]`: could not parse `abc` as a positive integer"),
    (qs(("canceledBy", "1,,x")), "invalid_task_canceled_by",
     "Invalid value in parameter `canceledBy[1]`: could not parse `x` as a positive integer"),
    (qs(("batchUids", "4294967296")), "invalid_batch_uids",
     "Invalid value in parameter `batchUids`: could not parse `4294967296` as a positive "
     "integer"),
    (qs(("statuses", "enqueued, failed")), "invalid_task_statuses",
     "Invalid value in parameter `statuses[1]`: ` failed` is not a valid task status. "
     f"Available statuses are {STATUS_NAMES}."),
    (qs(("statuses", "bogus,*")), "invalid_task_statuses",
     "Invalid value in parameter `statuses[0]`: `bogus` is not a valid task status. "
     f"Available statuses are {STATUS_NAMES}."),
    (qs(("indexUids", "bad uid")), "invalid_index_uid",
     f"Invalid value in parameter `indexUids`: `bad uid` {BAD_UID}"),
    (qs(("indexUids", "a,b!")), "invalid_index_uid",
     f"Invalid value in parameter `indexUids[1]`: `b!` {BAD_UID}"),
    *((qs((name, raw)), *bad_date(name, raw)) for name, raw in [
        ("beforeEnqueuedAt", " 2024-01-01"),
        ("beforeEnqueuedAt", "2024-01-01 "),
        ("afterEnqueuedAt", " *"),
        ("afterEnqueuedAt", "2024-01-01T00:00Z"),
        ("beforeStartedAt", "2024-01-01T00:00:00"),
        ("beforeStartedAt", "2024-01-01 00:00:00Z"),
        ("afterStartedAt", "2024-01-01T00:00:00+0200"),
        ("afterStartedAt", "2024-01-01T00:00:00+02"),
        ("afterStartedAt", "2024-01-01T00:00:00+26:00"),
        ("beforeFinishedAt", "2024-01-01T00:00:00.Z"),
        ("beforeFinishedAt", "2024-01-01T00:00:00,5Z"),
        ("beforeFinishedAt", "2024-01-15T23:59:60Z"),
        ("afterFinishedAt", "2024-02-30"),
        ("afterFinishedAt", "2024-01-01T24:00:00Z"),
        ("afterFinishedAt", "20240101"),
        ("afterFinishedAt", "2024-1-1"),
    ]),
    (qs(("foo", "1")), "bad_request", f"Unknown parameter `foo`: expected one of {LIST_PARAMS}"),
    (qs(("Limit", "1")), "bad_request",
     f"Unknown parameter `Limit`: expected one of {LIST_PARAMS}"),
    # The first bad parameter in query order is the one reported.
    (qs(("uids", "x"), ("limit", "y")), "invalid_task_uids",
     "Invalid value in parameter `uids`: could not parse `x` as a positive integer"),
]


async def _both(h, method: str, path: str) -> tuple[tuple[int, Any], tuple[int, Any]]:
    status, body, _ = await h.send(method, path)
    node = await h.transport.request("n0", method, path, deadline=trio.current_time() + 5)
    return (status, body), (node.status, node.json())


@pytest.mark.parametrize(("query", "fields"), GOOD, ids=[q for q, _ in GOOD])
async def test_good_queries_parse_alike_and_to_the_expected_values(query, fields):
    expected = TaskQuery(**{
        name: frozenset(value) if isinstance(value, set) else value
        for name, value in fields.items()
    })
    assert parse_task_query(last_values(parse_qsl(query, keep_blank_values=True))) == expected
    async with running_proxy(nodes=1) as h:
        (status, body), (node_status, node_body) = await _both(h, "GET", f"/tasks?{query}")
    assert (status, node_status) == (200, 200), (body, node_body)
    assert body["limit"] == node_body["limit"] == expected.limit


@pytest.mark.parametrize(("query", "code", "message"), BAD, ids=[q for q, _, _ in BAD])
async def test_bad_queries_fail_alike_with_meilisearchs_error(query, code, message):
    with pytest.raises(MeiliError) as raised:
        parse_task_query(last_values(parse_qsl(query, keep_blank_values=True)))
    assert (raised.value.code, raised.value.message) == (code, message)
    async with running_proxy(nodes=1) as h:
        proxy, node = await _both(h, "GET", f"/tasks?{query}")
    assert proxy == node
    assert proxy[0] == 400
    assert (proxy[1]["code"], proxy[1]["type"], proxy[1]["message"]) == (
        code, "invalid_request", message
    )


@pytest.mark.parametrize("method", ["POST", "DELETE"])
@pytest.mark.parametrize(
    ("query", "code", "message"),
    [
        ("", "missing_task_filters", None),
        ("limit=1", "bad_request", f"Unknown parameter `limit`: expected one of {CANCEL_PARAMS}"),
        ("uids=1,%202", "invalid_task_uids",
         "Invalid value in parameter `uids[1]`: could not parse ` 2` as a positive integer"),
    ],
)
async def test_cancel_and_delete_filters_fail_alike(method, query, code, message):
    path = "/tasks/cancel" if method == "POST" else "/tasks"
    async with running_proxy(nodes=1) as h:
        proxy, node = await _both(h, method, f"{path}?{query}" if query else path)
    assert proxy == node
    assert (proxy[0], proxy[1]["code"]) == (400, code)
    if message is not None:
        assert proxy[1]["message"] == message
