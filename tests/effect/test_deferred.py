"""Deferred: completes exactly once, every waiter sees the same outcome (rule 93)."""

from __future__ import annotations

import pytest

import effect as fx
from effect.deferred import Deferred


def test_completion_returns_true_only_the_first_time() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[list[bool], int], str, fx.Never]:
        d = yield from Deferred[int, str].make()
        results = [
            (yield from d.succeed(1)),
            (yield from d.succeed(2)),
            (yield from d.fail("x")),
            (yield from d.die(ValueError("y"))),
            (yield from d.interrupt()),
            (yield from d.done(fx.Success(3))),
        ]
        return results, (yield from d.await_())

    results, value = fx.run_sync(prog)
    assert results == [True, False, False, False, False, False]
    assert value == 1


def test_every_waiter_gets_the_same_outcome() -> None:
    @fx.gen
    def prog() -> fx.Gen[list[fx.Exit[int, str]], fx.Never, fx.Never]:
        d = yield from Deferred[int, str].make()
        waiters = []
        for _ in range(5):
            waiters.append((yield from d.await_().fork()))
        yield from fx.yield_now()
        yield from d.fail("boom")
        exits = []
        for w in waiters:
            exits.append((yield from w.await_()))
        return exits

    exits = fx.run_sync(prog)
    assert len(exits) == 5
    for exit in exits:
        assert isinstance(exit, fx.Failure)
        assert exit.cause.failures() == ["boom"]


def test_await_after_completion_returns_at_once() -> None:
    d: Deferred[str, str] = Deferred()
    assert fx.run_sync(d.succeed("v").and_then(d.await_()).zip(d.await_())) == ("v", "v")


def test_poll_and_is_done() -> None:
    d: Deferred[int, str] = Deferred()
    assert fx.run_sync(d.poll()) is None
    assert fx.run_sync(d.is_done()) is False
    fx.run_sync(d.succeed(4))
    assert fx.run_sync(d.poll()) == fx.Success(4)
    assert fx.run_sync(d.is_done()) is True


def test_fail_cause_die_and_interrupt_outcomes() -> None:
    d1: Deferred[int, str] = Deferred()
    cause = fx.Sequential(fx.Fail("a"), fx.Fail("b"))
    exit1 = fx.run_sync_exit(d1.fail_cause(cause).and_then(d1.await_()))
    assert isinstance(exit1, fx.Failure) and exit1.cause == cause

    d2: Deferred[int, str] = Deferred()
    err = ValueError("bug")
    exit2 = fx.run_sync_exit(d2.die(err).and_then(d2.await_()))
    assert isinstance(exit2, fx.Failure) and exit2.cause.defects() == [err]

    @fx.gen
    def interrupter() -> fx.Gen[tuple[int, fx.Exit[int, str]], fx.Never, fx.Never]:
        d = yield from Deferred[int, str].make()
        me = yield from fx.fiber_id()
        yield from d.interrupt()
        return me, (yield from d.await_().exit())

    me, exit3 = fx.run_sync(interrupter)
    assert isinstance(exit3, fx.Failure)
    assert exit3.cause.is_interrupted_only()
    assert exit3.cause.interruptors() == frozenset({me})


def test_interrupted_waiter_is_removed() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[bool, int, int], fx.Never, fx.Never]:
        d = yield from Deferred[int, str].make()
        waiter = yield from d.await_().fork()
        keeper = yield from d.await_().fork()
        yield from fx.yield_now()
        count_before = len(d._waiters)
        exit = yield from waiter.interrupt()
        count_after = len(d._waiters)
        yield from d.succeed(9)
        kept = yield from keeper.join()
        assert kept == 9
        return exit.is_interrupted(), count_before, count_after

    assert fx.run_sync(prog) == (True, 2, 1)


def test_complete_runs_the_effect_once_and_stores_its_exit() -> None:
    runs: list[int] = []
    d: Deferred[int, str] = Deferred()
    eff = fx.sync(lambda: runs.append(1) or len(runs))
    prog = d.complete(eff).zip(d.complete(eff)).zip(d.await_()).zip(d.await_())
    assert fx.run_sync(prog) == (((True, False), 1), 1)
    assert runs == [1, 1]  # `complete` runs its effect each call; only the first is stored


def test_complete_with_failure_is_stored() -> None:
    d: Deferred[int, str] = Deferred()
    exit = fx.run_sync_exit(d.complete(fx.fail("e")).and_then(d.await_()))
    assert isinstance(exit, fx.Failure) and exit.cause.failures() == ["e"]


@pytest.mark.anyio
async def test_waiter_wakes_from_another_fiber_after_real_sleep() -> None:
    @fx.gen
    def prog() -> fx.Gen[str, fx.Never, fx.Never]:
        d = yield from Deferred[str, fx.Never].make()
        yield from fx.sleep(0.005).and_then(d.succeed("late")).fork()
        return (yield from d.await_())

    assert await fx.run(prog) == "late"


@pytest.mark.anyio
async def test_interrupting_a_waiter_through_timeout() -> None:
    d: Deferred[int, str] = Deferred()
    exit = await fx.run_exit(d.await_().timeout(0.005))
    assert isinstance(exit, fx.Failure)
    assert isinstance(exit.cause.failures()[0], fx.TimeoutException)
    assert d._waiters == {}
