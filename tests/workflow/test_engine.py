"""The workflow primitives and the engine API, on virtual time (`workflow.testing.test_engine`).

Written from the contract of the issue "workflow engine: durable steps, sleeps,
retries, timeouts, cancel and crash recovery as effects, with the step event
guarantee", not from the code. Every test runs on asyncio and on trio.
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Never

import anyio
import pytest

import effect as fx
import tracker
import workflow as wf
from tests.workflow.conftest import describe, guarantee_problems
from workflow.storage import MemoryStorage, RunStatus
from workflow.testing import Fault, FaultyStorage, TestEngine, test_engine

pytestmark = pytest.mark.anyio

DAY = 86_400.0
HOUR = 3_600.0


class Transient(Exception):
    """An error worth retrying."""


class Permanent(Exception):
    """An error not worth retrying."""


class Probe:
    """Step effects that record when (in virtual time) each execution started."""

    def __init__(self) -> None:
        self.runs: dict[str, list[float]] = defaultdict(list)
        self.finalized: dict[str, int] = defaultdict(int)

    def count(self, name: str) -> int:
        return len(self.runs[name])

    def step(
        self,
        name: str,
        value: object = None,
        *,
        fail_times: int = 0,
        error: Callable[[str], Exception] = Transient,
        block: float | None = None,
        block_times: int | None = None,
    ) -> fx.Effect[Any, Exception, Never]:
        """Fails (typed) its first `fail_times` executions; with `block`, sleeps that
        long first (its first `block_times` executions, or all), with a finalizer."""

        @fx.gen
        def body() -> fx.Gen[Any, Exception, Never]:
            now = yield from fx.now()
            self.runs[name].append(now)
            n = len(self.runs[name])
            if block is not None and (block_times is None or n <= block_times):
                yield from fx.sleep(block).ensuring(fx.sync(lambda: self._finalize(name)))
            if n <= fail_times:
                return (yield from fx.fail(error(f"{name} failure {n}")))
            return f"{name}-ok" if value is None else value

        return body

    def _finalize(self, name: str) -> None:
        self.finalized[name] += 1


def types(events: list[Any]) -> list[str]:
    return [e.type for e in events]


def of_type(events: list[Any], type_: str) -> list[Any]:
    return [e for e in events if e.type == type_]


async def outcome(te: TestEngine, run_id: str, max_virtual_seconds: float = 30 * DAY) -> Any:
    """run_to_completion, returning the exception instead of raising it."""
    try:
        return await te.run_to_completion(run_id, max_virtual_seconds)
    except (wf.WorkflowFailedError, wf.WorkflowCancelledError) as exc:
        return exc


async def check_guarantee(te: TestEngine, run_id: str) -> list[Any]:
    events = await te.engine.events(run_id)
    assert guarantee_problems(events) == [], describe(events)
    return events


# -- completion and replay --------------------------------------------------------------


async def test_a_run_completes_with_its_result_and_events() -> None:
    probe = Probe()

    @wf.workflow("add")
    def add(n: int) -> fx.Gen[int, Any, wf.WorkflowContext]:
        a = yield from wf.step("a", probe.step("a", n + 1))
        b = yield from wf.step("b", probe.step("b", a * 10))
        return a + b

    async with test_engine([add]) as te:
        run_id = await te.engine.start(add, 4)
        assert await te.run_to_completion(run_id) == 55
        assert await te.engine.status(run_id) is RunStatus.COMPLETED
        assert await te.engine.result(run_id, timeout=5) == 55
        events = await check_guarantee(te, run_id)
    assert types(events) == [
        "workflow.queued",
        "workflow.started",
        "step.started",
        "step.completed",
        "step.started",
        "step.completed",
        "workflow.completed",
    ]
    assert [e.seq for e in events] == list(range(len(events)))
    assert of_type(events, "workflow.completed")[0].result == 55
    assert probe.count("a") == probe.count("b") == 1


async def test_completed_steps_return_their_stored_results_without_running_again() -> None:
    probe = Probe()

    @wf.workflow("replay")
    def replay(_: None) -> fx.Gen[list[Any], Any, wf.WorkflowContext]:
        a = yield from wf.step("a", probe.step("a", {"n": 1, "items": [1, 2]}))
        nothing = yield from wf.step("void", probe.step("void").as_(None))
        yield from wf.sleep("day", DAY)  # the run pauses; the next execution replays
        b = yield from wf.step("b", probe.step("b", a["n"] + 1))
        yield from wf.sleep("another-day", DAY)
        return [a, nothing, b]

    async with test_engine([replay]) as te:
        run_id = await te.engine.start(replay, None)
        await te.settle()
        assert await te.engine.status(run_id) is RunStatus.PAUSED
        result = await te.run_to_completion(run_id)
        events = await check_guarantee(te, run_id)
    assert result == [{"n": 1, "items": [1, 2]}, None, 2]
    # Three executions of the run, but each step's effect ran once, a step returning
    # None included.
    assert len(of_type(events, "workflow.resumed")) == 2
    assert dict(probe.runs) == {"a": [0.0], "void": [0.0], "b": [DAY]}
    assert len(of_type(events, "step.started")) == 3


# -- retries -------------------------------------------------------------------------------


async def test_short_retry_delays_wait_in_memory() -> None:
    probe = Probe()
    policy = wf.Retry(max_attempts=3, backoff=0.25)

    @wf.workflow("flaky")
    def flaky(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        return (yield from wf.step("f", probe.step("f", fail_times=2), retry=policy))

    async with test_engine([flaky], in_memory_wait=1.0) as te:
        run_id = await te.engine.start(flaky, None)
        assert await te.run_to_completion(run_id) == "f-ok"
        events = await check_guarantee(te, run_id)
    assert probe.runs["f"] == [0.0, 0.25, 0.75]
    assert "workflow.paused" not in types(events)
    failed = of_type(events, "step.failed")
    assert [(e.attempt, e.will_retry, e.error.phase) for e in failed] == [
        (1, True, "user"),
        (2, True, "user"),
    ]
    assert [e.delay_ms for e in of_type(events, "retry.scheduled")] == [250.0, 500.0]
    assert [e.attempt for e in of_type(events, "step.completed")] == [3]


async def test_long_retry_delays_pause_the_run_with_a_durable_timer() -> None:
    probe = Probe()
    policy = wf.Retry(max_attempts=4, backoff=HOUR, max_delay=DAY)

    @wf.workflow("slow-flaky")
    def slow_flaky(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        return (yield from wf.step("f", probe.step("f", fail_times=2), retry=policy))

    async with test_engine([slow_flaky], in_memory_wait=60.0) as te:
        run_id = await te.engine.start(slow_flaky, None)
        await te.settle()
        record = te.storage.get_run(run_id)
        assert record is not None
        assert record.status is RunStatus.PAUSED
        assert record.wake_at == HOUR
        assert [h.status for h in await te.engine.history(run_id)] == ["retrying"]
        await te.advance(HOUR - 1)
        assert probe.count("f") == 1
        assert await te.engine.status(run_id) is RunStatus.PAUSED
        assert await te.run_to_completion(run_id) == "f-ok"
        events = await check_guarantee(te, run_id)
    assert probe.runs["f"] == [0.0, HOUR, 3 * HOUR]
    assert types(events).count("workflow.paused") == 2
    assert types(events).count("workflow.resumed") == 2
    assert [e.next_attempt for e in of_type(events, "retry.scheduled")] == [2, 3]


async def test_max_attempts_bounds_the_attempts_and_the_step_fails() -> None:
    probe = Probe()

    @wf.workflow("hopeless")
    def hopeless(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        return (
            yield from wf.step(
                "h", probe.step("h", fail_times=99), retry=wf.Retry(max_attempts=4, backoff=0.1)
            )
        )

    async with test_engine([hopeless]) as te:
        run_id = await te.engine.start(hopeless, None)
        error = await outcome(te, run_id)
        events = await check_guarantee(te, run_id)
        assert await te.engine.status(run_id) is RunStatus.FAILED
    assert probe.count("h") == 4
    assert isinstance(error, wf.WorkflowFailedError)
    assert (error.step_name, error.attempt, error.error_type) == ("h", 4, "StepFailedError")
    assert "h failure 4" in error.message
    failed = of_type(events, "step.failed")
    assert [e.will_retry for e in failed] == [True, True, True, False]
    exhausted = of_type(events, "retry.exhausted")
    assert [(e.step_name, e.attempts) for e in exhausted] == [("h", 4)]
    workflow_failed = of_type(events, "workflow.failed")
    assert [(e.step_name, e.attempt) for e in workflow_failed] == [("h", 4)]


async def test_retry_on_decides_which_errors_are_retried() -> None:
    probe = Probe()
    policy = wf.Retry(
        max_attempts=5,
        backoff=0.1,
        retry_on=lambda error: isinstance(error, Transient),
    )

    @wf.workflow("selective")
    def selective(kind: str) -> fx.Gen[str, Any, wf.WorkflowContext]:
        error = Transient if kind == "transient" else Permanent
        return (yield from wf.step(kind, probe.step(kind, fail_times=2, error=error), retry=policy))

    async with test_engine([selective]) as te:
        transient = await te.engine.start(selective, "transient")
        permanent = await te.engine.start(selective, "permanent")
        assert await outcome(te, transient) == "transient-ok"
        error = await outcome(te, permanent)
        events = await check_guarantee(te, permanent)
    assert probe.count("transient") == 3
    assert probe.count("permanent") == 1
    assert isinstance(error, wf.WorkflowFailedError)
    assert error.step_name == "permanent" and error.attempt == 1
    assert [(e.will_retry, e.error.type) for e in of_type(events, "step.failed")] == [
        (False, "Permanent")
    ]


async def test_backoff_doubles_and_is_capped_by_max_delay() -> None:
    probe = Probe()
    policy = wf.Retry(max_attempts=5, backoff=1000.0, max_delay=1500.0)

    @wf.workflow("capped")
    def capped(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        return (yield from wf.step("c", probe.step("c", fail_times=4), retry=policy))

    async with test_engine([capped]) as te:
        run_id = await te.engine.start(capped, None)
        assert await te.run_to_completion(run_id) == "c-ok"
    assert probe.runs["c"] == [0.0, 1000.0, 2500.0, 4000.0, 5500.0]


async def test_jitter_stays_within_its_fraction_of_the_delay() -> None:
    probe = Probe()
    policy = wf.Retry(max_attempts=6, backoff=100.0, max_delay=100.0, jitter=0.5)

    @wf.workflow("jittery")
    def jittery(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        return (yield from wf.step("j", probe.step("j", fail_times=5), retry=policy))

    async with test_engine([jittery]) as te:
        run_id = await te.engine.start(jittery, None)
        assert await te.run_to_completion(run_id) == "j-ok"
    times = probe.runs["j"]
    delays = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(delays) == 5
    assert all(50.0 <= d <= 150.0 for d in delays), delays


# -- timeouts ------------------------------------------------------------------------------


async def test_a_timeout_interrupts_the_attempt_and_its_finalizers_run() -> None:
    probe = Probe()

    @wf.workflow("too-slow")
    def too_slow(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        return (
            yield from wf.step(
                "slow",
                probe.step("slow", block=60.0),
                timeout=5.0,
                retry=wf.Retry(max_attempts=2, backoff=0.0),
            )
        )

    async with test_engine([too_slow]) as te:
        run_id = await te.engine.start(too_slow, None)
        error = await outcome(te, run_id)
        events = await check_guarantee(te, run_id)
        assert te.clock.now() == 10.0  # two attempts of 5 s, not 60 s each
    assert isinstance(error, wf.WorkflowFailedError)
    assert (error.step_name, error.attempt) == ("slow", 2)
    assert probe.runs["slow"] == [0.0, 5.0]
    assert probe.finalized["slow"] == 2  # the user effect was really interrupted
    assert [(e.attempt, e.error.phase) for e in of_type(events, "step.failed")] == [
        (1, "timeout"),
        (2, "timeout"),
    ]
    assert [e.attempt for e in of_type(events, "timeout.exceeded")] == [1, 2]
    assert [e.attempt for e in of_type(events, "timeout.set")] == [1, 2]


async def test_an_attempt_that_timed_out_is_retried_and_can_succeed() -> None:
    probe = Probe()

    @wf.workflow("slow-once")
    def slow_once(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        return (
            yield from wf.step(
                "s",
                probe.step("s", block=60.0, block_times=1),
                timeout=5.0,
                retry=wf.Retry(max_attempts=2, backoff=0.5),
            )
        )

    async with test_engine([slow_once]) as te:
        run_id = await te.engine.start(slow_once, None)
        assert await te.run_to_completion(run_id) == "s-ok"
        await check_guarantee(te, run_id)
        assert te.clock.now() == 5.5
    assert probe.runs["s"] == [0.0, 5.5]
    assert probe.finalized["s"] == 1


# -- what the engine refuses ---------------------------------------------------------------


class Unencodable:
    """Neither JSON, attrs nor a dataclass."""


async def test_a_result_the_codec_cannot_encode_fails_the_step_without_retry() -> None:
    probe = Probe()

    @wf.workflow("encode")
    def encode(_: None) -> fx.Gen[Any, Any, wf.WorkflowContext]:
        return (
            yield from wf.step(
                "bad", probe.step("bad", Unencodable()), retry=wf.Retry(max_attempts=5, backoff=0)
            )
        )

    async with test_engine([encode]) as te:
        run_id = await te.engine.start(encode, None)
        error = await outcome(te, run_id)
        events = await check_guarantee(te, run_id)
        history = await te.engine.history(run_id)
    assert probe.count("bad") == 1  # not retried
    assert isinstance(error, wf.WorkflowFailedError)
    assert error.step_name == "bad"
    assert "Unencodable" in str(error) and "'bad'" in str(error)
    failed = of_type(events, "step.failed")
    assert [(e.attempt, e.will_retry, e.error.phase) for e in failed] == [(1, False, "encode")]
    assert "step.completed" not in types(events)
    # Nothing half-written: no completed entry, no stored result.
    assert [(h.location, h.status != "completed", h.result_json) for h in history] == [
        ("bad", True, None)
    ]


@pytest.mark.parametrize("inner", ["step", "sleep"])
async def test_a_primitive_inside_a_step_is_a_nested_primitive_error(inner: str) -> None:
    @wf.workflow("nested")
    def nested(_: None) -> fx.Gen[Any, Any, wf.WorkflowContext]:
        body: fx.Effect[Any, Any, Any] = (
            wf.step("inner", fx.succeed(1)) if inner == "step" else wf.sleep("inner", 1.0)
        )
        return (yield from wf.step("outer", body))

    async with test_engine([nested]) as te:
        run_id = await te.engine.start(nested, None)
        error = await outcome(te, run_id)
        events = await check_guarantee(te, run_id)
    assert isinstance(error, wf.WorkflowFailedError)
    text = f"{error.error_type}: {error.message}"
    assert "NestedPrimitiveError" in text
    assert "'inner'" in text and "'outer'" in text
    assert error.step_name == "outer"
    assert [e.step_name for e in of_type(events, "step.failed")] == ["outer"]


# -- history divergence ----------------------------------------------------------------------


async def test_a_name_used_twice_in_one_scope_is_a_divergence() -> None:
    probe = Probe()

    @wf.workflow("twice")
    def twice(_: None) -> fx.Gen[Any, Any, wf.WorkflowContext]:
        yield from wf.step("a", probe.step("first"))
        yield from wf.step("a", probe.step("second"))
        return "unreachable"

    async with test_engine([twice]) as te:
        run_id = await te.engine.start(twice, None)
        error = await outcome(te, run_id)
    assert isinstance(error, wf.WorkflowFailedError)
    assert error.error_type == "HistoryDivergedError"
    assert "'a'" in error.message
    assert probe.count("first") == 1 and probe.count("second") == 0


def _versioned(kind: str) -> wf.Workflow[None, str, Any]:
    """Version 1 of workflow "evolving", or a version 2 that changed it."""
    if kind == "v1":

        @wf.workflow("evolving")
        def v1(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
            yield from wf.step("x", fx.succeed(1))
            yield from wf.step("old", fx.succeed(2))
            yield from wf.sleep("nap", DAY)
            return "v1"

        return v1
    if kind == "kind-changed":

        @wf.workflow("evolving")
        def kind_changed(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
            yield from wf.sleep("x", 1.0)  # was a step
            yield from wf.step("old", fx.succeed(2))
            yield from wf.sleep("nap", DAY)
            return "v2"

        return kind_changed

    @wf.workflow("evolving")
    def step_removed(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        yield from wf.step("x", fx.succeed(1))
        yield from wf.sleep("nap", DAY)  # step "old" is gone
        return "v2"

    return step_removed


@pytest.mark.parametrize(("change", "location"), [("kind-changed", "x"), ("step-removed", "old")])
async def test_history_the_code_no_longer_matches_is_a_divergence_naming_the_location(
    change: str, location: str
) -> None:
    storage = MemoryStorage()
    async with test_engine([_versioned("v1")], storage=storage) as te:
        run_id = await te.engine.start("evolving", None)
        await te.settle()
        assert await te.engine.status(run_id) is RunStatus.PAUSED
    # New code is deployed while the run sleeps.
    async with test_engine([_versioned(change)], storage=storage, start_time=2 * DAY) as te:
        error = await outcome(te, run_id)
        events = await te.engine.events(run_id)
    assert isinstance(error, wf.WorkflowFailedError), error
    assert error.error_type == "HistoryDivergedError"
    assert f"'{location}'" in error.message
    assert types(events)[-1] == "workflow.failed"


# -- the engine API ----------------------------------------------------------------------------


async def test_start_is_idempotent_by_id() -> None:
    probe = Probe()

    @wf.workflow("once")
    def once(n: int) -> fx.Gen[int, Any, wf.WorkflowContext]:
        return (yield from wf.step("s", probe.step("s", n)))

    @wf.workflow("other")
    def other(n: int) -> fx.Gen[int, Any, wf.WorkflowContext]:
        return n
        yield  # pragma: no cover

    async with test_engine([once, other]) as te:
        first = await te.engine.start(once, 1, id="order-7")
        second = await te.engine.start(once, 2, id="order-7")
        assert first == second == "order-7"
        assert await te.run_to_completion("order-7") == 1
        assert await te.engine.start(once, 3, id="order-7") == "order-7"
        await te.settle()
        with pytest.raises(ValueError, match="order-7"):
            await te.engine.start(other, 1, id="order-7")
        assert await te.engine.result("order-7", timeout=5) == 1
        assert len(await te.engine.list(workflow_name="once")) == 1
    assert probe.count("s") == 1


async def test_cancel_interrupts_a_running_step_at_once() -> None:
    probe = Probe()

    @wf.workflow("long")
    def long(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        yield from wf.step("first", probe.step("first"))
        yield from wf.step("stuck", probe.step("stuck", block=DAY))
        yield from wf.step("after", probe.step("after"))
        return "done"

    async with test_engine([long]) as te:
        run_id = await te.engine.start(long, None)
        await te.settle()
        assert probe.count("stuck") == 1
        await te.engine.cancel(run_id, "operator said stop")
        assert await te.engine.status(run_id) is RunStatus.CANCELLED
        assert te.clock.now() == 0.0  # no virtual time had to pass
        assert probe.finalized["stuck"] == 1
        with pytest.raises(wf.WorkflowCancelledError) as raised:
            await te.engine.result(run_id, timeout=5)
        assert raised.value.reason == "operator said stop"
        await te.advance(2 * DAY)
        events = await check_guarantee(te, run_id)
    assert probe.count("after") == 0
    assert types(events)[-3:] == ["step.started", "step.interrupted", "workflow.cancelled"]
    interrupted = of_type(events, "step.interrupted")
    assert [(e.step_name, e.attempt) for e in interrupted] == [("stuck", 1)]
    assert "step.failed" not in types(events)


async def test_cancel_interrupts_a_step_blocked_in_a_real_sleep_at_once() -> None:
    entered = anyio.Event()
    finalized: list[str] = []

    @wf.workflow("real-long")
    def real_long(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        blocked = (
            fx.sync(entered.set)
            .and_then(fx.sleep(3600.0))
            .ensuring(fx.sync(lambda: finalized.append("stuck")))
        )
        yield from wf.step("stuck", blocked)
        return "done"

    mem = tracker.InMemoryTracker()
    async with wf.Engine(
        [real_long], storage=MemoryStorage(), tracker=tracker.in_memory(mem), poll_interval=0.05
    ) as engine:
        run_id = await engine.start(real_long, None)
        with anyio.fail_after(5):
            await entered.wait()
            await engine.cancel(run_id, "stop")
            assert await engine.status(run_id) is RunStatus.CANCELLED
        events = await engine.events(run_id)
    assert finalized == ["stuck"]
    assert guarantee_problems(events) == [], describe(events)
    assert types(events)[-2:] == ["step.interrupted", "workflow.cancelled"]
    # What the tracker received is the outbox, in order.
    assert [e.event_id for e in mem.events] == [e.event_id for e in events]


async def test_cancel_a_queued_run() -> None:
    probe = Probe()

    @wf.workflow("queued")
    def queued(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        return (yield from wf.step("s", probe.step("s")))

    # Claims of the run fail, so it stays queued.
    storage = FaultyStorage(MemoryStorage(), [Fault(operation="try_claim", times=None)])
    async with test_engine([queued], storage=storage) as te:
        run_id = await te.engine.submit(queued, None)
        await te.settle()
        assert await te.engine.status(run_id) is RunStatus.QUEUED
        storage.clear_faults()
        await te.engine.cancel(run_id, "not needed")
        assert await te.engine.status(run_id) is RunStatus.CANCELLED
        await te.advance(DAY)
        events = await te.engine.events(run_id)
    assert types(events) == ["workflow.queued", "workflow.cancelled"]
    assert probe.count("s") == 0


async def test_cancel_a_paused_run() -> None:
    probe = Probe()

    @wf.workflow("napper")
    def napper(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        yield from wf.step("before", probe.step("before"))
        yield from wf.sleep("nap", DAY)
        return (yield from wf.step("after", probe.step("after")))

    async with test_engine([napper]) as te:
        run_id = await te.engine.start(napper, None)
        await te.settle()
        assert await te.engine.status(run_id) is RunStatus.PAUSED
        await te.engine.cancel(run_id, "changed my mind")
        assert await te.engine.status(run_id) is RunStatus.CANCELLED
        await te.advance(2 * DAY)
        assert await te.engine.status(run_id) is RunStatus.CANCELLED
        events = await check_guarantee(te, run_id)
    assert probe.count("after") == 0
    assert types(events)[-1] == "workflow.cancelled"
    assert "step.interrupted" not in types(events)  # no step was running


async def test_resume_runs_a_sleeping_run_now() -> None:
    probe = Probe()

    @wf.workflow("sleeper")
    def sleeper(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        yield from wf.sleep("nap", DAY)
        return (yield from wf.step("after", probe.step("after")))

    async with test_engine([sleeper]) as te:
        run_id = await te.engine.start(sleeper, None)
        await te.settle()
        assert await te.engine.status(run_id) is RunStatus.PAUSED
        await te.engine.resume(run_id)
        await te.settle()
        # "Run a paused run now (without waiting for its timer)": no time passed.
        assert te.clock.now() == 0.0
        assert probe.count("after") == 1, ", ".join(te.event_types(run_id))
        assert await te.engine.status(run_id) is RunStatus.COMPLETED


async def test_resume_runs_the_next_attempt_of_a_backing_off_step_now() -> None:
    probe = Probe()

    @wf.workflow("backoff")
    def backoff(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        return (
            yield from wf.step(
                "f", probe.step("f", fail_times=1), retry=wf.Retry(max_attempts=3, backoff=DAY)
            )
        )

    async with test_engine([backoff]) as te:
        run_id = await te.engine.start(backoff, None)
        await te.settle()
        assert await te.engine.status(run_id) is RunStatus.PAUSED
        await te.engine.resume(run_id)
        await te.settle()
        assert te.clock.now() == 0.0
        assert probe.runs["f"] == [0.0, 0.0], ", ".join(te.event_types(run_id))
        assert await te.engine.status(run_id) is RunStatus.COMPLETED


async def test_shutdown_interrupts_the_running_step_and_the_next_engine_finishes_the_run() -> None:
    probe = Probe()

    @wf.workflow("deploy")
    def deploy(_: None) -> fx.Gen[list[str], Any, wf.WorkflowContext]:
        a = yield from wf.step("a", probe.step("a"))
        b = yield from wf.step("b", probe.step("b", block=HOUR, block_times=1))
        c = yield from wf.step("c", probe.step("c"))
        return [a, b, c]

    storage = MemoryStorage()
    async with test_engine([deploy], storage=storage) as te:
        run_id = await te.engine.start(deploy, None)
        await te.settle()
        assert probe.count("b") == 1
    # Leaving the engine interrupted step b.
    assert probe.finalized["b"] == 1
    first_events = list(te.tracker.events)
    assert types(first_events)[-2:] == ["step.interrupted", "workflow.paused"]
    assert of_type(first_events, "step.interrupted")[0].reason == "shutdown"
    assert "step.failed" not in types(first_events)
    record = storage.get_run(run_id)
    assert record is not None and record.status is RunStatus.PAUSED

    async with test_engine([deploy], storage=storage) as te:
        assert await te.run_to_completion(run_id) == ["a-ok", "b-ok", "c-ok"]
        events = await check_guarantee(te, run_id)
    assert probe.count("a") == 1  # completed before the shutdown: not run again
    assert probe.count("b") == 2
    assert [e.attempt for e in of_type(events, "step.started") if e.step_name == "b"] == [1, 2]


async def test_status_moves_queued_running_paused_running_completed() -> None:
    seen: list[RunStatus] = []
    storage = MemoryStorage()

    def observe() -> fx.Effect[None, Never, Never]:
        def look() -> None:
            record = storage.get_run("s-1")
            assert record is not None
            seen.append(record.status)

        return fx.sync(look)

    @wf.workflow("statuses")
    def statuses(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        yield from wf.step("one", observe())
        yield from wf.sleep("nap", HOUR)
        yield from wf.step("two", observe())
        return "ok"

    async with test_engine([statuses], storage=storage) as te:
        run_id = await te.engine.submit(statuses, None, id="s-1")
        seen.append(await te.engine.status(run_id))
        await te.settle()
        seen.append(await te.engine.status(run_id))
        assert await te.run_to_completion(run_id) == "ok"
        seen.append(await te.engine.status(run_id))
        events = await te.engine.events(run_id)
    assert seen == [
        RunStatus.QUEUED,
        RunStatus.RUNNING,
        RunStatus.PAUSED,
        RunStatus.RUNNING,
        RunStatus.COMPLETED,
    ]
    lifecycle = [t for t in types(events) if t.startswith("workflow.")]
    assert lifecycle == [
        "workflow.queued",
        "workflow.started",
        "workflow.paused",
        "workflow.resumed",
        "workflow.completed",
    ]


async def test_list_history_and_events() -> None:
    @wf.workflow("listed")
    def listed(n: int) -> fx.Gen[int, Any, wf.WorkflowContext]:
        x = yield from wf.step("x", fx.succeed(n))
        yield from wf.sleep("nap", 10.0 if n == 2 else 0.0)
        return x

    @wf.workflow("failing")
    def failing(_: None) -> fx.Gen[int, Any, wf.WorkflowContext]:
        return (yield from wf.step("boom", fx.fail(Permanent("no"))))

    async with test_engine([listed, failing], in_memory_wait=1.0) as te:
        done = await te.engine.start(listed, 1, id="done")
        paused = await te.engine.start(listed, 2, id="paused")
        failed = await te.engine.start(failing, None, id="failed")
        await te.settle()
        by_id = {r.run_id: r.status for r in await te.engine.list()}
        assert by_id == {
            done: RunStatus.COMPLETED,
            paused: RunStatus.PAUSED,
            failed: RunStatus.FAILED,
        }
        assert [r.run_id for r in await te.engine.list(status=RunStatus.PAUSED)] == [paused]
        assert {r.run_id for r in await te.engine.list(workflow_name="listed")} == {done, paused}
        history = await te.engine.history(paused)
        assert [(h.location, h.kind, h.status) for h in history] == [
            ("x", "step", "completed"),
            ("nap", "sleep", "waiting"),
        ]
        assert json.loads(history[0].result_json or "null") == 2
        assert history[0].attempt == 1
        for run_id in (done, paused, failed):
            events = await te.engine.events(run_id)
            assert {e.workflow_id for e in events} == {run_id}
            assert [e.seq for e in events] == list(range(len(events)))
        with pytest.raises(KeyError):
            await te.engine.status("no-such-run")


async def test_a_day_long_sleep_and_hour_long_backoffs_run_on_virtual_time() -> None:
    probe = Probe()

    @wf.workflow("patient")
    def patient(_: None) -> fx.Gen[list[str], Any, wf.WorkflowContext]:
        first = yield from wf.step("first", probe.step("first"))
        yield from wf.sleep("a-day", DAY)
        second = yield from wf.step(
            "second",
            probe.step("second", fail_times=3),
            retry=wf.Retry(max_attempts=5, backoff=HOUR, max_delay=4 * HOUR),
        )
        return [first, second]

    async with test_engine([patient], start_time=1_000_000.0) as te:
        run_id = await te.engine.start(patient, None)
        result = await te.run_to_completion(run_id, max_virtual_seconds=7 * DAY)
        events = await check_guarantee(te, run_id)
        elapsed = te.clock.now() - 1_000_000.0
    assert result == ["first-ok", "second-ok"]
    start = 1_000_000.0
    assert probe.runs["first"] == [start]
    # Backoffs after failed attempts 1, 2, 3: 1 h, 2 h, 4 h.
    assert probe.runs["second"] == [
        start + DAY,
        start + DAY + HOUR,
        start + DAY + 3 * HOUR,
        start + DAY + 7 * HOUR,
    ]
    assert elapsed == DAY + 7 * HOUR
    assert types(events).count("workflow.paused") == 4  # the sleep and three backoffs


async def test_sleep_until_a_timestamp_and_short_sleeps_stay_in_memory() -> None:
    probe = Probe()

    @wf.workflow("timed")
    def timed(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        yield from wf.sleep("short", 0.5)
        yield from wf.step("a", probe.step("a"))
        yield from wf.sleep_until("noon", 43_200.0)
        yield from wf.sleep_until("in-the-past", 10.0)
        return (yield from wf.step("b", probe.step("b")))

    async with test_engine([timed], in_memory_wait=1.0) as te:
        run_id = await te.engine.start(timed, None)
        assert await te.run_to_completion(run_id) == "b-ok"
        events = await te.engine.events(run_id)
    assert probe.runs["a"] == [0.5]
    assert probe.runs["b"] == [43_200.0]
    assert types(events).count("workflow.paused") == 1  # only the long wait is durable
    assert [e.name for e in of_type(events, "sleep.completed")] == [
        "short",
        "noon",
        "in-the-past",
    ]


async def test_the_tracker_receives_every_outbox_event_in_order() -> None:
    @wf.workflow("chatty")
    def chatty(n: int) -> fx.Gen[int, Any, wf.WorkflowContext]:
        for i in range(3):
            yield from wf.step(f"s{i}", fx.succeed(i))
        yield from wf.sleep("nap", HOUR)
        return n

    async with test_engine([chatty]) as te:
        runs = [await te.engine.start(chatty, n) for n in range(3)]
        for run_id in runs:
            await te.run_to_completion(run_id)
        outbox = {run_id: await te.engine.events(run_id) for run_id in runs}
    for run_id in runs:
        received = [e for e in te.tracker.events if e.workflow_id == run_id]
        assert [e.event_id for e in received] == [e.event_id for e in outbox[run_id]]
        assert [e.seq for e in received] == list(range(len(received)))
