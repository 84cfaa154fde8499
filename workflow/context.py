"""`WorkflowContext`: the service a running workflow's primitives talk to.

One `RunContext` exists per execution of a run. It holds the run's history (what
earlier executions recorded, by location), the locations this execution visited,
and the next event `seq`; and it is the only way primitives write: `commit(ops,
events)` applies state changes and the events describing them in ONE storage
transaction (the outbox), so an event is durable exactly when its state change is.

`stage(ops, events, on_failure)` holds a write for the run's next transaction
instead: a step's result rides along with the next step's start, so a step costs one
commit, not two. What is staged is never lost silently: it lands with the next
commit, or the engine flushes it alone as soon as the run's fiber waits on anything
else; if the transaction carrying it fails, `on_failure` decides what that means
(for a step: phase `after` of that step, see `workflow.primitives.step`).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Never

import attrs

import effect as fx
from effect._effect import get_local, locally
from tracker.events import Event
from workflow.errors import HistoryDivergedError, NestedPrimitiveError
from workflow.storage import AppendEvents, HistoryEntry, Op, PutEntry, Storage, UpdateRun

__all__ = ["RunContext", "StagedWriteFailed", "WorkflowContext"]

# Fiber-local: (the path of scope names the fiber is in, the step (if any) whose user
# effect it is running). Fiber-local so that parallel branches added later each carry
# their own; one key, so that `enter` reads both at once.
_SCOPE = object()
_TOP: tuple[tuple[str, ...], str | None] = ((), None)


@attrs.frozen
class _Staged:
    ops: Sequence[Op]
    events: Sequence[Event]
    on_failure: Callable[[Exception], fx.Effect[Never, Never, Never]]


@attrs.frozen
class _Pending:
    """A prepared commit: what to apply, and what to record once it is applied."""

    batch: Sequence[Op]
    ops: Sequence[Op]
    next_seq: int
    events: Sequence[Event]
    staged: _Staged | None
    clears_crashes: bool

    def failure(self, error: Exception) -> Exception:
        """The error a failed apply of `batch` is reported as."""
        return error if self.staged is None else StagedWriteFailed(self.staged, error)


class StagedWriteFailed(Exception):
    """A transaction that carried a staged write failed (raised by `commit_now`);
    `error` is what storage raised. The staged write is dropped: its `on_failure`
    owns the consequences."""

    def __init__(self, staged: _Staged, error: Exception) -> None:
        super().__init__(str(error))
        self.staged = staged
        self.error = error


class RunContext:
    """The state of one execution of one run. Made by the engine; primitives use it
    through `yield from WorkflowContext`."""

    def __init__(
        self,
        *,
        run_id: str,
        workflow_name: str,
        storage: Storage,
        owner: str,
        history: Sequence[HistoryEntry],
        next_seq: int,
        now: Callable[[], float],
        in_memory_wait: float,
        on_commit: Callable[[Sequence[Event]], None],
        on_stage: Callable[[RunContext], None] = lambda ctx: ctx.flush_staged(),
        write: Callable[[Sequence[Op]], fx.Effect[None, Exception, Never]] | None = None,
        seed: int | None = None,
    ) -> None:
        self.run_id = run_id
        self.workflow_name = workflow_name
        self.storage = storage
        self.owner = owner
        self.history: dict[str, HistoryEntry] = {e.location: e for e in history}
        self.visited: set[str] = set()
        self.next_seq = next_seq
        self.now = now
        self.in_memory_wait = in_memory_wait
        self.rng = random.Random(seed)
        self.interrupt_reason: str | None = None
        # Set when `Engine.resume` asked for the run now: the first wait it is paused
        # on (a sleep or a retry backoff) is over.
        self.skip_next_wait = False
        self.current_step: tuple[str, int] | None = None
        # Set when the run's stored crash count is above zero: the first step result
        # this execution stores is progress, and clears it (see `_prepare`).
        self.clear_crashes = False
        self._on_commit = on_commit
        self._on_stage = on_stage
        # How `commit` applies a batch: the engine's group commit, or storage directly.
        self._write = write or (lambda batch: fx.try_(lambda: storage.apply(batch), catch=_same))
        self._staged: _Staged | None = None

    # -- events and commits ---------------------------------------------------------

    def event(self, cls: type[Event], **fields: Any) -> Event:
        """An event of this run (envelope filled in; `seq` is assigned at commit)."""
        return cls(
            workflow_id=self.run_id,
            workflow_name=self.workflow_name,
            execution_id=self.run_id,
            **fields,
        )

    def commit_now(self, ops: Sequence[Op], events: Sequence[Event] = ()) -> None:
        """Apply what is staged, then `ops`, and append `events` to the outbox, in one
        transaction fenced by the lease: if another engine took the run, the commit
        fails with a `ConflictError` and nothing is written. Raises what storage
        raises, wrapped in `StagedWriteFailed` if the transaction carried a staged
        write (which is then dropped)."""
        pending = self._prepare(ops, events)
        try:
            self.storage.apply(pending.batch)
        except Exception as error:
            raise pending.failure(error) from error
        self._committed(pending)

    def write(
        self, ops: Sequence[Op], events: Sequence[Event] = ()
    ) -> fx.Effect[None, Exception, Never]:
        """`commit_now` as an effect, through the engine's group commit: it fails with
        what `commit_now` would raise."""

        def run() -> fx.Effect[None, Exception, Never]:
            pending = self._prepare(ops, events)
            return (
                self._write(pending.batch)
                .map_error(pending.failure)
                .map(lambda _: self._committed(pending))
            )

        return fx.suspend(run)

    def commit(
        self, ops: Sequence[Op], events: Sequence[Event] = ()
    ) -> fx.Effect[None, Exception, Never]:
        """`write`, for primitives: if the transaction carried a staged write, that
        write's `on_failure` runs instead of failing with the error."""

        def failed(error: Exception) -> fx.Effect[None, Exception, Never]:
            if isinstance(error, StagedWriteFailed):
                return error.staged.on_failure(error.error)
            return fx.fail(error)

        # No yield needed after it: through the engine's group commit, the run's
        # fiber waits for the writer, so other fibers run at every commit.
        return self.write(ops, events).catch_all(failed)

    def _prepare(self, ops: Sequence[Op], events: Sequence[Event]) -> _Pending:
        """The batch of one commit: the lease fence, the staged write (taken), `ops`,
        and the events numbered from `next_seq`."""
        staged, self._staged = self._staged, None
        if staged is not None:
            ops = [*staged.ops, *ops]
            events = [*staged.events, *events]
        numbered = [_number(e, self.next_seq + i) for i, e in enumerate(events)]
        next_seq = self.next_seq + len(numbered)
        # The fence writes nothing unless there is a change to make: storage derives
        # the run's next_seq from its events.
        changes: dict[str, object] = {}
        # A crash loop is crashing again and again without progress: a stored step
        # result is progress, so it resets the crash count.
        clears_crashes = self.clear_crashes and staged is not None
        if clears_crashes:
            changes["crash_count"] = 0
        # The fence first: a run taken over fails at once, and once it passed, the
        # run is known to exist for the ops after it.
        batch: list[Op] = [UpdateRun(self.run_id, changes, expect_owner=self.owner), *ops]
        if numbered:
            batch.append(AppendEvents(self.run_id, [(e.seq, e.to_json()) for e in numbered]))
        return _Pending(batch, ops, next_seq, numbered, staged, clears_crashes)

    def _committed(self, pending: _Pending) -> None:
        self.next_seq = pending.next_seq
        if pending.clears_crashes:
            self.clear_crashes = False
        for op in pending.ops:
            if isinstance(op, PutEntry):
                self.history[op.entry.location] = op.entry
        if pending.events:
            self._on_commit(pending.events)

    def stage(
        self,
        ops: Sequence[Op],
        events: Sequence[Event],
        on_failure: Callable[[Exception], fx.Effect[Never, Never, Never]],
    ) -> None:
        """Hold `ops` and `events` for the run's next transaction (see the module
        docs). `on_failure(error)` runs, in the run's fiber, if the transaction that
        carries them fails."""
        staged = _Staged(list(ops), list(events), on_failure)
        if self._staged is not None:
            # Two staged writes without a commit between them travel together; the
            # first one's `on_failure` speaks for the transaction, and an entry of the
            # second left `started` is settled when the run ends (as after a crash).
            first = self._staged
            staged = _Staged(
                [*first.ops, *staged.ops], [*first.events, *staged.events], first.on_failure
            )
        self._staged = staged
        self._on_stage(self)

    def flush_staged(self) -> None:
        """Commit what is staged, alone, if anything is. On failure it stays staged:
        the run's next commit tries it again and reports its failure."""
        staged = self._staged
        if staged is None:
            return
        try:
            self.commit_now(())
        except StagedWriteFailed:
            self._staged = staged

    def staged_locations(self) -> set[str]:
        """The locations of history entries written by the staged write."""
        if self._staged is None:
            return set()
        return {op.entry.location for op in self._staged.ops if isinstance(op, PutEntry)}

    def take_skip_wait(self) -> bool:
        """True once if the pending wait should be skipped (see `skip_next_wait`)."""
        skip, self.skip_next_wait = self.skip_next_wait, False
        return skip

    def entry(
        self, location: str, kind: str, status: str, attempt: int, **payload: str | None
    ) -> HistoryEntry:
        """A history entry of this run at `location`."""
        return HistoryEntry(
            run_id=self.run_id,
            location=location,
            kind=kind,
            status=status,
            attempt=attempt,
            updated_at=self.now(),
            **payload,
        )

    # -- locations ------------------------------------------------------------------

    def enter(self, name: str, kind: str) -> fx.Effect[str, Never, Never]:
        """Claim the location of primitive `name` in the current scope. Dies with
        `NestedPrimitiveError` inside a step, and with `HistoryDivergedError` if the
        name was already used in this scope or history has another kind there."""
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"a {kind} name must be a non-empty string without '/', got {name!r}")

        def check(scope: tuple[tuple[str, ...], str | None] | None) -> fx.Effect[str, Never, Never]:
            path, in_step = scope or _TOP
            if in_step is not None:
                return fx.die(NestedPrimitiveError(kind, name, str(in_step)))
            location = "/".join((*path, name))
            if location in self.visited:
                return fx.die(
                    HistoryDivergedError(location, f"the name {name!r} is used twice in one scope")
                )
            recorded = self.history.get(location)
            if recorded is not None and recorded.kind != kind:
                return fx.die(
                    HistoryDivergedError(
                        location, f"history has a {recorded.kind} here, the code a {kind}"
                    )
                )
            self.visited.add(location)
            return fx.succeed(location)

        return get_local(_SCOPE).flat_map(check)

    def unvisited(self) -> list[str]:
        """History locations this execution never reached."""
        return [loc for loc in self.history if loc not in self.visited]


