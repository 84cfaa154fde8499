"""Constructors and combinators of the effect contract, with their exact semantics
(rules R14-R19, R22, R31, R44-R49 of the semantics reference)."""

from __future__ import annotations

from typing import Any, Never, TypeVar

import anyio
import pytest
from returns.result import Failure as RFailure
from returns.result import Success as RSuccess

import effect as fx
from effect import Cause, Die, Empty, Fail, Failure, Interrupt, Parallel, Sequential, Success


def exit_of(eff: fx.Effect[Any, Any, Never]) -> fx.Exit[Any, Any]:
    return fx.run_sync_exit(eff)


def cause_of(eff: fx.Effect[Any, Any, Never]) -> Cause[Any]:
    ex = fx.run_sync_exit(eff)
    assert isinstance(ex, Failure), f"expected a failure, got {ex!r}"
    return ex.cause


V = TypeVar("V")


def _tee(log: list[Any], item: Any, value: V) -> V:
    """Append `item` to `log` and return `value` (for one-line sync thunks)."""
    log.append(item)
    return value


def never_called(*args: object) -> fx.Effect[Any, Any, Never]:
    raise AssertionError(f"handler must not be called (got {args!r})")


# ======================================================================================
# Constructors


def test_succeed() -> None:
    assert exit_of(fx.succeed(42)) == Success(42)
    assert fx.run_sync(fx.succeed("x")) == "x"


def test_fail() -> None:
    assert exit_of(fx.fail("no")) == Failure(Fail("no"))
    c = cause_of(fx.fail("no"))
    assert isinstance(c, Fail) and c.error == "no"


def test_die() -> None:
    d = ValueError("bug")
    c = cause_of(fx.die(d))
    assert isinstance(c, Die) and c.defect is d
    assert c.failures() == []


def test_die_message() -> None:
    c = cause_of(fx.die_message("boom"))
    assert [type(d) for d in c.defects()] == [RuntimeError]
    assert str(c.defects()[0]) == "boom"


def test_fail_cause() -> None:
    cause = Sequential(Fail("a"), Interrupt(3))
    assert exit_of(fx.fail_cause(cause)) == Failure(cause)


def test_void() -> None:
    assert exit_of(fx.void) == Success(None)


def test_sync_is_lazy_and_runs_each_time() -> None:
    calls: list[int] = []
    eff = fx.sync(lambda: _tee(calls, 1, len(calls) + 1))
    assert calls == []
    assert fx.run_sync(eff) == 1
    assert fx.run_sync(eff) == 2


def test_sync_raising_is_a_defect() -> None:
    err = ZeroDivisionError("x")

    def boom() -> int:
        raise err

    c = cause_of(fx.sync(boom))
    assert c == Die(err)
    assert c.failures() == []


def test_suspend_is_lazy() -> None:
    built: list[int] = []

    def make() -> fx.Effect[int, Never, Never]:
        built.append(1)
        return fx.succeed(len(built))

    eff = fx.suspend(make)
    assert built == []
    assert fx.run_sync(eff) == 1
    assert fx.run_sync(eff) == 2


def test_suspend_raising_is_a_defect() -> None:
    err = KeyError("k")

    def make() -> fx.Effect[int, Never, Never]:
        raise err

    assert cause_of(fx.suspend(make)) == Die(err)


def test_from_exit() -> None:
    assert exit_of(fx.from_exit(Success(1))) == Success(1)
    assert exit_of(fx.from_exit(Failure(Fail("e")))) == Failure(Fail("e"))


def test_fiber_id_is_a_positive_int() -> None:
    fid = fx.run_sync(fx.fiber_id())
    assert isinstance(fid, int) and fid > 0


def test_yield_now() -> None:
    assert exit_of(fx.yield_now().as_(1)) == Success(1)


def test_interrupt_fails_with_own_fiber_id() -> None:
    # R22: fx.interrupt() is only a failure with Interrupt(own id)
    eff = fx.fiber_id().flat_map(lambda me: fx.interrupt().exit().map(lambda ex: (me, ex)))
    me, ex = fx.run_sync(eff)
    assert isinstance(ex, Failure)
    assert ex.cause.is_interrupted_only()
    assert ex.cause.interruptors() == {me}


