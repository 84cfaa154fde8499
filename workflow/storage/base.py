"""Records, write operations, errors and the `Storage` protocol of the workflow engine.

Everything the engine persists is one of three records:

* `RunRecord` - one row per workflow run: status, input, result, lease, timer.
* `HistoryEntry` - one row per primitive a run has visited, keyed by its location.
* `OutboxEvent` - one row per event, written in the same transaction as the state
  change it describes and delivered later.

All writes go through `Storage.apply`, which takes a batch of ops (`InsertRun`,
`UpdateRun`, `PutEntry`, `AppendEvents`) and applies them in one transaction: either
every op takes effect or none does. The backends live in `workflow.storage.memory`
and `workflow.storage.sqlite`.
"""

from __future__ import annotations

import enum
import types
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Protocol, Self, TypeAlias, runtime_checkable

import attrs

__all__ = [
    "ALLOWED_TRANSITIONS",
    "TERMINAL_STATUSES",
    "AppendEvents",
    "ConflictError",
    "HistoryEntry",
    "InsertRun",
    "InvalidTransitionError",
    "Op",
    "OutboxEvent",
    "PutEntry",
    "RunExistsError",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "SchemaVersionError",
    "Storage",
    "StorageError",
    "UpdateRun",
    "apply_one_by_one",
    "check_transition",
    "is_lease_free",
]


class RunStatus(enum.StrEnum):
    """Where a run is in its life cycle; the values are what storage persists.

    A run moves ``queued -> running -> (paused -> running)* -> completed | failed |
    cancelled``. `ALLOWED_TRANSITIONS` is the whole state machine.
    """

    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True for completed, failed and cancelled: no transition leaves these."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED}
)

ALLOWED_TRANSITIONS: Mapping[RunStatus, frozenset[RunStatus]] = types.MappingProxyType(
    {
        RunStatus.QUEUED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
        RunStatus.RUNNING: frozenset(
            {
                RunStatus.PAUSED,
                RunStatus.COMPLETED,
                RunStatus.FAILED,
                RunStatus.CANCELLED,
                # A new owner re-claims a run whose previous owner crashed mid-flight.
                RunStatus.RUNNING,
            }
        ),
        RunStatus.PAUSED: frozenset({RunStatus.RUNNING, RunStatus.CANCELLED}),
        RunStatus.COMPLETED: frozenset(),
        # `Engine.resume` sends a run that failed because of infrastructure (storage)
        # back to Paused, due now, once the cause is fixed. It is the one way out of a
        # final status; completed steps are not run again.
        RunStatus.FAILED: frozenset({RunStatus.PAUSED}),
        RunStatus.CANCELLED: frozenset(),
    }
)


# --------------------------------------------------------------------------- errors


class StorageError(Exception):
    """Base of every error a `Storage` raises.

    `operation` names the storage method that failed (``"apply"``, ``"try_claim"``,
    ``"open"``, ...). Driver errors (for example ``sqlite3.OperationalError: database
    is locked`` after the busy timeout) are wrapped in a plain `StorageError` with the
    driver error as ``__cause__``.
    """

    def __init__(self, message: str, *, operation: str = "") -> None:
        super().__init__(message)
        self.operation = operation

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take structured constructor arguments, so the default pickling
        # (calling cls(*args) with the message) would not round-trip.
        return (_restore_error, (type(self), self.args, self.__dict__))


def _restore_error(
    cls: type[StorageError], args: tuple[object, ...], state: dict[str, object]
) -> StorageError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class RunExistsError(StorageError):
    """`InsertRun` for a run id that is already stored; the whole batch is rolled back."""

    def __init__(self, run_id: str, *, operation: str = "apply") -> None:
        super().__init__(f"run {run_id!r} already exists", operation=operation)
        self.run_id = run_id


class RunNotFoundError(StorageError):
    """An op named a run id that is not stored; the whole batch is rolled back."""

    def __init__(self, run_id: str, *, operation: str = "apply") -> None:
        super().__init__(f"run {run_id!r} does not exist", operation=operation)
        self.run_id = run_id


