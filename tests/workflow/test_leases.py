"""Run ownership: leases on one SQLite file shared by several engines.

- Two engines (two owners) in one process on one file, many runs: no run is executed
  by both at once; each step's side effect happens once per attempt, and attempt
  numbers are unique.
- Two engine processes on one file, many runs, one of them killed with SIGKILL: its
  runs are recovered by the other once their lease expires, and still no attempt
  runs twice or overlaps another.
- An engine whose storage is unreachable stops executing the runs it can no longer
  renew before another engine may take them over.
- An engine does not spin on a due timer of a run it does not serve.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Never

import anyio
import attrs
import pytest

import effect as fx
import workflow as wf
from tests.workflow.conftest import describe, guarantee_problems
from tests.workflow.test_crash import Worker
from tracker.events import Event, parse_event_json
from workflow.storage import MemoryStorage, RunStatus, SqliteStorage
from workflow.testing import Fault, FaultyStorage


@attrs.frozen
class Execution:
    run: str
    step: str
    owner: str
    began: float
    ended: float | None


def overlaps(
    executions: Sequence[Execution], killed_at: dict[str, float] | None = None
) -> list[str]:
    """Pairs of executions of one run by different owners that overlap in time. An
    execution that never ended (its process was killed) ends at the kill."""
    by_run: dict[str, list[Execution]] = defaultdict(list)
    for e in executions:
        by_run[e.run].append(e)
    found = []
    for run, group in by_run.items():
        for x in group:
            for y in group:
                if x.owner >= y.owner:
                    continue
                x_end = x.ended if x.ended is not None else (killed_at or {}).get(x.owner, 1e18)
                y_end = y.ended if y.ended is not None else (killed_at or {}).get(y.owner, 1e18)
                if x.began < y_end and y.began < x_end:
                    found.append(f"{run}: {x.owner} {x.step} and {y.owner} {y.step} overlap")
    return found


def attempt_problems(
    events_by_run: dict[str, list[Event]],
    ran: Counter[tuple[str, str]],
    killed_runs: frozenset[str] = frozenset(),
) -> list[str]:
    """Per (run, step): attempt numbers 1..n each started once, and the side effect
    ran once per started attempt. In `killed_runs` (runs a killed process held) one
    attempt may have no run of its effect: the kill can land after its start was
    committed and before the effect began."""
    problems = []
    for run, events in events_by_run.items():
        problems += [f"{run}: {p}" for p in guarantee_problems(events)]
        attempts: dict[str, list[int]] = defaultdict(list)
        for e in events:
            if e.type == "step.started":
                attempts[e.step_name].append(e.attempt)
        for step, numbers in attempts.items():
            if numbers != list(range(1, len(numbers) + 1)):
                problems.append(f"{run}/{step}: attempts {numbers}")
            allowed = {len(numbers), len(numbers) - 1} if run in killed_runs else {len(numbers)}
            if ran[(run, step)] not in allowed:
                problems.append(
                    f"{run}/{step}: side effect ran {ran[(run, step)]} times "
                    f"for {len(numbers)} started attempts"
                )
    return problems


# -- two engines in one process ---------------------------------------------------------------


def shared_workflow(owner: str, log: list[Execution], delay: float) -> wf.Workflow[str, Any, Any]:
    def effect(run: str, step: str) -> fx.Effect[str, Any, Any]:
        @fx.gen
        def body() -> fx.Gen[str, Any, Any]:
            began = time.monotonic()
            yield from fx.sleep(delay)
            log.append(Execution(run, step, owner, began, time.monotonic()))
            return f"{run}-{step}"

        return body

    @wf.workflow("shared")
    def shared(run: str) -> fx.Gen[list[str], Any, wf.WorkflowContext]:
        retry = wf.Retry(max_attempts=5, backoff=0.0)
        first = yield from wf.step("p1", effect(run, "p1"), retry=retry)
        second = yield from wf.step("p2", effect(run, "p2"), retry=retry)
        return [first, second]

    return shared


@pytest.mark.anyio
async def test_two_engines_on_one_file_never_execute_a_run_at_once(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    log: list[Execution] = []
    runs = [f"r{i}" for i in range(30)]
    storages = [SqliteStorage(db, synchronous="OFF") for _ in range(2)]
    engines = [
        wf.Engine(
            [shared_workflow(owner, log, 0.02)],
            storage=storage,
            owner=owner,
            poll_interval=0.01,
            lease_ttl=5.0,
        )
        for owner, storage in zip(("A", "B"), storages, strict=True)
    ]
    async with engines[0] as a, engines[1] as b:
        for i, run in enumerate(runs):
            await (a if i % 2 else b).submit("shared", run, id=run)
            await anyio.sleep(0.003)
        with anyio.fail_after(30):
            while [r.status for r in await a.list(limit=1000)] != [RunStatus.COMPLETED] * len(runs):
                await anyio.sleep(0.02)
        events = {run: await a.events(run) for run in runs}
    for storage in storages:
        storage.close()
    assert overlaps(log) == []
    ran = Counter((e.run, e.step) for e in log)
    assert attempt_problems(events, ran) == []
    # Without crashes every step ran exactly once, each run on one engine.
    assert set(ran.values()) == {1}
    owners_of = {run: {e.owner for e in log if e.run == run} for run in runs}
    assert all(len(owners) == 1 for owners in owners_of.values()), owners_of
    print(f"\n[leases] runs per owner: {Counter(next(iter(o)) for o in owners_of.values())}")


@pytest.mark.anyio
@pytest.mark.usefixtures("quiet_engine")
async def test_an_engine_that_cannot_renew_its_leases_stops_before_another_takes_over(
    tmp_path: Path,
) -> None:
    """Engine A loses its storage in the middle of a step (a network partition, a
    full disk): it cannot renew its lease, so after lease_ttl engine B takes the run
    over. A must have stopped executing the run by then, or its attempt overlaps B's
    (the engine docstring: engines sharing a database never run the same run at
    once). A's late writes are refused either way (commits are fenced by the lease)."""
    db = tmp_path / "shared.db"
    log: list[Execution] = []
    storage_a = FaultyStorage(SqliteStorage(db, synchronous="OFF"))
    storage_b = SqliteStorage(db, synchronous="OFF")
    slow = 1.0  # each attempt of each step
    async with wf.Engine(
        [shared_workflow("A", log, slow)],
        storage=storage_a,
        owner="A",
        poll_interval=0.05,
        lease_ttl=0.3,
    ) as a:
        await a.start("shared", "r0", id="r0")
        await anyio.sleep(0.1)  # A is inside step p1
        storage_a.add_fault(Fault(times=None))  # A's storage is gone
        async with wf.Engine(
            [shared_workflow("B", log, slow)],
            storage=storage_b,
            owner="B",
            poll_interval=0.05,
            lease_ttl=0.3,
        ) as b:
            with anyio.fail_after(20):
                while (await b.status("r0")) is not RunStatus.COMPLETED:
                    await anyio.sleep(0.05)
            storage_a.clear_faults()
            events = await b.events("r0")
    storage_b.close()
    storage_a.inner.close()
    assert guarantee_problems(events) == [], describe(events)
    assert [e.type for e in events].count("workflow.completed") == 1
    assert overlaps(log) == [], log


