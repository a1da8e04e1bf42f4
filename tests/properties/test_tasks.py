"""Laws of Miroir tasks (miroir.core.tasks): aggregation, rendering, the GET /tasks query."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import attrs
import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.core.tasks import (
    CANCELED,
    ENQUEUED,
    FAILED,
    FINISHED_STATUSES,
    PROCESSING,
    STATUSES,
    SUCCEEDED,
    TASK_TYPES,
    NodeTask,
    Task,
    TaskQuery,
    aggregate_status,
    apply_node_updates,
    format_duration,
    format_timestamp,
    indexes_changed_by,
    parse_task_query,
    render_task,
    render_task_summary,
    select_page,
    task_from_record,
    task_to_record,
    with_lost_parts,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
node_ids = st.text(alphabet="abcdefghij-0123456789", min_size=1, max_size=6)
errors = st.fixed_dictionaries({"message": st.text(max_size=8), "code": st.sampled_from(
    ["index_not_found", "invalid_document_id"]), "type": st.just("invalid_request"),
    "link": st.just("https://docs.meilisearch.com/errors#x")})


@st.composite
def node_tasks(draw, acknowledged=None):
    acknowledged = st.booleans() if acknowledged is None else acknowledged
    status = draw(st.sampled_from(STATUSES))
    return NodeTask(
        task_uid=draw(st.integers(0, 2**32 - 1)) if draw(acknowledged) else None,
        status=status,
        error=draw(errors) if status == FAILED else None,
    )


node_maps = st.dictionaries(node_ids, node_tasks(), max_size=6)


# ---- aggregation


@given(node_maps)
@example({"a": NodeTask(1, SUCCEEDED), "b": NodeTask(None, ENQUEUED)})
@example({"a": NodeTask(None, FAILED)})
def test_status_follows_the_aggregation_rules(nodes):
    status, error = aggregate_status(nodes)
    acked = {node: nt for node, nt in nodes.items() if nt.task_uid is not None}
    statuses = [nt.status for nt in acked.values()]
    if not acked:
        assert (status, error["code"]) == (FAILED, "miroir_no_quorum")
    elif FAILED in statuses:
        first = min(node for node, nt in acked.items() if nt.status == FAILED)
        assert (status, error) == (FAILED, acked[first].error)
    elif CANCELED in statuses:
        assert (status, error) == (CANCELED, None)
    elif all(s == SUCCEEDED for s in statuses):
        assert (status, error) == (SUCCEEDED, None)
    elif all(s == ENQUEUED for s in statuses):
        assert (status, error) == (ENQUEUED, None)
    else:
        assert (status, error) == (PROCESSING, None)


@given(node_maps, node_ids, node_tasks(acknowledged=st.just(False)))
def test_a_node_that_never_acknowledged_is_not_waited_for(nodes, extra, unacked):
    if any(nt.task_uid is not None for nt in nodes.values()) and extra not in nodes:
        assert aggregate_status({**nodes, extra: unacked}) == aggregate_status(nodes)


@given(node_maps)
def test_succeeded_only_when_every_acknowledged_node_succeeded(nodes):
    acked = [nt for nt in nodes.values() if nt.task_uid is not None]
    succeeded = aggregate_status(nodes)[0] == SUCCEEDED
    assert succeeded == (bool(acked) and all(nt.status == SUCCEEDED for nt in acked))


def forward_paths():
    """A node's observed statuses in time order: some prefix of enqueued->processing->terminal."""
    return st.tuples(st.sampled_from([SUCCEEDED, FAILED, CANCELED]), st.integers(1, 3)).map(
        lambda t: [ENQUEUED, PROCESSING, t[0]][3 - t[1]:]
    )


