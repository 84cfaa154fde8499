"""`WorkflowContext`: the service a running workflow's primitives talk to.

One `RunContext` exists per execution of a run. It holds the run's history (what
earlier executions recorded, by location), the locations this execution visited,
and the next event `seq`; and it is the only way primitives write: `commit(ops,
events)` applies state changes and the events describing them in ONE storage
transaction (the outbox), so an event is durable exactly when its state change is.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any, Never

import effect as fx
from effect._effect import get_local, locally
from tracker.events import Event
from workflow.errors import HistoryDivergedError, NestedPrimitiveError
from workflow.storage import AppendEvents, HistoryEntry, Op, PutEntry, Storage, UpdateRun

__all__ = ["RunContext", "WorkflowContext"]

# Fiber-local keys: the path of scope names the fiber is in, and the step (if any)
# whose user effect it is running. Fiber-local so that parallel branches added later
# each carry their own.
_PATH = object()
_IN_STEP = object()


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
        on_commit: Callable[[], None],
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
        self._on_commit = on_commit

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
        """Apply `ops` and append `events` to the outbox in one transaction, fenced by
        the lease: if another engine took the run, the commit fails with a
        `ConflictError` and nothing is written. Raises whatever storage raises."""
        numbered = [attrs_evolve_seq(e, self.next_seq + i) for i, e in enumerate(events)]
        next_seq = self.next_seq + len(numbered)
        batch: list[Op] = list(ops)
        if numbered:
            batch.append(AppendEvents(self.run_id, [(e.seq, e.to_json()) for e in numbered]))
        batch.append(UpdateRun(self.run_id, {"next_seq": next_seq}, expect_owner=self.owner))
        self.storage.apply(batch)
        self.next_seq = next_seq
        for op in ops:
            if isinstance(op, PutEntry):
                self.history[op.entry.location] = op.entry
        if numbered:
            self._on_commit()

    def commit(
        self, ops: Sequence[Op], events: Sequence[Event] = ()
    ) -> fx.Effect[None, Exception, Never]:
        """`commit_now` as an effect that fails (typed) with the storage error."""

        def attempt() -> None:
            self.commit_now(ops, events)

        # Yield after each commit: a commit blocks the loop (fsync), and a run of
        # synchronous steps must not keep other runs, lease renewal and event
        # delivery waiting until it ends.
        return fx.try_(attempt, catch=_same).zip_left(fx.yield_now())

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

        def check(path: object, in_step: object) -> fx.Effect[str, Never, Never]:
            if in_step is not None:
                return fx.die(NestedPrimitiveError(kind, name, str(in_step)))
            location = "/".join((*(path or ()), name))  # type: ignore[misc]
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

        return get_local(_PATH).flat_map(
            lambda path: get_local(_IN_STEP).flat_map(lambda s: check(path, s))
        )

    def unvisited(self) -> list[str]:
        """History locations this execution never reached."""
        return [loc for loc in self.history if loc not in self.visited]


def inside_step(effect: fx.Effect[Any, Any, Any], step_name: str) -> fx.Effect[Any, Any, Any]:
    """Run `effect` marked as the user effect of step `step_name`."""
    return locally(effect, _IN_STEP, lambda _: step_name)


def in_scope(effect: fx.Effect[Any, Any, Any], name: str) -> fx.Effect[Any, Any, Any]:
    """Run `effect` one scope deeper: its primitives' locations start with `name/`."""
    return locally(effect, _PATH, lambda path: (*(path or ()), name))


def attrs_evolve_seq(event: Event, seq: int) -> Event:
    import attrs

    return attrs.evolve(event, seq=seq)


def _same(exc: Exception) -> Exception:
    return exc


class WorkflowContext(fx.Tag["WorkflowContext", RunContext]):
    """The tag of the running workflow's context. Every durable primitive needs it;
    the engine provides it to each execution."""
