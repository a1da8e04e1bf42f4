"""The devnode engine driven directly: tasks apply in order, only when processed."""

from __future__ import annotations

from datetime import datetime

import pytest

from miroir.core.errors import MeiliError
from miroir.devnode import settings as settings_mod
from miroir.devnode.engine import Engine
from miroir.devnode.tasks import parse_task_query
from miroir.devnode.timefmt import iso_duration

from .helpers import RecordingSearcher, SteppingClock


@pytest.fixture
def engine() -> Engine:
    return Engine(now=SteppingClock(), searcher_factory=RecordingSearcher)


def run(engine: Engine, task):
    engine.process()
    return engine.get_task(task.uid).view()


def test_writes_change_nothing_until_processed(engine):
    task = engine.add_documents("movies", [{"id": 1}])
    assert task.summary()["status"] == "enqueued"
    assert "movies" not in engine.indexes
    assert engine.process(max_tasks=1) == 1
    assert engine.get_index("movies").documents == {"1": {"id": 1}}


def test_task_summary_and_view_shapes(engine):
    task = engine.create_index("movies", "id")
    assert list(task.summary()) == ["taskUid", "indexUid", "status", "type", "enqueuedAt"]
    view = run(engine, task)
    assert list(view) == [
        "uid",
        "batchUid",
        "indexUid",
        "status",
        "type",
        "canceledBy",
        "details",
        "error",
        "duration",
        "enqueuedAt",
        "startedAt",
        "finishedAt",
    ]
    assert view["status"] == "succeeded"
    assert view["details"] == {"primaryKey": "id"}
    started = datetime.fromisoformat(view["startedAt"])
    finished = datetime.fromisoformat(view["finishedAt"])
    assert started < finished
    assert view["duration"] == iso_duration(finished - started)


def test_process_applies_in_order_and_respects_max_tasks(engine):
    engine.add_documents("a", [{"id": 1}])
    engine.add_documents("a", [{"id": 1, "v": 2}])
    engine.delete_documents("a", [1])
    assert engine.process(max_tasks=2) == 2
    assert engine.get_index("a").documents == {"1": {"id": 1, "v": 2}}
    assert engine.process() == 1
    assert engine.get_index("a").documents == {}


@pytest.mark.parametrize(
    ("document", "outcome"),
    [
        ({"id": 1, "title": "x"}, "id"),
        ({"userId": 1, "title": "x"}, "userId"),
        ({"paid": 1}, "paid"),
        ({"title": "x"}, "index_primary_key_no_candidate_found"),
        ({"id": 1, "uuid": 2}, "index_primary_key_multiple_candidates_found"),
    ],
)
def test_primary_key_inference(engine, document, outcome):
    view = run(engine, engine.add_documents("i", [document]))
    if view["status"] == "succeeded":
        assert engine.get_index("i").primary_key == outcome
    else:
        assert view["error"]["code"] == outcome
        assert view["details"] == {"receivedDocuments": 1, "indexedDocuments": 0}
        assert "i" not in engine.indexes


def test_primary_key_conflict_fails_and_changes_nothing(engine):
    engine.add_documents("i", [{"id": 1}])
    view = run(engine, engine.add_documents("i", [{"id": 2, "key": 3}], primary_key="key"))
    assert view["error"]["code"] == "index_primary_key_already_exists"
    assert list(engine.get_index("i").documents) == ["1"]


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        ({"id": "a b"}, "invalid_document_id"),
        ({"id": "x" * 512}, "invalid_document_id"),
        ({"id": 1.5}, "invalid_document_id"),
        ({"id": True}, "invalid_document_id"),
        ({"id": 2**64}, "invalid_document_id"),
        ({"other": 1}, "missing_document_id"),
    ],
)
def test_one_bad_document_fails_the_whole_batch(engine, bad, code):
    engine.add_documents("i", [{"id": "keep", "v": 0}])
    view = run(engine, engine.add_documents("i", [{"id": "new"}, bad, {"id": "keep", "v": 1}]))
    assert view["error"]["code"] == code
    assert engine.get_index("i").documents == {"keep": {"id": "keep", "v": 0}}