# -- try_ (R16) --------------------------------------------------------------------------


def test_try_success() -> None:
    assert exit_of(fx.try_(lambda: 1 + 1)) == Success(2)


def test_try_without_catch_fails_with_unknown_exception() -> None:
    err = ValueError("parse error")

    def boom() -> int:
        raise err

    c = cause_of(fx.try_(boom))
    assert c.defects() == []
    [failure] = c.failures()
    assert isinstance(failure, fx.UnknownException)
    assert failure.error is err
    assert failure.__cause__ is err
    assert str(failure) == "An unknown error occurred in Effect.try"


def test_try_with_catch_fails_with_catch_result() -> None:
    seen: list[Exception] = []

    def catch(e: Exception) -> str:
        seen.append(e)
        return f"caught {e}"

    assert exit_of(fx.try_(lambda: int("x"), catch=catch)) == Failure(
        Fail("caught invalid literal for int() with base 10: 'x'")
    )
    assert isinstance(seen[0], ValueError)


def test_try_catch_raising_is_a_defect() -> None:
    catch_err = RuntimeError("catch broke")

    def catch(_: Exception) -> str:
        raise catch_err

    def boom() -> int:
        raise ValueError("x")

    c = cause_of(fx.try_(boom, catch=catch))
    assert c.failures() == []
    assert c.defects() == [catch_err]


def test_try_is_lazy() -> None:
    calls: list[int] = []
    eff = fx.try_(lambda: calls.append(1))
    assert calls == []
    fx.run_sync(eff)
    fx.run_sync(eff)
    assert calls == [1, 1]


# -- promise / try_promise (R16, R17) ------------------------------------------------------


@pytest.mark.anyio
async def test_promise_success() -> None:
    async def work() -> int:
        await anyio.sleep(0)
        return 7

    assert await fx.run(fx.promise(work)) == 7


@pytest.mark.anyio
async def test_promise_is_lazy_and_reruns() -> None:
    calls: list[int] = []

    async def work() -> int:
        calls.append(1)
        return len(calls)

    eff = fx.promise(work)
    assert calls == []
    assert await fx.run(eff) == 1
    assert await fx.run(eff) == 2


@pytest.mark.anyio
async def test_promise_rejection_is_a_defect() -> None:
    err = ValueError("rejected")

    async def work() -> int:
        await anyio.sleep(0)
        raise err

    ex = await fx.run_exit(fx.promise(work))
    assert ex == Failure(Die(err))


@pytest.mark.anyio
async def test_promise_exception_while_creating_is_a_defect() -> None:
    err = ValueError("could not even start")

    def make() -> Any:
        raise err

    ex = await fx.run_exit(fx.promise(make))
    assert ex == Failure(Die(err))


@pytest.mark.anyio
async def test_try_promise_without_catch() -> None:
    err = OSError("io")

    async def work() -> int:
        raise err

    ex = await fx.run_exit(fx.try_promise(work))
    assert isinstance(ex, Failure)
    assert ex.cause.defects() == []
    [failure] = ex.cause.failures()
    assert isinstance(failure, fx.UnknownException)
    assert failure.error is err
    assert str(failure) == "An unknown error occurred in Effect.tryPromise"


@pytest.mark.anyio
async def test_try_promise_with_catch() -> None:
    async def work() -> int:
        raise OSError("io")

    ex = await fx.run_exit(fx.try_promise(work, catch=lambda e: f"wrapped {e}"))
    assert ex == Failure(Fail("wrapped io"))


@pytest.mark.anyio
async def test_try_promise_catch_raising_is_a_defect() -> None:
    catch_err = RuntimeError("catch broke")

    async def work() -> int:
        raise OSError("io")

    def catch(_: Exception) -> str:
        raise catch_err

    ex = await fx.run_exit(fx.try_promise(work, catch=catch))
    assert ex == Failure(Die(catch_err))


@pytest.mark.anyio
async def test_try_promise_success() -> None:
    async def work() -> str:
        return "ok"

    assert await fx.run(fx.try_promise(work, catch=lambda e: "bad")) == "ok"


