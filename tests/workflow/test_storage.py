"""Conformance tests for the `Storage` backends, plus SQLite- and process-specific tests."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from workflow.storage import (
    ALLOWED_TRANSITIONS,
    SCHEMA_VERSION,
    AppendEvents,
    ConflictError,
    HistoryEntry,
    InsertRun,
    InvalidTransitionError,
    MemoryStorage,
    Op,
    PutEntry,
    RunExistsError,
    RunNotFoundError,
    RunRecord,
    RunStatus,
    SchemaVersionError,
    SqliteStorage,
    Storage,
    StorageError,
    UpdateRun,
    check_transition,
)
from workflow.storage import sqlite as sqlite_module

Q, R, P = RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED
C, F, X = RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED


class Clock:
    """A settable clock for the `updated_at` stamps storage writes."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def run(run_id: str, status: RunStatus = Q, created_at: float = 1.0, **fields: Any) -> RunRecord:
    fields.setdefault("workflow_name", "wf")
    fields.setdefault("updated_at", created_at)
    return RunRecord(run_id=run_id, input_json="{}", status=status, created_at=created_at, **fields)


def entry(run_id: str, location: str, status: str = "started", attempt: int = 0) -> HistoryEntry:
    return HistoryEntry(run_id, location, "step", status, attempt, updated_at=5.0)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path, clock: Clock) -> Iterator[Storage]:
    backend: Storage
    if request.param == "memory":
        backend = MemoryStorage(clock=clock)
    else:
        backend = SqliteStorage(tmp_path / "wf.db", clock=clock)
    yield backend
    backend.close()


# ---------------------------------------------------------------- runs


def test_backends_satisfy_the_protocol(storage: Storage) -> None:
    assert isinstance(storage, Storage)


def test_insert_and_get(storage: Storage) -> None:
    record = run("r1", wake_at=3, lease_owner="x", lease_expires_at=9.5, cancel_reason="no")
    storage.apply([InsertRun(record)])
    assert storage.get_run("r1") == record
    assert storage.get_run("missing") is None
    assert isinstance(storage.get_run("r1").created_at, float)  # type: ignore[union-attr]


def test_insert_existing_id_fails_and_rolls_back_the_batch(storage: Storage) -> None:
    storage.apply([InsertRun(run("r1"))])
    with pytest.raises(RunExistsError, match="run 'r1' already exists") as info:
        storage.apply([InsertRun(run("r2")), InsertRun(run("r1", workflow_name="other"))])
    assert info.value.run_id == "r1"
    assert info.value.operation == "apply"
    assert storage.get_run("r2") is None
    assert storage.get_run("r1") == run("r1")


def test_list_runs_newest_first_with_filters_and_limit(storage: Storage) -> None:
    storage.apply(
        [
            InsertRun(run("a", created_at=1.0)),
            InsertRun(run("b", created_at=3.0, workflow_name="other")),
            InsertRun(run("c", created_at=2.0, status=R)),
            InsertRun(run("d", created_at=2.0)),  # ties with c: later insert first
        ]
    )
    assert [r.run_id for r in storage.list_runs()] == ["b", "d", "c", "a"]
    assert [r.run_id for r in storage.list_runs(status=Q)] == ["b", "d", "a"]
    assert [r.run_id for r in storage.list_runs(workflow_name="wf")] == ["d", "c", "a"]
    assert [r.run_id for r in storage.list_runs(Q, "wf", limit=1)] == ["d"]
    assert storage.list_runs(limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        storage.list_runs(limit=-1)


# ---------------------------------------------------------------- UpdateRun


@pytest.mark.parametrize("field", ["run_id", "created_at", "colour"])
def test_update_run_rejects_unknown_fields_at_construction(field: str) -> None:
    with pytest.raises(ValueError, match=f"cannot set field '{field}'"):
        UpdateRun("r1", {field: "x"})


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"crash_count": "1"}, TypeError),
        ({"crash_count": True}, TypeError),
        ({"crash_count": -1}, ValueError),
        ({"wake_at": "soon"}, TypeError),
        ({"workflow_name": None}, TypeError),
        ({"status": "sleeping"}, ValueError),
    ],
)
def test_update_run_rejects_bad_values(changes: dict[str, object], error: type[Exception]) -> None:
    with pytest.raises(error, match=next(iter(changes))):
        UpdateRun("r1", changes)


def test_update_run_normalizes_values_and_is_immutable() -> None:
    op = UpdateRun("r1", {"status": "running", "wake_at": 3})
    assert op.changes == {"status": R, "wake_at": 3}
    assert op.changes["status"] is R
    with pytest.raises(TypeError):
        op.changes["status"] = C  # type: ignore[index]


