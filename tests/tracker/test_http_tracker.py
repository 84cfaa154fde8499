"""The tracker's delivery contract, proved against the real HTTP tracker and a real collector.

Every test here drives `tracker.http(...)` (the production layer, its httpx client and its
consumer fiber) against `tracker.collector.Collector` on 127.0.0.1 (a real HTTP server with
scripted faults), on asyncio and on trio. Every event the collector stores is validated
against `tracker/schema.json`.

The properties (from the tracker design notes, `docs/tracker.md`):

- short runs, each with its own tracker scope, deliver every event exactly once; the
  deliberately broken `tracker.naive` loses events under the same test body (the canary);
- events emitted in the same tick as the close, a consumer waiting on a partial batch, a
  batch in flight and a close under cancellation: all delivered, the close well before
  `max_wait`;
- faults: 500/500/200 delivers once, 429 honours Retry-After, 400 is not retried and is
  reported, a hung endpoint cannot hold the close past its deadline, an endpoint that is
  down keeps the queue bounded and counts every drop, resets and timeouts are retried;
- one tracker in a `ManagedRuntime` serves many runs with one client; `flush()` is a barrier;
- whatever stops the consumer, the close accounts for every event (delivered, or
  dropped and reported), and the retry backoff stays capped for any attempt number;
- events of a run arrive in emit order; `emit` stays fast when the endpoint stalls;
- hypothesis: random emitters, batch sizes, faults and close timing (stopped emitters
  or a cancelled `fx.run`), always exactly once;
- the in-memory, no-op and JSONL backends keep the same basic contract.

Speed note: each `tracker.http` build makes an `httpx.AsyncClient`, and httpx parses the
CA bundle named by `SSL_CERT_FILE` (or certifi's) for every client: 50-100 ms here, which
would dominate 200 short runs. Nothing here uses TLS, so the autouse fixture below points
httpx at an empty CA directory (its documented `trust_env` variables). Each run still
builds its own client, connection pool and consumer.
"""

from __future__ import annotations

import json
import math
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Never

import anyio
import httpx
import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import effect as fx
import tracker
from tracker import DeliveryError, EventTracker, HttpTracker, RetryPolicy, TrackerService
from tracker.collector import Collector
from tracker.events import (
    ErrorInfo,
    Event,
    SleepStarted,
    StepCompleted,
    StepFailed,
    StepStarted,
    WorkflowCompleted,
    WorkflowStarted,
    load_schema,
    parse_event_json,
)
from tracker.naive import naive_http

pytestmark = pytest.mark.anyio

SCHEMA = load_schema()
FULL_SCHEMA = jsonschema.Draft202012Validator(SCHEMA)


def _inline_refs(node: Any) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            assert len(node) == 1 and node["$ref"].startswith("#/$defs/"), node
            return _inline_refs(SCHEMA["$defs"][node["$ref"].removeprefix("#/$defs/")])
        return {key: _inline_refs(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_refs(item) for item in node]
    return node


def _branch_validators() -> dict[str, jsonschema.protocols.Validator]:
    """One validator per `oneOf` branch of the schema, keyed by the event type it pins.

    Every branch requires `type` and fixes it with `const`, so an event satisfies the
    `oneOf` exactly when it satisfies the branch of its own type: checking that branch
    alone is the same validation, ~20 times faster than trying all of them (jsonschema
    takes ~10 ms per event on the full `oneOf` here, which would dominate the suite).
    """
    branches: dict[str, jsonschema.protocols.Validator] = {}
    for branch in SCHEMA["oneOf"]:
        assert "type" in branch["required"]
        type_ = branch["properties"]["type"]["const"]
        assert type_ not in branches
        branches[type_] = jsonschema.Draft202012Validator(_inline_refs(branch))
    return branches


BRANCHES = _branch_validators()


def validate_event(event: dict[str, Any]) -> None:
    """Validate one delivered event against `tracker/schema.json` (see `_branch_validators`)."""
    branch = BRANCHES.get(event.get("type"))  # type: ignore[arg-type]
    if branch is None:
        FULL_SCHEMA.validate(event)  # an unknown type: let the full schema explain why
    else:
        branch.validate(event)


# Retries fast enough for tests; the delays the contract names are set per test.
FAST_RETRY = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05)


# --- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def _empty_ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("no-ca-bundle")


@pytest.fixture(autouse=True)
def _no_ca_bundle(monkeypatch: pytest.MonkeyPatch, _empty_ca_dir: Path) -> None:
    """Let httpx skip parsing a CA bundle per client (see the module docstring)."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(_empty_ca_dir))


def make_event(run_id: str, seq: int) -> Event:
    """Event number `seq` of run `run_id`, cycling through types so the schema sees many."""
    common: dict[str, Any] = {"workflow_id": run_id, "workflow_name": "orders", "seq": seq}
    match seq % 6:
        case 0:
            return WorkflowStarted(input={"order": seq, "items": [1, 2]}, **common)
        case 1:
            return StepStarted(step_name=f"step-{seq}", attempt=1, **common)
        case 2:
            return StepCompleted(step_name=f"step-{seq}", attempt=1, duration_ms=1.5, **common)
        case 3:
            error = ErrorInfo("ValueError", "bad card", phase="user")
            return StepFailed(step_name="charge", attempt=2, will_retry=True, error=error, **common)
        case 4:
            return SleepStarted(
                name="wait", duration_ms=10.0, resume_at="2026-01-02T03:04:05.000000Z", **common
            )
        case _:
            return WorkflowCompleted(result={"ok": True}, duration_ms=12.0, **common)


def emitting(
    run_id: str,
    n: int,
    sink: list[str],
    *,
    gap: float | None = 0.0005,
    then: fx.Effect[Any, Never, Never] = fx.void,
) -> fx.Effect[TrackerService, Never, EventTracker]:
    """A run: emit `n` events, each followed by `fx.sleep(gap)` (an async boundary, as real
    work has; `None` for no boundary at all), then run `then`. Every event id goes into
    `sink` right after its emit, so an interrupted run leaves exactly what it emitted.
    Returns the tracker service, to read its counters after the scope closed."""

    @fx.gen
    def run() -> fx.Gen[TrackerService, Never, EventTracker]:
        t = yield from EventTracker
        for seq in range(n):
            event = make_event(run_id, seq)
            yield from t.emit(event)
            sink.append(event.event_id)
            if gap is not None:
                yield from fx.sleep(gap)
        yield from then
        return t

    return run


def stored(collector: Collector) -> list[dict[str, Any]]:
    """The collector's stored events, each validated against the published schema."""
    events = collector.events()
    for event in events:
        validate_event(event)
    return events