# ======================================================================================
# Sequencing


def test_map() -> None:
    assert fx.run_sync(fx.succeed(2).map(lambda n: n * 10)) == 20


def test_map_skipped_on_failure() -> None:
    assert exit_of(fx.fail("e").map(never_called)) == Failure(Fail("e"))


def test_map_raising_is_a_defect() -> None:
    err = ArithmeticError("map broke")

    def f(_: int) -> int:
        raise err

    assert cause_of(fx.succeed(1).map(f)) == Die(err)


def test_flat_map() -> None:
    assert fx.run_sync(fx.succeed(2).flat_map(lambda n: fx.succeed(n + 1))) == 3
    assert exit_of(fx.succeed(2).flat_map(lambda n: fx.fail(n))) == Failure(Fail(2))
    assert exit_of(fx.fail("e").flat_map(never_called)) == Failure(Fail("e"))


def test_flat_map_raising_is_a_defect() -> None:
    err = ArithmeticError("flat_map broke")

    def f(_: int) -> fx.Effect[int, Never, Never]:
        raise err

    assert cause_of(fx.succeed(1).flat_map(f)) == Die(err)


def test_and_then() -> None:
    log: list[str] = []
    eff = fx.sync(lambda: log.append("a")).and_then(fx.sync(lambda: _tee(log, "b", "b")))
    assert fx.run_sync(eff) == "b"
    assert log == ["a", "b"]


def test_tap_keeps_the_value_and_runs_the_effect() -> None:
    log: list[int] = []
    eff = fx.succeed(5).tap(lambda n: fx.sync(lambda: log.append(n)))
    assert fx.run_sync(eff) == 5
    assert log == [5]


def test_tap_failure_fails() -> None:
    assert exit_of(fx.succeed(5).tap(lambda n: fx.fail(f"tap {n}"))) == Failure(Fail("tap 5"))


def test_tap_not_run_on_failure() -> None:
    assert exit_of(fx.fail("e").tap(never_called)) == Failure(Fail("e"))


def test_zip_runs_left_then_right() -> None:
    log: list[str] = []
    left = fx.sync(lambda: _tee(log, "l", 1))
    right = fx.sync(lambda: _tee(log, "r", "two"))
    assert fx.run_sync(left.zip(right)) == (1, "two")
    assert log == ["l", "r"]


def test_zip_short_circuits() -> None:
    log: list[str] = []
    right = fx.sync(lambda: log.append("r"))
    assert exit_of(fx.fail("l").zip(right)) == Failure(Fail("l"))
    assert log == []
    assert exit_of(fx.succeed(1).zip(fx.fail("r"))) == Failure(Fail("r"))


def test_zip_left() -> None:
    log: list[str] = []
    eff = fx.succeed(1).zip_left(fx.sync(lambda: _tee(log, "r", 2)))
    assert fx.run_sync(eff) == 1
    assert log == ["r"]


def test_as_() -> None:
    assert fx.run_sync(fx.succeed(1).as_("x")) == "x"
    assert exit_of(fx.fail("e").as_("x")) == Failure(Fail("e"))


def test_as_void() -> None:
    assert fx.run_sync(fx.succeed(1).as_void) is None


def test_pipe_applies_left_to_right() -> None:
    def add_one(e: fx.Effect[int, Never, Never]) -> fx.Effect[int, Never, Never]:
        return e.map(lambda n: n + 1)

    def times_ten(e: fx.Effect[int, Never, Never]) -> fx.Effect[int, Never, Never]:
        return e.map(lambda n: n * 10)

    assert fx.run_sync(fx.succeed(1).pipe(add_one, times_ten)) == 20
    assert fx.run_sync(fx.succeed(1).pipe(times_ten, add_one)) == 11
    assert fx.succeed(1).pipe(lambda e: "not even an effect") == "not even an effect"
    eff = fx.succeed(1)
    assert eff.pipe() is eff


# ======================================================================================
# Failures vs defects (R14, R18)


def test_catch_all_recovers_a_failure() -> None:
    assert fx.run_sync(fx.fail("e").catch_all(lambda e: fx.succeed(f"got {e}"))) == "got e"


