"""Laws of a reshard's pure parts: the layouts changes it makes (`Layouts.with_reserved`,
`with_mirror`, `flipped`, and rollback by flipping back) and `miroir.core.reshard_plan` (the
request rule, the shadow's name, the state table, the refusal naming the next window)."""

import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from miroir.core.errors import MeiliError
from miroir.core.index_layout import Layouts, decode_layouts, encode_layouts
from miroir.core.reshard_plan import (
    ACTIVE_STATES,
    FINAL_STATES,
    MAX_SHARDS,
    STATES,
    TRANSITIONS,
    can_move,
    progress,
    read_request,
    shadow_name,
    window_refusal,
)
from miroir.core.reshard_window import DAY_MS, allowed, next_opening, parse_window
from tests.properties.test_index_layout import layouts_after_operations, universe


def start_reshard(layouts, uid, shards):
    """What the engine stores before copying: the shadow reserved, its S, the mirror."""
    old = layouts.node_index(uid)
    shadow = shadow_name(old, shards, universe(layouts) | set(layouts.node_shards))
    return old, shadow, layouts.with_reserved(shadow).with_node_shards(shadow, shards) \
        .with_mirror(old, shadow)


@given(layouts_after_operations(), st.sampled_from(["a", "b", "c"]), st.integers(1, 64))
def test_before_the_flip_clients_see_nothing_new_and_writes_reach_both_sides(layouts, uid, s2):
    if layouts.node_index(uid) is None:
        return
    old, shadow, during = start_reshard(layouts, uid, s2)
    assert shadow not in universe(layouts)  # a fresh name
    for name in universe(layouts) | {shadow}:
        # No uid resolves differently, the shadow is no uid's (an orphan), its name resolves
        # to nothing as a client uid.
        if name != shadow:
            assert during.node_index(name) == layouts.node_index(name)
    assert during.client_uid(shadow) is None and during.node_index(shadow) is None
    assert during.mirror_of(old).node_index == shadow and during.mirror_of(shadow).node_index == old
    assert during.shards_of(shadow, 99) == s2
    assert decode_layouts(encode_layouts(during)) == during


@given(layouts_after_operations(), st.sampled_from(["a", "b", "c"]), st.integers(1, 64))
def test_the_flip_moves_only_the_uid_and_a_rollback_restores_its_resolution(layouts, uid, s2):
    if layouts.node_index(uid) is None:
        return
    old, shadow, during = start_reshard(layouts, uid, s2)
    flipped = during.with_mirror(old, shadow, required=True).flipped(uid, shadow,
                                                                     mirror_back=True)
    assert flipped.node_index(uid) == shadow and flipped.client_uid(shadow) == uid
    assert flipped.shards_of(flipped.node_index(uid), 99) == s2
    # Grace: writes to the new index are mirrored (required) to the old; no other mirror.
    assert dict(flipped.mirrors) == {shadow: flipped.mirror_of(shadow)}
    assert flipped.mirror_of(shadow).node_index == old and flipped.mirror_of(shadow).required
    assert flipped.mirror_of(old).node_index == shadow  # a stale write to old reaches both
    for name in universe(layouts) - {uid, old, shadow}:
        assert flipped.node_index(name) == layouts.node_index(name)
    assert decode_layouts(encode_layouts(flipped)) == flipped
    # Rollback: the uid resolves as before, no mirror; the shadow is forgotten once deleted.
    back = flipped.flipped(uid, old, mirror_back=False).without_mirror(shadow)
    assert not back.mirrors and back.node_index(uid) == old
    forgotten = back.with_node_shards(shadow, None).without_reserved(shadow)
    for name in universe(layouts):
        assert forgotten.node_index(name) == layouts.node_index(name)
        assert forgotten.shards_of(name, 7) == layouts.shards_of(name, 7)
    # Done instead: the old index's entry goes with it.
    done = flipped.without_mirror(shadow).with_node_shards(old, None)
    assert not done.mirrors and done.node_index(uid) == shadow


