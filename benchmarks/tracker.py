"""Benchmarks of the HTTP batch tracker (`tracker.http`) against the loopback collector.

Run with `make bench`, or `.venv/bin/python benchmarks/tracker.py`.
Options (`_harness.main`): `--repeat N` (default 5), `--only SCENARIO` (may be given
several times: `calibration`, `throughput`, `latency`, `close`, `close_hung`). All run
on asyncio.

Scenarios (targets from the tracker design notes, for a 2-core machine):

- `calibration`: a 1,000,000-step Python loop and `json.dumps` per event, to read the
  other figures against (this machine is shared, and its speed varies a lot).
- `throughput_batch100`, `throughput_batch500`: one fiber under a `ManagedRuntime`
  emits N pre-built events (yielding to the loop every 256, as a workflow doing I/O
  would), then calls `flush()`; timed from the first emit to the end of the flush.
  The in-thread `Collector` (same process, same GIL) stores every event; the
  `_process` variants use `python -m tracker.collector` in a subprocess instead.
  Checked: the collector stored N distinct events and the tracker dropped none.
  Baseline: the tracker's work done by hand with no tracker (encode each batch the
  same way, await one `httpx.AsyncClient` POST at a time); `ratio` is tracker /
  baseline. Also reported, `sink_alone_*`: the collector fed pre-encoded bodies by a
  synchronous client, what it absorbs with nothing else running. Targets:
  >= 20,000 events/s (batch 100), >= 35,000 (batch 500).
- `emit_nowait_healthy`, `emit_nowait_stalled`: `HttpTracker.emit_nowait(event)`
  timed one call at a time (perf_counter_ns), endpoint healthy or hung (the consumer
  stuck in a request that never gets an answer). Baseline: `deque.append` timed the
  same way. `emit_fiber_*`: `yield from t.emit(event)` timed inside an `fx.gen`
  fiber; baseline: `yield from fx.sync(deque.append)`, one effect step doing nothing
  else. Targets: p50 <= 2 us, p99 <= 10 us.
- `close_100_pending`: a `ManagedRuntime` holding `tracker.http(max_wait=10)` with 100
  events queued; timed: `await rt.dispose()` (the scope close: drain, POST, close the
  client). `close_per_run_scope`: the same close at the end of an `fx.run` that
  provided the layer itself (from the program's last step to `fx.run` returning).
  20 closes each, p50 and p99 in ms. Baseline: one pre-encoded 100-event POST to the
  collector. Target: p50 <= 10 ms.
- `close_hung`: the endpoint never answers; timed: the dispose, which must give up at
  `close_deadline` and count (and report) the 80 events it could not deliver.
  Target: <= close_deadline + 0.5 s.

Every scenario prints one JSON line: `scenario`, `n`, `seconds` (median), the per-op
figures (`events_per_s`, `p50_us`/`p99_us`, `p50_ms`/`p99_ms`), `baseline` and `ratio`
where a baseline applies, `target` and `ok`. Each figure is the median of `--repeat`
runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This script has the name of the package it measures: run as a script, its own
# directory comes first on sys.path and `import tracker` would import this file.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))
sys.path.append(str(_HERE))

import gc  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from collections import deque  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from typing import Any, Never, Protocol  # noqa: E402

import anyio  # noqa: E402
import httpx  # noqa: E402
from _harness import main as run_scenarios  # noqa: E402

import effect as fx  # noqa: E402
import tracker  # noqa: E402
from tracker import EventTracker, HttpTracker, TrackerService  # noqa: E402
from tracker.collector import Collector  # noqa: E402
from tracker.events import Event, StepCompleted  # noqa: E402

EVENTS = 50_000
YIELD_EVERY = 256
LATENCY_SAMPLES = 20_000
CLOSES = 20


def make_events(n: int, run_id: str = "bench") -> list[Event]:
    """`n` events shaped like `step.completed` (built before any timing starts)."""
    return [
        StepCompleted(
            workflow_id=run_id,
            workflow_name="bench",
            step_name="charge",
            attempt=1,
            duration_ms=1.25,
            seq=i,
        )
        for i in range(n)
    ]


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


class Sink(Protocol):
    """What the throughput scenarios need from a collector."""

    @property
    def events_url(self) -> str: ...

    def clear(self) -> None: ...

    def stats(self) -> dict[str, Any]: ...


class ProcessCollector:
    """`python -m tracker.collector` in a subprocess: the same server, without sharing
    this process's GIL (the in-thread collector's parsing competes with the tracker)."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tracker.collector", "--port", "0"],
            cwd=_HERE.parent,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        self.url: str = json.loads(self._proc.stdout.readline())["url"]
        self.events_url = self.url + "/events"
        self._http = httpx.Client(base_url=self.url, timeout=10.0)

    def clear(self) -> None:
        self._http.delete("/events").raise_for_status()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._http.get("/stats").json()
        return result

    def stop(self) -> None:
        self._http.close()
        self._proc.terminate()
        self._proc.wait(10)
        if self._proc.stdout is not None:
            self._proc.stdout.close()


