"""`fx.gen` and `fx.fn`: do-notation over generators (rules R23-R25)."""

from __future__ import annotations

import functools
from typing import Any, Never

import anyio
import pytest

import effect as fx
from effect import Die, Fail, Failure, Sequential, Success


def _step(log: list[str], i: int) -> int:
    log.append(f"step {i}")
    return i * 10


class Name(fx.Tag["Name", str]): ...


class Missing(fx.Tag["Missing", int]): ...


# -- values and sequencing -------------------------------------------------------------


def test_gen_returns_the_generator_return_value() -> None:
    @fx.gen
    def prog() -> fx.Gen[int, Never, Never]:
        a = yield from fx.succeed(1)
        b = yield from fx.succeed(2)
        return a + b

    assert fx.run_sync(prog) == 3


def test_gen_without_yield_expression_still_works() -> None:
    def body() -> fx.Gen[str, Never, Never]:
        return "plain"
        yield from fx.void  # unreachable: makes this a generator function

    assert fx.run_sync(fx.gen(body)) == "plain"


def test_yielded_effects_run_in_order_and_receive_values() -> None:
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[list[int], Never, Never]:
        values: list[int] = []
        for i in range(3):
            v = yield from fx.sync(functools.partial(_step, log, i))
            values.append(v)
        return values

    assert fx.run_sync(prog) == [0, 10, 20]
    assert log == ["step 0", "step 1", "step 2"]


def test_nested_gen() -> None:
    @fx.gen
    def inner() -> fx.Gen[int, Never, Never]:
        x = yield from fx.succeed(20)
        return x + 1

    @fx.gen
    def outer() -> fx.Gen[int, Never, Never]:
        y = yield from inner
        z = yield from inner
        return y + z

    assert fx.run_sync(outer) == 42


# -- laziness (R23) --------------------------------------------------------------------


def test_gen_is_lazy() -> None:
    started: list[int] = []

    def body() -> fx.Gen[int, Never, Never]:
        started.append(1)
        x = yield from fx.succeed(1)
        return x

    eff = fx.gen(body)
    assert started == []
    fx.run_sync(eff)
    assert started == [1]


def test_each_run_uses_a_fresh_generator() -> None:
    runs: list[int] = []

    def body() -> fx.Gen[int, Never, Never]:
        runs.append(1)
        a = yield from fx.succeed(len(runs))
        return a

    eff = fx.gen(body)
    assert fx.run_sync(eff) == 1
    assert fx.run_sync(eff) == 2
    assert fx.run_sync(eff.zip(eff)) == (3, 4)


def test_fn_is_lazy_and_takes_arguments() -> None:
    started: list[tuple[int, str]] = []

    @fx.fn
    def greet(n: int, *, word: str) -> fx.Gen[str, Never, Never]:
        started.append((n, word))
        x = yield from fx.succeed(n)
        return f"{word} {x}"

    eff = greet(3, word="hi")
    assert started == []
    assert fx.run_sync(eff) == "hi 3"
    assert fx.run_sync(eff) == "hi 3"
    assert started == [(3, "hi"), (3, "hi")]
    assert greet.__name__ == "greet"


def test_fn_failure() -> None:
    @fx.fn
    def check(n: int) -> fx.Gen[int, str, Never]:
        if n < 0:
            yield from fx.fail("negative")
        return n

    assert fx.run_sync_exit(check(1)) == Success(1)
    assert fx.run_sync_exit(check(-1)) == Failure(Fail("negative"))


def test_fn_recursion() -> None:
    @fx.fn
    def fact(n: int) -> fx.Gen[int, Never, Never]:
        if n <= 1:
            return 1
        rest = yield from fact(n - 1)
        return n * rest

    assert fx.run_sync(fact(10)) == 3628800


# -- short-circuit (R24) -----------------------------------------------------------------


def test_first_failing_yield_short_circuits() -> None:
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[int, str, Never]:
        log.append("before")
        yield from fx.fail("stop")
        log.append("after")  # never reached
        return 1

    assert fx.run_sync_exit(prog) == Failure(Fail("stop"))
    assert log == ["before"]


def test_except_in_body_does_not_observe_effect_failures() -> None:
    observed: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[int, str, Never]:
        try:
            yield from fx.fail("typed")
        except Exception as exc:  # must not happen: failures are not exceptions here
            observed.append(f"except {exc!r}")
        return 1

    assert fx.run_sync_exit(prog) == Failure(Fail("typed"))
    assert observed == []


def test_except_in_body_does_not_observe_defects() -> None:
    observed: list[str] = []
    d = ValueError("defect")

    @fx.gen
    def prog() -> fx.Gen[int, Never, Never]:
        try:
            yield from fx.die(d)
        except Exception as exc:
            observed.append(f"except {exc!r}")
        return 1

    assert fx.run_sync_exit(prog) == Failure(Die(d))
    assert observed == []


def test_finally_runs_when_a_yielded_effect_fails() -> None:
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[int, str, Never]:
        try:
            yield from fx.fail("stop")
            return 1
        finally:
            log.append("finally")

    ex = fx.run_sync_exit(prog)
    assert ex == Failure(Fail("stop"))
    assert log == ["finally"]


def test_finally_runs_before_outer_finalizers() -> None:
    # The generator is closed while the failure unwinds through it, so its `finally`
    # runs before a finalizer that wraps the whole gen effect.
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[int, str, Never]:
        try:
            yield from fx.fail("stop")
            return 1
        finally:
            log.append("finally")

    fx.run_sync_exit(prog.ensuring(fx.sync(lambda: log.append("outer ensuring"))))
    assert log == ["finally", "outer ensuring"]


