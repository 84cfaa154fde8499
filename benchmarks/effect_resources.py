"""Benchmarks of scopes, `acquire_release` and layers against `contextlib` baselines.

Run with `make bench`, or `PYTHONPATH=. .venv/bin/python benchmarks/effect_resources.py`.
Options: `--repeat N` (default 5), `--only SCENARIO` (may be given several times).

Scenarios:

- `acquire_release_10k`: 10,000 sequential resources, each acquired with
  `fx.acquire_release` inside its own `fx.scoped` block (one finalizer each), under
  `fx.run_sync` and under `await fx.run` on asyncio. Baseline, in the same asyncio
  run: a `contextlib.AsyncExitStack` per resource entering a trivial async context
  manager (`enter_async_context`); also reported against `push_async_callback`, and
  `run_sync` against a plain `contextlib.ExitStack`. The acquire and release counters
  are checked after every run. Target: at most 2x the `AsyncExitStack` baseline.
- `layer_graph_20`: build and tear down a graph of 20 `Layer.scoped` services (a
  chain of `provide`s feeding a tree of `merge`s, each service reading its
  dependency) through a `ManagedRuntime`: enter, first run (the build), dispose.
  Reported per service. Baseline: the same 20 resources, each built from its
  dependency, on one `AsyncExitStack`.

Each scenario is timed 5 times (median kept), with `gc` enabled; one JSON line per
comparison (see `_harness.py`).
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, Never

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from _harness import Timing, measure, measure_async, report
from _harness import main as run_scenarios

import effect as fx

# -- acquire_release_10k --------------------------------------------------------------

N = 10_000


class Counters:
    __slots__ = ("acquired", "released")

    def __init__(self) -> None:
        self.acquired = 0
        self.released = 0

    def acquire(self) -> int:
        self.acquired += 1
        return self.acquired

    def release(self) -> None:
        self.released += 1


def effect_program(n: int) -> tuple[fx.Effect[int, Never, Never], Counters]:
    """`n` sequential `fx.scoped(fx.acquire_release(...))` blocks; succeeds with the
    number of releases seen at the end."""
    c = Counters()
    acquire = fx.sync(c.acquire)
    release_effect = fx.sync(c.release)

    def release(resource: int, exit: fx.Exit[Any, Any]) -> fx.Effect[None, Never, Never]:
        return release_effect

    one = fx.scoped(fx.acquire_release(acquire, release))

    def loop(i: int) -> fx.Effect[int, Never, Never]:
        if i == n:
            return fx.sync(lambda: c.released)
        return one.flat_map(lambda _: loop(i + 1))

    return fx.suspend(lambda: loop(0)), c


class TrivialResource:
    """The cheapest async context manager: counts enters and exits."""

    __slots__ = ("c",)

    def __init__(self, c: Counters) -> None:
        self.c = c

    async def __aenter__(self) -> int:
        return self.c.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.c.release()


class SyncResource:
    __slots__ = ("c",)

    def __init__(self, c: Counters) -> None:
        self.c = c

    def __enter__(self) -> int:
        return self.c.acquire()

    def __exit__(self, *exc: object) -> None:
        self.c.release()


async def exit_stack_baseline(n: int) -> int:
    c = Counters()
    for _ in range(n):
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(TrivialResource(c))
    assert c.acquired == n
    return c.released


async def push_callback_baseline(n: int) -> int:
    c = Counters()

    async def release() -> None:
        c.release()

    for _ in range(n):
        async with contextlib.AsyncExitStack() as stack:
            c.acquire()
            stack.push_async_callback(release)
    assert c.acquired == n
    return c.released


def sync_exit_stack_baseline(n: int) -> int:
    c = Counters()
    for _ in range(n):
        with contextlib.ExitStack() as stack:
            stack.enter_context(SyncResource(c))
    assert c.acquired == n
    return c.released


def bench_acquire_release(repeat: int) -> None:
    n = N

    def ok(released: int) -> bool:
        return released == n

    def run_sync() -> int:
        program, c = effect_program(n)
        released = fx.run_sync(program)
        assert c.acquired == n
        return released

    async def in_loop() -> tuple[Timing, Timing, Timing]:
        async def effect_run() -> int:
            program, c = effect_program(n)
            released = await fx.run(program)
            assert c.acquired == n
            return released

        eff = await measure_async("await fx.run (asyncio)", effect_run, ok, repeat=repeat)
        stack = await measure_async(
            "AsyncExitStack.enter_async_context", lambda: exit_stack_baseline(n), ok, repeat=repeat
        )
        callback = await measure_async(
            "AsyncExitStack.push_async_callback",
            lambda: push_callback_baseline(n),
            ok,
            repeat=repeat,
        )
        return eff, stack, callback

    eff, stack, callback = anyio.run(in_loop, backend="asyncio")
    sync = measure("fx.run_sync", run_sync, ok, repeat=repeat)
    sync_stack = measure(
        "ExitStack.enter_context", lambda: sync_exit_stack_baseline(n), ok, repeat=repeat
    )
    report("acquire_release_10k (run_sync)", n, sync, stack)
    report("acquire_release_10k (await fx.run, asyncio)", n, eff, stack)
    report("acquire_release_10k (run_sync vs push_async_callback)", n, sync, callback)
    report("acquire_release_10k (await fx.run vs push_async_callback)", n, eff, callback)
    report("acquire_release_10k (run_sync vs sync ExitStack)", n, sync, sync_stack)


# -- layer_graph_20 -----------------------------------------------------------------------

SERVICES = 20
LIFECYCLES = 100  # build + teardown cycles per timed sample

TAGS: list[type[fx.Tag[Any, int]]] = [
    types.new_class(f"Service{i}", (fx.Tag[f"Service{i}", int],))  # type: ignore[misc]
    for i in range(SERVICES)
]


def service_graph(c: Counters) -> fx.Layer[Any, Never, Never]:
    """Services 0..9: a chain, each built from the previous one with `provide_merge`.
    Services 10..19: each built from service 9, merged as a tree of `merge`s over the
    chain. Every service is a `Layer.scoped` with one `acquire_release`."""

    def scoped(i: int, dep: int | None) -> fx.Layer[Any, Never, Any]:
        def make(base: int) -> fx.Effect[int, Never, fx.Scope]:
            return fx.acquire_release(
                fx.sync(lambda: c.acquire() and base + 1),
                lambda r, ex: fx.sync(c.release),
            )

        if dep is None:
            return fx.Layer.scoped(TAGS[i], make(0))
        return fx.Layer.scoped(TAGS[i], fx.service(TAGS[dep]).flat_map(make))

    chain: fx.Layer[Any, Never, Any] = scoped(0, None)
    for i in range(1, 10):
        chain = scoped(i, i - 1).provide_merge(chain)
    leaves = [scoped(i, 9) for i in range(10, 20)]
    pairs = [fx.Layer.merge(leaves[j], leaves[j + 1]) for j in range(0, 10, 2)]
    tree = fx.Layer.merge(
        fx.Layer.merge(pairs[0], pairs[1]), fx.Layer.merge(pairs[2], pairs[3], pairs[4])
    )
    return tree.provide_merge(chain)


async def managed_lifecycles(cycles: int) -> int:
    c = Counters()
    last = TAGS[-1]
    for _ in range(cycles):
        async with fx.ManagedRuntime(service_graph(c)) as rt:
            value = await rt.run(fx.service(last))
            assert value == 11  # 10 steps of the chain + 1
    assert c.acquired == c.released == cycles * SERVICES
    return c.released


class DependentResource:
    __slots__ = ("base", "c")

    def __init__(self, c: Counters, base: int) -> None:
        self.c = c
        self.base = base

    async def __aenter__(self) -> int:
        self.c.acquire()
        return self.base + 1

    async def __aexit__(self, *exc: object) -> None:
        self.c.release()


async def exit_stack_lifecycles(cycles: int) -> int:
    c = Counters()
    for _ in range(cycles):
        async with contextlib.AsyncExitStack() as stack:
            values: list[int] = []
            for i in range(SERVICES):
                base = 0 if i == 0 else values[i - 1] if i < 10 else values[9]
                values.append(await stack.enter_async_context(DependentResource(c, base)))
            assert values[-1] == 11
    assert c.acquired == c.released == cycles * SERVICES
    return c.released


def bench_layer_graph(repeat: int) -> None:
    cycles = LIFECYCLES
    n = cycles * SERVICES

    def ok(released: int) -> bool:
        return released == n

    async def in_loop() -> tuple[Timing, Timing]:
        managed = await measure_async(
            "ManagedRuntime build + dispose", lambda: managed_lifecycles(cycles), ok, repeat=repeat
        )
        stack = await measure_async(
            "AsyncExitStack, 20 dependent resources",
            lambda: exit_stack_lifecycles(cycles),
            ok,
            repeat=repeat,
        )
        return managed, stack

    for backend in ("asyncio", "trio"):
        managed, stack = anyio.run(in_loop, backend=backend)
        report(f"layer_graph_20 per service (ManagedRuntime, {backend})", n, managed, stack)


SCENARIOS: dict[str, Callable[[int], None]] = {
    "acquire_release_10k": bench_acquire_release,
    "layer_graph_20": bench_layer_graph,
}


if __name__ == "__main__":
    run_scenarios(SCENARIOS, __doc__)
