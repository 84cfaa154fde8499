"""Fibers: fork / join / await_ / interrupt / poll, and supervision (R52-R58)."""

from __future__ import annotations

from typing import Any, Never

import anyio
import pytest

import effect as fx
from effect import Fail, Failure, Success


def _record(log: list[Any], item: Any) -> fx.Effect[None, Never, Never]:
    return fx.sync(lambda: log.append(item))


# -- fork / join / await_ (R52, R58) ------------------------------------------------------


def test_fork_join_value() -> None:
    eff = fx.succeed(21).map(lambda n: n * 2).fork().flat_map(lambda f: f.join())
    assert fx.run_sync(eff) == 42


def test_join_keeps_typed_errors() -> None:
    eff = fx.fail("child failed").fork().flat_map(lambda f: f.join())
    assert fx.run_sync_exit(eff) == Failure(Fail("child failed"))
    caught = eff.catch_all(lambda e: fx.succeed(f"caught {e}"))
    assert fx.run_sync(caught) == "caught child failed"


def test_await_returns_the_exit_and_never_fails() -> None:
    d = ValueError("d")
    ok = fx.succeed(1).fork().flat_map(lambda f: f.await_())
    ko = fx.fail("e").fork().flat_map(lambda f: f.await_())
    dead = fx.die(d).fork().flat_map(lambda f: f.await_())
    assert fx.run_sync_exit(ok) == Success(Success(1))
    assert fx.run_sync_exit(ko) == Success(Failure(Fail("e")))
    assert fx.run_sync_exit(dead) == Success(Failure(fx.Die(d)))


def test_fork_is_asynchronous() -> None:
    # R52: fork returns at once; the child starts at the next scheduling step.
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[list[str], Never, Never]:
        fiber = yield from _record(log, "child ran").fork()
        log.append("parent after fork")
        yield from fiber.join()
        return list(log)

    assert fx.run_sync(prog) == ["parent after fork", "child ran"]


@pytest.mark.anyio
async def test_fork_is_asynchronous_on_the_event_loop() -> None:
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[None, Never, Never]:
        fiber = yield from _record(log, "child ran").fork()
        log.append("parent after fork")
        yield from fiber.join()

    await fx.run(prog)
    assert log == ["parent after fork", "child ran"]


def test_fiber_interrupted_before_its_first_step_never_runs() -> None:
    # R52: none of its own effect, ensuring or on_interrupt runs; exit interrupted.
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[tuple[int, fx.Exit[None, Never]], Never, Never]:
        me = yield from fx.fiber_id()
        child = (
            _record(log, "body")
            .ensuring(_record(log, "ensuring"))
            .on_interrupt(lambda _: _record(log, "on_interrupt"))
        )
        fiber = yield from child.fork()
        ex = yield from fiber.interrupt()
        return me, ex

    me, ex = fx.run_sync(prog)
    assert log == []
    assert isinstance(ex, Failure)
    assert ex.cause.is_interrupted_only()
    assert me in ex.cause.interruptors()


def test_fiber_ids_are_distinct() -> None:
    eff = fx.all([fx.fiber_id().fork().flat_map(lambda f: f.join()) for _ in range(5)])
    ids = fx.run_sync(eff.zip(fx.fiber_id()))
    assert len(set(ids[0]) | {ids[1]}) == 6


def test_fiber_id_attribute_matches_inside() -> None:
    @fx.gen
    def prog() -> fx.Gen[bool, Never, Never]:
        fiber = yield from fx.fiber_id().fork()
        inside = yield from fiber.join()
        return inside == fiber.id

    assert fx.run_sync(prog)


# -- interrupt (R53) -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_interrupt_returns_the_interrupted_exit() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[int, fx.Exit[Never, Never]], Never, Never]:
        me = yield from fx.fiber_id()
        fiber = yield from fx.never.fork()
        yield from fx.sleep(0.005)
        ex = yield from fiber.interrupt()
        return me, ex

    me, ex = await fx.run(prog)
    assert isinstance(ex, Failure)
    assert ex.cause.is_interrupted_only()
    assert ex.cause.interruptors() == {me}


@pytest.mark.anyio
async def test_interrupt_waits_for_finalizers() -> None:
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[list[str], Never, Never]:
        child = fx.never.ensuring(fx.sleep(0.02).and_then(_record(log, "finalizer done")))
        fiber = yield from child.fork()
        yield from fx.sleep(0.005)
        yield from fiber.interrupt()
        return list(log)  # snapshot right after interrupt returned

    assert await fx.run(prog) == ["finalizer done"]