class ConflictError(StorageError):
    """A compare-and-set expectation did not hold; the whole batch is rolled back.

    Raised by `UpdateRun` when `expect_status` or `expect_owner` differs from the
    stored value (``field`` is ``"status"`` or ``"lease_owner"``), and by
    `AppendEvents` when an event seq is already used for the run (``field`` is
    ``"seq"``). A conflict usually means another owner took the run over: the caller
    should stop working on it.
    """

    def __init__(
        self,
        run_id: str,
        field: str,
        expected: object,
        actual: object,
        *,
        operation: str = "apply",
    ) -> None:
        super().__init__(
            f"run {run_id!r}: conflict on {field}: expected {expected!r}, found {actual!r}",
            operation=operation,
        )
        self.run_id = run_id
        self.field = field
        self.expected = expected
        self.actual = actual


class InvalidTransitionError(StorageError):
    """A status change that `ALLOWED_TRANSITIONS` forbids; the batch is rolled back."""

    def __init__(
        self,
        run_id: str | None,
        old: RunStatus,
        new: RunStatus,
        *,
        operation: str = "apply",
    ) -> None:
        allowed = sorted(ALLOWED_TRANSITIONS.get(old, frozenset()))
        allowed_text = ", ".join(allowed) if allowed else f"none ({old} is terminal)"
        subject = f"run {run_id!r}" if run_id is not None else "run"
        super().__init__(
            f"{subject}: invalid status transition {old} -> {new}; "
            f"allowed from {old}: {allowed_text}",
            operation=operation,
        )
        self.run_id = run_id
        self.old = old
        self.new = new


class SchemaVersionError(StorageError):
    """The database was written by a newer version of this library than the one running.

    Opening it would risk misreading or corrupting data, so the storage refuses;
    upgrade the library instead.
    """

    def __init__(self, path: str, found: int, supported: int) -> None:
        super().__init__(
            f"{path}: schema version {found} is newer than the newest this library "
            f"knows ({supported}); upgrade effect-workflow to open it",
            operation="open",
        )
        self.path = path
        self.found = found
        self.supported = supported


def check_transition(old: RunStatus, new: RunStatus, run_id: str | None = None) -> None:
    """Raise `InvalidTransitionError` unless `ALLOWED_TRANSITIONS` permits ``old -> new``.

    Examples:
        >>> check_transition(RunStatus.QUEUED, RunStatus.RUNNING)
        >>> try:
        ...     check_transition(RunStatus.COMPLETED, RunStatus.RUNNING, "r1")
        ... except InvalidTransitionError as error:
        ...     print(error.run_id, error.old, "->", error.new)
        r1 completed -> running
    """
    if new not in ALLOWED_TRANSITIONS[old]:
        raise InvalidTransitionError(run_id, old, new)


# --------------------------------------------------------------------------- records


# SQLite hands a REAL column back as float even when an int went in; converting up
# front makes both backends return identical records.
def _to_float(value: float) -> float:
    return float(value)


