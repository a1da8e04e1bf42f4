"""Trio's scheduler made a function of the seed: the simulator's only contact with trio internals.

Owns everything that makes one seed give the same bytes in any process, whatever else that
process has loaded. Trio leaves three things to chance that virtual time and seeded faults do
not settle:

1. Which of the tasks that became runnable in the same scheduler pass runs first. Trio draws
   from a module-level `random.Random` (`trio._core._run._r`); `seed_trio_scheduler` seeds it.
2. *How* it draws. By default it reverses each batch on one coin flip; once hypothesis is
   imported in the process (trio registers a hypothesis plugin, and pytest-trio sets the same
   flag), `_ALLOW_DETERMINISTIC_SCHEDULING` is True and it sorts each batch by task creation and
   shuffles it instead. Same seed, other draws: a seed replayed from the CLI and the same seed
   run under pytest took different schedules (seed 149 of issue #19 failed under pytest only).
   `trio_determinism` pins the flag to the CLI's value (coin flips) while a simulation runs.
3. Which of several cancel scopes with equal deadlines expires first: trio breaks the tie by
   `id(scope)`, a memory address that differs between processes; virtual time makes equal
   deadlines common. `deterministic_deadline_ties` breaks it by registration order instead.

Must never: change what trio does beyond an order among equals or a source of randomness, or
stay in effect after the simulation ends. What it relies on is listed in `TRIO_INTERNALS`;
tests/sim/test_trio_internals.py fails naming the item a trio release changed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# What of trio's private internals this module relies on. A trio release that changes any of
# them breaks the simulator's determinism (same seed, same bytes), so
# tests/sim/test_trio_internals.py checks each one and fails naming it; docs/simulation.md
# lists them too. Checked against trio 0.35.
TRIO_INTERNALS = (
    "trio._core._run._r: the module-level random.Random whose draws order each scheduler batch",
    "trio._core._run.Deadlines.add(self, deadline, cancel_scope): its body is exactly "
    "heappush(self._heap, (deadline, id(cancel_scope), cancel_scope)); self._active += 1",
    "trio._core._run.Deadlines reads its heap entries as (deadline, tie-break, cancel_scope)",
    "trio._core._run._ALLOW_DETERMINISTIC_SCHEDULING: a module global the scheduler reads on "
    "every batch, True once hypothesis is imported (shuffle), False otherwise (coin flip)",
)

# The scheduling mode every simulation runs in: the one a plain `miroir simulate` process has
# (no hypothesis imported), so the seeds and traces recorded from the CLI stay what they were.
SIM_SCHEDULING_SHUFFLES = False


def seed_trio_scheduler(seed: int) -> None:
    """Make trio's choice of order among simultaneously runnable tasks a function of `seed`
    (given the scheduling mode; see `trio_determinism`)."""
    from trio._core import _run

    _run._r.seed(f"miroir-sim-scheduler:{seed}")


@contextmanager
def pinned_scheduling_mode(shuffles: bool = SIM_SCHEDULING_SHUFFLES) -> Iterator[None]:
    """While active, trio orders each batch of runnable tasks the same way whether or not
    hypothesis (or pytest-trio) is loaded in this process; restored on exit."""
    from trio._core import _run

    original = _run._ALLOW_DETERMINISTIC_SCHEDULING
    _run._ALLOW_DETERMINISTIC_SCHEDULING = shuffles
    try:
        yield
    finally:
        _run._ALLOW_DETERMINISTIC_SCHEDULING = original


@contextmanager
def deterministic_deadline_ties() -> Iterator[None]:
    """While active, cancel scopes whose deadlines are equal expire in the order they were
    registered, instead of trio's default tie-break by `id(scope)`.

    Patches `trio._core._run.Deadlines.add` for the duration; the tie-break is only an order
    among equal deadlines, so any other trio code running meanwhile is unaffected in meaning.
    """
    from heapq import heappush

    from trio._core import _run

    original = _run.Deadlines.add
    registration = itertools.count()

    def add(self: Any, deadline: float, cancel_scope: Any) -> None:
        heappush(self._heap, (deadline, next(registration), cancel_scope))
        self._active += 1

    _run.Deadlines.add = add
    try:
        yield
    finally:
        _run.Deadlines.add = original


@contextmanager
def trio_determinism(seed: int) -> Iterator[None]:
    """All three for one simulation: the pinned mode, the seeded RNG, the deadline tie-break."""
    with pinned_scheduling_mode(), deterministic_deadline_ties():
        seed_trio_scheduler(seed)
        yield
