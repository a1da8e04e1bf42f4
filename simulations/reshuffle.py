"""How many shards move when a node joins or leaves a replica group, and how even the load is.

Usage (from the repository root):

    python simulations/reshuffle.py --out DIR [--quick] [--seed N] [--samples K] [--no-plot]

Writes DIR/reshuffle.md (byte-identical for the same arguments) and DIR/reshuffle.png.

Model. One replica group of N nodes holds S shards, each on RF nodes, placed by the real router
(`miroir.core.placement.assign_shard_in_group`). For every cell of the grid S x N x RF and for
K seeded node-id sets, the simulation places all shards on N nodes, then on N+1 nodes (one node
added) and on N-1 nodes (one node removed, chosen by the seed), and counts:

- moved shards: shards whose owner set changed, as a fraction of S. Theory for rendezvous
  hashing: RF/(N+1) on add (the new node lands in a shard's top RF with that probability) and
  RF/N on remove (the removed node was in the shard's top RF).
- the optimum on add: any placement that keeps balance must give the new node its fair share,
  floor(S*RF/(N+1)) replicas, and a node holds at most one replica of a shard, so at least that
  many shards must change: floor(S*RF/(N+1))/S. On remove the optimum is forced: exactly the
  replicas the removed node held.
- needless moves: replica moves that neither land on the added node nor leave the removed one.
  Rendezvous hashing should make none; the report counts them.
- load spread: coefficient of variation (population std / mean) of shard-replica counts per
  node on the N-node layout, as the root mean square over node sets, beside the model
  sqrt((N-RF)/(S*RF)) (each node's count is Binomial(S, RF/N) under independent uniform rankings).

Owns the grid, the counting and the report. Must never reimplement placement: every owner set
comes from `assign_shard_in_group` (the full ranking, whose RF-prefix is exactly the owner set).
"""

from __future__ import annotations