def test_update_run_sets_fields_and_updated_at(storage: Storage, clock: Clock) -> None:
    storage.apply([InsertRun(run("r1"))])
    clock.now = 2000.0
    storage.apply([UpdateRun("r1", {"status": R, "crash_count": 2, "wake_at": 7})])
    stored = storage.get_run("r1")
    assert stored == run("r1", status=R, crash_count=2, wake_at=7.0, updated_at=2000.0)
    storage.apply([UpdateRun("r1", {"updated_at": 5.5, "crash_count": 4})])
    assert storage.get_run("r1") == run("r1", status=R, crash_count=4, wake_at=7.0, updated_at=5.5)


def test_update_missing_run(storage: Storage) -> None:
    with pytest.raises(RunNotFoundError, match="run 'nope' does not exist"):
        storage.apply([UpdateRun("nope", {"crash_count": 1})])


def test_update_run_compare_and_set(storage: Storage) -> None:
    storage.apply([InsertRun(run("r1", lease_owner="a", lease_expires_at=50.0))])
    with pytest.raises(ConflictError) as info:
        storage.apply([UpdateRun("r1", {"status": R}, expect_status=P)])
    assert (info.value.run_id, info.value.field) == ("r1", "status")
    assert (info.value.expected, info.value.actual) == (P, Q)
    assert "conflict on status" in str(info.value) and "'r1'" in str(info.value)
    with pytest.raises(ConflictError, match="conflict on lease_owner: expected 'b', found 'a'"):
        storage.apply([UpdateRun("r1", {"status": R}, expect_owner="b")])
    assert storage.get_run("r1").status is Q  # type: ignore[union-attr]
    storage.apply([UpdateRun("r1", {"status": R}, expect_status=Q, expect_owner="a")])
    assert storage.get_run("r1").status is R  # type: ignore[union-attr]


def test_a_failing_last_op_leaves_nothing_of_the_batch(storage: Storage) -> None:
    storage.apply([InsertRun(run("old")), AppendEvents("old", [(0, "e0")])])
    before = storage.get_run("old")
    with pytest.raises(InvalidTransitionError):
        storage.apply(
            [
                InsertRun(run("new")),
                PutEntry(entry("new", "charge")),
                AppendEvents("new", [(0, "a"), (1, "b")]),
                UpdateRun("old", {"status": R, "crash_count": 3}),
                PutEntry(entry("old", "charge")),
                AppendEvents("old", [(1, "e1")]),
                UpdateRun("new", {"status": C}),  # queued -> completed is not allowed
            ]
        )
    assert storage.get_run("new") is None
    assert storage.load_history("new") == []
    assert storage.run_events("new") == []
    assert storage.get_run("old") == before
    assert storage.load_history("old") == []
    assert [e.payload_json for e in storage.undelivered_events()] == ["e0"]
    # The ids the failed batch took are handed out again, as SQLite does.
    storage.apply([AppendEvents("old", [(1, "e1")])])
    assert [e.id for e in storage.run_events("old")] == [1, 2]


def test_apply_each_rolls_back_only_the_failing_batch(storage: Storage) -> None:
    storage.apply([InsertRun(run("old"))])
    outcomes = storage.apply_each(
        [
            [InsertRun(run("a")), AppendEvents("a", [(0, "a0")])],
            [InsertRun(run("b")), UpdateRun("b", {"status": C})],  # queued -> completed
            [UpdateRun("old", {"crash_count": 2}, expect_owner="nobody")],
            [PutEntry(entry("old", "x")), AppendEvents("old", [(0, "old0")])],
        ]
    )
    assert outcomes[0] is None and outcomes[3] is None
    assert isinstance(outcomes[1], InvalidTransitionError)
    assert isinstance(outcomes[2], ConflictError) and outcomes[2].field == "lease_owner"
    assert storage.get_run("b") is None
    old = storage.get_run("old")
    assert old is not None and old.crash_count == 0
    assert [e.payload_json for e in storage.undelivered_events()] == ["a0", "old0"]
    assert [e.location for e in storage.load_history("old")] == ["x"]
    assert storage.apply_each([]) == []


def test_an_update_without_status_change_checks_its_expectations(storage: Storage) -> None:
    """The common update (no status) is one statement with its expectations in the
    WHERE clause; a miss still reports exactly what differed."""
    storage.apply([InsertRun(run("r", lease_owner="me", lease_expires_at=9.0))])
    storage.apply([UpdateRun("r", {"crash_count": 4}, expect_owner="me", expect_status=Q)])
    record = storage.get_run("r")
    assert record is not None and record.crash_count == 4
    with pytest.raises(ConflictError) as raised:
        storage.apply([UpdateRun("r", {"crash_count": 5}, expect_owner="you")])
    assert (raised.value.field, raised.value.actual) == ("lease_owner", "me")
    with pytest.raises(ConflictError) as raised:
        storage.apply([UpdateRun("r", {"crash_count": 5}, expect_status=R)])
    assert raised.value.field == "status"
    with pytest.raises(RunNotFoundError):
        storage.apply([UpdateRun("missing", {"crash_count": 5})])


