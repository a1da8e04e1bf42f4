"""Law: after any sequence of document writes, the engine holds exactly what a dict model holds.

The model applies each batch atomically (a batch with one bad id changes nothing), replaces or
merges per document, and keeps first-insertion order; the engine must agree on contents, order,
and hand the searcher internal ids that increase along that order.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from miroir.devnode.engine import Engine

from .helpers import RecordingSearcher, SteppingClock

ids = st.sampled_from([0, 1, 2, "1", "a", "b-c"])
bad_ids = st.sampled_from([1.5, "x y", None, "é"])
documents = st.fixed_dictionaries(
    {"id": ids}, optional={"f": st.integers(0, 3), "g": st.integers(0, 3)}
)
operations = st.one_of(
    st.tuples(st.just("replace"), st.lists(documents, max_size=4)),
    st.tuples(st.just("update"), st.lists(documents, max_size=4)),
    st.tuples(
        st.just("bad_batch"),
        st.lists(documents, max_size=3),
        st.builds(lambda value: {"id": value}, bad_ids),
    ),
    st.tuples(st.just("delete"), st.lists(ids, max_size=3)),
    st.tuples(st.just("clear")),
)


def apply_to_model(model: dict[str, dict], operation: tuple) -> None:
    kind = operation[0]
    if kind in ("replace", "update"):
        for document in operation[1]:
            key = str(document["id"])
            if kind == "update" and key in model:
                model[key] = {**model[key], **document}
            else:
                model[key] = dict(document)
    elif kind == "delete":
        for value in operation[1]:
            model.pop(str(value), None)
    elif kind == "clear":
        model.clear()


@given(st.lists(operations, max_size=12))
@example([("replace", [{"id": 1, "f": 0}]), ("delete", [1]), ("replace", [{"id": "1"}])])
def test_engine_documents_equal_the_model(program):
    engine = Engine(now=SteppingClock(), searcher_factory=RecordingSearcher)
    engine.create_index("i", "id")
    model: dict[str, dict] = {}
    for operation in program:
        kind = operation[0]
        if kind in ("replace", "update"):
            engine.add_documents("i", operation[1], replace=kind == "replace")
        elif kind == "bad_batch":
            engine.add_documents("i", [*operation[1], operation[2]])
        elif kind == "delete":
            engine.delete_documents("i", operation[1])
        else:
            engine.clear_documents("i")
        apply_to_model(model, operation)
        # Interleave processing: sometimes apply now, sometimes let writes pile up.
        if len(engine.tasks) % 2:
            engine.process()
    engine.process()
    index = engine.get_index("i")
    assert list(index.documents.items()) == list(model.items())
    internal = [index.internal_ids[key] for key in index.documents]
    assert internal == sorted(internal) and len(set(internal)) == len(internal)
    assert index.searcher.documents == {index.internal_ids[k]: d for k, d in model.items()}
    assert all(task.status in ("succeeded", "failed") for task in engine.tasks.values())
