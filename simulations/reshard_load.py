"""Transient load of online resharding (shadow index, dual-hash dual writes), with the real router.

Usage (from the repository root):

    python simulations/reshard_load.py --out DIR [--quick] [--seed N] [--factor F] [--no-plot]

Writes DIR/reshard_load.md (byte-identical for the same arguments) and DIR/reshard_load.png.

Model. An index striped over S_old shards is resharded online to S_new = F * S_old shards on the
same N-node replica group (RF replicas per shard). A shadow index with the new layout is built
beside the old one; until cutover every document lives in both, and every client write goes to
the RF owners of its old shard AND the RF owners of its new shard (dual-hash dual writes). After
cutover the old index is dropped and only the new layout remains. With RG replica groups every
count below is multiplied by RG on both sides of each ratio, so the ratios do not change.

Measured by routing a seeded synthetic corpus of document ids through the real router
(`shard_for_key` for both layouts, `assign_shard_in_group` for both shard maps), for each corpus
size and each of K seeded node-id sets:

- storage amplification: document copies held during migration (old + shadow) over copies held
  before (old). Expected exactly 2.0 while N >= RF: both layouts keep every document RF times.
- peak node storage: the fullest node during migration over the mean node before it: the
  headroom one node needs, in units of its steady-state share.
- write amplification and peak node writes: the same for a seeded stream of client writes (as
  many as there are documents, keys drawn uniformly from the corpus) during migration.
- spread: coefficient of variation of documents per node in the old and the new layout, and of
  shard replicas per node in the new layout (the floor the document spread tends to as the corpus
  grows).
- backfill crossing nodes: the fraction of shadow copies whose node does not already hold that
  document in the old layout, i.e. what the backfill must send over the network.

Owns the corpus generator, the counting and the report. Must never reimplement routing.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as `python simulations/reshard_load.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from miroir.core.placement import assign_shard_in_group, shard_for_key
from simulations.common import (
    coefficient_of_variation,
    import_pyplot,
    markdown_table,
    node_id_set,
    root_mean_square,
    run_and_report,
    save_png,
    simulation_parser,
)

REPORT_NAME = "reshard_load.md"
PLOT_NAME = "reshard_load.png"


@dataclass(frozen=True)
class Layout:
    """A replica group of `nodes` nodes with `old_shards` shards at `rf`, resharded by `factor`."""

    old_shards: int
    nodes: int
    rf: int
    factor: int = 2

    @property
    def new_shards(self) -> int:
        return self.old_shards * self.factor


@dataclass(frozen=True)
class Plan:
    layouts: tuple[Layout, ...]
    corpus_sizes: tuple[int, ...]
    node_sets: int


FULL_LAYOUTS = ((16, 4, 1), (64, 8, 2), (256, 16, 2), (1024, 32, 3))
QUICK_LAYOUTS = ((16, 4, 1), (64, 8, 2))
FULL_SIZES = (1_000, 10_000, 100_000, 1_000_000)
QUICK_SIZES = (1_000, 10_000)


def make_plan(quick: bool, factor: int, node_sets: int | None = None) -> Plan:
    shapes = QUICK_LAYOUTS if quick else FULL_LAYOUTS
    return Plan(
        tuple(Layout(shards, nodes, rf, factor) for shards, nodes, rf in shapes),
        QUICK_SIZES if quick else FULL_SIZES,
        node_sets if node_sets is not None else (3 if quick else 20),
    )


@dataclass(frozen=True)
class Measurement:
    """One (layout, corpus size, node set)."""

    storage_amplification: float
    peak_node_storage: float
    write_amplification: float
    peak_node_writes: float
    cv_docs_old: float
    cv_docs_new: float
    cv_replicas_new: float
    backfill_crossing: float


def corpus_ids(seed: int, count: int) -> list[str]:
    """`count` distinct document ids; a smaller corpus is a prefix of a larger one (same seed)."""
    rng = random.Random(f"miroir-sim-corpus:{seed}")
    return [f"doc-{index}-{rng.getrandbits(32):08x}" for index in range(count)]


def write_stream(seed: int, corpus_size: int) -> list[int]:
    """Indices into the corpus of `corpus_size` client writes during migration (uniform keys)."""
    rng = random.Random(f"miroir-sim-writes:{seed}:{corpus_size}")
    return [rng.randrange(corpus_size) for _ in range(corpus_size)]


def owners_by_shard(shards: int, nodes: Sequence[str], rf: int) -> list[list[str]]:
    return [assign_shard_in_group(shard, nodes, rf) for shard in range(shards)]


def copies_per_node(
    items_per_shard: Mapping[int, int], owners: Sequence[Sequence[str]], nodes: Sequence[str]
) -> dict[str, int]:
    """Each shard's item count lands on every owner of that shard."""
    per_node = dict.fromkeys(nodes, 0)
    for shard, count in items_per_shard.items():
        for node in owners[shard]:
            per_node[node] += count
    return per_node


