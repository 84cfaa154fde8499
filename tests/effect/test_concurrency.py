"""race, race_first, race_all, timeout, all and for_each (R88-R92).

Parallelism is measured by counting fibers running at the same time, never by
wall-clock time."""

from __future__ import annotations

import time
from typing import Any, Never, TypeVar

import anyio
import pytest
from returns.result import Failure as RFailure

import effect as fx
from effect import Die, Fail, Failure, Parallel, Success


def _record(log: list[Any], item: Any) -> fx.Effect[None, Never, Never]:
    return fx.sync(lambda: log.append(item))


V = TypeVar("V")


def _tee(log: list[Any], item: Any, value: V) -> V:
    """Append `item` to `log` and return `value` (for one-line sync thunks)."""
    log.append(item)
    return value


class Gauge:
    """Counts how many tasks run at once, and the most that ever did."""

    def __init__(self) -> None:
        self.current = 0
        self.peak = 0

    def enter(self) -> None:
        self.current += 1
        self.peak = max(self.peak, self.current)

    def leave(self) -> None:
        self.current -= 1

    def task(self, value: Any, seconds: float = 0.02) -> fx.Effect[Any, Never, Never]:
        return (
            fx.sync(self.enter).and_then(fx.sleep(seconds)).ensuring(fx.sync(self.leave)).as_(value)
        )


# -- race (R91) --------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_race_first_success_wins() -> None:
    assert await fx.run(fx.sleep(0.02).as_("slow").race(fx.succeed("fast"))) == "fast"
    assert await fx.run(fx.succeed("fast").race(fx.sleep(0.02).as_("slow"))) == "fast"


@pytest.mark.anyio
async def test_race_loser_is_interrupted_and_awaited() -> None:
    log: list[str] = []
    loser = (
        fx.sleep(5)
        .on_interrupt(lambda _: _record(log, "loser interrupted"))
        .ensuring(fx.sleep(0.01).and_then(_record(log, "loser finalized")))
    )
    winner = fx.sleep(0.005).as_("win")

    @fx.gen
    def prog() -> fx.Gen[tuple[str | None, list[str]], Never, Never]:
        v = yield from loser.race(winner)
        return v, list(log)  # snapshot when race returned

    with anyio.fail_after(3):
        v, snapshot = await fx.run(prog)
    assert v == "win"
    assert snapshot == ["loser interrupted", "loser finalized"]


@pytest.mark.anyio
async def test_race_failure_waits_for_the_other_side() -> None:
    assert await fx.run(fx.fail("a").race(fx.sleep(0.01).as_(2))) == 2
    assert await fx.run(fx.sleep(0.01).as_(2).race(fx.fail("a"))) == 2


@pytest.mark.anyio
async def test_race_defect_waits_for_the_other_side() -> None:
    assert await fx.run(fx.die(ValueError("d")).race(fx.sleep(0.01).as_(2))) == 2


@pytest.mark.anyio
async def test_race_both_fail_is_parallel_left_then_right() -> None:
    # the left side fails last, yet the cause is Parallel(left, right) and either
    # yields the left error
    left = fx.sleep(0.02).and_then(fx.fail("a"))
    right = fx.fail("b")
    ex = await fx.run_exit(left.race(right))
    assert ex == Failure(Parallel(Fail("a"), Fail("b")))
    assert isinstance(ex, Failure)
    assert ex.cause.failures() == ["a", "b"]
    assert await fx.run(left.race(right).either()) == RFailure("a")


@pytest.mark.anyio
async def test_race_function_form() -> None:
    assert await fx.run(fx.race(fx.never, fx.succeed(1))) == 1


@pytest.mark.anyio
async def test_interrupting_a_race_interrupts_both_contestants() -> None:
    log: list[str] = []
    a = fx.never.on_interrupt(lambda _: _record(log, "a"))
    b = fx.never.on_interrupt(lambda _: _record(log, "b"))

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[Never, Never], Never, Never]:
        fiber = yield from a.race(b).fork()
        yield from fx.sleep(0.005)
        ex = yield from fiber.interrupt()
        return ex

    ex = await fx.run(prog)
    assert sorted(log) == ["a", "b"]
    assert isinstance(ex, Failure) and ex.cause.is_interrupted_only()


# -- race_first (R92) --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_race_first_first_completion_wins_even_a_failure() -> None:
    log: list[str] = []
    loser = fx.sleep(5).as_(1).on_interrupt(lambda _: _record(log, "loser interrupted"))
    with anyio.fail_after(3):
        first = fx.sleep(0.005).and_then(fx.fail("first"))
        ex = await fx.run_exit(first.race_first(loser))
    assert ex == Failure(Fail("first"))
    assert log == ["loser interrupted"]