def test_an_update_without_changes_is_a_fence_that_writes_nothing(
    storage: Storage, clock: Clock
) -> None:
    storage.apply([InsertRun(run("r", lease_owner="me", lease_expires_at=9.0))])
    before = storage.get_run("r")
    clock.now = 2000.0
    storage.apply([UpdateRun("r", {}, expect_owner="me", expect_status=Q)])
    assert storage.get_run("r") == before  # not even updated_at moved
    with pytest.raises(ConflictError) as raised:
        storage.apply([UpdateRun("r", {}, expect_owner="you"), AppendEvents("r", [(0, "e")])])
    assert (raised.value.field, raised.value.expected, raised.value.actual) == (
        "lease_owner",
        "you",
        "me",
    )
    assert storage.run_events("r") == []  # the fence failed, so the batch did too
    with pytest.raises(ConflictError, match="conflict on status"):
        storage.apply([UpdateRun("r", {}, expect_status=R)])
    with pytest.raises(RunNotFoundError):
        storage.apply([UpdateRun("missing", {})])


def test_next_seq_is_derived_from_the_outbox(storage: Storage) -> None:
    storage.apply([InsertRun(run("r", lease_owner="me", lease_expires_at=9.0))])
    assert storage.get_run("r").next_seq == 0  # type: ignore[union-attr]
    storage.apply([AppendEvents("r", [(0, "a"), (1, "b")])])
    assert storage.get_run("r").next_seq == 2  # type: ignore[union-attr]
    storage.apply([AppendEvents("r", [(5, "c"), (3, "d")])])  # one past the highest
    assert storage.get_run("r").next_seq == 6  # type: ignore[union-attr]
    with pytest.raises(ConflictError):
        storage.apply([AppendEvents("r", [(9, "e"), (0, "again")])])
    assert storage.get_run("r").next_seq == 6  # type: ignore[union-attr]
    # Every read of a run says the same.
    assert [r.next_seq for r in storage.list_runs()] == [6]
    assert [r.next_seq for r in storage.claimable_runs(now=100.0)] == [6]
    claimed = storage.try_claim("r", "me", now=1.0, ttl=5.0)
    assert claimed is not None and claimed.next_seq == 6


def test_next_seq_is_not_written_by_callers() -> None:
    with pytest.raises(ValueError, match="InsertRun of run 'r': next_seq must be 0, got 1"):
        InsertRun(run("r", next_seq=1))
    with pytest.raises(ValueError, match="UpdateRun cannot set field 'next_seq'"):
        UpdateRun("r", {"next_seq": 1})


# ---------------------------------------------------------------- transitions


@pytest.mark.parametrize("old", list(RunStatus))
@pytest.mark.parametrize("new", list(RunStatus))
def test_check_transition_follows_the_table(old: RunStatus, new: RunStatus) -> None:
    if new in ALLOWED_TRANSITIONS[old]:
        check_transition(old, new)
    else:
        with pytest.raises(InvalidTransitionError, match=f"{old} -> {new}"):
            check_transition(old, new, "r9")


def test_transition_table_shape() -> None:
    assert ALLOWED_TRANSITIONS[Q] == {R, X}
    assert ALLOWED_TRANSITIONS[R] == {P, C, F, X, R}
    assert ALLOWED_TRANSITIONS[P] == {R, X}
    assert ALLOWED_TRANSITIONS[F] == {P}  # Engine.resume after an infrastructure failure
    assert all(not ALLOWED_TRANSITIONS[s] for s in (C, X))
    assert {s for s in RunStatus if s.is_terminal} == {C, F, X}


def test_storage_enforces_transitions(storage: Storage) -> None:
    storage.apply([InsertRun(run("r1"))])
    storage.apply([UpdateRun("r1", {"status": R})])
    storage.apply([UpdateRun("r1", {"status": R})])  # re-claim after a crash
    storage.apply([UpdateRun("r1", {"status": P, "wake_at": 9.0})])
    with pytest.raises(InvalidTransitionError) as info:
        storage.apply([UpdateRun("r1", {"status": C})])
    assert str(info.value) == (
        "run 'r1': invalid status transition paused -> completed; "
        "allowed from paused: cancelled, running"
    )
    assert (info.value.run_id, info.value.old, info.value.new) == ("r1", P, C)
    storage.apply([UpdateRun("r1", {"status": R}), UpdateRun("r1", {"status": C})])
    with pytest.raises(InvalidTransitionError, match="none \\(completed is terminal\\)"):
        storage.apply([UpdateRun("r1", {"status": C})])  # a second completion
    # Fields other than status may still change on a terminal run.
    storage.apply([UpdateRun("r1", {"lease_owner": None})])