def measure(
    layout: Layout,
    nodes: Sequence[str],
    shard_pairs: Mapping[tuple[int, int], int],
    write_pairs: Mapping[tuple[int, int], int],
) -> Measurement:
    """Loads for one node set, given how many documents (and writes) route to each
    (old shard, new shard) pair."""
    old_owners = owners_by_shard(layout.old_shards, nodes, layout.rf)
    new_owners = owners_by_shard(layout.new_shards, nodes, layout.rf)

    def split(pairs: Mapping[tuple[int, int], int]) -> tuple[dict[str, int], dict[str, int]]:
        old_counts: Counter[int] = Counter()
        new_counts: Counter[int] = Counter()
        for (old_shard, new_shard), count in pairs.items():
            old_counts[old_shard] += count
            new_counts[new_shard] += count
        return (copies_per_node(old_counts, old_owners, nodes),
                copies_per_node(new_counts, new_owners, nodes))

    stored_old, stored_new = split(shard_pairs)
    written_old, written_new = split(write_pairs)
    crossing = sum(count * len(set(new_owners[new]) - set(old_owners[old]))
                   for (old, new), count in shard_pairs.items())
    replicas_new = Counter(node for owners in new_owners for node in owners)
    return Measurement(
        storage_amplification=_amplification(stored_old, stored_new),
        peak_node_storage=_peak_over_mean(stored_old, stored_new),
        write_amplification=_amplification(written_old, written_new),
        peak_node_writes=_peak_over_mean(written_old, written_new),
        cv_docs_old=coefficient_of_variation([stored_old[n] for n in nodes]),
        cv_docs_new=coefficient_of_variation([stored_new[n] for n in nodes]),
        cv_replicas_new=coefficient_of_variation([replicas_new[n] for n in nodes]),
        backfill_crossing=crossing / sum(stored_new.values()),
    )


def backfill_crossing_model(layout: Layout) -> float:
    """Expected share of shadow copies the backfill must send to another node (see header)."""
    return (1 - 1 / layout.factor) * (1 - layout.rf / layout.nodes)


def _amplification(before: Mapping[str, int], shadow: Mapping[str, int]) -> float:
    return (sum(before.values()) + sum(shadow.values())) / sum(before.values())


def _peak_over_mean(before: Mapping[str, int], shadow: Mapping[str, int]) -> float:
    mean_before = sum(before.values()) / len(before)
    return max(before[node] + shadow[node] for node in before) / mean_before


def simulate(plan: Plan, seed: int) -> dict[tuple[Layout, int], list[Measurement]]:
    """Every (layout, corpus size) with one Measurement per node set, in plan order."""
    ids = corpus_ids(seed, max(plan.corpus_sizes))
    shard_counts = sorted({s for layout in plan.layouts
                           for s in (layout.old_shards, layout.new_shards)})
    # The real router, once per document and shard count; smaller corpora are prefixes.
    routed = {shards: [shard_for_key(doc_id, shards) for doc_id in ids]
              for shards in shard_counts}
    writes_by_size = {size: write_stream(seed, size) for size in plan.corpus_sizes}
    results: dict[tuple[Layout, int], list[Measurement]] = {}
    for layout in plan.layouts:
        for size, writes in writes_by_size.items():
            old_of, new_of = routed[layout.old_shards], routed[layout.new_shards]
            shard_pairs = Counter(zip(old_of[:size], new_of[:size], strict=True))
            write_pairs = Counter((old_of[doc], new_of[doc]) for doc in writes)
            results[(layout, size)] = [
                measure(layout, node_id_set(seed, sample, layout.nodes), shard_pairs, write_pairs)
                for sample in range(plan.node_sets)
            ]
    return results


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _mean_and_max(values: Sequence[float]) -> str:
    return f"{_mean(values):.3f} [{max(values):.3f}]"


