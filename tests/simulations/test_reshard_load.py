"""The reshard-load simulation counts what it claims to count (simulations/reshard_load.py)."""

import importlib.util
import statistics
from collections import Counter

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from simulations.common import coefficient_of_variation, node_id_set
from simulations.reshard_load import (
    Layout,
    backfill_crossing_model,
    corpus_ids,
    main,
    make_plan,
    measure,
    simulate,
)

from miroir.core.placement import assign_shard_in_group, shard_for_key

node_ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=10)
HAVE_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def brute_force(layout, nodes, doc_ids, write_ids):
    """Route every document and write one by one through the router and count per node."""
    def per_node(keys):
        old, new = Counter(), Counter()
        for key in keys:
            old.update(assign_shard_in_group(shard_for_key(key, layout.old_shards), nodes,
                                             layout.rf))
            new.update(assign_shard_in_group(shard_for_key(key, layout.new_shards), nodes,
                                             layout.rf))
        return [old[n] for n in nodes], [new[n] for n in nodes]

    stored_old, stored_new = per_node(doc_ids)
    written_old, written_new = per_node(write_ids)
    crossing = sum(
        len(set(assign_shard_in_group(shard_for_key(key, layout.new_shards), nodes, layout.rf))
            - set(assign_shard_in_group(shard_for_key(key, layout.old_shards), nodes,
                                        layout.rf)))
        for key in doc_ids)
    return stored_old, stored_new, written_old, written_new, crossing


def pairs(layout, keys):
    return Counter((shard_for_key(k, layout.old_shards), shard_for_key(k, layout.new_shards))
                   for k in keys)


@settings(max_examples=25)
@given(
    st.lists(st.text(max_size=12), min_size=1, max_size=60, unique=True),
    st.lists(node_ids, min_size=1, max_size=7, unique=True),
    st.integers(1, 3), st.integers(1, 24), st.integers(2, 4), st.data(),
)
@example(doc_ids=["a", "b", "c", "d"], nodes=["n1", "n2"], rf=2, old_shards=2, factor=2,
         data=None)
def test_measure_matches_routing_each_document_through_the_router(
        doc_ids, nodes, rf, old_shards, factor, data):
    if rf > len(nodes):
        return
    layout = Layout(old_shards, len(nodes), rf, factor)
    write_ids = doc_ids[::-1] if data is None else data.draw(
        st.lists(st.sampled_from(doc_ids), min_size=1, max_size=40))
    measured = measure(layout, nodes, pairs(layout, doc_ids), pairs(layout, write_ids))
    stored_old, stored_new, written_old, written_new, crossing = brute_force(
        layout, nodes, doc_ids, write_ids)

    # Both layouts keep every document RF times: the cluster-wide factor is exactly 2.
    assert sum(stored_old) == sum(stored_new) == len(doc_ids) * rf
    assert measured.storage_amplification == 2.0
    assert measured.write_amplification == 2.0
    mean_old = sum(stored_old) / len(nodes)
    peak = max(o + n for o, n in zip(stored_old, stored_new, strict=True))
    assert measured.peak_node_storage == pytest.approx(peak / mean_old)
    mean_written = sum(written_old) / len(nodes)
    peak_written = max(o + n for o, n in zip(written_old, written_new, strict=True))
    assert measured.peak_node_writes == pytest.approx(peak_written / mean_written)
    assert measured.cv_docs_old == pytest.approx(coefficient_of_variation(stored_old))
    assert measured.cv_docs_new == pytest.approx(coefficient_of_variation(stored_new))
    assert measured.backfill_crossing == pytest.approx(crossing / (len(doc_ids) * rf))


def test_new_layout_replica_spread_counts_shard_replicas():
    layout = Layout(old_shards=8, nodes=3, rf=2)
    nodes = node_id_set(seed=0, sample=0, size=3)
    measured = measure(layout, nodes, Counter({(0, 0): 1}), Counter({(0, 0): 1}))
    replicas = Counter(n for s in range(16) for n in assign_shard_in_group(s, nodes, 2))
    assert measured.cv_replicas_new == pytest.approx(
        coefficient_of_variation([replicas[n] for n in nodes]))


def test_corpus_ids_are_seeded_distinct_and_nested():
    large = corpus_ids(seed=4, count=5000)
    assert len(set(large)) == 5000
    assert corpus_ids(seed=4, count=100) == large[:100]
    assert corpus_ids(seed=5, count=100) != large[:100]


def test_backfill_crossing_is_near_its_model():
    layout = Layout(old_shards=64, nodes=8, rf=2)
    doc_pairs = pairs(layout, corpus_ids(seed=0, count=20_000))
    crossings = [measure(layout, node_id_set(0, sample, 8), doc_pairs, doc_pairs).backfill_crossing
                 for sample in range(8)]
    assert backfill_crossing_model(layout) == pytest.approx(0.375)
    # Shard-level noise dominates (128 shards); the mean over 8 node sets is within 0.04.
    assert abs(statistics.fmean(crossings) - 0.375) < 0.04


def test_simulate_covers_the_plan_in_layout_then_size_order():
    plan = make_plan(quick=True, factor=2, node_sets=2)
    results = simulate(plan, seed=0)
    assert list(results) == [(la, size) for la in plan.layouts for size in plan.corpus_sizes]
    assert all(len(runs) == 2 for runs in results.values())


def test_quick_run_writes_the_same_report_twice(tmp_path):
    flags = ["--no-plot"]  # the plot has its own test; matplotlib is slow to draw
    for name in ("one", "two"):
        assert main(["--out", str(tmp_path / name), "--quick", *flags]) == 0
    first = (tmp_path / "one" / "reshard_load.md").read_bytes()
    assert first == (tmp_path / "two" / "reshard_load.md").read_bytes()
    assert "| 64→128 | 8 | 2 | 10,000 | 2.000 |".encode() in first


def test_factor_below_two_is_refused(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path), "--quick", "--factor", "1", "--no-plot"])
    assert exit_info.value.code == 2


@pytest.mark.skipif(not HAVE_MATPLOTLIB, reason="matplotlib is in the test extra")
def test_quick_run_writes_a_png(tmp_path):
    assert main(["--out", str(tmp_path), "--quick", "--node-sets", "1"]) == 0
    assert (tmp_path / "reshard_load.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
