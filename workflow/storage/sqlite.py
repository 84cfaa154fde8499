"""`SqliteStorage`: the default `Storage`, one SQLite file in WAL mode.

Durability is chosen with ``synchronous``:

* ``"FULL"`` (default): every committed `apply` is fsynced before it returns; it
  survives a process crash and an OS crash or power loss.
* ``"NORMAL"``: in WAL mode a commit survives a crash of the process, but the last
  commits may be lost on an OS crash or power loss (the WAL is fsynced only at
  checkpoints). The database is never corrupted.
* ``"OFF"``: no fsync at all; for tests and benchmarks. An OS crash can corrupt it.

Two writes are never fsynced, whatever the mode, because losing them is harmless:
`mark_delivered` (a forgotten mark means the events are delivered again, and
delivery is at least once anyway) and `release_lease` (a forgotten release means the
lease runs out instead). In WAL mode the next fsynced commit makes them durable too,
and an unsynced commit can be lost but cannot corrupt the file.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import attrs

from workflow.storage.base import (
    TERMINAL_STATUSES,
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
    SchemaVersionError,
    StorageError,
    UpdateRun,
    can_claim,
    check_expectations,
    check_limit,
    check_ttl,
    history_entry_from_row,
    updated_record,
)

__all__ = ["SCHEMA_VERSION", "SqliteStorage", "Synchronous"]

Synchronous = Literal["FULL", "NORMAL", "OFF"]

# Each migration is the list of statements that takes the schema from version i to
# i + 1, applied in one transaction. Append new migrations; never edit old ones, since
# files in the field were created by them.
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY,
            workflow_name TEXT NOT NULL,
            input_json TEXT NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            result_json TEXT,
            error_json TEXT,
            wake_at REAL,
            lease_owner TEXT,
            lease_expires_at REAL,
            crash_count INTEGER NOT NULL DEFAULT 0,
            next_seq INTEGER NOT NULL DEFAULT 0,
            cancel_reason TEXT
        )
        """,
        "CREATE INDEX runs_by_created ON runs (created_at)",
        "CREATE INDEX runs_by_status ON runs (status, created_at)",
        "CREATE INDEX runs_by_workflow ON runs (workflow_name, created_at)",
        "CREATE INDEX runs_by_owner ON runs (lease_owner) WHERE lease_owner IS NOT NULL",
        "CREATE INDEX runs_paused_by_wake ON runs (wake_at) WHERE status = 'paused'",
        # ord (the rowid) records first insertion; upserts keep it, so ORDER BY ord is
        # the order in which the run first visited each location.
        """
        CREATE TABLE history (
            ord INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            location TEXT NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            attempt INTEGER NOT NULL,
            result_json TEXT,
            error_json TEXT,
            data_json TEXT,
            updated_at REAL NOT NULL,
            UNIQUE (run_id, location)
        )
        """,
        "CREATE INDEX history_by_run ON history (run_id, ord)",
        # AUTOINCREMENT so an id is never handed out twice, even after the newest
        # events are pruned: delivery cursors may rely on ids only growing.
        """
        CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            payload_json TEXT NOT NULL,
            delivered INTEGER NOT NULL DEFAULT 0,
            UNIQUE (run_id, seq)
        )
        """,
        "CREATE INDEX outbox_undelivered ON outbox (id) WHERE delivered = 0",
    ),
    # Version 2: fewer pages written by each commit of a run (9 before, 5 now), which
    # makes a step's fsync and the checkpoints cheaper (design note, section 8).
    # - history_by_run goes: the (run_id, location) key finds a run's rows, and
    #   load_history sorts them by ord.
    # - The outbox loses AUTOINCREMENT, which rewrote sqlite_sequence at every
    #   commit. Outbox rows are never deleted, so plain rowids still only grow (a
    #   pruning added later must keep the newest row).
    # - The outbox loses its partial index of undelivered rows. Readers page by id
    #   instead, starting at outbox_delivered_below: every event with a lower id is
    #   delivered (one row, advanced by mark_delivered).
    # - runs.next_seq is no longer written: it is derived from the outbox (see
    #   RunRecord.next_seq). The column stays, unused: dropping one needs SQLite 3.35.
    (
        "DROP INDEX history_by_run",
        "DROP INDEX outbox_undelivered",
        """
        CREATE TABLE outbox_v2 (
            id INTEGER PRIMARY KEY,
            run_id TEXT NOT NULL,
            seq INTEGER NOT NULL,
            payload_json TEXT NOT NULL,
            delivered INTEGER NOT NULL DEFAULT 0,
            UNIQUE (run_id, seq)
        )
        """,
        "INSERT INTO outbox_v2 (id, run_id, seq, payload_json, delivered) "
        "SELECT id, run_id, seq, payload_json, delivered FROM outbox",
        "DROP TABLE outbox",
        "ALTER TABLE outbox_v2 RENAME TO outbox",
        "CREATE TABLE outbox_delivered_below (id INTEGER NOT NULL)",
        "INSERT INTO outbox_delivered_below "
        "SELECT COALESCE(MIN(id), (SELECT COALESCE(MAX(id), 0) + 1 FROM outbox)) "
        "FROM outbox WHERE delivered = 0",
    ),
)

