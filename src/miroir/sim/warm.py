"""Warm caches for a sweep's forked runs: importing this module runs one tiny simulation.

A sweep (`miroir.sim.sweep`) forks every run from a multiprocessing forkserver that imported the
simulator once. Importing is not all a run's first moments cost: the first app built in a
process compiles Quart's and werkzeug's route regexes, fills the `re` module's cache and
imports what the app and the devnode import lazily, about 70 ms of CPU that every forked run
paid again. The forkserver imports this module after the simulator (`set_forkserver_preload`),
so that work is done once, before the first fork, and inherited.

Must never: be imported anywhere but a forkserver's preload (it runs a simulation on import), or
leave state a run could see: a run's scheduler seed, scheduling mode and deadline tie-break are
set when it starts and restored when it ends (`miroir.sim.determinism`), and
tests/sim/test_sweep.py checks that a forked run and a run in a process that ran others before
it give the same summary digest.
"""

from __future__ import annotations

import logging

from miroir.sim import workload

_previous = logging.root.manager.disable
logging.disable(logging.CRITICAL)
try:
    workload.run(workload.RunArgs(seed=0, ops=20, faults="chaos"))
except Exception:  # noqa: BLE001 - a failed warm-up costs speed only; a run reports its own
    pass
finally:
    logging.disable(_previous)
