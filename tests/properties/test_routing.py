"""Laws of document routing (miroir.core.routing)."""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from miroir.core.documents import canonical_document_id
from miroir.core.errors import MeiliError
from miroir.core.placement import shard_for_key
from miroir.core.routing import (
    SHARD_FIELD,
    _fast_id,
    hide_shard_field,
    route_documents,
    strip_internal_fields,
)
from miroir.core.topology import Node, ShardMap, Topology

ids = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.text(alphabet="abcXYZ019-_", min_size=1, max_size=20),
)
any_values = st.one_of(
    ids, st.text(max_size=8), st.integers(), st.booleans(), st.none(), st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
)


def make_map(shards=16, rf=2, groups=2, per_group=3):
    nodes = tuple(Node(f"g{g}n{i}", "http://127.0.0.1:1", g) for g in range(groups) for i in range(per_group))
    return ShardMap.build(Topology(shards, rf, groups, nodes))


@given(any_values)
@example("x" * 511)
@example("x" * 512)
@example(2**64)
@example(-(2**63) - 1)
@example("é")
def test_fast_id_path_agrees_with_the_general_rule(value):
    fast = _fast_id(value)
    try:
        general = canonical_document_id(value)
    except MeiliError:
        general = None
    if fast is not None:
        assert fast == general
    if general is None:
        assert fast is None


@given(st.lists(ids, min_size=1, max_size=40, unique_by=lambda v: str(v)), st.integers(1, 64))
def test_every_document_reaches_exactly_its_shards_owners(doc_ids, shards):
    shard_map = make_map(shards=shards)
    documents = [{"id": value, "title": f"t{i}"} for i, value in enumerate(doc_ids)]
    routed = route_documents(documents, "id", shard_map)
    for document in documents:
        shard = shard_for_key(str(document["id"]), shards)
        assert document[SHARD_FIELD] == shard
        owners = {node for _, node in shard_map.write_targets(shard)}
        holders = {node for node, batch in routed.per_node.items() if any(d is document for d in batch)}
        assert holders == owners
    assert routed.shards_written == {d[SHARD_FIELD] for d in documents}


def test_integer_and_string_forms_of_an_id_route_together():
    shard_map = make_map(shards=64)
    a, b = {"id": 42}, {"id": "42"}
    route_documents([a, b], "id", shard_map)
    assert a[SHARD_FIELD] == b[SHARD_FIELD]


@given(st.lists(ids, min_size=1, max_size=10), st.data())
def test_one_bad_document_rejects_the_batch_before_anything_is_annotated(doc_ids, data):
    documents = [{"id": value} for value in doc_ids]
    position = data.draw(st.integers(0, len(documents)))
    bad = data.draw(st.sampled_from([{}, {"id": 1.5}, {"id": "a b"}, {"id": 1, "_miroir_x": 1}, 7]))
    documents.insert(position, bad)
    with pytest.raises(MeiliError) as caught:
        route_documents(documents, "id", make_map())
    assert caught.value.code in {"missing_document_id", "invalid_document_id",
                                 "miroir_reserved_field", "malformed_payload"}
    assert not any(isinstance(d, dict) and SHARD_FIELD in d for d in documents)


def test_nested_primary_keys_are_followed():
    document = {"product": {"sku": "abc-1"}}
    route_documents([document], "product.sku", make_map())
    assert document[SHARD_FIELD] == shard_for_key("abc-1", 16)
    assert strip_internal_fields(document) == {"product": {"sku": "abc-1"}}


@pytest.mark.parametrize(
    ("node_says", "client_sees"),
    [
        # The shard field alone: worded as Meilisearch words an index with nothing filterable.
        ("Invalid facet distribution: Attribute `genre` is not filterable. Available filterable "
         "attributes patterns are: `_miroir_shard`.",
         "Invalid facet distribution: Attribute `genre` is not filterable. This index does not "
         "have configured filterable attributes."),
        ("Attribute `x` is not filterable. Available filterable attribute patterns are: "
         "`_miroir_shard`.",
         "Attribute `x` is not filterable. This index does not have configured filterable "
         "attributes."),
        # In a list, either spelling.
        ("Available filterable attribute patterns are: `_miroir_shard`, `year`.",
         "Available filterable attribute patterns are: `year`."),
        ("Available filterable attributes patterns are: `genre, _miroir_shard, year`.",
         "Available filterable attributes patterns are: `genre, year`."),
        ("Attribute `genre` is not facet-searchable. Available facet-searchable attributes "
         "patterns are: `_miroir_shard`. To make it facet-searchable add it to the "
         "`filterableAttributes` index settings.",
         "Attribute `genre` is not facet-searchable. This index does not have configured "
         "facet-searchable attributes. To make it facet-searchable add it to the "
         "`filterableAttributes` index settings."),
        ("Nothing to hide here.", "Nothing to hide here."),
    ],
)
def test_node_messages_never_show_the_shard_field(node_says, client_sees):
    assert hide_shard_field(node_says) == client_sees