def test_replace_and_update_keep_the_internal_id(engine):
    engine.add_documents("i", [{"id": 1, "a": 1, "b": 1}, {"id": 2}])
    engine.add_documents("i", [{"id": 1, "a": 2}], replace=False)
    engine.process()
    index = engine.get_index("i")
    assert index.documents["1"] == {"id": 1, "a": 2, "b": 1}
    engine.add_documents("i", [{"id": 1, "c": 3}])
    engine.process()
    assert index.documents["1"] == {"id": 1, "c": 3}
    assert index.internal_ids == {"1": 0, "2": 1}
    assert index.searcher.documents[0] == {"id": 1, "c": 3}
    engine.delete_documents("i", ["1"])
    engine.add_documents("i", [{"id": 1}])
    engine.process()
    assert index.internal_ids == {"2": 1, "1": 2}  # re-added after deletion: a new, later id
    assert list(index.documents) == ["2", "1"]


def test_integer_and_string_ids_are_one_document(engine):
    engine.add_documents("i", [{"id": 7, "v": 1}, {"id": "7", "v": 2}])
    engine.process()
    assert engine.get_index("i").documents == {"7": {"id": "7", "v": 2}}


def test_deletions_report_counts(engine):
    engine.add_documents("i", [{"id": n, "c": "red" if n % 2 else "blue"} for n in range(6)])
    engine.update_settings("i", {"filterableAttributes": ["c"]})
    by_ids = engine.delete_documents("i", [0, "1", "missing"])
    by_filter = engine.delete_documents_by_filter("i", "c = red")
    engine.process()
    assert engine.get_task(by_ids.uid).details == {
        "providedIds": 3,
        "deletedDocuments": 2,
        "originalFilter": None,
    }
    assert engine.get_task(by_filter.uid).details == {
        "providedIds": 0,
        "deletedDocuments": 2,
        "originalFilter": '"c = red"',
    }
    assert sorted(engine.get_index("i").documents) == ["2", "4"]
    clear = engine.clear_documents("i")
    drop = engine.delete_index("i")
    engine.process()
    assert engine.get_task(clear.uid).details == {"deletedDocuments": 2}
    assert engine.get_task(drop.uid).details == {"deletedDocuments": 0}
    assert "i" not in engine.indexes


def test_delete_by_filter_on_non_filterable_attribute_fails_the_task(engine):
    engine.add_documents("i", [{"id": 1, "c": "red"}])
    view = run(engine, engine.delete_documents_by_filter("i", "c = red"))
    assert view["error"]["code"] == "invalid_document_filter"
    assert view["details"]["deletedDocuments"] == 0
    assert list(engine.get_index("i").documents) == ["1"]


def test_delete_by_filter_syntax_is_rejected_at_once(engine):
    engine.add_documents("i", [{"id": 1}])
    for bad in ("", "no operator", 42):
        with pytest.raises(MeiliError) as caught:
            engine.delete_documents_by_filter("i", bad)
        assert caught.value.code == "invalid_document_filter"
    assert len(engine.tasks) == 1


def test_writes_on_missing_index_fail_as_tasks(engine):
    for task in (
        engine.delete_index("nope"),
        engine.update_index("nope", primary_key="id"),
        engine.delete_documents("nope", [1]),
        engine.clear_documents("nope"),
        engine.reset_settings("nope"),
    ):
        assert run(engine, task)["error"]["code"] == "index_not_found"
    assert engine.indexes == {}


def test_settings_update_creates_the_index_and_index_creation_twice_fails(engine):
    run(engine, engine.update_settings("s", {"stopWords": ["b", "a", "b"]}))
    assert engine.get_index("s").settings["stopWords"] == ["a", "b"]
    assert run(engine, engine.create_index("s"))["error"]["code"] == "index_already_exists"


def test_primary_key_change_only_while_empty(engine):
    run(engine, engine.create_index("i"))
    run(engine, engine.update_index("i", primary_key="sku"))
    assert engine.get_index("i").primary_key == "sku"
    engine.add_documents("i", [{"sku": 1}])
    view = run(engine, engine.update_index("i", primary_key="id"))
    assert view["error"]["code"] == "index_primary_key_already_exists"
    assert engine.get_index("i").primary_key == "sku"