@pytest.mark.anyio
async def test_race_first_success() -> None:
    log: list[str] = []
    loser = fx.sleep(5).as_(1).on_interrupt(lambda _: _record(log, "loser interrupted"))
    with anyio.fail_after(3):
        assert await fx.run(loser.race_first(fx.sleep(0.005).as_(2))) == 2
    assert log == ["loser interrupted"]
    assert await fx.run(fx.race_first(fx.succeed(3), fx.never)) == 3


# -- race_all (R92) ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_race_all_first_success_wins_and_losers_are_awaited() -> None:
    log: list[str] = []

    def loser(name: str) -> fx.Effect[str, Never, Never]:
        return fx.sleep(5).as_(name).ensuring(fx.sleep(0.01).and_then(_record(log, name)))

    @fx.gen
    def prog() -> fx.Gen[tuple[str, list[str]], Never, Never]:
        v = yield from fx.race_all([loser("a"), fx.sleep(0.005).as_("winner"), loser("c")])
        return v, sorted(log)

    with anyio.fail_after(3):
        v, snapshot = await fx.run(prog)
    assert v == "winner"
    assert snapshot == ["a", "c"]


@pytest.mark.anyio
async def test_race_all_failures_wait_for_a_success() -> None:
    eff = fx.race_all([fx.fail("a"), fx.die(ValueError("b")), fx.sleep(0.01).as_("ok")])
    assert await fx.run(eff) == "ok"


@pytest.mark.anyio
async def test_race_all_all_fail_gives_the_last_failure_first() -> None:
    # upstream "returns last failure": 24 fails later than 25, so either gives 24
    later = fx.sleep(0.02).and_then(fx.fail(24))
    sooner = fx.fail(25)
    assert await fx.run(fx.race_all([later, sooner]).either()) == RFailure(24)
    # the order is by time, not by position
    assert await fx.run(fx.race_all([sooner, later]).either()) == RFailure(24)
    ex = await fx.run_exit(fx.race_all([later, sooner]))
    assert isinstance(ex, Failure)
    assert ex.cause == Parallel(Fail(24), Fail(25))
    assert ex.cause.failures() == [24, 25]


@pytest.mark.anyio
async def test_race_all_of_one() -> None:
    assert await fx.run(fx.race_all([fx.succeed(1)])) == 1


# -- timeout (R88, R89) ------------------------------------------------------------------------


def test_timeout_exception_message_format() -> None:
    assert str(fx.TimeoutException(1.5)) == "Operation timed out after '1s 500ms'"
    assert str(fx.TimeoutException(0.02)) == "Operation timed out after '20ms'"


class InstantClock:
    """A clock whose sleeps end at once: a timeout fires immediately."""

    def sleep(self, seconds: float) -> fx.Effect[None, Never, Never]:
        return fx.void

    def now(self) -> float:
        return 0.0


@pytest.mark.anyio
async def test_timeout_message_of_a_one_and_a_half_second_timeout() -> None:
    eff = fx.never.timeout(1.5).pipe(fx.provide_service(fx.Clock, InstantClock()))
    with anyio.fail_after(3):
        ex = await fx.run_exit(eff)
    assert isinstance(ex, Failure)
    [err] = ex.cause.failures()
    assert isinstance(err, fx.TimeoutException)
    assert str(err) == "Operation timed out after '1s 500ms'"


@pytest.mark.anyio
async def test_timeout_fails_with_timeout_exception() -> None:
    with anyio.fail_after(3):
        ex = await fx.run_exit(fx.never.timeout(0.02))
    assert isinstance(ex, Failure)
    assert ex.cause.defects() == []
    [err] = ex.cause.failures()
    assert isinstance(err, fx.TimeoutException)
    assert str(err) == "Operation timed out after '20ms'"


@pytest.mark.anyio
async def test_timeout_success_passes_through() -> None:
    assert await fx.run(fx.sleep(0.001).as_("v").timeout(2)) == "v"
    assert await fx.run(fx.succeed("v").timeout(2)) == "v"


@pytest.mark.anyio
async def test_timeout_failure_passes_through_unchanged() -> None:
    assert await fx.run_exit(fx.fail("e").timeout(2)) == Failure(Fail("e"))


@pytest.mark.anyio
async def test_timeout_defect_passes_through_unchanged() -> None:
    d = ValueError("d")
    assert await fx.run_exit(fx.die(d).timeout(2)) == Failure(Die(d))


