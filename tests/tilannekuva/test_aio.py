import asyncio
import time

from tilannekuva.aio import bounded, check_cancelled, stop_tasks


async def _swallows(times: list[int], seen: list[int]) -> None:
    """Loses the first ``times[0]`` cancellations, as a library on the way can."""
    while True:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append(1)
            if len(seen) > times[0]:
                raise


async def _loop_with_check(ticks: list[int]) -> None:
    while True:
        check_cancelled()
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            pass  # swallowed on the way: the loop's check must still stop it
        ticks.append(1)


def test_a_task_that_loses_a_cancellation_is_asked_again_until_it_stops():
    async def main():
        seen: list[int] = []
        task = asyncio.create_task(_swallows([2], seen))
        await asyncio.sleep(0)
        t0 = time.monotonic()
        stuck = await stop_tasks({"swallower": task}, timeout_s=5)
        return stuck, len(seen), task.cancelled(), time.monotonic() - t0

    stuck, seen, cancelled, took = asyncio.run(main())
    assert stuck == {} and cancelled and seen == 3
    assert took < 4


def test_a_task_that_never_stops_is_named_with_its_stack_and_not_waited_for_long():
    async def main():
        times = [10**9]
        task = asyncio.create_task(_swallows(times, []))
        await asyncio.sleep(0)
        t0 = time.monotonic()
        stuck = await stop_tasks({"swallower": task, "nothing": None}, timeout_s=0.6)
        took = time.monotonic() - t0
        times[0] = 0  # let it go at last, so that asyncio.run can end
        task.cancel()
        return stuck, took

    stuck, took = asyncio.run(main())
    assert list(stuck) == ["swallower"]
    assert "_swallows" in stuck["swallower"]
    assert 0.5 <= took < 3


def test_a_loop_with_the_check_stops_even_when_its_sleep_swallowed_the_cancellation():
    async def main():
        ticks: list[int] = []
        task = asyncio.create_task(_loop_with_check(ticks))
        await asyncio.sleep(0.05)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2)
        return done == {task} and task.cancelled()

    assert asyncio.run(main())


def test_bounded_returns_when_the_step_ends_and_names_a_step_that_hangs():
    async def main():
        quick = await bounded(asyncio.sleep(0.01), "quick", timeout_s=2)
        t0 = time.monotonic()
        slow = await bounded(asyncio.sleep(3600), "slow", timeout_s=0.3)
        return quick, slow, time.monotonic() - t0

    quick, slow, took = asyncio.run(main())
    assert quick == {}
    assert slow == {}  # a plain sleep stops when cancelled after its time is up
    assert 0.25 <= took < 2