def stored_ids(collector: Collector) -> list[str]:
    return [e["event_id"] for e in stored(collector)]


def accepted(request: dict[str, Any]) -> bool:
    """Whether the collector stored this request's events (a scripted `{"status": 200}`
    answers 200 without storing; a `{"delay": s}` stores after the delay)."""
    fault = request["fault"]
    return request["status"] == 200 and (fault is None or "delay" in fault)


def accepted_ids(collector: Collector) -> Counter[str]:
    """How many times each event id was in a request the collector stored."""
    return Counter(
        event_id
        for request in collector.requests()
        if accepted(request)
        for event_id in request["event_ids"]
    )


def assert_exactly_once(
    collector: Collector, emitted: list[str], service: TrackerService | None = None
) -> None:
    """Each emitted event was accepted in exactly one request, and nothing else was.
    With `service`, a failure also shows what the tracker's counters say."""
    assert len(set(emitted)) == len(emitted)
    counts = accepted_ids(collector)
    lost = len(set(emitted) - set(counts))
    duplicated = sum(1 for n in counts.values() if n > 1)
    unexpected = len(set(counts) - set(emitted))
    counters = http_stats(service) if service is not None else "n/a"
    assert counts == Counter(emitted), (
        f"emitted {len(emitted)}: {lost} lost, {duplicated} duplicated, {unexpected} "
        f"unexpected; the tracker's counters: {counters}"
    )
    assert sorted(stored_ids(collector)) == sorted(emitted)


def http_stats(service: TrackerService) -> tracker.TrackerStats:
    assert isinstance(service, HttpTracker)
    return service.stats_nowait()


def assert_accounted(stats: tracker.TrackerStats) -> None:
    """The counters' invariant: every emitted event is somewhere, exactly once."""
    assert stats.emitted == (
        stats.delivered + stats.dropped_total + stats.pending + stats.in_flight
    ), stats


def now() -> fx.Effect[float, Never, Never]:
    return fx.sync(time.perf_counter)