@given(st.dictionaries(node_ids, forward_paths(), min_size=1, max_size=5), st.randoms())
def test_observations_in_any_order_with_repeats_end_where_the_final_statuses_say(paths, rnd):
    """Pollers race and repeat themselves; statuses never go back, so only the last ones count."""
    events = [(node, i, status) for node, path in paths.items() for i, status in enumerate(path)]
    events += rnd.sample(events, len(events) // 2)  # stale duplicates
    rnd.shuffle(events)
    task = Task(uid=1, type="documentAdditionOrUpdate", enqueued_at=0,
                node_tasks={node: NodeTask(7) for node in paths})
    now = 0
    for node, _, status in events:
        now += 1
        before = task
        error = {"code": f"e-{node}"} if status == FAILED else None
        task = apply_node_updates(task, {node: NodeTask(7, status, error)}, now)
        assert task.started_at is None or task.started_at <= now
        if before.is_finished:
            assert (task.status, task.finished_at) == (before.status, before.finished_at)
    assert {node: nt.status for node, nt in task.node_tasks.items()} == {
        node: path[-1] for node, path in paths.items()}
    if task.status in FINISHED_STATUSES:
        assert task.started_at <= task.finished_at
    if any(path[-1] in (FAILED, CANCELED) for path in paths.values()):
        # The first failure or cancelation seen finishes the task, whatever comes after.
        assert task.status in (FAILED, CANCELED)
    else:
        assert task.status == SUCCEEDED


def test_apply_node_updates_refuses_unknown_statuses():
    task = Task(uid=1, type="indexCreation", enqueued_at=0)
    with pytest.raises(ValueError):
        apply_node_updates(task, {"a": NodeTask(1, "done")}, 1)


# ---- records and rendering


tasks = st.builds(
    Task,
    uid=st.integers(0, 2**32 - 1),
    type=st.sampled_from(TASK_TYPES),
    enqueued_at=st.integers(0, 2**42),
    index_uid=st.none() | st.text("abc-_1", min_size=1, max_size=5),
    status=st.sampled_from(STATUSES),
    # Details hold JSON a client sent, already parsed by orjson: integers fit in 64 bits.
    details=st.none() | st.dictionaries(st.text(max_size=5), st.integers(-(2**63), 2**64 - 1) | st.none()),
    error=st.none() | errors,
    canceled_by=st.none() | st.integers(0, 100),
    started_at=st.none() | st.integers(0, 2**42),
    finished_at=st.none() | st.integers(0, 2**42),
    node_tasks=node_maps,
    missed_quorum=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 63)), max_size=3).map(tuple),
    custom_metadata=st.none() | st.text(max_size=8),
)


@given(tasks)
def test_the_storage_record_round_trips_through_json(task):
    assert task_from_record(orjson.loads(orjson.dumps(task_to_record(task)))) == task


@given(tasks)
def test_custom_metadata_is_shown_last_and_only_when_set(task):
    for shown in (render_task(task), render_task_summary(task)):
        assert ("customMetadata" in shown) == (task.custom_metadata is not None)
        if task.custom_metadata is not None:
            assert list(shown)[-1] == "customMetadata"
            assert shown["customMetadata"] == task.custom_metadata


def test_a_record_stored_before_custom_metadata_existed_reads_back_without_it():
    record = task_to_record(Task(uid=1, type="indexCreation", enqueued_at=0))
    del record["customMetadata"]
    assert task_from_record(record).custom_metadata is None


@given(st.integers(0, 2**42))
@example(0)
@example(1_723_136_755_500)
def test_timestamps_read_back_and_always_carry_milliseconds(ms):
    # Always a fraction: the official Python SDK cannot parse `...:07Z` (see format_timestamp).
    text = format_timestamp(ms)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    assert datetime.fromisoformat(text) == EPOCH + timedelta(milliseconds=ms)


@pytest.mark.parametrize(  # the examples of reference/meilisearch-api.md §2
    ("ms", "text"),
    [(11, "PT0.011S"), (1000, "PT1S"), (90_000, "PT90S"), (86_400_000, "P1D"), (0, "PT0S"),
     (-1, None), (None, None)],
)
def test_durations_use_meilisearch_notation(ms, text):
    assert format_duration(ms) == text


@given(st.integers(0, 10**11))
def test_durations_read_back(ms):
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(\d+)(?:\.(\d{3}))?S)?", format_duration(ms))
    days, seconds, millis = (int(g or 0) for g in match.groups())
    assert seconds < 86_400 and (days * 86_400 + seconds) * 1000 + millis == ms


@given(tasks)
def test_render_task_has_meilisearch_fields_in_order(task):
    body = render_task(task)
    expected = ["uid", "batchUid", "indexUid", "status", "type", "canceledBy", "details",
                "error", "duration", "enqueuedAt", "startedAt", "finishedAt"]
    if task.details is None:
        expected.remove("details")
    if task.custom_metadata is not None:
        expected.append("customMetadata")
    assert list(body) == expected
    if task.started_at is not None and task.finished_at is not None:
        assert body["duration"] == format_duration(task.finished_at - task.started_at)
    else:
        assert body["duration"] is None


@given(tasks, tasks)
def test_a_rendered_task_is_kept_per_task_object_and_never_outlives_a_change(task, other):
    first = render_task(task)
    first["uid"] = -1  # a caller's change to its copy reaches neither the task nor the cache
    assert render_task(task) == render_task(attrs.evolve(task)) != first
    # A change is a new Task (attrs.evolve): it is rendered afresh, from its own fields.
    changed = attrs.evolve(task, status=other.status, finished_at=other.finished_at,
                           details=other.details, error=other.error)
    assert render_task(changed) == render_task(task_from_record(task_to_record(changed)))
    # Rendering is not part of a task's value.
    assert task == attrs.evolve(task) and task_to_record(task) == task_to_record(attrs.evolve(task))