@pytest.mark.anyio
async def test_an_engine_does_not_spin_on_a_due_timer_of_a_run_it_does_not_serve() -> None:
    """A paused run of workflow "napper" is due, but the only engine up serves other
    workflows: it must wait for its next poll, not loop without waiting."""

    @wf.workflow("napper")
    def napper(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        yield from wf.sleep("nap", 0.2)
        return "rested"

    @wf.workflow("other")
    def other(_: None) -> fx.Gen[str, Any, wf.WorkflowContext]:
        return "other"
        yield  # pragma: no cover

    shared = MemoryStorage()
    async with wf.Engine([napper], storage=shared, in_memory_wait=0.05, poll_interval=0.1) as host:
        run_id = await host.start(napper, None)
        with anyio.fail_after(5):  # paused within a few ms; slower on a loaded machine
            while await host.status(run_id) is not RunStatus.PAUSED:
                await anyio.sleep(0.01)
    counting = FaultyStorage(shared)
    async with wf.Engine([other], storage=counting, poll_interval=0.1):
        await anyio.sleep(0.8)  # the nap is due after 0.2 s
    record = shared.get_run(run_id)
    assert record is not None
    assert record.status is RunStatus.PAUSED  # not this engine's to run
    # About 8 scheduling rounds of a few calls each; a busy loop makes thousands.
    assert len(counting.calls) < 200, Counter(c.operation for c in counting.calls)


# -- two engine processes, one killed ------------------------------------------------------------


def read_log(path: Path) -> list[tuple[str, str, str, int, float]]:
    rows = []
    if not path.exists():
        return rows
    for line in path.read_text().splitlines():
        what, run, step, pid, at = line.split()
        rows.append((what, run, step, int(pid), float(at)))
    return rows


def test_two_processes_share_runs_and_recover_a_killed_ones_runs_after_its_lease(
    tmp_path: Path,
) -> None:
    db, effects = tmp_path / "shared.db", tmp_path / "effects.txt"
    total = 30
    common = (
        *("--effects", str(effects), "--step-delay", "0.3", "--lease-ttl", "1.0"),
        *("--poll", "0.05", "--stride", "2", "--submit-gap", "0.01", "--deadline", "40"),
    )
    victim = Worker("many", str(db), "owner-a", str(total), "--first", "0", *common)
    survivor = Worker("many", str(db), "owner-b", str(total), "--first", "1", *common)
    for worker in (victim, survivor):
        while (item := worker.next_line(30.0)) not in (None, "TIMEOUT"):
            assert isinstance(item, tuple)
            if item[1] == "UP":
                break
        else:
            worker.kill()
            worker.finish()
            pytest.fail(
                f"worker did not come up ({item}): {worker.output}; stderr: {worker.stderr}"
            )
    # Kill the victim once it has finished a few steps, with others in flight.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done = [r for r in read_log(effects) if r[0] == "END" and r[3] == victim.proc.pid]
        if len(done) >= 3:
            break
        time.sleep(0.02)
    killed_at = time.time()
    victim.kill()
    assert victim.finish() < 0
    ended = None
    while (item := survivor.next_line(45.0)) not in (None, "TIMEOUT"):
        assert isinstance(item, tuple)
        if item[1].startswith("ALLDONE"):
            ended = item[1]
    assert survivor.finish() == 0, survivor.stderr
    assert ended == f"ALLDONE {total}", survivor.output

    victim_pid, survivor_pid = victim.proc.pid, survivor.proc.pid
    rows = read_log(effects)
    owner = {victim_pid: "A", survivor_pid: "B"}
    begun: dict[tuple[str, str, int], float] = {}
    executions: list[Execution] = []
    for what, run, step, pid, at in rows:
        if what == "BEGIN":
            begun[(run, step, pid)] = at
        else:
            executions.append(Execution(run, step, owner[pid], begun.pop((run, step, pid)), at))
    unfinished = [
        Execution(run, step, owner[pid], at, None) for (run, step, pid), at in begun.items()
    ]
    assert {e.owner for e in unfinished} <= {"A"}  # only the killed process left work open
    assert overlaps(executions + unfinished, killed_at={"A": killed_at}) == []

    with SqliteStorage(db) as storage:
        records = storage.list_runs(limit=1000)
        events = {
            r.run_id: [parse_event_json(x.payload_json) for x in storage.run_events(r.run_id)]
            for r in records
        }
    assert len(records) == total
    assert {r.status for r in records} == {RunStatus.COMPLETED}
    ran = Counter((run, step) for what, run, step, _, _ in rows if what == "BEGIN")
    recovered = [e for evs in events.values() for e in evs if e.type == "workflow.recovered"]
    killed_runs = frozenset(e.workflow_id for e in recovered)
    assert attempt_problems(events, ran, killed_runs) == []
    print(
        f"\n[leases] {len(unfinished)} attempts open at the kill; {len(recovered)} runs "
        f"recovered by the survivor; executions by owner: {Counter(e.owner for e in executions)}"
    )
    assert unfinished, "the victim was killed with no step in flight: nothing to recover"
    assert {e.owner for e in executions} == {"A", "B"}, "the processes did not share the runs"
    assert recovered and {e.previous_owner for e in recovered} == {"owner-a"}
    # Recovered only once the lease (1 s) ran out.
    for e in executions:
        if e.owner == "B" and any(u.run == e.run for u in unfinished):
            assert e.began >= killed_at + 0.5


# -- the crash counter ------------------------------------------------------------------


@pytest.mark.anyio
async def test_crashes_separated_by_progress_are_not_a_crash_loop(tmp_path: Path) -> None:
    """max_crashes=1, and an engine "dies" (its storage goes away for good) in step a,
    then another in step b. A crash loop is crashing again without progress: a's
    result, stored between the two crashes, resets the count, so the run completes.
    A step that crashes every engine still fails (the documented poison example)."""
    shared = SqliteStorage(tmp_path / "wf.db", synchronous="OFF")
    crashed: set[str] = set()

    def flow(doomed: FaultyStorage) -> wf.Workflow[None, list[str], Any]:
        def crash_once(step: str) -> fx.Effect[str, Never, Never]:
            def run() -> str:
                if step not in crashed:
                    crashed.add(step)
                    doomed.add_fault(Fault(times=None))  # this engine is gone
                return f"{step}-ok"

            return fx.sync(run)

        @wf.workflow("twice")
        def twice(_: None) -> fx.Gen[list[str], wf.StepFailedError, wf.WorkflowContext]:
            retry = wf.Retry(max_attempts=3, backoff=0)
            a = yield from wf.step("a", crash_once("a"), retry=retry)
            b = yield from wf.step("b", crash_once("b"), retry=retry)
            return [a, b]

        return twice

    for owner in ("A", "B"):
        doomed = FaultyStorage(shared)
        engine = wf.Engine(
            [flow(doomed)], storage=doomed, owner=owner, lease_ttl=0.1, max_crashes=1
        )
        async with engine:
            if owner == "A":
                await engine.start("twice", None, id="r")
            with anyio.fail_after(10):
                while not doomed.faults:
                    await anyio.sleep(0.01)
        await anyio.sleep(0.2)  # its lease runs out
    async with wf.Engine(
        [flow(FaultyStorage(shared))], storage=shared, owner="C", max_crashes=1
    ) as engine:
        assert await engine.result("r", timeout=10) == ["a-ok", "b-ok"]
        events = await engine.events("r")
    recovered = [e.crash_count for e in events if e.type == "workflow.recovered"]
    assert recovered == [1, 1], describe(events)
    assert guarantee_problems(events) == [], describe(events)
    record = shared.get_run("r")
    assert record is not None and record.crash_count == 0
    shared.close()
