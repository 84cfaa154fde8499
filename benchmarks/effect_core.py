"""Benchmarks of the effect core against plain-Python baselines.

Run with `make bench`, or `PYTHONPATH=. .venv/bin/python benchmarks/effect_core.py`.
Options: `--repeat N` (default 5), `--only SCENARIO` (may be given several times).

Scenarios (the same as section 5 of the peers survey, so the figures compare):

- `chain_100k`: 100,000 alternating `map` / `flat_map` (the `flat_map` callbacks return
  `fx.succeed`), built then run with `fx.run_sync`; reported for build + run and for
  run only. Baseline: plain calls over a list of 100,000 functions doing the same
  arithmetic.
- `recursion_1m`: `loop(i) = fx.succeed(i + 1).flat_map(loop)` up to 1,000,000, with
  `fx.run_sync`. Baseline: a thunk trampoline in plain Python (plain recursion
  overflows).
- `gen_100k`: an `fx.gen` loop of 100,000 `yield from fx.succeed(i)`. Baselines: a
  plain generator driven by `send()`, and an `async def` awaited in a loop.
- `fork_join_10k`: fork 10,000 trivial fibers, then join each, under `await fx.run` on
  asyncio. Baseline: `asyncio.gather` of 10,000 trivial coroutines, in the same event
  loop. Also reported: an anyio task group spawning 10,000 tasks, and the same effect
  program under `fx.run_sync`.

Scenarios run one after another in this process, with `gc` enabled; each is timed 5
times and the median kept. Every result is checked. One JSON line per comparison
(see `_harness.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Never

import anyio
from _harness import Timing, measure, measure_async, report
from _harness import main as run_scenarios

import effect as fx

# -- chain_100k --------------------------------------------------------------------

CHAIN_N = 100_000


def inc(x: int) -> int:
    return x + 1


def inc_fx(x: int) -> fx.Effect[int, Never, Never]:
    return fx.succeed(x + 1)


def inc_plain(x: int) -> int:
    return x + 1


def build_chain(n: int = CHAIN_N) -> fx.Effect[int, Never, Never]:
    eff: fx.Effect[int, Never, Never] = fx.succeed(0)
    for i in range(n):
        eff = eff.flat_map(inc_fx) if i % 2 else eff.map(inc)
    return eff


def build_plain(n: int = CHAIN_N) -> list[Callable[[int], int]]:
    steps: list[Callable[[int], int]] = []
    for i in range(n):
        steps.append(inc_plain if i % 2 else inc)
    return steps


def run_plain(steps: list[Callable[[int], int]]) -> int:
    value = 0
    for step in steps:
        value = step(value)
    return value


def bench_chain(repeat: int) -> None:
    n = CHAIN_N

    def ok(v: int) -> bool:
        return v == n

    built = measure("build+run", lambda: fx.run_sync(build_chain()), ok, repeat=repeat)
    plain_built = measure(
        "plain: build list + call", lambda: run_plain(build_plain()), ok, repeat=repeat
    )
    report("chain_100k (build+run)", n, built, plain_built)

    chain = build_chain()
    steps = build_plain()
    run_only = measure("run", lambda: fx.run_sync(chain), ok, repeat=repeat)
    plain_run = measure("plain: call list", lambda: run_plain(steps), ok, repeat=repeat)
    report("chain_100k (run only)", n, run_only, plain_run)


# -- recursion_1m ------------------------------------------------------------------

RECURSION_N = 1_000_000


def loop(i: int) -> fx.Effect[int, Never, Never]:
    if i >= RECURSION_N:
        return fx.succeed(i)
    return fx.succeed(i + 1).flat_map(loop)


class _Done:
    __slots__ = ("value",)

    def __init__(self, value: int) -> None:
        self.value = value


Thunk = Callable[[], "_Done | Thunk"]


def tramp_step(i: int) -> _Done | Thunk:
    if i >= RECURSION_N:
        return _Done(i)
    j = i + 1
    return lambda: tramp_step(j)


def trampoline(i: int) -> int:
    result = tramp_step(i)
    while not isinstance(result, _Done):
        result = result()
    return result.value


def bench_recursion(repeat: int) -> None:
    n = RECURSION_N

    def ok(v: int) -> bool:
        return v == n

    eff = measure("run_sync(loop(0))", lambda: fx.run_sync(loop(0)), ok, repeat=repeat)
    base = measure("plain thunk trampoline", lambda: trampoline(0), ok, repeat=repeat)
    report("recursion_1m", n, eff, base)


# -- gen_100k ----------------------------------------------------------------------

GEN_N = 100_000
GEN_SUM = GEN_N * (GEN_N - 1) // 2


@fx.gen
def gen_loop() -> fx.Gen[int, Never, Never]:
    total = 0
    for i in range(GEN_N):
        total += yield from fx.succeed(i)
    return total


def plain_gen() -> Generator[int, int, int]:
    total = 0
    for i in range(GEN_N):
        total += yield i
    return total


def drive_plain_gen() -> int:
    gen = plain_gen()
    value = gen.send(None)  # type: ignore[arg-type]
    try:
        while True:
            value = gen.send(value)
    except StopIteration as stop:
        result: int = stop.value
        return result


async def identity(i: int) -> int:
    return i


async def async_loop() -> int:
    total = 0
    for i in range(GEN_N):
        total += await identity(i)
    return total


def bench_gen(repeat: int) -> None:
    n = GEN_N

    def ok(v: int) -> bool:
        return v == GEN_SUM

    eff = measure("fx.gen", lambda: fx.run_sync(gen_loop), ok, repeat=repeat)
    base = measure("plain generator driven by send()", drive_plain_gen, ok, repeat=repeat)
    report("gen_100k", n, eff, base)

    async def in_loop() -> Timing:
        return await measure_async("async def awaited in a loop", async_loop, ok, repeat=repeat)

    base_async = anyio.run(in_loop, backend="asyncio")
    report("gen_100k", n, eff, base_async)


# -- fork_join_10k -----------------------------------------------------------------

FORK_N = 10_000
FORK_SUM = FORK_N * (FORK_N - 1) // 2


@fx.gen
def fork_join() -> fx.Gen[int, Never, Never]:
    fibers: list[fx.Fiber[int, Never]] = []
    for i in range(FORK_N):
        fibers.append((yield from fx.succeed(i).fork()))
    total = 0
    for fiber in fibers:
        total += yield from fiber.join()
    return total


async def trivial(i: int) -> int:
    return i


async def gather_baseline() -> int:
    results = await asyncio.gather(*(trivial(i) for i in range(FORK_N)))
    return sum(results)


async def anyio_task_group() -> int:
    results = [0] * FORK_N

    async def task(i: int) -> None:
        results[i] = i

    async with anyio.create_task_group() as tg:
        for i in range(FORK_N):
            tg.start_soon(task, i)
    return sum(results)


def bench_fork_join(repeat: int) -> None:
    n = FORK_N

    def ok(v: int) -> bool:
        return v == FORK_SUM

    async def in_loop() -> tuple[Timing, Timing, Timing]:
        async def effect_run() -> int:
            return await fx.run(fork_join)

        eff = await measure_async("await fx.run (asyncio)", effect_run, ok, repeat=repeat)
        gather = await measure_async("asyncio.gather", gather_baseline, ok, repeat=repeat)
        group = await measure_async("anyio task group", anyio_task_group, ok, repeat=repeat)
        return eff, gather, group

    eff, gather, group = anyio.run(in_loop, backend="asyncio")
    report("fork_join_10k", n, eff, gather)
    report("fork_join_10k (anyio task group, for reference)", n, group, gather)
    sync = measure("fx.run_sync", lambda: fx.run_sync(fork_join), ok, repeat=repeat)
    report("fork_join_10k (run_sync)", n, sync, gather)


SCENARIOS: dict[str, Callable[[int], None]] = {
    "chain_100k": bench_chain,
    "recursion_1m": bench_recursion,
    "gen_100k": bench_gen,
    "fork_join_10k": bench_fork_join,
}


if __name__ == "__main__":
    run_scenarios(SCENARIOS, __doc__)