def test_a_record_with_mirrors_is_format_2_so_older_processes_refuse_it():
    value = encode_layouts(Layouts().with_mirror("a", "b"))
    assert value["format"] == 2 and value["mirrors"] == {"a": {"nodeIndex": "b",
                                                                "required": False}}
    assert encode_layouts(Layouts())["format"] == 1


@given(st.sampled_from(STATES), st.sampled_from(STATES))
def test_the_state_table(before, after):
    if before in FINAL_STATES:
        assert can_move(before, after) == (before == after)  # a final state is final
    if after == "grace":
        assert not can_move(before, after) or before in ("verifying", "grace")
    if after == "done":
        assert not can_move(before, after) or before in ("grace", "done")
    assert set(TRANSITIONS) == set(STATES) and set(ACTIVE_STATES) | set(FINAL_STATES) == set(STATES)


@given(st.integers(1, MAX_SHARDS), st.integers(1, MAX_SHARDS), st.booleans())
def test_a_valid_request_is_read_and_the_current_count_refused(current, shards, force):
    if shards == current:
        with pytest.raises(MeiliError) as refused:
            read_request({"shards": shards, "force": force}, current)
        assert refused.value.code == "miroir_invalid_reshard"
    else:
        assert read_request({"shards": shards, "force": force}, current) == (shards, force)
        assert read_request({"shards": shards}, current) == (shards, False)


@given(st.one_of(st.integers(max_value=0), st.integers(min_value=MAX_SHARDS + 1),
                 st.booleans(), st.text(max_size=3), st.floats(), st.none()))
def test_a_bad_shard_count_is_refused(shards):
    with pytest.raises(MeiliError) as refused:
        read_request({"shards": shards}, 4)
    assert refused.value.code == "miroir_invalid_reshard" and refused.value.status == 400


@given(st.text("abc-", min_size=1, max_size=6), st.integers(1, 64),
       st.sets(st.integers(1, 5), max_size=5))
def test_the_shadow_name_is_the_smallest_free_one(node_index, shards, used):
    taken = {f"{node_index}--s{shards}-{n}" for n in used}
    name = shadow_name(node_index, shards, taken)
    assert name not in taken and name.startswith(f"{node_index}--s{shards}-")
    n = int(name.rsplit("-", 1)[1])
    assert all(f"{node_index}--s{shards}-{m}" in taken for m in range(1, n))


WINDOWS = st.lists(st.builds(lambda a, b: f"{a // 60:02d}:{a % 60:02d}-{b // 60:02d}:"
                             f"{b % 60:02d} UTC", st.integers(0, 1439), st.integers(0, 1439))
                   .filter(lambda t: t[:5] != t[6:11]), max_size=3)


@given(WINDOWS, st.integers(0, 3 * DAY_MS))
def test_a_refusal_names_the_next_opening_and_none_inside_a_window(texts, now):
    windows = [parse_window(t) for t in texts]
    refusal = window_refusal(now, windows)
    if allowed(now, windows):
        assert refusal is None
    else:
        opens = datetime.datetime.fromtimestamp(next_opening(now, windows) / 1000,
                                                tz=datetime.UTC)
        assert opens.strftime("%Y-%m-%dT%H:%M:00Z") in refusal and "force: true" in refusal


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6))
def test_progress_rate_and_eta(copied, total, elapsed):
    shown = progress({"state": "copying", "copyStartedAtMs": 1000, "documentsCopied": copied,
                      "documentsTotal": total, "errors": []}, 1000 + elapsed)
    assert shown["documentsPerSecond"] == pytest.approx(copied * 1000 / elapsed)
    if copied:
        assert shown["etaSeconds"] >= 0
        if copied >= total:
            assert shown["etaSeconds"] == 0
    assert progress({"state": "grace", "errors": []}, 5)["documentsPerSecond"] is None
