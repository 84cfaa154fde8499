"""`MemoryStorage`: the `Storage` protocol on plain dicts, for tests and throwaway runs."""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Sequence

import attrs

from workflow.storage.base import (
    AppendEvents,
    ClosingContext,
    ConflictError,
    HistoryEntry,
    InsertRun,
    Op,
    OutboxEvent,
    PutEntry,
    RunExistsError,
    RunNotFoundError,
    RunRecord,
    RunStatus,
    StorageError,
    UpdateRun,
    apply_one_by_one,
    can_claim,
    check_limit,
    check_ttl,
    is_claimable,
    updated_record,
)

__all__ = ["MemoryStorage"]

# Actions that reverse one write each; their return values are ignored.
_Undo = list[Callable[[], object]]


class MemoryStorage(ClosingContext):
    """In-process `Storage`: same semantics as `SqliteStorage`, nothing survives the process.

    One `threading.Lock` guards all state, so every method is atomic with respect to
    the others. `apply` applies ops one by one and keeps an undo log; if an op fails,
    the log is replayed backwards and the error re-raised, so a failed batch leaves no
    trace (outbox ids included, as in SQLite).

    Records are immutable attrs instances and are handed out without copying.

    ``clock`` supplies the timestamp `UpdateRun` writes to ``updated_at``; pass a
    test clock to make it deterministic.

    Examples:
        >>> from workflow.storage import InsertRun, RunRecord, RunStatus
        >>> storage = MemoryStorage(clock=lambda: 42.0)
        >>> storage.apply([InsertRun(RunRecord("r1", "wf", "{}", RunStatus.QUEUED, 0.0, 0.0))])
        >>> storage.try_claim("r1", owner="engine-a", now=1.0, ttl=30.0).lease_expires_at
        31.0
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._closed = False
        # Dicts keep insertion order, which gives runs their tie-break order and
        # history its first-insertion order (re-assigning a key keeps its place).
        self._runs: dict[str, RunRecord] = {}
        self._history: dict[str, dict[str, HistoryEntry]] = {}
        self._events: dict[int, OutboxEvent] = {}
        self._events_by_run: dict[str, list[int]] = {}
        self._seqs_by_run: dict[str, set[int]] = {}
        # Ascending (ids are handed out in increasing order), for bisection by id.
        self._undelivered: list[int] = []
        self._next_event_id = 1

    def __repr__(self) -> str:
        return f"MemoryStorage(runs={len(self._runs)}, events={len(self._events)})"

    def _check_open(self, operation: str) -> None:
        if self._closed:
            raise StorageError(f"{operation}: storage is closed", operation=operation)

    # ------------------------------------------------------------------ writes

    def apply(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` atomically; see `Storage.apply`."""
        with self._lock:
            self._check_open("apply")
            now = self._clock()
            undo: _Undo = []
            try:
                for op in ops:
                    self._apply_one(op, now, undo)
            except BaseException:
                for action in reversed(undo):
                    action()
                raise

    def apply_each(self, batches: Sequence[Sequence[Op]]) -> list[Exception | None]:
        """Apply each batch atomically and independently; see `Storage.apply_each`."""
        return apply_one_by_one(self, batches)

    def _apply_one(self, op: Op, now: float, undo: _Undo) -> None:
        if isinstance(op, InsertRun):
            self._insert_run(op.record, undo)
        elif isinstance(op, UpdateRun):
            current = self._require_run(op.run_id)
            self._replace_run(updated_record(current, op, now), undo)
        elif isinstance(op, PutEntry):
            self._put_entry(op.entry, undo)
        elif isinstance(op, AppendEvents):
            self._append_events(op, undo)
        else:
            raise TypeError(f"not a storage op: {op!r}")

    def _require_run(self, run_id: str) -> RunRecord:
        run = self._runs.get(run_id)
        if run is None:
            raise RunNotFoundError(run_id)
        return run

    def _insert_run(self, record: RunRecord, undo: _Undo) -> None:
        run_id = record.run_id
        if run_id in self._runs:
            raise RunExistsError(run_id)
        self._runs[run_id] = record
        undo.append(lambda: self._runs.pop(run_id))

    def _replace_run(self, record: RunRecord, undo: _Undo) -> None:
        previous = self._runs[record.run_id]
        self._runs[record.run_id] = record
        undo.append(lambda: self._runs.__setitem__(record.run_id, previous))

    def _put_entry(self, entry: HistoryEntry, undo: _Undo) -> None:
        self._require_run(entry.run_id)
        entries = self._history.setdefault(entry.run_id, {})
        previous = entries.get(entry.location)
        entries[entry.location] = entry
        if previous is None:
            undo.append(lambda: entries.pop(entry.location))
        else:
            undo.append(lambda: entries.__setitem__(entry.location, previous))

    def _append_events(self, op: AppendEvents, undo: _Undo) -> None:
        self._require_run(op.run_id)
        seqs = self._seqs_by_run.setdefault(op.run_id, set())
        ids = self._events_by_run.setdefault(op.run_id, [])
        first_id = self._next_event_id
        added: list[tuple[int, int]] = []

        def rollback() -> None:
            # The ids this op added are the newest: the end of the undelivered list.
            del self._undelivered[len(self._undelivered) - len(added) :]
            for event_id, seq in added:
                del self._events[event_id]
                seqs.discard(seq)
                ids.pop()
            # SQLite rolls its AUTOINCREMENT counter back with the transaction too.
            self._next_event_id = first_id

        undo.append(rollback)
        for seq, payload in op.payloads:
            if seq in seqs:
                raise ConflictError(op.run_id, "seq", "an unused seq", seq)
            event_id = self._next_event_id
            self._next_event_id += 1
            self._events[event_id] = OutboxEvent(event_id, op.run_id, seq, payload)
            self._undelivered.append(event_id)
            seqs.add(seq)
            ids.append(event_id)
            added.append((event_id, seq))
        # next_seq is derived from the outbox (see `RunRecord`); kept current here so
        # that reads need not compute it.
        run = self._runs[op.run_id]
        highest = max((seq for seq, _ in op.payloads), default=-1)
        if highest >= run.next_seq:
            self._replace_run(attrs.evolve(run, next_seq=highest + 1), undo)

    # ------------------------------------------------------------------ reads

    def get_run(self, run_id: str) -> RunRecord | None:
        """The stored run, or None."""
        with self._lock:
            self._check_open("get_run")
            return self._runs.get(run_id)

    def list_runs(
        self,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Runs matching the filters, newest first (ties: last inserted first)."""
        check_limit(limit)
        with self._lock:
            self._check_open("list_runs")
            matching = [
                run
                for run in reversed(self._runs.values())
                if (status is None or run.status == status)
                and (workflow_name is None or run.workflow_name == workflow_name)
            ]
        matching.sort(key=lambda run: run.created_at, reverse=True)
        return matching[:limit]

    def load_history(self, run_id: str) -> list[HistoryEntry]:
        """The run's entries in first-insertion order."""
        with self._lock:
            self._check_open("load_history")
            return list(self._history.get(run_id, {}).values())

    def undelivered_events(self, limit: int = 1000, after_id: int = 0) -> list[OutboxEvent]:
        """Undelivered events with an id above ``after_id``, lowest id first."""
        check_limit(limit)
        with self._lock:
            self._check_open("undelivered_events")
            start = bisect.bisect_right(self._undelivered, after_id)
            return [self._events[event_id] for event_id in self._undelivered[start : start + limit]]

    def mark_delivered(self, ids: Sequence[int]) -> None:
        """Mark events delivered; unknown or already-delivered ids are ignored."""
        with self._lock:
            self._check_open("mark_delivered")
            marked: set[int] = set()
            for event_id in ids:
                event = self._events.get(event_id)
                if event is not None and not event.delivered:
                    self._events[event_id] = attrs.evolve(event, delivered=True)
                    marked.add(event_id)
            if marked:
                self._undelivered = [i for i in self._undelivered if i not in marked]

    def run_events(self, run_id: str) -> list[OutboxEvent]:
        """Every event of the run, by id."""
        with self._lock:
            self._check_open("run_events")
            return [self._events[event_id] for event_id in self._events_by_run.get(run_id, ())]

    # ------------------------------------------------------------------ leases

    def try_claim(self, run_id: str, owner: str, now: float, ttl: float) -> RunRecord | None:
        """Take the lease on a run if it is free or already ours; see `Storage.try_claim`."""
        check_ttl(ttl)
        with self._lock:
            self._check_open("try_claim")
            run = self._runs.get(run_id)
            if run is None or not can_claim(run, owner, now):
                return None
            claimed = attrs.evolve(run, lease_owner=owner, lease_expires_at=now + ttl)
            self._runs[run_id] = claimed
            return claimed

    def renew_leases(self, owner: str, now: float, ttl: float) -> list[str]:
        """Extend every non-terminal lease ``owner`` holds; return the run ids, sorted."""
        check_ttl(ttl)
        with self._lock:
            self._check_open("renew_leases")
            renewed: list[str] = []
            for run_id, run in self._runs.items():
                if run.lease_owner == owner and not run.status.is_terminal:
                    self._runs[run_id] = attrs.evolve(run, lease_expires_at=now + ttl)
                    renewed.append(run_id)
            return sorted(renewed)

    def release_lease(self, run_id: str, owner: str) -> None:
        """Clear the lease if ``owner`` holds it; otherwise do nothing."""
        with self._lock:
            self._check_open("release_lease")
            run = self._runs.get(run_id)
            if run is not None and run.lease_owner == owner:
                self._runs[run_id] = attrs.evolve(run, lease_owner=None, lease_expires_at=None)

    def claimable_runs(self, now: float, limit: int = 100) -> list[RunRecord]:
        """Runs to pick up at ``now``, oldest first; see `Storage.claimable_runs`."""
        check_limit(limit)
        with self._lock:
            self._check_open("claimable_runs")
            matching = [run for run in self._runs.values() if is_claimable(run, now)]
        matching.sort(key=lambda run: run.created_at)
        return matching[:limit]

    def next_wake_at(self) -> float | None:
        """The earliest ``wake_at`` of any paused run, or None."""
        with self._lock:
            self._check_open("next_wake_at")
            due = [
                run.wake_at
                for run in self._runs.values()
                if run.status is RunStatus.PAUSED and run.wake_at is not None
            ]
        return min(due, default=None)

    def close(self) -> None:
        """Refuse further calls. The data is kept until the object is garbage."""
        with self._lock:
            self._closed = True
