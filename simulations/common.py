"""Shared pieces of the placement simulations: seeded node ids, statistics, markdown, plots, CLI.

Owns: how node-id sets are drawn from a seed, the load-spread statistic (coefficient of
variation), the markdown table writer, the one place matplotlib is imported (Agg backend,
PNG without a timestamp), and the command line every simulation shares (`--out`, `--quick`,
`--seed`, `--no-plot`, then compute, plot, write the report, time it on stderr).

Must never: read the clock or any unseeded randomness into a report (reports are byte-identical
for the same arguments), or import matplotlib at module import time (the computations and their
tests run without it).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

Results = TypeVar("Results")


def node_id_set(seed: int, sample: int, size: int) -> list[str]:
    """`size` distinct node ids for sample number `sample`, the same for every run with `seed`.

    Ids look like deployment names with a random suffix ("node-3fa9c2d1"); sequential names
    (node1, node2, ...) would test a single node set, and rendezvous spread is a property of the
    hash over many node sets. A longer set starts with the shorter one (same seed and sample),
    so growing a group in a simulation adds nodes and never renames the old ones.
    """
    # String seeds are hashed with SHA-512 by `random`, independent of PYTHONHASHSEED.
    rng = random.Random(f"miroir-sim:{seed}:{sample}")
    ids: list[str] = []
    seen: set[str] = set()
    while len(ids) < size:
        candidate = f"node-{rng.getrandbits(32):08x}"
        if candidate not in seen:
            seen.add(candidate)
            ids.append(candidate)
    return ids


def coefficient_of_variation(counts: Sequence[float]) -> float:
    """Population standard deviation over mean; 0.0 for an empty or all-zero sequence."""
    if not counts:
        return 0.0
    mean = sum(counts) / len(counts)
    if mean == 0:
        return 0.0
    variance = sum((c - mean) ** 2 for c in counts) / len(counts)
    return math.sqrt(variance) / mean


def root_mean_square(values: Iterable[float]) -> float:
    values = list(values)
    return math.sqrt(sum(v * v for v in values) / len(values)) if values else 0.0


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"


def import_pyplot():
    """matplotlib.pyplot on the Agg backend, or ImportError naming the extra to install."""
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "plots need matplotlib: pip install 'miroir[simulations]' (or pass --no-plot)"
        ) from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(figure, path: Path) -> None:
    """Write `figure` as PNG without the Software/date metadata, so reruns give the same file."""
    figure.savefig(path, format="png", dpi=110, metadata={"Software": None})


def simulation_parser(description: str, quick_help: str) -> argparse.ArgumentParser:
    """The arguments every simulation takes; the caller adds its own after these."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, required=True, help="directory for report and plot")
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-plot", action="store_true", help="skip the PNG (no matplotlib)")
    return parser


def run_and_report(
    args: argparse.Namespace,
    *,
    name: str,
    compute: Callable[[], Results],
    write_plot: Callable[[Results, Path], None],
    render_report: Callable[[Results, bool], str],
    report_name: str,
    plot_name: str,
    describe: Callable[[Results], str],
) -> int:
    """Compute, plot (unless --no-plot), write the report into --out; 0 for `sys.exit`.

    `render_report(results, plot_written)`; `describe(results)` says how much was computed, for
    the timing line.
    """
    if not args.no_plot:
        import_pyplot()  # fail before the work, not after it
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = compute()
    elapsed = time.perf_counter() - started
    if not args.no_plot:
        write_plot(results, args.out / plot_name)
    report = render_report(results, not args.no_plot)
    (args.out / report_name).write_text(report, encoding="utf-8")
    # Timing goes to stderr only: the report must not change between identical runs.
    print(f"{name}: {describe(results)} in {elapsed:.1f}s -> {args.out / report_name}",
          file=sys.stderr)
    return 0
