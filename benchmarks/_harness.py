"""Shared helpers for the benchmark scripts.

A scenario is timed `repeat` times (5 by default) and the median is kept. Each timed
call returns its result, and the result is checked, so a benchmark that computes the
wrong thing fails instead of printing a fast number. Garbage collection stays enabled
(the realistic setting); `gc.collect()` runs between repetitions, outside the timing,
so one repetition's garbage is not charged to the next.

Every comparison prints one JSON line:

    {"scenario": ..., "n": ..., "seconds": ..., "ns_per_op": ...,
     "baseline": ..., "baseline_ns_per_op": ..., "ratio": ...}

`seconds` is the median wall time of the scenario, `ns_per_op` is that divided by `n`,
and `ratio` is `ns_per_op / baseline_ns_per_op` (below 1 means faster than the baseline).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["DEFAULT_REPEAT", "Timing", "measure", "measure_async", "report"]

T = TypeVar("T")

DEFAULT_REPEAT = 5


class Timing:
    """The median of several timed runs of one scenario, in seconds."""

    __slots__ = ("name", "runs")

    def __init__(self, name: str, runs: list[float]) -> None:
        self.name = name
        self.runs = runs

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def spread(self) -> float:
        """max / min - 1 over the runs: how noisy the measurement was."""
        return max(self.runs) / min(self.runs) - 1 if min(self.runs) > 0 else 0.0


def _check(name: str, result: object, check: Callable[[Any], bool]) -> None:
    if not check(result):
        raise AssertionError(f"{name}: wrong result {result!r}")


def measure(
    name: str,
    run: Callable[[], T],
    check: Callable[[T], bool],
    *,
    repeat: int = DEFAULT_REPEAT,
    setup: Callable[[], None] | None = None,
) -> Timing:
    """Time `run()` `repeat` times; check every result with `check`."""
    runs: list[float] = []
    for _ in range(repeat):
        if setup is not None:
            setup()
        gc.collect()
        start = time.perf_counter()
        result = run()
        elapsed = time.perf_counter() - start
        _check(name, result, check)
        runs.append(elapsed)
    return Timing(name, runs)


async def measure_async(
    name: str,
    run: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    *,
    repeat: int = DEFAULT_REPEAT,
) -> Timing:
    """Like `measure`, for a coroutine function, awaited in the running event loop."""
    runs: list[float] = []
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = await run()
        elapsed = time.perf_counter() - start
        _check(name, result, check)
        runs.append(elapsed)
    return Timing(name, runs)


def report(scenario: str, n: int, timing: Timing, baseline: Timing) -> dict[str, Any]:
    """Print one JSON line comparing `timing` with `baseline` (both over `n` ops)."""
    ns = timing.median / n * 1e9
    base_ns = baseline.median / n * 1e9
    line: dict[str, Any] = {
        "scenario": scenario,
        "n": n,
        "seconds": round(timing.median, 6),
        "ns_per_op": round(ns, 1),
        "baseline": baseline.name,
        "baseline_ns_per_op": round(base_ns, 1),
        "ratio": round(ns / base_ns, 3),
        "spread": round(timing.spread, 3),
        "baseline_spread": round(baseline.spread, 3),
    }
    print(json.dumps(line), flush=True)
    return line


def main(scenarios: dict[str, Callable[[int], None]], doc: str | None) -> None:
    """Run the benchmark script's scenarios: `--only NAME` (repeatable), `--repeat N`."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT)
    parser.add_argument("--only", action="append", choices=sorted(scenarios), default=None)
    args: Any = parser.parse_args()
    for name in args.only or list(scenarios):
        scenarios[name](args.repeat)
