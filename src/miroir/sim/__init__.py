"""The deterministic cluster simulator: the real proxy and cluster code over simulated nodes.

- `transport`: SimTransport, devnode engines behind a seeded per-node fault model on trio time.
- `cluster`: SimCluster, the proxy app assembled over SimTransport, a memory store and the
  virtual clock, plus the determinism hooks (seeded scheduler, deadline ties).
- `model`: what a client may read back, and the single-node reference search.
- `simulation`: client operations, faults, checkpoints and the invariants I1-I10.
- `workload`: the seeded random program and summary behind `miroir simulate`.

Docs: docs/simulation.md ("The cluster simulator").
"""