def test_catch_all_not_called_on_success() -> None:
    assert fx.run_sync(fx.succeed(1).catch_all(never_called)) == 1


def test_catch_all_does_not_catch_defects() -> None:
    d = ValueError("bug")
    assert exit_of(fx.die(d).catch_all(never_called)) == Failure(Die(d))


def test_catch_all_does_not_catch_thrown_exceptions() -> None:
    err = ValueError("thrown")

    def boom() -> int:
        raise err

    assert exit_of(fx.sync(boom).catch_all(never_called)) == Failure(Die(err))


def test_catch_all_gets_the_first_failure_only() -> None:
    # R18: with several failures the handler gets the first; the rest is dropped.
    seen: list[str] = []
    eff = fx.fail_cause(Parallel(Fail("a"), Sequential(Fail("b"), Interrupt(9))))
    result = eff.catch_all(lambda e: fx.sync(lambda: seen.append(e)).as_("recovered"))
    assert exit_of(result) == Success("recovered")
    assert seen == ["a"]


def test_catch_all_on_interrupt_only_propagates_unchanged() -> None:
    cause = Sequential(Interrupt(4), Empty())
    assert exit_of(fx.fail_cause(cause).catch_all(never_called)) == Failure(cause)


def test_catch_all_on_mixed_cause_turns_failures_into_defects() -> None:
    # R18 example: fail("a").ensuring(die("x")).catch_all(h) fails with
    # Sequential(Die "a", Die "x") and never calls h.
    a, x = ValueError("a"), RuntimeError("x")
    c = cause_of(fx.fail(a).ensuring(fx.die(x)).catch_all(never_called))
    assert c == Sequential(Die(a), Die(x))
    assert c.failures() == []


def test_catch_all_on_mixed_cause_with_a_non_exception_failure() -> None:
    x = RuntimeError("x")
    c = cause_of(fx.fail("a").ensuring(fx.die(x)).catch_all(never_called))
    assert c.failures() == []
    defects = c.defects()
    assert len(defects) == 2
    assert str(defects[0]) == "a"  # the failure "a", now a defect, first
    assert defects[1] is x
    assert isinstance(c, Sequential)


def test_either_success_and_failure_are_returns_results() -> None:
    assert fx.run_sync(fx.succeed(1).either()) == RSuccess(1)
    assert fx.run_sync(fx.fail("e").either()) == RFailure("e")
    assert isinstance(fx.run_sync(fx.succeed(1).either()), RSuccess)
    assert isinstance(fx.run_sync(fx.fail("e").either()), RFailure)


def test_either_does_not_catch_defects() -> None:
    d = ValueError("bug")
    assert exit_of(fx.die(d).either()) == Failure(Die(d))


def test_either_on_mixed_cause() -> None:
    a, x = ValueError("a"), RuntimeError("x")
    c = cause_of(fx.fail(a).ensuring(fx.die(x)).either())
    assert c == Sequential(Die(a), Die(x))


def test_or_else() -> None:
    assert fx.run_sync(fx.fail("e").or_else(lambda: fx.succeed("alt"))) == "alt"
    assert fx.run_sync(fx.succeed(1).or_else(never_called)) == 1
    d = ValueError("bug")
    assert exit_of(fx.die(d).or_else(never_called)) == Failure(Die(d))


def test_catch_some() -> None:
    def handler(e: str) -> fx.Effect[str, Never, Never] | None:
        return fx.succeed("handled") if e == "mine" else None

    assert fx.run_sync(fx.fail("mine").catch_some(handler)) == "handled"
    assert exit_of(fx.fail("other").catch_some(handler)) == Failure(Fail("other"))
    d = ValueError("bug")
    assert exit_of(fx.die(d).catch_some(never_called)) == Failure(Die(d))