def render_report(results: Mapping[tuple[Layout, int], Sequence[Measurement]], plan: Plan,
                  seed: int, quick: bool, plot_written: bool) -> str:
    factor = plan.layouts[0].factor
    command = "python simulations/reshard_load.py --out DIR" + (" --quick" if quick else "")
    if factor != 2:
        command += f" --factor {factor}"
    if seed != 0:
        command += f" --seed {seed}"
    rows = []
    for (layout, size), runs in results.items():
        rows.append([
            f"{layout.old_shards}→{layout.new_shards}", layout.nodes, layout.rf, f"{size:,}",
            f"{_mean([m.storage_amplification for m in runs]):.3f}",
            _mean_and_max([m.peak_node_storage for m in runs]),
            f"{_mean([m.write_amplification for m in runs]):.3f}",
            _mean_and_max([m.peak_node_writes for m in runs]),
            f"{root_mean_square(m.cv_docs_old for m in runs):.3f}",
            f"{root_mean_square(m.cv_docs_new for m in runs):.3f}",
            f"{root_mean_square(m.cv_replicas_new for m in runs):.3f}",
            f"{_mean([m.backfill_crossing for m in runs]):.3f}",
            f"{backfill_crossing_model(layout):.3f}",
        ])
    all_runs = [m for runs in results.values() for m in runs]
    storage = [m.storage_amplification for m in all_runs]
    writes = [m.write_amplification for m in all_runs]
    parts = [
        "# Transient load of online resharding (shadow index, dual-hash dual writes)\n",
        f"Command: `{command}`  \n"
        f"Layouts (S_old→S_new = {factor}×S_old, N nodes, RF): "
        + ", ".join(f"{la.old_shards}→{la.new_shards}/N={la.nodes}/RF={la.rf}"
                    for la in plan.layouts)
        + f"; corpus sizes {', '.join(f'{s:,}' for s in plan.corpus_sizes)} seeded document ids "
        f"(each smaller corpus a prefix of the largest; every document routed, none sampled); "
        f"{plan.node_sets} seeded node-id sets per row (seed {seed}); client writes during "
        "migration: as many as documents, keys uniform over the corpus. Routing by "
        "`shard_for_key` and `assign_shard_in_group`.\n",
        "## What the columns mean\n",
        "- **storage amp**: document copies during migration (old + shadow) over copies before; "
        "mean over node sets.\n"
        "- **peak node storage**: the fullest node during migration over the mean node before "
        "it; mean [max] over node sets. This is the headroom one node must have.\n"
        "- **write amp**, **peak node writes**: the same for the client writes during migration.\n"
        "- **CV docs old / new**: coefficient of variation of documents per node in the old and "
        "the new layout (root mean square over node sets); **CV replicas new**: of shard "
        "replicas per node in the new layout, the floor CV docs new tends to as the corpus "
        "grows.\n"
        "- **backfill crossing**: fraction of shadow copies whose node does not already hold "
        "that document in the old layout (sent over the network by the backfill); **crossing "
        "model**: (1 − 1/F)·(1 − RF/N). A document's new shard is its old shard number plus "
        "k·S_old with k uniform in 0..F−1, and shard k·S_old + s of the shadow has independent "
        "owners unless k = 0: placement scores depend only on the shard number and the node, so "
        "shadow shard s < S_old has exactly the owners of old shard s.\n",
        "## Results\n",
        markdown_table(
            ["S old→new", "N", "RF", "docs", "storage amp", "peak node storage", "write amp",
             "peak node writes", "CV docs old", "CV docs new", "CV replicas new",
             "backfill crossing", "crossing model"],
            rows),
        "## Summary\n",
        f"- Storage amplification across all rows: min {min(storage):.4f}, max "
        f"{max(storage):.4f}; write amplification: min {min(writes):.4f}, max {max(writes):.4f} "
        "(the model's 2.0×: both layouts hold and write every document RF times).\n"
        "- The cluster-wide factor hides the per-node one: the peak node column is what sizing "
        "must use. It is 2× the steady-state share times the fullest node's excess, and that "
        "excess comes from both layouts' spread (shard replicas per node first, then documents "
        "per shard on small corpora).\n"
        "- Shadow shard s < S_old has the owners of old shard s, so a node that is heavy in "
        "the old layout is also heavy in that part of the shadow: the two layouts' excesses "
        "partly land on the same node instead of averaging out.\n"
        "- After cutover the old index is dropped: storage and writes return to 1×, with the "
        "new layout's spread (CV docs new).\n",
    ]
    if plot_written:
        parts.append(f"\n![peak node storage and new-layout spread]({PLOT_NAME})\n")
    return "\n".join(parts)


