"""The engine: starts, resumes, cancels and recovers runs, on one `ManagedRuntime`.

    engine = wf.Engine([order], storage=SqliteStorage("runs.db"), tracker=tracker.http(url))
    async with engine:
        run_id = await engine.start(order, {"id": 7})
        result = await engine.result(run_id)

One runtime holds the tracker for the engine's whole life. Three background fibers
run on it: the scheduler (claims runs that are queued, due, or orphaned by a dead
process, and renews this engine's leases), the outbox dispatcher (delivers committed
events through the tracker, then marks them delivered), and one fiber per run being
executed. Run ownership is a lease in storage, so engines sharing a database never
run the same run at once; every commit of a run is fenced by that lease.
"""

from __future__ import annotations

import builtins
import json
import logging
import math
import os
import socket
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Never

import anyio
import attrs

import effect as fx
import tracker as tracker_
from tracker.events import (
    ErrorInfo,
    Event,
    StepFailed,
    WorkflowCancelled,
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowPaused,
    WorkflowQueued,
    WorkflowRecovered,
    WorkflowResumed,
    WorkflowStarted,
    format_timestamp,
    parse_event_json,
)
from workflow import codec
from workflow._group_commit import GroupCommit
from workflow._outbox import OutboxSender
from workflow._signal import Signal
from workflow.context import RunContext, StagedWriteFailed, WorkflowContext
from workflow.definition import Workflow
from workflow.errors import (
    CrashLoopError,
    HistoryDivergedError,
    StepFailedError,
    StepInfrastructureError,
    UnknownWorkflowError,
    WorkflowCancelledError,
    WorkflowFailedError,
)
from workflow.primitives.pause import find_pause
from workflow.storage import (
    AppendEvents,
    HistoryEntry,
    InsertRun,
    Op,
    PutEntry,
    RunExistsError,
    RunRecord,
    RunStatus,
    SqliteStorage,
    Storage,
    UpdateRun,
)

__all__ = ["Engine"]

_log = logging.getLogger("workflow.engine")


