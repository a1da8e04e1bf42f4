"""`settings_sync.intended_settings`: what a committed settings change should have left.

The case behind seed 69's I9 class: three nodes, one did not answer the read back, one was
edited behind Miroir's back after it applied the change. The two that answered tie; the
value the change sent must win, not the first node's by id."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from miroir.cluster.settings_sync import intended_settings

PREVIOUS = {"filterableAttributes": ["_miroir_shard", "genre"], "sortableAttributes": []}
SENT = {"filterableAttributes": ["_miroir_shard"]}


def test_an_edited_node_does_not_outvote_the_change_when_another_node_did_not_answer():
    held = {"n0": {**PREVIOUS},  # edited back to `genre` filterable behind Miroir's back
            "n1": {**PREVIOUS, **SENT},
            "n2": None}  # did not answer
    intended = intended_settings(PREVIOUS, held, ["n0", "n1", "n2"], SENT)
    assert intended["filterableAttributes"] == ["_miroir_shard"]


def test_nor_when_the_edited_nodes_are_the_majority():
    held = {"n0": {**PREVIOUS}, "n1": {**PREVIOUS}, "n2": {**PREVIOUS, **SENT}}
    intended = intended_settings(PREVIOUS, held, ["n0", "n1", "n2"], SENT)
    assert intended["filterableAttributes"] == ["_miroir_shard"]


def test_a_rendering_no_node_echoes_verbatim_is_taken_from_the_majority():
    rendered = {"filterableAttributes": [{"attributePatterns": ["_miroir_shard"]}]}
    held = {"n0": {**PREVIOUS, **rendered}, "n1": {**PREVIOUS, **rendered}, "n2": {**PREVIOUS}}
    intended = intended_settings(PREVIOUS, held, ["n0", "n1", "n2"], SENT)
    assert intended["filterableAttributes"] == rendered["filterableAttributes"]


values = st.sampled_from([["_miroir_shard"], ["_miroir_shard", "genre"], ["_miroir_shard", "year"]])


@given(st.lists(st.one_of(st.none(), values), min_size=1, max_size=5), values)
def test_the_value_sent_wins_whenever_some_node_holds_it(held_values, sent_value):
    nodes = [f"n{i}" for i in range(len(held_values))]
    held = {n: None if v is None else {**PREVIOUS, "filterableAttributes": v}
            for n, v in zip(nodes, held_values, strict=True)}
    intended = intended_settings(PREVIOUS, held, nodes, {"filterableAttributes": sent_value})
    if sent_value in held_values:
        assert intended["filterableAttributes"] == sent_value
    else:
        assert intended["filterableAttributes"] in [v for v in held_values if v is not None] \
            or all(v is None for v in held_values)