@pytest.mark.anyio
async def test_timeout_runs_finalizers_before_failing() -> None:
    log: list[str] = []
    slow = fx.never.ensuring(fx.sleep(0.01).and_then(_record(log, "fin")))
    eff = slow.timeout(0.01).catch_all(lambda e: fx.sync(lambda: (type(e).__name__, list(log))))
    with anyio.fail_after(3):
        assert await fx.run(eff) == ("TimeoutException", ["fin"])


@pytest.mark.anyio
async def test_timeout_of_uninterruptible_work_waits_for_it() -> None:
    # R89: the interrupted effect is awaited, so the uninterruptible work completes
    # before the timeout failure is returned
    log: list[str] = []
    work = fx.sleep(0.04).and_then(_record(log, "work done")).uninterruptible()
    eff = work.timeout(0.005).exit().map(lambda ex: (ex, list(log)))
    ex, snapshot = await fx.run(eff)
    assert snapshot == ["work done"]
    assert isinstance(ex, Failure)
    assert isinstance(ex.cause.failures()[0], fx.TimeoutException)


@pytest.mark.anyio
async def test_timeout_of_repeated_small_uninterruptible_steps_times_out_between_steps() -> None:
    count = [0]

    def loop() -> fx.Effect[Never, Never, Never]:
        step = (
            fx.sleep(0.002)
            .uninterruptible()
            .and_then(fx.sync(lambda: count.__setitem__(0, count[0] + 1)))
        )
        return step.flat_map(lambda _: loop())

    with anyio.fail_after(5):
        ex = await fx.run_exit(fx.suspend(loop).timeout(0.03))
    assert isinstance(ex, Failure)
    assert isinstance(ex.cause.failures()[0], fx.TimeoutException)


@pytest.mark.anyio
async def test_timeout_in_an_uninterruptible_region_does_not_wait_for_the_timer() -> None:
    # upstream "timeout in uninterruptible region": a fast effect with a long timeout
    # returns at once even inside an uninterruptible region (the timer is interruptible)
    start = time.monotonic()
    assert await fx.run(fx.sleep(0.005).as_(1).timeout(3).uninterruptible()) == 1
    assert time.monotonic() - start < 2.5  # generous: it must not wait for the 3s timer


@pytest.mark.anyio
async def test_timeout_interrupts_real_io() -> None:
    log: list[str] = []

    async def slow() -> None:
        try:
            await anyio.sleep(10)
        except anyio.get_cancelled_exc_class():
            log.append("io cancelled")
            raise

    with anyio.fail_after(5):
        ex = await fx.run_exit(fx.promise(slow).timeout(0.01))
    assert log == ["io cancelled"]
    assert isinstance(ex, Failure)


# -- all / for_each ----------------------------------------------------------------------------


def test_all_of_a_tuple_is_a_tuple() -> None:
    assert fx.run_sync(fx.all((fx.succeed(1), fx.succeed("a")))) == (1, "a")
    assert fx.run_sync(fx.all((fx.succeed(1), fx.succeed("a"), fx.succeed(2.0)))) == (1, "a", 2.0)


def test_all_of_a_list_is_a_list() -> None:
    assert fx.run_sync(fx.all([fx.succeed(1), fx.succeed(2)])) == [1, 2]
    assert fx.run_sync(fx.all([])) == []
    assert fx.run_sync(fx.all(fx.succeed(i) for i in range(3))) == [0, 1, 2]


def test_all_is_sequential_by_default_and_stops_at_the_first_failure() -> None:
    log: list[int] = []
    effs = [_record(log, 0), fx.fail("stop"), _record(log, 2)]
    assert fx.run_sync_exit(fx.all(effs)) == Failure(Fail("stop"))
    assert log == [0]


def test_for_each_sequential() -> None:
    log: list[int] = []
    eff = fx.for_each([1, 2, 3], lambda n: fx.sync(lambda: _tee(log, n, n * 10)))
    assert fx.run_sync(eff) == [10, 20, 30]
    assert log == [1, 2, 3]


def test_for_each_is_lazy() -> None:
    log: list[int] = []
    eff = fx.for_each([1, 2], lambda n: fx.sync(lambda: log.append(n)))
    assert log == []
    fx.run_sync(eff)
    fx.run_sync(eff)
    assert log == [1, 2, 1, 2]


def test_for_each_callback_raising_is_a_defect() -> None:
    err = ValueError("callback")

    def f(n: int) -> fx.Effect[int, Never, Never]:
        raise err

    assert fx.run_sync_exit(fx.for_each([1], f)) == Failure(Die(err))
    assert fx.run_sync_exit(fx.for_each([1], f, concurrency=2)) == Failure(Die(err))


@pytest.mark.anyio
async def test_for_each_concurrent_results_in_order() -> None:
    # later items finish first
    eff = fx.for_each(range(5), lambda i: fx.sleep(0.002 * (5 - i)).as_(i), concurrency="unbounded")
    assert await fx.run(eff) == [0, 1, 2, 3, 4]


