"""The step event guarantee under storage faults: a sweep over every storage call.

For a few workflows (one step that fails once and retries, one with a timeout, one
with a durable sleep and a durable retry), a clean run records every storage call
(`FaultyStorage.calls`). Then, for each call index, the run is repeated with a fault
at that call: transient (that one call fails) or permanent (every call of that
operation fails from that index on, until the harness clears the faults). After the
faults clear (and `engine.resume(id)` for a run that failed with a
`StepInfrastructureError`, or the engine's own recovery otherwise) every run must:

- keep the step guarantee, in the outbox and in what the tracker received: each
  step.started has exactly one terminal event, no step event lacks its step.started,
  step.failed comes before workflow.failed;
- name the step in progress (step and attempt) in any workflow.failed;
- complete with the clean run's result, with no completed step run again (user
  effect executions counted per step) and every outbox event delivered.

Runs on virtual time (`workflow.testing.test_engine`), so the engine's fibers
interleave the same way on every run and the call indexes of the clean run are
those of the faulted runs up to the fault. MemoryStorage and SqliteStorage.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import effect.testing.clock
import workflow as wf
from tests.workflow.conftest import (
    Executions,
    SleepSpec,
    Spec,
    StepSpec,
    WaitSpec,
    build,
    dedupe,
    describe,
    expected_result,
    guarantee_problems,
)
from tracker.events import Event, parse_event_json
from workflow.storage import (
    MemoryStorage,
    RunRecord,
    RunStatus,
    SqliteStorage,
    Storage,
    StorageError,
)
from workflow.testing import Fault, FaultyStorage, TestEngine, test_engine
from workflow.testing.faulty_storage import StorageCall

RUN_ID = "run-1"
# A permanent fault is cleared by the harness when the run has come to rest, or once
# it has fired this often (the engine retries some failures without any delay, see
# test_a_run_that_cannot_start_is_not_retried_in_a_busy_loop).
MAX_FIRES = 25
# More storage calls than this for one wake-up is a busy loop (a clean run makes < 20).
BUSY_CALLS = 200

pytestmark = pytest.mark.usefixtures("quiet_engine")


@pytest.fixture(autouse=True)
def _short_settles(monkeypatch: pytest.MonkeyPatch) -> None:
    """`TestClock` lets ready fibers run up to 10,000 rounds per settle, so that a
    fiber that never waits cannot hang a test. An engine that busy-loops would make
    each settle cost seconds here; 500 rounds is plenty for an engine that waits."""
    monkeypatch.setattr(effect.testing.clock, "_MAX_SETTLE_ROUNDS", 500)


SHAPES: dict[str, tuple[Spec, ...]] = {
    # a plain step, a step failing once then retried (in memory), a step with a timeout
    "retry-and-timeout": (
        StepSpec("a"),
        StepSpec("b", fails=1, max_attempts=3, backoff=0.5),
        StepSpec("c", timeout=10.0, delay=0.1),
    ),
    # a first attempt that times out, then a retry that succeeds; then a plain step
    "timeout-retried": (
        StepSpec("t", max_attempts=2, backoff=0.2, timeout=1.0, slow_first=5.0),
        StepSpec("d"),
    ),
    # a durable sleep, and a retry backoff long enough to pause the run
    "durable": (
        StepSpec("a"),
        SleepSpec("nap", 5.0),
        StepSpec("b", fails=1, max_attempts=3, backoff=10.0),
    ),
    # non-durable work between steps: a's staged result is flushed on its own
    "wait-between": (StepSpec("a"), WaitSpec(0.5), StepSpec("b")),
}


# -- faults -------------------------------------------------------------------------------


@attrs.frozen
class FailFrom(Fault):
    """Fails every call matching `operation` / `key` from global call index `start` on;
    calls `on_limit` once it has fired `MAX_FIRES` times."""

    start: int = 0
    on_limit: Callable[[], None] | None = None
    fired: list[int] = attrs.field(factory=lambda: [0])

    def matches(self, call: StorageCall) -> bool:
        return call.index >= self.start and Fault.matches(self, call)

    def make_error(self, call: StorageCall) -> BaseException:
        self.fired[0] += 1
        if self.fired[0] >= MAX_FIRES and self.on_limit is not None:
            self.on_limit()
        return Fault.make_error(self, call)


FaultPlan = Callable[[FaultyStorage], list[Fault]]


def transient(call: StorageCall) -> FaultPlan:
    return lambda storage: [Fault(index=call.index)]


def permanent(call: StorageCall) -> FaultPlan:
    return lambda storage: [
        FailFrom(
            operation=call.operation, times=None, start=call.index, on_limit=storage.clear_faults
        )
    ]


def lost_reply(call: StorageCall) -> FaultPlan:
    return lambda storage: [Fault(index=call.index, after=True)]


# -- one scenario ----------------------------------------------------------------------------


@attrs.define
class Outcome:
    record: RunRecord | None
    outbox: list[Event]
    received: list[Event]
    undelivered: int
    executions: Counter[str]
    calls: list[StorageCall]
    fired: list[StorageCall]
    notes: list[str]


async def drive(
    te: TestEngine, inner: Storage, faulty: FaultyStorage, limit: float, notes: list[str]
) -> RunRecord | None:
    """Advance virtual time, wake-up by wake-up, until the run has ended or `limit`
    virtual seconds passed. Reads the run from the inner storage, so that it does
    not add calls to the faulty one. Stops early, with a note, if the engine keeps
    calling storage without ever waiting (a busy loop)."""
    end = te.clock.now() + limit
    busy = 0
    while True:
        await te.settle()
        record = inner.get_run(RUN_ID)
        now = te.clock.now()
        if busy > BUSY_CALLS:
            notes.append(f"busy loop: {busy} storage calls in one wake-up, at virtual time {now}")
            return record
        if (record is not None and record.status.is_terminal) or now >= end:
            return record
        wakeup = te.next_wakeup()
        before = len(faulty.calls)
        await te.advance(max(0.0, (end if wakeup is None else min(wakeup, end)) - now))
        busy = len(faulty.calls) - before


async def scenario(
    shape: Sequence[Spec], make_storage: Callable[[], Storage], plan: FaultPlan | None
) -> Outcome:
    executions = Executions()
    workflow = build(shape, executions)
    inner = make_storage()
    storage = FaultyStorage(inner)
    for fault in plan(storage) if plan else []:
        storage.add_fault(fault)
    notes: list[str] = []
    try:
        async with test_engine([workflow], storage=storage) as te:
            try:
                await te.engine.start(workflow, None, id=RUN_ID)
            except StorageError as exc:  # a fault in start's own storage calls
                notes.append(f"start raised {type(exc).__name__}")
            record = await drive(te, inner, storage, 2 * 3600.0, notes)
            notes.append(f"after the fault: {record.status if record else 'no run'}")
            storage.clear_faults()
            if record is None:
                await te.engine.start(workflow, None, id=RUN_ID)
            elif record.status is RunStatus.FAILED:
                error = json.loads(record.error_json or "{}")
                if error.get("type") == "StepInfrastructureError":
                    await te.engine.resume(RUN_ID)
                    notes.append("resumed")
            record = await drive(te, inner, storage, 3 * 3600.0, notes)
        outbox = [parse_event_json(row.payload_json) for row in inner.run_events(RUN_ID)]
        undelivered = len(inner.undelivered_events())
    finally:
        inner.close()
    return Outcome(
        record=record,
        outbox=outbox,
        received=list(te.tracker.events),
        undelivered=undelivered,
        executions=executions.counts,
        calls=storage.calls,
        fired=[call for call, _ in storage.fired],
        notes=notes,
    )


# -- what every scenario must satisfy ----------------------------------------------------------


def guarantee_and_delivery_problems(outcome: Outcome) -> list[str]:
    problems = [note for note in outcome.notes if note.startswith("busy loop")]
    problems += [f"outbox: {p}" for p in guarantee_problems(outcome.outbox)]
    problems += [f"tracker: {p}" for p in guarantee_problems(outcome.received)]
    outbox_ids = [e.event_id for e in outcome.outbox]
    received_ids = [e.event_id for e in dedupe(outcome.received)]
    if sorted(received_ids) != sorted(outbox_ids):
        missing = set(outbox_ids) - set(received_ids)
        problems.append(f"tracker missed {len(missing)} outbox events")
    if outcome.undelivered:
        problems.append(f"{outcome.undelivered} outbox events never delivered")
    # No completed step starts again.
    completed: set[str] = set()
    for event in dedupe(outcome.outbox):
        if event.type == "step.completed":
            completed.add(event.step_name)
        elif event.type == "step.started" and event.step_name in completed:
            problems.append(f"completed step {event.step_name!r} started again")
    return problems


def naming_problems(outcome: Outcome, shape: Sequence[Spec]) -> list[str]:
    """workflow.failed names the step in progress, and its attempt."""
    steps = {s.name for s in shape if isinstance(s, StepSpec)}
    faulted = [
        key.split(":", 1)[1]
        for call in outcome.fired
        for key in call.keys
        if key.startswith("PutEntry:") and key.split(":", 1)[1] in steps
    ]
    problems: list[str] = []
    current: tuple[str, int] | None = None
    for event in dedupe(outcome.outbox):
        if event.type == "step.started":
            current = (event.step_name, event.attempt)
        elif event.type == "step.completed":
            current = None
        elif event.type == "workflow.failed":
            named = (event.step_name, event.attempt)
            if current is not None:
                step, attempt = current
                if named[0] != step or named[1] not in (attempt, attempt + 1):
                    problems.append(f"workflow.failed names {named}; in progress: {current}")
            elif faulted and named[0] != faulted[0]:
                problems.append(f"workflow.failed names {named}; the fault hit step {faulted[0]}")
            current = None
    return problems


def completion_problems(outcome: Outcome, shape: Sequence[Spec]) -> list[str]:
    record = outcome.record
    if record is None or record.status is not RunStatus.COMPLETED:
        status = record.status if record else "no run"
        error = record.error_json if record else None
        return [f"did not complete after the fault cleared: {status} {error}"]
    problems = []
    result = json.loads(record.result_json or "null")
    if result != expected_result(shape):
        problems.append(f"result {result} != {expected_result(shape)}")
    started = Counter(e.step_name for e in dedupe(outcome.outbox) if e.type == "step.started")
    for name, count in outcome.executions.items():
        if count != started[name]:
            problems.append(f"step {name!r} ran {count} times for {started[name]} step.started")
    return problems


def report(failures: list[tuple[str, Outcome, list[str]]]) -> str:
    lines = [f"{len(failures)} scenario(s) broke the contract:"]
    for label, outcome, problems in failures:
        lines.append(f"- {label} [{'; '.join(outcome.notes)}]")
        lines += [f"    {p}" for p in problems]
    first = failures[0][1]
    lines.append("events of the first one:\n" + describe(dedupe(first.outbox)))
    return "\n".join(lines)


# -- the sweeps -------------------------------------------------------------------------------


def storage_factory(kind: str, tmp_path: Path) -> Callable[[], Storage]:
    if kind == "memory":
        return MemoryStorage
    numbers = itertools.count()
    return lambda: SqliteStorage(tmp_path / f"run-{next(numbers)}.db", synchronous="OFF")


async def sweep(
    shape: Sequence[Spec],
    make_storage: Callable[[], Storage],
    make_plan: Callable[[StorageCall], FaultPlan],
    checks: Callable[[Outcome], list[str]],
) -> tuple[int, list[tuple[str, Outcome, list[str]]]]:
    clean = await scenario(shape, make_storage, None)
    assert guarantee_and_delivery_problems(clean) == []
    assert completion_problems(clean, shape) == []
    failures = []
    for call in clean.calls:
        outcome = await scenario(shape, make_storage, make_plan(call))
        problems = checks(outcome)
        if problems:
            failures.append(
                (f"call #{call.index} {call.operation} {call.keys[:1]}", outcome, problems)
            )
    return len(clean.calls), failures


# MemoryStorage sweeps run on asyncio, SqliteStorage sweeps on trio: the engine is the
# same on both, and running each sweep twice would double the time.
@pytest.mark.parametrize(("storage_kind", "backend"), [("memory", "asyncio"), ("sqlite", "trio")])
@pytest.mark.parametrize("fault_kind", ["transient", "permanent"])
@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_every_storage_call_failing_keeps_the_guarantee_and_the_run_completes(
    shape_name: str, fault_kind: str, storage_kind: str, backend: str, tmp_path: Path
) -> None:
    shape = SHAPES[shape_name]
    make_plan = transient if fault_kind == "transient" else permanent

    def checks(outcome: Outcome) -> list[str]:
        return (
            guarantee_and_delivery_problems(outcome)
            + naming_problems(outcome, shape)
            + completion_problems(outcome, shape)
        )

    calls, failures = anyio.run(
        sweep, shape, storage_factory(storage_kind, tmp_path), make_plan, checks, backend=backend
    )
    assert calls > 20
    assert not failures, report(failures)


@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_lost_replies_keep_the_guarantee(shape_name: str) -> None:
    """A write that commits although the caller sees it fail (a lost reply): the
    engine cannot tell it from a crash after the commit, so an attempt may be counted
    that never ran; but the events must still pair up, and the run must end."""
    shape = SHAPES[shape_name]

    def checks(outcome: Outcome) -> list[str]:
        problems = guarantee_and_delivery_problems(outcome)
        if outcome.record is None or not outcome.record.status.is_terminal:
            status = outcome.record.status if outcome.record else "no run"
            problems.append(f"the run did not end: {status}")
        started = Counter(e.step_name for e in dedupe(outcome.outbox) if e.type == "step.started")
        for name, count in outcome.executions.items():
            if count > started[name]:
                problems.append(f"step {name!r} ran {count} times, {started[name]} step.started")
        return problems

    _, failures = anyio.run(sweep, shape, MemoryStorage, lost_reply, checks)
    assert not failures, report(failures)


# -- random workflows, random faults (hypothesis) ---------------------------------------------


@st.composite
def shapes(draw: st.DrawFn) -> tuple[Spec, ...]:
    specs: list[Spec] = []
    for i in range(draw(st.integers(1, 4))):
        if draw(st.booleans()) and i > 0:
            specs.append(SleepSpec(f"z{i}", draw(st.sampled_from([0.5, 30.0]))))
            continue
        fails = draw(st.integers(0, 1))
        timeout = draw(st.sampled_from([None, 2.0]))
        slow = draw(st.sampled_from([None, 5.0])) if timeout else None
        needed = fails + (1 if slow else 0) + 1
        specs.append(
            StepSpec(
                f"s{i}",
                fails=fails,
                max_attempts=needed + draw(st.integers(0, 1)),
                backoff=draw(st.sampled_from([0.0, 0.5, 30.0])),
                timeout=timeout,
                slow_first=slow,
            )
        )
    return tuple(specs)


@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(shape=shapes(), where=st.floats(0, 1, exclude_max=True), kind=st.booleans())
def test_random_workflows_under_a_random_fault(
    shape: tuple[Spec, ...], where: float, kind: bool
) -> None:
    async def one() -> list[str]:
        clean = await scenario(shape, MemoryStorage, None)
        assert completion_problems(clean, shape) == []
        call = clean.calls[int(where * len(clean.calls))]
        outcome = await scenario(shape, MemoryStorage, (transient if kind else permanent)(call))
        return (
            guarantee_and_delivery_problems(outcome)
            + naming_problems(outcome, shape)
            + completion_problems(outcome, shape)
        )

    problems = anyio.run(one)
    assert problems == [], f"{shape}: {problems}"


# -- targeted cases ---------------------------------------------------------------------------


TWO_STEPS = (StepSpec("a"), StepSpec("b"))


def call_index(calls: list[StorageCall], key: str, nth: int = 1) -> int:
    """The index of the `nth` apply call whose keys include `key`."""
    matching = [c.index for c in calls if c.operation == "apply" and key in c.keys]
    return matching[nth - 1]


@pytest.mark.anyio
async def test_a_failure_before_step_started_emits_no_step_event() -> None:
    clean = await scenario(TWO_STEPS, MemoryStorage, None)
    # The first write of step a's entry is its start (attempt number + step.started).
    index = call_index(clean.calls, "PutEntry:a")
    executions = Executions()
    workflow = build(TWO_STEPS, executions)
    storage = FaultyStorage(MemoryStorage(), [Fault(index=index)])
    async with test_engine([workflow], storage=storage) as te:
        await te.engine.start(workflow, None, id=RUN_ID)
        await te.settle()
        events = await te.engine.events(RUN_ID)
        assert await te.engine.status(RUN_ID) is RunStatus.FAILED
        with pytest.raises(wf.WorkflowFailedError) as raised:
            await te.engine.result(RUN_ID, timeout=5)
        assert [e.step_name for e in events if e.type.startswith("step.")] == []
        failed = [e for e in events if e.type == "workflow.failed"]
        assert [(e.step_name, e.attempt, e.error.phase) for e in failed] == [("a", 1, "before")]
        assert (raised.value.step_name, raised.value.attempt) == ("a", 1)
        assert raised.value.error_type == "StepInfrastructureError"
        assert executions.counts["a"] == 0
        await te.engine.resume(RUN_ID)
        assert await te.run_to_completion(RUN_ID) == ["a-ok", "b-ok"]
        events = await te.engine.events(RUN_ID)
    assert guarantee_problems(events) == [], describe(events)
    assert executions.counts == Counter({"a": 1, "b": 1})


@pytest.mark.anyio
async def test_a_failure_storing_the_result_is_step_failed_phase_after() -> None:
    """Step a's result is staged into step b's start transaction. When that fails, it
    is a's failure (phase `after`: a's result was not stored), and b never started:
    no event of b, and workflow.failed names a."""
    clean = await scenario(TWO_STEPS, MemoryStorage, None)
    index = call_index(clean.calls, "PutEntry:a", nth=2)  # a's completion
    assert index == call_index(clean.calls, "PutEntry:b")  # ... with b's start
    executions = Executions()
    workflow = build(TWO_STEPS, executions)
    storage = FaultyStorage(MemoryStorage(), [Fault(index=index)])
    async with test_engine([workflow], storage=storage) as te:
        await te.engine.start(workflow, None, id=RUN_ID)
        await te.settle()
        events = await te.engine.events(RUN_ID)
        assert guarantee_problems(events) == [], describe(events)
        step_events = [(e.type, e.attempt) for e in events if e.type.startswith("step.")]
        assert step_events == [("step.started", 1), ("step.failed", 1)]
        failed = next(e for e in events if e.type == "step.failed")
        assert failed.error.phase == "after"
        assert [e.type for e in events][-1] == "workflow.failed"
        assert (events[-1].step_name, events[-1].attempt) == ("a", 1)
        assert executions.counts["b"] == 0
        await te.engine.resume(RUN_ID)
        assert await te.run_to_completion(RUN_ID) == ["a-ok", "b-ok"]
        events = await te.engine.events(RUN_ID)
    assert guarantee_problems(events) == [], describe(events)
    # The result of attempt 1 was never stored: step a runs again, as attempt 2.
    assert [e.attempt for e in events if e.type == "step.completed" and e.step_name == "a"] == [2]
    assert executions.counts == Counter({"a": 2, "b": 1})


@pytest.mark.anyio
async def test_resuming_after_an_infrastructure_failure_is_not_a_crash_recovery() -> None:
    """Four storage hiccups in a row, each followed by `resume`: no process crashed,
    so the run must neither be reported as recovered from a crash nor end in
    CrashLoopError (max_crashes=3)."""
    executions = Executions()
    workflow = build(TWO_STEPS, executions)
    storage = FaultyStorage(MemoryStorage(), [Fault(operation="apply", key="PutEntry:b", times=4)])
    async with test_engine([workflow], storage=storage, max_crashes=3) as te:
        await te.engine.start(workflow, None, id=RUN_ID)
        for _ in range(4):
            await te.settle()
            record = storage.inner.get_run(RUN_ID)
            assert record is not None and record.status is RunStatus.FAILED
            await te.engine.resume(RUN_ID)
        assert await te.run_to_completion(RUN_ID) == ["a-ok", "b-ok"]
        record = storage.inner.get_run(RUN_ID)
        events = await te.engine.events(RUN_ID)
    types = [e.type for e in events]
    assert "workflow.recovered" not in types, describe(events)
    assert types.count("workflow.resumed") == 4
    assert record is not None and record.crash_count == 0


@pytest.mark.anyio
async def test_a_run_that_cannot_start_is_not_retried_in_a_busy_loop() -> None:
    """While storage refuses to record that the run is running, the engine tries
    again at its next scheduling round, not in a loop without delay."""
    workflow = build(TWO_STEPS, Executions())
    storage = FaultyStorage(
        MemoryStorage(), [Fault(operation="apply", key="UpdateRun", times=None)]
    )
    async with test_engine([workflow], storage=storage, poll_interval=60.0) as te:
        await te.engine.submit(workflow, None, id=RUN_ID)
        await te.settle()  # no virtual time passes
        attempts = len(storage.fired)
        storage.clear_faults()
        assert await te.run_to_completion(RUN_ID) == ["a-ok", "b-ok"]
    assert attempts <= 3, f"{attempts} attempts to start the run within one instant"


@pytest.mark.anyio
async def test_a_lease_release_that_fails_does_not_strand_a_paused_run() -> None:
    """The lease of a run that paused could not be released (one failed call): the
    engine must still wake the run when its timer is due."""
    shape = (StepSpec("a"), SleepSpec("nap", 600.0), StepSpec("b"))
    workflow = build(shape, Executions())
    storage = FaultyStorage(MemoryStorage(), [Fault(operation="release_lease")])
    async with test_engine([workflow], storage=storage) as te:
        await te.engine.start(workflow, None, id=RUN_ID)
        await te.settle()
        assert len(storage.fired) == 1
        assert await te.status(RUN_ID) is RunStatus.PAUSED
        await te.advance(3 * 3600.0)  # the nap was due after 600 s
        assert await te.status(RUN_ID) is RunStatus.COMPLETED


@pytest.mark.anyio
async def test_a_storage_fault_while_recording_a_durable_sleep_is_resumable() -> None:
    """A transient storage fault on the write of a durable sleep: like a fault around
    a step, the run can be resumed and completes once storage is back. (The sleep
    comes first: after a step, its write would also carry that step's result, and a
    fault there is the step's, phase `after`.)"""
    shape = (SleepSpec("nap", 600.0), StepSpec("a"), StepSpec("b"))
    executions = Executions()
    workflow = build(shape, executions)
    storage = FaultyStorage(MemoryStorage(), [Fault(operation="apply", key="PutEntry:nap")])
    async with test_engine([workflow], storage=storage) as te:
        await te.engine.start(workflow, None, id=RUN_ID)
        await te.settle()
        record = storage.inner.get_run(RUN_ID)
        assert record is not None
        if record.status is RunStatus.FAILED:
            await te.engine.resume(RUN_ID)
        assert await te.run_to_completion(RUN_ID) == ["a-ok", "b-ok"]
    assert executions.counts == Counter({"a": 1, "b": 1})


@pytest.mark.anyio
async def test_a_storage_outage_at_a_steps_completion_is_not_counted_as_a_crashed_attempt() -> None:
    """Storage fails from the write of step a's result on (so the abort record and
    workflow.failed cannot be written either) until it comes back. No process
    crashed: once storage is back the run must complete (step a, whose result was
    never stored, runs again), not fail because a crashed attempt used up a's only
    attempt."""
    clean = await scenario(TWO_STEPS, MemoryStorage, None)
    index = call_index(clean.calls, "PutEntry:a", nth=2)
    outcome = await scenario(TWO_STEPS, MemoryStorage, permanent(StorageCall(index, "apply", ())))
    assert guarantee_and_delivery_problems(outcome) == []
    assert completion_problems(outcome, TWO_STEPS) == [], describe(dedupe(outcome.outbox))