class Engine:
    """Runs workflows durably. An async context manager.

    Args:
        workflows: the workflows this engine can run (by name).
        storage: where runs live; default `SqliteStorage("workflows.db")`.
        tracker: a tracker layer for the events (default `tracker.noop()`); built once
            for the engine's life.
        owner: this engine's lease owner id. Give a restarted process the same id to
            recover its runs at once; runs of other owners are recovered when their
            lease (`lease_ttl` seconds, renewed every third of it) runs out.
        clock: a `fx.ClockService` (e.g. `effect.testing.TestClock`) for timers and
            timestamps; the real clock by default.
        in_memory_wait: waits (sleeps, retry backoffs) up to this long happen in
            memory; longer ones pause the run durably.
        max_crashes: a run recovered after more crashes than this in a row (with no
            step result stored between them) is failed with `CrashLoopError`.
        delivery_linger: how many seconds (of real time, whatever the clock) the
            outbox sender waits, once new events are committed, before it reads and
            sends them: the events of the commits made meanwhile go out with them, in
            one read and one tracker flush, instead of one of each per step. 0 sends
            at once.
    """

    def __init__(
        self,
        workflows: Iterable[Workflow[Any, Any, Any]],
        *,
        storage: Storage | None = None,
        tracker: fx.Layer[tracker_.EventTracker, Never, Never] | None = None,
        owner: str | None = None,
        clock: fx.ClockService | None = None,
        lease_ttl: float = 10.0,
        poll_interval: float = 0.5,
        in_memory_wait: float = 1.0,
        max_crashes: int = 3,
        delivery_linger: float = 0.005,
    ) -> None:
        self._workflows: dict[str, Workflow[Any, Any, Any]] = {}
        for wf in workflows:
            if not isinstance(wf, Workflow):
                raise TypeError(f"Engine expected Workflow objects (from @wf.workflow), got {wf!r}")
            if wf.name in self._workflows:
                raise ValueError(f"two workflows are named {wf.name!r}")
            self._workflows[wf.name] = wf
        if (
            lease_ttl <= 0
            or poll_interval <= 0
            or in_memory_wait < 0
            or max_crashes < 0
            or not 0 <= delivery_linger < math.inf
        ):
            raise ValueError(
                "lease_ttl and poll_interval must be positive, in_memory_wait, "
                "max_crashes and delivery_linger non-negative (and finite); got "
                f"{lease_ttl=}, {poll_interval=}, {in_memory_wait=}, {max_crashes=}, "
                f"{delivery_linger=}"
            )
        self.storage: Storage = storage if storage is not None else SqliteStorage("workflows.db")
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._clock: fx.ClockService = clock if clock is not None else fx.clock.RealClock()
        layer = fx.Layer.merge(
            tracker if tracker is not None else tracker_.noop(),
            fx.Layer.succeed(fx.Clock, self._clock),
        )
        self._runtime = fx.ManagedRuntime(layer)
        self._lease_ttl = lease_ttl
        self._poll = poll_interval
        self._in_memory_wait = in_memory_wait
        self._max_crashes = max_crashes
        # run id -> (its execution fiber, a holder filled with its RunContext once the
        # execution has begun)
        self._running: dict[
            str, tuple[fx.Fiber[None, Never], builtins.list[RunContext | None]]
        ] = {}
        self._finished: dict[str, anyio.Event] = {}
        self._cancel_reasons: dict[str, str] = {}
        # Runs resumed by `resume()`: the reason for `workflow.resumed`, and the
        # execution skips the wait (sleep or retry backoff) it is paused on.
        self._resumed: dict[str, str] = {}
        # The owner a run was taken from (read before claiming it), for
        # `workflow.recovered.previous_owner`.
        self._previous_owners: dict[str, str] = {}
        # Runs whose execution could not begin (storage failing): not claimed again
        # before this time, so a failing storage is not hammered in a loop.
        self._retry_start_at: dict[str, float] = {}
        # Runs that may still carry a lease of ours although we do not execute them
        # (a release that failed, a claim whose reply was lost): released again each
        # scheduling round until that works, so they never stay stranded.
        self._stale_leases: set[str] = set()
        # Runs whose end could not be recorded because storage failed: when this
        # engine takes them again, that is not a crash (error phase -> the attempt
        # left started is settled as aborted).
        self._unrecorded: dict[str, str] = {}
        self._last_renewal_ok = -1e18
        self._scheduler_signal = Signal()
        self._outbox = OutboxSender(self.storage, linger=delivery_linger)
        # Runs holding a staged write (a step's result waiting for the run's next
        # transaction), for the group commit's next round to store if their fiber
        # waits on something else instead of committing.
        self._staged: dict[str, RunContext] = {}
        self._group_commit = GroupCommit(self.storage, on_round=self._flush_staged)
        self._background: builtins.list[fx.Fiber[None, Never]] = []
        self._shutting_down = False

    # -- lifecycle ------------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        await self._runtime.__aenter__()
        self._last_renewal_ok = self._clock.now()
        self._background.append(await self._runtime.fork(self._scheduler_loop()))
        self._background.append(await self._runtime.fork(self._outbox.run()))
        # Last, so that it is stopped last: the other fibers' final writes go through it.
        self._background.append(await self._runtime.fork(self._group_commit.run()))
        await self._recover_own_runs()
        return self

    async def _recover_own_runs(self) -> None:
        """Runs still leased to this owner id belong to a previous process with the
        same id that died: recover them now instead of waiting out the lease."""
        try:
            owned = self.storage.renew_leases(self.owner, self._clock.now(), self._lease_ttl)
        except Exception as exc:
            _log.warning("could not look up runs leased to %s: %s", self.owner, exc)
            return
        for run_id in owned:
            record = self.storage.get_run(run_id)
            if record is not None and record.workflow_name in self._workflows:
                await self._runtime.run(self._launch(record))

    async def __aexit__(self, *exc_info: object) -> None:
        with anyio.CancelScope(shield=True):
            self._shutting_down = True
            for fiber, holder in list(self._running.values()):
                if holder[0] is not None:
                    holder[0].interrupt_reason = "shutdown"
                await self._runtime.run(fiber.interrupt())
            for fiber in self._background:
                await self._runtime.run(fiber.interrupt())
            await self._runtime.run(self._outbox.deliver(until_empty=True))
        # Outside the shield: the runtime's task group must be exited in the cancel
        # scope it was entered in (it shields its own teardown).
        await self._runtime.__aexit__(*exc_info)  # type: ignore[arg-type]

    # -- the public API -------------------------------------------------------------

    async def start(
        self,
        workflow: Workflow[Any, Any, Any] | str,
        input: object = None,
        *,
        id: str | None = None,
    ) -> str:
        """Start a run of `workflow` with `input` here and return its id at once.

        `id` is an idempotency key: starting with an id that exists starts nothing
        and returns it. The input is encoded first; an input the codec cannot store
        raises `codec.EncodeError` and nothing is written."""
        if self._shutting_down:
            raise RuntimeError("the engine is shutting down")
        # The run is written already leased to this engine: no claim to make.
        record, created = await self._insert(workflow, input, id, leased=True)
        if created:
            await self._runtime.run(self._launch(record))
        return record.run_id

    async def submit(
        self,
        workflow: Workflow[Any, Any, Any] | str,
        input: object = None,
        *,
        id: str | None = None,
    ) -> str:
        """Queue a run without executing it here: whichever engine serving `workflow`
        claims it first runs it (this one too, at its next scheduling round). Same
        idempotency and input rules as `start`."""
        record, _ = await self._insert(workflow, input, id, leased=False)
        self._scheduler_signal.notify()
        return record.run_id

    async def _insert(
        self,
        workflow: Workflow[Any, Any, Any] | str,
        input: object,
        id: str | None,
        *,
        leased: bool,
    ) -> tuple[RunRecord, bool]:
        """Write a queued run (leased to this engine if `leased`) and its
        `workflow.queued` event; (the run, whether it was created rather than found)."""
        wf = self._workflow(workflow)
        input_json = codec.encode(input)
        run_id = id or uuid.uuid4().hex
        now = self._clock.now()
        record = RunRecord(
            run_id=run_id,
            workflow_name=wf.name,
            input_json=input_json,
            status=RunStatus.QUEUED,
            created_at=now,
            updated_at=now,
            lease_owner=self.owner if leased else None,
            lease_expires_at=now + self._lease_ttl if leased else None,
        )
        queued = WorkflowQueued(
            workflow_id=run_id, workflow_name=wf.name, execution_id=run_id, seq=0
        )
        write = self._group_commit.write(
            [InsertRun(record), AppendEvents(run_id, [(0, queued.to_json())])]
        )
        outcome = await self._runtime.run_exit(write)
        if isinstance(outcome, fx.Failure):
            failures = outcome.cause.failures()
            error = failures[0] if failures else None
            if not isinstance(error, RunExistsError):
                if leased:
                    # The insert may have gone through unheard of (a lost reply): the
                    # scheduler releases that lease and runs the run like any other.
                    self._stale_leases.add(run_id)
                    self._scheduler_signal.notify()
                # A storage error, as `Storage.apply` would have raised it.
                raise error if isinstance(error, Exception) else fx.FiberFailure(outcome.cause)
            existing = self.storage.get_run(run_id)
            if existing is not None and existing.workflow_name != wf.name:
                raise ValueError(
                    f"run {run_id!r} exists for workflow {existing.workflow_name!r}, "
                    f"not {wf.name!r}"
                ) from None
            return record, False
        self._finished.setdefault(run_id, anyio.Event())
        self._outbox.wake()
        # The run as storage now reads it: `workflow.queued` took seq 0.
        return attrs.evolve(record, next_seq=1), True

    async def result(self, run_id: str, *, timeout: float | None = None) -> Any:
        """Wait for the run to end and return its result; raise `WorkflowFailedError` or
        `WorkflowCancelledError` if it did not complete."""
        with anyio.fail_after(timeout) if timeout is not None else _no_timeout():
            while True:
                record = self._get(run_id)
                if record.status.is_terminal:
                    return _outcome(record)
                event = self._finished.setdefault(run_id, anyio.Event())
                with anyio.move_on_after(self._poll):
                    await event.wait()

    async def status(self, run_id: str) -> RunStatus:
        """The run's current status."""
        return self._get(run_id).status

    async def history(self, run_id: str) -> builtins.list[HistoryEntry]:
        """The run's history entries, in the order first written."""
        self._get(run_id)
        return self.storage.load_history(run_id)

    async def events(self, run_id: str) -> builtins.list[Event]:
        """Every event the run committed, in order (from the outbox)."""
        return [parse_event_json(row.payload_json) for row in self.storage.run_events(run_id)]

    async def list(
        self, status: RunStatus | None = None, workflow_name: str | None = None, limit: int = 100
    ) -> builtins.list[RunRecord]:
        """Runs, newest first."""
        return self.storage.list_runs(status=status, workflow_name=workflow_name, limit=limit)

    async def cancel(self, run_id: str, reason: str | None = None) -> None:
        """Cancel the run. A run executing here is interrupted at once (its running
        step's effect is interrupted and reports `step.interrupted`); a queued or
        paused run is cancelled in storage. A finished run is left as it is."""
        record = self._get(run_id)
        if record.status.is_terminal:
            return
        self._cancel_reasons[run_id] = reason or "cancelled"
        running = self._running.get(run_id)
        if running is not None:
            fiber, holder = running
            ctx = holder[0]
            if ctx is not None:
                ctx.interrupt_reason = f"cancelled: {reason}" if reason else "cancelled"
            await self._runtime.run(fiber.interrupt())
            return
        claimed = self.storage.try_claim(run_id, self.owner, self._clock.now(), self._lease_ttl)
        if claimed is None:
            raise RuntimeError(f"run {run_id!r} is owned by another engine; cancel it there")
        await self._runtime.run(
            self._terminate_unexecuted(claimed, cancel_reason=self._cancel_reasons[run_id])
        )

    async def resume(self, run_id: str) -> None:
        """Run a paused run now (without waiting for its timer), or run again a run
        that failed because of infrastructure (`StepInfrastructureError`) once the
        cause is fixed; its completed steps are not run again."""
        record = self._get(run_id)
        if record.status is RunStatus.FAILED:
            error = json.loads(record.error_json or "{}")
            if error.get("type") != StepInfrastructureError.__name__:
                raise ValueError(
                    f"run {run_id!r} failed in its own code ({error.get('type')}); "
                    "it cannot be resumed"
                )
        elif record.status is not RunStatus.PAUSED:
            raise ValueError(f"run {run_id!r} is {record.status}, not paused or failed")
        # A failed run goes back to Paused and due now: the scheduler's ordinary path
        # (claim, `workflow.resumed`) takes it from there, never the crash path.
        changes: dict[str, object] = {"wake_at": self._clock.now()}
        if record.status is RunStatus.FAILED:
            changes.update(status=RunStatus.PAUSED, error_json=None)
        self.storage.apply([UpdateRun(run_id, changes)])
        self._resumed[run_id] = (
            "resumed after an infrastructure failure"
            if record.status is RunStatus.FAILED
            else "resumed by request"
        )
        await self._claim_and_execute(run_id)

    # -- executing runs ---------------------------------------------------------------

    def _workflow(self, workflow: Workflow[Any, Any, Any] | str) -> Workflow[Any, Any, Any]:
        name = workflow if isinstance(workflow, str) else workflow.name
        found = self._workflows.get(name)
        if found is None:
            raise UnknownWorkflowError(name, sorted(self._workflows))
        return found

    def _get(self, run_id: str) -> RunRecord:
        record = self.storage.get_run(run_id)
        if record is None:
            raise KeyError(f"no run with id {run_id!r}")
        return record

    async def _claim_and_execute(self, run_id: str) -> None:
        if run_id in self._running or self._shutting_down:
            return
        try:
            claimed = self.storage.try_claim(run_id, self.owner, self._clock.now(), self._lease_ttl)
        except Exception as exc:
            # The run exists; the claim may or may not have gone through. The next
            # scheduling round releases any lease of ours on it and claims it again.
            _log.warning("could not claim run %s: %s", run_id, exc)
            self._stale_leases.add(run_id)
            self._scheduler_signal.notify()
            return
        if claimed is not None:
            await self._runtime.run(self._launch(claimed))

    def _launch(self, record: RunRecord) -> fx.Effect[None, Never, Never]:
        """Fork the execution of a claimed run (on the runtime, not supervised by the
        caller: it outlives the call that started it)."""

        def start() -> fx.Effect[None, Never, Never]:
            if record.run_id in self._running:
                return fx.void
            holder: builtins.list[RunContext | None] = [None]
            # Whatever way the execution ends (even a storage error while setting up),
            # the lease is released, so the run is claimable again at once.
            execution = self._execute(record, holder).ensuring(
                fx.sync(lambda: self._ended(record.run_id))
            )
            return execution.fork_daemon().map(
                lambda fiber: self._track(record.run_id, fiber, holder)
            )

        return fx.suspend(start)

    def _track(
        self, run_id: str, fiber: fx.Fiber[None, Never], holder: builtins.list[RunContext | None]
    ) -> None:
        if not fiber.done:
            self._running[run_id] = (fiber, holder)

    def _ended(self, run_id: str) -> None:
        self._release(run_id)
        self._running.pop(run_id, None)
        self._finished.setdefault(run_id, anyio.Event()).set()
        self._finished.pop(run_id, None)
        self._scheduler_signal.notify()

    def _execute(
        self, record: RunRecord, holder: builtins.list[RunContext | None]
    ) -> fx.Effect[None, Never, Never]:
        """One execution of a claimed run: record that it runs, run the workflow's
        effect against its history, and record how it ended."""

        def begin() -> fx.Effect[None, Never, Never]:
            run_id = record.run_id
            wf = self._workflows.get(record.workflow_name)
            try:
                ctx = self._context(record)
            except Exception as exc:
                _log.warning("run %s could not start: %s", run_id, exc)
                self._retry_start_at[run_id] = self._clock.now() + self._poll
                return fx.void
            holder[0] = ctx
            if wf is None:
                return self._commit_end(
                    ctx,
                    [
                        UpdateRun(
                            run_id,
                            {
                                "status": RunStatus.FAILED,
                                "error_json": _error_json(
                                    UnknownWorkflowError(
                                        record.workflow_name, sorted(self._workflows)
                                    )
                                ),
                            },
                        )
                    ],
                    [
                        ctx.event(
                            WorkflowFailed,
                            error=ErrorInfo(
                                "UnknownWorkflowError",
                                f"no workflow named {record.workflow_name!r}",
                            ),
                        )
                    ],
                )
            opening = self._opening(record, ctx)
            if opening is None:
                return fx.void  # failed for a crash loop
            ops, events = opening

            def could_not_start(exc: object) -> fx.Effect[None, Never, Never]:
                _log.warning("run %s could not start: %s", run_id, exc)
                self._retry_start_at[run_id] = self._clock.now() + self._poll
                return fx.void

            def run_body(
                restore: Callable[[fx.Effect[Any, Any, Any]], fx.Effect[Any, Any, Any]],
            ) -> fx.Effect[None, Never, Never]:
                try:
                    input_value = codec.decode(record.input_json)
                except Exception as exc:
                    return could_not_start(exc)
                self._retry_start_at.pop(run_id, None)
                self._unrecorded.pop(run_id, None)
                began = ctx.now()
                body = fx.suspend(lambda: wf(input_value)).provide_service(WorkflowContext, ctx)
                return restore(body).exit().flat_map(lambda exit: self._finish(ctx, exit, began))

            # Only the workflow's own code is interruptible: a cancel or shutdown that
            # comes while the run's start or end is being written waits for it, so
            # the run never stops between two of its writes.
            return fx.uninterruptible_mask(
                lambda restore: (
                    ctx.write(ops, events)
                    .exit()
                    .flat_map(
                        lambda opened: (
                            run_body(restore)
                            if isinstance(opened, fx.Success)
                            else could_not_start(opened.cause.pretty())
                        )
                    )
                )
            )

        return fx.suspend(begin)

    def _context(self, record: RunRecord) -> RunContext:
        return RunContext(
            run_id=record.run_id,
            workflow_name=record.workflow_name,
            storage=self.storage,
            owner=self.owner,
            # A queued run has never executed, so it has no history to read.
            history=[]
            if record.status is RunStatus.QUEUED
            else self.storage.load_history(record.run_id),
            next_seq=record.next_seq,
            now=self._clock.now,
            in_memory_wait=self._in_memory_wait,
            on_commit=lambda events: self._outbox.note_committed(record.run_id, events),
            on_stage=self._note_staged,
            write=self._group_commit.write,
        )

    def _note_staged(self, ctx: RunContext) -> None:
        self._staged[ctx.run_id] = ctx
        self._group_commit.wake()

    def _flush_staged(self) -> None:
        """Store the staged writes their runs did not take along. Called at the start
        of each group-commit round, which runs only once the fiber that staged has
        yielded: a run going straight on to its next commit (the next step's start)
        has taken its write along by then, and a run that waits on anything else
        gets its step's result stored now, not at its next commit."""
        staged, self._staged = self._staged, {}
        for ctx in staged.values():
            ctx.flush_staged()

    def _opening(
        self, record: RunRecord, ctx: RunContext
    ) -> tuple[builtins.list[Op], builtins.list[Event]] | None:
        run_id = record.run_id
        running: dict[str, object] = {"status": RunStatus.RUNNING, "wake_at": None}
        ctx.clear_crashes = record.crash_count > 0
        if record.status is RunStatus.QUEUED:
            return [UpdateRun(run_id, running)], [
                ctx.event(
                    WorkflowStarted,
                    input=codec.decode(record.input_json) if _is_json(record.input_json) else None,
                )
            ]
        if record.status is RunStatus.PAUSED:
            reason = self._resumed.pop(run_id, None)
            ctx.skip_next_wait = reason is not None
            return [UpdateRun(run_id, running)], [
                ctx.event(WorkflowResumed, reason=reason or "timer due")
            ]
        unrecorded = self._unrecorded.get(run_id)
        if unrecorded is not None:
            # This engine could not record how the run ended (storage failed): not a
            # crash. The attempt its failure left started is settled as aborted.
            ops, events = self._settle_started_steps(ctx, phase="after", status="aborted")
            ops.append(UpdateRun(run_id, running))
            events.append(ctx.event(WorkflowResumed, reason=unrecorded))
            return ops, events
        # Status running with a lease we could claim: its previous owner died mid-run.
        crashes = record.crash_count + 1
        if crashes > self._max_crashes:
            ctx.interrupt_reason = "crash loop"
            error = CrashLoopError(run_id, crashes)
            in_progress = [
                e for e in ctx.history.values() if e.kind == "step" and e.status == "started"
            ]
            step_name = in_progress[-1].location.rsplit("/", 1)[-1] if in_progress else None
            attempt = in_progress[-1].attempt if in_progress else None
            ops, events = self._settle_started_steps(ctx)
            ops.append(
                UpdateRun(
                    run_id,
                    {
                        "status": RunStatus.FAILED,
                        "crash_count": crashes,
                        "error_json": _error_json(error, step_name, attempt),
                    },
                )
            )
            events.append(
                ctx.event(
                    WorkflowFailed,
                    error=ErrorInfo(type(error).__name__, str(error)),
                    step_name=step_name,
                    attempt=attempt,
                )
            )
            try:
                ctx.commit_now(ops, events)
            except Exception as exc:
                _log.warning("could not fail crash-looping run %s: %s", run_id, exc)
            return None
        ctx.clear_crashes = True
        return [UpdateRun(run_id, {**running, "crash_count": crashes})], [
            ctx.event(
                WorkflowRecovered,
                crash_count=crashes,
                previous_owner=self._previous_owners.pop(run_id, None),
            )
        ]

    def _settle_started_steps(
        self, ctx: RunContext, *, phase: str = "crash", status: str = "failed"
    ) -> tuple[builtins.list[Op], builtins.list[Event]]:
        """For a run that ends now: every step attempt still `started` (its process
        died, or its own terminal write failed) gets its terminal `step.failed`.
        `status` "aborted" lets a later `resume` run the step again."""
        ops: builtins.list[Op] = []
        events: builtins.list[Event] = []
        # A staged completion goes in the same transaction and settles its attempt.
        settled = ctx.staged_locations()
        for entry in ctx.history.values():
            if entry.kind == "step" and entry.status == "started" and entry.location not in settled:
                error = (
                    ErrorInfo("ProcessCrashed", "the process died during the attempt", phase=phase)
                    if phase == "crash"
                    else ErrorInfo(
                        "StorageError", "the attempt's outcome could not be stored", phase=phase
                    )
                )
                ops.append(
                    PutEntry(
                        ctx.entry(
                            entry.location,
                            "step",
                            status,
                            entry.attempt,
                            error_json=json.dumps(error.to_dict()),
                            data_json=entry.data_json,
                        )
                    )
                )
                events.append(
                    ctx.event(
                        StepFailed,
                        step_name=entry.location.rsplit("/", 1)[-1],
                        attempt=entry.attempt,
                        will_retry=False,
                        error=error,
                    )
                )
        return ops, events

    def _finish(
        self, ctx: RunContext, exit: fx.Exit[Any, Any], began: float
    ) -> fx.Effect[None, Never, Never]:
        run_id = ctx.run_id
        if isinstance(exit, fx.Success):
            unvisited = ctx.unvisited()
            if unvisited:
                error: BaseException = HistoryDivergedError(
                    unvisited[0], "history has entries the code no longer visits"
                )
                return self._fail(ctx, error, None)
            try:
                result_json = codec.encode(exit.value)
            except codec.EncodeError as exc:
                return self._fail(ctx, exc, None)
            event = ctx.event(
                WorkflowCompleted,
                result=json.loads(result_json),
                duration_ms=max(0.0, (ctx.now() - began) * 1000),
            )
            return self._commit_end(
                ctx,
                [UpdateRun(run_id, {"status": RunStatus.COMPLETED, "result_json": result_json})],
                [event],
            )
        cause = exit.cause
        pause = find_pause(cause)
        if pause is not None:
            event = ctx.event(
                WorkflowPaused, reason=pause.reason, resume_at=format_timestamp(_utc(pause.wake_at))
            )
            return self._commit_end(
                ctx,
                [UpdateRun(run_id, {"status": RunStatus.PAUSED, "wake_at": pause.wake_at})],
                [event],
            )
        if cause.is_interrupted_only():
            return self._finish_interrupted(ctx, exit)
        failures = cause.failures()
        error = failures[0] if failures else cause.defects()[0]
        return self._fail(
            ctx, error if isinstance(error, BaseException) else RuntimeError(repr(error)), None
        )

    def _fail(
        self, ctx: RunContext, error: BaseException, _: object
    ) -> fx.Effect[None, Never, Never]:
        step_name, attempt = _step_of(error, ctx)
        phase = error.phase if isinstance(error, StepInfrastructureError) else None
        info = ErrorInfo(
            type(error).__name__,
            str(error),
            phase=phase
            if phase in ("before", "after", "retry", "crash", "user", "timeout", "encode")
            else None,
        )
        # An attempt whose terminal write failed is still `started`: its step.failed
        # goes in this same transaction, before workflow.failed.
        if isinstance(error, StepInfrastructureError):
            ops, events = self._settle_started_steps(ctx, phase=error.phase, status="aborted")
        else:
            ops, events = self._settle_started_steps(ctx)
        ops.append(
            UpdateRun(
                ctx.run_id,
                {"status": RunStatus.FAILED, "error_json": _error_json(error, step_name, attempt)},
            )
        )
        events.append(ctx.event(WorkflowFailed, error=info, step_name=step_name, attempt=attempt))
        return self._commit_end(ctx, ops, events)

    def _finish_interrupted(
        self, ctx: RunContext, exit: fx.Exit[Any, Any]
    ) -> fx.Effect[None, Never, Never]:
        if not (isinstance(exit, fx.Failure) and exit.cause.is_interrupted_only()):
            return fx.void
        run_id = ctx.run_id
        reason = self._cancel_reasons.pop(run_id, None)
        if reason is not None:
            event = ctx.event(WorkflowCancelled, reason=reason)
            return self._commit_end(
                ctx,
                [UpdateRun(run_id, {"status": RunStatus.CANCELLED, "cancel_reason": reason})],
                [event],
            )
        # Shutdown: leave the run for the next engine, paused and due now.
        event = ctx.event(
            WorkflowPaused, reason="engine shutdown", resume_at=format_timestamp(_utc(ctx.now()))
        )
        return self._commit_end(
            ctx, [UpdateRun(run_id, {"status": RunStatus.PAUSED, "wake_at": ctx.now()})], [event]
        )

    def _commit_end(
        self, ctx: RunContext, ops: Sequence[Op], events: Sequence[Event]
    ) -> fx.Effect[None, Never, Never]:
        def unrecorded(exc: Exception) -> None:
            # The run stays Running. This engine takes it again at its next
            # scheduling round (not as a crash: see `_opening`); if this process
            # dies first, the next engine recovers it as a crash.
            _log.warning("could not record the end of run %s: %s", ctx.run_id, exc)
            self._unrecorded[ctx.run_id] = "storage failed while recording the run's end"
            self._retry_start_at[ctx.run_id] = self._clock.now() + self._poll

        def failed(exc: Exception) -> fx.Effect[None, Never, Never]:
            if isinstance(exc, StagedWriteFailed):
                # The end carried the last step's result. As for any step, that is
                # the step's failure (phase `after`), and the run fails with it.
                return exc.staged.on_failure(exc.error).catch_cause(
                    lambda cause: self._fail(ctx, _first_error(cause), None)
                )
            return fx.sync(lambda: unrecorded(exc))

        return ctx.write(ops, events).catch_all(failed)

    def _terminate_unexecuted(
        self, record: RunRecord, *, cancel_reason: str
    ) -> fx.Effect[None, Never, Never]:
        ctx = self._context(record)
        ops, events = self._settle_started_steps(ctx)
        ops.append(
            UpdateRun(
                record.run_id, {"status": RunStatus.CANCELLED, "cancel_reason": cancel_reason}
            )
        )
        events.append(ctx.event(WorkflowCancelled, reason=cancel_reason))
        self._cancel_reasons.pop(record.run_id, None)
        return self._commit_end(ctx, ops, events).ensuring(
            fx.sync(lambda: self._ended(record.run_id))
        )

    def _release(self, run_id: str) -> None:
        try:
            self.storage.release_lease(run_id, self.owner)
        except Exception as exc:
            _log.warning("could not release the lease of run %s: %s", run_id, exc)
            self._stale_leases.add(run_id)
        else:
            self._stale_leases.discard(run_id)

    # -- background fibers ----------------------------------------------------------

    def _scheduler_loop(self) -> fx.Effect[None, Never, Never]:
        @fx.gen
        def loop() -> fx.Gen[None, Never, Never]:
            last_renewal = -1e18
            while True:
                now = self._clock.now()
                if now - last_renewal >= self._lease_ttl / 3:
                    self._renew(now)
                    last_renewal = now
                yield from self._claim_due(now)
                yield from self._stop_runs_without_lease(now)
                wait = self._poll
                next_wake = yield from fx.sync(self._next_wake)
                if next_wake is not None and next_wake > self._clock.now():
                    # A timer already due was either just claimed or is not ours to
                    # claim (leased elsewhere, another engine's workflow): waiting 0
                    # for it would spin.
                    wait = min(wait, next_wake - self._clock.now())
                self._outbox.wake()
                yield from self._scheduler_signal.wait(wait)

        return loop

    def _next_wake(self) -> float | None:
        try:
            return self.storage.next_wake_at()
        except Exception:
            return None

    def _renew(self, now: float) -> None:
        try:
            self.storage.renew_leases(self.owner, now, self._lease_ttl)
        except Exception as exc:
            _log.warning("could not renew leases: %s", exc)
            return
        self._last_renewal_ok = now

    def _stop_runs_without_lease(self, now: float) -> fx.Effect[None, Never, Never]:
        """If leases could not be renewed for most of their life, another engine may
        soon take our runs over: interrupt them before the leases run out, so two
        engines never execute one run at once."""
        if not self._running or now - self._last_renewal_ok < self._lease_ttl * 0.75:
            return fx.void
        _log.warning(
            "leases not renewed for %.1fs: stopping this engine's runs",
            now - self._last_renewal_ok,
        )
        stopping: builtins.list[fx.Effect[None, Never, Never]] = []
        for fiber, holder in list(self._running.values()):
            if holder[0] is not None:
                holder[0].interrupt_reason = "lease lost"
            stopping.append(fiber.interrupt().fork_daemon().as_void)
        return fx.all(stopping).as_void

    def _claim_due(self, now: float) -> fx.Effect[None, Never, Never]:
        def claim() -> fx.Effect[None, Never, Never]:
            if self._shutting_down:
                return fx.void
            try:
                candidates = self.storage.claimable_runs(now)
            except Exception as exc:
                _log.warning("could not list claimable runs: %s", exc)
                return fx.void
            for run_id in [r for r in self._stale_leases if r not in self._running]:
                self._release(run_id)
            launches: builtins.list[fx.Effect[None, Never, Never]] = []
            for record in candidates:
                # Runs of workflows this engine does not serve belong to other engines.
                if record.run_id in self._running or record.workflow_name not in self._workflows:
                    continue
                if self._retry_start_at.get(record.run_id, -1e18) > now:
                    continue
                if record.lease_owner not in (None, self.owner):
                    self._previous_owners[record.run_id] = record.lease_owner
                try:
                    claimed = self.storage.try_claim(
                        record.run_id, self.owner, now, self._lease_ttl
                    )
                except Exception as exc:
                    # The claim may have gone through without our hearing of it.
                    _log.warning("could not claim run %s: %s", record.run_id, exc)
                    self._stale_leases.add(record.run_id)
                    continue
                if claimed is not None:
                    launches.append(self._launch(claimed))
            return fx.all(launches).as_void if launches else fx.void

        return fx.suspend(claim)


