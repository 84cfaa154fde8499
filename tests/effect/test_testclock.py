"""TestClock: virtual time that moves only when the test says so."""

from __future__ import annotations

from typing import Never

import pytest

import effect as fx
from effect.schedule import Schedule
from effect.testing import TestClock


def with_clock(
    eff: fx.Effect[object, object, fx.Clock], clock: TestClock
) -> fx.Effect[object, object, Never]:
    return eff.pipe(fx.provide_service(fx.Clock, clock))  # type: ignore[no-any-return]


def test_sleep_waits_for_adjust() -> None:
    clock = TestClock()

    @fx.gen
    def prog() -> fx.Gen[list[object], fx.Never, fx.Never]:
        fiber = yield from fx.sleep(10).as_("woke").fork()
        yield from clock.adjust(9.999)
        before = fiber.done
        sleeping = yield from clock.sleepers()
        yield from clock.adjust(0.001)
        return [before, sleeping, (yield from fiber.join()), clock.now()]

    assert fx.run_sync(with_clock(prog, clock)) == [False, 1, "woke", 10.0]


def test_sleepers_wake_in_time_order_each_seeing_its_own_deadline() -> None:
    clock = TestClock(start=100.0)
    woke: list[tuple[str, float]] = []

    def sleeper(name: str, d: float) -> fx.Effect[None, Never, Never]:
        return fx.sleep(d).and_then(fx.now()).map(lambda t: woke.append((name, t)))

    @fx.gen
    def prog() -> fx.Gen[None, fx.Never, fx.Never]:
        for name, d in [("c", 5.0), ("a", 1.0), ("b1", 3.0), ("b2", 3.0)]:
            yield from sleeper(name, d).fork()
        yield from clock.adjust(10)

    fx.run_sync(with_clock(prog, clock))
    assert woke == [("a", 101.0), ("b1", 103.0), ("b2", 103.0), ("c", 105.0)]
    assert clock.now() == 110.0


def test_a_fiber_that_sleeps_again_within_the_window_wakes_in_the_same_adjust() -> None:
    clock = TestClock()
    ticks: list[float] = []
    ticker = fx.sleep(1).and_then(fx.now()).map(ticks.append).repeat(Schedule.recurs(9))

    @fx.gen
    def prog() -> fx.Gen[None, fx.Never, fx.Never]:
        yield from ticker.fork()
        yield from clock.adjust(5.5)

    fx.run_sync(with_clock(prog, clock))
    assert ticks == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_retry_with_hours_of_exponential_backoff_is_instant() -> None:
    clock = TestClock()
    attempts: list[float] = []

    def attempt() -> fx.Effect[str, str, Never]:
        attempts.append(clock.now())
        return fx.fail("down") if len(attempts) < 9 else fx.succeed("up")

    policy = Schedule.exponential(60.0)  # 1 min, 2 min, 4 min, ... 128 min

    @fx.gen
    def prog() -> fx.Gen[str, str, fx.Never]:
        fiber = yield from fx.suspend(attempt).retry(policy, times=10).fork()
        yield from clock.adjust(5 * 3600)
        return (yield from fiber.join())

    assert fx.run_sync(with_clock(prog, clock)) == "up"
    assert len(attempts) == 9
    expected = [0.0]
    for n in range(8):
        expected.append(expected[-1] + 60.0 * 2**n)
    assert attempts == expected
    assert attempts[-1] == 60.0 * (2**8 - 1)  # 4.25 hours of virtual time
    assert clock.now() == 5 * 3600


def test_timeout_on_virtual_time() -> None:
    clock = TestClock()

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[object, object], fx.Never, fx.Never]:
        fiber = yield from fx.never.timeout(30).exit().fork()
        yield from clock.adjust(30)
        return (yield from fiber.join())

    exit = fx.run_sync(with_clock(prog, clock))
    assert isinstance(exit, fx.Failure)
    assert isinstance(exit.cause.failures()[0], fx.TimeoutException)
    assert fx.run_sync(clock.sleepers()) == 0


def test_an_interrupted_sleeper_is_forgotten() -> None:
    clock = TestClock()

    @fx.gen
    def prog() -> fx.Gen[tuple[int, int], fx.Never, fx.Never]:
        fiber = yield from fx.sleep(5).fork()
        yield from fx.yield_now()
        before = yield from clock.sleepers()
        yield from fiber.interrupt()
        return before, (yield from clock.sleepers())

    assert fx.run_sync(with_clock(prog, clock)) == (1, 0)
    assert fx.run_sync(clock.adjust_until_idle()) == 0


def test_set_time_wakes_due_sleepers_and_can_move_back() -> None:
    clock = TestClock()

    @fx.gen
    def prog() -> fx.Gen[list[object], fx.Never, fx.Never]:
        fiber = yield from fx.sleep(50).as_("done").fork()
        yield from clock.set_time(60.0)
        result = yield from fiber.join()
        yield from clock.set_time(10.0)
        return [result, clock.now()]

    assert fx.run_sync(with_clock(prog, clock)) == ["done", 10.0]


def test_adjust_until_idle_and_its_limit() -> None:
    clock = TestClock()

    @fx.gen
    def prog() -> fx.Gen[tuple[int, float], fx.Never, fx.Never]:
        yield from fx.sleep(1).repeat(Schedule.recurs(4)).fork()
        yield from fx.sleep(30).fork()
        woken = yield from clock.adjust_until_idle()
        return woken, clock.now()

    assert fx.run_sync(with_clock(prog, clock)) == (6, 30.0)

    forever = fx.sleep(1).repeat(Schedule.forever)
    exit = fx.run_sync_exit(
        with_clock(forever.fork().and_then(clock.adjust_until_idle(max_wakes=50)), clock)
    )
    assert isinstance(exit, fx.Failure)
    assert "50 wake-ups" in str(exit.cause.defects()[0])


def test_layer_and_make() -> None:
    clock = fx.run_sync(TestClock.make(7.0))
    assert fx.run_sync(fx.now().provide(clock.layer())) == 7.0

    @fx.gen
    def prog() -> fx.Gen[float, fx.Never, fx.Clock]:
        fiber = yield from fx.sleep(3).fork()
        yield from clock.adjust(3)
        yield from fiber.join()
        return (yield from fx.now())

    assert fx.run_sync(prog.provide(clock.layer())) == 10.0


def test_bad_input() -> None:
    clock = TestClock()
    with pytest.raises(ValueError, match="seconds"):
        clock.adjust(-1)
    with pytest.raises(ValueError, match="time"):
        clock.set_time(float("inf"))
    with pytest.raises(TypeError, match="start"):
        TestClock("0")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_works_under_an_event_loop() -> None:
    clock = TestClock()
    attempts: list[float] = []

    def attempt() -> fx.Effect[str, str, Never]:
        attempts.append(clock.now())
        return fx.fail("x") if len(attempts) < 4 else fx.succeed("ok")

    @fx.gen
    def prog() -> fx.Gen[str, str, fx.Never]:
        fiber = yield from fx.suspend(attempt).retry(Schedule.spaced(3600.0)).fork()
        # Real async work in between does not disturb virtual time.
        yield from fx.promise(lambda: _zero_sleep())
        yield from clock.adjust(4 * 3600)
        return (yield from fiber.join())

    assert await fx.run(with_clock(prog, clock)) == "ok"
    assert attempts == [0.0, 3600.0, 7200.0, 10800.0]


async def _zero_sleep() -> None:
    import anyio

    await anyio.sleep(0)