def test_errors_pickle_round_trip() -> None:
    for error in (
        RunExistsError("r1"),
        ConflictError("r1", "status", Q, R),
        InvalidTransitionError("r1", C, R),
        SchemaVersionError("x.db", 9, 1),
    ):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert str(copy) == str(error)
        assert copy.__dict__ == error.__dict__


# ---------------------------------------------------------------- history


def test_put_entry_upserts_in_first_insertion_order(storage: Storage) -> None:
    storage.apply([InsertRun(run("r1")), InsertRun(run("r2"))])
    storage.apply(
        [
            PutEntry(entry("r1", "charge")),
            PutEntry(entry("r1", "loop/0/ship")),
            PutEntry(entry("r2", "other")),
            PutEntry(entry("r1", "notify")),
        ]
    )
    done = HistoryEntry("r1", "charge", "step", "completed", 1, result_json="7", updated_at=9.0)
    storage.apply([PutEntry(done)])
    history = storage.load_history("r1")
    assert [e.location for e in history] == ["charge", "loop/0/ship", "notify"]
    assert history[0] == done
    assert [e.location for e in storage.load_history("r2")] == ["other"]
    assert storage.load_history("unknown") == []


def test_put_entry_for_missing_run(storage: Storage) -> None:
    with pytest.raises(RunNotFoundError, match="'ghost'"):
        storage.apply([PutEntry(entry("ghost", "charge"))])


@pytest.mark.parametrize("location", ["", "a//b", "/a", "a/"])
def test_history_entry_rejects_bad_locations(location: str) -> None:
    with pytest.raises(ValueError, match="location"):
        entry("r1", location)


def test_history_entry_rejects_negative_attempt() -> None:
    with pytest.raises(ValueError, match="attempt must be >= 0"):
        entry("r1", "a", attempt=-1)


# ---------------------------------------------------------------- outbox


def test_outbox_append_deliver_and_list(storage: Storage) -> None:
    storage.apply([InsertRun(run("r1")), InsertRun(run("r2"))])
    storage.apply([AppendEvents("r1", [(0, "a"), (1, "b")]), AppendEvents("r2", [(0, "c")])])
    storage.apply([AppendEvents("r1", [(2, "d")])])
    events = storage.undelivered_events()
    assert [(e.id, e.run_id, e.seq, e.payload_json) for e in events] == [
        (1, "r1", 0, "a"),
        (2, "r1", 1, "b"),
        (3, "r2", 0, "c"),
        (4, "r1", 2, "d"),
    ]
    assert [e.id for e in storage.undelivered_events(limit=2)] == [1, 2]
    storage.mark_delivered([1, 3, 99])
    storage.mark_delivered([1])
    storage.mark_delivered([])
    assert [e.id for e in storage.undelivered_events()] == [2, 4]
    assert [(e.id, e.delivered) for e in storage.run_events("r1")] == [
        (1, True),
        (2, False),
        (4, False),
    ]
    assert storage.run_events("none") == []


def test_outbox_rejects_a_reused_seq(storage: Storage) -> None:
    storage.apply([InsertRun(run("r1")), AppendEvents("r1", [(0, "a")])])
    with pytest.raises(ConflictError, match="conflict on seq") as info:
        storage.apply([AppendEvents("r1", [(1, "b"), (0, "again")])])
    assert (info.value.field, info.value.actual) == ("seq", 0)
    with pytest.raises(ConflictError):
        storage.apply([AppendEvents("r1", [(5, "x"), (5, "y")])])
    assert [e.seq for e in storage.run_events("r1")] == [0]


def test_append_events_checks_payload_types() -> None:
    with pytest.raises(TypeError, match="int seq, str payload_json"):
        AppendEvents("r1", [(0, {"not": "json text"})])  # type: ignore[list-item]
    assert AppendEvents("r1", [[1, "x"]]).payloads == ((1, "x"),)  # type: ignore[list-item]


def test_outbox_for_missing_run(storage: Storage) -> None:
    with pytest.raises(RunNotFoundError):
        storage.apply([AppendEvents("ghost", [(0, "x")])])


# ---------------------------------------------------------------- leases


def test_try_claim_and_expiry(storage: Storage, clock: Clock) -> None:
    storage.apply([InsertRun(run("r1"))])
    claimed = storage.try_claim("r1", "a", now=10.0, ttl=5.0)
    assert claimed == run("r1", lease_owner="a", lease_expires_at=15.0)
    assert storage.get_run("r1") == claimed  # status and updated_at untouched
    assert storage.try_claim("r1", "b", now=14.9, ttl=5.0) is None
    renewed = storage.try_claim("r1", "a", now=14.0, ttl=5.0)  # the owner may re-claim
    assert renewed is not None and renewed.lease_expires_at == 19.0
    stolen = storage.try_claim("r1", "b", now=19.0, ttl=5.0)  # expired at 19.0 exactly
    assert stolen is not None and stolen.lease_owner == "b"
    assert storage.try_claim("missing", "a", now=0.0, ttl=1.0) is None
    with pytest.raises(ValueError, match="ttl"):
        storage.try_claim("r1", "a", now=0.0, ttl=0.0)