@pytest.mark.anyio
async def test_sequential_runs_one_at_a_time() -> None:
    g = Gauge()
    assert await fx.run(fx.for_each(range(4), lambda i: g.task(i, 0.005))) == [0, 1, 2, 3]
    assert g.peak == 1


@pytest.mark.anyio
async def test_concurrency_bound_is_reached_and_respected() -> None:
    g = Gauge()
    eff = fx.for_each(range(9), lambda i: g.task(i), concurrency=3)
    assert await fx.run(eff) == list(range(9))
    assert g.peak == 3
    assert g.current == 0


@pytest.mark.anyio
async def test_unbounded_concurrency_runs_everything_at_once() -> None:
    g = Gauge()
    eff = fx.all([g.task(i) for i in range(6)], concurrency="unbounded")
    assert await fx.run(eff) == list(range(6))
    assert g.peak == 6


@pytest.mark.anyio
async def test_concurrency_one_is_sequential() -> None:
    g = Gauge()
    await fx.run(fx.all([g.task(i, 0.005) for i in range(3)], concurrency=1))
    assert g.peak == 1


@pytest.mark.anyio
async def test_all_tuple_concurrent() -> None:
    g = Gauge()
    eff = fx.all((g.task(1), g.task("a")), concurrency=2)
    assert await fx.run(eff) == (1, "a")
    assert g.peak == 2


@pytest.mark.anyio
async def test_first_failure_interrupts_siblings_and_waits_for_them() -> None:
    log: list[str] = []

    def item(i: int) -> fx.Effect[int, str, Never]:
        if i == 2:
            return fx.sleep(0.01).and_then(fx.fail("boom"))
        return (
            fx.sleep(5)
            .as_(i)
            .on_interrupt(lambda _: _record(log, f"interrupted {i}"))
            .ensuring(fx.sleep(0.01).and_then(_record(log, f"finalized {i}")))
        )

    eff = fx.for_each(range(4), item, concurrency="unbounded")
    snapshot_after = eff.exit().map(lambda ex: (ex, sorted(log)))
    with anyio.fail_after(3):
        ex, snapshot = await fx.run(snapshot_after)
    assert isinstance(ex, Failure)
    assert ex.cause.failures() == ["boom"]
    assert ex.cause.defects() == []
    expected = sorted(
        [f"interrupted {i}" for i in (0, 1, 3)] + [f"finalized {i}" for i in (0, 1, 3)]
    )
    assert snapshot == expected


@pytest.mark.anyio
async def test_first_failure_stops_launching_new_items() -> None:
    started: list[int] = []

    def item(i: int) -> fx.Effect[int, str, Never]:
        start = _record(started, i)
        if i == 0:
            return start.and_then(fx.sleep(0.005)).and_then(fx.fail("boom"))
        return start.and_then(fx.sleep(5)).as_(i)

    with anyio.fail_after(3):
        ex = await fx.run_exit(fx.for_each(range(6), item, concurrency=2))
    assert ex == Failure(Fail("boom"))
    assert sorted(started) == [0, 1]


@pytest.mark.anyio
async def test_concurrent_failures_join_as_parallel() -> None:
    eff = fx.all([fx.fail("a"), fx.fail("b")], concurrency="unbounded")
    ex = await fx.run_exit(eff)
    assert isinstance(ex, Failure)
    assert set(ex.cause.failures()) <= {"a", "b"}
    assert ex.cause.failures()[0] in {"a", "b"}
    assert ex.cause.defects() == []


@pytest.mark.anyio
async def test_interrupting_a_concurrent_all_interrupts_every_child() -> None:
    log: list[int] = []

    def item(i: int) -> fx.Effect[int, Never, Never]:
        return fx.never.on_interrupt(lambda _: _record(log, i))

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[list[int], Never], Never, Never]:
        fiber = yield from fx.for_each(range(3), item, concurrency="unbounded").fork()
        yield from fx.sleep(0.005)
        ex = yield from fiber.interrupt()
        return ex

    ex = await fx.run(prog)
    assert sorted(log) == [0, 1, 2]
    assert isinstance(ex, Failure) and ex.cause.is_interrupted_only()


@pytest.mark.anyio
async def test_concurrent_for_each_empty() -> None:
    assert await fx.run(fx.for_each([], fx.succeed, concurrency=4)) == []


@pytest.mark.anyio
async def test_concurrent_for_each_success_exit() -> None:
    ex = await fx.run_exit(fx.for_each([1, 2], lambda n: fx.succeed(n * 2), concurrency=2))
    assert ex == Success([2, 4])
