"""How the engine writes, on a real SQLite file and the real clock: one transaction
per step (a step's result rides with the next step's start), transactions shared by
concurrent runs (group commit), and a staged result stored as soon as its run waits
on anything else. Both anyio backends.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Never

import anyio
import pytest

import effect as fx
import workflow as wf
from tracker import InMemoryTracker, in_memory
from workflow._group_commit import GroupCommit
from workflow.storage import (
    InsertRun,
    MemoryStorage,
    Op,
    RunExistsError,
    RunRecord,
    RunStatus,
    SqliteStorage,
    StorageError,
)

pytestmark = pytest.mark.anyio


class CountingSqlite(SqliteStorage):
    """SqliteStorage that counts its write transactions and the writes in each."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="OFF")
        self.transactions: list[int] = []

    def apply(self, ops: Sequence[Op]) -> None:
        self.transactions.append(1)
        super().apply(ops)

    def apply_each(self, batches: Sequence[Sequence[Op]]) -> list[Exception | None]:
        self.transactions.append(len(batches))
        return super().apply_each(batches)


def chain(name: str, between: float = 0.0) -> wf.Workflow[int, int, Any]:
    @wf.workflow(name)
    def run(n: int) -> fx.Gen[int, wf.StepFailedError, wf.WorkflowContext]:
        total = 0
        for i in range(n):
            total += yield from wf.step(f"s{i}", fx.succeed(i))
            if between:
                yield from fx.sleep(between)
        return total

    return run


async def test_a_step_costs_one_transaction(tmp_path: Path) -> None:
    storage = CountingSqlite(tmp_path / "wf.db")
    workflow = chain("ten")
    async with wf.Engine([workflow], storage=storage) as engine:
        run_id = await engine.start(workflow, 10)
        assert await engine.result(run_id, timeout=10) == 45
        events = await engine.events(run_id)
    # insert, opening (running + workflow.started), one per step (its start, carrying
    # the result of the step before), the end (carrying the last step's result)
    assert len(storage.transactions) == 1 + 1 + 10 + 1
    assert [e.type for e in events].count("step.completed") == 10


async def test_concurrent_runs_share_transactions(tmp_path: Path) -> None:
    storage = CountingSqlite(tmp_path / "wf.db")
    workflow = chain("three")
    async with wf.Engine([workflow], storage=storage) as engine:

        async def start(k: int) -> None:
            await engine.start(workflow, 3, id=f"run-{k}")

        async with anyio.create_task_group() as tg:
            for k in range(40):
                tg.start_soon(start, k)
        for k in range(40):
            assert await engine.result(f"run-{k}", timeout=30) == 3
    writes = sum(storage.transactions)
    assert writes == 40 * (1 + 1 + 3 + 1)
    # Started together, the runs move in lockstep: each step's writes of all of them
    # (or most: the first ones may go before the others arrive) share a transaction.
    assert len(storage.transactions) <= writes / 5, storage.transactions
    assert max(storage.transactions) >= 20


async def test_a_step_result_is_stored_when_the_run_waits(tmp_path: Path) -> None:
    """After step s0 the workflow sleeps in memory (not a durable primitive, so no
    commit of its own): s0's staged result must not wait for s1's start."""
    storage = CountingSqlite(tmp_path / "wf.db")
    workflow = chain("waits", between=2.0)
    async with wf.Engine([workflow], storage=storage) as engine:
        run_id = await engine.start(workflow, 2)
        with anyio.fail_after(5):
            while not [e for e in storage.load_history(run_id) if e.status == "completed"]:
                await anyio.sleep(0.01)
        history = storage.load_history(run_id)
        assert [(e.location, e.status) for e in history] == [("s0", "completed")]
        types = [e.type for e in await engine.events(run_id)]
        assert types[-1] == "step.completed"
        await engine.cancel(run_id, "enough")


async def test_group_commit_fails_writes_alone_and_refuses_them_once_stopped() -> None:
    storage = MemoryStorage()
    group = GroupCommit(storage)

    def insert(run_id: str) -> list[Op]:
        return [InsertRun(RunRecord(run_id, "wf", "{}", RunStatus.QUEUED, 0.0, 0.0))]

    @fx.gen
    def program() -> fx.Gen[list[object], Never, Never]:
        writer = yield from group.run().fork()
        outcomes = yield from fx.all(
            [group.write(insert(r)).either() for r in ("a", "b", "a")], concurrency="unbounded"
        )
        yield from writer.interrupt()
        late = yield from group.write(insert("c")).either()
        return [*outcomes, late]

    a, b, again, late = await fx.run(program)
    assert a.unwrap() is None and b.unwrap() is None
    assert isinstance(again.failure(), RunExistsError)  # alone: a and b are stored
    assert isinstance(late.failure(), StorageError)  # not a hang
    assert {r.run_id for r in storage.list_runs()} == {"a", "b"}


class CountingReads(CountingSqlite):
    """CountingSqlite that also counts the outbox sender's reads."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.reads = 0

    def undelivered_events(self, limit: int = 1000, after_id: int = 0) -> Any:
        self.reads += 1
        return super().undelivered_events(limit, after_id)


@pytest.mark.parametrize("linger", [0.0, 0.05])
async def test_the_sender_lingers_to_send_many_commits_at_once(
    tmp_path: Path, linger: float
) -> None:
    """Without a linger the sender reads the outbox after every commit; lingering
    50 ms, it reads the commits of many steps at once. Either way every event is
    delivered, in order."""
    storage = CountingReads(tmp_path / "wf.db")
    workflow = chain("forty")
    seen = InMemoryTracker()
    async with wf.Engine(
        [workflow], storage=storage, tracker=in_memory(seen), delivery_linger=linger
    ) as engine:
        run_id = await engine.start(workflow, 40)
        assert await engine.result(run_id, timeout=10) == 780
        reads_during_run = storage.reads
    assert [e.seq for e in seen.events] == list(range(2 * 40 + 3))
    if linger:
        assert reads_during_run < 15, reads_during_run
    else:
        assert reads_during_run >= 40, reads_during_run


@pytest.mark.parametrize("linger", [-0.1, float("inf"), float("nan")])
def test_the_linger_must_be_a_finite_non_negative_number(linger: float) -> None:
    with pytest.raises(ValueError, match="delivery_linger="):
        wf.Engine([chain("x")], storage=MemoryStorage(), delivery_linger=linger)