def write_plot(results: Mapping[tuple[Layout, int], Sequence[Measurement]], path: Path) -> None:
    plt = import_pyplot()
    figure, (peak_axis, spread_axis) = plt.subplots(1, 2, figsize=(12, 4.6))
    layouts = list(dict.fromkeys(layout for layout, _ in results))
    for layout in layouts:
        rows = sorted((size, runs) for (la, size), runs in results.items() if la == layout)
        sizes = [size for size, _ in rows]
        label = f"{layout.old_shards}→{layout.new_shards}, N={layout.nodes}, RF={layout.rf}"
        line, = peak_axis.plot(sizes, [_mean([m.peak_node_storage for m in runs])
                                       for _, runs in rows], "o-", label=label)
        spread_axis.plot(sizes, [root_mean_square(m.cv_docs_new for m in runs)
                                 for _, runs in rows], "o-", color=line.get_color(), label=label)
        spread_axis.plot(sizes, [root_mean_square(m.cv_replicas_new for m in runs)
                                 for _, runs in rows], "--", color=line.get_color(), alpha=0.6)
    peak_axis.axhline(2.0, color="grey", linestyle=":", label="cluster-wide 2.0×")
    peak_axis.set_title("fullest node during migration (× mean node before)")
    spread_axis.set_title("new layout: CV of docs per node (dashed: of shard replicas)")
    for axis in (peak_axis, spread_axis):
        axis.set_xscale("log")
        axis.set_xlabel("documents in the corpus")
        axis.legend(fontsize=8)
    spread_axis.set_yscale("log")
    figure.tight_layout()
    save_png(figure, path)
    plt.close(figure)


def main(argv: Sequence[str] | None = None) -> int:
    parser = simulation_parser(__doc__.splitlines()[0], "small plan (tests, docs)")
    parser.add_argument("--factor", type=int, default=2, help="S_new = factor * S_old")
    parser.add_argument("--node-sets", type=int, help="node-id sets per row (default: plan's)")
    args = parser.parse_args(argv)
    if args.factor < 2:
        parser.error("--factor must be at least 2")
    if args.node_sets is not None and args.node_sets < 1:
        parser.error("--node-sets must be at least 1")
    plan = make_plan(args.quick, args.factor, args.node_sets)
    return run_and_report(
        args, name="reshard_load", compute=lambda: simulate(plan, args.seed),
        write_plot=write_plot,
        render_report=lambda results, plot_written: render_report(
            results, plan, args.seed, args.quick, plot_written=plot_written),
        report_name=REPORT_NAME, plot_name=PLOT_NAME,
        describe=lambda results: f"{len(results)} rows x {plan.node_sets} node sets",
    )


if __name__ == "__main__":
    sys.exit(main())