class _no_timeout:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def _outcome(record: RunRecord) -> Any:
    if record.status is RunStatus.COMPLETED:
        return codec.decode(record.result_json or "null")
    if record.status is RunStatus.CANCELLED:
        raise WorkflowCancelledError(record.run_id, record.cancel_reason)
    error = json.loads(record.error_json or "{}")
    raise WorkflowFailedError(
        record.run_id,
        str(error.get("type", "Error")),
        str(error.get("message", "")),
        error.get("step_name"),
        error.get("attempt"),
    )


def _first_error(cause: fx.Cause[Any]) -> BaseException:
    errors = [*cause.defects(), *cause.failures()]
    error = errors[0] if errors else RuntimeError(cause.pretty())
    return error if isinstance(error, BaseException) else RuntimeError(repr(error))


def _step_of(error: BaseException, ctx: RunContext) -> tuple[str | None, int | None]:
    if isinstance(error, StepInfrastructureError | StepFailedError):
        return error.step_name, error.attempt
    if ctx.current_step is not None:
        return ctx.current_step
    return None, None


def _error_json(
    error: BaseException, step_name: str | None = None, attempt: int | None = None
) -> str:
    return json.dumps(
        {
            "type": type(error).__name__,
            "message": str(error),
            "step_name": step_name,
            "attempt": attempt,
        }
    )


def _is_json(text: str) -> bool:
    return '"__type__"' not in text


def _utc(timestamp: float) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(timestamp, UTC)
