"""`TestEngine`: an `Engine` on virtual time, in memory, with the events kept in a list.

`test_engine(workflows)` builds an `Engine` that uses `MemoryStorage` (unless another
storage is given), an `InMemoryTracker` (exposed as `tracker`) and an
`effect.testing.TestClock` as its clock. Time only moves when the test says so:
`await te.advance(seconds)` moves the clock forward and lets every fiber of the
engine (the scheduler, the runs, the outbox dispatcher) react to each due wake-up in
turn, so a workflow that sleeps for a day and backs off for hours finishes in
milliseconds of wall time.

Examples:
    >>> import anyio, effect as fx, workflow as wf
    >>> from workflow.testing import test_engine
    >>> @wf.workflow("reminder")
    ... def reminder(who: str) -> fx.Gen[str, wf.StepFailedError, wf.WorkflowContext]:
    ...     yield from wf.sleep("a-day", 86_400)
    ...     return (yield from wf.step("remind", fx.succeed(f"wake up, {who}")))
    >>> async def main() -> tuple[str, float, list[str]]:
    ...     async with test_engine([reminder]) as te:
    ...         run_id = await te.engine.start(reminder, "ada")
    ...         result = await te.run_to_completion(run_id, max_virtual_seconds=2 * 86_400)
    ...         return result, te.clock.now(), [e.type for e in te.tracker.events][-2:]
    >>> anyio.run(main)
    ('wake up, ada', 86400.0, ['step.completed', 'workflow.completed'])
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from types import TracebackType
from typing import Any

import tracker as tracker_
from effect.testing import TestClock
from workflow.definition import Workflow
from workflow.engine import Engine
from workflow.storage import MemoryStorage, RunRecord, RunStatus, Storage

__all__ = ["TestEngine", "test_engine"]

# Defaults that keep virtual time cheap: the scheduler wakes at least every
# `poll_interval` virtual seconds, and every wake-up is a step of `advance`. The
# scheduler still wakes exactly when a durable timer is due (it sleeps until the
# earlier of the two), and local activity wakes it at once.
_DEFAULT_POLL = 3600.0
_DEFAULT_LEASE_TTL = 3 * 3600.0


class TestEngine:
    """An `Engine` on a `TestClock`, with an `InMemoryTracker`. An async context manager.

    Attributes:
        engine: the wrapped `Engine` (start, result, status, history, events, cancel,
            resume, list).
        clock: the `TestClock` the engine reads and sleeps on.
        tracker: the `InMemoryTracker` the engine delivers its events to.
        storage: the engine's storage.

    Args:
        workflows: the workflows the engine runs.
        storage: default a new `MemoryStorage` stamped with the virtual time.
        start_time: the virtual time the clock starts at (Unix seconds).
        **engine_kwargs: passed on to `Engine` (owner, lease_ttl, poll_interval,
            in_memory_wait, max_crashes). `poll_interval` defaults to 3600 and
            `lease_ttl` to 10800 virtual seconds here, so that a day of virtual time
            is a few dozen scheduler wake-ups, not hundreds of thousands (durable
            timers still fire exactly when due).
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        workflows: Iterable[Workflow[Any, Any, Any]],
        *,
        storage: Storage | None = None,
        start_time: float = 0.0,
        **engine_kwargs: Any,
    ) -> None:
        for reserved in ("clock", "tracker", "storage"):
            if reserved in engine_kwargs:
                raise TypeError(f"test_engine sets {reserved!r} itself")
        self.clock = TestClock(start_time)
        self.tracker = tracker_.InMemoryTracker()
        self.storage: Storage = (
            storage if storage is not None else MemoryStorage(clock=self.clock.now)
        )
        engine_kwargs.setdefault("poll_interval", _DEFAULT_POLL)
        engine_kwargs.setdefault("lease_ttl", _DEFAULT_LEASE_TTL)
        # Events reach the tracker as soon as the fibers have run, like everything else
        # on the virtual clock: no real-time linger to wait out.
        engine_kwargs.setdefault("delivery_linger", 0.0)
        self.engine = Engine(
            workflows,
            storage=self.storage,
            tracker=tracker_.in_memory(self.tracker),
            clock=self.clock,
            **engine_kwargs,
        )

    async def __aenter__(self) -> TestEngine:
        await self.engine.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.engine.__aexit__(exc_type, exc, tb)

    async def advance(self, seconds: float) -> None:
        """Move virtual time forward by `seconds`, waking every sleeper that comes due
        (the scheduler's timers, in-memory retry delays, `fx.sleep` in steps,
        timeouts) in time order, each allowed to run until it waits again.
        `advance(0)` only lets every ready fiber run until it waits."""
        # The adjustment must run on the engine's own scheduler: it waits for the
        # fibers of that scheduler to settle after each wake-up.
        await self.engine._runtime.run(self.clock.adjust(seconds))

    async def settle(self) -> None:
        """Let every ready fiber of the engine run until it waits (no time passes)."""
        await self.advance(0)

    async def run_to_completion(
        self, run_id: str, max_virtual_seconds: float = 365 * 86_400.0
    ) -> Any:
        """Advance virtual time, one due wake-up at a time, until run `run_id` ends;
        return its result like `Engine.result` (raising `WorkflowFailedError` or
        `WorkflowCancelledError`). The clock stops at the wake-up that finished the
        run. Raises `TimeoutError` if the run has not ended after
        `max_virtual_seconds` of virtual time."""
        deadline = self.clock.now() + max_virtual_seconds
        while True:
            await self.settle()
            record = self._record(run_id)
            if record.status.is_terminal:
                return await self.engine.result(run_id, timeout=5.0)
            now = self.clock.now()
            if now >= deadline:
                raise TimeoutError(
                    f"run {run_id!r} is still {record.status} after "
                    f"{max_virtual_seconds} virtual seconds"
                )
            wakeup = self.next_wakeup()
            target = deadline if wakeup is None else min(wakeup, deadline)
            await self.advance(max(0.0, target - now))

    def next_wakeup(self) -> float | None:
        """The virtual time of the earliest pending wake-up on the clock (a durable
        timer the scheduler waits for, its next poll, an in-memory retry delay, an
        `fx.sleep` or timeout in a step), or None if nothing sleeps."""
        deadline = _next_deadline(self.clock)
        return deadline if math.isfinite(deadline) else None

    async def status(self, run_id: str) -> RunStatus:
        """The run's status (a shortcut for `engine.status`)."""
        return await self.engine.status(run_id)

    def event_types(self, run_id: str | None = None) -> list[str]:
        """The types of the events the tracker received, in order (of one run if given)."""
        return [e.type for e in self.tracker.events if run_id is None or e.workflow_id == run_id]

    def _record(self, run_id: str) -> RunRecord:
        record = self.storage.get_run(run_id)
        if record is None:
            raise KeyError(f"no run with id {run_id!r}")
        return record


def _next_deadline(clock: TestClock) -> float:
    """The earliest deadline of a live sleeper on `clock` (inf if none).

    TestClock has no public accessor for this; its heap holds (deadline, seq,
    sleeper) with lazily deleted (not live) sleepers."""
    heap: list[tuple[float, int, Any]] = getattr(clock, "_heap", [])
    live = [deadline for deadline, _, sleeper in heap if getattr(sleeper, "live", True)]
    return min(live, default=math.inf)


def test_engine(
    workflows: Iterable[Workflow[Any, Any, Any]],
    *,
    storage: Storage | None = None,
    start_time: float = 0.0,
    **engine_kwargs: Any,
) -> TestEngine:
    """A `TestEngine`: an `Engine` on MemoryStorage (unless `storage` is given), an
    `InMemoryTracker` and a `TestClock` starting at `start_time`. Use it with
    `async with`; see the module docstring for an example."""
    return TestEngine(workflows, storage=storage, start_time=start_time, **engine_kwargs)


test_engine.__test__ = False  # type: ignore[attr-defined]  # not a pytest test