def test_finally_runs_on_success_too() -> None:
    log: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[int, Never, Never]:
        try:
            x = yield from fx.succeed(1)
            return x
        finally:
            log.append("finally")

    assert fx.run_sync(prog) == 1
    assert log == ["finally"]


@pytest.mark.anyio
async def test_finally_runs_when_the_fiber_is_interrupted() -> None:
    log: list[str] = []

    @fx.gen
    def child() -> fx.Gen[None, Never, Never]:
        try:
            log.append("start")
            yield from fx.never
        finally:
            log.append("finally")

    @fx.gen
    def prog() -> fx.Gen[fx.Exit[None, Never], Never, Never]:
        fiber = yield from child.fork()
        yield from fx.sleep(0.005)
        ex = yield from fiber.interrupt()
        return ex

    ex = await fx.run(prog)
    assert log == ["start", "finally"]
    assert isinstance(ex, Failure) and ex.cause.is_interrupted_only()


def test_failure_in_finally_joins_the_cause() -> None:
    err = RuntimeError("finally broke")

    @fx.gen
    def prog() -> fx.Gen[int, str, Never]:
        try:
            yield from fx.fail("stop")
            return 1
        finally:
            raise err

    ex = fx.run_sync_exit(prog)
    # Like a failing finalizer after a failed body (R31): Sequential(body, finalizer).
    assert ex == Failure(Sequential(Fail("stop"), Die(err)))


def test_catch_all_around_the_gen_recovers() -> None:
    @fx.gen
    def prog() -> fx.Gen[int, str, Never]:
        yield from fx.fail("stop")
        return 1

    assert fx.run_sync(prog.catch_all(lambda e: fx.succeed(len(e)))) == 4


def test_recovering_inside_the_body_with_combinators() -> None:
    @fx.gen
    def prog() -> fx.Gen[str, Never, Never]:
        r = yield from fx.fail("x").either()
        return repr(r)

    assert fx.run_sync(prog) == "<Failure: x>"


# -- body exceptions (R15, R25) ------------------------------------------------------------


def test_body_exception_is_a_defect() -> None:
    err = ZeroDivisionError("body")

    @fx.gen
    def prog() -> fx.Gen[int, Never, Never]:
        yield from fx.succeed(1)
        raise err

    assert fx.run_sync_exit(prog) == Failure(Die(err))


def test_body_exception_before_first_yield_is_a_defect() -> None:
    err = ZeroDivisionError("early")

    def body() -> fx.Gen[int, Never, Never]:
        raise err
        yield from fx.void  # unreachable

    assert fx.run_sync_exit(fx.gen(body)) == Failure(Die(err))


def test_body_exception_is_not_caught_by_catch_all() -> None:
    err = ZeroDivisionError("body")

    def body() -> fx.Gen[int, Never, Never]:
        yield from fx.succeed(1)
        raise err

    assert fx.run_sync_exit(fx.gen(body).catch_all(lambda _: fx.succeed(0))) == Failure(Die(err))


def _bad_body() -> Any:
    yield 42


def test_yielding_a_non_effect_dies_naming_value_and_function() -> None:
    ex = fx.run_sync_exit(fx.gen(_bad_body))
    assert isinstance(ex, Failure)
    [defect] = ex.cause.defects()
    assert isinstance(defect, TypeError)
    message = str(defect)
    assert "42" in message
    assert "_bad_body" in message


def test_yielding_a_tag_without_yield_from_dies_with_a_hint() -> None:
    def body() -> Any:
        yield Name

    ex = fx.run_sync_exit(fx.gen(body).provide_service(Name, "x"))
    assert isinstance(ex, Failure)
    [defect] = ex.cause.defects()
    assert isinstance(defect, TypeError)
    assert "Name" in str(defect)
    assert "body" in str(defect)


def test_yielding_a_non_effect_later_in_the_body() -> None:
    def late_bad() -> Any:
        yield from fx.succeed(1)
        yield "not an effect"

    ex = fx.run_sync_exit(fx.gen(late_bad))
    assert isinstance(ex, Failure)
    [defect] = ex.cause.defects()
    assert "'not an effect'" in str(defect)
    assert "late_bad" in str(defect)


def test_gen_of_a_non_generator_function_dies() -> None:
    def not_a_generator() -> Any:
        return 42

    ex = fx.run_sync_exit(fx.gen(not_a_generator))
    assert isinstance(ex, Failure)
    [defect] = ex.cause.defects()
    assert isinstance(defect, TypeError)
    assert "not_a_generator" in str(defect)


# -- services in gen (R25) ---------------------------------------------------------------


def test_yield_from_tag_gives_the_service() -> None:
    @fx.gen
    def prog() -> fx.Gen[str, Never, Name]:
        name = yield from Name
        return name.upper()

    assert fx.run_sync(prog.provide_service(Name, "ada")) == "ADA"


def test_yield_from_missing_tag_dies_naming_the_tag() -> None:
    @fx.gen
    def prog() -> fx.Gen[int, Never, Missing]:
        n = yield from Missing
        return n

    ex = fx.run_sync_exit(prog)  # type: ignore[arg-type]  # deliberately unprovided
    assert isinstance(ex, Failure)
    assert ex.cause.failures() == []
    [defect] = ex.cause.defects()
    assert "Service not found: Missing" in str(defect)


@pytest.mark.anyio
async def test_gen_with_async_steps() -> None:
    async def fetch() -> int:
        await anyio.sleep(0.001)
        return 5

    @fx.gen
    def prog() -> fx.Gen[int, Never, Never]:
        a = yield from fx.promise(fetch)
        yield from fx.sleep(0.001)
        b = yield from fx.promise(fetch)
        return a + b

    assert await fx.run(prog) == 10
