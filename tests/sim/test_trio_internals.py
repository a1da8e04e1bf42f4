"""The trio internals the simulator's determinism rests on are still what it expects.

`miroir.sim.determinism` touches three private parts of trio (listed in `TRIO_INTERNALS` and in
docs/simulation.md): it seeds the scheduler's module-level RNG `trio._core._run._r`, pins the
scheduling mode flag `_ALLOW_DETERMINISTIC_SCHEDULING`, and replaces
`trio._core._run.Deadlines.add` to break deadline ties by registration order. pyproject
accepts any trio >= 0.25, so a new trio release could change either without notice; these tests
fail then, each naming what changed, instead of letting same-seed runs silently diverge.
"""

from __future__ import annotations

import ast
import inspect
import random
import textwrap

import pytest
import trio
import trio.testing
from trio._core import _run

from miroir.sim.determinism import (
    TRIO_INTERNALS,
    deterministic_deadline_ties,
    pinned_scheduling_mode,
    seed_trio_scheduler,
)


def scheduling_order(seed: int) -> list[int]:
    """The order in which six tasks pass five checkpoints each, after seeding the scheduler."""

    async def main() -> list[int]:
        order: list[int] = []

        async def worker(number: int) -> None:
            for _ in range(5):
                await trio.lowlevel.checkpoint()
                order.append(number)

        async with trio.open_nursery() as nursery:
            for number in range(6):
                nursery.start_soon(worker, number)
        return order

    seed_trio_scheduler(seed)
    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


# trio reverses each batch on a coin flip from `_r`, or shuffles it with `_r` once its hypothesis
# plugin is loaded (as under this test suite); `miroir simulate` runs without hypothesis. Both
# must draw from `_r`.
@pytest.mark.parametrize("hypothesis_mode", [False, True], ids=["coin-flip", "shuffle"])
def test_the_scheduler_orders_batches_from_the_seeded_module_rng(monkeypatch, hypothesis_mode):
    assert isinstance(getattr(_run, "_r", None), random.Random), TRIO_INTERNALS[0]
    monkeypatch.setattr(_run, "_ALLOW_DETERMINISTIC_SCHEDULING", hypothesis_mode)
    assert scheduling_order(5) == scheduling_order(5), (
        f"same seed, different task order: trio no longer draws only from {TRIO_INTERNALS[0]}"
    )
    orders = {tuple(scheduling_order(seed)) for seed in range(8)}
    assert len(orders) > 1, f"seeding changed nothing: trio no longer uses {TRIO_INTERNALS[0]}"


def test_deadlines_add_is_exactly_what_the_patch_replaces():
    """The patch re-implements `Deadlines.add` with another tie-break; anything else trio's
    version did would be lost while the simulator runs."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(_run.Deadlines.add))).body[0]
    assert isinstance(tree, ast.FunctionDef), TRIO_INTERNALS[1]
    assert [arg.arg for arg in tree.args.args] == ["self", "deadline", "cancel_scope"], (
        f"Deadlines.add changed its parameters; expected {TRIO_INTERNALS[1]}"
    )
    body = [statement for statement in tree.body
            if not (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant))]
    expected = ast.parse(
        "heappush(self._heap, (deadline, id(cancel_scope), cancel_scope))\nself._active += 1"
    ).body
    assert [ast.dump(s) for s in body] == [ast.dump(s) for s in expected], (
        f"Deadlines.add changed; expected {TRIO_INTERNALS[1]}"
    )


class FakeScope:
    """What `Deadlines` reads of a cancel scope: its registered deadline and `_cancel`."""

    def __init__(self, name: str, deadline: float, cancelled: list[str]) -> None:
        self.name = name
        self._registered_deadline = deadline
        self._cancelled = cancelled

    def _cancel(self, reason: object) -> None:
        self._cancelled.append(self.name)


def test_equal_deadlines_expire_in_registration_order_under_the_patch():
    """trio's own `next_deadline`, `_prune` and `expire` read the entries the patched `add`
    writes, as (deadline, tie-break, cancel_scope)."""
    cancelled: list[str] = []
    # Addresses decide trio's own tie-break; make them disagree with registration order.
    scopes = sorted((FakeScope(f"s{i}", 5.0, cancelled) for i in range(40)), key=id, reverse=True)
    with deterministic_deadline_ties():
        deadlines = _run.Deadlines()
        for scope in scopes:
            deadlines.add(scope._registered_deadline, scope)
        deadlines._prune()
        assert deadlines.next_deadline() == 5.0, TRIO_INTERNALS[2]
        assert deadlines.expire(5.0), TRIO_INTERNALS[2]
    assert cancelled == [scope.name for scope in scopes], TRIO_INTERNALS[2]


def test_the_patch_is_undone_on_exit():
    original = _run.Deadlines.add
    with deterministic_deadline_ties():
        assert _run.Deadlines.add is not original
    assert _run.Deadlines.add is original


def test_the_scheduling_mode_flag_changes_the_order_and_pinning_it_removes_the_difference(
        monkeypatch):
    """Whether hypothesis is loaded (it is, under this suite) must not change a seed's schedule:
    the flag trio's hypothesis plugin sets changes the draws, and the pin undoes that."""
    assert isinstance(getattr(_run, "_ALLOW_DETERMINISTIC_SCHEDULING", None), bool), (
        TRIO_INTERNALS[3])
    by_mode = {}
    for mode in (False, True):
        monkeypatch.setattr(_run, "_ALLOW_DETERMINISTIC_SCHEDULING", mode)
        by_mode[mode] = [scheduling_order(seed) for seed in range(8)]
    assert by_mode[False] != by_mode[True], (
        f"the flag no longer changes the schedule; expected {TRIO_INTERNALS[3]}")

    pinned = {}
    for mode in (False, True):
        monkeypatch.setattr(_run, "_ALLOW_DETERMINISTIC_SCHEDULING", mode)
        with pinned_scheduling_mode():
            pinned[mode] = [scheduling_order(seed) for seed in range(8)]
        assert _run._ALLOW_DETERMINISTIC_SCHEDULING is mode  # restored on exit
    assert pinned[False] == pinned[True] == by_mode[False]
