"""What the type checkers infer for the combinators (checked by mypy --strict and
pyright strict; not a test module: `tests/test_typing.py` runs the checkers).

E and R accumulate as unions; tuples keep each element's type."""

from __future__ import annotations

from typing import Any, Never, assert_type

from returns.result import Result

import effect as fx


class ErrA:
    """A typed error."""


class ErrB:
    """Another typed error."""


class Db(fx.Tag["Db", str]):
    """A service whose implementation is a `str`."""


class Log(fx.Tag["Log", int]):
    """A service whose implementation is an `int`."""


def eff_a() -> fx.Effect[int, ErrA, Db]:
    return fx.service(Db).map(len).zip_left(fx.fail(ErrA()))


def eff_b() -> fx.Effect[str, ErrB, Log]:
    return fx.service(Log).map(str).zip_left(fx.fail(ErrB()))


# -- constructors ------------------------------------------------------------------------

assert_type(fx.succeed(1), fx.Effect[int, Never, Never])
assert_type(fx.fail(ErrA()), fx.Effect[Never, ErrA, Never])
assert_type(fx.die(ValueError()), fx.Effect[Never, Never, Never])
assert_type(fx.sync(lambda: "s"), fx.Effect[str, Never, Never])
assert_type(fx.try_(lambda: 1), fx.Effect[int, fx.UnknownException, Never])
assert_type(fx.try_(lambda: 1, catch=lambda e: str(e)), fx.Effect[int, str, Never])
assert_type(fx.void, fx.Effect[None, Never, Never])
assert_type(fx.never, fx.Effect[Never, Never, Never])
assert_type(fx.sleep(0.1), fx.Effect[None, Never, Never])
assert_type(fx.service(Db), fx.Effect[str, Never, Db])
assert_type(fx.suspend(eff_a), fx.Effect[int, ErrA, Db])


async def _fetch() -> bytes:
    return b""


assert_type(fx.promise(_fetch), fx.Effect[bytes, Never, Never])
assert_type(fx.try_promise(_fetch), fx.Effect[bytes, fx.UnknownException, Never])
assert_type(fx.try_promise(_fetch, catch=lambda e: ErrB()), fx.Effect[bytes, ErrB, Never])

# -- sequencing ------------------------------------------------------------------------------

assert_type(eff_a().map(str), fx.Effect[str, ErrA, Db])
assert_type(eff_a().flat_map(lambda n: eff_b()), fx.Effect[str, ErrA | ErrB, Db | Log])
assert_type(eff_a().flat_map(lambda n: fx.succeed(n * 2.0)), fx.Effect[float, ErrA, Db])
assert_type(eff_a().and_then(eff_b()), fx.Effect[str, ErrA | ErrB, Db | Log])
assert_type(eff_a().tap(lambda n: eff_b()), fx.Effect[int, ErrA | ErrB, Db | Log])
assert_type(eff_a().as_("x"), fx.Effect[str, ErrA, Db])
assert_type(eff_a().as_void, fx.Effect[None, ErrA, Db])
assert_type(eff_a().zip(eff_b()), fx.Effect[tuple[int, str], ErrA | ErrB, Db | Log])
assert_type(eff_a().zip_left(eff_b()), fx.Effect[int, ErrA | ErrB, Db | Log])

# -- errors ------------------------------------------------------------------------------------

assert_type(eff_a().map_error(lambda e: ErrB()), fx.Effect[int, ErrB, Db])
assert_type(eff_a().catch_all(lambda e: fx.succeed("r")), fx.Effect[int | str, Never, Db])
assert_type(eff_a().catch_all(lambda e: eff_b()), fx.Effect[int | str, ErrB, Db | Log])
assert_type(eff_a().catch_all(lambda e: fx.succeed(0)), fx.Effect[int, Never, Db])
assert_type(eff_a().or_else(lambda: eff_b()), fx.Effect[int | str, ErrB, Db | Log])
assert_type(eff_a().or_die(), fx.Effect[int, Never, Db])
assert_type(eff_a().either(), fx.Effect[Result[int, ErrA], Never, Db])
assert_type(eff_a().exit(), fx.Effect[fx.Exit[int, ErrA], Never, Db])
assert_type(
    eff_a().match(on_failure=lambda e: "failed", on_success=lambda n: n),
    fx.Effect[str | int, Never, Db],
)
assert_type(eff_a().ensuring(fx.void), fx.Effect[int, ErrA, Db])
assert_type(eff_a().ensuring(eff_b()), fx.Effect[int, ErrA | ErrB, Db | Log])
assert_type(eff_a().on_exit(lambda ex: fx.void), fx.Effect[int, ErrA, Db])
assert_type(eff_a().timeout(1.0), fx.Effect[int, ErrA | fx.TimeoutException, Db])
assert_type(eff_a().uninterruptible(), fx.Effect[int, ErrA, Db])

# -- concurrency ---------------------------------------------------------------------------------

assert_type(fx.all((eff_a(), eff_b())), fx.Effect[tuple[int, str], ErrA | ErrB, Db | Log])
assert_type(
    fx.all((eff_a(), eff_b(), fx.succeed(1.5)), concurrency=2),
    fx.Effect[tuple[int, str, float], ErrA | ErrB, Db | Log],
)
assert_type(fx.all([eff_a(), eff_a()]), fx.Effect[list[int], ErrA, Db])
assert_type(
    fx.for_each([1, 2], lambda n: fx.succeed(str(n)), concurrency="unbounded"),
    fx.Effect[list[str], Never, Never],
)
assert_type(eff_a().race(eff_b()), fx.Effect[int | str, ErrA | ErrB, Db | Log])
assert_type(fx.race_all([eff_a(), eff_a()]), fx.Effect[int, ErrA, Db])

# -- fibers ------------------------------------------------------------------------------------

assert_type(eff_a().fork(), fx.Effect[fx.Fiber[int, ErrA], Never, Db])


def fiber_ops(fiber: fx.Fiber[int, ErrA]) -> None:
    assert_type(fiber.join(), fx.Effect[int, ErrA, Never])
    assert_type(fiber.await_(), fx.Effect[fx.Exit[int, ErrA], Never, Never])
    assert_type(fiber.interrupt(), fx.Effect[fx.Exit[int, ErrA], Never, Never])
    assert_type(fiber.poll(), fx.Exit[int, ErrA] | None)


# -- running -----------------------------------------------------------------------------------


def running() -> None:
    assert_type(fx.run_sync(fx.succeed(1)), int)
    assert_type(fx.run_sync_exit(fx.fail(ErrA())), fx.Exit[Never, ErrA])


async def running_async() -> None:
    assert_type(await fx.run(fx.succeed("s")), str)
    assert_type(await fx.run_exit(fx.succeed("s")), fx.Exit[str, Never])


# -- covariance ----------------------------------------------------------------------------------

widened: fx.Effect[object, ErrA | ErrB, Db | Log] = eff_a()
also_widened: fx.Effect[Any, object, Db | Log] = eff_b()
exit_widened: fx.Exit[object, object] = fx.Success(1)