@pytest.mark.anyio
async def test_interrupt_waits_for_the_fibers_children() -> None:
    log: list[str] = []

    @fx.gen
    def parent() -> fx.Gen[None, Never, Never]:
        yield from fx.never.ensuring(fx.sleep(0.01).and_then(_record(log, "grandchild fin"))).fork()
        yield from fx.never

    @fx.gen
    def prog() -> fx.Gen[list[str], Never, Never]:
        fiber = yield from parent.fork()
        yield from fx.sleep(0.005)
        yield from fiber.interrupt()
        return list(log)

    assert await fx.run(prog) == ["grandchild fin"]


def test_interrupt_of_a_finished_fiber_returns_its_exit() -> None:
    # R53 example: Failure(Fail "foo")
    @fx.gen
    def prog() -> fx.Gen[fx.Exit[Never, str], Never, Never]:
        fiber = yield from fx.fail("foo").fork()
        yield from fiber.await_()
        ex = yield from fiber.interrupt()
        return ex

    assert fx.run_sync(prog) == Failure(Fail("foo"))


def test_interrupt_of_a_succeeded_fiber_returns_its_exit() -> None:
    @fx.gen
    def prog() -> fx.Gen[fx.Exit[int, Never], Never, Never]:
        fiber = yield from fx.succeed(3).fork()
        yield from fiber.await_()
        ex = yield from fiber.interrupt()
        return ex

    assert fx.run_sync(prog) == Success(3)


@pytest.mark.anyio
async def test_interrupt_is_idempotent() -> None:
    # R60
    @fx.gen
    def prog() -> fx.Gen[tuple[fx.Exit[Never, Never], fx.Exit[Never, Never]], Never, Never]:
        fiber = yield from fx.never.fork()
        yield from fx.sleep(0.005)
        first = yield from fiber.interrupt()
        second = yield from fiber.interrupt()
        return first, second

    first, second = await fx.run(prog)
    assert first == second
    assert isinstance(first, Failure) and first.cause.is_interrupted_only()


@pytest.mark.anyio
async def test_concurrent_interrupts_all_wait() -> None:
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[list[fx.Exit[Never, Never]], Never, Never]:
        fiber = yield from fx.never.ensuring(fx.sleep(0.01).and_then(_record(log, "fin"))).fork()
        yield from fx.sleep(0.005)
        interrupts = [fiber.interrupt().tap(lambda _: _record(log, "interrupt returned"))] * 3
        exits = yield from fx.all(interrupts, concurrency="unbounded")
        return exits

    exits = await fx.run(prog)
    assert log == ["fin", "interrupt returned", "interrupt returned", "interrupt returned"]
    assert all(isinstance(ex, Failure) and ex.cause.is_interrupted_only() for ex in exits)


@pytest.mark.anyio
async def test_join_of_an_interrupted_fiber_fails_with_the_interruption() -> None:
    # R58
    @fx.gen
    def prog() -> fx.Gen[fx.Exit[Never, Never], Never, Never]:
        fiber = yield from fx.never.fork()
        yield from fx.sleep(0.005)
        yield from fiber.interrupt()
        ex = yield from fiber.join().exit()
        return ex

    ex = await fx.run(prog)
    assert isinstance(ex, Failure)
    assert ex.cause.is_interrupted_only() and ex.cause.is_interrupted()


@pytest.mark.anyio
async def test_join_waits() -> None:
    @fx.gen
    def prog() -> fx.Gen[int, Never, Never]:
        fiber = yield from fx.sleep(0.01).as_(9).fork()
        v = yield from fiber.join()
        return v

    assert await fx.run(prog) == 9


# -- poll -------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_poll() -> None:
    @fx.gen
    def prog() -> fx.Gen[list[Any], Never, Never]:
        fiber = yield from fx.sleep(0.01).as_("v").fork()
        before = fiber.poll()
        done_before = fiber.done
        yield from fiber.await_()
        return [before, done_before, fiber.poll(), fiber.done]

    before, done_before, after, done_after = await fx.run(prog)
    assert before is None and done_before is False
    assert after == Success("v") and done_after is True


# -- supervision (R56, R57) ---------------------------------------------------------------


