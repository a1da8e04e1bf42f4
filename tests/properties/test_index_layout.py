"""Laws of index layouts (`miroir.core.index_layout`): resolution stays one-to-one whatever
sequence of swaps, renames, aliases and fresh names produced it."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.index_layout import (
    IndexLayout,
    LayoutRecordError,
    Layouts,
    decode_layouts,
    encode_layouts,
)

NAMES = ("a", "b", "c", "d", "a--1", "b--1")
names = st.sampled_from(NAMES)


def resolvable(layouts, uid):
    return layouts.node_index(uid) is not None


@st.composite
def layouts_after_operations(draw):
    """A layouts value reached from nothing by a random sequence of the operations, each
    applied only where its caller's preconditions hold (as the cluster checks them)."""
    layouts = Layouts()
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["swap", "rename", "alias", "unalias", "fresh", "shards"]))
        a, b = draw(names), draw(names)
        if kind == "swap" and a != b and resolvable(layouts, a) and resolvable(layouts, b):
            layouts = layouts.swapped([(a, b)])
        elif kind == "rename" and a != b and resolvable(layouts, a):
            layouts = layouts.renamed(a, b)
        elif kind == "alias":
            layouts = layouts.with_alias(a, b)
        elif kind == "unalias":
            layouts = layouts.without_alias(a)
        elif kind == "fresh" and not resolvable(layouts, a):
            layouts = layouts.with_fresh_node_index(a, existing_indexes(layouts))[0]
        elif kind == "shards":
            layouts = layouts.with_node_shards(b, draw(st.none() | st.integers(1, 64)))
    return layouts


def shards_of_uid(layouts, uid, default=7):
    """A uid's shard count: its node-side index's (None: it names no data)."""
    node_index = layouts.node_index(uid)
    return None if node_index is None else layouts.shards_of(node_index, default)


def existing_indexes(layouts):
    """Every node-side index some uid reaches: the ones the nodes would hold."""
    return {layouts.node_index(u) for u in universe(layouts)} - {None}


def universe(layouts):
    return set(NAMES) | set(layouts.entries) | {
        e.node_index for e in layouts.entries.values() if e.node_index is not None}


def test_no_record_is_the_identity_at_the_topology_s():
    assert Layouts().node_index("movies") == "movies"
    assert Layouts().shards_of("movies", 8) == 8
    assert Layouts().client_uid("movies") == "movies"


@given(layouts_after_operations())
def test_a_node_index_belongs_to_at_most_one_uid(layouts):
    resolved = [layouts.node_index(u) for u in universe(layouts)]
    held = [n for n in resolved if n is not None]
    assert len(held) == len(set(held))


@given(layouts_after_operations())
def test_client_uid_inverts_node_index(layouts):
    for uid in universe(layouts):
        node_index = layouts.node_index(uid)
        if node_index is not None:
            assert layouts.client_uid(node_index) == uid
    for node_index in universe(layouts):
        uid = layouts.client_uid(node_index)
        if uid is not None:
            assert layouts.node_index(uid) == node_index


@given(layouts_after_operations(), names, names)
def test_a_swap_exchanges_two_uids_and_nothing_else(layouts, a, b):
    if a == b or not (resolvable(layouts, a) and resolvable(layouts, b)):
        return
    after = layouts.swapped([(a, b)])
    assert after.node_index(a) == layouts.node_index(b)
    assert after.node_index(b) == layouts.node_index(a)
    assert shards_of_uid(after, a) == shards_of_uid(layouts, b)
    assert shards_of_uid(after, b) == shards_of_uid(layouts, a)
    for other in universe(layouts) - {a, b}:
        assert after.node_index(other) == layouts.node_index(other)
        assert shards_of_uid(after, other) == shards_of_uid(layouts, other)
    again = after.swapped([(a, b)])
    for uid in universe(layouts):
        assert again.node_index(uid) == layouts.node_index(uid)


@given(layouts_after_operations(), names, names)
def test_a_rename_moves_the_data_and_leaves_the_old_uid_empty(layouts, old, new):
    if old == new or not resolvable(layouts, old):
        return
    after = layouts.renamed(old, new)
    assert after.node_index(new) == layouts.node_index(old)
    assert shards_of_uid(after, new) == shards_of_uid(layouts, old)
    assert after.node_index(old) is None
    assert after.node_shards == layouts.node_shards


