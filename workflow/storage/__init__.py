"""Durable storage of the workflow engine: runs, their history, and the event outbox.

`Storage` is the protocol the engine talks to; `MemoryStorage` keeps everything in
the process (tests), `SqliteStorage` in one SQLite file (the default). Writes are
batches of ops (`InsertRun`, `UpdateRun`, `PutEntry`, `AppendEvents`) applied
atomically by `Storage.apply`. See ``docs/workflow/storage.md``.
"""

from workflow.storage.base import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    AppendEvents,
    ConflictError,
    HistoryEntry,
    InsertRun,
    InvalidTransitionError,
    Op,
    OutboxEvent,
    PutEntry,
    RunExistsError,
    RunNotFoundError,
    RunRecord,
    RunStatus,
    SchemaVersionError,
    Storage,
    StorageError,
    UpdateRun,
    apply_one_by_one,
    check_transition,
    is_lease_free,
)
from workflow.storage.memory import MemoryStorage
from workflow.storage.sqlite import SCHEMA_VERSION, SqliteStorage, Synchronous

__all__ = [
    "ALLOWED_TRANSITIONS",
    "SCHEMA_VERSION",
    "TERMINAL_STATUSES",
    "AppendEvents",
    "ConflictError",
    "HistoryEntry",
    "InsertRun",
    "InvalidTransitionError",
    "MemoryStorage",
    "Op",
    "OutboxEvent",
    "PutEntry",
    "RunExistsError",
    "RunNotFoundError",
    "RunRecord",
    "RunStatus",
    "SchemaVersionError",
    "SqliteStorage",
    "Storage",
    "StorageError",
    "Synchronous",
    "UpdateRun",
    "apply_one_by_one",
    "check_transition",
    "is_lease_free",
]