def test_catch_cause_sees_everything() -> None:
    d = ValueError("bug")
    seen: list[Cause[Any]] = []

    def handler(c: Cause[Any]) -> fx.Effect[str, Never, Never]:
        seen.append(c)
        return fx.succeed("recovered")

    assert fx.run_sync(fx.die(d).catch_cause(handler)) == "recovered"
    assert fx.run_sync(fx.fail("e").catch_cause(handler)) == "recovered"
    mixed = Sequential(Fail("a"), Die(d))
    assert fx.run_sync(fx.fail_cause(mixed).catch_cause(handler)) == "recovered"
    assert seen == [Die(d), Fail("e"), mixed]


def test_catch_cause_recovers_self_interruption() -> None:
    # R22
    assert fx.run_sync(fx.interrupt().catch_cause(lambda c: fx.succeed("back"))) == "back"


def test_match() -> None:
    eff_ok = fx.succeed(2).match(on_failure=lambda e: f"bad {e}", on_success=lambda a: a * 10)
    eff_ko = fx.fail("x").match(on_failure=lambda e: f"bad {e}", on_success=never_called)
    assert fx.run_sync(eff_ok) == 20
    assert fx.run_sync(eff_ko) == "bad x"


def test_match_does_not_catch_defects() -> None:
    d = ValueError("bug")
    assert exit_of(fx.die(d).match(on_failure=never_called, on_success=never_called)) == Failure(
        Die(d)
    )


def test_exit_sees_everything() -> None:
    d = ValueError("bug")
    assert fx.run_sync(fx.succeed(1).exit()) == Success(1)
    assert fx.run_sync(fx.fail("e").exit()) == Failure(Fail("e"))
    assert fx.run_sync(fx.die(d).exit()) == Failure(Die(d))
    mixed = Sequential(Fail("a"), Die(d))
    assert fx.run_sync(fx.fail_cause(mixed).exit()) == Failure(mixed)


def test_exit_recovers_self_interruption() -> None:
    # R20 / R22: `exit` even recovers a self-inflicted `fx.interrupt()`
    ex = fx.run_sync(fx.interrupt().exit())
    assert isinstance(ex, Failure)
    assert ex.cause.is_interrupted_only() and ex.cause.is_interrupted()


def test_or_die_turns_failures_into_defects() -> None:
    err = ValueError("e")
    assert exit_of(fx.fail(err).or_die()) == Failure(Die(err))
    c = cause_of(fx.fail("plain").or_die())
    assert c.failures() == []
    assert len(c.defects()) == 1 and str(c.defects()[0]) == "plain"
    assert fx.run_sync(fx.succeed(1).or_die()) == 1
    d = RuntimeError("d")
    assert exit_of(fx.die(d).or_die()) == Failure(Die(d))


# -- map_error (R19) ---------------------------------------------------------------------


def test_map_error() -> None:
    assert exit_of(fx.fail(1).map_error(lambda e: e + 1)) == Failure(Fail(2))
    assert fx.run_sync(fx.succeed(1).map_error(never_called)) == 1
    d = ValueError("bug")
    assert exit_of(fx.die(d).map_error(never_called)) == Failure(Die(d))


def test_map_error_keeps_only_the_first_failure_dropping_defects() -> None:
    # R19 example: fail("a").ensuring(die("x")).map_error(f) gives Fail(f("a"))
    x = RuntimeError("x")
    assert exit_of(fx.fail("a").ensuring(fx.die(x)).map_error(str.upper)) == Failure(Fail("A"))


def test_map_error_keeps_only_the_first_of_several_failures() -> None:
    eff = fx.fail_cause(Parallel(Fail("a"), Fail("b")))
    assert exit_of(eff.map_error(str.upper)) == Failure(Fail("A"))


def test_map_error_raising_is_a_defect() -> None:
    err = LookupError("mapper broke")

    def f(_: str) -> str:
        raise err

    assert cause_of(fx.fail("a").map_error(f)).defects() == [err]


# ======================================================================================
# ensuring / on_exit / on_error / on_interrupt (R31, R44-R49)


def _record(log: list[Any], item: Any) -> fx.Effect[None, Never, Never]:
    return fx.sync(lambda: log.append(item))


def test_ensuring_runs_on_success_and_keeps_the_value() -> None:
    log: list[str] = []
    assert fx.run_sync(fx.succeed(1).ensuring(_record(log, "fin"))) == 1
    assert log == ["fin"]


