"""The reshuffle simulation counts what it claims to count (simulations/reshuffle.py)."""

import importlib.util
import statistics

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from simulations.common import coefficient_of_variation, node_id_set
from simulations.reshuffle import (
    AddChange,
    Grid,
    RemoveChange,
    change_on_add,
    change_on_remove,
    main,
    rankings,
    replica_counts,
    simulate,
)

from miroir.core.placement import assign_shard_in_group

node_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)
node_sets = st.lists(node_ids, min_size=1, max_size=9, unique=True)
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def owner_sets(shards, nodes, rf):
    """Owner sets straight from the router, one call per shard, as an independent oracle."""
    return [set(assign_shard_in_group(shard, nodes, rf)) for shard in range(shards)]


@settings(max_examples=30)
@given(st.integers(1, 40), node_sets, st.integers(1, 4))
def test_ranking_prefix_is_the_routers_owner_list(shards, nodes, rf):
    ranked = rankings(shards, nodes)
    for shard in range(shards):
        assert ranked[shard][:rf] == assign_shard_in_group(shard, nodes, rf)


@settings(max_examples=30)
@given(st.integers(1, 48), node_sets, node_ids, st.integers(1, 3))
@example(shards=16, nodes=["node1", "node2", "node3"], new_node="node4", rf=2)
def test_adding_a_node_moves_replicas_only_onto_it(shards, nodes, new_node, rf):
    if new_node in nodes or rf > len(nodes):
        return
    grown = nodes + [new_node]
    change = change_on_add(rankings(shards, nodes), rankings(shards, grown), new_node, rf)
    before, after = owner_sets(shards, nodes, rf), owner_sets(shards, grown, rf)
    assert change.moved_shards == sum(old != new for old, new in zip(before, after, strict=True))
    assert change.new_node_replicas == sum(new_node in owners for owners in after)
    assert change.needless_moves == 0
    assert change.moved_shards == change.new_node_replicas


@settings(max_examples=30)
@given(st.integers(1, 48), node_sets, st.integers(1, 3), st.data())
@example(shards=16, nodes=["node1", "node2", "node3"], rf=2, data=None)
def test_removing_a_node_moves_only_its_replicas(shards, nodes, rf, data):
    if rf > len(nodes) - 1:
        return
    removed = nodes[0] if data is None else data.draw(st.sampled_from(nodes))
    shrunk = [node for node in nodes if node != removed]
    change = change_on_remove(rankings(shards, nodes), rankings(shards, shrunk), removed, rf)
    before, after = owner_sets(shards, nodes, rf), owner_sets(shards, shrunk, rf)
    assert change.moved_shards == sum(old != new for old, new in zip(before, after, strict=True))
    assert change.removed_node_replicas == sum(removed in owners for owners in before)
    assert change.needless_moves == 0
    assert change.moved_shards == change.removed_node_replicas


def test_needless_moves_are_counted_when_a_placement_makes_them():
    # A made-up placement that reshuffles between old nodes: the metric must notice.
    before = [["a", "b", "c"], ["b", "c", "a"]]
    after_add = [["new", "a", "b", "c"], ["c", "a", "new", "b"]]
    assert change_on_add(before, after_add, "new", 1) == AddChange(2, 1, 1)
    after_remove = [["b", "a"], ["a", "b"]]
    assert change_on_remove(before, after_remove, "c", 1) == RemoveChange(2, 0, 2)


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=30), st.integers(1, 50))
def test_cv_is_population_std_over_mean_and_scale_free(counts, scale):
    mean = statistics.fmean(counts)
    expected = statistics.pstdev(counts) / mean if mean else 0.0
    assert coefficient_of_variation(counts) == pytest.approx(expected, abs=1e-12)
    assert coefficient_of_variation([c * scale for c in counts]) == pytest.approx(
        coefficient_of_variation(counts), abs=1e-12)


def test_replica_counts_sum_to_shards_times_rf():
    nodes = node_id_set(seed=3, sample=0, size=5)
    ranked = rankings(32, nodes)
    for rf in (1, 2, 3):
        assert sum(replica_counts(ranked, nodes, rf)) == 32 * rf


def test_node_id_sets_are_seeded_distinct_and_grow_by_appending():
    longer = node_id_set(seed=7, sample=2, size=12)
    assert len(set(longer)) == 12
    assert node_id_set(seed=7, sample=2, size=5) == longer[:5]
    assert node_id_set(seed=7, sample=3, size=12) != longer
    assert node_id_set(seed=8, sample=2, size=12) != longer


def test_tiny_grid_has_one_entry_per_sample_and_skips_impossible_cells():
    grid = Grid(shard_counts=(8, 16), node_counts=(1, 2, 3), replication_factors=(1, 2),
                samples=3)
    results = simulate(grid, seed=1)
    cells = {(c.shards, c.nodes, c.rf): c for c in results}
    assert set(cells) == {(s, n, rf) for s in (8, 16) for n in (1, 2, 3) for rf in (1, 2)
                          if rf <= n}
    for cell in results:
        assert len(cell.add) == len(cell.cv) == 3
        assert (cell.remove is None) == (cell.rf > cell.nodes - 1)
        assert all(c.needless_moves == 0 for c in cell.add)


def test_mean_move_on_add_is_near_rf_over_n_plus_one():
    # 16 node sets, S=256: the standard error of the mean is about 0.007; allow 0.03.
    grid = Grid((256,), (8,), (2,), samples=16)
    (cell,) = simulate(grid, seed=0)
    mean = statistics.fmean(cell.add_fractions())
    assert abs(mean - 2 / 9) < 0.03
    assert abs(statistics.fmean(cell.remove_fractions()) - 2 / 8) < 0.03


def test_quick_run_writes_the_same_report_twice(tmp_path):
    flags = ["--no-plot"]  # the plot has its own test; matplotlib is slow to draw
    for name in ("one", "two"):
        assert main(["--out", str(tmp_path / name), "--quick", *flags]) == 0
    first = (tmp_path / "one" / "reshuffle.md").read_bytes()
    assert first == (tmp_path / "two" / "reshuffle.md").read_bytes()
    assert b"| 64 | 8 | 3 |" in first
    assert main(["--out", str(tmp_path / "seeded"), "--quick", "--seed", "5", *flags]) == 0
    assert (tmp_path / "seeded" / "reshuffle.md").read_bytes() != first


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib is in the test extra")
def test_quick_run_writes_a_png(tmp_path):
    assert main(["--out", str(tmp_path), "--quick", "--samples", "2"]) == 0
    png = (tmp_path / "reshuffle.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "![moved fractions" in (tmp_path / "reshuffle.md").read_text()
