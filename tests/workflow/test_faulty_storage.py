"""Tests for `FaultyStorage`: which calls its faults select, how often, and when."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from workflow.storage import (
    AppendEvents,
    HistoryEntry,
    InsertRun,
    MemoryStorage,
    Op,
    PutEntry,
    RunRecord,
    RunStatus,
    SqliteStorage,
    Storage,
    StorageError,
    UpdateRun,
)
from workflow.testing import Fault, FaultyStorage
from workflow.testing.faulty_storage import OPERATIONS, InjectedStorageFault, StorageCall


def record(run_id: str) -> RunRecord:
    return RunRecord(run_id, "wf", "{}", RunStatus.QUEUED, 1.0, 1.0)


def step(run_id: str, location: str) -> PutEntry:
    return PutEntry(HistoryEntry(run_id, location, "step", "started", 0))


@pytest.fixture
def faulty() -> FaultyStorage:
    storage = FaultyStorage(MemoryStorage())
    storage.apply([InsertRun(record("r1")), InsertRun(record("r2"))])
    storage.reset_calls()
    return storage


def test_is_a_storage(faulty: FaultyStorage) -> None:
    assert isinstance(faulty, Storage)


def test_records_every_call_with_keys(faulty: FaultyStorage) -> None:
    faulty.apply(
        [
            UpdateRun("r1", {"status": RunStatus.RUNNING}),
            step("r1", "loop/3/charge"),
            AppendEvents("r1", [(0, "{}")]),
            InsertRun(record("r3")),
        ]
    )
    faulty.get_run("r2")
    faulty.claimable_runs(now=0.0)
    assert faulty.calls == [
        StorageCall(
            0,
            "apply",
            (
                "UpdateRun:r1",
                "PutEntry:loop/3/charge",
                "AppendEvents:r1",
                "InsertRun:r3",
                "r1",
                "r3",
            ),
        ),
        StorageCall(1, "get_run", ("r2",)),
        StorageCall(2, "claimable_runs", ()),
    ]
    faulty.reset_calls()
    faulty.next_wake_at()
    assert faulty.calls == [StorageCall(0, "next_wake_at", ())]


def test_a_before_fault_raises_and_writes_nothing(faulty: FaultyStorage) -> None:
    faulty.add_fault(Fault(operation="apply"))
    with pytest.raises(InjectedStorageFault) as info:
        faulty.apply([InsertRun(record("r3")), step("r1", "charge")])
    assert isinstance(info.value, StorageError)
    assert info.value.operation == "apply"
    assert info.value.call.index == 0
    assert str(info.value) == (
        "injected storage fault in apply (call #0, keys: InsertRun:r3, PutEntry:charge, r3, r1)"
    )
    assert faulty.inner.get_run("r3") is None
    assert faulty.inner.load_history("r1") == []


def test_a_before_fault_writes_nothing_to_sqlite(tmp_path: Path) -> None:
    with SqliteStorage(tmp_path / "wf.db") as inner:
        faulty = FaultyStorage(inner, [Fault(key="InsertRun:r1")])
        with pytest.raises(InjectedStorageFault):
            faulty.apply([InsertRun(record("r1"))])
        assert inner.get_run("r1") is None
        faulty.apply([InsertRun(record("r1"))])
        assert inner.get_run("r1") == record("r1")


def test_an_after_fault_writes_then_raises(faulty: FaultyStorage) -> None:
    faulty.add_fault(Fault(operation="apply", after=True))
    with pytest.raises(InjectedStorageFault, match="after the call went through") as info:
        faulty.apply([InsertRun(record("r3"))])
    assert info.value.after
    assert faulty.get_run("r3") == record("r3")


def test_after_fault_on_a_read_still_hides_the_result(faulty: FaultyStorage) -> None:
    faulty.add_fault(Fault(operation="try_claim", after=True))
    with pytest.raises(InjectedStorageFault):
        faulty.try_claim("r1", "a", now=0.0, ttl=5.0)
    # The claim happened: the caller owns a lease it never heard about.
    assert faulty.get_run("r1").lease_owner == "a"  # type: ignore[union-attr]


def test_transient_permanent_and_counted_faults(faulty: FaultyStorage) -> None:
    faulty.add_fault(Fault(operation="get_run"))
    with pytest.raises(InjectedStorageFault):
        faulty.get_run("r1")
    assert faulty.get_run("r1") is not None
    assert faulty.faults == []

    faulty.add_fault(Fault(operation="get_run", times=2))
    for _ in range(2):
        with pytest.raises(InjectedStorageFault):
            faulty.get_run("r1")
    assert faulty.get_run("r1") is not None

    faulty.add_fault(Fault(operation="get_run", times=None))
    for _ in range(5):
        with pytest.raises(InjectedStorageFault):
            faulty.get_run("r1")
    faulty.clear_faults()
    assert faulty.get_run("r1") is not None


def test_match_by_index(faulty: FaultyStorage) -> None:
    faulty.add_fault(Fault(index=2))
    faulty.get_run("r1")
    faulty.list_runs()
    with pytest.raises(InjectedStorageFault, match="call #2"):
        faulty.load_history("r1")
    faulty.load_history("r1")


@pytest.mark.parametrize(
    ("key", "hits"),
    [
        ("PutEntry:charge", [True, False, False]),
        ("charge", [True, True, False]),
        ("r2", [False, False, True]),
        ("UpdateRun:", [False, False, True]),
    ],
)
def test_match_by_key_substring(faulty: FaultyStorage, key: str, hits: list[bool]) -> None:
    faulty.add_fault(Fault(key=key, times=None))
    batches: list[list[Op]] = [
        [step("r1", "charge")],
        [step("r1", "loop/3/charge")],
        [UpdateRun("r2", {"crash_count": 1})],
    ]
    for batch, hit in zip(batches, hits, strict=True):
        if hit:
            with pytest.raises(InjectedStorageFault):
                faulty.apply(batch)
        else:
            faulty.apply(batch)


def test_key_matches_run_ids_of_reads(faulty: FaultyStorage) -> None:
    faulty.add_fault(Fault(key="r2", times=None))
    faulty.get_run("r1")
    faulty.list_runs()  # no keys: a key rule never matches it
    with pytest.raises(InjectedStorageFault):
        faulty.get_run("r2")
    with pytest.raises(InjectedStorageFault):
        faulty.release_lease("r2", "a")


def test_all_criteria_must_hold(faulty: FaultyStorage) -> None:
    faulty.add_fault(Fault(operation="apply", key="r2", times=None))
    faulty.get_run("r2")  # right key, wrong operation
    faulty.apply([UpdateRun("r1", {"crash_count": 1})])  # right operation, wrong key
    with pytest.raises(InjectedStorageFault):
        faulty.apply([UpdateRun("r2", {"crash_count": 1})])


def test_first_matching_fault_fires_alone(faulty: FaultyStorage) -> None:
    first = Fault(operation="get_run", error=lambda call: TimeoutError(call.index))
    second = Fault(operation="get_run")
    faulty.add_fault(first)
    faulty.add_fault(second)
    with pytest.raises(TimeoutError):
        faulty.get_run("r1")
    with pytest.raises(InjectedStorageFault):
        faulty.get_run("r1")
    assert faulty.get_run("r1") is not None
    assert [(call.index, fault) for call, fault in faulty.fired] == [(0, first), (1, second)]


def test_custom_error_receives_the_call(faulty: FaultyStorage) -> None:
    seen: list[StorageCall] = []

    def boom(call: StorageCall) -> BaseException:
        seen.append(call)
        return ConnectionResetError("disk went away")

    faulty.add_fault(Fault(operation="mark_delivered", error=boom))
    with pytest.raises(ConnectionResetError):
        faulty.mark_delivered([1])
    assert seen == [StorageCall(0, "mark_delivered", ())]


def test_faults_given_at_construction() -> None:
    faulty = FaultyStorage(MemoryStorage(), [Fault(operation="next_wake_at")])
    with pytest.raises(InjectedStorageFault):
        faulty.next_wake_at()
    assert faulty.next_wake_at() is None


def test_invalid_faults_are_rejected() -> None:
    with pytest.raises(ValueError, match="'aply' is not a Storage method"):
        Fault(operation="aply")
    with pytest.raises(ValueError, match="times must be >= 1"):
        Fault(times=0)


CALLS: dict[str, Callable[[Storage], Any]] = {
    "apply": lambda s: s.apply([UpdateRun("r1", {"crash_count": 1})]),
    "get_run": lambda s: s.get_run("r1"),
    "list_runs": lambda s: s.list_runs(RunStatus.QUEUED, "wf", 5),
    "load_history": lambda s: s.load_history("r1"),
    "undelivered_events": lambda s: s.undelivered_events(5),
    "mark_delivered": lambda s: s.mark_delivered([1]),
    "run_events": lambda s: s.run_events("r1"),
    "try_claim": lambda s: s.try_claim("r1", "a", 0.0, 5.0),
    "renew_leases": lambda s: s.renew_leases("a", 0.0, 5.0),
    "release_lease": lambda s: s.release_lease("r1", "a"),
    "claimable_runs": lambda s: s.claimable_runs(0.0, 5),
    "next_wake_at": lambda s: s.next_wake_at(),
    "close": lambda s: s.close(),
}


def test_every_storage_method_is_covered() -> None:
    assert set(CALLS) == OPERATIONS


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_every_method_delegates_and_can_fail(operation: str) -> None:
    def fresh() -> tuple[MemoryStorage, FaultyStorage]:
        inner = MemoryStorage()
        inner.apply([InsertRun(record("r1")), AppendEvents("r1", [(0, "{}")])])
        return inner, FaultyStorage(inner)

    plain, faulty = fresh()
    assert CALLS[operation](faulty) == CALLS[operation](plain)
    assert [call.operation for call in faulty.calls] == [operation]

    _, faulty = fresh()
    faulty.add_fault(Fault(operation=operation))
    with pytest.raises(InjectedStorageFault, match=f"in {operation} "):
        CALLS[operation](faulty)


def test_thread_safe_counting() -> None:
    faulty = FaultyStorage(MemoryStorage(), [Fault(operation="get_run", times=5)])
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(50):
            try:
                faulty.get_run("r1")
            except InjectedStorageFault as error:
                with lock:
                    failures.append(error)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(failures) == 5
    assert sorted(call.index for call in faulty.calls) == list(range(200))
