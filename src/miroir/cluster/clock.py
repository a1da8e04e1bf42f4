"""The wall clock of the cluster layer: one object every reader of "what time is it" shares.

Owns the `Clock` protocol (`now_ms()`: milliseconds since the Unix epoch) and `WallClock`, the
production one. The `Cluster` holds the clock (`cluster.clock`); task records, a node's "last
seen", the health checker's verdicts and the task pruner all read it through the cluster, so
swapping the clock at construction swaps it everywhere: the simulator passes one that reads
trio's virtual time (`miroir.sim.cluster.VirtualClock`).

Waiting is not the clock's business: the background services wait with `trio.sleep`, which
follows trio's own clock (virtual under the simulator's MockClock).

Must never: be read at import time or captured as a value at startup (read it when the time is
needed), or be used for durations (those come from `trio.current_time()`).
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Wall time in milliseconds since the Unix epoch."""

    def now_ms(self) -> int: ...


class WallClock:
    """The host's wall clock."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    def __repr__(self) -> str:
        return "WallClock()"


WALL_CLOCK = WallClock()
