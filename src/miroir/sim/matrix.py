"""What a sweep runs: deployment presets, the matrix file, seed ranges, and the list of runs.

Owns the names a user types (`--deployment 5n-2g-rf2-16s`, `--seeds 1..200`, `--matrix FILE`)
and turns them into an ordered list of `SweepRun`s, each one a complete `RunArgs` (seed, ops,
fault mode, deployment shape) that `miroir.sim.workload.run` executes the same way in any
process. Pure: no processes, no clocks, no output.

Adding a preset is one line in `DEPLOYMENTS`; a new fault mode or client operation is added in
`miroir.sim.workload` (its tables), and a sweep picks it up by name. The matrix file names
deployments (presets or explicit shapes) and, optionally, fault modes; a sweep runs every seed
on every (deployment, fault mode) pair, seed-major, so a sweep cut short has covered every pair
about equally.

Matrix file (YAML)::

    deployments:
      - 3n-rf2                       # a preset, by name
      - {name: wide, nodes: 8, groups: 2, rf: 2, shards: 32}
    faults: [chaos, wipe]            # optional; default: the command line's --faults
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import yaml

from miroir.sim.cluster import SimSpec
from miroir.sim.workload import FAULT_MODES, RunArgs

# The shapes the issue names, plus the CLI's default shape. Names say nodes (n), replica groups
# (g), replication factor (rf) and shards (s) when not the default 1 group / 8 shards.
DEPLOYMENTS: dict[str, SimSpec] = {
    "3n-rf2": SimSpec(nodes=3, groups=1, rf=2, shards=8),
    "5n-2g-rf2-16s": SimSpec(nodes=5, groups=2, rf=2, shards=16),
    "6n-3g-rf1": SimSpec(nodes=6, groups=3, rf=1, shards=8),
}
ALL_PRESETS = "all"
SHAPE_FIELDS = ("nodes", "groups", "rf", "shards")


class MatrixError(ValueError):
    """A bad seed range, preset name or matrix file; the message says which and why."""


@attrs.frozen
class Deployment:
    name: str
    spec: SimSpec


@attrs.frozen
class SweepRun:
    """One simulation of a sweep: its position (`index`) orders the sweep's output."""

    index: int
    deployment: str
    args: RunArgs


def shape_name(spec: SimSpec) -> str:
    """The preset-style name of a shape (`5n-2g-rf2-16s`)."""
    parts = [f"{spec.nodes}n"]
    if spec.groups != 1:
        parts.append(f"{spec.groups}g")
    parts.append(f"rf{spec.rf}")
    if spec.shards != 8:
        parts.append(f"{spec.shards}s")
    if spec.index_shards is not None:
        parts.append(f"i{spec.index_shards}s")  # the index's own shard count
    return "-".join(parts)


def parse_seeds(text: str) -> list[int]:
    """`A..B` (both ends included), `N`, or a comma-separated list of those: `1..20,91,1041`.
    Order is kept and repeats are dropped."""
    seeds: dict[int, None] = {}
    for part in text.split(","):
        part = part.strip()
        low, dots, high = part.partition("..")
        try:
            first, last = (int(low), int(high)) if dots else (int(part), int(part))
        except ValueError:
            raise MatrixError(f"--seeds: {part!r} is not N or A..B") from None
        if first < 0 or last < first:
            raise MatrixError(f"--seeds: {part!r} must be A..B with 0 <= A <= B")
        seeds.update(dict.fromkeys(range(first, last + 1)))
    return list(seeds)


def preset_deployments(names: Iterable[str]) -> list[Deployment]:
    """Presets by name (comma-separated lists allowed); `all` is every preset."""
    chosen: list[str] = []
    for name in (n.strip() for text in names for n in text.split(",")):
        wanted = list(DEPLOYMENTS) if name == ALL_PRESETS else [name]
        for one in wanted:
            if one not in DEPLOYMENTS:
                raise MatrixError(f"--deployment: unknown preset {one!r} (presets: "
                                  f"{', '.join(DEPLOYMENTS)}, or {ALL_PRESETS})")
            if one not in chosen:
                chosen.append(one)
    return [Deployment(name, DEPLOYMENTS[name]) for name in chosen]


def load_matrix(path: Path) -> tuple[list[Deployment], list[str] | None]:
    """(deployments, fault modes or None) from a matrix file; see the module docstring."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise MatrixError(f"--matrix {path}: {error}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("deployments"), list) \
            or not raw["deployments"]:
        raise MatrixError(f"--matrix {path}: needs a non-empty `deployments` list")
    unknown = set(raw) - {"deployments", "faults"}
    if unknown:
        raise MatrixError(f"--matrix {path}: unknown keys {sorted(unknown)}")
    deployments = [_matrix_deployment(path, entry) for entry in raw["deployments"]]
    names = [d.name for d in deployments]
    if len(set(names)) != len(names):
        raise MatrixError(f"--matrix {path}: deployment names repeat: {names}")
    faults = raw.get("faults")
    if faults is not None:
        if not isinstance(faults, list) or not faults \
                or any(f not in FAULT_MODES for f in faults):
            raise MatrixError(f"--matrix {path}: `faults` must be a list of "
                              f"{', '.join(FAULT_MODES)}")
    return deployments, faults


def _matrix_deployment(path: Path, entry: Any) -> Deployment:
    if isinstance(entry, str):
        try:
            return preset_deployments([entry])[0]
        except MatrixError as error:
            raise MatrixError(f"--matrix {path}: {error}") from None
    if not isinstance(entry, dict) or not set(entry) <= {"name", *SHAPE_FIELDS} \
            or not all(isinstance(entry.get(f, 1), int) and entry.get(f, 1) >= 1
                       for f in SHAPE_FIELDS):
        raise MatrixError(f"--matrix {path}: a deployment is a preset name or a mapping of "
                          f"name and positive integers {', '.join(SHAPE_FIELDS)}: {entry!r}")
    spec = SimSpec(**{f: entry[f] for f in SHAPE_FIELDS if f in entry})
    return Deployment(str(entry.get("name") or shape_name(spec)), spec)


def check_deployments(deployments: Sequence[Deployment]) -> None:
    """Every shape must make a valid Miroir config (e.g. RF within a group's size)."""
    from miroir.config import ConfigError

    for deployment in deployments:
        try:
            deployment.spec.config()
        except ConfigError as error:
            raise MatrixError(f"deployment {deployment.name}: {error}") from None


def sweep_runs(seeds: Sequence[int], deployments: Sequence[Deployment], faults: Sequence[str],
               ops: int) -> list[SweepRun]:
    """Every seed on every (deployment, fault mode), seed-major."""
    runs = []
    for seed in seeds:
        for deployment in deployments:
            for mode in faults:
                runs.append(SweepRun(len(runs), deployment.name,
                                     RunArgs(seed, ops, mode, deployment.spec)))
    return runs