def test_try_claim_refuses_terminal_runs(storage: Storage) -> None:
    storage.apply([InsertRun(run(s.value, status=s)) for s in (C, F, X)])
    assert all(storage.try_claim(s.value, "a", 0.0, 1.0) is None for s in (C, F, X))


def test_owner_without_expiry_does_not_hold_the_run(storage: Storage) -> None:
    storage.apply([InsertRun(run("r1", lease_owner="a"))])
    assert [r.run_id for r in storage.claimable_runs(now=0.0)] == ["r1"]
    assert storage.try_claim("r1", "b", now=0.0, ttl=1.0) is not None


def test_renew_and_release(storage: Storage) -> None:
    storage.apply([InsertRun(run(i)) for i in ("r3", "r1", "r2", "done")])
    for run_id in ("r3", "r1", "done"):
        storage.try_claim(run_id, "a", now=0.0, ttl=5.0)
    storage.try_claim("r2", "b", now=0.0, ttl=5.0)
    storage.apply([UpdateRun("done", {"status": X})])
    assert storage.renew_leases("a", now=4.0, ttl=10.0) == ["r1", "r3"]
    assert storage.get_run("r1").lease_expires_at == 14.0  # type: ignore[union-attr]
    assert storage.get_run("done").lease_expires_at == 5.0  # type: ignore[union-attr]
    storage.try_claim("r3", "b", now=20.0, ttl=5.0)  # a's lease ran out; b took over
    assert storage.renew_leases("a", now=21.0, ttl=10.0) == ["r1"]
    storage.release_lease("r1", "b")  # not b's: no-op
    assert storage.get_run("r1").lease_owner == "a"  # type: ignore[union-attr]
    storage.release_lease("r1", "a")
    released = storage.get_run("r1")
    assert released is not None
    assert (released.lease_owner, released.lease_expires_at) == (None, None)
    storage.release_lease("missing", "a")
    assert storage.renew_leases("nobody", now=0.0, ttl=1.0) == []


def test_claimable_runs(storage: Storage) -> None:
    live = {"lease_owner": "x", "lease_expires_at": 100.0}
    dead = {"lease_owner": "x", "lease_expires_at": 10.0}
    storage.apply(
        [
            InsertRun(run("queued", Q, created_at=5.0)),
            InsertRun(run("queued-leased", Q, created_at=1.0, **live)),
            InsertRun(run("running-alive", R, created_at=1.0, **live)),
            InsertRun(run("running-crashed", R, created_at=3.0, **dead)),
            InsertRun(run("paused-due", P, created_at=4.0, wake_at=50.0)),
            InsertRun(run("paused-later", P, created_at=1.0, wake_at=51.0)),
            InsertRun(run("paused-forever", P, created_at=1.0)),
            InsertRun(run("paused-due-leased", P, created_at=1.0, wake_at=1.0, **live)),
            InsertRun(run("completed", C, created_at=0.0)),
            InsertRun(run("failed-dead-lease", F, created_at=0.0, **dead)),
            InsertRun(run("cancelled", X, created_at=0.0)),
            InsertRun(run("queued-first", Q, created_at=0.5)),
        ]
    )
    ids = [r.run_id for r in storage.claimable_runs(now=50.0)]
    assert ids == ["queued-first", "running-crashed", "paused-due", "queued"]
    assert [r.run_id for r in storage.claimable_runs(now=50.0, limit=2)] == ids[:2]
    assert "paused-later" in [r.run_id for r in storage.claimable_runs(now=51.0)]
    assert "running-alive" in [r.run_id for r in storage.claimable_runs(now=100.0)]


def test_next_wake_at(storage: Storage) -> None:
    assert storage.next_wake_at() is None
    storage.apply(
        [
            InsertRun(run("q", Q, wake_at=1.0)),  # not paused: ignored
            InsertRun(run("p1", P, wake_at=30.0)),
            InsertRun(run("p2", P, wake_at=20.0)),
            InsertRun(run("p3", P)),
        ]
    )
    assert storage.next_wake_at() == 20.0
    storage.apply([UpdateRun("p2", {"status": R})])
    assert storage.next_wake_at() == 30.0