# ---- the GET /tasks query


@given(st.sets(st.sampled_from(STATUSES), min_size=1), st.sets(st.sampled_from(TASK_TYPES), min_size=1),
       st.sets(st.integers(0, 2**32 - 1), min_size=1, max_size=5), st.booleans())
def test_list_filters_parse_back_case_insensitively(statuses, types, uids, upper):
    def case(items):
        return [s.upper() if upper else s for s in items]

    query = parse_task_query({
        "statuses": ",".join(case(sorted(statuses))),
        "types": ",".join(case(sorted(types))),
        "uids": ",".join(map(str, sorted(uids))),
    })
    assert (query.statuses, query.types, query.uids) == (statuses, types, uids)


@pytest.mark.parametrize("name", ["uids", "statuses", "types", "indexUids", "canceledBy",
                                  "batchUids", "afterEnqueuedAt", "beforeFinishedAt"])
def test_a_star_means_no_filter(name):
    query = parse_task_query({name: "*"})
    assert query == TaskQuery()


@pytest.mark.parametrize(
    ("params", "code"),
    [({"limit": "-1"}, "invalid_task_limit"), ({"limit": "ten"}, "invalid_task_limit"),
     ({"limit": str(2**32)}, "invalid_task_limit"), ({"from": "1.5"}, "invalid_task_from"),
     ({"reverse": "yes"}, "invalid_task_reverse"), ({"uids": "1,x"}, "invalid_task_uids"),
     ({"uids": "1, 2"}, "invalid_task_uids"), ({"batchUids": "a"}, "invalid_batch_uids"),
     ({"canceledBy": "-3"}, "invalid_task_canceled_by"),
     ({"statuses": "done"}, "invalid_task_statuses"), ({"types": "upsert"}, "invalid_task_types"),
     ({"indexUids": "bad uid"}, "invalid_index_uid"),
     ({"afterEnqueuedAt": "yesterday"}, "invalid_task_after_enqueued_at"),
     ({"beforeStartedAt": "2024-13-01"}, "invalid_task_before_started_at"),
     ({"afterFinishedAt": "2024-01-01T00:00:00"}, "invalid_task_after_finished_at"),
     ({"beforeEnqueuedAt": "20240101"}, "invalid_task_before_enqueued_at"),
     ({"offset": "3"}, "bad_request")],
)
def test_bad_query_values_get_meilisearchs_codes(params, code):
    with pytest.raises(MeiliError) as raised:
        parse_task_query(params)
    assert raised.value.code == code and raised.value.status == 400
    assert raised.value.body()["type"] == "invalid_request"


def test_cancel_and_delete_need_a_filter_and_take_no_pagination():
    for operation in ("cancel", "delete"):
        with pytest.raises(MeiliError) as raised:
            parse_task_query({}, operation=operation)
        assert raised.value.code == "missing_task_filters"
        # Meilisearch's wording names the operation and the filters it accepts.
        assert raised.value.message.startswith(
            f"Query parameters to filter the tasks to {operation} are missing. "
            "Available query parameters are: `uids`, `indexUids`, `statuses`, `types`, "
        )
    with pytest.raises(MeiliError) as raised:
        parse_task_query({"limit": "3", "uids": "1"}, operation="delete")
    assert raised.value.code == "bad_request"
    assert parse_task_query({"statuses": "failed"}, operation="cancel").statuses == {FAILED}
    # A wildcard is a filter that matches everything, as in Meilisearch, not a missing one.
    assert isinstance(parse_task_query({"statuses": "*"}, operation="delete"), TaskQuery)


@pytest.mark.parametrize(
    ("params", "field", "moment"),
    [({"afterEnqueuedAt": "2024-08-08"}, "after_enqueued_at", datetime(2024, 8, 9, tzinfo=UTC)),
     ({"beforeEnqueuedAt": "2024-08-08"}, "before_enqueued_at", datetime(2024, 8, 8, tzinfo=UTC)),
     ({"afterStartedAt": "2024-08-08T17:05:55+02:00"}, "after_started_at",
      datetime(2024, 8, 8, 15, 5, 55, tzinfo=UTC))],
)
def test_dates_follow_meilisearchs_bare_date_rule_and_offsets(params, field, moment):
    nanos = int((moment - EPOCH).total_seconds()) * 1_000_000_000
    assert getattr(parse_task_query(params), field) == nanos


