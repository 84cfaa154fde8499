"""`FaultyStorage`: a `Storage` wrapper that fails chosen calls, to test workflows under faults.

Wrap any storage, describe which calls should fail with `Fault` rules, run the
workflow, and check that it recovers (or fails the way it should). Every call is
recorded in `FaultyStorage.calls`, so a first fault-free run shows which calls exist
and a test can then fail each of them in turn.

Example:
    >>> from workflow.storage import InsertRun, MemoryStorage, RunRecord, RunStatus
    >>> storage = FaultyStorage(MemoryStorage(), [Fault(operation="apply", key="InsertRun:r1")])
    >>> run = RunRecord("r1", "wf", "{}", RunStatus.QUEUED, 0.0, 0.0)
    >>> try:
    ...     storage.apply([InsertRun(run)])
    ... except InjectedStorageFault as fault:
    ...     print(fault)
    injected storage fault in apply (call #0, keys: InsertRun:r1, r1)
    >>> storage.get_run("r1") is None  # nothing was written; the fault was transient
    True
    >>> storage.apply([InsertRun(run)])
    >>> [call.operation for call in storage.calls]
    ['apply', 'get_run', 'apply']
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

import attrs

from workflow.storage.base import (
    HistoryEntry,
    InsertRun,
    Op,
    OutboxEvent,
    PutEntry,
    RunRecord,
    RunStatus,
    Storage,
    StorageError,
    apply_one_by_one,
    op_run_id,
)

__all__ = ["Fault", "FaultyStorage", "InjectedStorageFault", "StorageCall"]

_T = TypeVar("_T")

# The method names of the Storage protocol, which are the valid `Fault.operation`s.
OPERATIONS = frozenset(
    {
        "apply",
        "get_run",
        "list_runs",
        "load_history",
        "undelivered_events",
        "mark_delivered",
        "run_events",
        "try_claim",
        "renew_leases",
        "release_lease",
        "claimable_runs",
        "next_wake_at",
        "close",
    }
)


@attrs.frozen
class StorageCall:
    """One call made through a `FaultyStorage`.

    Attributes:
        index: Position among all calls to this `FaultyStorage` (0, 1, 2, ...), in the
            order they started.
        operation: The `Storage` method name.
        keys: What the call touches. For ``apply``: one ``"Kind:target"`` string per op,
            where target is the run id (``"InsertRun:r1"``, ``"UpdateRun:r1"``,
            ``"AppendEvents:r1"``) or, for `PutEntry`, the location
            (``"PutEntry:loop/3/charge"``), followed by the distinct run ids of the
            batch. For the methods taking a ``run_id``: that id. Otherwise empty.
    """

    index: int
    operation: str
    keys: tuple[str, ...]


class InjectedStorageFault(StorageError):
    """The default error a `Fault` raises.

    ``after`` tells whether the call had already reached the wrapped storage (and so
    whatever it wrote is committed) when the error was raised.
    """

    def __init__(self, call: StorageCall, *, after: bool = False) -> None:
        when = " after the call went through" if after else ""
        keys = ", ".join(call.keys) if call.keys else "none"
        super().__init__(
            f"injected storage fault in {call.operation}{when} (call #{call.index}, keys: {keys})",
            operation=call.operation,
        )
        self.call = call
        self.after = after


def _check_operation(_instance: object, _attribute: object, value: str | None) -> None:
    if value is not None and value not in OPERATIONS:
        raise ValueError(
            f"Fault operation {value!r} is not a Storage method; "
            f"expected one of: {', '.join(sorted(OPERATIONS))}"
        )


def _check_times(_instance: object, _attribute: object, value: int | None) -> None:
    if value is not None and value < 1:
        raise ValueError(f"Fault times must be >= 1 or None (permanent), got {value}")


@attrs.frozen
class Fault:
    """A rule saying which storage calls fail, how often, and how.

    A call matches when every given criterion holds (None = any):

    * ``operation`` equals the method name (``"apply"``, ``"try_claim"``, ...);
    * ``index`` equals the call's global index (see `StorageCall.index`);
    * ``key`` is a substring of one of the call's keys, e.g. ``"PutEntry:charge"``
      or a run id.

    ``times`` is how many matching calls fail: 1 (default) is a transient fault,
    None a permanent one. ``error`` builds the exception from the call (default:
    `InjectedStorageFault`). With ``after=False`` (default) the error is raised before
    the wrapped storage is called, so nothing is written; with ``after=True`` the call
    goes through first and then the error is raised, which simulates a write that
    committed although the caller saw it fail (for example a lost reply).

    Example:
        >>> fault = Fault(operation="apply", key="/charge", times=None, after=True)
        >>> fault.matches(StorageCall(7, "apply", ("PutEntry:loop/3/charge", "r1")))
        True
        >>> fault.matches(StorageCall(8, "try_claim", ("r1",)))
        False
    """

    operation: str | None = attrs.field(default=None, validator=_check_operation)
    index: int | None = None
    key: str | None = None
    times: int | None = attrs.field(default=1, validator=_check_times)
    error: Callable[[StorageCall], BaseException] | None = None
    after: bool = False

    def matches(self, call: StorageCall) -> bool:
        """Whether this rule's criteria select ``call`` (ignoring how often it fired)."""
        return (
            (self.operation is None or self.operation == call.operation)
            and (self.index is None or self.index == call.index)
            and (self.key is None or any(self.key in key for key in call.keys))
        )

    def make_error(self, call: StorageCall) -> BaseException:
        """The exception to raise for ``call``."""
        if self.error is not None:
            return self.error(call)
        return InjectedStorageFault(call, after=self.after)


