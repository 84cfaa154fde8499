"""Queue throughput: `effect.Queue` between two fibers against an anyio memory object
stream between two tasks, same capacity, same event loop (asyncio).

Prints one JSON line per scenario: scenario, n, seconds (median of the repetitions),
ns_per_op (per item moved), baseline_ns_per_op (the anyio stream's), ratio (effect
rate / anyio rate: above 1 means the effect queue is faster).

    .venv/bin/python benchmarks/effect_queue.py [--n 100000] [--capacity 1024] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import effect as fx
from effect.queue import Queue


def effect_program(n: int, capacity: int) -> fx.Effect[int, fx.Never, fx.Never]:
    @fx.fn
    def consumer(q: Queue[int]) -> fx.Gen[int, fx.Never, fx.Never]:
        total = 0
        for _ in range(n):
            total += yield from q.take()
        return total

    @fx.fn
    def producer(q: Queue[int]) -> fx.Gen[None, fx.Never, fx.Never]:
        for i in range(n):
            yield from q.offer(i)

    @fx.gen
    def main() -> fx.Gen[int, fx.Never, fx.Never]:
        q = yield from Queue[int].bounded(capacity)
        taker = yield from consumer(q).fork()
        yield from producer(q)
        return (yield from taker.join())

    return main


async def run_effect(n: int, capacity: int) -> float:
    program = effect_program(n, capacity)
    start = time.perf_counter()
    total = await fx.run(program)
    elapsed = time.perf_counter() - start
    assert total == n * (n - 1) // 2
    return elapsed


async def run_anyio(n: int, capacity: int) -> float:
    send, receive = anyio.create_memory_object_stream[int](capacity)
    result: list[int] = []

    async def consume() -> None:
        total = 0
        async with receive:
            for _ in range(n):
                total += await receive.receive()
        result.append(total)

    async def produce() -> None:
        async with send:
            for i in range(n):
                await send.send(i)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        tg.start_soon(produce)
    elapsed = time.perf_counter() - start
    assert result == [n * (n - 1) // 2]
    return elapsed


async def main(n: int, capacity: int, repeat: int) -> None:
    effect_times: list[float] = []
    anyio_times: list[float] = []
    await run_effect(min(n, 10_000), capacity)  # warm up both paths
    await run_anyio(min(n, 10_000), capacity)
    for _ in range(repeat):
        effect_times.append(await run_effect(n, capacity))
        anyio_times.append(await run_anyio(n, capacity))
    effect_s = statistics.median(effect_times)
    anyio_s = statistics.median(anyio_times)
    for scenario, seconds in (
        (f"effect Queue.bounded({capacity}) offer/take, 2 fibers", effect_s),
        (f"anyio memory stream({capacity}) send/receive, 2 tasks", anyio_s),
    ):
        print(
            json.dumps(
                {
                    "scenario": scenario,
                    "n": n,
                    "seconds": round(seconds, 4),
                    "ns_per_op": round(seconds / n * 1e9),
                    "baseline_ns_per_op": round(anyio_s / n * 1e9),
                    "ratio": round(anyio_s / seconds, 2),
                }
            )
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--capacity", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    anyio.run(main, args.n, args.capacity, args.repeat, backend="asyncio")
