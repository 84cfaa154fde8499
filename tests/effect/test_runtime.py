"""Running effects: run / run_exit / run_sync / run_sync_exit, FiberFailure, the
synchronous runner's limits, host-task cancellation, and bad input (R82-R84)."""

from __future__ import annotations

import math
from typing import Any, Never

import anyio
import pytest

import effect as fx
from effect import Die, Fail, Failure, Interrupt, Sequential, Success


def _record(log: list[Any], item: Any) -> fx.Effect[None, Never, Never]:
    return fx.sync(lambda: log.append(item))


# -- run / run_exit (R82, R83) ---------------------------------------------------------------


@pytest.mark.anyio
async def test_run_returns_the_value() -> None:
    assert await fx.run(fx.succeed(1).map(lambda n: n + 1)) == 2


@pytest.mark.anyio
async def test_run_raises_fiber_failure_with_the_cause() -> None:
    with pytest.raises(fx.FiberFailure) as info:
        await fx.run(fx.fail("x"))
    err = info.value
    assert err.cause == Fail("x")
    # R82: the message is the first error's message; str() renders the cause
    assert err.args[0] == "x"
    assert str(err) == "(FiberFailure) Error: x"


@pytest.mark.anyio
async def test_run_fiber_failure_of_an_exception_failure() -> None:
    e = ValueError("bad input")
    with pytest.raises(fx.FiberFailure) as info:
        await fx.run(fx.fail(e))
    assert info.value.args[0] == "bad input"
    assert str(info.value) == "(FiberFailure) ValueError: bad input"
    assert info.value.cause.failures() == [e]


@pytest.mark.anyio
async def test_run_fiber_failure_of_a_defect() -> None:
    d = KeyError("k")
    with pytest.raises(fx.FiberFailure) as info:
        await fx.run(fx.die(d))
    assert info.value.cause == Die(d)
    assert str(info.value).startswith("(FiberFailure) KeyError: ")


@pytest.mark.anyio
async def test_run_fiber_failure_of_interrupt_only() -> None:
    # R82: interrupt-only: message "An error has occurred", string
    # "(FiberFailure) All fibers interrupted without errors."
    with pytest.raises(fx.FiberFailure) as info:
        await fx.run(fx.interrupt())
    err = info.value
    assert err.cause.is_interrupted_only()
    assert err.args[0] == "An error has occurred"
    assert str(err) == "(FiberFailure) All fibers interrupted without errors."


@pytest.mark.anyio
async def test_run_fiber_failure_keeps_the_whole_cause() -> None:
    d = ValueError("fin")
    with pytest.raises(fx.FiberFailure) as info:
        await fx.run(fx.fail("body").ensuring(fx.die(d)))
    assert info.value.cause == Sequential(Fail("body"), Die(d))
    assert info.value.args[0] == "body"


@pytest.mark.anyio
async def test_run_exit_never_raises_for_failures() -> None:
    d = ValueError("d")
    assert await fx.run_exit(fx.succeed(1)) == Success(1)
    assert await fx.run_exit(fx.fail("e")) == Failure(Fail("e"))
    assert await fx.run_exit(fx.die(d)) == Failure(Die(d))
    ex = await fx.run_exit(fx.interrupt())
    assert isinstance(ex, Failure) and ex.cause.is_interrupted_only()


@pytest.mark.anyio
async def test_run_with_async_steps() -> None:
    async def add(n: int) -> int:
        await anyio.sleep(0.001)
        return n + 1

    eff = fx.promise(lambda: add(1)).flat_map(lambda n: fx.sleep(0.001).as_(n * 10))
    assert await fx.run(eff) == 20


@pytest.mark.anyio
async def test_run_inside_a_running_loop_and_concurrently() -> None:
    results: list[int] = []

    async def one(n: int) -> None:
        results.append(await fx.run(fx.sleep(0.005).as_(n)))

    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(one, n)
    assert sorted(results) == [0, 1, 2, 3, 4]


@pytest.mark.anyio
async def test_run_sync_inside_a_running_loop() -> None:
    # a synchronous effect does not touch the event loop, even if one is running
    assert fx.run_sync(fx.succeed(1).map(lambda n: n + 1)) == 2


def test_run_from_anyio_run_on_both_backends() -> None:
    for backend in ("asyncio", "trio"):
        assert anyio.run(fx.run, fx.sleep(0.001).as_("done"), backend=backend) == "done"


# -- run_sync / run_sync_exit (R84) -----------------------------------------------------------


def test_run_sync_returns_the_value() -> None:
    assert fx.run_sync(fx.succeed("v")) == "v"


def test_run_sync_raises_fiber_failure() -> None:
    with pytest.raises(fx.FiberFailure) as info:
        fx.run_sync(fx.fail("x"))
    assert info.value.cause == Fail("x")
    assert info.value.args[0] == "x"
    assert str(info.value) == "(FiberFailure) Error: x"