import math
import random
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as `python simulations/reshuffle.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from miroir.core.placement import assign_shard_in_group
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

REPORT_NAME = "reshuffle.md"
PLOT_NAME = "reshuffle.png"


@dataclass(frozen=True)
class Grid:
    shard_counts: tuple[int, ...]
    node_counts: tuple[int, ...]
    replication_factors: tuple[int, ...]
    samples: int


FULL_GRID = Grid((16, 64, 256, 1024), (2, 4, 8, 16, 32), (1, 2, 3), samples=64)
QUICK_GRID = Grid((16, 64), (2, 4, 8), (1, 2, 3), samples=4)


@dataclass(frozen=True)
class AddChange:
    moved_shards: int
    new_node_replicas: int
    needless_moves: int


@dataclass(frozen=True)
class RemoveChange:
    moved_shards: int
    removed_node_replicas: int
    needless_moves: int


@dataclass(frozen=True)
class CellResult:
    """Counts for one (S, N, RF) cell, one entry per node-id sample."""

    shards: int
    nodes: int
    rf: int
    add: tuple[AddChange, ...]
    remove: tuple[RemoveChange, ...] | None  # None when N-1 < RF (the group cannot hold RF)
    cv: tuple[float, ...]

    @property
    def add_theory(self) -> float:
        return self.rf / (self.nodes + 1)

    @property
    def add_optimum(self) -> float:
        return math.floor(self.shards * self.rf / (self.nodes + 1)) / self.shards

    @property
    def remove_theory(self) -> float:
        return self.rf / self.nodes

    @property
    def cv_model(self) -> float:
        return math.sqrt((self.nodes - self.rf) / (self.shards * self.rf))

    def add_fractions(self) -> list[float]:
        return [change.moved_shards / self.shards for change in self.add]

    def remove_fractions(self) -> list[float]:
        return [change.moved_shards / self.shards for change in self.remove or ()]


def rankings(shards: int, nodes: Sequence[str]) -> list[list[str]]:
    """Every node ranked for every shard by the real router; owners at RF are `ranking[:RF]`."""
    return [assign_shard_in_group(shard, nodes, len(nodes)) for shard in range(shards)]


def replica_counts(ranked: Sequence[Sequence[str]], nodes: Sequence[str], rf: int) -> list[int]:
    counts = dict.fromkeys(nodes, 0)
    for ranking in ranked:
        for node in ranking[:rf]:
            counts[node] += 1
    return [counts[node] for node in nodes]


def change_on_add(
    before: Sequence[Sequence[str]], after: Sequence[Sequence[str]], new_node: str, rf: int
) -> AddChange:
    moved = new_node_replicas = needless = 0
    for old_ranking, new_ranking in zip(before, after, strict=True):
        old_owners, new_owners = set(old_ranking[:rf]), set(new_ranking[:rf])
        if old_owners != new_owners:
            moved += 1
        gained = new_owners - old_owners
        new_node_replicas += new_node in new_owners
        needless += len(gained - {new_node})
    return AddChange(moved, new_node_replicas, needless)


def change_on_remove(
    before: Sequence[Sequence[str]], after: Sequence[Sequence[str]], removed_node: str, rf: int
) -> RemoveChange:
    moved = removed_replicas = needless = 0
    for old_ranking, new_ranking in zip(before, after, strict=True):
        old_owners, new_owners = set(old_ranking[:rf]), set(new_ranking[:rf])
        if old_owners != new_owners:
            moved += 1
        removed_replicas += removed_node in old_owners
        needless += len((old_owners - new_owners) - {removed_node})
    return RemoveChange(moved, removed_replicas, needless)


def removed_node_index(seed: int, sample: int, nodes: int) -> int:
    return random.Random(f"miroir-sim-remove:{seed}:{sample}:{nodes}").randrange(nodes)


def simulate(grid: Grid, seed: int) -> list[CellResult]:
    """Run the whole grid; cells come back ordered by (S, N, RF)."""
    add: dict[tuple[int, int, int], list[AddChange]] = {}
    remove: dict[tuple[int, int, int], list[RemoveChange]] = {}
    spread: dict[tuple[int, int, int], list[float]] = {}
    largest_group = max(grid.node_counts) + 1
    for sample in range(grid.samples):
        pool = node_id_set(seed, sample, largest_group)
        for nodes in grid.node_counts:
            base, new_node = pool[:nodes], pool[nodes]
            removed_node = base[removed_node_index(seed, sample, nodes)]
            shrunk = [node for node in base if node != removed_node]
            for shards in grid.shard_counts:
                before = rankings(shards, base)
                grown = rankings(shards, base + [new_node])
                after_remove = rankings(shards, shrunk)
                for rf in grid.replication_factors:
                    if rf > nodes:
                        continue
                    key = (shards, nodes, rf)
                    add.setdefault(key, []).append(change_on_add(before, grown, new_node, rf))
                    spread.setdefault(key, []).append(
                        coefficient_of_variation(replica_counts(before, base, rf)))
                    if rf <= nodes - 1:
                        remove.setdefault(key, []).append(
                            change_on_remove(before, after_remove, removed_node, rf))
    return [
        CellResult(shards, nodes, rf, tuple(add[key]),
                   tuple(remove[key]) if key in remove else None, tuple(spread[key]))
        for key in sorted(add)
        for shards, nodes, rf in [key]
    ]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def _fraction_with_range(values: Sequence[float]) -> str:
    return f"{_mean(values):.3f} [{min(values):.3f}–{max(values):.3f}]"


def render_report(results: Sequence[CellResult], grid: Grid, seed: int, quick: bool,
                  plot_written: bool) -> str:
    command = "python simulations/reshuffle.py --out DIR" + (" --quick" if quick else "")
    if seed != 0:
        command += f" --seed {seed}"
    rows = []
    for cell in results:
        rows.append([
            cell.shards, cell.nodes, cell.rf,
            _fraction_with_range(cell.add_fractions()),
            f"{cell.add_theory:.3f}",
            f"{cell.add_optimum:.3f}",
            f"{_mean(cell.add_fractions()) / cell.add_optimum:.3f}" if cell.add_optimum else "—",
            _fraction_with_range(cell.remove_fractions()) if cell.remove else "—",
            f"{cell.remove_theory:.3f}" if cell.remove else "—",
            f"{root_mean_square(cell.cv):.3f}",
            f"{cell.cv_model:.3f}",
        ])
    needless = sum(c.needless_moves for cell in results for c in cell.add)
    needless += sum(c.needless_moves for cell in results for c in cell.remove or ())
    add_samples = sum(len(cell.add) for cell in results)
    remove_samples = sum(len(cell.remove or ()) for cell in results)
    remove_exact = all(c.moved_shards == c.removed_node_replicas
                       for cell in results for c in cell.remove or ())
    add_exact = all(c.moved_shards == c.new_node_replicas for cell in results for c in cell.add)
    worst = max(results, key=lambda cell: abs(_mean(cell.add_fractions()) - cell.add_theory))
    worst_gap = _mean(worst.add_fractions()) - worst.add_theory
    ratio_by_shards = {
        shards: [_mean(c.add_fractions()) / c.add_optimum
                 for c in results if c.shards == shards and c.add_optimum]
        for shards in grid.shard_counts
    }
    ratio_lines = "".join(
        f"  - S={shards}: mean {_mean(ratios):.3f} (min {min(ratios):.3f}, max {max(ratios):.3f})\n"
        for shards, ratios in ratio_by_shards.items() if ratios)

    parts = [
        "# Reshuffle on membership change (rendezvous placement)\n",
        f"Command: `{command}`  \n"
        f"Grid: S ∈ {list(grid.shard_counts)}, N (nodes per group) ∈ {list(grid.node_counts)}, "
        f"RF ∈ {list(grid.replication_factors)} (cells with RF ≤ N); "
        f"{grid.samples} seeded node-id sets per cell (seed {seed}); owners from "
        "`miroir.core.placement.assign_shard_in_group`.\n",
        "## What the columns mean\n",
        "- **add moved**: shards whose owner set changed when one node joined the N-node group, "
        "as a fraction of S; mean over node-id sets, [min–max] across them. On add exactly one "
        "replica of a changed shard moves, so the fraction of replica slots that move is this "
        "divided by RF.\n"
        "- **add theory**: RF/(N+1), the chance that the new node ranks in a shard's top RF.\n"
        "- **add optimum**: ⌊S·RF/(N+1)⌋/S. To keep balance the new node must receive its fair "
        "share ⌊S·RF/(N+1)⌋ of replicas, at most one per shard, so no placement can change fewer "
        "shards. Rendezvous matches it in expectation; a single node set lands above or below it "
        "(below means the new node is under its fair share).\n"
        "- **add / optimum**: mean add moved over add optimum.\n"
        "- **remove moved**, **remove theory** RF/N: the same when one seeded node leaves "
        "(— when N−1 < RF). The optimum on remove is forced: exactly the replicas the removed "
        "node held.\n"
        "- **CV**: coefficient of variation (population std / mean) of shard-replica counts per "
        "node on the N-node layout, root mean square over node sets; **CV model**: "
        "√((N−RF)/(S·RF)), each node's count being Binomial(S, RF/N).\n",
        "## Results\n",
        markdown_table(
            ["S", "N", "RF", "add moved", "add theory", "add optimum", "add / optimum",
             "remove moved", "remove theory", "CV", "CV model"],
            rows),
        "## Summary\n",
        f"- Needless moves (a replica moving anywhere but onto the added node, or away from "
        f"anything but the removed node): {needless} across {add_samples} adds and "
        f"{remove_samples} removes.\n"
        f"- Shards moved on add equal the replicas the new node receives in every sample: "
        f"{'yes' if add_exact else 'NO'}. Shards moved on remove equal the replicas the removed "
        f"node held (the forced optimum) in every sample: {'yes' if remove_exact else 'NO'}.\n"
        "- Add moved over the optimum, across the cells of each S (cells whose optimum is 0 "
        "left out; small S is dominated by the rounding in ⌊S·RF/(N+1)⌋):\n" + ratio_lines +
        f"- Largest gap between mean add moved and RF/(N+1): {worst_gap:+.3f} at S={worst.shards}, "
        f"N={worst.nodes}, RF={worst.rf}.\n",
    ]
    if plot_written:
        parts.append(f"\n![moved fractions and load spread]({PLOT_NAME})\n")
    return "\n".join(parts)


def write_plot(results: Sequence[CellResult], path: Path) -> None:
    plt = import_pyplot()
    largest_s = max(cell.shards for cell in results)
    rfs = sorted({cell.rf for cell in results})
    figure, (add_axis, remove_axis, cv_axis) = plt.subplots(1, 3, figsize=(15, 4.6))
    for rf in rfs:
        cells = [c for c in results if c.shards == largest_s and c.rf == rf]
        _plot_moves(add_axis, cells, rf, CellResult.add_fractions, lambda c: c.add_theory)
        _plot_moves(remove_axis, [c for c in cells if c.remove], rf,
                    CellResult.remove_fractions, lambda c: c.remove_theory)
    for axis, title in ((add_axis, f"add one node (S={largest_s})"),
                        (remove_axis, f"remove one node (S={largest_s})")):
        axis.set_xscale("log", base=2)
        axis.set_xlabel("nodes per group before the change (N)")
        axis.set_ylabel("fraction of shards moved")
        axis.set_title(title)
        axis.legend(fontsize=8)
    spread_rf = 2 if 2 in rfs else rfs[0]
    for nodes in sorted({c.nodes for c in results if c.rf == spread_rf and c.nodes > spread_rf}):
        cells = sorted((c for c in results if c.rf == spread_rf and c.nodes == nodes),
                       key=lambda c: c.shards)
        xs = [c.shards for c in cells]
        line, = cv_axis.plot(xs, [root_mean_square(c.cv) for c in cells], "o-", label=f"N={nodes}")
        cv_axis.plot(xs, [c.cv_model for c in cells], "--", color=line.get_color(), alpha=0.6)
    cv_axis.set_xscale("log", base=2)
    cv_axis.set_yscale("log")
    cv_axis.set_xlabel("shards (S)")
    cv_axis.set_ylabel("CV of replicas per node")
    cv_axis.set_title(f"load spread, RF={spread_rf} (dashed: binomial model)")
    cv_axis.legend(fontsize=8)
    figure.tight_layout()
    save_png(figure, path)
    plt.close(figure)


def _plot_moves(axis, cells, rf, fractions, theory) -> None:
    if not cells:
        return
    cells = sorted(cells, key=lambda c: c.nodes)
    xs = [c.nodes for c in cells]
    means = [_mean(fractions(c)) for c in cells]
    low = [m - min(fractions(c)) for m, c in zip(means, cells, strict=True)]
    high = [max(fractions(c)) - m for m, c in zip(means, cells, strict=True)]
    bars = axis.errorbar(xs, means, yerr=[low, high], fmt="o", capsize=3,
                         label=f"RF={rf} measured (min–max)")
    axis.plot(xs, [theory(c) for c in cells], "-", color=bars[0].get_color(), alpha=0.6,
              label=f"RF={rf} theory")


def main(argv: Sequence[str] | None = None) -> int:
    parser = simulation_parser(__doc__.splitlines()[0], "small grid (tests, docs)")
    parser.add_argument("--samples", type=int, help="node-id sets per cell (default: grid's)")
    args = parser.parse_args(argv)
    grid = QUICK_GRID if args.quick else FULL_GRID
    if args.samples is not None:
        if args.samples < 1:
            parser.error("--samples must be at least 1")
        grid = Grid(grid.shard_counts, grid.node_counts, grid.replication_factors, args.samples)
    return run_and_report(
        args, name="reshuffle", compute=lambda: simulate(grid, args.seed),
        write_plot=write_plot,
        render_report=lambda results, plot_written: render_report(
            results, grid, args.seed, args.quick, plot_written=plot_written),
        report_name=REPORT_NAME, plot_name=PLOT_NAME,
        describe=lambda results: f"{len(results)} cells x {grid.samples} node sets",
    )


if __name__ == "__main__":
    sys.exit(main())