def test_concurrent_claims_from_threads_give_each_run_one_owner(storage: Storage) -> None:
    storage.apply([InsertRun(run(f"r{i}")) for i in range(40)])
    owners: dict[str, list[str]] = {}
    lock = threading.Lock()

    def worker(owner: str) -> None:
        for candidate in storage.claimable_runs(now=1.0, limit=100):
            if storage.try_claim(candidate.run_id, owner, now=1.0, ttl=60.0) is not None:
                with lock:
                    owners.setdefault(candidate.run_id, []).append(owner)

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(owners) == sorted(f"r{i}" for i in range(40))
    assert all(len(claimants) == 1 for claimants in owners.values())


def test_closed_storage_refuses_calls(storage: Storage) -> None:
    storage.close()
    storage.close()
    with pytest.raises(StorageError, match="closed") as info:
        storage.get_run("r1")
    assert info.value.operation == "get_run"
    with pytest.raises(StorageError, match="closed"):
        storage.apply([InsertRun(run("r1"))])


# ---------------------------------------------------------------- SQLite specifics


def test_sqlite_persists_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    with SqliteStorage(path) as first:
        first.apply([InsertRun(run("r1")), PutEntry(entry("r1", "b")), PutEntry(entry("r1", "a"))])
        first.apply([AppendEvents("r1", [(0, "x"), (1, "y")])])
        first.mark_delivered([1])
        first.try_claim("r1", "a", now=1.0, ttl=2.0)
    with SqliteStorage(path) as second:
        assert second.get_run("r1") == run("r1", lease_owner="a", lease_expires_at=3.0, next_seq=2)
        assert [e.location for e in second.load_history("r1")] == ["b", "a"]
        assert [e.id for e in second.undelivered_events()] == [2]
        second.apply([AppendEvents("r1", [(2, "z")])])
        assert [e.id for e in second.run_events("r1")] == [1, 2, 3]