def test_ensuring_runs_on_failure_and_defect() -> None:
    log: list[str] = []
    assert exit_of(fx.fail("e").ensuring(_record(log, "f1"))) == Failure(Fail("e"))
    d = ValueError("d")
    assert exit_of(fx.die(d).ensuring(_record(log, "f2"))) == Failure(Die(d))
    assert log == ["f1", "f2"]


def test_ensuring_runs_after_the_body() -> None:
    log: list[str] = []
    fx.run_sync(_record(log, "body").ensuring(_record(log, "fin")))
    assert log == ["body", "fin"]


def test_ensuring_runs_exactly_once() -> None:
    log: list[str] = []
    eff = fx.fail("e").ensuring(_record(log, "fin")).catch_all(lambda _: fx.void)
    fx.run_sync(eff)
    assert log == ["fin"]


def test_ensuring_failing_finalizer_after_success_replaces_the_value() -> None:
    # R31: body succeeded -> the finalizer's cause alone
    assert exit_of(fx.succeed(1).ensuring(fx.fail("fin"))) == Failure(Fail("fin"))
    d = ValueError("fin")
    assert exit_of(fx.succeed(1).ensuring(fx.die(d))) == Failure(Die(d))


def test_ensuring_failing_finalizer_after_failure_is_sequential() -> None:
    # R31: body failed -> Sequential(body cause, finalizer cause)
    d = ValueError("fin")
    c = cause_of(fx.fail("body").ensuring(fx.die(d)))
    assert isinstance(c, Sequential)
    assert c == Sequential(Fail("body"), Die(d))
    assert c.left == Fail("body") and c.right == Die(d)


def test_ensuring_throwing_finalizer_is_a_defect() -> None:
    err = OSError("close failed")

    def close() -> None:
        raise err

    c = cause_of(fx.fail("body").ensuring(fx.sync(close)))
    assert c == Sequential(Fail("body"), Die(err))


def test_stacked_ensuring_nests_to_the_left() -> None:
    # R46: fail(e).ensuring(die(a)).ensuring(die(b)) is exactly
    # Sequential(Sequential(Fail e, Die a), Die b)
    a, b = ValueError("a"), ValueError("b")
    c = cause_of(fx.fail("e").ensuring(fx.die(a)).ensuring(fx.die(b)))
    assert isinstance(c, Sequential)
    assert isinstance(c.left, Sequential)
    assert c.left.left == Fail("e") and isinstance(c.left.left, Fail)
    assert c.left.right == Die(a) and isinstance(c.left.right, Die)
    assert c.right == Die(b) and isinstance(c.right, Die)
    assert c.failures() == ["e"]
    assert c.defects() == [a, b]


def test_stacked_throwing_finalizers_nest_to_the_left() -> None:
    a, b = ValueError("a"), ValueError("b")

    def raise_(e: Exception) -> fx.Effect[None, Never, Never]:
        def go() -> None:
            raise e

        return fx.sync(go)

    c = cause_of(fx.fail("e").ensuring(raise_(a)).ensuring(raise_(b)))
    assert c == Sequential(Sequential(Fail("e"), Die(a)), Die(b))
    assert isinstance(c, Sequential) and isinstance(c.left, Sequential)


def test_stacked_ensuring_finalizers_run_inner_first() -> None:
    log: list[str] = []
    fx.run_sync_exit(fx.fail("e").ensuring(_record(log, "inner")).ensuring(_record(log, "outer")))
    assert log == ["inner", "outer"]


def test_failing_finalizer_does_not_stop_outer_finalizers() -> None:
    log: list[str] = []
    d = ValueError("d")
    eff = fx.succeed(1).ensuring(fx.die(d)).ensuring(_record(log, "outer"))
    assert exit_of(eff) == Failure(Die(d))
    assert log == ["outer"]


def test_catching_a_failing_finalizer() -> None:
    # upstream "catch failing finalizers with fail": the combined cause is caught as one
    eff = fx.fail("body").ensuring(fx.fail("fin")).catch_cause(lambda c: fx.succeed(c))
    c = fx.run_sync(eff)
    assert c == Sequential(Fail("body"), Fail("fin"))