def test_rename_index(engine):
    engine.add_documents("old", [{"id": 1}])
    engine.create_index("taken")
    engine.process()
    assert run(engine, engine.update_index("old", new_uid="taken"))["error"]["code"] == (
        "index_already_exists"
    )
    view = run(engine, engine.update_index("old", new_uid="new"))
    assert view["details"] == {"primaryKey": None, "oldIndexUid": "old", "newIndexUid": "new"}
    assert engine.get_index("new").documents == {"1": {"id": 1}}
    assert "old" not in engine.indexes


def test_settings_patch_merges_nested_and_resets(engine):
    patch = settings_mod.validate_patch(
        {
            "typoTolerance": {"minWordSizeForTypos": {"oneTypo": 3}},
            "pagination": {"maxTotalHits": 5},
        }
    )
    run(engine, engine.update_settings("s", patch))
    current = engine.get_index("s").settings
    assert current["typoTolerance"]["minWordSizeForTypos"] == {"oneTypo": 3, "twoTypos": 9}
    assert current["pagination"] == {"maxTotalHits": 5}
    run(engine, engine.update_settings("s", {"typoTolerance": {"minWordSizeForTypos": None}}))
    assert engine.get_index("s").settings["typoTolerance"]["minWordSizeForTypos"] == {
        "oneTypo": 5,
        "twoTypos": 9,
    }
    run(engine, engine.reset_settings("s"))
    assert engine.get_index("s").settings == settings_mod.default_settings()


def test_typo_sizes_out_of_order_fail_at_task_time(engine):
    run(engine, engine.create_index("s"))
    patch = settings_mod.validate_patch({"typoTolerance": {"minWordSizeForTypos": {"oneTypo": 10}}})
    view = run(engine, engine.update_settings("s", patch))
    assert view["error"]["code"] == "invalid_settings_typo_tolerance"
    assert engine.get_index("s").settings == settings_mod.default_settings()


def test_cancelation_runs_first_and_cancels_enqueued_tasks(engine):
    first = engine.add_documents("i", [{"id": 1}])
    second = engine.add_documents("i", [{"id": 2}])
    cancel = engine.cancel_tasks(
        parse_task_query([("uids", f"{second.uid}")], paging=False).filter, "?uids=1"
    )
    assert engine.process(max_tasks=1) == 1  # the cancelation jumps the queue
    assert engine.get_task(cancel.uid).details == {
        "matchedTasks": 1,
        "canceledTasks": 1,
        "originalFilter": "?uids=1",
    }
    canceled = engine.get_task(second.uid).view()
    assert (canceled["status"], canceled["canceledBy"]) == ("canceled", cancel.uid)
    assert canceled["details"]["indexedDocuments"] == 0
    engine.process()
    assert engine.get_task(first.uid).status == "succeeded"
    assert list(engine.get_index("i").documents) == ["1"]


def test_task_deletion_removes_only_finished_tasks(engine):
    done = engine.create_index("i")
    engine.process()
    pending = engine.add_documents("i", [{"id": 1}])
    everything = parse_task_query([("statuses", "*")], paging=False).filter
    deletion = engine.delete_tasks(everything, "?statuses=*")
    engine.process(max_tasks=1)
    assert engine.get_task(deletion.uid).details["deletedTasks"] == 1
    with pytest.raises(MeiliError) as caught:
        engine.get_task(done.uid)
    assert caught.value.code == "task_not_found"
    assert engine.get_task(pending.uid).status == "enqueued"
    assert engine.create_index("j").uid == deletion.uid + 1  # uids are never reused


def test_list_tasks_pages_newest_first(engine):
    for n in range(5):
        engine.create_index(f"i{n}")
    engine.process()
    page = engine.list_tasks(parse_task_query([("limit", "2")], paging=True))
    assert [t["uid"] for t in page["results"]] == [4, 3]
    assert (page["total"], page["from"], page["next"]) == (5, 4, 2)
    page = engine.list_tasks(parse_task_query([("limit", "2"), ("from", "2")], paging=True))
    assert [t["uid"] for t in page["results"]] == [2, 1]
    assert page["next"] == 0
    page = engine.list_tasks(parse_task_query([("reverse", "true"), ("limit", "10")], paging=True))
    assert [t["uid"] for t in page["results"]] == [0, 1, 2, 3, 4]
    assert page["next"] is None
    filtered = engine.list_tasks(parse_task_query([("indexUids", "i1,i3")], paging=True))
    assert [t["uid"] for t in filtered["results"]] == [3, 1]


