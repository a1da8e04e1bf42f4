"""Laws of `miroir.core.shard_copy`: the copy-then-compare loop converges on the source's
acknowledged state and never deletes what a client wrote, with writes and deletes racing the copy.

The model: a source and a target (dicts id -> version), a client issuing writes and deletes to
both (each side applies its queue in order, but the two sides interleave arbitrarily with the
copy), and a copy that reads the source at one moment and writes what it read later.
"""

from hypothesis import given
from hypothesis import strategies as st

from miroir.core.shard_copy import content_digest, reconcile

ids = st.integers(0, 6)
ops = st.lists(st.tuples(st.sampled_from(["put", "delete"]), ids), max_size=12)


def apply(side, op, version):
    kind, i = op
    if kind == "put":
        side[i] = version
    else:
        side.pop(i, None)


@given(st.dictionaries(ids, st.integers(0, 3)), ops, st.data())
def test_copy_with_racing_client_ops_converges_to_the_source(initial, client_ops, data):
    source = dict(initial)
    target: dict = {}
    # the copy snapshots the source at some point of the client's stream, and writes the
    # snapshot to the target at a later point; client ops reach the target in order
    read_at = data.draw(st.integers(0, len(client_ops)))
    write_at = data.draw(st.integers(read_at, len(client_ops)))
    snapshot = None
    copied: set = set()
    for step in range(len(client_ops) + 1):
        if step == read_at:
            snapshot = dict(source)
        if step == write_at:
            target.update(snapshot)
            copied |= set(snapshot)
        if step < len(client_ops):
            version = 100 + step
            apply(source, client_ops[step], version)
            apply(target, client_ops[step], version)
    # compare rounds (every client op processed on the source first: the engine waits for that)
    for _ in range(3):
        verdict = reconcile(source, target, copied)
        if verdict.clean:
            break
        for i in verdict.recopy:
            target[i] = source[i]
            copied.add(i)
        for i in verdict.delete:
            del target[i]
    assert reconcile(source, target, copied).clean
    assert target == source  # every acknowledged version, no resurrected delete
    assert content_digest(target) == content_digest(source)


@given(st.dictionaries(ids, st.integers()), st.dictionaries(ids, st.integers()), st.sets(ids))
def test_reconcile_never_deletes_what_the_copy_did_not_write(source, target, copied):
    verdict = reconcile(source, target, copied)
    assert set(verdict.delete) <= copied - set(source)
    assert set(verdict.recopy) == {i for i in source if target.get(i) != source[i]}
