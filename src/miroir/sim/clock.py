"""AutojumpClock: trio time that moves only when every task waits, straight to the next deadline;
and `wait_until`, the simulator's own cheap way to wait on it.

Owns the simulator's notion of "now" for a whole `trio.run`. It behaves like
`trio.testing.MockClock(autojump_threshold=0)` -- time stands still while any task can run, and
jumps to the earliest deadline once none can -- at a lower cost per step, which matters because a
simulated client operation moves the clock five to six times:

- `current_time` returns a stored float. MockClock computes it from `time.perf_counter` on every
  call (about 120 calls per simulated operation), even at rate 0.
- The jump happens inside `deadline_to_sleep_time`, which trio's run loop asks only when no task
  is runnable. MockClock jumps in a separate idle pass after an extra I/O poll, so every jump
  cost two passes of the run loop; here it costs one.

Wake-ups. A wait through trio's own machinery (`trio.sleep_until`, a `move_on_at` around an
`Event.wait`) costs a cancel scope, a deadline registration and a `Cancelled` exception raised
and caught: ~21 µs of CPU per wait, against ~6 µs for a task parked and rescheduled directly.
The simulated transport waits about twelve times per simulated operation (every node call's
latency), so its waits go through `wait_until` instead: the task is parked on the clock's own
timer heap (and on an `Alarm`, e.g. "this node crashed"), and whichever comes first reschedules
it. The clock fires its timers where it jumps: in `deadline_to_sleep_time`, which trio asks only
when no task is runnable, so a timer never fires while some task could still run at the same
instant (as with trio's deadlines; the order among tasks woken at one instant is trio's seeded
batch order). Timers due together fire in the order they were set. Under any other clock
(MockClock in the hypothesis state machine) `wait_until` falls back to `move_on_at`.

Must never: read the wall clock, or jump while a task is runnable. It is for runs where nothing
outside trio wakes tasks up (no sockets, no threads), which is what the simulator is: a thread
finishing (`trio.to_thread`) would see time already moved to the next deadline. It does not
support `trio.testing.wait_all_tasks_blocked` (the hypothesis state machine keeps MockClock).
"""

from __future__ import annotations

import heapq
import itertools
import math

import outcome
import trio
from trio.lowlevel import Abort, current_clock, current_task, reschedule, wait_task_rescheduled

# When nothing is runnable and no deadline is pending the run is waiting for I/O (or is stuck):
# block in the I/O poll as a real clock would (trio caps it at a day).
_IDLE_WAIT_S = 86_400.0


class _Parked:
    """One task in `wait_until`: woken once, by its timer (False) or its alarm (True)."""

    __slots__ = ("task", "done", "alarm")

    def __init__(self, task: trio.lowlevel.Task, alarm: Alarm | None) -> None:
        self.task = task
        self.done = False
        self.alarm = alarm

    def wake(self, by_alarm: bool) -> None:
        if self.done:
            return
        self.done = True
        if self.alarm is not None:
            self.alarm.unpark(self)
        reschedule(self.task, outcome.Value(by_alarm))

    def abort(self, _raise_cancel: object) -> Abort:
        self.done = True  # its timer entry is skipped when it comes up
        if self.alarm is not None:
            self.alarm.unpark(self)
        return Abort.SUCCEEDED


class Alarm:
    """A one-shot signal (`trio.Event`'s `set`/`is_set`/`wait`) that `wait_until` can park on
    beside a timer; set once, it stays set."""

    __slots__ = ("_set", "_parked")

    def __init__(self) -> None:
        self._set = False
        self._parked: dict[_Parked, None] = {}  # insertion order: woken in the order parked

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        self._set = True
        parked, self._parked = self._parked, {}
        for waiter in parked:
            waiter.wake(True)

    def park(self, waiter: _Parked) -> None:
        self._parked[waiter] = None

    def unpark(self, waiter: _Parked) -> None:
        self._parked.pop(waiter, None)

    async def wait(self) -> None:
        if self._set:
            await trio.lowlevel.checkpoint()
            return
        waiter = _Parked(current_task(), self)
        self.park(waiter)
        await wait_task_rescheduled(waiter.abort)


class AutojumpClock(trio.abc.Clock):
    """A `trio.abc.Clock` for `trio.run(..., clock=AutojumpClock())`; see the module docstring."""

    def __init__(self) -> None:
        self._now = 0.0
        self._timers: list[tuple[float, int, _Parked]] = []
        self._order = itertools.count()

    def start_clock(self) -> None:
        pass

    def current_time(self) -> float:
        return self._now

    def deadline_to_sleep_time(self, deadline: float) -> float:
        # Trio asks this only when its run queue is empty: every task is waiting.
        timers = self._timers
        while timers and timers[0][2].done:  # aborted or woken by their alarm
            heapq.heappop(timers)
        target = min(deadline, timers[0][0]) if timers else deadline
        if target > self._now:
            if math.isinf(target):
                return _IDLE_WAIT_S
            self._now = target
        while timers and timers[0][0] <= self._now:
            heapq.heappop(timers)[2].wake(False)
        return 0.0

    def set_timer(self, at: float, waiter: _Parked) -> None:
        heapq.heappush(self._timers, (at, next(self._order), waiter))


async def wait_until(at: float, alarm: Alarm | None = None) -> bool:
    """Wait until trio time `at`, or until `alarm` is set, whichever comes first: True when the
    alarm ended the wait (or was already set), False at `at`. Always a scheduling point, and
    cancellable, like `trio.sleep_until`; cheap under `AutojumpClock` (module docstring)."""
    if alarm is not None and alarm.is_set():
        await trio.lowlevel.checkpoint()
        return True
    clock = current_clock()
    if not isinstance(clock, AutojumpClock):
        with trio.move_on_at(at):
            if alarm is None:
                await trio.sleep_forever()
            else:
                await alarm.wait()
                return True
        return False
    waiter = _Parked(current_task(), alarm)
    clock.set_timer(at, waiter)
    if alarm is not None:
        alarm.park(waiter)
    return await wait_task_rescheduled(waiter.abort)


async def sleep(seconds: float) -> None:
    """`trio.sleep` for the simulator's own waits (see `wait_until`)."""
    await wait_until(trio.current_time() + seconds)