SCHEMA_VERSION = len(_MIGRATIONS)
"""The schema version this library writes; files with a higher one are refused."""

_RUN_COLUMNS = (
    "run_id, workflow_name, input_json, status, created_at, updated_at, result_json, "
    "error_json, wake_at, lease_owner, lease_expires_at, crash_count, cancel_reason"
)
# The columns of a RunRecord, next_seq last: derived from the outbox (the UNIQUE
# (run_id, seq) index makes it one lookup), never stored.
_SELECT_RUNS = (
    f"SELECT {_RUN_COLUMNS}, "
    "(SELECT COALESCE(MAX(o.seq) + 1, 0) FROM outbox AS o WHERE o.run_id = runs.run_id) "
    "FROM runs"
)
# A run's history is read without its run_id, which the caller already has: one string
# less to build per row.
_ENTRY_COLUMNS = "location, kind, status, attempt, result_json, error_json, data_json, updated_at"
_HISTORY_COLUMNS = f"run_id, {_ENTRY_COLUMNS}"
_EVENT_COLUMNS = "id, run_id, seq, payload_json, delivered"
_NOT_TERMINAL = "status NOT IN ({})".format(
    ", ".join(f"'{status}'" for status in sorted(TERMINAL_STATUSES))
)
_LEASE_FREE = "(lease_owner IS NULL OR lease_expires_at IS NULL OR lease_expires_at <= :now)"


def _run_from_row(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        workflow_name=row[1],
        input_json=row[2],
        status=RunStatus(row[3]),
        created_at=row[4],
        updated_at=row[5],
        result_json=row[6],
        error_json=row[7],
        wake_at=row[8],
        lease_owner=row[9],
        lease_expires_at=row[10],
        crash_count=row[11],
        cancel_reason=row[12],
        next_seq=row[13],
    )


def _run_to_row(run: RunRecord) -> tuple[object, ...]:
    return (
        run.run_id,
        run.workflow_name,
        run.input_json,
        run.status.value,
        run.created_at,
        run.updated_at,
        run.result_json,
        run.error_json,
        run.wake_at,
        run.lease_owner,
        run.lease_expires_at,
        run.crash_count,
        run.cancel_reason,
    )


def _to_sql(value: object) -> object:
    return value.value if isinstance(value, RunStatus) else value


def _event_from_row(row: Sequence[Any]) -> OutboxEvent:
    return OutboxEvent(
        id=row[0], run_id=row[1], seq=row[2], payload_json=row[3], delivered=bool(row[4])
    )


