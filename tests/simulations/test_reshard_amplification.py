"""The measured reshard amplification (simulations/reshard_amplification.py) counts what it
claims: one small deployment resharded in the simulator holds both layouts at its peak (2.0x
storage, as simulations/reshard_load.py's model says), its dual writes are 2.0x while both
layouts take writes, and the backfill's copies are what lifts the write amplification above
that."""

import trio
import trio.testing
from simulations.reshard_amplification import one_row

from miroir.sim.cluster import SimSpec


def test_a_measured_reshard_matches_the_model():
    spec = SimSpec(nodes=3, groups=1, rf=2, shards=4)
    found = trio.run(one_row, spec, 8, 120, 0,
                     clock=trio.testing.MockClock(autojump_threshold=0))
    assert found.state == "done"
    assert found.held_before == 120 * 2  # RF copies of every document
    assert found.storage == 2.0 and sorted(found.held_peak_by_index.values()) == [240, 240]
    copying = found.phases["copying"]
    total, dual = copying.amplification(found.copies)
    assert copying.copied >= 120  # every document copied at least once
    assert abs(dual - 2.0) < 0.05, dual  # each client write reached both layouts, no more
    assert total > dual  # the backfill's node writes come on top
    assert found.phases["verifying"].amplification(found.copies)[1] == 2.0