@pytest.mark.anyio
async def test_children_are_interrupted_when_the_parent_succeeds() -> None:
    log: list[str] = []

    @fx.gen
    def parent() -> fx.Gen[str, Never, Never]:
        yield from fx.never.on_interrupt(lambda _: _record(log, "child interrupted")).fork()
        yield from fx.sleep(0.005)  # the child is running
        return "parent done"

    @fx.gen
    def prog() -> fx.Gen[tuple[fx.Exit[str, Never], list[str]], Never, Never]:
        fiber = yield from parent.fork()
        ex = yield from fiber.await_()
        return ex, list(log)  # the child was interrupted *before* the parent's exit

    ex, snapshot = await fx.run(prog)
    assert ex == Success("parent done")
    assert snapshot == ["child interrupted"]


@pytest.mark.anyio
async def test_children_are_interrupted_when_the_parent_fails() -> None:
    log: list[str] = []

    @fx.gen
    def parent() -> fx.Gen[str, str, Never]:
        yield from fx.never.on_interrupt(lambda _: _record(log, "child interrupted")).fork()
        yield from fx.sleep(0.005)
        yield from fx.fail("parent failed")
        return "unreachable"

    ex = await fx.run_exit(parent)
    assert ex == Failure(Fail("parent failed"))
    assert log == ["child interrupted"]


@pytest.mark.anyio
async def test_children_are_interrupted_when_the_parent_is_interrupted() -> None:
    log: list[str] = []

    @fx.gen
    def parent() -> fx.Gen[None, Never, Never]:
        yield from fx.never.on_interrupt(lambda _: _record(log, "child interrupted")).fork()
        yield from fx.never

    @fx.gen
    def prog() -> fx.Gen[list[str], Never, Never]:
        fiber = yield from parent.fork()
        yield from fx.sleep(0.005)
        yield from fiber.interrupt()
        return list(log)

    assert await fx.run(prog) == ["child interrupted"]


@pytest.mark.anyio
async def test_parent_waits_for_children_finalizers_before_its_exit() -> None:
    log: list[str] = []

    @fx.gen
    def parent() -> fx.Gen[int, Never, Never]:
        yield from fx.never.ensuring(fx.sleep(0.01).and_then(_record(log, "child fin"))).fork()
        yield from fx.sleep(0.005)
        return 1

    @fx.gen
    def prog() -> fx.Gen[list[str], Never, Never]:
        fiber = yield from parent.fork()
        yield from fiber.join()
        return list(log)

    assert await fx.run(prog) == ["child fin"]


@pytest.mark.anyio
async def test_finished_children_do_not_affect_the_parent() -> None:
    @fx.gen
    def parent() -> fx.Gen[int, Never, Never]:
        fiber = yield from fx.fail("child failed").fork()
        yield from fiber.await_()
        return 1

    assert await fx.run(parent) == 1


@pytest.mark.anyio
async def test_fork_daemon_is_not_supervised() -> None:
    # R57: it outlives its parent
    log: list[str] = []

    @fx.gen
    def parent() -> fx.Gen[fx.Fiber[None, Never], Never, Never]:
        daemon = yield from fx.sleep(0.02).and_then(_record(log, "daemon finished")).fork_daemon()
        yield from fx.sleep(0.002)
        return daemon

    @fx.gen
    def prog() -> fx.Gen[tuple[fx.Exit[None, Never], list[str]], Never, Never]:
        parent_fiber = yield from parent.fork()
        daemon = yield from parent_fiber.join()
        snapshot = list(log)  # parent done, daemon still running
        ex = yield from daemon.await_()
        return ex, snapshot

    ex, snapshot = await fx.run(prog)
    assert snapshot == []
    assert ex == Success(None)
    assert log == ["daemon finished"]


@pytest.mark.anyio
async def test_fork_daemon_survives_parent_interruption() -> None:
    log: list[str] = []

    @fx.gen
    def parent() -> fx.Gen[None, Never, Never]:
        yield from fx.sleep(0.02).and_then(_record(log, "daemon finished")).fork_daemon()
        yield from fx.never

    @fx.gen
    def prog() -> fx.Gen[None, Never, Never]:
        fiber = yield from parent.fork()
        yield from fx.sleep(0.005)
        yield from fiber.interrupt()
        yield from fx.sleep(0.04)

    await fx.run(prog)
    assert log == ["daemon finished"]


@pytest.mark.anyio
async def test_many_fibers() -> None:
    eff = fx.for_each(range(2000), lambda i: fx.sleep(0.001).as_(i), concurrency="unbounded")
    with anyio.fail_after(20):
        assert await fx.run(eff) == list(range(2000))