@given(layouts_after_operations(), names, names)
def test_an_alias_reaches_its_node_index_s(layouts, alias, node_index):
    after = layouts.with_alias(alias, node_index)
    assert shards_of_uid(after, alias) == layouts.shards_of(node_index, 7)


@given(layouts_after_operations(), names, st.none() | st.integers(1, 64))
def test_a_shard_count_changes_one_node_index_and_nothing_else(layouts, node_index, shards):
    after = layouts.with_node_shards(node_index, shards)
    assert after.shards_of(node_index, 7) == (7 if shards is None else shards)
    assert after.entries == layouts.entries
    for other in universe(layouts) - {node_index}:
        assert after.shards_of(other, 7) == layouts.shards_of(other, 7)
    if shards is None:
        assert node_index not in after.node_shards


@pytest.mark.parametrize("shards", [0, -1, True])
def test_a_shard_count_is_a_positive_integer(shards):
    with pytest.raises(ValueError):
        Layouts().with_node_shards("a", shards)


@given(layouts_after_operations(), names, names)
def test_an_alias_takes_the_node_index_from_its_holder(layouts, alias, node_index):
    holder = layouts.client_uid(node_index)
    after = layouts.with_alias(alias, node_index)
    assert after.node_index(alias) == node_index
    if holder not in (None, alias):
        assert after.node_index(holder) is None


@given(layouts_after_operations(), names)
def test_a_fresh_node_index_is_held_by_nobody_else(layouts, uid):
    if resolvable(layouts, uid):
        return
    after, name = layouts.with_fresh_node_index(uid, existing_indexes(layouts))
    assert after.node_index(uid) == name
    assert name not in existing_indexes(layouts)
    assert after.client_uid(name) == uid
    assert name not in layouts.node_shards  # a new index never inherits a deleted one's S
    assert after.node_shards == layouts.node_shards


@given(layouts_after_operations())
def test_the_record_round_trips_and_holds_no_default(layouts):
    assert decode_layouts(encode_layouts(layouts)) == layouts
    assert all(e.node_index != u for u, e in layouts.entries.items())


@given(layouts_after_operations())
def test_a_record_without_shard_counts_is_what_older_processes_read(layouts):
    """Format 1 (and no `nodeShards`) until some node-side index has a count of its own; then
    format 2, which a process predating counts refuses rather than misroute."""
    value = encode_layouts(layouts)
    assert value["format"] == (2 if layouts.node_shards else 1)
    assert ("nodeShards" in value) == bool(layouts.node_shards)


@pytest.mark.parametrize("value", [
    {"format": 3, "layouts": {}},
    {"format": 1, "layouts": []},
    {"format": 2, "layouts": {}, "nodeShards": []},
    {"format": 2, "layouts": {}, "nodeShards": {"x": 0}},
    {"format": 2, "layouts": {}, "nodeShards": {"x": None}},
    {"format": 1, "layouts": {"a": {"nodeIndex": 3}}},
    {"format": 1, "layouts": {"a": {"nodeIndex": "x", "shards": 0}}},
    {"format": 1, "layouts": {"a": {"nodeIndex": "x", "shards": True}}},
])
def test_a_malformed_record_names_its_field(value):
    with pytest.raises(LayoutRecordError):
        decode_layouts(value)


def test_no_record_decodes_to_no_layout():
    assert decode_layouts(None) == Layouts()

def test_a_format_1_record_reads_as_before():
    """Records written before shard counts moved to the node-side index: each entry carries
    `"shards": null`; a count there (nothing ever wrote one) becomes its node index's."""
    old = {"format": 1, "layouts": {"a": {"nodeIndex": "b", "shards": None},
                                    "b": {"nodeIndex": "a", "shards": None}}}
    assert decode_layouts(old) == Layouts({"a": IndexLayout("b"), "b": IndexLayout("a")})
    counted = decode_layouts({"format": 1, "layouts": {"a": {"nodeIndex": "x", "shards": 32}}})
    assert counted == Layouts({"a": IndexLayout("x")}, {"x": 32})
    assert shards_of_uid(counted, "a") == 32
