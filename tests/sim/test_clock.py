"""AutojumpClock: time stands still while any task can run, and jumps to the next deadline once
every task waits -- the behaviour of MockClock(autojump_threshold=0) the simulator relies on; and
`wait_until`, which waits on the clock's own timers (or an `Alarm`) with the same meaning as a
`move_on_at` around an `Event.wait`, under either clock."""

from __future__ import annotations

import math

import pytest
import trio
import trio.testing

from miroir.sim.clock import Alarm, AutojumpClock, wait_until


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


CLOCKS = [pytest.param(AutojumpClock, id="autojump"),
          pytest.param(lambda: trio.testing.MockClock(autojump_threshold=0), id="mock-fallback")]


@pytest.mark.parametrize("make_clock", CLOCKS)
def test_wait_until_wakes_at_its_time_or_at_its_alarm_whichever_is_first(make_clock):
    woke: list[tuple[str, float, bool]] = []

    async def waiter(name: str, at: float, alarm: Alarm | None) -> None:
        by_alarm = await wait_until(at, alarm)
        woke.append((name, trio.current_time(), by_alarm))

    async def main() -> None:
        crash = Alarm()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter, "timer", 0.3, None)
            nursery.start_soon(waiter, "alarm first", 0.9, crash)
            nursery.start_soon(waiter, "timer first", 0.1, crash)
            await trio.sleep(0.5)
            crash.set()
        await waiter("already set", 7.0, crash)

    trio.run(main, clock=make_clock())
    assert woke == [("timer first", 0.1, False), ("timer", 0.3, False),
                    ("alarm first", 0.5, True), ("already set", 0.5, True)]


@pytest.mark.parametrize("make_clock", CLOCKS)
def test_wait_until_is_cancellable_and_a_cancelled_wait_never_wakes_later(make_clock):
    async def main() -> list[str]:
        log: list[str] = []
        alarm = Alarm()
        with trio.move_on_after(0.2):
            await wait_until(1.0, alarm)
            log.append("not cancelled")
        log.append(f"cancelled at {trio.current_time()}")
        # The cancelled wait's timer (1.0) and alarm must not wake this task's next wait.
        alarm.set()
        await trio.lowlevel.checkpoint()
        woke_by_alarm = await wait_until(2.0)
        log.append(f"woke at {trio.current_time()} by alarm {woke_by_alarm}")
        return log

    assert trio.run(main, clock=make_clock()) == ["cancelled at 0.2", "woke at 2.0 by alarm False"]


def test_timers_due_together_fire_in_the_order_they_were_set():
    async def main() -> list[int]:
        order: list[int] = []

        async def waiter(i: int) -> None:
            await wait_until(0.5)
            order.append(i)

        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(waiter, i)
                await trio.lowlevel.checkpoint()  # each sets its timer before the next starts
        return order

    from miroir.sim.determinism import pinned_scheduling_mode, seed_trio_scheduler

    with pinned_scheduling_mode():
        orders = set()
        for seed in range(6):
            seed_trio_scheduler(seed)
            orders.add(tuple(trio.run(main, clock=AutojumpClock())))
    # One batch at 0.5: trio's seeded coin flip may reverse it, nothing else reorders it.
    assert orders <= {(0, 1, 2, 3, 4, 5), (5, 4, 3, 2, 1, 0)}
