"""Stack safety: very long chains and very deep recursion run in constant Python
stack (DESIGN, "Runtime rules"). The default recursion limit (1000) stays in force, so
any recursion in the interpreter proportional to the program's depth would fail."""

from __future__ import annotations

import sys
from typing import Any, Never

import pytest

import effect as fx
from effect import Fail, Failure, Success

N = 1_000_000  # the sizes DESIGN names
DEEP = 100_000
SMALL = 20_000  # extra shapes: still far beyond the recursion limit, but cheap


def _inc(n: int) -> fx.Effect[int, Never, Never]:
    return fx.succeed(n + 1)


def test_recursion_limit_is_the_default() -> None:
    assert sys.getrecursionlimit() <= 10_000


def test_million_step_flat_map_chain() -> None:
    eff: fx.Effect[int, Never, Never] = fx.succeed(0)
    for _ in range(N):
        eff = eff.flat_map(_inc)
    assert fx.run_sync(eff) == N


def test_long_map_chain() -> None:
    eff: fx.Effect[int, Never, Never] = fx.succeed(0)
    for _ in range(DEEP):
        eff = eff.map(_plus_one)
    assert fx.run_sync(eff) == DEEP


def _plus_one(n: int) -> int:
    return n + 1


def test_million_deep_recursion_through_suspend() -> None:
    # Not a tail call: every level waits for the one below and adds to its result,
    # so a million continuations are pending at the deepest point.
    def sum_to(n: int) -> fx.Effect[int, Never, Never]:
        if n == 0:
            return fx.succeed(0)
        return fx.suspend(lambda: sum_to(n - 1)).map(lambda s: s + n)

    assert fx.run_sync(sum_to(N)) == N * (N + 1) // 2


def test_long_tail_recursion_through_flat_map() -> None:
    def count_down(n: int) -> fx.Effect[str, Never, Never]:
        if n == 0:
            return fx.succeed("done")
        return fx.succeed(n - 1).flat_map(count_down)

    assert fx.run_sync(count_down(DEEP)) == "done"


def test_million_step_gen_loop() -> None:
    @fx.gen
    def loop() -> fx.Gen[int, Never, Never]:
        total = 0
        for i in range(N):
            x = yield from fx.succeed(i)
            total += x
        return total

    assert fx.run_sync(loop) == N * (N - 1) // 2


def test_deep_recursion_through_fx_fn() -> None:
    @fx.fn
    def depth(n: int) -> fx.Gen[int, Never, Never]:
        if n == 0:
            return 0
        below = yield from depth(n - 1)
        return below + 1

    assert fx.run_sync(depth(SMALL)) == SMALL


def test_deep_nesting_of_ensuring_and_catch_all() -> None:
    ran = [0]
    fin = fx.sync(lambda: ran.__setitem__(0, ran[0] + 1))
    eff: fx.Effect[Any, str, Never] = fx.fail("x")
    for i in range(DEEP):
        eff = eff.ensuring(fin) if i % 2 else eff.catch_all(fx.fail)
    assert fx.run_sync_exit(eff) == Failure(Fail("x"))
    assert ran[0] == DEEP // 2


def test_deep_nesting_of_catch_all_recovering() -> None:
    eff: fx.Effect[int, str, Never] = fx.fail("x")
    for _ in range(SMALL):
        eff = eff.catch_all(lambda _: fx.fail("again")).ensuring(fx.void)
    assert fx.run_sync_exit(eff.catch_all(lambda e: fx.succeed(len(e)))) == Success(5)


def test_deep_nesting_of_ensuring_on_success() -> None:
    log: list[int] = []
    eff: fx.Effect[str, Never, Never] = fx.succeed("v")
    for i in range(SMALL):
        eff = eff.ensuring(fx.sync(lambda i=i: log.append(i)))  # type: ignore[misc]
    assert fx.run_sync(eff) == "v"
    assert len(log) == SMALL
    assert log[:3] == [0, 1, 2]  # innermost first


@pytest.mark.anyio
async def test_long_chain_under_await_run() -> None:
    eff: fx.Effect[int, Never, Never] = fx.succeed(0)
    for _ in range(DEEP):
        eff = eff.flat_map(_inc)
    assert await fx.run(eff) == DEEP


@pytest.mark.anyio
async def test_deep_recursion_under_await_run() -> None:
    def sum_to(n: int) -> fx.Effect[int, Never, Never]:
        if n == 0:
            return fx.succeed(0)
        return fx.suspend(lambda: sum_to(n - 1)).flat_map(lambda s: fx.succeed(s + n))

    assert await fx.run(sum_to(SMALL)) == SMALL * (SMALL + 1) // 2
