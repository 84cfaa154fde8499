"""Scopes and finalizers, acquire_release, acquire_use_release, scoped, fork_scoped
(R26-R44 of the Effect-TS reference)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Never

import anyio
import pytest

import effect as fx
from effect import Die, Fail, Failure, Parallel, Sequential, Success

Fin = Callable[[fx.Exit[Any, Any]], fx.Effect[Any, Any, Never]]


def _record(log: list[Any], item: Any) -> fx.Effect[None, Never, Never]:
    return fx.sync(lambda: log.append(item))


def _kind(ex: fx.Exit[Any, Any]) -> str:
    if isinstance(ex, Success):
        return f"success {ex.value!r}"
    if ex.cause.is_interrupted_only():
        return "interrupted"
    return "failure"


def _logging_finalizer(log: list[Any], name: str) -> Fin:
    return lambda ex: _record(log, (name, _kind(ex)))


def assert_interrupted(ex: fx.Exit[Any, Any]) -> None:
    assert isinstance(ex, Failure), ex
    assert ex.cause.is_interrupted() and ex.cause.is_interrupted_only(), ex.cause


# -- Scope: add_finalizer / close (R26-R28) -----------------------------------------------


def test_close_runs_finalizers_lifo_each_with_the_exit() -> None:
    log: list[Any] = []
    scope = fx.Scope()
    prog = (
        scope.add_finalizer(_logging_finalizer(log, "first"))
        .and_then(scope.add_finalizer(_logging_finalizer(log, "second")))
        .and_then(scope.add_finalizer(_logging_finalizer(log, "third")))
        .and_then(scope.close(Success("done")))
    )
    assert fx.run_sync_exit(prog) == Success(None)
    assert log == [
        ("third", "success 'done'"),
        ("second", "success 'done'"),
        ("first", "success 'done'"),
    ]
    assert scope.is_closed


def test_finalizers_see_the_failure_exit_they_are_closed_with() -> None:
    seen: list[fx.Exit[Any, Any]] = []
    scope = fx.Scope()
    exit: fx.Exit[Any, Any] = Failure(Fail("body failed"))
    prog = scope.add_finalizer(lambda ex: fx.sync(lambda: seen.append(ex))).and_then(
        scope.close(exit)
    )
    fx.run_sync(prog)
    assert seen == [exit]


def test_close_is_idempotent() -> None:
    # R27: a second close is a no-op; finalizers run once.
    log: list[Any] = []
    scope = fx.Scope()
    prog = (
        scope.add_finalizer(_logging_finalizer(log, "f"))
        .and_then(scope.close(Success(1)))
        .and_then(scope.close(Failure(Fail("later"))))
        .and_then(scope.close(Success(2)))
    )
    assert fx.run_sync_exit(prog) == Success(None)
    assert log == [("f", "success 1")]


def test_scope_is_closed_before_its_finalizers_run() -> None:
    # R27: the scope is marked closed first, so a finalizer that registers another
    # finalizer in the same scope sees it run at once, with the close exit (R26).
    log: list[Any] = []
    scope = fx.Scope()

    def outer(ex: fx.Exit[Any, Any]) -> fx.Effect[None, Never, Never]:
        return _record(log, ("outer", scope.is_closed)).and_then(
            scope.add_finalizer(_logging_finalizer(log, "late"))
        )

    prog = scope.add_finalizer(outer).and_then(scope.close(Success(0)))
    fx.run_sync(prog)
    assert log == [("outer", True), ("late", "success 0")]


def test_adding_to_a_closed_scope_runs_the_finalizer_at_once() -> None:
    # R26
    log: list[Any] = []
    scope = fx.Scope()
    fx.run_sync(scope.close(Failure(Fail("closed with this"))))
    assert scope.is_closed
    fx.run_sync(scope.add_finalizer(_logging_finalizer(log, "late")))
    assert log == [("late", "failure")]


def test_a_finalizer_added_to_a_closed_scope_reports_its_failure() -> None:
    # R26: the finalizer runs at once, and what it does is what the add does: a dying
    # finalizer is not silently dropped (Effect-TS returns `fin(exit)` itself).
    boom = ValueError("late finalizer died")
    scope = fx.Scope()
    fx.run_sync(scope.close(Success(None)))
    ex = fx.run_sync_exit(scope.add_finalizer(lambda ex: fx.die(boom)))
    assert isinstance(ex, Failure)
    assert ex.cause.defects() == [boom]


def test_a_failing_or_dying_finalizer_does_not_stop_the_others() -> None:
    # R28's example: f1 ok, f2 dies b2, f3 ok, f4 dies b4 -> Sequential(Die b4, Die b2),
    # the causes in the order the finalizers ran (newest first).
    log: list[str] = []
    b2, b4 = ValueError("b2"), ValueError("b4")
    scope = fx.Scope()

    def fin(name: str, then: fx.Effect[None, Any, Never]) -> fx.Effect[None, Never, Never]:
        return scope.add_finalizer(lambda ex: _record(log, name).and_then(then))

    prog = (
        fin("f1", fx.void)
        .and_then(fin("f2", fx.die(b2)))
        .and_then(fin("f3", fx.void))
        .and_then(fin("f4", fx.die(b4)))
        .and_then(scope.close(Success(None)))
    )
    ex = fx.run_sync_exit(prog)
    assert log == ["f4", "f3", "f2", "f1"]
    assert ex == Failure(Sequential(Die(b4), Die(b2)))


def test_typed_finalizer_failures_and_raised_exceptions_join_the_close_cause() -> None:
    log: list[str] = []
    boom = RuntimeError("raised while building the finalizer")
    scope = fx.Scope()

    def raising(ex: fx.Exit[Any, Any]) -> fx.Effect[None, Never, Never]:
        raise boom

    prog = (
        scope.add_finalizer(lambda ex: _record(log, "last"))
        .and_then(scope.add_finalizer(raising))
        .and_then(scope.add_finalizer(lambda ex: _record(log, "first").and_then(fx.fail("e1"))))
        .and_then(scope.close(Success(None)))
    )
    ex = fx.run_sync_exit(prog)
    assert log == ["first", "last"]
    assert ex == Failure(Sequential(Fail("e1"), Die(boom)))


def test_add_finalizer_rejects_a_non_callable() -> None:
    with pytest.raises(TypeError, match="callable"):
        fx.Scope().add_finalizer(fx.void)  # type: ignore[arg-type]


def test_scope_strategy_is_validated() -> None:
    with pytest.raises(ValueError, match="strategy"):
        fx.Scope("random")  # type: ignore[arg-type]


def test_scope_make_gives_a_fresh_open_scope_each_run() -> None:
    make = fx.Scope.make()
    a, b = fx.run_sync(make), fx.run_sync(make)
    assert a is not b
    assert not a.is_closed and not b.is_closed


@pytest.mark.anyio
async def test_close_runs_uninterruptibly() -> None:
    # R34 (fidelity advice): a fiber interrupted while closing a scope by hand still
    # runs every finalizer.
    log: list[str] = []
    scope = fx.Scope()
    slow = fx.sleep(0.02).and_then(_record(log, "slow done"))

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[None, Never], Never, Never]:
        yield from scope.add_finalizer(lambda ex: _record(log, "last"))
        yield from scope.add_finalizer(lambda ex: slow)
        fiber = yield from scope.close(Success(None)).fork()
        yield from fx.sleep(0.005)
        return (yield from fiber.interrupt())

    ex = await fx.run(prog)
    assert log == ["slow done", "last"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_concurrent_closes_run_each_finalizer_once() -> None:
    # R41
    log: list[str] = []
    scope = fx.Scope()
    fin = fx.sleep(0.005).and_then(_record(log, "released"))

    @fx.gen
    def prog() -> fx.Gen[None, Never, Never]:
        yield from scope.add_finalizer(lambda ex: fin)
        yield from fx.all([scope.close(Success(None)) for _ in range(5)], concurrency="unbounded")

    await fx.run(prog)
    assert log == ["released"]


# -- parallel strategy (R29) -----------------------------------------------------------


def test_parallel_scope_starts_every_finalizer_before_any_ends() -> None:
    log: list[str] = []
    scope = fx.Scope("parallel")

    def fin(name: str) -> Fin:
        return lambda ex: _record(log, f"start {name}").and_then(
            fx.yield_now().and_then(_record(log, f"end {name}"))
        )

    prog = (
        scope.add_finalizer(fin("a"))
        .and_then(scope.add_finalizer(fin("b")))
        .and_then(scope.close(Success(None)))
    )
    fx.run_sync(prog)
    assert sorted(log[:2]) == ["start a", "start b"]
    assert sorted(log[2:]) == ["end a", "end b"]


@pytest.mark.anyio
async def test_parallel_scope_finalizers_overlap_in_time() -> None:
    scope = fx.Scope("parallel")
    prog = (
        scope.add_finalizer(lambda ex: fx.sleep(0.05))
        .and_then(scope.add_finalizer(lambda ex: fx.sleep(0.05)))
        .and_then(scope.add_finalizer(lambda ex: fx.sleep(0.05)))
        .and_then(scope.close(Success(None)))
    )
    start = anyio.current_time()
    await fx.run(prog)
    assert anyio.current_time() - start < 0.14  # sequential would take 0.15


def test_parallel_scope_combines_failures_in_parallel_and_runs_all() -> None:
    log: list[str] = []
    scope = fx.Scope("parallel")
    prog = (
        scope.add_finalizer(lambda ex: _record(log, "a").and_then(fx.fail("a")))
        .and_then(scope.add_finalizer(lambda ex: _record(log, "ok")))
        .and_then(scope.add_finalizer(lambda ex: _record(log, "b").and_then(fx.fail("b"))))
        .and_then(scope.close(Success(None)))
    )
    ex = fx.run_sync_exit(prog)
    assert sorted(log) == ["a", "b", "ok"]
    assert ex == Failure(Parallel(Fail("a"), Fail("b")))
    assert isinstance(ex, Failure)
    assert sorted(ex.cause.failures()) == ["a", "b"]


# -- fork / extend / use (R36, R37) ----------------------------------------------------


def test_child_scope_closes_at_its_place_in_the_parents_lifo_order() -> None:
    log: list[Any] = []
    parent = fx.Scope()

    @fx.gen
    def prog() -> fx.Gen[None, Never, Never]:
        yield from parent.add_finalizer(_logging_finalizer(log, "parent first"))
        child = yield from parent.fork()
        yield from child.add_finalizer(_logging_finalizer(log, "child a"))
        yield from child.add_finalizer(_logging_finalizer(log, "child b"))
        yield from parent.add_finalizer(_logging_finalizer(log, "parent last"))
        yield from parent.close(Failure(Fail("x")))
        assert child.is_closed

    fx.run_sync(prog)
    assert log == [
        ("parent last", "failure"),
        ("child b", "failure"),
        ("child a", "failure"),
        ("parent first", "failure"),
    ]


def test_child_scope_closed_first_unregisters_from_the_parent() -> None:
    log: list[Any] = []
    parent = fx.Scope()

    @fx.gen
    def prog() -> fx.Gen[None, Never, Never]:
        child = yield from parent.fork()
        yield from child.add_finalizer(_logging_finalizer(log, "child"))
        yield from child.close(Success("child exit"))
        yield from parent.add_finalizer(_logging_finalizer(log, "parent"))
        yield from parent.close(Success("parent exit"))

    fx.run_sync(prog)
    assert log == [("child", "success 'child exit'"), ("parent", "success 'parent exit'")]
    assert parent._finalizers == {}


def test_forking_a_closed_scope_gives_a_closed_child_with_the_parents_exit() -> None:
    log: list[Any] = []
    parent = fx.Scope()

    @fx.gen
    def prog() -> fx.Gen[bool, Never, Never]:
        yield from parent.close(Success("gone"))
        child = yield from parent.fork()
        yield from child.add_finalizer(_logging_finalizer(log, "late"))
        return child.is_closed

    assert fx.run_sync(prog) is True
    assert log == [("late", "success 'gone'")]


def test_extend_keeps_resources_open_after_the_effect() -> None:
    # R37: `extend` provides the scope but does not close it.
    log: list[Any] = []
    scope = fx.Scope()
    resource = fx.acquire_release(
        _record(log, "acquire").as_("res"), lambda r, ex: _record(log, ("release", _kind(ex)))
    )

    @fx.gen
    def prog() -> fx.Gen[None, Never, Never]:
        value = yield from scope.extend(resource)
        log.append(("used after extend", value))
        yield from scope.close(Success("closed later"))

    fx.run_sync(prog)
    assert log == [
        "acquire",
        ("used after extend", "res"),
        ("release", "success 'closed later'"),
    ]


def test_use_closes_the_scope_with_the_effects_exit() -> None:
    log: list[Any] = []
    scope = fx.Scope()
    body = fx.add_finalizer(_logging_finalizer(log, "fin")).and_then(fx.fail("body failed"))
    ex = fx.run_sync_exit(scope.use(body))
    assert ex == Failure(Fail("body failed"))
    assert log == [("fin", "failure")]
    assert scope.is_closed


def test_current_scope_is_a_service() -> None:
    scope = fx.Scope()
    assert fx.run_sync(scope.extend(fx.service(fx.Scope))) is scope


def test_resources_need_a_scope() -> None:
    ex = fx.run_sync_exit(fx.add_finalizer(lambda ex: fx.void))  # type: ignore[arg-type]
    assert isinstance(ex, Failure)
    assert "Scope" in str(ex.cause.defects()[0])


# -- scoped (R30-R32) --------------------------------------------------------------------


def test_scoped_closes_with_the_success_value() -> None:
    seen: list[fx.Exit[Any, Any]] = []
    prog = fx.scoped(fx.add_finalizer(lambda ex: fx.sync(lambda: seen.append(ex))).as_(42))
    assert fx.run_sync(prog) == 42
    assert seen == [Success(42)]


def test_scoped_closes_with_the_failure_and_the_defect() -> None:
    seen: list[fx.Exit[Any, Any]] = []
    boom = ValueError("boom")
    fin = fx.add_finalizer(lambda ex: fx.sync(lambda: seen.append(ex)))
    assert fx.run_sync_exit(fx.scoped(fin.and_then(fx.fail("e")))) == Failure(Fail("e"))
    assert fx.run_sync_exit(fx.scoped(fin.and_then(fx.die(boom)))) == Failure(Die(boom))
    assert seen == [Failure(Fail("e")), Failure(Die(boom))]


@pytest.mark.anyio
async def test_scoped_closes_with_the_interruption() -> None:
    seen: list[str] = []
    body = fx.add_finalizer(lambda ex: _record(seen, _kind(ex))).and_then(fx.never)

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[Any, Any], Never, Never]:
        fiber = yield from fx.scoped(body).fork()
        yield from fx.sleep(0.005)
        return (yield from fiber.interrupt())

    ex = await fx.run(prog)
    assert_interrupted(ex)
    assert seen == ["interrupted"]


def test_finalizer_failure_after_success_replaces_the_value() -> None:
    # R31: the finalizer's cause alone; the value is lost.
    prog = fx.scoped(fx.add_finalizer(lambda ex: fx.fail("fin")).as_(1))
    assert fx.run_sync_exit(prog) == Failure(Fail("fin"))


def test_finalizer_failure_after_failure_is_sequential() -> None:
    boom = ValueError("fin died")
    prog = fx.scoped(fx.add_finalizer(lambda ex: fx.die(boom)).and_then(fx.fail("body")))
    ex = fx.run_sync_exit(prog)
    assert ex == Failure(Sequential(Fail("body"), Die(boom)))


def test_nested_scoped_blocks_release_before_the_outer_block_continues() -> None:
    # R32
    log: list[str] = []

    def res(name: str) -> fx.Effect[str, Never, fx.Scope]:
        return fx.acquire_release(
            _record(log, f"acquire {name}").as_(name),
            lambda r, ex: _record(log, f"release {r}"),
        )

    prog = fx.scoped(
        res("outer")
        .and_then(fx.scoped(res("inner").and_then(_record(log, "use inner"))))
        .and_then(_record(log, "outer continues"))
    )
    fx.run_sync(prog)
    assert log == [
        "acquire outer",
        "acquire inner",
        "use inner",
        "release inner",
        "outer continues",
        "release outer",
    ]


def test_scoped_is_lazy_and_rerunnable() -> None:
    log: list[str] = []
    prog = fx.scoped(fx.add_finalizer(lambda ex: _record(log, "fin")))
    assert log == []
    fx.run_sync(prog)
    fx.run_sync(prog)
    assert log == ["fin", "fin"]


# -- add_finalizer (R33) ---------------------------------------------------------------


def test_add_finalizer_registers_in_the_current_scope() -> None:
    log: list[Any] = []
    prog = fx.scoped(
        fx.add_finalizer(_logging_finalizer(log, "a"))
        .and_then(fx.add_finalizer(_logging_finalizer(log, "b")))
        .and_then(_record(log, "body"))
        .as_("v")
    )
    assert fx.run_sync(prog) == "v"
    assert log == ["body", ("b", "success 'v'"), ("a", "success 'v'")]


@pytest.mark.anyio
async def test_add_finalizer_runs_uninterruptibly() -> None:
    log: list[str] = []
    slow = fx.sleep(0.02).and_then(_record(log, "finalizer finished"))
    body = fx.add_finalizer(lambda ex: slow).and_then(fx.never)

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[Any, Any], Never, Never]:
        fiber = yield from fx.scoped(body).fork()
        yield from fx.sleep(0.005)
        ex = yield from fiber.interrupt()
        log.append("interrupt returned")
        return ex

    ex = await fx.run(prog)
    assert log == ["finalizer finished", "interrupt returned"]
    assert_interrupted(ex)


# -- acquire_release (R39-R42) ---------------------------------------------------------


def test_acquire_release_releases_with_the_scope_exit() -> None:
    # R40
    log: list[Any] = []
    res = fx.acquire_release(
        _record(log, "acquire").as_("conn"), lambda r, ex: _record(log, (f"release {r}", _kind(ex)))
    )
    assert fx.run_sync(fx.scoped(res.map(lambda c: c.upper()))) == "CONN"
    assert log == ["acquire", ("release conn", "success 'CONN'")]
    log.clear()
    ex = fx.run_sync_exit(fx.scoped(res.and_then(fx.fail("use failed"))))
    assert ex == Failure(Fail("use failed"))
    assert log == ["acquire", ("release conn", "failure")]


def test_failed_acquire_registers_no_release() -> None:
    # R39
    log: list[str] = []
    res = fx.acquire_release(
        _record(log, "acquire").and_then(fx.fail("cannot acquire")),
        lambda r, ex: _record(log, "release"),
    )
    ex = fx.run_sync_exit(fx.scoped(res.and_then(_record(log, "use"))))
    assert ex == Failure(Fail("cannot acquire"))
    assert log == ["acquire"]


def test_acquire_release_releases_in_reverse_order() -> None:
    log: list[str] = []

    def res(name: str) -> fx.Effect[str, Never, fx.Scope]:
        return fx.acquire_release(
            _record(log, f"+{name}").as_(name), lambda r, ex: _record(log, f"-{r}")
        )

    fx.run_sync(fx.scoped(fx.all([res("a"), res("b"), res("c")])))
    assert log == ["+a", "+b", "+c", "-c", "-b", "-a"]


def test_release_runs_once_even_if_the_scope_is_closed_again() -> None:
    log: list[str] = []
    scope = fx.Scope()
    res = fx.acquire_release(fx.succeed(1), lambda r, ex: _record(log, "release"))
    prog = (
        scope.extend(res).and_then(scope.close(Success(None))).and_then(scope.close(Success(None)))
    )
    fx.run_sync(prog)
    assert log == ["release"]


def test_acquire_release_validates_its_arguments() -> None:
    with pytest.raises(TypeError, match="Effect"):
        fx.acquire_release(lambda: 1, lambda r, ex: fx.void)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="release"):
        fx.acquire_release(fx.succeed(1), fx.void)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_interrupting_a_fiber_blocked_in_acquire() -> None:
    # R42: the interrupt waits for acquire; release then runs with an interrupted
    # exit, and only then does `interrupt` return; use never starts.
    log: list[Any] = []
    acquire = fx.sleep(0.03).and_then(_record(log, "acquired")).as_("res")
    res = fx.acquire_release(acquire, lambda r, ex: _record(log, ("release", _kind(ex))))
    program = fx.scoped(res.flat_map(lambda r: _record(log, "use")))

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[Any, Any], Never, Never]:
        fiber = yield from program.fork()
        yield from fx.sleep(0.005)
        log.append("interrupting")
        ex = yield from fiber.interrupt()
        log.append("interrupt returned")
        return ex

    start = anyio.current_time()
    ex = await fx.run(prog)
    assert anyio.current_time() - start >= 0.025
    assert log == ["interrupting", "acquired", ("release", "interrupted"), "interrupt returned"]
    assert_interrupted(ex)


@pytest.mark.anyio
async def test_cancelling_the_host_task_during_acquire_still_releases() -> None:
    log: list[Any] = []
    acquire = fx.sleep(0.03).and_then(_record(log, "acquired"))
    res = fx.acquire_release(acquire, lambda r, ex: _record(log, ("release", _kind(ex))))
    with anyio.move_on_after(0.005):
        await fx.run(fx.scoped(res.and_then(fx.never)))
    assert log == ["acquired", ("release", "interrupted")]


# -- acquire_use_release (R43, R44) --------------------------------------------------


@pytest.mark.parametrize(
    ("use_fails", "release_fails", "expected"),
    [
        (False, False, Success("used")),
        (True, False, Failure(Fail("use"))),
        (True, True, Failure(Sequential(Fail("use"), Fail("release")))),
        (False, True, Failure(Fail("release"))),
    ],
)
def test_acquire_use_release_outcome_table(
    use_fails: bool, release_fails: bool, expected: fx.Exit[Any, Any]
) -> None:
    # R44
    log: list[Any] = []

    def use(r: str) -> fx.Effect[str, str, Never]:
        return fx.fail("use") if use_fails else fx.succeed("used")

    def release(r: str, ex: fx.Exit[Any, Any]) -> fx.Effect[None, str, Never]:
        effect: fx.Effect[None, str, Never] = _record(log, ("release", r, _kind(ex)))
        return effect.and_then(fx.fail("release")) if release_fails else effect

    ex = fx.run_sync_exit(fx.acquire_use_release(fx.succeed("r"), use, release))
    assert ex == expected
    assert log == [("release", "r", "failure" if use_fails else "success 'used'")]


def test_acquire_use_release_release_runs_when_use_dies_or_raises() -> None:
    log: list[str] = []
    boom = ValueError("use raised")

    def use(r: int) -> fx.Effect[int, Never, Never]:
        raise boom

    ex = fx.run_sync_exit(
        fx.acquire_use_release(fx.succeed(1), use, lambda r, ex: _record(log, _kind(ex)))
    )
    assert ex == Failure(Die(boom))
    assert log == ["failure"]


def test_acquire_use_release_failed_acquire_skips_use_and_release() -> None:
    log: list[str] = []
    prog = fx.acquire_use_release(
        fx.fail("no"),
        lambda r: _record(log, "use"),
        lambda r, ex: _record(log, "release"),
    )
    assert fx.run_sync_exit(prog) == Failure(Fail("no"))
    assert log == []


@pytest.mark.anyio
async def test_acquire_use_release_use_is_interruptible_and_release_sees_it() -> None:
    # R43
    log: list[Any] = []
    prog = fx.acquire_use_release(
        fx.sleep(0.01).and_then(_record(log, "acquired")),
        lambda r: fx.never,
        lambda r, ex: fx.sleep(0.01).and_then(_record(log, ("released", _kind(ex)))),
    )

    @fx.gen
    def main() -> fx.Gen[fx.Exit[Any, Any], Never, Never]:
        fiber = yield from prog.fork()
        yield from fx.sleep(0.02)
        ex = yield from fiber.interrupt()
        log.append("interrupt returned")
        return ex

    ex = await fx.run(main)
    assert log == ["acquired", ("released", "interrupted"), "interrupt returned"]
    assert_interrupted(ex)


def test_acquire_use_release_use_inherits_uninterruptibility() -> None:
    # R43: inside an uninterruptible region, use is uninterruptible too.
    log: list[str] = []

    def use(r: None) -> fx.Effect[None, Never, Never]:
        return fx.yield_now().and_then(_record(log, "use finished"))

    prog = fx.acquire_use_release(fx.void, use, lambda r, ex: _record(log, _kind(ex)))

    @fx.gen
    def main() -> fx.Gen[fx.Exit[Any, Any], Never, Never]:
        fiber = yield from prog.uninterruptible().fork()
        yield from fx.yield_now()
        return (yield from fiber.interrupt())

    ex = fx.run_sync(main)
    assert log == ["use finished", "success None"]
    assert_interrupted(ex)


# -- fork_scoped / fork_in (R38) ---------------------------------------------------------


@pytest.mark.anyio
async def test_fork_scoped_fiber_is_interrupted_and_awaited_when_the_scope_closes() -> None:
    log: list[Any] = []
    worker = (
        _record(log, "worker started")
        .and_then(fx.never)
        .on_exit(lambda ex: fx.sleep(0.01).and_then(_record(log, ("worker ended", _kind(ex)))))
    )

    @fx.gen
    def body() -> fx.Gen[str, Never, fx.Scope]:
        yield from worker.fork_scoped()
        yield from fx.sleep(0.01)
        log.append("body done")
        return "v"

    prog = fx.scoped(body).tap(lambda v: _record(log, "scope closed"))
    assert await fx.run(prog) == "v"
    assert log == ["worker started", "body done", ("worker ended", "interrupted"), "scope closed"]


def test_fork_scoped_fiber_ending_by_itself_removes_its_finalizer() -> None:
    scope = fx.Scope()

    @fx.gen
    def prog() -> fx.Gen[int, Never, Never]:
        fiber = yield from scope.extend(fx.fork_scoped(fx.succeed(7)))
        assert len(scope._finalizers) == 1
        value = yield from fiber.join()
        assert len(scope._finalizers) == 0
        yield from scope.close(Success(None))
        return value

    assert fx.run_sync(prog) == 7


def test_fork_in_a_closed_scope_interrupts_the_fiber_at_once() -> None:
    log: list[str] = []
    scope = fx.Scope()

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[Any, Any], Never, Never]:
        yield from scope.close(Success(None))
        fiber = yield from fx.fork_in(_record(log, "ran").and_then(fx.never), scope)
        return (yield from fiber.await_())

    ex = fx.run_sync(prog)
    assert_interrupted(ex)
    assert log == []


@pytest.mark.anyio
async def test_fork_in_outlives_the_forking_fiber() -> None:
    # R38: the fiber is supervised by the scope, not by the fiber that forked it.
    log: list[str] = []
    scope = fx.Scope()

    def ticker() -> fx.Effect[None, Never, Never]:
        return fx.sleep(0.002).and_then(_record(log, "tick")).and_then(fx.suspend(ticker))

    @fx.gen
    def prog() -> fx.Gen[None, Never, Never]:
        forker = yield from fx.fork_in(ticker(), scope).as_void.fork()
        yield from forker.join()  # the forking fiber ends here
        yield from fx.sleep(0.03)
        ticks_before_close = len(log)
        yield from scope.close(Success(None))
        yield from fx.sleep(0.01)
        assert ticks_before_close >= 3
        assert len(log) == ticks_before_close

    await fx.run(prog)


@pytest.mark.anyio
async def test_fork_scoped_with_a_method() -> None:
    log: list[str] = []
    prog = fx.scoped(
        fx.never.on_interrupt(lambda ids: _record(log, "interrupted"))
        .fork_scoped()
        .and_then(fx.sleep(0.005))
    )
    await fx.run(prog)
    assert log == ["interrupted"]