class SqliteStorage(ClosingContext):
    """`Storage` in one SQLite file, in WAL mode; safe to share between processes.

    Threads: one connection, used under one lock. Every method holds the lock for its
    whole transaction, so calls from many threads are serialized. SQLite admits one
    writer at a time anyway, and the calls are short, so a connection per thread would
    add bookkeeping (and a close that reaches into other threads) for little gain.

    Processes: each write runs in ``BEGIN IMMEDIATE``, which takes the database write
    lock up front, so writers in different processes serialize instead of failing on
    lock upgrade. A writer that finds the lock taken waits up to ``busy_timeout_s``
    seconds, then fails with `StorageError` (cause: ``sqlite3.OperationalError``).
    Readers never block writers (WAL).

    Schema: a ``schema_version`` table records the version; at open, missing
    migrations are applied in one transaction. A file with a newer version than this
    library knows raises `SchemaVersionError`.

    Errors: every ``sqlite3.Error`` is re-raised as `StorageError` with the driver
    error as ``__cause__``; a failed `apply` rolls back its whole transaction.

    Args:
        path: Database file (created if missing), or ``":memory:"`` for a private
            in-memory database (no WAL, nothing persisted).
        synchronous: ``"FULL"`` (default; durable against power loss), ``"NORMAL"``
            (durable against process crash only) or ``"OFF"``; see the module docs.
        busy_timeout_s: How long a write waits for another process's write lock.
        clock: Source of the ``updated_at`` timestamps `UpdateRun` writes.

    Examples:
        >>> import tempfile, os
        >>> from workflow.storage import InsertRun, RunRecord, RunStatus
        >>> path = os.path.join(tempfile.mkdtemp(), "wf.db")
        >>> with SqliteStorage(path) as storage:
        ...     storage.apply([InsertRun(RunRecord("r1", "wf", "{}", RunStatus.QUEUED, 0, 0))])
        >>> with SqliteStorage(path) as storage:
        ...     storage.get_run("r1").status
        <RunStatus.QUEUED: 'queued'>
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        synchronous: Synchronous = "FULL",
        busy_timeout_s: float = 5.0,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ValueError(f"synchronous must be 'FULL', 'NORMAL' or 'OFF', got {synchronous!r}")
        self.path = os.fspath(path)
        self.synchronous: Synchronous = synchronous
        self._clock = clock
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: the sqlite3 module issues no implicit BEGIN; every
            # transaction here is opened explicitly with BEGIN IMMEDIATE.
            conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,
            )
        except sqlite3.Error as error:
            raise StorageError(f"cannot open {self.path}: {error}", operation="open") from error
        try:
            self._configure(conn)
            self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _configure(self, conn: sqlite3.Connection) -> None:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        except sqlite3.Error as error:
            raise StorageError(
                f"cannot configure {self.path}: {error}", operation="open"
            ) from error
        if mode != "wal" and self.path != ":memory:":
            # Without WAL, readers block writers and the durability modes above do not
            # hold; better to refuse than to be silently slower and less safe.
            raise StorageError(
                f"{self.path}: could not enable WAL journal mode (got {mode!r}); "
                "is the file on a network filesystem?",
                operation="open",
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = conn.execute("SELECT version FROM schema_version").fetchone()
                found = 0 if row is None else int(row[0])
                if found > SCHEMA_VERSION:
                    raise SchemaVersionError(self.path, found, SCHEMA_VERSION)
                for statements in _MIGRATIONS[found:]:
                    for statement in statements:
                        conn.execute(statement)
                if row is None:
                    conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
                elif found != SCHEMA_VERSION:
                    conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:
            raise StorageError(
                f"cannot migrate {self.path} to schema version {SCHEMA_VERSION}: {error}",
                operation="open",
            ) from error

    def __repr__(self) -> str:
        return f"SqliteStorage({self.path!r}, synchronous={self.synchronous!r})"

    # ------------------------------------------------------------------ plumbing

    @contextmanager
    def _read(self, operation: str) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection(operation)
            try:
                yield conn
            except sqlite3.Error as error:
                raise StorageError(f"{operation} failed: {error}", operation=operation) from error

    @contextmanager
    def _write(self, operation: str, *, durable: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._connection(operation)
            # `synchronous` can only change outside a transaction, and is restored
            # before the lock is let go, so every other write keeps its mode.
            relaxed = not durable and self.synchronous != "OFF"
            try:
                if relaxed:
                    conn.execute("PRAGMA synchronous = OFF")
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        yield conn
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                finally:
                    if relaxed:
                        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            except sqlite3.Error as error:
                raise StorageError(f"{operation} failed: {error}", operation=operation) from error

    def _connection(self, operation: str) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"{operation}: storage is closed", operation=operation)
        return self._conn

    @staticmethod
    def _select_run(conn: sqlite3.Connection, run_id: str) -> RunRecord | None:
        row = conn.execute(f"{_SELECT_RUNS} WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else _run_from_row(row)

    # ------------------------------------------------------------------ writes

    def apply(self, ops: Sequence[Op]) -> None:
        """Apply ``ops`` in one ``BEGIN IMMEDIATE`` transaction; see `Storage.apply`."""
        with self._write("apply") as conn:
            self._apply_batch(conn, ops, self._clock())

    def apply_each(self, batches: Sequence[Sequence[Op]]) -> list[Exception | None]:
        """Apply each batch in its own savepoint of ONE transaction: a batch that
        fails is rolled back alone, and all of them are made durable by a single
        commit (one fsync); see `Storage.apply_each`. A driver error, or a failure of
        that commit, rolls everything back and raises `StorageError`."""
        outcomes: list[Exception | None] = []
        with self._write("apply") as conn:
            now = self._clock()
            for ops in batches:
                conn.execute("SAVEPOINT batch")
                try:
                    self._apply_batch(conn, ops, now)
                except (StorageError, TypeError) as error:
                    conn.execute("ROLLBACK TO batch")
                    outcomes.append(error)
                else:
                    outcomes.append(None)
                conn.execute("RELEASE batch")
        return outcomes

    def _apply_batch(self, conn: sqlite3.Connection, ops: Sequence[Op], now: float) -> None:
        # Runs this batch already proved to exist, to skip re-checking per op.
        known: set[str] = set()
        for op in ops:
            self._apply_one(conn, op, now, known)

    def _apply_one(self, conn: sqlite3.Connection, op: Op, now: float, known: set[str]) -> None:
        if isinstance(op, InsertRun):
            try:
                conn.execute(
                    f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' * 13)})",
                    _run_to_row(op.record),
                )
            except sqlite3.IntegrityError:
                raise RunExistsError(op.record.run_id) from None
            known.add(op.record.run_id)
        elif isinstance(op, UpdateRun):
            if not op.changes:
                self._check_expectations(conn, op)
                known.add(op.run_id)
                return
            if "status" not in op.changes and self._update_if_expected(conn, op, now):
                known.add(op.run_id)
                return
            current = self._select_run(conn, op.run_id)
            if current is None:
                raise RunNotFoundError(op.run_id)
            updated = updated_record(current, op, now)
            # SET only the changed columns: SQLite rewrites the index entries of every
            # column named in SET, changed or not, and runs has five indexes. The names
            # are safe to splice in: UpdateRun admits only RunRecord field names.
            columns = [*dict.fromkeys([*op.changes, "updated_at"])]
            values = [_to_sql(getattr(updated, column)) for column in columns]
            conn.execute(
                f"UPDATE runs SET {', '.join(f'{column} = ?' for column in columns)} "
                "WHERE run_id = ?",
                (*values, op.run_id),
            )
            known.add(op.run_id)
        elif isinstance(op, PutEntry):
            entry = op.entry
            self._require_run(conn, entry.run_id, known)
            conn.execute(
                f"INSERT INTO history ({_HISTORY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id, location) DO UPDATE SET kind = excluded.kind, "
                "status = excluded.status, attempt = excluded.attempt, "
                "result_json = excluded.result_json, error_json = excluded.error_json, "
                "data_json = excluded.data_json, updated_at = excluded.updated_at",
                (
                    entry.run_id,
                    entry.location,
                    entry.kind,
                    entry.status,
                    entry.attempt,
                    entry.result_json,
                    entry.error_json,
                    entry.data_json,
                    entry.updated_at,
                ),
            )
        elif isinstance(op, AppendEvents):
            self._require_run(conn, op.run_id, known)
            for seq, payload in op.payloads:
                try:
                    conn.execute(
                        "INSERT INTO outbox (run_id, seq, payload_json) VALUES (?, ?, ?)",
                        (op.run_id, seq, payload),
                    )
                except sqlite3.IntegrityError:
                    raise ConflictError(op.run_id, "seq", "an unused seq", seq) from None
        else:
            raise TypeError(f"not a storage op: {op!r}")

    @staticmethod
    def _check_expectations(conn: sqlite3.Connection, op: UpdateRun) -> None:
        """The fence (an `UpdateRun` without changes): a read, no write."""
        row = conn.execute(
            "SELECT status, lease_owner FROM runs WHERE run_id = ?", (op.run_id,)
        ).fetchone()
        if row is None:
            raise RunNotFoundError(op.run_id)
        check_expectations(op, RunStatus(row[0]), row[1])

    @staticmethod
    def _update_if_expected(conn: sqlite3.Connection, op: UpdateRun, now: float) -> bool:
        """The common update (no status change, so no transition to check) as one
        statement whose WHERE holds the expectations. False if no row matched: the
        caller then reads the run to raise the exact error."""
        changes = {**op.changes}
        changes.setdefault("updated_at", now)
        where = "run_id = ?"
        params = [_to_sql(value) for value in changes.values()]
        params.append(op.run_id)
        if op.expect_status is not None:
            where += " AND status = ?"
            params.append(op.expect_status.value)
        if op.expect_owner is not None:
            where += " AND lease_owner = ?"
            params.append(op.expect_owner)
        cursor = conn.execute(
            f"UPDATE runs SET {', '.join(f'{column} = ?' for column in changes)} WHERE {where}",
            params,
        )
        return cursor.rowcount == 1

    @staticmethod
    def _require_run(conn: sqlite3.Connection, run_id: str, known: set[str]) -> None:
        if run_id in known:
            return
        if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone() is None:
            raise RunNotFoundError(run_id)
        known.add(run_id)

    # ------------------------------------------------------------------ reads

    def get_run(self, run_id: str) -> RunRecord | None:
        """The stored run, or None."""
        with self._read("get_run") as conn:
            return self._select_run(conn, run_id)

    def list_runs(
        self,
        status: RunStatus | None = None,
        workflow_name: str | None = None,
        limit: int = 100,
    ) -> list[RunRecord]:
        """Runs matching the filters, newest first (ties: last inserted first)."""
        check_limit(limit)
        conditions: list[str] = []
        params: list[object] = []
        if status is not None:
            conditions.append("status = ?")
            params.append(RunStatus(status).value)
        if workflow_name is not None:
            conditions.append("workflow_name = ?")
            params.append(workflow_name)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._read("list_runs") as conn:
            rows = conn.execute(
                f"{_SELECT_RUNS} {where} ORDER BY created_at DESC, rowid DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [_run_from_row(row) for row in rows]

    def load_history(self, run_id: str) -> list[HistoryEntry]:
        """The run's entries in first-insertion order."""
        with self._read("load_history") as conn:
            rows = conn.execute(
                f"SELECT {_ENTRY_COLUMNS} FROM history WHERE run_id = ? ORDER BY ord",
                (run_id,),
            ).fetchall()
        return [history_entry_from_row(run_id, row) for row in rows]

    def undelivered_events(self, limit: int = 1000, after_id: int = 0) -> list[OutboxEvent]:
        """Undelivered events with an id above ``after_id``, lowest id first."""
        check_limit(limit)
        with self._read("undelivered_events") as conn:
            # A range of ids, from the cursor or from the delivered prefix: with no
            # index of undelivered rows (see the migrations), that keeps the read
            # from going over every event ever delivered.
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM outbox "
                "WHERE id > MAX(?, (SELECT id - 1 FROM outbox_delivered_below)) "
                "AND delivered = 0 ORDER BY id LIMIT ?",
                (after_id, limit),
            ).fetchall()
        return [_event_from_row(row) for row in rows]

    def mark_delivered(self, ids: Sequence[int]) -> None:
        """Mark events delivered; unknown or already-delivered ids are ignored. Not
        fsynced (see the module docs)."""
        if not ids:
            return
        with self._write("mark_delivered", durable=False) as conn:
            conn.executemany(
                "UPDATE outbox SET delivered = 1 WHERE id = ?", [(event_id,) for event_id in ids]
            )
            # Advance the delivered prefix to the first event still undelivered (a
            # scan from the old one, over about the rows just marked) or past the end.
            conn.execute(
                "UPDATE outbox_delivered_below SET id = COALESCE("
                "(SELECT MIN(o.id) FROM outbox AS o "
                "WHERE o.id >= outbox_delivered_below.id AND o.delivered = 0), "
                "(SELECT COALESCE(MAX(o.id), 0) + 1 FROM outbox AS o))"
            )

    def run_events(self, run_id: str) -> list[OutboxEvent]:
        """Every event of the run, by id."""
        with self._read("run_events") as conn:
            rows = conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM outbox WHERE run_id = ? ORDER BY id", (run_id,)
            ).fetchall()
        return [_event_from_row(row) for row in rows]

    # ------------------------------------------------------------------ leases

    def try_claim(self, run_id: str, owner: str, now: float, ttl: float) -> RunRecord | None:
        """Take the lease on a run if it is free or already ours; see `Storage.try_claim`.

        The read and the write happen inside one ``BEGIN IMMEDIATE`` transaction, so
        of two processes racing for a run exactly one gets it.
        """
        check_ttl(ttl)
        with self._write("try_claim") as conn:
            run = self._select_run(conn, run_id)
            if run is None or not can_claim(run, owner, now):
                return None
            expires_at = now + ttl
            conn.execute(
                "UPDATE runs SET lease_owner = ?, lease_expires_at = ? WHERE run_id = ?",
                (owner, expires_at, run_id),
            )
            return attrs.evolve(run, lease_owner=owner, lease_expires_at=expires_at)

    def renew_leases(self, owner: str, now: float, ttl: float) -> list[str]:
        """Extend every non-terminal lease ``owner`` holds; return the run ids, sorted."""
        check_ttl(ttl)
        with self._write("renew_leases") as conn:
            where = f"lease_owner = ? AND {_NOT_TERMINAL}"
            ids = [
                row[0]
                for row in conn.execute(
                    f"SELECT run_id FROM runs WHERE {where} ORDER BY run_id", (owner,)
                )
            ]
            if ids:
                conn.execute(
                    f"UPDATE runs SET lease_expires_at = ? WHERE {where}", (now + ttl, owner)
                )
            return ids

    def release_lease(self, run_id: str, owner: str) -> None:
        """Clear the lease if ``owner`` holds it; otherwise do nothing. Not fsynced
        (see the module docs)."""
        with self._write("release_lease", durable=False) as conn:
            conn.execute(
                "UPDATE runs SET lease_owner = NULL, lease_expires_at = NULL "
                "WHERE run_id = ? AND lease_owner = ?",
                (run_id, owner),
            )

    def claimable_runs(self, now: float, limit: int = 100) -> list[RunRecord]:
        """Runs to pick up at ``now``, oldest first; see `Storage.claimable_runs`."""
        check_limit(limit)
        with self._read("claimable_runs") as conn:
            rows = conn.execute(
                f"{_SELECT_RUNS} "
                f"WHERE {_NOT_TERMINAL} AND {_LEASE_FREE} "
                "AND (status != 'paused' OR (wake_at IS NOT NULL AND wake_at <= :now)) "
                "ORDER BY created_at, rowid LIMIT :limit",
                {"now": now, "limit": limit},
            ).fetchall()
        return [_run_from_row(row) for row in rows]

    def next_wake_at(self) -> float | None:
        """The earliest ``wake_at`` of any paused run, or None."""
        with self._read("next_wake_at") as conn:
            row = conn.execute(
                "SELECT MIN(wake_at) FROM runs WHERE status = 'paused' AND wake_at IS NOT NULL"
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def close(self) -> None:
        """Close the connection. Idempotent; later calls raise `StorageError`."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