@attrs.define
class _Armed:
    fault: Fault
    remaining: int | None


def _op_key(op: Op) -> str:
    if isinstance(op, PutEntry):
        return f"PutEntry:{op.entry.location}"
    if isinstance(op, InsertRun):
        return f"InsertRun:{op.record.run_id}"
    return f"{type(op).__name__}:{op.run_id}"


class FaultyStorage:
    """A `Storage` that delegates to ``inner`` and fails the calls its faults select.

    Each call gets the next global index and is recorded in `calls` before anything
    else happens. Then the first armed fault that matches (in the order added) fires:
    its remaining count drops, and its error is raised before delegating or, with
    ``after=True``, after. At most one fault fires per call. Thread-safe: the
    bookkeeping is under a lock, the delegated call runs outside it.
    """

    def __init__(self, inner: Storage, faults: Sequence[Fault] = ()) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self._armed = [_Armed(fault, fault.times) for fault in faults]
        self._calls: list[StorageCall] = []
        self._fired: list[tuple[StorageCall, Fault]] = []

    def __repr__(self) -> str:
        return f"FaultyStorage({self.inner!r}, faults={len(self._armed)})"

    # ------------------------------------------------------------------ control

    def add_fault(self, fault: Fault) -> None:
        """Arm another fault; it applies from the next call on."""
        with self._lock:
            self._armed.append(_Armed(fault, fault.times))

    def clear_faults(self) -> None:
        """Disarm every fault; calls then all go through."""
        with self._lock:
            self._armed.clear()

    @property
    def faults(self) -> list[Fault]:
        """The faults that can still fire, in the order they are tried."""
        with self._lock:
            return [armed.fault for armed in self._armed]

    @property
    def calls(self) -> list[StorageCall]:
        """A copy of every call recorded so far, in index order."""
        with self._lock:
            return list(self._calls)

    @property
    def fired(self) -> list[tuple[StorageCall, Fault]]:
        """Each call a fault fired on, with that fault; to check a fault was reached."""
        with self._lock:
            return list(self._fired)

    def reset_calls(self) -> None:
        """Forget recorded calls and fired faults; indexes start again at 0."""
        with self._lock:
            self._calls.clear()
            self._fired.clear()

    def _invoke(self, operation: str, keys: tuple[str, ...], action: Callable[[], _T]) -> _T:
        with self._lock:
            call = StorageCall(len(self._calls), operation, keys)
            self._calls.append(call)
            fault: Fault | None = None
            for armed in self._armed:
                if armed.fault.matches(call):
                    fault = armed.fault
                    if armed.remaining is not None:
                        armed.remaining -= 1
                        if armed.remaining == 0:
                            self._armed.remove(armed)
                    self._fired.append((call, fault))
                    break
        if fault is None:
            return action()
        if fault.after:
            action()
        raise fault.make_error(call)

    # ------------------------------------------------------------------ Storage

    def apply(self, ops: Sequence[Op]) -> None:
        """Delegate `Storage.apply`; keys are one ``"Kind:target"`` per op, then run ids."""
        ops = list(ops)
        run_ids = dict.fromkeys(op_run_id(op) for op in ops)
        keys = (*(_op_key(op) for op in ops), *run_ids)
        self._invoke("apply", keys, lambda: self.inner.apply(ops))

    def apply_each(self, batches: Sequence[Sequence[Op]]) -> list[Exception | None]:
        """One `apply` call (recorded, faultable) per batch, so that faults hit the
        same writes whether or not the engine grouped them."""
        return apply_one_by_one(self, batches)

    def get_run(self, run_id: str) -> RunRecord | None:
        """Delegate `Storage.get_run`."""
        return self._invoke("get_run", (run_id,), lambda: self.inner.get_run(run_id))

    def list_runs(
        self,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Delegate `Storage.list_runs`."""
        return self._invoke(
            "list_runs", (), lambda: self.inner.list_runs(status, workflow_name, limit)
        )

    def load_history(self, run_id: str) -> list[HistoryEntry]:
        """Delegate `Storage.load_history`."""
        return self._invoke("load_history", (run_id,), lambda: self.inner.load_history(run_id))

    def undelivered_events(self, limit: int = 1000, after_id: int = 0) -> list[OutboxEvent]:
        """Delegate `Storage.undelivered_events`."""
        return self._invoke(
            "undelivered_events", (), lambda: self.inner.undelivered_events(limit, after_id)
        )

    def mark_delivered(self, ids: Sequence[int]) -> None:
        """Delegate `Storage.mark_delivered`."""
        self._invoke("mark_delivered", (), lambda: self.inner.mark_delivered(ids))

    def run_events(self, run_id: str) -> list[OutboxEvent]:
        """Delegate `Storage.run_events`."""
        return self._invoke("run_events", (run_id,), lambda: self.inner.run_events(run_id))

    def try_claim(self, run_id: str, owner: str, now: float, ttl: float) -> RunRecord | None:
        """Delegate `Storage.try_claim`."""
        return self._invoke(
            "try_claim", (run_id,), lambda: self.inner.try_claim(run_id, owner, now, ttl)
        )

    def renew_leases(self, owner: str, now: float, ttl: float) -> list[str]:
        """Delegate `Storage.renew_leases`."""
        return self._invoke("renew_leases", (), lambda: self.inner.renew_leases(owner, now, ttl))

    def release_lease(self, run_id: str, owner: str) -> None:
        """Delegate `Storage.release_lease`."""
        self._invoke("release_lease", (run_id,), lambda: self.inner.release_lease(run_id, owner))

    def claimable_runs(self, now: float, limit: int = 100) -> list[RunRecord]:
        """Delegate `Storage.claimable_runs`."""
        return self._invoke("claimable_runs", (), lambda: self.inner.claimable_runs(now, limit))

    def next_wake_at(self) -> float | None:
        """Delegate `Storage.next_wake_at`."""
        return self._invoke("next_wake_at", (), self.inner.next_wake_at)

    def close(self) -> None:
        """Delegate `Storage.close`."""
        self._invoke("close", (), self.inner.close)
