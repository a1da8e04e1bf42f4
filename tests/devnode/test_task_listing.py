"""GET /tasks on the devnode engine pages exactly like the straightforward definition.

`Engine.list_tasks` walks its uid-ordered task dict and, with no filter, stops once the page is
full; this checks it against filter-everything-then-sort on engines whose queues were built by
random enqueues, runs, cancelations and task deletions (so uids have holes and statuses differ).
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from miroir.devnode.engine import Engine
from miroir.devnode.tasks import TaskFilter, TaskQuery, parse_task_query

from .helpers import RecordingSearcher, SteppingClock

INDEXES = ("a", "b", "c")

steps = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(INDEXES)),
        st.tuples(st.just("add"), st.sampled_from(INDEXES)),
        st.tuples(st.just("process"), st.integers(0, 3)),
        st.tuples(st.just("cancel"), st.sampled_from(INDEXES)),
        st.tuples(st.just("delete"), st.sampled_from(("enqueued", "succeeded", "canceled"))),
    ),
    max_size=40,
)

pairs = st.lists(
    st.one_of(
        st.tuples(st.just("limit"), st.integers(0, 12).map(str)),
        st.tuples(st.just("from"), st.integers(0, 50).map(str)),
        st.tuples(st.just("reverse"), st.sampled_from(("true", "false"))),
        st.tuples(st.just("statuses"), st.sampled_from(
            ("enqueued", "succeeded,failed", "canceled,enqueued,processing"))),
        st.tuples(st.just("indexUids"), st.sampled_from(("a", "b,c"))),
        st.tuples(st.just("types"), st.sampled_from(
            ("indexCreation", "documentAdditionOrUpdate,taskDeletion"))),
        st.tuples(st.just("uids"), st.lists(st.integers(0, 50), min_size=1, max_size=5)
                  .map(lambda uids: ",".join(map(str, uids)))),
    ),
    max_size=4,
    unique_by=lambda pair: pair[0],
)


def build(program: list[tuple[str, object]]) -> Engine:
    engine = Engine(now=SteppingClock(), searcher_factory=RecordingSearcher)
    for step, argument in program:
        if step == "create":
            engine.create_index(argument)
        elif step == "add":
            engine.add_documents(argument, [{"id": 1}])
        elif step == "process":
            engine.process(max_tasks=argument)
        elif step == "cancel":
            engine.cancel_tasks(TaskFilter(index_uids=frozenset([argument])), "?x")
        else:
            engine.delete_tasks(TaskFilter(statuses=frozenset([argument])), "?x")
    return engine


def reference_listing(engine: Engine, query: TaskQuery) -> dict:
    """The definition: every matching task, sorted by uid, the cursor applied, limit+1 kept."""
    matching = sorted((t for t in engine.tasks.values() if query.filter.matches(t)),
                      key=lambda task: task.uid, reverse=not query.reverse)
    if query.from_uid is not None:
        matching = [t for t in matching if
                    (t.uid >= query.from_uid if query.reverse else t.uid <= query.from_uid)]
    window = matching[: query.limit + 1]
    shown = window[: query.limit]
    return {
        "results": [task.view() for task in shown],
        "total": sum(1 for t in engine.tasks.values() if query.filter.matches(t)),
        "limit": query.limit,
        "from": shown[0].uid if shown else None,
        "next": window[query.limit].uid if len(window) > query.limit else None,
    }


@settings(max_examples=300, deadline=None)
@given(steps, pairs)
def test_list_tasks_equals_the_sorted_definition(program, query_pairs):
    engine = build(program)
    query = parse_task_query(query_pairs, paging=True)
    assert engine.list_tasks(query) == reference_listing(engine, query)


def test_newest_first_without_a_filter_looks_at_no_more_than_the_page():
    """The repair worker's `GET /tasks?limit=1` on a long queue: one task beyond the page at
    most is looked at, and the total is still the queue's length."""
    engine = build([("create", "a")] + [("add", "a")] * 200 + [("process", 3)])
    looked_at = []

    class CountingValues:
        def __init__(self, tasks):
            self.tasks = tasks

        def __iter__(self):
            return self._counted(iter(self.tasks.values()))

        def __reversed__(self):
            return self._counted(reversed(self.tasks.values()))

        def _counted(self, tasks):
            for task in tasks:
                looked_at.append(task.uid)
                yield task

    class CountingTasks(dict):
        def values(self):
            return CountingValues(dict(self))

    engine.tasks = CountingTasks(engine.tasks)
    page = engine.list_tasks(parse_task_query([("limit", "1")], paging=True))
    assert [t["uid"] for t in page["results"]] == [200]
    assert (page["total"], page["next"]) == (201, 199)
    assert len(looked_at) <= 2