def _to_optional_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _non_negative(_instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


@attrs.frozen
class RunRecord:
    """One workflow run as stored.

    Attributes:
        run_id: Unique id, chosen by the caller (so it can double as an idempotency key).
        workflow_name: Name the workflow is registered under.
        input_json: The run's input, JSON-encoded.
        status: Life-cycle state; changes are checked against `ALLOWED_TRANSITIONS`.
        created_at, updated_at: Unix timestamps (seconds).
        result_json: JSON result once completed.
        error_json: JSON error once failed.
        wake_at: Due time of the run's durable timer while paused; a paused run with a
            due `wake_at` is returned by `Storage.claimable_runs`.
        lease_owner, lease_expires_at: Which engine process owns the run, and until
            when. See `is_lease_free`.
        crash_count: How many times the run was recovered after its owner died.
        next_seq: One past the highest ``seq`` in the run's outbox (0 while it has
            none): the next per-run event sequence number to hand out. Storage derives
            it from the outbox when it reads the run, so that appending events does
            not rewrite the run; `InsertRun` requires it to be 0, and `UpdateRun`
            cannot set it.
        cancel_reason: Set when a cancel was requested.
    """

    run_id: str
    workflow_name: str
    input_json: str
    status: RunStatus
    created_at: float = attrs.field(converter=_to_float)
    updated_at: float = attrs.field(converter=_to_float)
    result_json: str | None = None
    error_json: str | None = None
    wake_at: float | None = attrs.field(default=None, converter=_to_optional_float)
    lease_owner: str | None = None
    lease_expires_at: float | None = attrs.field(default=None, converter=_to_optional_float)
    crash_count: int = attrs.field(default=0, validator=_non_negative)
    next_seq: int = attrs.field(default=0, validator=_non_negative)
    cancel_reason: str | None = None


def is_lease_free(run: RunRecord, now: float) -> bool:
    """True if no engine holds `run` at `now`: no owner, or the lease has run out.

    A lease is held while ``lease_owner`` is set and ``now < lease_expires_at``. An
    owner without an expiry is treated as no lease, so a run can never be stuck behind
    an owner that will not come back.
    """
    return run.lease_owner is None or run.lease_expires_at is None or run.lease_expires_at <= now


def _valid_location(_instance: object, _attribute: attrs.Attribute[str], value: str) -> None:
    if not value or any(part == "" for part in value.split("/")):
        raise ValueError(
            f"location must be a non-empty '/'-separated path of non-empty names, got {value!r}"
        )


@attrs.frozen
class HistoryEntry:
    """What a run recorded for one primitive (step, sleep, ...) at one location.

    Identity is ``(run_id, location)``; `PutEntry` replaces an entry in place.
    `Storage.load_history` returns entries in the order they were first written.

    Attributes:
        location: Path of names joined with ``"/"``, e.g. ``"charge"`` or
            ``"loop/3/charge"``.
        kind: The primitive: ``"step"``, ``"sleep"``, ...
        status: ``"started"``, ``"completed"``, ``"failed"`` or ``"waiting"`` by
            convention; storage does not interpret it.
        attempt: Attempt number (>= 0); written before user code runs, so a crash
            never resets it.
        result_json, error_json, data_json: JSON payloads, opaque to storage.
        updated_at: Unix timestamp of the last write.
    """

    run_id: str
    location: str = attrs.field(validator=_valid_location)
    kind: str
    status: str
    attempt: int = attrs.field(validator=_non_negative)
    result_json: str | None = None
    error_json: str | None = None
    data_json: str | None = None
    updated_at: float = attrs.field(default=0.0, converter=_to_float)


# The slots' own setters, in field order: a frozen class refuses `setattr`, and these
# cost less than `object.__setattr__`.
_HISTORY_ENTRY_SETTERS: tuple[Callable[[HistoryEntry, object], None], ...] = tuple(
    HistoryEntry.__dict__[field.name].__set__ for field in attrs.fields(HistoryEntry)
)


def history_entry_from_row(run_id: str, row: Sequence[Any]) -> HistoryEntry:
    """The `HistoryEntry` of `run_id` stored as `row` (the other fields, in declaration
    order), built without `__init__`: the entry was validated when it was written,
    and on a long history the validators were most of the cost of loading it.
    `updated_at` must already be a float."""
    entry: HistoryEntry = object.__new__(HistoryEntry)
    for set_field, value in zip(_HISTORY_ENTRY_SETTERS, (run_id, *row), strict=True):
        set_field(entry, value)
    return entry


@attrs.frozen
class OutboxEvent:
    """An event waiting in (or delivered from) the outbox.

    Attributes:
        id: Assigned by storage, increasing in commit order; the delivery cursor.
        seq: Per-run sequence number chosen by the engine; unique within a run.
        payload_json: The event, JSON-encoded.
        delivered: Set by `Storage.mark_delivered`.
    """

    id: int
    run_id: str
    seq: int
    payload_json: str
    delivered: bool = False


# --------------------------------------------------------------------------- ops

_OPTIONAL_STR = (str, type(None))
_OPTIONAL_FLOAT = (float, int, type(None))

# Which RunRecord fields UpdateRun may set, with the value types each accepts.
# run_id and created_at are identity, never updated.
UPDATABLE_FIELDS: Mapping[str, tuple[type, ...]] = types.MappingProxyType(
    {
        "workflow_name": (str,),
        "input_json": (str,),
        "status": (RunStatus,),
        "updated_at": (float, int),
        "result_json": _OPTIONAL_STR,
        "error_json": _OPTIONAL_STR,
        "wake_at": _OPTIONAL_FLOAT,
        "lease_owner": _OPTIONAL_STR,
        "lease_expires_at": _OPTIONAL_FLOAT,
        "crash_count": (int,),
        "cancel_reason": _OPTIONAL_STR,
    }
)


def _freeze_changes(changes: Mapping[str, object]) -> Mapping[str, object]:
    checked: dict[str, object] = {}
    for name, value in changes.items():
        accepted = UPDATABLE_FIELDS.get(name)
        if accepted is None:
            raise ValueError(
                f"UpdateRun cannot set field {name!r}; updatable fields: "
                + ", ".join(sorted(UPDATABLE_FIELDS))
            )
        if name == "status" and isinstance(value, str) and not isinstance(value, RunStatus):
            try:
                value = RunStatus(value)
            except ValueError:
                raise ValueError(
                    f"UpdateRun field 'status' got {value!r}; expected one of: "
                    + ", ".join(RunStatus)
                ) from None
        # bool is an int subclass, but True is never a meaningful count or timestamp.
        if isinstance(value, bool) or not isinstance(value, accepted):
            raise TypeError(
                f"UpdateRun field {name!r} got {value!r} of type {type(value).__name__}"
            )
        if isinstance(value, int) and name == "crash_count" and value < 0:
            raise ValueError(f"UpdateRun field {name!r} must be >= 0, got {value}")
        checked[name] = value
    return types.MappingProxyType(checked)


def _derived_seq(_instance: object, _attribute: attrs.Attribute[RunRecord], run: RunRecord) -> None:
    if run.next_seq != 0:
        raise ValueError(
            f"InsertRun of run {run.run_id!r}: next_seq must be 0, got {run.next_seq} "
            "(storage derives it from the run's outbox events)"
        )


@attrs.frozen
class InsertRun:
    """Insert a new run. Raises `RunExistsError` if the id is taken (batch rolled back).

    The record's ``next_seq`` must be 0 (``ValueError`` here otherwise): storage
    derives it from the run's outbox events."""

    record: RunRecord = attrs.field(validator=_derived_seq)


@attrs.frozen
class UpdateRun:
    """Set fields of a stored run, optionally as a compare-and-set.

    ``changes`` maps `RunRecord` field names (other than ``run_id`` and
    ``created_at``) to new values; an unknown name raises ``ValueError`` and a value of
    the wrong type ``TypeError``, both here at construction. At apply time, in order:

    * a missing run raises `RunNotFoundError`;
    * if ``expect_status`` / ``expect_owner`` is given and the stored ``status`` /
      ``lease_owner`` differs, `ConflictError` is raised;
    * if ``changes`` contains ``status``, the move is checked with `check_transition`
      (even when the status is unchanged, so only ``running -> running`` is allowed as
      a self-transition and a second completion of a run is refused);
    * ``updated_at`` is set to the storage clock's now unless ``changes`` sets it.

    With no ``changes`` the op writes nothing, not even ``updated_at``: it only checks
    that the run exists and meets the expectations. That is the lease fence a run's
    commits begin with (``UpdateRun(run_id, {}, expect_owner=me)``): it costs a read,
    where rewriting the run's row would add a page to every commit.

    Any error rolls back the whole batch.

    Examples:
        >>> op = UpdateRun("r1", {"status": RunStatus.RUNNING}, expect_owner="engine-a")
        >>> UpdateRun("r1", {"colour": "red"})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: UpdateRun cannot set field 'colour'; updatable fields: ...
    """

    run_id: str
    changes: Mapping[str, object] = attrs.field(converter=_freeze_changes)
    expect_status: RunStatus | None = None
    expect_owner: str | None = None


@attrs.frozen
class PutEntry:
    """Insert or replace the history entry at ``(entry.run_id, entry.location)``.

    A replaced entry keeps its original position in `Storage.load_history`. A missing
    run raises `RunNotFoundError` (batch rolled back).
    """

    entry: HistoryEntry


def _freeze_payloads(payloads: Sequence[tuple[int, str]]) -> tuple[tuple[int, str], ...]:
    frozen = tuple((seq, payload) for seq, payload in payloads)
    for seq, payload in frozen:
        # Checked here, not at apply time, so the bug points at the code that built it.
        if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(payload, str):
            raise TypeError(
                f"AppendEvents payloads must be (int seq, str payload_json), got {(seq, payload)!r}"
            )
    return frozen


@attrs.frozen
class AppendEvents:
    """Append ``(seq, payload_json)`` rows to the outbox for ``run_id``.

    ``payloads`` is copied into a tuple; a pair that is not ``(int, str)`` raises
    ``TypeError`` here. Ids are assigned in order. A missing run raises
    `RunNotFoundError`; a seq already used for the run raises `ConflictError` (field
    ``"seq"``). Either rolls back the whole batch, so the events of a state change are
    never written without it.
    """

    run_id: str
    payloads: Sequence[tuple[int, str]] = attrs.field(converter=_freeze_payloads)


Op: TypeAlias = InsertRun | UpdateRun | PutEntry | AppendEvents


def op_run_id(op: Op) -> str:
    """The run an op writes to."""
    if isinstance(op, InsertRun):
        return op.record.run_id
    if isinstance(op, PutEntry):
        return op.entry.run_id
    return op.run_id


# Shared by the backends so that both enforce exactly the same rules.


def apply_one_by_one(storage: Storage, batches: Sequence[Sequence[Op]]) -> list[Exception | None]:
    """`Storage.apply_each` as one `storage.apply` per batch (a commit each)."""
    outcomes: list[Exception | None] = []
    for ops in batches:
        try:
            storage.apply(ops)
        except Exception as error:
            outcomes.append(error)
        else:
            outcomes.append(None)
    return outcomes


def check_expectations(op: UpdateRun, status: RunStatus, lease_owner: str | None) -> None:
    """Raise the `ConflictError` `UpdateRun` documents if the stored ``status`` or
    ``lease_owner`` is not what `op` expects."""
    if op.expect_status is not None and status != op.expect_status:
        raise ConflictError(op.run_id, "status", op.expect_status, status)
    if op.expect_owner is not None and lease_owner != op.expect_owner:
        raise ConflictError(op.run_id, "lease_owner", op.expect_owner, lease_owner)


def updated_record(current: RunRecord, op: UpdateRun, now: float) -> RunRecord:
    """The record `op` turns `current` into, or the error `UpdateRun` documents."""
    check_expectations(op, current.status, current.lease_owner)
    if not op.changes:
        return current
    new_status = op.changes.get("status")
    if isinstance(new_status, RunStatus):
        check_transition(current.status, new_status, op.run_id)
    changes: dict[str, Any] = dict(op.changes)
    changes.setdefault("updated_at", now)
    return attrs.evolve(current, **changes)


def can_claim(run: RunRecord, owner: str, now: float) -> bool:
    """Whether `Storage.try_claim` by `owner` at `now` succeeds on `run`."""
    return not run.status.is_terminal and (is_lease_free(run, now) or run.lease_owner == owner)


def is_claimable(run: RunRecord, now: float) -> bool:
    """Whether `Storage.claimable_runs` at `now` includes `run`."""
    if run.status.is_terminal or not is_lease_free(run, now):
        return False
    if run.status is RunStatus.PAUSED:
        return run.wake_at is not None and run.wake_at <= now
    return True


def check_limit(limit: int) -> None:
    """Reject a negative query limit (SQLite would read it as "no limit")."""
    if limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")


def check_ttl(ttl: float) -> None:
    """Reject a lease that would be born expired."""
    if not ttl > 0:
        raise ValueError(f"lease ttl must be > 0 seconds, got {ttl}")


# --------------------------------------------------------------------------- protocol


class ClosingContext:
    """`with storage:` closes the storage at the end of the block (both backends)."""

    def close(self) -> None:
        raise NotImplementedError  # pragma: no cover - the backends implement it

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


@runtime_checkable
class Storage(Protocol):
    """Durable state of the workflow engine. Every method is thread-safe.

    Methods raise `StorageError` (or a subclass) on failure; after `close` every
    method except `close` raises `StorageError`.

    Examples:
        >>> from workflow.storage import MemoryStorage
        >>> storage: Storage = MemoryStorage()
        >>> storage.claimable_runs(now=0.0)
        []
    """

    def apply(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` in order in one transaction: all of them take effect or none.

        The first failing op raises its error (`RunExistsError`, `RunNotFoundError`,
        `ConflictError`, `InvalidTransitionError`) and nothing of the batch is kept.
        """
        ...

    def apply_each(self, batches: Sequence[Sequence[Op]]) -> list[Exception | None]:
        """Apply each batch as `apply` would, independently and in order, and return
        each one's outcome: None, or the error that rolled that batch back (a failed
        batch does not affect the others). A backend may make them durable with one
        commit (the engine's group commit relies on this for throughput); if that
        commit fails, none took effect and the error is raised.
        """
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        """The stored run, or None."""
        ...

    def list_runs(
        self,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Runs matching the filters (None = any), newest ``created_at`` first."""
        ...

    def load_history(self, run_id: str) -> list[HistoryEntry]:
        """The run's history entries in first-insertion order ([] for an unknown run)."""
        ...

    def undelivered_events(self, limit: int = 1000, after_id: int = 0) -> list[OutboxEvent]:
        """Up to ``limit`` undelivered outbox events with an id above ``after_id``,
        oldest (lowest id) first. Ids grow in commit order, so a reader that
        remembers the last id it handled can skip what it has handled but not yet
        marked delivered."""
        ...

    def mark_delivered(self, ids: Sequence[int]) -> None:
        """Mark events delivered. Unknown or already-delivered ids are ignored."""
        ...

    def run_events(self, run_id: str) -> list[OutboxEvent]:
        """Every outbox event of the run, delivered or not, by id."""
        ...

    def try_claim(self, run_id: str, owner: str, now: float, ttl: float) -> RunRecord | None:
        """Atomically take the lease on a run; return the updated record, or None.

        Succeeds iff the run exists, is not terminal, and its lease is free at ``now``
        (see `is_lease_free`) or already held by ``owner``; then ``lease_owner`` is
        ``owner`` and ``lease_expires_at`` is ``now + ttl``. Status is not changed.
        """
        ...

    def renew_leases(self, owner: str, now: float, ttl: float) -> list[str]:
        """Set ``lease_expires_at = now + ttl`` on every non-terminal run ``owner`` holds.

        Returns the renewed run ids (sorted). A run another owner has claimed since is
        not ``owner``'s any more and is not renewed: its absence tells the caller to stop.
        """
        ...

    def release_lease(self, run_id: str, owner: str) -> None:
        """Clear the lease if ``owner`` holds it; otherwise (or unknown run) do nothing."""
        ...

    def claimable_runs(self, now: float, limit: int = 100) -> list[RunRecord]:
        """Runs an engine should pick up at ``now``, oldest ``created_at`` first.

        Non-terminal runs with a free lease that are queued, running (a running run
        with a free lease is one whose owner crashed), or paused with a due ``wake_at``.
        """
        ...

    def next_wake_at(self) -> float | None:
        """The earliest ``wake_at`` of any paused run, or None."""
        ...

    def close(self) -> None:
        """Release resources. Idempotent."""
        ...