def test_on_exit_receives_success() -> None:
    seen: list[fx.Exit[Any, Any]] = []
    assert fx.run_sync(fx.succeed(3).on_exit(lambda ex: _record(seen, ex))) == 3
    assert seen == [Success(3)]


def test_on_exit_receives_failure_and_defect() -> None:
    seen: list[fx.Exit[Any, Any]] = []
    d = ValueError("d")
    fx.run_sync_exit(fx.fail("e").on_exit(lambda ex: _record(seen, ex)))
    fx.run_sync_exit(fx.die(d).on_exit(lambda ex: _record(seen, ex)))
    assert seen == [Failure(Fail("e")), Failure(Die(d))]


def test_on_exit_combination_rules() -> None:
    d = ValueError("cleanup")
    assert exit_of(fx.succeed(1).on_exit(lambda _: fx.die(d))) == Failure(Die(d))
    assert exit_of(fx.fail("e").on_exit(lambda _: fx.die(d))) == Failure(
        Sequential(Fail("e"), Die(d))
    )


def test_on_exit_cleanup_raising_is_a_defect() -> None:
    err = ValueError("cleanup raised while building")

    def cleanup(_: fx.Exit[Any, Any]) -> fx.Effect[None, Never, Never]:
        raise err

    assert exit_of(fx.succeed(1).on_exit(cleanup)) == Failure(Die(err))
    c = cause_of(fx.fail("e").on_exit(cleanup))
    assert err in c.defects()


def test_on_exit_sees_self_interruption() -> None:
    seen: list[fx.Exit[Any, Any]] = []
    fx.run_sync_exit(fx.interrupt().on_exit(lambda ex: _record(seen, ex)))
    [ex] = seen
    assert isinstance(ex, Failure) and ex.cause.is_interrupted_only()


def test_on_error_runs_on_failure_and_defect_not_on_success() -> None:
    # R48
    seen: list[Cause[Any]] = []
    d = ValueError("d")
    assert fx.run_sync(fx.succeed(1).on_error(lambda c: _record(seen, c))) == 1
    assert seen == []
    assert exit_of(fx.fail("e").on_error(lambda c: _record(seen, c))) == Failure(Fail("e"))
    assert exit_of(fx.die(d).on_error(lambda c: _record(seen, c))) == Failure(Die(d))
    assert seen == [Fail("e"), Die(d)]


def test_on_error_failing_cleanup_is_sequential() -> None:
    d = ValueError("d")
    assert exit_of(fx.fail("e").on_error(lambda _: fx.die(d))) == Failure(
        Sequential(Fail("e"), Die(d))
    )


def test_on_interrupt_runs_only_on_interrupt_only_causes() -> None:
    # R49
    seen: list[frozenset[int]] = []
    d = ValueError("d")

    def handler(ids: frozenset[int]) -> fx.Effect[None, Never, Never]:
        return _record(seen, ids)

    fx.run_sync_exit(fx.succeed(1).on_interrupt(handler))
    fx.run_sync_exit(fx.fail("e").on_interrupt(handler))
    fx.run_sync_exit(fx.die(d).on_interrupt(handler))
    fx.run_sync_exit(fx.fail_cause(Sequential(Interrupt(5), Fail("e"))).on_interrupt(handler))
    fx.run_sync_exit(fx.fail_cause(Parallel(Interrupt(5), Die(d))).on_interrupt(handler))
    assert seen == []
    fx.run_sync_exit(fx.fail_cause(Parallel(Interrupt(5), Interrupt(6))).on_interrupt(handler))
    assert seen == [frozenset({5, 6})]


def test_on_interrupt_receives_own_id_on_self_interruption() -> None:
    seen: list[frozenset[int]] = []
    me = fx.run_sync(
        fx.fiber_id().flat_map(
            lambda me: fx.interrupt().on_interrupt(lambda ids: _record(seen, ids)).exit().as_(me)
        )
    )
    assert seen == [frozenset({me})]


