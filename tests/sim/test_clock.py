"""AutojumpClock: time stands still while any task can run, and jumps to the next deadline once
every task waits -- the behaviour of MockClock(autojump_threshold=0) the simulator relies on."""

from __future__ import annotations

import math

import trio
import trio.testing

from miroir.sim.clock import AutojumpClock


def test_time_jumps_to_each_deadline_in_order():
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await trio.sleep(seconds)
        woke.append((name, trio.current_time()))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sleeper, "late", 3600.0)
            nursery.start_soon(sleeper, "early", 0.25)
            nursery.start_soon(sleeper, "middle", 2.5)

    trio.run(main, clock=AutojumpClock())
    assert woke == [("early", 0.25), ("middle", 2.5), ("late", 3600.0)]


def test_time_stands_still_while_a_task_can_run():
    seen: list[float] = []

    async def busy() -> None:
        for _ in range(200):
            seen.append(trio.current_time())
            await trio.lowlevel.checkpoint()

    async def main() -> float:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(busy)
            await trio.sleep(1.0)
            return trio.current_time()

    assert trio.run(main, clock=AutojumpClock()) == 1.0
    assert set(seen) == {0.0}


def test_deadlines_cancel_at_their_exact_virtual_time():
    async def main() -> tuple[float, bool]:
        with trio.move_on_after(0.5) as scope:
            await trio.sleep_forever()
        return trio.current_time(), scope.cancelled_caught

    assert trio.run(main, clock=AutojumpClock()) == (0.5, True)


def test_with_no_deadline_it_waits_instead_of_jumping():
    clock = AutojumpClock()
    assert clock.deadline_to_sleep_time(math.inf) > 0
    assert clock.current_time() == 0.0
    assert clock.deadline_to_sleep_time(0.0) == 0.0


def test_same_wake_up_times_as_mock_clock():
    """A small program of overlapping sleeps and timeouts sees the same virtual instants under
    both clocks."""

    async def program() -> list[tuple[int, float]]:
        log: list[tuple[int, float]] = []

        async def worker(i: int) -> None:
            for step in range(5):
                with trio.move_on_after(0.03 * (i + 1)):
                    await trio.sleep(0.01 * (step + i))
                log.append((i, round(trio.current_time(), 9)))

        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(worker, i)
        return sorted(log)

    mock = trio.run(program, clock=trio.testing.MockClock(autojump_threshold=0))
    assert trio.run(program, clock=AutojumpClock()) == mock