@given(st.integers(0, 2**42), st.integers(0, 2**42 * 10**6))
@example(5, 5_000_000)
@example(5, 4_999_999)
@example(5, 5_000_001)
def test_millisecond_bounds_compare_like_nanosecond_ones(task_ms, bound_ns):
    after_ms, before_ms = TaskQuery(after_enqueued_at=bound_ns,
                                    before_enqueued_at=bound_ns).bounds_ms("enqueued")
    assert (task_ms > after_ms) == (task_ms * 10**6 > bound_ns)
    assert (task_ms < before_ms) == (task_ms * 10**6 < bound_ns)


@given(st.lists(st.integers(0, 200), unique=True, max_size=40), st.integers(1, 12), st.booleans())
def test_following_next_visits_each_task_once_in_order(uids, limit, reverse):
    all_tasks = [Task(uid=uid, type="indexCreation", enqueued_at=uid) for uid in uids]
    seen, cursor = [], None
    while True:
        page = select_page(all_tasks, TaskQuery(limit=limit, from_uid=cursor, reverse=reverse))
        assert page.total == len(uids) and len(page.results) <= limit
        assert page.from_ == (page.results[0].uid if page.results else None)
        seen += [t.uid for t in page.results]
        if page.next is None:
            break
        cursor = page.next
    assert seen == sorted(uids, reverse=not reverse)


# ---- node tasks a node no longer knows

LOST_NODES = ("a", "b", "c", "d")
part_statuses = st.sampled_from(["enqueued", "processing", SUCCEEDED, FAILED])


@st.composite
def lost_scenarios(draw):
    """Node parts of one task, a placement (shard -> owners), and the nodes that lost theirs."""
    parts = {
        node: NodeTask(draw(st.integers(0, 9)), draw(part_statuses))
        for node in draw(st.sets(st.sampled_from(LOST_NODES), min_size=1))
    }
    owners = {
        shard: draw(st.lists(st.sampled_from(LOST_NODES), min_size=1, max_size=3, unique=True))
        for shard in range(draw(st.integers(1, 4)))
    }
    unfinished = sorted(n for n, nt in parts.items() if nt.status not in (SUCCEEDED, FAILED))
    lost = draw(st.lists(st.sampled_from(unfinished), unique=True)) if unfinished else []
    return parts, owners, lost


def with_lost(parts, owners, lost):
    task = Task(uid=1, type="documentAdditionOrUpdate", enqueued_at=0, node_tasks=parts)
    return with_lost_parts(
        task, lost,
        lambda node: [s for s, nodes in owners.items() if node in nodes],
        lambda shard: [(0, n) for n in owners[shard]],
    )


@given(lost_scenarios())
@example(({"a": NodeTask(1, "enqueued"), "b": NodeTask(2, SUCCEEDED)}, {0: ["a", "b"]}, ["a"]))
@example(({"a": NodeTask(1, "enqueued")}, {0: ["a"]}, ["a"]))
def test_a_lost_part_is_final_and_fails_the_task_only_when_a_shard_has_no_other_copy(scenario):
    parts, owners, lost = scenario
    after = with_lost(parts, owners, lost).node_tasks
    for node in lost:
        # Final: failed with the lost code, so no poller ever waits for it again.
        assert after[node].status == FAILED
        assert after[node].error["code"] == "miroir_node_task_lost"
        shards = [s for s, nodes in owners.items() if node in nodes]
        kept_elsewhere = all(
            any(o not in lost and o in parts and parts[o].status != FAILED for o in owners[s])
            for s in shards
        )
        # Left out of the aggregate (like a node that never acknowledged) exactly when every
        # shard of the node has an acknowledged, not-failed, not-lost part elsewhere...
        left_out = not after[node].acknowledged
        if left_out:
            assert kept_elsewhere
        elif kept_elsewhere:
            # ...unless every other part was left out too and this one carries the error.
            assert [n for n, nt in after.items() if nt.acknowledged] == [node]
    status, error = aggregate_status(after)
    if any(after[n].acknowledged for n in lost):
        assert status == FAILED
    if status == FAILED and error["code"] == "miroir_no_quorum":
        assert not lost  # a lost part never reads as "nobody acknowledged"


# ---- which indexes a finished task changed (the index catalog is told again)


@given(st.sampled_from(TASK_TYPES), st.sampled_from(["movies", None]),
       st.sampled_from([None, "movies", "films"]))
def test_only_a_deletion_or_update_changes_indexes_and_a_rename_changes_both(kind, uid, new_uid):
    details = {"primaryKey": None} if new_uid is None else {"newIndexUid": new_uid}
    task = Task(uid=1, type=kind, enqueued_at=0, index_uid=uid, details=details)
    changed = indexes_changed_by(task)
    if kind not in ("indexDeletion", "indexUpdate") or uid is None:
        assert changed == ()
    elif new_uid is None or new_uid == uid:
        assert changed == (uid,)
    else:
        assert changed == (uid, new_uid)