@pytest.mark.anyio
async def test_on_exit_and_on_interrupt_see_external_interruption() -> None:
    # R47: cleanup gets Failure(cause) for an interruption; R49 with interruptor ids
    exits: list[fx.Exit[Any, Any]] = []
    ids: list[frozenset[int]] = []
    errors: list[Cause[Any]] = []

    @fx.gen
    def prog() -> fx.Gen[int, Never, Never]:
        me = yield from fx.fiber_id()
        child = (
            fx.never.on_exit(lambda ex: _record(exits, ex))
            .on_interrupt(lambda i: _record(ids, i))
            .on_error(lambda c: _record(errors, c))
            .fork()
        )
        fiber = yield from child
        yield from fx.sleep(0.005)
        yield from fiber.interrupt()
        return me

    me = await fx.run(prog)
    [ex] = exits
    assert isinstance(ex, Failure) and ex.cause.is_interrupted_only()
    assert me in ex.cause.interruptors()
    assert len(ids) == 1 and me in ids[0]
    [c] = errors
    assert c.is_interrupted_only() and c.is_interrupted()


@pytest.mark.anyio
async def test_ensuring_finalizer_is_uninterruptible() -> None:
    # R45: the finalizer runs uninterruptibly; an interrupt cannot cut it short
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[Any, Any], Never, Never]:
        fiber = yield from (
            fx.succeed(1)
            .ensuring(
                _record(log, "fin start").and_then(fx.sleep(0.03)).and_then(_record(log, "fin end"))
            )
            .fork()
        )
        yield from fx.sleep(0.01)
        assert log == ["fin start"]
        ex = yield from fiber.interrupt()
        return ex

    ex = await fx.run(prog)
    assert log == ["fin start", "fin end"]
    # R51: the fiber was interrupted during the finalizer: its exit is interrupted
    assert isinstance(ex, Failure) and ex.cause.is_interrupted()


# -- acquire_use_release outcome table (R44) -----------------------------------------------


def _aur(
    use: fx.Effect[Any, Any, Never], release: fx.Effect[Any, Any, Never], log: list[str]
) -> fx.Effect[Any, Any, Never]:
    return fx.acquire_use_release(
        fx.sync(lambda: _tee(log, "acquire", "res")),
        lambda r: _record(log, f"use {r}").and_then(use),
        lambda r, ex: _record(log, f"release {r} {ex.is_success()}").and_then(release),
    )


def test_acquire_use_release_ok_ok_gives_the_use_value() -> None:
    log: list[str] = []
    assert exit_of(_aur(fx.succeed(1), fx.void, log)) == Success(1)
    assert log == ["acquire", "use res", "release res True"]


def test_acquire_use_release_failed_use_gives_the_use_cause() -> None:
    log: list[str] = []
    assert exit_of(_aur(fx.fail("use"), fx.void, log)) == Failure(Fail("use"))
    assert log == ["acquire", "use res", "release res False"]


def test_acquire_use_release_both_failed_is_sequential() -> None:
    log: list[str] = []
    d = ValueError("release")
    c = cause_of(_aur(fx.fail("use"), fx.die(d), log))
    assert c == Sequential(Fail("use"), Die(d))
    assert isinstance(c, Sequential) and c.left == Fail("use")


def test_acquire_use_release_ok_use_failed_release_gives_release_cause_only() -> None:
    log: list[str] = []
    d = ValueError("release")
    assert exit_of(_aur(fx.succeed(1), fx.die(d), log)) == Failure(Die(d))


def test_acquire_use_release_release_runs_when_use_throws() -> None:
    log: list[str] = []
    err = RuntimeError("use threw")

    def use(_: str) -> fx.Effect[int, Never, Never]:
        raise err

    eff = fx.acquire_use_release(
        fx.succeed("res"), use, lambda r, ex: _record(log, f"release {ex.is_success()}")
    )
    assert exit_of(eff) == Failure(Die(err))
    assert log == ["release False"]


def test_acquire_use_release_failed_acquire_runs_nothing_else() -> None:
    log: list[str] = []
    eff = fx.acquire_use_release(
        fx.fail("acquire"),
        lambda r: _record(log, "use"),
        lambda r, ex: _record(log, "release"),
    )
    assert exit_of(eff) == Failure(Fail("acquire"))
    assert log == []
