"""AutojumpClock: trio time that moves only when every task waits, straight to the next deadline.

Owns the simulator's notion of "now" for a whole `trio.run`. It behaves like
`trio.testing.MockClock(autojump_threshold=0)` -- time stands still while any task can run, and
jumps to the earliest deadline once none can -- at a lower cost per step, which matters because a
simulated client operation moves the clock five to six times:

- `current_time` returns a stored float. MockClock computes it from `time.perf_counter` on every
  call (about 120 calls per simulated operation), even at rate 0.
- The jump happens inside `deadline_to_sleep_time`, which trio's run loop asks only when no task
  is runnable. MockClock jumps in a separate idle pass after an extra I/O poll, so every jump
  cost two passes of the run loop; here it costs one.

Must never: read the wall clock, or jump while a task is runnable. It is for runs where nothing
outside trio wakes tasks up (no sockets, no threads), which is what the simulator is: a thread
finishing (`trio.to_thread`) would see time already moved to the next deadline. It does not
support `trio.testing.wait_all_tasks_blocked` (the hypothesis state machine keeps MockClock).
"""

from __future__ import annotations

import math

import trio

# When nothing is runnable and no deadline is pending the run is waiting for I/O (or is stuck):
# block in the I/O poll as a real clock would (trio caps it at a day).
_IDLE_WAIT_S = 86_400.0


class AutojumpClock(trio.abc.Clock):
    """A `trio.abc.Clock` for `trio.run(..., clock=AutojumpClock())`; see the module docstring."""

    def __init__(self) -> None:
        self._now = 0.0

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return self._now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        # Trio asks this only when its run queue is empty: every task is waiting.
        if deadline <= self._now:
            return 0.0
        if math.isinf(deadline):
            return _IDLE_WAIT_S
        self._now = deadline
        return 0.0