def test_run_sync_exit() -> None:
    assert fx.run_sync_exit(fx.fail(1)) == Failure(Fail(1))
    assert fx.run_sync_exit(fx.succeed(1)) == Success(1)


def test_run_sync_of_a_promise_is_an_async_fiber_error() -> None:
    async def work() -> int:
        return 1

    log: list[str] = []
    with pytest.raises(fx.FiberFailure) as info:
        fx.run_sync(fx.promise(work).ensuring(_record(log, "finalizer")))
    cause = info.value.cause
    assert cause.failures() == []
    [defect] = cause.defects()
    assert isinstance(defect, fx.AsyncFiberError)
    assert "cannot be resolved synchronously" in str(defect)
    assert str(defect).startswith("Fiber #")
    assert log == ["finalizer"]


def test_run_sync_of_a_real_sleep_is_an_async_fiber_error() -> None:
    log: list[str] = []
    ex = fx.run_sync_exit(fx.sleep(0.01).ensuring(_record(log, "finalizer")))
    assert isinstance(ex, Failure)
    [defect] = ex.cause.defects()
    assert isinstance(defect, fx.AsyncFiberError)
    assert "cannot be resolved synchronously" in str(defect)
    assert log == ["finalizer"]


def test_run_sync_async_error_is_a_defect_not_caught_by_catch_all() -> None:
    async def work() -> int:
        return 1

    eff = fx.promise(work).catch_all(lambda _: fx.succeed(0))
    ex = fx.run_sync_exit(eff)
    assert isinstance(ex, Failure)
    assert isinstance(ex.cause.defects()[0], fx.AsyncFiberError)


def test_run_sync_of_never_does_not_hang() -> None:
    log: list[str] = []
    ex = fx.run_sync_exit(fx.never.ensuring(_record(log, "fin")))
    assert isinstance(ex, Failure)
    assert not isinstance(ex, Success)
    assert log == ["fin"]


def test_run_sync_with_forked_fibers() -> None:
    eff = fx.all([fx.succeed(i).fork() for i in range(3)]).flat_map(
        lambda fibers: fx.all([f.join() for f in fibers])
    )
    assert fx.run_sync(eff) == [0, 1, 2]


# -- cancellation of the host task ----------------------------------------------------------


@pytest.mark.anyio
async def test_host_cancellation_interrupts_the_effect_and_runs_finalizers() -> None:
    log: list[str] = []
    exits: list[fx.Exit[Any, Any]] = []

    async def async_cleanup() -> None:
        await anyio.sleep(0.01)
        log.append("async finalizer done")

    eff = (
        fx.never.on_exit(lambda ex: _record(exits, ex))
        .ensuring(fx.promise(async_cleanup))
        .ensuring(_record(log, "sync finalizer"))
    )
    reached_after = False
    with anyio.move_on_after(0.02) as scope:
        await fx.run(eff)
        reached_after = True
    assert scope.cancelled_caught
    assert not reached_after
    # finalizers, even async ones, ran before the cancellation propagated
    assert log == ["async finalizer done", "sync finalizer"]
    [ex] = exits
    assert isinstance(ex, Failure) and ex.cause.is_interrupted_only()


@pytest.mark.anyio
async def test_host_cancellation_of_run_exit_propagates() -> None:
    log: list[str] = []
    with anyio.move_on_after(0.01) as scope:
        await fx.run_exit(fx.sleep(5).ensuring(_record(log, "fin")))
    assert scope.cancelled_caught
    assert log == ["fin"]


@pytest.mark.anyio
async def test_host_cancellation_cancels_real_io() -> None:
    log: list[str] = []

    async def slow() -> None:
        try:
            await anyio.sleep(10)
        except anyio.get_cancelled_exc_class():
            log.append("io cancelled")
            raise

    with anyio.fail_after(5):
        with anyio.move_on_after(0.02) as scope:
            await fx.run(fx.promise(slow).ensuring(_record(log, "fin")))
    assert scope.cancelled_caught
    assert log == ["io cancelled", "fin"]


@pytest.mark.anyio
async def test_host_cancellation_waits_for_an_uninterruptible_region() -> None:
    log: list[str] = []
    work = fx.sleep(0.03).and_then(_record(log, "region done")).uninterruptible()
    with anyio.move_on_after(0.005) as scope:
        await fx.run(work.and_then(_record(log, "after region")))
    assert scope.cancelled_caught
    assert log == ["region done"]


@pytest.mark.anyio
async def test_host_cancellation_interrupts_forked_children() -> None:
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[None, Never, Never]:
        yield from fx.never.on_interrupt(lambda _: _record(log, "child interrupted")).fork()
        yield from fx.never

    with anyio.move_on_after(0.02):
        await fx.run(prog)
    assert log == ["child interrupted"]


@pytest.mark.anyio
async def test_host_cancellation_interrupt_uses_an_outside_interruptor() -> None:
    seen: list[frozenset[int]] = []
    with anyio.move_on_after(0.01):
        await fx.run(fx.never.on_interrupt(lambda ids: _record(seen, ids)))
    [ids] = seen
    assert ids  # interrupted by someone


