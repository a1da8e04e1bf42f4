"""The transient amplification of an online reshard, measured in the simulator, beside
`simulations/reshard_load.py`'s model (2.0x storage and writes).

Usage (from the repository root):

    python simulations/reshard_amplification.py [--documents N] [--seed N]

Prints two markdown tables (deterministic for the same arguments). Each deployment is the
unmodified proxy app over devnode engines in virtual time, with an index of N documents
resharded S -> S2 through `POST /_miroir/indexes/sim/reshard` while a client updates 20
documents every 0.1 virtual seconds; the reshard engine (`cluster.reshard.Resharder`) copies
at 200 documents per virtual second with a 0.4 s grace period.

- storage amp: the most documents held across every node and every node-side index during the
  reshard (sampled every 5 client writes) over the documents held before it. The model: 2.0
  (old layout + shadow, each RF x RG copies), until the old layout is deleted.
- per reshard state (read before each client write; the engine's writes meanwhile count too):
  client documents written, node documents written to the old index and to the shadow, the
  documents the backfill copied in that state (`documentsCopied` progress), and
  - write amp: node document writes per client document write, over RF x RG (the copies one
    layout makes);
  - without backfill: the same after taking away the backfill's node writes (copied x RF x
    RG): the dual writes, the model's 2.0 while both layouts take writes.

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
STORAGE_HEADER = ("| deployment | S→S2 | docs | held before | held peak (old / shadow) | "
                  "storage amp | virtual s | state |\n|---|---|---|---|---|---|---|---|")
WRITES_HEADER = ("| deployment | S→S2 | state | client docs | node docs (old / shadow) | "
                 "backfill docs | write amp | without backfill |\n"
                 "|---|---|---|---|---|---|---|---|")


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
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    measured = []
    for spec, to_shards in ROWS:
        found = trio.run(one_row, spec, to_shards, args.documents, args.seed,
                         clock=trio.testing.MockClock(autojump_threshold=0))
        measured.append((f"N={spec.nodes} RF={spec.rf} RG={spec.groups}", found))
    print(STORAGE_HEADER)
    for deployment, found in measured:
        peak = " / ".join(f"{count:,}" for _, count in sorted(found.held_peak_by_index.items()))
        print(f"| {deployment} | {found.from_shards}→{found.to_shards} | {found.documents:,} | "
              f"{found.held_before:,} | {found.held_peak:,} ({peak}) | {found.storage:.3f} | "
              f"{found.reshard_seconds:.1f} | {found.state} |")
    print()
    print(WRITES_HEADER)
    for deployment, found in measured:
        print("\n".join(found.rows(deployment)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