def calibrate() -> None:
    """How fast this machine is right now, to read the other figures against: a
    1,000,000-step pure-Python loop, and `json.dumps` of 100-event batches."""
    start = time.perf_counter()
    total = 0
    for i in range(1_000_000):
        total += i
    loop_ms = (time.perf_counter() - start) * 1000
    batch = [e.to_dict() for e in make_events(100)]
    start = time.perf_counter()
    for _ in range(200):
        json.dumps(batch, separators=(",", ":"))
    dumps_us = (time.perf_counter() - start) / 20_000 * 1e6
    emit(
        {
            "scenario": "calibration",
            "n": 1_000_000,
            "seconds": round(loop_ms / 1000, 4),
            "python_loop_1m_ms": round(loop_ms, 1),
            "json_dumps_us_per_event": round(dumps_us, 2),
            "note": "an unloaded modern core runs the loop in ~40-60 ms",
        }
    )


def service(t: TrackerService) -> HttpTracker:
    assert isinstance(t, HttpTracker)
    return t


def pct(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


# -- (a), (b) throughput ---------------------------------------------------------------


def producer(t: TrackerService, events: list[Event]) -> fx.Effect[None, Never, Never]:
    @fx.gen
    def run() -> fx.Gen[None, Never, Never]:
        for i, event in enumerate(events):
            yield from t.emit(event)
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                yield from fx.yield_now()
        yield from t.flush()

    return run


async def throughput_once(collector: Sink, events: list[Event], batch: int) -> float:
    collector.clear()
    n = len(events)
    layer = tracker.http(collector.events_url, max_batch=batch, max_wait=0.05, max_queue=n)
    async with fx.ManagedRuntime(layer) as rt:
        t = await rt.run(fx.service(EventTracker))  # build outside the timing
        gc.collect()
        start = time.perf_counter()
        await rt.run(producer(t, events))
        elapsed = time.perf_counter() - start
        stats = service(t).stats_nowait()
    stored = collector.stats()["stored_events"]
    if stats.dropped or stats.delivered != n or stored != n:
        raise AssertionError(f"throughput: stored {stored} of {n}; tracker {stats}")
    return elapsed


def encode(events: list[Event], batch: int) -> list[bytes]:
    """The request bodies the tracker would send for `events`, `batch` at a time."""
    return [
        json.dumps([e.to_dict() for e in events[i : i + batch]], separators=(",", ":")).encode()
        for i in range(0, len(events), batch)
    ]


def sink_alone(collector: Sink, bodies: list[bytes]) -> float:
    """Seconds for the collector to take `bodies` from a plain synchronous httpx client,
    one request at a time, with the bodies encoded beforehand: what the collector can
    absorb on this machine, with no tracker in the way (the baseline)."""
    collector.clear()
    headers = {"content-type": "application/json"}
    with httpx.Client(timeout=30.0) as client:
        client.post(collector.events_url, content=b"[]", headers=headers)  # connect first
        gc.collect()
        start = time.perf_counter()
        for body in bodies:
            client.post(collector.events_url, content=body, headers=headers).raise_for_status()
        return time.perf_counter() - start


async def plain_batcher(collector: Sink, events: list[Event], batch: int) -> float:
    """Seconds for the tracker's work done by hand, with no tracker: encode each batch
    as `tracker.http` does and POST it with an `httpx.AsyncClient`, one at a time."""
    collector.clear()
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(timeout=30.0) as client:
        await client.post(collector.events_url, content=b"[]", headers=headers)
        gc.collect()
        start = time.perf_counter()
        for i in range(0, len(events), batch):
            chunk = [e.to_dict() for e in events[i : i + batch]]
            body = json.dumps(chunk, separators=(",", ":")).encode()
            response = await client.post(collector.events_url, content=body, headers=headers)
            response.raise_for_status()
        return time.perf_counter() - start


async def bench_throughput(
    collector: Sink, n: int, batch: int, target: float, repeat: int, where: str
) -> None:
    events = make_events(n)
    runs, plain, alone = [], [], []
    bodies = encode(make_events(n, "baseline"), batch)
    for _ in range(repeat):  # interleaved, so a burst of load hits all three alike
        runs.append(await throughput_once(collector, events, batch))
        requests = collector.stats()["received_batches"]
        plain.append(await plain_batcher(collector, events, batch))
        alone.append(sink_alone(collector, bodies))
    seconds = statistics.median(runs)
    rate = n / seconds
    plain_rate = n / statistics.median(plain)
    alone_s = statistics.median(alone)
    emit(
        {
            "scenario": f"throughput_batch{batch}" + ("" if where == "thread" else "_process"),
            "collector": where,
            "n": n,
            "seconds": round(seconds, 4),
            "events_per_s": round(rate),
            "requests": requests,
            "dropped": 0,
            "runs_events_per_s": [round(n / r) for r in runs],
            "baseline": "no tracker: encode each batch, await one httpx POST at a time",
            "baseline_events_per_s": round(plain_rate),
            "ratio": round(rate / plain_rate, 3),
            "sink_alone_events_per_s": round(n / alone_s),
            "sink_alone_ms_per_request": round(alone_s / len(bodies) * 1000, 2),
            "target": f">= {target:,.0f} events/s",
            "ok": rate >= target,
        }
    )


# -- (c) emit latency ------------------------------------------------------------------


def time_calls(call: Callable[[Any], object], items: list[Any]) -> list[float]:
    """Nanoseconds of each `call(item)`, timed one at a time."""
    out: list[float] = []
    clock = time.perf_counter_ns
    for item in items:
        start = clock()
        call(item)
        out.append(clock() - start)
    return out


async def emit_nowait_samples(
    t: HttpTracker, events: list[Event], yield_to_loop: bool
) -> list[float]:
    samples: list[float] = []
    for i in range(0, len(events), YIELD_EVERY):
        samples += time_calls(t.emit_nowait, events[i : i + YIELD_EVERY])
        if yield_to_loop:
            await anyio.sleep(0)  # let the consumer send (healthy) or stay stuck (stalled)
    return samples


def fiber_samples(
    t: TrackerService, events: list[Event], out: list[float]
) -> fx.Effect[None, Never, Never]:
    @fx.gen
    def run() -> fx.Gen[None, Never, Never]:
        clock = time.perf_counter_ns
        for i, event in enumerate(events):
            start = clock()
            yield from t.emit(event)
            out.append(clock() - start)
            if i % YIELD_EVERY == YIELD_EVERY - 1:
                yield from fx.yield_now()

    return run


async def latency_once(collector: Collector, stalled: bool) -> dict[str, list[float]]:
    collector.clear()
    collector.clear_faults()
    n = LATENCY_SAMPLES
    # A queue that holds every sample, so the stalled case measures accepted emits
    # (a full queue would measure the cheaper drop path instead).
    layer = tracker.http(
        collector.events_url, max_wait=0.01, max_queue=2 * n + 10, close_deadline=0.2
    )
    result: dict[str, list[float]] = {}
    async with fx.ManagedRuntime(layer) as rt:
        t = service(await rt.run(fx.service(EventTracker)))
        if stalled:
            collector.set_mode("hang")
            t.emit_nowait(make_events(1, "probe")[0])
            with anyio.fail_after(10):
                while "hang" not in collector.stats()["requests_by_status"]:
                    await anyio.sleep(0.005)
        direct, in_fiber = make_events(n, "direct"), make_events(n, "fiber")
        gc.collect()
        result["emit_nowait"] = await emit_nowait_samples(t, direct, yield_to_loop=True)
        if not stalled:
            await rt.run(t.flush())
        gc.collect()
        fiber: list[float] = []
        await rt.run(fiber_samples(t, in_fiber, fiber))
        result["emit_fiber"] = fiber
        if not stalled:
            await rt.run(t.flush())
            assert t.stats_nowait().delivered == 2 * n
        else:
            stats = t.stats_nowait()
            assert stats.in_flight > 0 and stats.delivered == 0, stats  # really stalled
    collector.clear_faults()
    return result


def baseline_samples() -> list[float]:
    d: deque[object] = deque()
    items = list(range(LATENCY_SAMPLES))
    gc.collect()
    return time_calls(d.append, items)


def fiber_step_baseline() -> list[float]:
    """`yield from fx.sync(deque.append)`: one effect step in a fiber, doing nothing else."""
    d: deque[object] = deque()
    out: list[float] = []

    @fx.gen
    def run() -> fx.Gen[None, Never, Never]:
        clock = time.perf_counter_ns
        for i in range(LATENCY_SAMPLES):
            start = clock()
            yield from fx.sync(lambda i=i: d.append(i))
            out.append(clock() - start)

    gc.collect()
    fx.run_sync(run)
    return out


async def bench_latency(collector: Collector, repeat: int) -> None:
    baselines: dict[str, tuple[str, float, float]] = {}
    for kind, name, sample in (
        ("emit_nowait", "deque.append, timed the same way", baseline_samples),
        ("emit_fiber", "yield from fx.sync(deque.append) in a fiber", fiber_step_baseline),
    ):
        base = [sample() for _ in range(repeat)]
        baselines[kind] = (
            name,
            statistics.median(pct(s, 50) for s in base) / 1000,
            statistics.median(pct(s, 99) for s in base) / 1000,
        )
    for stalled in (False, True):
        runs = [await latency_once(collector, stalled) for _ in range(repeat)]
        for kind in ("emit_nowait", "emit_fiber"):
            p50 = statistics.median(pct(r[kind], 50) for r in runs) / 1000
            p99 = statistics.median(pct(r[kind], 99) for r in runs) / 1000
            worst = statistics.median(max(r[kind]) for r in runs) / 1000
            base_name, base_p50, base_p99 = baselines[kind]
            emit(
                {
                    "scenario": f"{kind}_{'stalled' if stalled else 'healthy'}",
                    "n": LATENCY_SAMPLES,
                    "seconds": round(statistics.median(sum(r[kind]) for r in runs) / 1e9, 4),
                    "p50_us": round(p50, 3),
                    "p99_us": round(p99, 3),
                    "max_us": round(worst, 1),
                    "baseline": base_name,
                    "baseline_p50_us": round(base_p50, 3),
                    "baseline_p99_us": round(base_p99, 3),
                    "ratio": round(p50 / base_p50, 2),
                    "target": "p50 <= 2 us, p99 <= 10 us",
                    "ok": p50 <= 2.0 and p99 <= 10.0,
                }
            )


# -- (d) close with <= 100 pending -----------------------------------------------------


async def close_managed_once(collector: Collector, events: list[Event]) -> float:
    layer = tracker.http(collector.events_url, max_batch=500, max_wait=10.0)
    rt = fx.ManagedRuntime(layer)
    async with rt:
        t = service(await rt.run(fx.service(EventTracker)))
        for event in events:
            t.emit_nowait(event)
        await anyio.sleep(0)  # the consumer has seen them: a partial batch, waiting
        assert t.stats_nowait().pending == len(events)
        start = time.perf_counter()
        await rt.dispose()
        elapsed = time.perf_counter() - start
    stats = t.stats_nowait()
    assert stats.delivered == len(events) and stats.pending == 0, stats
    return elapsed


async def close_per_run_once(collector: Collector, events: list[Event]) -> float:
    marks: list[float] = []

    @fx.gen
    def run() -> fx.Gen[None, Never, EventTracker]:
        t = yield from EventTracker
        for event in events:
            yield from t.emit(event)
        yield from fx.sleep(0.001)  # the consumer has seen them
        marks.append(time.perf_counter())

    layer = tracker.http(collector.events_url, max_batch=500, max_wait=10.0)
    await fx.run(run.provide(layer))
    return time.perf_counter() - marks[0]


async def bench_close(collector: Collector, repeat: int) -> None:
    del repeat  # 20 closes is the measurement
    body = encode(make_events(100, "baseline"), 100)
    base_ms = 1000 * statistics.median(sink_alone(collector, body) for _ in range(CLOSES))
    for scenario, once in (
        ("close_100_pending", close_managed_once),
        ("close_per_run_scope", close_per_run_once),
    ):
        runs = []
        for i in range(CLOSES):
            collector.clear()
            events = make_events(100, f"close-{i}")
            gc.collect()
            runs.append(await once(collector, events))
        ms = [r * 1000 for r in runs]
        p50 = statistics.median(ms)
        emit(
            {
                "scenario": scenario,
                "n": CLOSES,
                "pending": 100,
                "seconds": round(sum(runs), 4),
                "p50_ms": round(p50, 2),
                "p99_ms": round(pct(ms, 99), 2),
                "max_ms": round(max(ms), 2),
                "baseline": "the collector alone: one pre-encoded 100-event POST",
                "baseline_p50_ms": round(base_ms, 2),
                "ratio": round(p50 / base_ms, 2),
                "target": "p50 <= 10 ms",
                "ok": p50 <= 10.0,
            }
        )


# -- (e) close with the endpoint hung --------------------------------------------------


async def close_hung_once(collector: Collector, deadline: float) -> float:
    collector.clear()
    collector.set_mode("hang")
    errors: list[tracker.DeliveryError] = []
    layer = tracker.http(
        collector.events_url, max_batch=50, close_deadline=deadline, on_error=errors.append
    )
    rt = fx.ManagedRuntime(layer)
    async with rt:
        t = service(await rt.run(fx.service(EventTracker)))
        for event in make_events(80, "hung"):
            t.emit_nowait(event)
        with anyio.fail_after(10):
            while "hang" not in collector.stats()["requests_by_status"]:
                await anyio.sleep(0.005)
        start = time.perf_counter()
        await rt.dispose()
        elapsed = time.perf_counter() - start
    collector.clear_faults()
    stats = t.stats_nowait()
    if stats.dropped != {"close_deadline": 80} or sum(e.count for e in errors) != 80:
        raise AssertionError(f"close_hung: undelivered not reported: {stats}, {errors}")
    return elapsed


async def bench_close_hung(collector: Collector, repeat: int, deadline: float) -> None:
    runs = [await close_hung_once(collector, deadline) for _ in range(min(repeat, 3))]
    seconds = statistics.median(runs)
    emit(
        {
            "scenario": "close_hung",
            "n": len(runs),
            "close_deadline": deadline,
            "seconds": round(seconds, 3),
            "max_seconds": round(max(runs), 3),
            "undelivered_reported": 80,
            "target": f"<= {deadline + 0.5:g} s",
            "ok": max(runs) <= deadline + 0.5,
        }
    )


# -- main ------------------------------------------------------------------------------

CLOSE_DEADLINE = 5.0  # the default of tracker.http


def in_loop(body: Callable[[Collector], Awaitable[None]]) -> None:
    """Run `body` on asyncio with a fresh in-thread collector."""

    async def go() -> None:
        with Collector() as collector:
            await body(collector)

    anyio.run(go, backend="asyncio")


def scenario_throughput(repeat: int) -> None:
    async def body(collector: Collector) -> None:
        for batch, target in ((100, 20_000), (500, 35_000)):
            await bench_throughput(collector, EVENTS, batch, target, repeat, "thread")
        process = ProcessCollector()
        try:
            for batch, target in ((100, 20_000), (500, 35_000)):
                await bench_throughput(process, EVENTS, batch, target, repeat, "process")
        finally:
            process.stop()

    in_loop(body)


SCENARIOS: dict[str, Callable[[int], None]] = {
    "calibration": lambda repeat: calibrate(),
    "throughput": scenario_throughput,
    "latency": lambda repeat: in_loop(lambda c: bench_latency(c, repeat)),
    "close": lambda repeat: in_loop(lambda c: bench_close(c, repeat)),
    "close_hung": lambda repeat: in_loop(lambda c: bench_close_hung(c, repeat, CLOSE_DEADLINE)),
}


if __name__ == "__main__":
    # Drops are expected in the stalled and hung scenarios, and checked there.
    logging.getLogger("tracker.http").setLevel(logging.ERROR)
    run_scenarios(SCENARIOS, __doc__)
