"""GET /tasks over every backend, against a brute-force oracle.

The oracle is written from Meilisearch's documented rules (reference/meilisearch-api.md §2), in
plain Python over datetimes, independently of TaskQuery.matches and of the backends' SQL/Lua:
filters intersect, date bounds are exclusive, a bare date means midnight (the next midnight for
an `after*` bound), results are newest first (oldest first with reverse), `from` is inclusive,
`total` ignores from and limit, `next` is the uid that would come after the page.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import attrs
import trio
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.tasks import (
    FINISHED_STATUSES,
    STATUSES,
    TASK_TYPES,
    NodeTask,
    Task,
    parse_task_query,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE_MS = 1_764_000_000_000  # 2025-11-24T16:00:00Z; the corpus spans about three days
INDEXES = ("movies", "songs", "books", None)
SOME_TYPES = TASK_TYPES[:5]
DATE_FIELDS = ("enqueued", "started", "finished")


def build_corpus(seed: int = 7) -> list[Task]:
    rnd = random.Random(seed)
    tasks = []
    for uid in sorted(rnd.sample(range(1, 200), 110)):
        enqueued = BASE_MS + uid * 2_000_000 + rnd.randrange(1000)
        status = rnd.choice(STATUSES)
        started = None if status == "enqueued" else enqueued + rnd.randrange(5_000)
        finished = started + rnd.randrange(90_000_000) if status in FINISHED_STATUSES else None
        tasks.append(Task(
            uid=uid, type=rnd.choice(SOME_TYPES), enqueued_at=enqueued,
            index_uid=rnd.choice(INDEXES), status=status,
            canceled_by=rnd.choice((None, None, 5, 17)) if status == "canceled" else None,
            started_at=started, finished_at=finished,
            node_tasks={"n1": NodeTask(uid, status if status != "canceled" else "succeeded")},
        ))
    return tasks


CORPUS = build_corpus()
CORPUS_BY_UID = {task.uid: task for task in CORPUS}
TIMES_BY_FIELD = {
    field: sorted({getattr(task, f"{field}_at") for task in CORPUS} - {None})
    for field in DATE_FIELDS
}


@attrs.frozen
class DateBound:
    """A bound as the client wrote it: a moment (µs precision) in some zone, or a bare date."""

    moment: datetime | None = None
    offset_minutes: int = 0
    day: date | None = None

    def render(self) -> str:
        if self.day is not None:
            return self.day.isoformat()
        zone = timedelta(minutes=self.offset_minutes)
        local = (self.moment + zone).replace(tzinfo=None)
        text = local.strftime("%Y-%m-%dT%H:%M:%S")
        if self.moment.microsecond:
            text += f".{self.moment.microsecond:06d}"
        if self.offset_minutes == 0:
            return text + "Z"
        sign = "+" if self.offset_minutes > 0 else "-"
        hours, minutes = divmod(abs(self.offset_minutes), 60)
        return f"{text}{sign}{hours:02d}:{minutes:02d}"

    def as_datetime(self, is_after: bool) -> datetime:
        if self.day is None:
            return self.moment
        midnight = datetime(self.day.year, self.day.month, self.day.day, tzinfo=UTC)
        return midnight + timedelta(days=1) if is_after else midnight


def ms_to_datetime(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


@st.composite
def date_bounds(draw, field: str) -> DateBound:
    times = TIMES_BY_FIELD[field]
    if draw(st.integers(0, 5)) == 0:
        return DateBound(day=ms_to_datetime(draw(st.sampled_from(times))).date())
    near = draw(st.sampled_from(times))
    # Land exactly on a task time, just beside it (µs), or somewhere around it.
    delta_us = draw(st.sampled_from([0, 0, 0, 1, -1, 999, -1000]) | st.integers(-10**9, 10**9))
    moment = ms_to_datetime(near) + timedelta(microseconds=delta_us)
    return DateBound(moment=moment, offset_minutes=draw(st.sampled_from([0, 0, 120, -330])))


FILTERS = ("uids", "statuses", "types", "indexUids", "canceledBy") + tuple(
    f"{side}{field.capitalize()}At" for field in DATE_FIELDS for side in ("after", "before"))


@st.composite
def structured_queries(draw) -> dict:
    """A few filters at a time (many at once would almost always match nothing)."""
    chosen = draw(st.sets(st.sampled_from(FILTERS), max_size=3))
    query = dict.fromkeys(FILTERS)
    strategies = {
        "uids": st.sets(st.integers(0, 205), min_size=1, max_size=60),
        "statuses": st.sets(st.sampled_from(STATUSES), min_size=1, max_size=3),
        "types": st.sets(st.sampled_from(SOME_TYPES + ("indexSwap",)), min_size=1, max_size=3),
        "indexUids": st.sets(st.sampled_from(("movies", "songs", "books", "other")),
                             min_size=1, max_size=3),
        "canceledBy": st.sets(st.sampled_from((5, 17, 99)), min_size=1, max_size=2),
    }
    for name in sorted(chosen):  # sorted: set order varies with hash randomization
        if name in strategies:
            query[name] = draw(strategies[name])
        else:
            query[name] = draw(date_bounds(name.removeprefix("after").removeprefix("before")
                                           .removesuffix("At").lower()))
    query["limit"] = draw(st.none() | st.integers(0, 25))
    query["from"] = draw(st.none() | st.integers(0, 205))
    query["reverse"] = draw(st.none() | st.booleans())
    return query


def render_params(query: dict, rnd_case: bool) -> dict[str, str]:
    params = {}
    for name, value in query.items():
        if value is None:
            continue
        if isinstance(value, DateBound):
            params[name] = value.render()
        elif isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, set):
            items = sorted(str(v) for v in value)
            if rnd_case and name in ("statuses", "types"):
                items = [item.upper() for item in items]  # filters are case-insensitive
            params[name] = ",".join(items)
        else:
            params[name] = str(value)
    return params


def oracle(tasks: list[Task], query: dict) -> dict:
    def keep(task: Task) -> bool:
        if query["uids"] is not None and task.uid not in query["uids"]:
            return False
        if query["statuses"] is not None and task.status not in query["statuses"]:
            return False
        if query["types"] is not None and task.type not in query["types"]:
            return False
        if query["indexUids"] is not None and task.index_uid not in query["indexUids"]:
            return False
        if query["canceledBy"] is not None and task.canceled_by not in query["canceledBy"]:
            return False
        for field in DATE_FIELDS:
            moment = getattr(task, f"{field}_at")
            for side in ("after", "before"):
                bound = query[f"{side}{field.capitalize()}At"]
                if bound is None:
                    continue
                if moment is None:
                    return False
                limit_dt = bound.as_datetime(is_after=side == "after")
                task_dt = ms_to_datetime(moment)
                if side == "after" and not task_dt > limit_dt:
                    return False
                if side == "before" and not task_dt < limit_dt:
                    return False
        return True

    reverse = bool(query["reverse"])
    matching = sorted((t for t in tasks if keep(t)), key=lambda t: t.uid, reverse=not reverse)
    start = query["from"]
    if start is not None:
        matching_from = [t for t in matching if (t.uid >= start if reverse else t.uid <= start)]
    else:
        matching_from = matching
    limit = 20 if query["limit"] is None else query["limit"]
    page = matching_from[:limit]
    return {
        "uids": [t.uid for t in page],
        "total": len(matching),
        "limit": limit,
        "from": page[0].uid if page else None,
        "next": matching_from[limit].uid if len(matching_from) > limit else None,
    }


async def load_corpus(store) -> None:
    for task in CORPUS:
        await store.put_task(task)


def page_summary(page) -> dict:
    return {"uids": [t.uid for t in page.results], "total": page.total, "limit": page.limit,
            "from": page.from_, "next": page.next}


async def test_listing_matches_the_brute_force_oracle(store):
    await load_corpus(store)

    # Hypothesis drives the queries from a worker thread; each store call hops back to the trio
    # loop that owns the store, so one loaded store serves every example. Example counts come
    # from the active profile (tests/conftest.py).
    @given(query=structured_queries(), upper_case=st.booleans())
    def check(query, upper_case):
        parsed = parse_task_query(render_params(query, upper_case))
        page = trio.from_thread.run(store.list_tasks, parsed)
        assert page_summary(page) == oracle(CORPUS, query)
        for task in page.results:
            assert task == CORPUS_BY_UID[task.uid]

    await trio.to_thread.run_sync(check)


async def test_following_next_visits_every_match_once_in_order(store):
    await load_corpus(store)
    for reverse in (False, True):
        for params in ({"statuses": "succeeded,failed"}, {"indexUids": "movies"}, {}):
            expected = oracle(CORPUS, {
                **dict.fromkeys(FILTERS), "from": None,
                "statuses": {"succeeded", "failed"} if "statuses" in params else None,
                "indexUids": {"movies"} if "indexUids" in params else None,
                "limit": 1000, "reverse": reverse,
            })["uids"]
            seen, cursor = [], None
            while True:
                page_params = {**params, "limit": "7", "reverse": str(reverse).lower()}
                if cursor is not None:
                    page_params["from"] = str(cursor)
                page = await store.list_tasks(parse_task_query(page_params))
                assert page.total == len(expected)
                seen.extend(t.uid for t in page.results)
                cursor = page.next
                if cursor is None:
                    break
            assert seen == expected


@given(
    changes=st.lists(st.tuples(st.sampled_from(sorted(CORPUS_BY_UID)), st.sampled_from(STATUSES)),
                     max_size=30),
    deleted=st.sets(st.sampled_from(sorted(CORPUS_BY_UID)), max_size=20),
    prune_at=st.none() | st.integers(0, 3 * 86_400_000),
    statuses=st.sets(st.sampled_from(STATUSES), min_size=1, max_size=3),
    reverse=st.booleans(),
)
def test_memory_store_listing_follows_status_changes_deletes_and_pruning(
    changes, deleted, prune_at, statuses, reverse
):
    """MemoryStore lists unfinished tasks from an index of them (the poller's query); it must
    stay right as tasks change status, are deleted and are pruned."""
    from miroir.store.memory import MemoryStore

    async def main():
        store = MemoryStore(task_ttl_ms=86_400_000)
        await load_corpus(store)
        for uid, status in changes:
            await store.modify_task(uid, lambda task, status=status: attrs.evolve(
                task, status=status,
                finished_at=task.finished_at or task.enqueued_at if status in FINISHED_STATUSES
                else None))
        await store.delete_tasks(deleted)
        if prune_at is not None:
            await store.prune_tasks(BASE_MS + prune_at)
        remaining = [task for task in CORPUS if await store.get_task(task.uid) is not None]
        current = [await store.get_task(task.uid) for task in remaining]
        query = {**dict.fromkeys(FILTERS), "statuses": statuses, "limit": 1000,
                 "from": None, "reverse": reverse}
        page = await store.list_tasks(parse_task_query(render_params(query, False)))
        assert page_summary(page) == oracle(current, query)

    trio.run(main)
