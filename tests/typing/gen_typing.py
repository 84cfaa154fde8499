"""Typing of `fx.gen` / `fx.fn`: `x = yield from eff` has exactly the effect's success
type, `yield from Tag` gives the service type, and `fx.Gen[A, E, R]` is
`Generator[Effect[Any, E, R], Any, A]` (checked by mypy --strict and pyright strict)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Never, assert_type

from returns.result import Result

import effect as fx


class ErrA:
    """A typed error."""


class ErrB:
    """Another typed error."""


class Greeting(fx.Tag["Greeting", str]):
    """A service whose implementation is a `str`."""


class Limits(fx.Tag["Limits", tuple[int, int]]):
    """A service whose implementation is a pair of ints."""


def eff_a() -> fx.Effect[int, ErrA, Greeting]:
    return fx.service(Greeting).map(len).zip_left(fx.fail(ErrA()))


def eff_b() -> fx.Effect[list[str], ErrB, Never]:
    return fx.succeed(["x"]).zip_left(fx.fail(ErrB()))


def body() -> fx.Gen[str, ErrA | ErrB, Greeting | Limits]:
    n = yield from eff_a()
    assert_type(n, int)
    words = yield from eff_b()
    assert_type(words, list[str])
    greeting = yield from Greeting
    assert_type(greeting, str)
    limits = yield from Limits
    assert_type(limits, tuple[int, int])
    either = yield from eff_a().either()
    assert_type(either, Result[int, ErrA])
    ex = yield from eff_a().exit()
    assert_type(ex, fx.Exit[int, ErrA])
    pair = yield from fx.all((fx.succeed(1), fx.succeed("s")))
    assert_type(pair, tuple[int, str])
    yield from fx.void
    return f"{greeting} {n} {words} {limits} {pair}"


prog = fx.gen(body)
assert_type(prog, fx.Effect[str, ErrA | ErrB, Greeting | Limits])


@fx.gen
def decorated() -> fx.Gen[float, Never, Never]:
    x = yield from fx.succeed(1.5)
    assert_type(x, float)
    return x * 2


assert_type(decorated, fx.Effect[float, Never, Never])


@fx.fn
def with_args(n: int, label: str = "n") -> fx.Gen[str, ErrA, Greeting]:
    a = yield from eff_a()
    return f"{label}={n + a}"


assert_type(with_args(1), fx.Effect[str, ErrA, Greeting])
assert_type(with_args(1, label="x"), fx.Effect[str, ErrA, Greeting])


# `fx.Gen` is exactly the Generator type, parameters in the order A, E, R.
def gen_alias() -> None:
    g = body()
    assert_type(g, Generator[fx.Effect[Any, ErrA | ErrB, Greeting | Limits], Any, str])
    plain: Generator[fx.Effect[Any, ErrA | ErrB, Greeting | Limits], Any, str] = body()
    again: fx.Gen[str, ErrA | ErrB, Greeting | Limits] = plain
    assert_type(again, fx.Gen[str, ErrA | ErrB, Greeting | Limits])


# A body that fails with less than it declares is fine (covariance).
def narrower() -> fx.Gen[int, ErrA | ErrB, Greeting]:
    x = yield from eff_a()
    return x


# Nesting: yielding another gen effect gives its return type.
def outer() -> fx.Gen[int, ErrA | ErrB, Greeting | Limits]:
    s = yield from prog
    assert_type(s, str)
    m = yield from fx.gen(narrower)
    assert_type(m, int)
    return len(s) + m


assert_type(fx.gen(outer), fx.Effect[int, ErrA | ErrB, Greeting | Limits])