async def eventually(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (letting background fibers run) until `predicate()` holds."""
    with anyio.fail_after(timeout):
        while not predicate():
            await anyio.sleep(0.005)


# --- 1. short runs, each with its own scope ---------------------------------------------------

SHORT_RUNS = 200


@pytest.mark.parametrize(
    ("make_layer", "is_canary"),
    [
        pytest.param(lambda url: tracker.http(url, max_wait=10.0), False, id="tracker.http"),
        pytest.param(lambda url: naive_http(url, max_wait=10.0), True, id="naive-canary"),
    ],
)
async def test_short_runs_with_their_own_scope_deliver_every_event_exactly_once(
    collector: Collector,
    make_layer: Callable[[str], fx.Layer[EventTracker, Never, Never]],
    is_canary: bool,
) -> None:
    """The lost-event bug as a test: many short runs, each providing a scoped tracker
    (so each builds, and closes, its own queue, consumer and client) and emitting a few
    events with async boundaries between them, while `max_wait` is far longer than the
    run. The naive tracker must fail this body; the real one must pass it."""
    rng = random.Random(20260101)
    emitted: list[str] = []
    for r in range(SHORT_RUNS):
        prog = emitting(f"run-{r}", rng.randint(1, 6), emitted)
        await fx.run(prog.provide(make_layer(collector.events_url)))
    if is_canary:
        lost = set(emitted) - set(stored_ids(collector))
        assert lost, "the naive tracker lost nothing: this test cannot catch the bug"
        # Each run loses the batch its consumer was holding when the scope closed.
        assert len(lost) >= SHORT_RUNS
    else:
        assert_exactly_once(collector, emitted)


# --- 2. close: last-tick events, partial batches, in-flight batches, cancellation ------------


async def test_events_emitted_in_the_same_tick_as_the_close_are_delivered(
    collector: Collector,
) -> None:
    emitted: list[str] = []
    ended: list[float] = []
    # No async boundary at all: the run ends, and the scope closes, right after the
    # last emit, before the consumer fiber has run even once.
    prog = emitting("last-tick", 50, emitted, gap=None, then=now().map(ended.append))
    service = await fx.run(prog.provide(tracker.http(collector.events_url, max_wait=10.0)))
    close_seconds = time.perf_counter() - ended[0]
    assert_exactly_once(collector, emitted)
    stats = http_stats(service)
    assert (stats.delivered, stats.pending, stats.in_flight) == (50, 0, 0)
    assert_accounted(stats)
    assert close_seconds < 2.0  # max_wait is 10 s


async def test_a_partial_batch_is_delivered_at_close_well_before_max_wait(
    collector: Collector,
) -> None:
    emitted: list[str] = []
    pending_before_close: list[int] = []
    ended: list[float] = []

    @fx.gen
    def then() -> fx.Gen[None, Never, EventTracker]:
        # The consumer has had 50 ms: it is waiting for the batch to fill (3 of 100),
        # with 10 s of max_wait left.
        yield from fx.sleep(0.05)
        t = yield from EventTracker
        pending_before_close.append((yield from t.pending()))
        ended.append((yield from now()))

    prog = emitting("partial", 3, emitted, then=then)
    await fx.run(prog.provide(tracker.http(collector.events_url, max_wait=10.0)))
    close_seconds = time.perf_counter() - ended[0]
    assert pending_before_close == [3]
    assert collector.stats()["requests_by_status"] == {"200": 1}  # the one the close sent
    assert_exactly_once(collector, emitted)
    assert close_seconds < 2.0  # max_wait is 10 s


async def test_a_batch_in_flight_at_close_is_delivered_and_so_is_the_rest(
    collector: Collector,
) -> None:
    """The second stage of the lost-event bug: events already taken by the consumer
    (here: in an HTTP request the collector holds for 0.3 s) when the close starts."""
    collector.set_faults([{"delay": 0.3}])
    emitted: list[str] = []
    in_flight: list[int] = []

    @fx.gen
    def then() -> fx.Gen[None, Never, EventTracker]:
        t = yield from EventTracker
        in_flight.append(http_stats(t).in_flight)
        for seq in range(5, 8):  # queued behind the batch in flight
            event = make_event("in-flight", seq)
            yield from t.emit(event)
            emitted.append(event.event_id)

    # max_batch=5: the fifth emit fills a batch, the consumer sends it during the sleeps.
    prog = emitting("in-flight", 5, emitted, gap=0.02, then=then)
    layer = tracker.http(collector.events_url, max_batch=5, max_wait=10.0)
    service = await fx.run(prog.provide(layer))
    assert in_flight == [5]
    assert_exactly_once(collector, emitted)
    assert [len(r["event_ids"]) for r in collector.requests()] == [5, 3]
    assert_accounted(http_stats(service))


@pytest.mark.parametrize("batch_in_flight", [False, True], ids=["queued", "in-flight"])
async def test_close_under_cancellation_still_delivers_everything_emitted(
    collector: Collector, batch_in_flight: bool
) -> None:
    """A cancel scope around `fx.run` fires while the run waits (`fx.never`), 50 ms
    after its last emit, with events queued (max_batch 5, 12 emitted: two full batches
    went out, 2 wait for more) or, with `batch_in_flight`, while the collector holds the
    first batch's request (so 5 are in flight and 7 queued). The close runs shielded
    and must still deliver all 12."""
    if batch_in_flight:
        collector.set_faults([{"delay": 0.3}])
    emitted: list[str] = []
    services: list[TrackerService] = []
    cancel = anyio.CancelScope()

    @fx.gen
    def then() -> fx.Gen[None, Never, EventTracker]:
        services.append((yield from EventTracker))
        # Arm the timer now that the emits are done, so it fires mid-run whatever the
        # layer build cost (like `move_on_after(0.05)` started here).
        cancel.deadline = anyio.current_time() + 0.05
        yield from fx.never

    prog = emitting("cancelled", 12, emitted, gap=0.001, then=then)
    layer = tracker.http(collector.events_url, max_batch=5, max_wait=10.0)
    with cancel:
        await fx.run(prog.provide(layer))
    assert cancel.cancelled_caught
    assert len(emitted) == 12
    assert_exactly_once(collector, emitted, services[0])
    stats = http_stats(services[0])
    assert (stats.delivered, stats.pending, stats.in_flight) == (12, 0, 0)


async def test_a_task_group_cancelled_mid_run_still_delivers(collector: Collector) -> None:
    emitted: list[str] = []
    services: list[TrackerService] = []
    ready = anyio.Event()
    then = fx.service(EventTracker).map(services.append).and_then(fx.sync(ready.set))
    prog = emitting("tg", 7, emitted, then=then.and_then(fx.never))
    layer = tracker.http(collector.events_url, max_wait=10.0)

    async with anyio.create_task_group() as tg:
        tg.start_soon(fx.run, prog.provide(layer))
        await ready.wait()
        tg.cancel_scope.cancel()
    assert_exactly_once(collector, emitted, services[0])
    assert_accounted(http_stats(services[0]))


async def test_emit_after_close_is_counted_never_raises(collector: Collector) -> None:
    service = await fx.run(
        emitting("after", 2, [], gap=None).provide(tracker.http(collector.events_url))
    )
    assert isinstance(service, HttpTracker)
    service.emit_nowait(make_event("after", 2))
    await fx.run(service.emit(make_event("after", 3)))
    stats = service.stats_nowait()
    assert stats.dropped == {"after_close": 2}
    assert stats.delivered == 2
    assert_accounted(stats)
    assert len(stored(collector)) == 2


# --- 3. faults scripted on the collector ------------------------------------------------------


async def test_500_500_200_delivers_once_with_the_same_event_ids(collector: Collector) -> None:
    collector.set_faults([{"status": 500}, {"status": 500}])
    emitted: list[str] = []
    prog = emitting("flaky", 6, emitted, gap=None)
    layer = tracker.http(collector.events_url, max_wait=10.0, retry=FAST_RETRY)
    service = await fx.run(prog.provide(layer))

    requests = collector.requests()
    assert [r["status"] for r in requests] == [500, 500, 200]
    assert all(r["event_ids"] == emitted for r in requests)  # stable idempotency keys
    assert stored_ids(collector) == emitted  # one stored copy each
    assert collector.stats()["duplicates"] == 0
    stats = http_stats(service)
    assert (stats.delivered, stats.retried, stats.dropped) == (6, 2, {})
    assert_accounted(stats)


async def test_429_retry_after_is_waited_before_the_retry(collector: Collector) -> None:
    collector.set_faults([{"status": 429, "retry_after": 1}])
    emitted: list[str] = []
    prog = emitting("limited", 4, emitted, gap=None)
    # The backoff alone would retry after ~10 ms; Retry-After must win.
    layer = tracker.http(collector.events_url, max_wait=10.0, retry=FAST_RETRY)
    await fx.run(prog.provide(layer))

    first, second = collector.requests()
    assert (first["status"], second["status"]) == (429, 200)
    assert second["event_ids"] == first["event_ids"] == emitted
    # Both timestamps are taken by the collector, on receipt; the retry can only start
    # after the 429 reached the tracker, so the gap is at least the full second.
    assert second["at"] - first["at"] >= 1.0 - 0.002
    assert_exactly_once(collector, emitted)


async def test_400_is_not_retried_is_counted_and_reported(collector: Collector) -> None:
    collector.set_faults([{"status": 400}])
    errors: list[DeliveryError] = []
    rejected: list[str] = []
    later: list[str] = []

    @fx.gen
    def prog() -> fx.Gen[TrackerService, Never, EventTracker]:
        t = yield from emitting("bad", 3, rejected, gap=None)
        yield from t.flush()  # settles the rejected batch
        yield from emitting("good", 2, later, gap=None)
        return t

    layer = tracker.http(
        collector.events_url, max_wait=10.0, retry=FAST_RETRY, on_error=errors.append
    )
    service = await fx.run(prog.provide(layer))

    assert [r["status"] for r in collector.requests()] == [400, 200]  # no retry of the 400
    assert [(e.reason, e.count, e.event_ids) for e in errors] == [("rejected", 3, tuple(rejected))]
    assert "400" in errors[0].detail
    stats = http_stats(service)
    assert stats.dropped == {"rejected": 3}
    assert (stats.delivered, stats.retried) == (2, 0)
    assert_accounted(stats)
    assert_exactly_once(collector, later)  # the tracker carried on


async def test_a_hung_endpoint_cannot_hold_the_close_past_its_deadline(
    collector: Collector,
) -> None:
    collector.set_mode("hang")
    deadline = 1.0
    errors: list[DeliveryError] = []
    emitted: list[str] = []
    ended: list[float] = []
    # max_batch=5: five events go out in a request that never gets an answer, the other
    # two wait behind it.
    prog = emitting("hung", 7, emitted, gap=0.001, then=now().map(ended.append))
    layer = tracker.http(
        collector.events_url,
        max_batch=5,
        max_wait=10.0,
        close_deadline=deadline,
        on_error=errors.append,
    )
    service = await fx.run(prog.provide(layer))
    close_seconds = time.perf_counter() - ended[0]

    assert close_seconds <= deadline + 0.5
    assert collector.stats()["requests_by_status"] == {"hang": 1}
    stats = http_stats(service)
    assert stats.dropped == {"close_deadline": 7}
    assert (stats.delivered, stats.pending, stats.in_flight) == (0, 0, 0)
    assert_accounted(stats)
    assert [(e.reason, e.count, set(e.event_ids)) for e in errors] == [
        ("close_deadline", 7, set(emitted))
    ]


async def test_endpoint_down_then_up_keeps_memory_bounded_and_counts_every_drop(
    collector: Collector,
) -> None:
    max_queue, max_batch = 50, 10
    collector.set_mode("down")  # 503 to every request
    errors: list[DeliveryError] = []
    layer = tracker.http(
        collector.events_url,
        max_batch=max_batch,
        max_wait=0.005,
        max_queue=max_queue,
        retry=RetryPolicy(max_attempts=3, base_delay=0.02, max_delay=0.05),
        on_error=errors.append,
    )
    emitted: list[str] = []
    high_water = {"pending": 0, "in_flight": 0}

    def burst(t: TrackerService, run_id: str, n: int) -> fx.Effect[None, Never, Never]:
        @fx.gen
        def go() -> fx.Gen[None, Never, Never]:
            for seq in range(n):
                event = make_event(run_id, seq)
                yield from t.emit(event)
                emitted.append(event.event_id)
                stats = http_stats(t)
                high_water["pending"] = max(high_water["pending"], stats.pending)
                high_water["in_flight"] = max(high_water["in_flight"], stats.in_flight)
                if seq % 20 == 19:
                    yield from fx.sleep(0.002)

        return go

    async with fx.ManagedRuntime(layer) as rt:
        t = await rt.run(fx.service(EventTracker))
        await rt.run(burst(t, "down", 600))
        # Down long enough for whole batches to run out of retries.
        await eventually(lambda: "retries_exhausted" in http_stats(t).dropped)
        assert collector.stats()["stored_events"] == 0
        # Nothing runs between these two lines: the queued events all go out after the
        # switch (only a request already on the wire may still get its last 503).
        backlog = http_stats(t).pending
        collector.set_mode("ok")
        await rt.run(t.flush())
        for chunk in range(5):  # chunks of 10, an empty queue and a flush each: no drops
            await rt.run(burst(t, f"up-{chunk}", 10).and_then(t.flush()))
        up_ids = emitted[-50:]
        during = http_stats(t)
    after = http_stats(t)

    assert high_water["pending"] <= max_queue
    assert high_water["in_flight"] <= max_batch
    assert during == after  # the close had nothing left to do
    assert (after.pending, after.in_flight) == (0, 0)
    assert_accounted(after)
    assert after.dropped.get("queue_full", 0) > 0
    assert after.dropped.get("retries_exhausted", 0) > 0

    delivered = set(stored_ids(collector))
    missing = set(emitted) - delivered
    assert after.delivered == len(delivered)
    assert len(missing) == after.dropped_total  # every lost event is counted, once
    reported = {i for e in errors for i in e.event_ids}
    assert reported <= missing
    assert {e.reason for e in errors} == {"retries_exhausted"}
    assert len(reported) == after.dropped["retries_exhausted"]
    assert len(missing - reported) == after.dropped["queue_full"]
    # Back up: the backlog and every later event are delivered, with no restart.
    assert set(up_ids) <= delivered
    assert after.delivered >= backlog + len(up_ids)


async def test_a_connection_reset_is_retried(collector: Collector) -> None:
    collector.set_faults([{"reset": True}])
    emitted: list[str] = []
    prog = emitting("reset", 5, emitted, gap=None)
    layer = tracker.http(collector.events_url, max_wait=10.0, retry=FAST_RETRY)
    service = await fx.run(prog.provide(layer))

    requests = collector.requests()
    assert [(r["fault"], r["status"]) for r in requests] == [({"reset": True}, None), (None, 200)]
    assert requests[0]["event_ids"] == requests[1]["event_ids"] == emitted
    assert_exactly_once(collector, emitted)
    assert http_stats(service).retried == 1


async def test_a_timed_out_request_is_retried_and_the_collector_dedupes(
    collector: Collector,
) -> None:
    """Ambiguous success: the collector stores the batch but answers after the client
    gave up. The retry carries the same event ids, so the collector keeps one copy."""
    collector.set_faults([{"delay": 0.8}])  # stores after 0.8 s, then answers
    emitted: list[str] = []
    prog = emitting("slow", 4, emitted, gap=None)
    layer = tracker.http(collector.events_url, max_wait=10.0, request_timeout=0.3, retry=FAST_RETRY)
    service = await fx.run(prog.provide(layer))
    stats = http_stats(service)
    assert stats.delivered == 4
    assert stats.retried >= 1  # the first attempt timed out

    # Every attempt reaches the log once it is handled (the first after its delay).
    await eventually(lambda: len(collector.requests()) == stats.retried + 1)
    requests = collector.requests()
    assert all(r["event_ids"] == emitted for r in requests)  # same ids on every attempt
    assert stored_ids(collector) == emitted  # one copy kept
    stored_copies = sum(1 for r in requests if accepted(r))
    assert stored_copies >= 2  # the late first attempt was stored too...
    assert collector.stats()["duplicates"] == 4 * (stored_copies - 1)  # ...and deduplicated


async def test_retries_exhausted_are_counted_and_reported(collector: Collector) -> None:
    collector.set_mode("status:502")
    errors: list[DeliveryError] = []
    emitted: list[str] = []
    policy = RetryPolicy(max_attempts=3, base_delay=0.01, max_delay=0.02)
    layer = tracker.http(collector.events_url, max_wait=10.0, retry=policy, on_error=errors.append)
    service = await fx.run(emitting("gone", 3, emitted, gap=None).provide(layer))
    assert [r["status"] for r in collector.requests()] == [502, 502, 502]
    stats = http_stats(service)
    assert (stats.dropped, stats.retried, stats.delivered) == ({"retries_exhausted": 3}, 2, 0)
    assert [(e.reason, e.event_ids) for e in errors] == [("retries_exhausted", tuple(emitted))]
    assert_accounted(stats)


def test_retry_delay_is_capped_for_any_attempt_number() -> None:
    """`delay` is `min(max_delay, base_delay * factor ** (attempt - 1))`: it must stay
    at most `max_delay` (times the jitter) however many attempts the policy allows."""
    policy = RetryPolicy(max_attempts=2000)
    rng = random.Random(0)
    for attempt in (1, 10, 100, 1024, 1025, 1999):
        assert policy.delay(attempt, rng) <= policy.max_delay * (1 + policy.jitter)


async def test_a_consumer_that_dies_does_not_lose_events_silently(collector: Collector) -> None:
    """Whatever stops the consumer fiber, the close must account for every event:
    delivered, or dropped and reported. Here the consumer dies of a defect: computing
    the backoff after attempt 32 overflows (`factor ** 31` with factor 1e10; the
    default factor 2 overflows the same way at attempt 1025, see the test above)."""
    collector.set_mode("down")
    errors: list[DeliveryError] = []
    policy = RetryPolicy(max_attempts=100, base_delay=0.0, factor=1e10, max_delay=0.0)
    layer = tracker.http(
        collector.events_url,
        max_wait=0.0,
        retry=policy,
        close_deadline=1.0,
        on_error=errors.append,
    )
    first, second = make_event("dies", 0), make_event("dies", 1)
    async with fx.ManagedRuntime(layer) as rt:
        t = await rt.run(fx.service(EventTracker))
        await rt.run(t.emit(first))
        # 32 attempts answered 503: the 32nd is the consumer's last (its backoff dies).
        await eventually(lambda: len(collector.requests()) >= 32)
        collector.set_mode("ok")
        await rt.run(t.emit(second))
    stats = http_stats(t)
    delivered = set(stored_ids(collector))
    reported = {event_id for error in errors for event_id in error.event_ids}
    assert (stats.pending, stats.in_flight) == (0, 0), stats
    assert_accounted(stats)
    assert delivered | reported == {first.event_id, second.event_id}, (stats, errors)


# --- 4. one tracker in a ManagedRuntime -------------------------------------------------------


class CountingAsyncClient(httpx.AsyncClient):
    """An `httpx.AsyncClient` that counts how many were made (observation only)."""

    made = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        type(self).made += 1
        super().__init__(*args, **kwargs)


@pytest.fixture
def counting_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[CountingAsyncClient]]:
    monkeypatch.setattr(CountingAsyncClient, "made", 0)
    monkeypatch.setattr(httpx, "AsyncClient", CountingAsyncClient)
    yield CountingAsyncClient


def counting_builds(
    layer: fx.Layer[EventTracker, Never, Never], builds: list[int]
) -> fx.Layer[EventTracker, Never, Never]:
    """`layer`, wrapped so that each build of it is counted."""

    @fx.gen
    def passthrough() -> fx.Gen[TrackerService, Never, EventTracker]:
        builds.append(1)
        return (yield from EventTracker)

    return fx.Layer.effect(EventTracker, passthrough).provide(layer)


async def test_a_managed_runtime_holds_one_tracker_for_many_runs(
    collector: Collector, counting_clients: type[CountingAsyncClient]
) -> None:
    builds: list[int] = []
    layer = counting_builds(tracker.http(collector.events_url, max_wait=10.0), builds)
    emitted: list[str] = []
    services: set[int] = set()
    async with fx.ManagedRuntime(layer) as rt:
        for r in range(50):
            service = await rt.run(emitting(f"managed-{r}", 1 + r % 4, emitted))
            services.add(id(service))
        # 123 events: one full batch of 100 went out; max_wait is 10 s, so the other 23
        # wait for more events (or the close) in the one shared queue.
        await eventually(lambda: collector.stats()["received_batches"] == 1)
        assert await rt.run(fx.service(EventTracker).flat_map(lambda t: t.pending())) == 23
    assert_exactly_once(collector, emitted)
    assert builds == [1]
    assert len(services) == 1
    assert counting_clients.made == 1
    assert [len(r["event_ids"]) for r in collector.requests()] == [100, 23]


async def test_cancelling_the_task_that_holds_a_managed_runtime_still_delivers(
    collector: Collector,
) -> None:
    """The runtime's exit is shielded and closes the layer's scope first, so the
    tracker drains even when the enclosing task is cancelled mid-run."""
    emitted: list[str] = []
    cancel = anyio.CancelScope()
    arm = fx.sync(lambda: setattr(cancel, "deadline", anyio.current_time() + 0.05))
    layer = tracker.http(collector.events_url, max_batch=5, max_wait=10.0)
    with cancel:
        async with fx.ManagedRuntime(layer) as rt:
            await rt.run(emitting("rt-1", 4, emitted))
            await rt.run(emitting("rt-2", 8, emitted, then=arm.and_then(fx.never)))
    assert cancel.cancelled_caught
    assert len(emitted) == 12
    assert_exactly_once(collector, emitted)


async def test_flush_is_a_barrier_including_the_batch_in_flight(collector: Collector) -> None:
    collector.set_faults([{"delay": 0.3}])
    emitted: list[str] = []
    seen: dict[str, Any] = {}

    @fx.gen
    def prog() -> fx.Gen[None, Never, EventTracker]:
        t = yield from emitting("barrier", 4, emitted, gap=None)
        yield from fx.sleep(0.05)  # the consumer sent the full batch; the collector holds it
        seen["in_flight"] = http_stats(t).in_flight
        yield from emitting("barrier-2", 6, emitted, gap=None)
        yield from t.flush()
        seen["stored"] = stored_ids(collector)  # right after flush: no sleep, no poll
        seen["pending"] = yield from t.pending()
        started = time.perf_counter()
        yield from t.flush()  # nothing pending: returns at once
        seen["empty_flush"] = time.perf_counter() - started

    async with fx.ManagedRuntime(tracker.http(collector.events_url, max_batch=4)) as rt:
        await rt.run(prog)
        assert seen["in_flight"] == 4
        assert sorted(seen["stored"]) == sorted(emitted)
        assert seen["pending"] == 0
        assert seen["empty_flush"] < 0.5
    assert_exactly_once(collector, emitted)


# --- 5. ordering --------------------------------------------------------------------------------


async def test_events_of_a_run_arrive_in_emit_order(collector: Collector) -> None:
    """Eight runs interleave their emits into batches of 7, across a 500 and a reset
    (retried batches); per run, arrival order is emit order and seq has no gaps."""
    collector.set_faults([{"status": 500}, {"delay": 0.0}, {"reset": True}])
    runs, per_run = 8, 30
    emitted: dict[str, list[str]] = {f"order-{r}": [] for r in range(runs)}

    def run(run_id: str, seed: int) -> fx.Effect[None, Never, EventTracker]:
        rng = random.Random(seed)

        @fx.gen
        def go() -> fx.Gen[None, Never, EventTracker]:
            t = yield from EventTracker
            for seq in range(per_run):
                event = make_event(run_id, seq)
                yield from t.emit(event)
                emitted[run_id].append(event.event_id)
                if rng.random() < 0.5:
                    yield from fx.sleep(rng.choice([0.0, 0.0005, 0.002]))

        return go

    layer = tracker.http(collector.events_url, max_batch=7, max_wait=0.01, retry=FAST_RETRY)
    async with fx.ManagedRuntime(layer) as rt:
        programs = [run(run_id, i) for i, run_id in enumerate(emitted)]
        await rt.run(fx.all(programs, concurrency="unbounded"))

    arrival: list[str] = []  # event ids in the order the collector accepted them
    for request in collector.requests():
        if accepted(request):
            arrival.extend(request["event_ids"])
    assert len(arrival) == len(set(arrival)) == runs * per_run
    by_id = {e["event_id"]: e for e in stored(collector)}
    for run_id, ids in emitted.items():
        assert ids == sorted(ids)  # UUIDv7: emit order is event_id order
        arrived = [i for i in arrival if by_id[i]["workflow_id"] == run_id]
        assert arrived == ids
        assert [by_id[i]["seq"] for i in arrived] == list(range(per_run))
        assert [e["seq"] for e in collector.events(workflow_id=run_id)] == list(range(per_run))


async def test_batches_by_size_and_by_time(collector: Collector) -> None:
    max_wait = 0.1
    burst: list[str] = []
    single: list[str] = []
    seen: dict[str, Any] = {}

    @fx.gen
    def prog() -> fx.Gen[None, Never, EventTracker]:
        t = yield from emitting("burst", 1000, burst, gap=None)
        yield from t.flush()
        seen["burst_sizes"] = [len(r["event_ids"]) for r in collector.requests()]
        collector.clear()
        started = time.time()
        yield from emitting("single", 1, single, gap=None)
        for _ in range(200):  # up to 2 s; the timer should fire after max_wait
            if collector.requests():
                break
            yield from fx.sleep(0.01)
        seen["after"] = [r["at"] - started for r in collector.requests()]

    layer = tracker.http(collector.events_url, max_batch=100, max_wait=max_wait)
    async with fx.ManagedRuntime(layer) as rt:
        await rt.run(prog)
    assert max(seen["burst_sizes"]) <= 100
    assert len(seen["burst_sizes"]) >= 10
    assert sum(seen["burst_sizes"]) == 1000
    # The lone event went out by time, before the close: not at once, and not never.
    (after,) = seen["after"]
    assert after >= max_wait - 0.005
    assert single == stored_ids(collector)


# --- 6. emit latency --------------------------------------------------------------------------


def p99(samples: list[int]) -> float:
    return statistics.quantiles(samples, n=100)[98]


async def test_emit_latency_does_not_depend_on_the_endpoint(collector: Collector) -> None:
    n = 3000
    events = [make_event("latency", i) for i in range(2 * n)]
    healthy: list[int] = []
    hung: list[int] = []

    def timed(
        t: TrackerService, batch: list[Event], out: list[int]
    ) -> fx.Effect[None, Never, Never]:
        @fx.gen
        def go() -> fx.Gen[None, Never, Never]:
            for i, event in enumerate(batch):
                start = time.perf_counter_ns()
                yield from t.emit(event)
                out.append(time.perf_counter_ns() - start)
                if i % 100 == 99:
                    yield from fx.yield_now()  # let the consumer take and send batches

        return go

    layer = tracker.http(collector.events_url, max_wait=0.01, close_deadline=0.5)
    async with fx.ManagedRuntime(layer) as rt:
        t = await rt.run(fx.service(EventTracker))
        await rt.run(timed(t, events[:n], healthy).and_then(t.flush()))
        collector.set_mode("hang")
        await rt.run(t.emit(make_event("latency-probe", 0)))
        await eventually(lambda: "hang" in collector.stats()["requests_by_status"])
        await rt.run(timed(t, events[n:], hung))
        assert http_stats(t).in_flight > 0  # the consumer is stuck in the hung request

    assert max(p99(healthy), p99(hung)) < 1_000_000, (p99(healthy), p99(hung))  # 1 ms


# --- 7. hypothesis: random emitters, batch sizes and close timing ----------------------------

emitter_plans = st.lists(
    st.tuples(st.integers(0, 30), st.sampled_from(["none", "yield", "sleep"])),
    min_size=1,
    max_size=4,
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    emitters=emitter_plans,
    max_batch=st.integers(1, 50),
    max_wait=st.sampled_from([0.0, 0.002, 10.0]),
    close=st.one_of(st.just(None), st.sampled_from([0.0, 0.001, 0.005, 0.02])),
    how=st.sampled_from(["stop", "cancel"]),
    linger=st.sampled_from([None, 0.0, 0.003]),
    fault=st.sampled_from([None, {"status": 500}, {"reset": True}, {"status": 503}]),
)
async def test_random_interleavings_deliver_exactly_once(
    collector: Collector,
    emitters: list[tuple[int, str]],
    max_batch: int,
    max_wait: float,
    close: float | None,
    how: str,
    linger: float | None,
    fault: dict[str, object] | None,
) -> None:
    """Concurrent emitters in one scoped run, and a close at a random moment. With
    `close` None the run waits for them, lingers (`None`: ends at once; else
    `fx.sleep(linger)`, letting the consumer take a batch) and ends. Otherwise, after
    `close` seconds, the run either stops the emitters wherever they are and ends the
    same way (`stop`), or the task awaiting `fx.run` is cancelled (`cancel`, timed from
    the start of `fx.run`). Every event emitted must arrive exactly once."""
    collector.clear()
    collector.set_faults([fault] if fault else [])
    emitted: list[str] = []

    def emitter(index: int, count: int, pace: str) -> fx.Effect[None, Never, EventTracker]:
        @fx.gen
        def go() -> fx.Gen[None, Never, EventTracker]:
            t = yield from EventTracker
            for seq in range(count):
                event = make_event(f"h-{index}", seq)
                yield from t.emit(event)
                emitted.append(event.event_id)
                if pace == "yield":
                    yield from fx.yield_now()
                elif pace == "sleep":
                    yield from fx.sleep(0.001)

        return go

    @fx.gen
    def prog() -> fx.Gen[None, Never, EventTracker]:
        fibers = []
        for i, (count, pace) in enumerate(emitters):
            fibers.append((yield from emitter(i, count, pace).fork()))
        if close is None or how == "cancel":
            for fiber in fibers:
                yield from fiber.await_()
        else:
            yield from fx.sleep(close)
            for fiber in fibers:
                yield from fiber.interrupt()
        if linger is not None:
            yield from fx.sleep(linger)

    layer = tracker.http(
        collector.events_url, max_batch=max_batch, max_wait=max_wait, retry=FAST_RETRY
    )
    with anyio.move_on_after(close if close is not None and how == "cancel" else math.inf):
        await fx.run(prog.provide(layer))
    assert_exactly_once(collector, emitted)


# --- 8. the other backends --------------------------------------------------------------------


async def test_in_memory_keeps_every_event_in_order() -> None:
    mem = tracker.InMemoryTracker()
    emitted: list[str] = []
    service = await fx.run(emitting("mem", 8, emitted).provide(tracker.in_memory(mem)))
    assert service is mem
    assert [e.event_id for e in mem.events] == emitted
    assert [e.seq for e in mem.of_type("step.started")] == [1, 7]
    for event in mem.events:
        FULL_SCHEMA.validate(event.to_dict())  # the full schema, and the fast path agrees
        validate_event(event.to_dict())
    stats = mem.stats_nowait()
    assert (stats.emitted, stats.delivered, stats.pending, stats.dropped) == (8, 8, 0, {})
    assert_accounted(stats)
    assert fx.run_sync(mem.pending()) == 0
    fx.run_sync(mem.flush())  # nothing to wait for


async def test_in_memory_layer_builds_a_fresh_tracker_per_scope() -> None:
    first = await fx.run(emitting("a", 1, []).provide(tracker.in_memory()))
    second = await fx.run(emitting("b", 2, []).provide(tracker.in_memory()))
    assert isinstance(first, tracker.InMemoryTracker)
    assert isinstance(second, tracker.InMemoryTracker)
    assert first is not second
    assert [len(first.events), len(second.events)] == [1, 2]


async def test_noop_accepts_everything_and_keeps_nothing() -> None:
    service = await fx.run(emitting("noop", 5, []).provide(tracker.noop()))
    assert isinstance(service, tracker.NoopTracker)
    stats = service.stats_nowait()
    assert (stats.emitted, stats.delivered, stats.dropped) == (5, 5, {})
    assert_accounted(stats)
    assert fx.run_sync(service.pending()) == 0


async def test_jsonl_lines_parse_back_and_the_file_is_closed_at_scope_close(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    events = [make_event("jsonl", seq) for seq in range(12)]

    @fx.gen
    def prog() -> fx.Gen[TrackerService, Never, EventTracker]:
        t = yield from EventTracker
        for event in events:
            yield from t.emit(event)
            yield from fx.sleep(0)
        return t

    layer = tracker.jsonl(path, env="test", service_key="billing")
    service = await fx.run(prog.provide(layer))
    lines = path.read_text("utf-8").splitlines()
    assert [parse_event_json(line) for line in lines] == events
    for line in lines:
        wire = json.loads(line)
        validate_event(wire)
        assert (wire["env"], wire["service_key"]) == ("test", "billing")

    # Closed at scope close: a later emit cannot write, and is counted, not raised.
    assert isinstance(service, tracker.JsonlTracker)
    service.emit_nowait(make_event("jsonl", 12))
    stats = service.stats_nowait()
    assert (stats.emitted, stats.delivered, stats.dropped) == (13, 12, {"write_error": 1})
    assert len(path.read_text("utf-8").splitlines()) == 12

    # Appends: a second scope adds its lines after the first ones.
    await fx.run(emitting("jsonl-2", 3, [], gap=None).provide(tracker.jsonl(path)))
    assert len(path.read_text("utf-8").splitlines()) == 15


# --- 9. options of tracker.http ---------------------------------------------------------------


async def test_env_service_key_headers_and_gzip_reach_the_collector(
    collector: Collector,
) -> None:
    emitted: list[str] = []
    layer = tracker.http(
        collector.events_url,
        env="staging",
        service_key="billing",
        compress=True,
        headers={"Authorization": "Bearer t0ken"},
    )
    await fx.run(emitting("options", 6, emitted, gap=None).provide(layer))
    (request,) = collector.requests()
    assert request["content_encoding"] == "gzip"
    assert request["headers"]["authorization"] == "Bearer t0ken"
    assert request["headers"]["content-type"] == "application/json"
    events = stored(collector)
    assert {(e["env"], e["service_key"]) for e in events} == {("staging", "billing")}
    assert_exactly_once(collector, emitted)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_batch": 0},
        {"max_queue": 0},
        {"max_wait": -1.0},
        {"request_timeout": -1},
        {"close_deadline": -0.1},
        {"max_batch": True},
    ],
)
def test_http_rejects_invalid_options(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        tracker.http("http://127.0.0.1:1/events", **kwargs)


def test_http_rejects_a_non_http_url() -> None:
    with pytest.raises(ValueError, match="http"):
        tracker.http("ftp://example.com/events")