def test_task_date_filters_are_exclusive(engine):
    for n in range(3):
        engine.create_index(f"i{n}")
    engine.process()
    middle = engine.get_task(1).view()["enqueuedAt"]
    after = engine.list_tasks(parse_task_query([("afterEnqueuedAt", middle)], paging=True))
    before = engine.list_tasks(parse_task_query([("beforeEnqueuedAt", middle)], paging=True))
    assert [t["uid"] for t in after["results"]] == [2]
    assert [t["uid"] for t in before["results"]] == [0]
    whole_day = engine.list_tasks(
        parse_task_query([("afterEnqueuedAt", "2026-01-01")], paging=True)
    )
    assert whole_day["total"] == 0  # a bare date as an after-bound skips that whole day


def test_browse_with_ids_fields_and_filter(engine):
    engine.add_documents("i", [{"id": n, "c": n % 2, "nested": {"a": n, "b": 0}} for n in range(5)])
    engine.update_settings("i", {"filterableAttributes": ["c"]})
    engine.process()
    index = engine.get_index("i")
    page = index.browse(offset=1, limit=2, fields=["id", "nested.a"], ids=None, filter_expr=None)
    assert page == {
        "results": [{"id": 1, "nested": {"a": 1}}, {"id": 2, "nested": {"a": 2}}],
        "offset": 1,
        "limit": 2,
        "total": 5,
    }
    page = index.browse(offset=0, limit=20, fields=["id"], ids=["4", "0", "9"], filter_expr=None)
    assert page["results"] == [{"id": 0}, {"id": 4}] and page["total"] == 2
    page = index.browse(offset=0, limit=20, fields=["id"], ids=None, filter_expr="c = 1")
    assert page["results"] == [{"id": 1}, {"id": 3}]


def test_stats(engine):
    engine.add_documents("i", [{"id": 1, "a": 1}, {"id": 2}])
    engine.process()
    stats = engine.index_stats("i")
    assert stats["numberOfDocuments"] == 2
    assert stats["fieldDistribution"] == {"a": 1, "id": 2}
    assert stats["rawDocumentDbSize"] == len(b'{"id":1,"a":1}') + len(b'{"id":2}')
    assert engine.stats()["indexes"]["i"] == stats


def test_reads_of_missing_or_invalid_index(engine):
    with pytest.raises(MeiliError) as caught:
        engine.get_index("nope")
    assert (caught.value.code, caught.value.status) == ("index_not_found", 404)
    with pytest.raises(MeiliError) as caught:
        engine.get_index("bad uid")
    assert caught.value.code == "invalid_index_uid"


def test_a_started_task_shows_processing_until_finished(engine):
    task = engine.create_index("i")
    started = engine.start_next_task()
    assert started is task
    view = engine.get_task(task.uid).view()
    assert (view["status"], view["duration"], view["finishedAt"]) == ("processing", None, None)
    assert view["startedAt"] is not None and view["batchUid"] == 0
    assert engine.start_next_task() is task  # one task at a time
    assert "i" not in engine.indexes
    engine.finish_started_task()
    assert engine.get_task(task.uid).view()["status"] == "succeeded"


def test_swap_and_rename_indexes(engine):
    engine.add_documents("a", [{"id": "in-a"}])
    engine.add_documents("b", [{"id": "in-b"}])
    engine.process()
    view = run(engine, engine.swap_indexes([("a", "b", False)]))
    assert (view["indexUid"], view["details"]) == (
        None,
        {"swaps": [{"indexes": ["a", "b"], "rename": False}]},
    )
    assert list(engine.get_index("a").documents) == ["in-b"]
    assert engine.get_index("b").uid == "b" and list(engine.get_index("b").documents) == ["in-a"]
    assert run(engine, engine.swap_indexes([("a", "c", False)]))["error"]["message"] == (
        "Indexes `c` not found."
    )
    run(engine, engine.swap_indexes([("a", "c", True)]))
    assert sorted(engine.indexes) == ["b", "c"]
    assert run(engine, engine.swap_indexes([("b", "c", True)]))["error"]["code"] == (
        "invalid_swap_rename"
    )
    with pytest.raises(MeiliError) as caught:
        engine.swap_indexes([("b", "c", False), ("c", "d", False)])
    assert caught.value.code == "invalid_swap_duplicate_index_found"