@pytest.mark.anyio
async def test_run_interrupts_daemon_fibers_when_it_ends() -> None:
    log: list[str] = []
    daemon = fx.never.on_interrupt(lambda _: _record(log, "daemon interrupted")).fork_daemon()
    # let the daemon start (a fiber interrupted before its first step never runs)
    assert await fx.run(daemon.zip_left(fx.sleep(0.005)).as_(1)) == 1
    assert log == ["daemon interrupted"]


# -- bad input --------------------------------------------------------------------------------


class NotAnEffect:
    def __repr__(self) -> str:
        return "<NotAnEffect sentinel>"


BAD = NotAnEffect()


@pytest.mark.anyio
async def test_run_rejects_non_effects() -> None:
    with pytest.raises(TypeError, match="NotAnEffect sentinel"):
        await fx.run(BAD)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="NotAnEffect sentinel"):
        await fx.run_exit(BAD)  # type: ignore[arg-type]


def test_run_sync_rejects_non_effects() -> None:
    with pytest.raises(TypeError, match="NotAnEffect sentinel"):
        fx.run_sync(BAD)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="NotAnEffect sentinel"):
        fx.run_sync_exit(BAD)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="42"):
        fx.run_sync(42)  # type: ignore[arg-type]


def test_flat_map_returning_a_non_effect_dies_naming_the_value() -> None:
    ex: fx.Exit[Any, Any] = fx.run_sync_exit(fx.succeed(1).flat_map(lambda _: BAD))  # type: ignore[arg-type,return-value]
    assert isinstance(ex, Failure)
    [defect] = ex.cause.defects()
    assert isinstance(defect, TypeError)
    assert "NotAnEffect sentinel" in str(defect)


def test_flat_map_returning_none_dies_naming_the_value() -> None:
    ex: fx.Exit[Any, Any] = fx.run_sync_exit(fx.succeed(1).flat_map(lambda _: None))  # type: ignore[arg-type,return-value]
    assert isinstance(ex, Failure)
    [defect] = ex.cause.defects()
    assert isinstance(defect, TypeError)
    assert "None" in str(defect)


def test_all_rejects_non_effects() -> None:
    with pytest.raises(TypeError, match="NotAnEffect sentinel"):
        fx.all([fx.succeed(1), BAD])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="NotAnEffect sentinel"):
        fx.all((fx.succeed(1), BAD))  # type: ignore[arg-type]


def test_for_each_callback_returning_non_effect_dies() -> None:
    ex: fx.Exit[Any, Any] = fx.run_sync_exit(fx.for_each([1], lambda _: BAD))  # type: ignore[arg-type,return-value]
    assert isinstance(ex, Failure)
    [defect] = ex.cause.defects()
    assert isinstance(defect, TypeError)
    assert "NotAnEffect sentinel" in str(defect)


def test_race_rejects_non_effects() -> None:
    with pytest.raises(TypeError, match="NotAnEffect sentinel"):
        fx.succeed(1).race(BAD)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="NotAnEffect sentinel"):
        fx.race(fx.succeed(1), BAD)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="NotAnEffect sentinel"):
        fx.race_all([fx.succeed(1), BAD])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="NotAnEffect sentinel"):
        fx.succeed(1).race_first(BAD)  # type: ignore[arg-type]


def test_other_combinators_reject_non_effects() -> None:
    with pytest.raises(TypeError, match="NotAnEffect sentinel"):
        fx.succeed(1).zip(BAD)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="NotAnEffect sentinel"):
        fx.succeed(1).ensuring(BAD)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [-1, -0.001, -math.inf, math.nan])
def test_negative_sleep_is_a_value_error(bad: float) -> None:
    with pytest.raises(ValueError):
        fx.sleep(bad)


@pytest.mark.parametrize("bad", [-1, -0.5, math.nan])
def test_negative_timeout_is_a_value_error(bad: float) -> None:
    with pytest.raises(ValueError):
        fx.succeed(1).timeout(bad)


@pytest.mark.parametrize("bad", [0, -1])
def test_non_positive_concurrency_is_a_value_error(bad: int) -> None:
    with pytest.raises(ValueError):
        fx.all([fx.succeed(1)], concurrency=bad)
    with pytest.raises(ValueError):
        fx.for_each([1], fx.succeed, concurrency=bad)


def test_zero_sleep_is_fine() -> None:
    assert fx.run_sync(fx.sleep(0).as_(1)) == 1


def test_fail_cause_rejects_non_causes() -> None:
    with pytest.raises(TypeError):
        fx.fail_cause("not a cause")  # type: ignore[arg-type]


def test_die_rejects_non_exceptions() -> None:
    with pytest.raises(TypeError):
        fx.die("not an exception")  # type: ignore[arg-type]


def test_interrupt_leaf_constructed_by_hand_runs() -> None:
    ex = fx.run_sync_exit(fx.fail_cause(Interrupt(123)))
    assert ex == Failure(Interrupt(123))