def inside_step(effect: fx.Effect[Any, Any, Any], step_name: str) -> fx.Effect[Any, Any, Any]:
    """Run `effect` marked as the user effect of step `step_name`."""
    return locally(effect, _SCOPE, lambda scope: ((scope or _TOP)[0], step_name))


def in_scope(effect: fx.Effect[Any, Any, Any], name: str) -> fx.Effect[Any, Any, Any]:
    """Run `effect` one scope deeper: its primitives' locations start with `name/`."""

    def deeper(
        scope: tuple[tuple[str, ...], str | None] | None,
    ) -> tuple[tuple[str, ...], str | None]:
        path, in_step = scope or _TOP
        return (*path, name), in_step

    return locally(effect, _SCOPE, deeper)


def _number(event: Event, seq: int) -> Event:
    """`event` with its `seq` set. In place: the events a commit numbers were made by
    `RunContext.event` for that commit and nobody else holds them yet (a failed
    commit's events are numbered again by the next one), so a validated copy per
    event, the cost of `attrs.evolve`, buys nothing."""
    object.__setattr__(event, "seq", seq)
    return event


def _same(exc: Exception) -> Exception:
    return exc


class WorkflowContext(fx.Tag["WorkflowContext", RunContext]):
    """The tag of the running workflow's context. Every durable primitive needs it;
    the engine provides it to each execution."""
