"""Interruption: regions, masks, inheritance, real I/O, and what can observe an
interruption (R20-R22, R50-R55, R60)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Never

import anyio
import pytest

import effect as fx
from effect import Failure, Success

Restore = Callable[[fx.Effect[Any, Any, Any]], fx.Effect[Any, Any, Any]]


def _record(log: list[Any], item: Any) -> fx.Effect[None, Never, Never]:
    return fx.sync(lambda: log.append(item))


def interrupt_after(
    child: fx.Effect[Any, Any, Never], delay: float = 0.005
) -> fx.Effect[fx.Exit[Any, Any], Never, Never]:
    """Fork `child`, let it run for `delay`, interrupt it, and return its exit."""

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[Any, Any], Never, Never]:
        fiber = yield from child.fork()
        yield from fx.sleep(delay)
        ex = yield from fiber.interrupt()
        return ex

    return prog


def assert_interrupted(ex: fx.Exit[Any, Any]) -> None:
    assert isinstance(ex, Failure), f"expected an interrupted exit, got {ex!r}"
    assert ex.cause.is_interrupted(), f"expected an interruption, got {ex.cause!r}"
    assert ex.cause.is_interrupted_only(), f"expected interrupt-only, got {ex.cause!r}"


# -- uninterruptible regions (R51, R55) --------------------------------------------------


@pytest.mark.anyio
async def test_uninterruptible_region_defers_the_interrupt() -> None:
    log: list[str] = []
    work = fx.sleep(0.02).and_then(_record(log, "work done"))
    ex = await fx.run(interrupt_after(work.uninterruptible()))
    assert log == ["work done"]
    # R51: the interrupt lands when the region ends, even though it succeeded
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_interrupt_lands_when_the_region_ends() -> None:
    log: list[str] = []
    work = fx.sleep(0.02).and_then(_record(log, "work done"))
    child = work.uninterruptible().and_then(_record(log, "after region"))
    ex = await fx.run(interrupt_after(child))
    assert log == ["work done"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_interrupt_waits_for_the_uninterruptible_region() -> None:
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[list[str], Never, Never]:
        fiber = yield from fx.sleep(0.02).and_then(_record(log, "done")).uninterruptible().fork()
        yield from fx.sleep(0.005)
        yield from fiber.interrupt()
        return list(log)  # snapshot when interrupt returned

    assert await fx.run(prog) == ["done"]


@pytest.mark.anyio
async def test_interruptible_inside_uninterruptible() -> None:
    log: list[str] = []
    inner = fx.sleep(5).interruptible().and_then(_record(log, "after inner"))
    with anyio.fail_after(3):
        ex = await fx.run(interrupt_after(inner.uninterruptible()))
    assert log == []
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_uninterruptible_region_inside_interruptible_inside_uninterruptible() -> None:
    log: list[str] = []
    innermost = fx.sleep(0.02).and_then(_record(log, "innermost done")).uninterruptible()
    child = innermost.and_then(fx.never).interruptible().uninterruptible()
    with anyio.fail_after(3):
        ex = await fx.run(interrupt_after(child))
    assert log == ["innermost done"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_only_uninterruptible_code_observes_the_interruption() -> None:
    # R21: a handler in an uninterruptible region sees the interrupted exit of the
    # interruptible part it wraps.
    seen: list[fx.Exit[Any, Any]] = []
    child = fx.sleep(5).interruptible().exit().flat_map(lambda ex: _record(seen, ex))
    with anyio.fail_after(3):
        ex = await fx.run(interrupt_after(child.uninterruptible()))
    [inner_exit] = seen
    assert_interrupted(inner_exit)
    assert_interrupted(ex)


# -- uninterruptible_mask (R55) -----------------------------------------------------------


@pytest.mark.anyio
async def test_mask_body_is_uninterruptible() -> None:
    log: list[str] = []
    child = fx.uninterruptible_mask(
        lambda restore: fx.sleep(0.02).and_then(_record(log, "body done"))
    )
    ex = await fx.run(interrupt_after(child))
    assert log == ["body done"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_mask_restore_in_interruptible_context_is_interruptible() -> None:
    log: list[str] = []

    def body(restore: Restore) -> fx.Effect[None, Never, Never]:
        return restore(fx.sleep(5).and_then(_record(log, "restored done"))).ensuring(
            _record(log, "masked cleanup")
        )

    with anyio.fail_after(3):
        ex = await fx.run(interrupt_after(fx.uninterruptible_mask(body)))
    assert log == ["masked cleanup"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_mask_restore_restores_the_outer_uninterruptible_state() -> None:
    # `restore` brings back the OUTER state: uninterruptible here, not interruptible.
    log: list[str] = []

    def body(restore: Restore) -> fx.Effect[None, Never, Never]:
        return restore(fx.sleep(0.02).and_then(_record(log, "restored done")))

    child = fx.uninterruptible_mask(body).uninterruptible()
    ex = await fx.run(interrupt_after(child))
    assert log == ["restored done"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_nested_mask_restore_restores_its_own_outer_state() -> None:
    # The inner mask's outer state is uninterruptible (inside the outer mask), so its
    # restore is uninterruptible; the outer restore is interruptible.
    log: list[str] = []

    def outer(restore_outer: Restore) -> fx.Effect[None, Never, Never]:
        def inner(restore_inner: Restore) -> fx.Effect[None, Never, Never]:
            return restore_inner(fx.sleep(0.02).and_then(_record(log, "inner restored done")))

        return fx.uninterruptible_mask(inner).and_then(
            restore_outer(fx.sleep(5).and_then(_record(log, "outer restored done")))
        )

    with anyio.fail_after(3):
        ex = await fx.run(interrupt_after(fx.uninterruptible_mask(outer)))
    assert log == ["inner restored done"]
    assert_interrupted(ex)


# -- inheritance (R55) ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_children_inherit_uninterruptibility_at_fork() -> None:
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[list[str], Never, Never]:
        child = fx.sleep(0.02).and_then(_record(log, "child done"))
        fiber = yield from child.fork().uninterruptible()
        # back in an interruptible region; the child keeps the state it was forked with
        yield from fx.sleep(0.005)
        yield from fiber.interrupt()
        return list(log)

    with anyio.fail_after(3):
        assert await fx.run(prog) == ["child done"]


@pytest.mark.anyio
async def test_children_inherit_interruptibility_at_fork() -> None:
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[None, Never], Never, Never]:
        child = fx.sleep(5).and_then(_record(log, "child done"))
        fiber = yield from child.fork()
        yield from fx.sleep(0.005)
        ex = yield from fiber.interrupt()
        return ex

    with anyio.fail_after(3):
        ex = await fx.run(prog)
    assert log == []
    assert_interrupted(ex)


# -- real I/O ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_interrupting_a_fiber_in_real_io_cancels_the_io() -> None:
    log: list[str] = []

    async def slow() -> None:
        try:
            log.append("io started")
            await anyio.sleep(10)
            log.append("io finished")
        except anyio.get_cancelled_exc_class():
            log.append("io cancelled")
            raise

    child = fx.promise(slow).ensuring(_record(log, "finalizer"))
    with anyio.fail_after(5):
        ex = await fx.run(interrupt_after(child, 0.01))
    # the I/O stopped before the finalizer ran, and before interrupt returned
    assert log == ["io started", "io cancelled", "finalizer"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_interrupting_real_io_that_swallows_cancellation_still_interrupts() -> None:
    log: list[str] = []

    async def stubborn() -> str:
        try:
            await anyio.sleep(10)
        except anyio.get_cancelled_exc_class():
            log.append("cancelled, swallowed")
        return "value nobody reads"

    with anyio.fail_after(5):
        ex = await fx.run(interrupt_after(fx.promise(stubborn), 0.01))
    assert log == ["cancelled, swallowed"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_uninterruptible_promise_finishes_before_the_interrupt_lands() -> None:
    log: list[str] = []

    async def io() -> None:
        await anyio.sleep(0.03)
        log.append("io finished")

    @fx.gen
    def prog() -> fx.Gen[tuple[fx.Exit[None, Never], list[str]], Never, Never]:
        fiber = yield from fx.promise(io).uninterruptible().fork()
        yield from fx.sleep(0.005)
        ex = yield from fiber.interrupt()
        return ex, list(log)

    ex, snapshot = await fx.run(prog)
    assert snapshot == ["io finished"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_interrupting_a_sleeping_fiber() -> None:
    with anyio.fail_after(3):
        ex = await fx.run(interrupt_after(fx.sleep(10)))
    assert_interrupted(ex)


# -- what can catch an interruption (R20-R22) ------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    "handler",
    [
        "catch_all",
        "catch_cause",
        "either",
        "exit",
        "or_else",
        "match",
    ],
)
async def test_external_interruption_cannot_be_caught(handler: str) -> None:
    # R21: once interrupted from outside and interruptible, failure handlers are skipped
    log: list[str] = []
    body = fx.sleep(5)
    caught: fx.Effect[Any, Any, Never]
    if handler == "catch_all":
        caught = body.catch_all(lambda _: _record(log, "handler"))
    elif handler == "catch_cause":
        caught = body.catch_cause(lambda _: _record(log, "handler"))
    elif handler == "either":
        caught = body.either().tap(lambda _: _record(log, "handler"))
    elif handler == "exit":
        caught = body.exit().tap(lambda _: _record(log, "handler"))
    elif handler == "or_else":
        caught = body.or_else(lambda: _record(log, "handler"))
    else:
        caught = body.match(on_failure=lambda _: log.append("handler"), on_success=lambda _: None)
    child = caught.and_then(_record(log, "continued"))
    with anyio.fail_after(3):
        ex = await fx.run(interrupt_after(child))
    assert log == []
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_external_interruption_cannot_be_caught_in_a_gen_body() -> None:
    log: list[str] = []

    @fx.gen
    def child() -> fx.Gen[None, Never, Never]:
        ex = yield from fx.sleep(5).exit()
        log.append(f"observed {ex!r}")
        yield from fx.never

    with anyio.fail_after(3):
        ex = await fx.run(interrupt_after(child))
    assert log == []
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_external_interruption_of_a_failing_cleanup_chain_is_not_caught() -> None:
    # A failure that happens while the interrupt is pending is not caught either.
    log: list[str] = []
    child = (
        fx.sleep(5)
        .ensuring(fx.fail("finalizer failed"))
        .catch_all(lambda _: _record(log, "caught"))
    )
    with anyio.fail_after(3):
        ex = await fx.run(interrupt_after(child))
    assert log == []
    assert isinstance(ex, Failure) and ex.cause.is_interrupted()
    # R21: the failure propagates past the skipped handler with its Fail leaves stripped
    assert ex.cause.failures() == []


def test_self_interruption_can_be_caught_by_exit_and_catch_cause() -> None:
    # R22
    ex = fx.run_sync(fx.interrupt().exit())
    assert_interrupted(ex)
    assert fx.run_sync(fx.interrupt().catch_cause(lambda _: fx.succeed("recovered"))) == (
        "recovered"
    )
    # ... and the fiber goes on normally afterwards
    assert fx.run_sync(fx.interrupt().exit().and_then(fx.succeed(1))) == 1


def test_self_interruption_is_not_caught_by_catch_all() -> None:
    # R18: an interrupt-only cause propagates unchanged through catch_all / either
    ex = fx.run_sync_exit(fx.interrupt().catch_all(lambda _: fx.succeed("no")))
    assert_interrupted(ex)
    ex2 = fx.run_sync_exit(fx.interrupt().either())
    assert_interrupted(ex2)


@pytest.mark.anyio
async def test_skipped_handler_strips_failures_of_a_defect_cause_too() -> None:
    # R21: a typed failure raised while the interrupt is pending is stripped, a defect
    # is kept
    d = ValueError("fin died")
    child = (
        fx.sleep(5)
        .ensuring(fx.fail("fin failed"))
        .ensuring(fx.die(d))
        .catch_cause(lambda _: fx.succeed("caught"))
    )
    with anyio.fail_after(3):
        ex = await fx.run(interrupt_after(child))
    assert isinstance(ex, Failure)
    assert ex.cause.is_interrupted()
    assert ex.cause.failures() == []
    assert ex.cause.defects() == [d]


@pytest.mark.anyio
async def test_self_interruption_inside_a_child_fails_only_that_fiber() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[fx.Exit[Never, Never], int], Never, Never]:
        fiber = yield from fx.interrupt().fork()
        ex = yield from fiber.await_()
        return ex, fiber.id

    ex, child_id = await fx.run(prog)
    assert_interrupted(ex)
    assert isinstance(ex, Failure)
    assert ex.cause.interruptors() == {child_id}


# -- finalizers and interruption (R50, R51, R60) -----------------------------------------------


@pytest.mark.anyio
async def test_finalizer_runs_on_interruption() -> None:
    log: list[str] = []
    ex = await fx.run(interrupt_after(fx.never.ensuring(_record(log, "fin"))))
    assert log == ["fin"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_finalizer_can_handle_its_own_errors_during_interruption() -> None:
    # R50: errors inside a finalizer can be caught inside that finalizer
    log: list[str] = []
    fin = fx.fail("oops").catch_all(lambda e: _record(log, f"recovered {e}"))
    ex = await fx.run(interrupt_after(fx.never.ensuring(fin)))
    assert log == ["recovered oops"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_finalizer_can_detect_interruption() -> None:
    seen: list[fx.Exit[Any, Any]] = []
    ex = await fx.run(interrupt_after(fx.never.on_exit(lambda e: _record(seen, e))))
    [fin_exit] = seen
    assert_interrupted(fin_exit)
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_interrupt_cannot_stop_a_finalizer_and_the_exit_is_interrupted() -> None:
    # R51: the protected effect succeeded, but the fiber was interrupted during the
    # finalizer: its exit is interrupted.
    log: list[str] = []
    child = fx.succeed("value").ensuring(
        _record(log, "fin start").and_then(fx.sleep(0.03)).and_then(_record(log, "fin end"))
    )
    ex = await fx.run(interrupt_after(child, 0.01))
    assert log == ["fin start", "fin end"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_nested_on_exit_handlers_both_see_interrupted_only() -> None:
    # R60, with R55: r2(r1(eff)) is interruptible (r1 restores the outermost state).
    # A bounded sleep instead of `never`, so a wrong restore shows as "completed"
    # rather than hanging the test.
    seen: list[tuple[str, fx.Exit[Any, Any]]] = []
    log: list[str] = []

    def outer(r1: Restore) -> fx.Effect[None, Never, Never]:
        def inner(r2: Restore) -> fx.Effect[None, Never, Never]:
            body = fx.sleep(0.5).and_then(_record(log, "completed"))
            return r2(r1(body)).on_exit(lambda e: _record(seen, ("inner", e)))

        return fx.uninterruptible_mask(inner).on_exit(lambda e: _record(seen, ("outer", e)))

    ex = await fx.run(interrupt_after(fx.uninterruptible_mask(outer)))
    assert log == []
    assert [name for name, _ in seen] == ["inner", "outer"]
    for _, e in seen:
        assert_interrupted(e)
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_restore_called_after_another_mask_still_restores_its_own_outer_state() -> None:
    # R55: `restore` brings back the state outside ITS mask, even when it is called
    # after some other masked region (here the one inside `ensuring`) has run.
    log: list[str] = []

    def body(restore: Restore) -> fx.Effect[None, Never, Never]:
        return fx.void.ensuring(fx.void).flat_map(
            lambda _: restore(fx.sleep(0.5).and_then(_record(log, "completed")))
        )

    ex = await fx.run(interrupt_after(fx.uninterruptible_mask(body)))
    assert log == []
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_acquire_use_release_use_is_interruptible_after_a_masked_acquire() -> None:
    # R43 / R55: `use` runs with the surrounding (interruptible) state, whatever
    # `acquire` did internally.
    log: list[str] = []
    eff = fx.acquire_use_release(
        fx.succeed("res").ensuring(fx.void),
        lambda _: fx.sleep(0.5).and_then(_record(log, "use completed")),
        lambda _, ex: _record(log, "released"),
    )
    ex = await fx.run(interrupt_after(eff))
    assert log == ["released"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_interrupted_cause_persists_after_catching() -> None:
    # upstream "interrupted cause persists after catching": a cleanup that catches
    # its own failure does not clear the interruption.
    seen: list[fx.Exit[Any, Any]] = []
    child = fx.never.ensuring(fx.die(ValueError("x")).exit().as_void).on_exit(
        lambda e: _record(seen, e)
    )
    ex = await fx.run(interrupt_after(child))
    [e] = seen
    assert_interrupted(e)
    assert_interrupted(ex)


# -- where interruption is checked (R54) -----------------------------------------------------


@pytest.mark.anyio
async def test_a_synchronous_infinite_loop_is_interruptible() -> None:
    count = [0]

    def loop() -> fx.Effect[Never, Never, Never]:
        return fx.sync(lambda: count.__setitem__(0, count[0] + 1)).flat_map(lambda _: loop())

    with anyio.fail_after(10):
        ex = await fx.run(interrupt_after(fx.suspend(loop), 0.01))
    assert_interrupted(ex)
    assert count[0] > 0


def test_a_synchronous_infinite_loop_is_interruptible_in_run_sync() -> None:
    count = [0]

    def loop() -> fx.Effect[Never, Never, Never]:
        return fx.sync(lambda: count.__setitem__(0, count[0] + 1)).flat_map(lambda _: loop())

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[Never, Never], Never, Never]:
        fiber = yield from fx.suspend(loop).fork()
        yield from fx.yield_now()
        yield from fx.yield_now()
        ex = yield from fiber.interrupt()
        return ex

    assert_interrupted(fx.run_sync(prog))
    assert count[0] > 0


@pytest.mark.anyio
async def test_a_gen_infinite_loop_is_interruptible() -> None:
    @fx.gen
    def spin() -> fx.Gen[None, Never, Never]:
        while True:
            yield from fx.succeed(1)

    with anyio.fail_after(10):
        ex = await fx.run(interrupt_after(spin, 0.01))
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_interrupt_of_never() -> None:
    # upstream "interrupt of never is interrupted with cause"
    @fx.gen
    def prog() -> fx.Gen[tuple[int, fx.Exit[Never, Never]], Never, Never]:
        me = yield from fx.fiber_id()
        fiber = yield from fx.never.fork()
        yield from fx.yield_now()
        ex = yield from fiber.interrupt()
        return me, ex

    me, ex = await fx.run(prog)
    assert_interrupted(ex)
    assert isinstance(ex, Failure) and me in ex.cause.interruptors()


@pytest.mark.anyio
async def test_async_register_canceler_runs_on_interruption() -> None:
    log: list[str] = []

    def register(resume: Callable[[fx.Effect[int, Never, Never]], None]) -> Callable[[], None]:
        log.append("registered")
        return lambda: log.append("canceled")

    ex = await fx.run(interrupt_after(fx.async_(register)))
    assert log == ["registered", "canceled"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_async_resume_continues_the_fiber() -> None:
    @fx.gen
    def prog() -> fx.Gen[int, Never, Never]:
        resumes: list[Callable[[fx.Effect[int, Never, Never]], None]] = []

        def register(resume: Callable[[fx.Effect[int, Never, Never]], None]) -> None:
            resumes.append(resume)

        fiber = yield from fx.async_(register).fork()
        yield from fx.yield_now()
        resumes[0](fx.succeed(5))
        resumes[0](fx.succeed(6))  # extra calls are ignored
        v = yield from fiber.join()
        return v

    assert await fx.run(prog) == 5


@pytest.mark.anyio
async def test_success_after_uninterruptible_region_without_interrupt() -> None:
    assert await fx.run(fx.sleep(0.001).uninterruptible().as_(1)) == 1
    assert fx.run_sync_exit(fx.succeed(1).uninterruptible().interruptible()) == Success(1)
