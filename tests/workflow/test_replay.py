"""Replay determinism: re-running a finished run's code against its history.

A replay builds the run's `RunContext` from its stored history (as the engine does
for each execution) and runs the workflow's effect with it, on storage that refuses
every write. It must give the run's result (or its failure) again, visit every
history entry, and run no step and write nothing. Hypothesis generates random
workflows (steps failing some times then succeeding, or for good; timeouts; short
and long retry delays; short and long sleeps): each runs on virtual time to the
outcome and the virtual duration the contract implies, and its replay agrees.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import effect as fx
import workflow as wf
from tests.workflow.conftest import (
    Executions,
    SleepSpec,
    Spec,
    StepSpec,
    build,
    expected_outcome,
    expected_result,
    guarantee_problems,
)
from workflow import codec
from workflow.context import RunContext, WorkflowContext
from workflow.storage import MemoryStorage, RunStatus, SqliteStorage, Storage
from workflow.testing import Fault, FaultyStorage, test_engine


async def replay(
    workflow: wf.Workflow[Any, Any, Any], storage: Storage, run_id: str
) -> tuple[fx.Exit[Any, Any], RunContext, FaultyStorage]:
    """Run `workflow` against the stored history of `run_id`, writes refused."""
    record = storage.get_run(run_id)
    assert record is not None
    read_only = FaultyStorage(storage, [Fault(operation="apply", times=None)])
    ctx = RunContext(
        run_id=run_id,
        workflow_name=record.workflow_name,
        storage=read_only,
        owner="replayer",
        history=storage.load_history(run_id),
        next_seq=record.next_seq,
        now=lambda: 0.0,
        in_memory_wait=0.0,
        on_commit=lambda events: None,
    )
    effect = workflow(codec.decode(record.input_json)).provide_service(WorkflowContext, ctx)
    return await fx.run_exit(effect), ctx, read_only


def assert_faithful_replay(
    exit: fx.Exit[Any, Any], ctx: RunContext, read_only: FaultyStorage, storage: Storage
) -> None:
    record = storage.get_run(ctx.run_id)
    assert record is not None
    assert read_only.fired == [], "the replay tried to write"
    assert ctx.unvisited() == [], "the replay left history entries unvisited"
    if record.status is RunStatus.COMPLETED:
        assert isinstance(exit, fx.Success), exit
        assert exit.value == codec.decode(record.result_json or "null")
    else:
        assert record.status is RunStatus.FAILED
        assert isinstance(exit, fx.Failure)
        errors = exit.cause.failures()
        assert len(errors) == 1 and isinstance(errors[0], wf.StepFailedError), exit.cause
        stored = json.loads(record.error_json or "{}")
        assert (errors[0].step_name, errors[0].attempt) == (stored["step_name"], stored["attempt"])


MIXED: tuple[Spec, ...] = (
    StepSpec("fetch", fails=2, max_attempts=3, backoff=0.5),
    SleepSpec("short", 0.5),
    StepSpec("slow", max_attempts=2, timeout=2.0, slow_first=5.0),
    SleepSpec("long", 3600.0),
    StepSpec("charge", fails=1, max_attempts=2, backoff=30.0),
    StepSpec("ship"),
)


@pytest.mark.anyio
async def test_replaying_a_completed_run_returns_its_result_and_runs_nothing() -> None:
    executions = Executions()
    workflow = build(MIXED, executions)
    storage = MemoryStorage()
    async with test_engine([workflow], storage=storage) as te:
        run_id = await te.engine.start(workflow, None)
        assert await te.run_to_completion(run_id) == expected_result(MIXED)
    ran = dict(executions.counts)
    assert ran == {"fetch": 3, "slow": 2, "charge": 2, "ship": 1}
    exit, ctx, read_only = await replay(workflow, storage, run_id)
    assert_faithful_replay(exit, ctx, read_only, storage)
    assert exit.value == expected_result(MIXED)  # type: ignore[union-attr]
    assert dict(executions.counts) == ran  # nothing ran again


@pytest.mark.anyio
async def test_a_second_process_reading_the_sqlite_file_replays_without_running(
    tmp_path: Path,
) -> None:
    db = tmp_path / "runs.db"
    first = Executions()
    with SqliteStorage(db) as storage:
        async with test_engine([build(MIXED, first)], storage=storage) as te:
            run_id = await te.engine.start("shape", None)
            await te.run_to_completion(run_id)
    # Another "process": a new connection to the file, the workflow's steps
    # instrumented afresh.
    second = Executions()
    instrumented = build(MIXED, second)
    with SqliteStorage(db) as storage:
        exit, ctx, read_only = await replay(instrumented, storage, run_id)
        assert_faithful_replay(exit, ctx, read_only, storage)
    assert sum(second.counts.values()) == 0
    assert sum(first.counts.values()) == 8


@pytest.mark.anyio
async def test_replaying_a_failed_run_fails_the_same_way_and_runs_nothing() -> None:
    shape: tuple[Spec, ...] = (
        StepSpec("ok"),
        StepSpec("doomed", fails=9, max_attempts=3, backoff=0.1),
        StepSpec("never"),
    )
    executions = Executions()
    workflow = build(shape, executions)
    storage = MemoryStorage()
    async with test_engine([workflow], storage=storage) as te:
        run_id = await te.engine.start(workflow, None)
        with pytest.raises(wf.WorkflowFailedError):
            await te.run_to_completion(run_id)
    ran = dict(executions.counts)
    assert ran == {"ok": 1, "doomed": 3}
    exit, ctx, read_only = await replay(workflow, storage, run_id)
    assert_faithful_replay(exit, ctx, read_only, storage)
    assert dict(executions.counts) == ran


@st.composite
def workflows(draw: st.DrawFn) -> tuple[Spec, ...]:
    specs: list[Spec] = []
    for i in range(draw(st.integers(1, 6))):
        if i > 0 and draw(st.integers(0, 3)) == 0:
            specs.append(SleepSpec(f"z{i}", draw(st.sampled_from([0.0, 0.5, 90.0, 86_400.0]))))
            continue
        timeout = draw(st.sampled_from([None, None, 2.0]))
        specs.append(
            StepSpec(
                f"s{i}",
                fails=draw(st.integers(0, 3)),
                max_attempts=draw(st.integers(1, 4)),
                backoff=draw(st.sampled_from([0.0, 0.25, 45.0, 3600.0])),
                timeout=timeout,
                slow_first=draw(st.sampled_from([None, 1.0, 5.0])) if timeout else None,
                delay=draw(st.sampled_from([0.0, 0.0, 0.5])),
            )
        )
    return tuple(specs)


async def run_and_replay(shape: tuple[Spec, ...], backend_label: str) -> None:
    executions = Executions()
    workflow = build(shape, executions)
    storage = MemoryStorage()
    completes, duration = expected_outcome(shape)
    async with test_engine([workflow], storage=storage, start_time=1_000.0) as te:
        run_id = await te.engine.start(workflow, None)
        try:
            result = await te.run_to_completion(run_id, max_virtual_seconds=10 * 86_400)
        except wf.WorkflowFailedError:
            result = None
        elapsed = te.clock.now() - 1_000.0
        events = await te.engine.events(run_id)
    record = storage.get_run(run_id)
    assert record is not None
    label = f"{backend_label}: {shape}"
    assert guarantee_problems(events) == [], label
    if completes:
        assert record.status is RunStatus.COMPLETED, (label, record.error_json)
        assert result == expected_result(shape), label
    else:
        assert record.status is RunStatus.FAILED, label
        assert json.loads(record.error_json or "{}")["type"] == "StepFailedError", label
    assert elapsed == pytest.approx(duration), label
    ran = dict(executions.counts)
    exit, ctx, read_only = await replay(workflow, storage, run_id)
    assert_faithful_replay(exit, ctx, read_only, storage)
    assert dict(executions.counts) == ran, label


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(shape=workflows())
def test_random_workflows_end_as_the_contract_says_and_replay_faithfully(
    backend: str, shape: tuple[Spec, ...]
) -> None:
    anyio.run(run_and_replay, shape, backend, backend=backend)