def test_sqlite_schema_version_and_wal(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    SqliteStorage(path).close()
    SqliteStorage(path).close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        outbox = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'outbox'").fetchone()
    conn.close()
    assert {"runs_by_status", "runs_paused_by_wake", "outbox_delivered_below"} <= names
    # Version 2 dropped what every commit paid for and no read needs.
    assert not {"history_by_run", "outbox_undelivered"} & names
    assert "AUTOINCREMENT" not in outbox[0]


@pytest.mark.parametrize(("mode", "value"), [("FULL", 2), ("NORMAL", 1), ("OFF", 0)])
def test_sqlite_synchronous_mode(tmp_path: Path, mode: Any, value: int) -> None:
    with SqliteStorage(tmp_path / "wf.db", synchronous=mode) as storage:
        assert storage._conn is not None
        assert storage._conn.execute("PRAGMA synchronous").fetchone() == (value,)
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStorage(tmp_path / "wf.db", synchronous="EXTRA")  # type: ignore[arg-type]


def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    SqliteStorage(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    conn.close()
    with pytest.raises(SchemaVersionError, match="schema version 99 is newer") as info:
        SqliteStorage(path)
    assert (info.value.found, info.value.supported, info.value.operation) == (
        99,
        SCHEMA_VERSION,
        "open",
    )


def test_sqlite_applies_missing_migrations_in_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "wf.db"
    with SqliteStorage(path) as storage:
        storage.apply([InsertRun(run("r1"))])
    later = ("CREATE TABLE extra (x INTEGER)", "INSERT INTO extra VALUES (42)")
    monkeypatch.setattr(sqlite_module, "_MIGRATIONS", (*sqlite_module._MIGRATIONS, later))
    monkeypatch.setattr(sqlite_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with SqliteStorage(path) as storage:
        assert storage.get_run("r1") is not None
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT version FROM schema_version").fetchall()
        assert found == [(SCHEMA_VERSION + 1,)]
        assert conn.execute("SELECT x FROM extra").fetchall() == [(42,)]
    conn.close()


def test_sqlite_migrates_a_version_1_file_keeping_everything(tmp_path: Path) -> None:
    """A file written by version 1 (AUTOINCREMENT outbox, a stored next_seq) opens
    with its runs, history order, event ids and delivery state intact, and goes on
    from there."""
    path = tmp_path / "v1.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in sqlite_module._MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.execute(
        "INSERT INTO runs (run_id, workflow_name, input_json, status, created_at, "
        "updated_at, next_seq) VALUES ('r', 'wf', '{}', 'running', 1.0, 2.0, 4)"
    )
    for location in ("b", "a"):
        conn.execute(
            "INSERT INTO history (run_id, location, kind, status, attempt, updated_at) "
            "VALUES ('r', ?, 'step', 'started', 1, 3.0)",
            (location,),
        )
    for seq, delivered in enumerate([1, 0, 1, 0]):
        conn.execute(
            "INSERT INTO outbox (run_id, seq, payload_json, delivered) VALUES ('r', ?, ?, ?)",
            (seq, f"e{seq}", delivered),
        )
    conn.close()

    with SqliteStorage(path) as storage:
        record = storage.get_run("r")
        assert record is not None and (record.status, record.next_seq) == (R, 4)
        assert [e.location for e in storage.load_history("r")] == ["b", "a"]
        assert [(e.id, e.delivered) for e in storage.run_events("r")] == [
            (1, True),
            (2, False),
            (3, True),
            (4, False),
        ]
        assert [e.id for e in storage.undelivered_events()] == [2, 4]
        storage.apply([AppendEvents("r", [(4, "e4")])])
        assert [e.id for e in storage.run_events("r")] == [1, 2, 3, 4, 5]
        storage.mark_delivered([2, 4])
        assert [e.id for e in storage.undelivered_events()] == [5]
    with sqlite3.connect(path) as check:
        assert check.execute("SELECT version FROM schema_version").fetchone() == (SCHEMA_VERSION,)
    check.close()


def test_sqlite_reads_undelivered_events_past_the_delivered_prefix(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    with SqliteStorage(path) as storage:
        storage.apply([InsertRun(run("r"))])
        storage.apply([AppendEvents("r", [(seq, f"e{seq}") for seq in range(6)])])
        storage.mark_delivered([1, 2, 4])  # 3 is still undelivered: the prefix stops there
        assert [e.id for e in storage.undelivered_events()] == [3, 5, 6]
        assert [e.id for e in storage.undelivered_events(after_id=3)] == [5, 6]
        assert [e.id for e in storage.undelivered_events(limit=1, after_id=1)] == [3]
        storage.mark_delivered([3, 5, 6])
        assert storage.undelivered_events() == []
        storage.apply([AppendEvents("r", [(6, "e6")])])
        assert [e.id for e in storage.undelivered_events()] == [7]
        assert storage._conn is not None
        below = storage._conn.execute("SELECT id FROM outbox_delivered_below").fetchall()
        assert below == [(7,)]
        # The read is a range of ids, not a scan of the whole outbox.
        plan = " ".join(
            str(row[-1])
            for row in storage._conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM outbox "
                "WHERE id > MAX(?, (SELECT id - 1 FROM outbox_delivered_below)) "
                "AND delivered = 0 ORDER BY id LIMIT ?",
                (0, 10),
            )
        )
        assert "INTEGER PRIMARY KEY (rowid>?)" in plan, plan


def test_sqlite_busy_write_fails_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "wf.db"
    with SqliteStorage(path, busy_timeout_s=0.05) as storage:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StorageError, match="apply failed") as info:
                storage.apply([InsertRun(run("r1"))])
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
            assert storage.get_run("r1") is None  # readers are not blocked (WAL)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        storage.apply([InsertRun(run("r1"))])  # the connection is still usable
        assert storage.get_run("r1") is not None


def test_sqlite_in_memory_database() -> None:
    with SqliteStorage(":memory:") as storage:
        storage.apply([InsertRun(run("r1"))])
        assert storage.get_run("r1") == run("r1")


def test_leases_hold_across_processes(tmp_path: Path) -> None:
    """Three real processes race for 50 runs on one file; no lease is ever shared."""
    path = tmp_path / "wf.db"
    total = 50
    with SqliteStorage(path) as storage:
        storage.apply([InsertRun(run(f"run-{i}", created_at=float(i))) for i in range(total)])
    worker = Path(__file__).with_name("storage_worker.py")
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }
    procs = [
        subprocess.Popen(
            [sys.executable, str(worker), str(path), f"owner-{n}", "0.5", str(total)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for n in range(3)
    ]
    lines: list[dict[str, Any]] = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        lines += [json.loads(line) for line in out.splitlines()]

    claims: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        assert line["event"] == "claim", line  # a conflict means two owners overlapped
        claims.setdefault(line["run"], []).append(line)
    assert sorted(claims) == sorted(f"run-{i}" for i in range(total))
    for run_id, run_claims in claims.items():
        run_claims.sort(key=lambda c: c["now"])
        for earlier, later in itertools.pairwise(run_claims):
            # A second claim is only possible once the first lease has run out.
            assert later["now"] >= earlier["expires"], (run_id, earlier, later)
        crashed_first = int(run_id.split("-")[1]) % 5 == 0
        assert len(run_claims) == (2 if crashed_first else 1), run_claims
    with SqliteStorage(path) as storage:
        runs = storage.list_runs(limit=total)
        assert all(r.status is C for r in runs)
        for r in runs:
            assert json.loads(r.result_json or "null") == claims[r.run_id][-1]["owner"]
            assert len(storage.run_events(r.run_id)) == 1


# ---------------------------------------------------------------- model-based


RUN_IDS = ["r0", "r1", "r2", "r3"]
OWNERS = ["a", "b"]
optional_floats = st.none() | st.sampled_from([0.0, 5.0, 10.0, 20.0])
change_values: dict[str, st.SearchStrategy[Any]] = {
    "status": st.sampled_from(list(RunStatus)),
    "wake_at": optional_floats,
    "lease_owner": st.none() | st.sampled_from(OWNERS),
    "lease_expires_at": optional_floats,
    "crash_count": st.integers(0, 3),
    "result_json": st.none() | st.just('"ok"'),
    "cancel_reason": st.none() | st.just("user"),
}
records = st.builds(
    RunRecord,
    run_id=st.sampled_from(RUN_IDS),
    workflow_name=st.sampled_from(["wf", "other"]),
    input_json=st.just("{}"),
    status=st.sampled_from(list(RunStatus)),
    created_at=st.sampled_from([1.0, 2.0, 3.0]),
    updated_at=st.just(1.0),
    wake_at=optional_floats,
    lease_owner=st.none() | st.sampled_from(OWNERS),
    lease_expires_at=optional_floats,
)
ops: st.SearchStrategy[Op] = st.one_of(
    st.builds(InsertRun, records),
    st.builds(
        UpdateRun,
        st.sampled_from(RUN_IDS),
        st.fixed_dictionaries({}, optional=change_values),
        expect_status=st.none() | st.sampled_from(list(RunStatus)),
        expect_owner=st.none() | st.sampled_from(OWNERS),
    ),
    st.builds(
        PutEntry,
        st.builds(
            HistoryEntry,
            run_id=st.sampled_from(RUN_IDS),
            location=st.sampled_from(["a", "b", "loop/0/a", "loop/1/a"]),
            kind=st.just("step"),
            status=st.sampled_from(["started", "completed"]),
            attempt=st.integers(0, 2),
        ),
    ),
    st.builds(
        AppendEvents,
        st.sampled_from(RUN_IDS),
        st.lists(st.tuples(st.integers(0, 6), st.just("{}")), max_size=3),
    ),
)


def outcome(call: Any) -> Any:
    """The result of ``call()``, or the error it raised as (type, message)."""
    try:
        return ("ok", call())
    except (StorageError, ValueError) as error:
        return ("error", type(error), str(error))


class SameBehaviour(RuleBasedStateMachine):
    """Random op sequences give identical results and state on both backends."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.now = 0.0
        self.backends: list[Storage] = [
            MemoryStorage(clock=self.clock),
            SqliteStorage(":memory:", synchronous="OFF", clock=self.clock),
        ]

    def both(self, method: str, *args: Any) -> None:
        results = [outcome(lambda b=b: getattr(b, method)(*args)) for b in self.backends]
        assert results[0] == results[1], (method, args)

    @rule(record=records)
    def insert(self, record: RunRecord) -> None:
        # Most random batches name runs; inserting often keeps them from all failing.
        self.both("apply", [InsertRun(record)])

    @rule(batch=st.lists(ops, min_size=1, max_size=4))
    def apply(self, batch: list[Op]) -> None:
        self.clock.now += 1.0
        self.both("apply", batch)

    @rule(batches=st.lists(st.lists(ops, min_size=1, max_size=3), max_size=3))
    def apply_each(self, batches: list[list[Op]]) -> None:
        self.clock.now += 1.0
        outcomes = [
            [None if e is None else (type(e), str(e)) for e in b.apply_each(batches)]
            for b in self.backends
        ]
        assert outcomes[0] == outcomes[1], batches

    @rule(run_id=st.sampled_from(RUN_IDS), owner=st.sampled_from(OWNERS), ttl=st.just(5.0))
    def try_claim(self, run_id: str, owner: str, ttl: float) -> None:
        self.both("try_claim", run_id, owner, self.now, ttl)

    @rule(owner=st.sampled_from(OWNERS))
    def renew(self, owner: str) -> None:
        self.both("renew_leases", owner, self.now, 5.0)

    @rule(run_id=st.sampled_from(RUN_IDS), owner=st.sampled_from(OWNERS))
    def release(self, run_id: str, owner: str) -> None:
        self.both("release_lease", run_id, owner)

    @rule(ids=st.lists(st.integers(1, 12), max_size=4))
    def deliver(self, ids: list[int]) -> None:
        self.both("mark_delivered", ids)

    @rule(step=st.sampled_from([1.0, 2.5, 6.0]))
    def advance(self, step: float) -> None:
        self.now += step

    @invariant()
    def same_state(self) -> None:
        self.both("list_runs", None, None, 1000)
        for status in RunStatus:
            self.both("list_runs", status, "wf", 2)
        for run_id in RUN_IDS:
            self.both("get_run", run_id)
            self.both("load_history", run_id)
            self.both("run_events", run_id)
        self.both("undelivered_events", 3)
        self.both("claimable_runs", self.now, 1000)
        self.both("next_wake_at")

    def teardown(self) -> None:
        for backend in self.backends:
            backend.close()


TestSameBehaviour = SameBehaviour.TestCase
TestSameBehaviour.settings = settings(
    max_examples=60,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
