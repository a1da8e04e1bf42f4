"""The transient amplification of an online reshard, measured in the simulator, beside
`simulations/reshard_load.py`'s model (2.0x storage and writes).

Usage (from the repository root):

    python simulations/reshard_amplification.py [--documents N] [--seed N]

Prints a markdown table (deterministic for the same arguments). Each row is one simulated
deployment (the unmodified proxy app over devnode engines, virtual time) with an index of N
documents resharded S -> S2 through `POST /_miroir/indexes/sim/reshard` while a client updates
20 documents every 0.1 virtual seconds; the reshard engine runs as in production.

- storage amp: the most documents held across every node and every node-side index during the
  reshard (sampled every 5 client writes) over the documents held before it. The model: 2.0
  (old layout + shadow, each RF x RG copies), until the old layout is deleted.
- write amp: every node document write during the reshard (client writes to both layouts, the
  backfill's copies, the compare's re-copies) per client document write, over RF x RG (the
  copies one layout makes). The model's 2.0 counts only the dual writes; the backfill adds
  every document once more (RF x RG copies), spread over the client writes of the reshard's
  duration: `2 + docs/written` is that expectation, and what is above it is the compare's
  re-copies.
- by index: node document writes per node-side index (the old layout, the shadow).

Must never: decide anything the engine decides; it is driven through the admin API only.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio
import trio.testing

if __package__ in (None, ""):  # run as `python simulations/reshard_amplification.py`
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from miroir.sim.cluster import SimSpec, open_sim_cluster
from miroir.sim.reshard import Amplification, Resharding, measure_amplification
from miroir.sim.simulation import Simulation

ROWS = (
    (SimSpec(nodes=3, groups=1, rf=1, shards=8), 32),
    (SimSpec(nodes=3, groups=1, rf=2, shards=8), 16),
    (SimSpec(nodes=4, groups=2, rf=1, shards=4), 8),
)
HEADER = ("| S→S2 | docs | client docs written | held before | held peak | storage amp | "
          "node docs written | write amp | 2 + docs/written | virtual s | state | N | RF | RG | by index |\n"
          "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")


async def one_row(spec: SimSpec, to_shards: int, documents: int, seed: int) -> Amplification:
    async with open_sim_cluster(spec, seed=seed) as sim:
        simulation = Simulation(sim, max_latency_s=0.05)
        await sim.request("POST", "/indexes", {"uid": "sim", "primaryKey": "id"})
        async with trio.open_nursery() as nursery:
            nursery.start_soon(Resharding(simulation).run_engine)
            measured = await measure_amplification(simulation, documents=documents,
                                                   to_shards=to_shards)
            nursery.cancel_scope.cancel()
        return measured


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(HEADER)
    for spec, to_shards in ROWS:
        measured = trio.run(one_row, spec, to_shards, args.documents, args.seed,
                            clock=trio.testing.MockClock(autojump_threshold=0))
        by_index = ", ".join(f"{name}: {count:,}" for name, count in
                             sorted(measured.node_documents_by_index.items()))
        print(f"{measured.row()} {spec.nodes} | {spec.rf} | {spec.groups} | {by_index} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
