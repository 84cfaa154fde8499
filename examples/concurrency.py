"""Concurrency: fork and join fibers, race, timeout, and `fx.all` with a concurrency limit.

Every concurrent combinator interrupts what it no longer needs and waits for it to
finish (finalizers included) before it returns.

Run it with `python examples/concurrency.py`.
"""

from __future__ import annotations

import time
from typing import Never

import anyio

import effect as fx


def fetch(name: str, seconds: float) -> fx.Effect[str, Never, Never]:
    """A pretend request: takes `seconds`, says when it is cancelled."""
    return (
        fx.sleep(seconds)
        .as_(f"{name} ({seconds:.2f}s)")
        .on_interrupt(lambda _: fx.sync(lambda: print(f"  {name} interrupted")))
    )


@fx.gen
def fork_and_join() -> fx.Gen[str, Never, Never]:
    slow = yield from fetch("slow", 0.05).fork()
    fast = yield from fetch("fast", 0.01).fork()
    # Both run concurrently; join waits for each and gives its value.
    first = yield from fast.join()
    second = yield from slow.join()
    return f"joined {first} and {second}"


@fx.gen
def interrupt_a_fiber() -> fx.Gen[str, Never, Never]:
    fiber = yield from fetch("background", 10).fork()
    yield from fx.sleep(0.01)
    # `interrupt` returns once the fiber has ended, finalizers included.
    exit = yield from fiber.interrupt()
    return f"background fiber interrupted: {exit.is_interrupted()}"


def race_two() -> fx.Effect[str, Never, Never]:
    # The first success wins; the loser is interrupted and awaited.
    return fetch("mirror-a", 0.05).race(fetch("mirror-b", 0.01)).map(lambda v: f"race won by {v}")


def with_timeout() -> fx.Effect[str, Never, Never]:
    return (
        fetch("too slow", 1.0)
        .timeout(0.02)
        .catch_all(lambda error: fx.succeed(f"timeout: {error}"))
    )


@fx.gen
def bounded_all() -> fx.Gen[str, Never, Never]:
    jobs = [fetch(f"job{i}", 0.02) for i in range(6)]
    started = time.perf_counter()
    results = yield from fx.all(jobs, concurrency=3)
    elapsed = time.perf_counter() - started
    # 6 jobs of 20 ms, 3 at a time: about 40 ms, not 120 ms.
    return f"all: {len(results)} results, 3 at a time, in {elapsed:.2f}s"


@fx.gen
def program() -> fx.Gen[None, Never, Never]:
    for step in (fork_and_join, interrupt_a_fiber, race_two(), with_timeout(), bounded_all):
        line = yield from step
        print(line)


def main() -> None:
    anyio.run(fx.run, program)


if __name__ == "__main__":
    main()
