"""Semaphore: FIFO fairness, interruptible waiting, exactly-once release."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import effect as fx
from effect.semaphore import Semaphore


def test_with_permits_holds_and_releases() -> None:
    sem = Semaphore(3)
    inside = fx.run_sync(sem.with_permits(2)(sem.available()))
    assert inside == 1
    assert fx.run_sync(sem.available()) == 3


def test_concurrency_never_exceeds_permits() -> None:
    sem = Semaphore(2)
    running = [0]
    peak = [0]

    def enter() -> None:
        running[0] += 1
        peak[0] = max(peak[0], running[0])

    def leave() -> None:
        running[0] -= 1

    def task(_: int) -> fx.Effect[None, fx.Never, fx.Never]:
        body = (
            fx.sync(enter)
            .and_then(fx.yield_now())
            .and_then(fx.yield_now())
            .and_then(fx.sync(leave))
        )
        return sem.with_permits(1)(body)

    fx.run_sync(fx.for_each(range(20), task, concurrency="unbounded"))
    assert peak[0] == 2
    assert fx.run_sync(sem.available()) == 2


def test_waiters_are_served_in_arrival_order() -> None:
    @fx.gen
    def prog() -> fx.Gen[list[str], fx.Never, fx.Never]:
        sem = yield from Semaphore.make(1)
        order: list[str] = []
        yield from sem.take(1)
        fibers = []
        for name in "abcde":
            fibers.append(
                (yield from sem.with_permits(1)(fx.sync(lambda n=name: order.append(n))).fork())
            )
            yield from fx.yield_now()
        yield from sem.release(1)
        for f in fibers:
            yield from f.join()
        return order

    assert fx.run_sync(prog) == list("abcde")


def test_a_large_request_at_the_head_is_not_overtaken() -> None:
    @fx.gen
    def prog() -> fx.Gen[list[str], fx.Never, fx.Never]:
        sem = yield from Semaphore.make(2)
        order: list[str] = []
        yield from sem.take(2)
        big = yield from sem.with_permits(2)(fx.sync(lambda: order.append("big"))).fork()
        yield from fx.yield_now()
        small = yield from sem.with_permits(1)(fx.sync(lambda: order.append("small"))).fork()
        yield from fx.yield_now()
        yield from sem.release(1)
        yield from fx.yield_now()
        assert order == []  # one permit free, but `big` is first in line
        yield from sem.release(1)
        yield from big.join()
        yield from small.join()
        return order

    assert fx.run_sync(prog) == ["big", "small"]


def test_interrupted_waiter_leaves_the_line_without_permits() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[bool, int, str], fx.Never, fx.Never]:
        sem = yield from Semaphore.make(1)
        yield from sem.take(1)
        first = yield from sem.take(1).fork()
        second = yield from sem.with_permits(1)(fx.succeed("second ran")).fork()
        yield from fx.yield_now()
        exit = yield from first.interrupt()
        yield from sem.release(1)
        result = yield from second.join()
        return exit.is_interrupted(), (yield from sem.available()), result

    assert fx.run_sync(prog) == (True, 1, "second ran")


def test_waiter_woken_then_interrupted_before_running_passes_its_turn_on() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[bool, str, int], fx.Never, fx.Never]:
        sem = yield from Semaphore.make(1)
        yield from sem.take(1)
        doomed = yield from sem.with_permits(1)(fx.succeed("doomed")).fork()
        other = yield from sem.with_permits(1)(fx.succeed("other")).fork()
        yield from fx.yield_now()
        # One synchronous step: wake `doomed` (first in line), then interrupt it before
        # it gets to run. Its permit must go to `other`, not leak.
        yield from fx.sync(lambda: sem._release(1))
        exit = yield from doomed.interrupt()
        result = yield from other.join()
        return exit.is_interrupted(), result, (yield from sem.available())

    assert fx.run_sync(prog) == (True, "other", 1)


def test_permits_released_on_failure_defect_and_interruption() -> None:
    sem = Semaphore(2)
    assert fx.run_sync_exit(sem.with_permits(2)(fx.fail("no"))).is_failure()
    assert fx.run_sync(sem.available()) == 2
    assert fx.run_sync_exit(sem.with_permits(2)(fx.die(ValueError("bug")))).is_failure()
    assert fx.run_sync(sem.available()) == 2

    @fx.gen
    def interrupted() -> fx.Gen[int, fx.Never, fx.Never]:
        holder = yield from sem.with_permits(2)(fx.never).fork()
        yield from fx.yield_now()
        assert (yield from sem.available()) == 0
        yield from holder.interrupt()
        return (yield from sem.available())

    assert fx.run_sync(interrupted) == 2


def test_release_never_exceeds_total_and_release_all() -> None:
    sem = Semaphore(2)
    assert fx.run_sync(sem.release(2)) == 2
    assert fx.run_sync(sem.take(2).and_then(sem.release_all())) == 2


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="permits"):
        Semaphore.make(-1)
    sem = Semaphore(3)
    with pytest.raises(ValueError, match="n=4"):
        sem.take(4)
    with pytest.raises(ValueError, match="n=-1"):
        sem.with_permits(-1)
    with pytest.raises(TypeError):
        sem.release(1.5)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_waiting_is_interruptible_by_timeout() -> None:
    sem = Semaphore(1)

    @fx.gen
    def prog() -> fx.Gen[bool, fx.Never, fx.Never]:
        yield from sem.take(1)
        exit = yield from sem.take(1).timeout(0.005).exit()
        return isinstance(exit, fx.Failure)

    assert await fx.run(prog) is True
    assert sem._waiters == type(sem._waiters)()
    assert fx.run_sync(sem.available()) == 0


@pytest.mark.anyio
async def test_with_permits_across_real_sleeps() -> None:
    sem = Semaphore(1)
    order: list[int] = []

    def task(i: int) -> fx.Effect[None, fx.Never, fx.Never]:
        body = (
            fx.sync(lambda: order.append(i))
            .and_then(fx.sleep(0.001))
            .and_then(fx.sync(lambda: order.append(-i)))
        )
        return sem.with_permits(1)(body)

    await fx.run(fx.for_each(range(1, 4), task, concurrency="unbounded"))
    assert order == [1, -1, 2, -2, 3, -3]


SEM_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("run"), st.integers(0, 3), st.integers(0, 3)),
        st.tuples(st.just("interrupt"), st.integers(0, 31)),
        st.tuples(st.just("release_then_interrupt"), st.integers(0, 31)),
        st.tuples(st.just("yield"), st.integers(1, 3)),
    ),
    max_size=30,
)


@settings(max_examples=100, deadline=None)
@given(permits=st.integers(1, 3), ops=SEM_OPS)
def test_permits_are_conserved_under_random_interruptions(
    permits: int, ops: list[tuple[Any, ...]]
) -> None:
    """Random holders (each holding n permits over a few yields) and interruptions at
    random points, including right after a release woke the head of the line: the
    permits in use never exceed the total, and all come back at the end."""
    sem = Semaphore(permits)
    in_use = [0]
    peak = [0]
    fibers: list[fx.Fiber[Any, Any]] = []

    def holder(n: int, steps: int) -> fx.Effect[None, fx.Never, fx.Never]:
        def enter() -> None:
            in_use[0] += n
            peak[0] = max(peak[0], in_use[0])

        def leave(_: object) -> fx.Effect[None, fx.Never, fx.Never]:
            return fx.sync(lambda: in_use.__setitem__(0, in_use[0] - n))

        body = fx.sync(enter).and_then(fx.for_each(range(steps), lambda _: fx.yield_now()))
        return sem.with_permits(min(n, permits))(body.on_exit(leave).as_void)

    @fx.gen
    def driver() -> fx.Gen[int, fx.Never, fx.Never]:
        me = yield from fx.fiber_id()
        for op in ops:
            live = [f for f in fibers if not f.done]
            if op[0] == "run":
                fibers.append((yield from holder(min(op[1], permits), op[2]).fork()))
            elif op[0] == "interrupt" and live:
                yield from live[op[1] % len(live)].interrupt()
            elif op[0] == "release_then_interrupt" and live:
                # Borrow a permit if one is free, give it back (waking the head of the
                # line), and interrupt a fiber in the same step.
                victim = live[op[1] % len(live)]

                def poke(v: fx.Fiber[Any, Any] = victim) -> None:
                    if sem._free > 0:
                        sem._free -= 1
                        sem._release(1)
                    v._signal_interrupt(me)

                yield from fx.sync(poke)
                yield from victim.await_()
            elif op[0] == "yield":
                for _ in range(op[1]):
                    yield from fx.yield_now()
        for fiber in fibers:
            yield from fiber.await_()
        return (yield from sem.available())

    assert fx.run_sync(driver) == permits
    assert peak[0] <= permits
    assert in_use[0] == 0
