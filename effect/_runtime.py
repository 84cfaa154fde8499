"""The scheduler and the entry points that run effects: `run`, `run_exit`,
`run_sync`, `run_sync_exit`.

This module is the single seam between fibers and the event loop. Fibers run on the
scheduler's own ready queue; only three things touch anyio: a `fx.promise` (awaited in
a task of the scheduler's task group, inside a cancel scope that interruption
cancels), a sleep on the real clock (a timer heap the driver waits on), and the
driver's own wait for work. Synchronous runs never touch an event loop at all.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Never, TypeVar

import anyio
import anyio.abc
import anyio.lowlevel

from effect._context import Context
from effect._effect import Effect, _check_effect, _FailCause, _Promise, _Succeed
from effect._exit import Cause, Die, Exit, Failure, Success
from effect._fiber import Fiber

__all__ = [
    "AsyncFiberError",
    "FiberFailure",
    "Scheduler",
    "run",
    "run_exit",
    "run_sync",
    "run_sync_exit",
]

# The longest the driver runs fibers without letting the event loop's other tasks
# (promises, I/O) run: short enough to go unnoticed, long enough to amortize the trip.
_SLICE = 0.002

A = TypeVar("A")
E = TypeVar("E")

# Fiber id used for interruptions that come from outside any fiber (a cancelled host
# task, a runtime shutting down).
OUTSIDE = 0


class FiberFailure(Exception):
    """Raised by `fx.run` / `fx.run_sync` when the effect fails; `.cause` is the whole
    `Cause`. Its message is the first error's; `str()` renders the cause."""

    def __init__(self, cause: Cause[Any]) -> None:
        self.cause = cause
        squashed = cause.squash()
        message = "An error has occurred" if cause.is_interrupted_only() else _message(squashed)
        super().__init__(message)
        if isinstance(squashed, BaseException) and not cause.is_interrupted_only():
            self.__cause__ = squashed

    def __str__(self) -> str:
        return f"(FiberFailure) {self.cause.pretty()}"


class AsyncFiberError(Exception):
    """A synchronous run (`run_sync`) reached a step that needs an event loop."""


def _message(error: object) -> str:
    return error if isinstance(error, str) else str(error)


class Scheduler:
    """Runs fibers. One per `run` call, or one per `ManagedRuntime`."""

    def __init__(self, *, sync: bool) -> None:
        self._ready: deque[Fiber[Any, Any]] = deque()
        self._sync = sync
        self._timers: list[tuple[float, int, Fiber[Any, Any], int]] = []
        self._timer_seq = 0
        self._waiting: anyio.Event | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._roots: set[Fiber[Any, Any]] = set()
        self._live = 0
        self._done_listeners: list[Callable[[], None]] = []

    # -- fibers ------------------------------------------------------------------

    def spawn(
        self, effect: Effect[Any, Any, Any], context: Context[Any] | None = None
    ) -> Fiber[Any, Any]:
        """Start `effect` on a new root fiber (not supervised by any fiber)."""
        fiber: Fiber[Any, Any] = Fiber(self, effect, context or Context.empty(), True)
        self.add_root(fiber)
        self.schedule(fiber)
        return fiber

    def add_root(self, fiber: Fiber[Any, Any]) -> None:
        self._roots.add(fiber)

    def schedule(self, fiber: Fiber[Any, Any]) -> None:
        self._ready.append(fiber)
        if self._waiting is not None:
            self.schedule_wakeup()

    def schedule_wakeup(self) -> None:
        """Wake the driver if it is waiting (e.g. to re-check its stop condition)."""
        waiting = self._waiting
        if waiting is not None:
            self._waiting = None
            waiting.set()

    def fiber_done(self, fiber: Fiber[Any, Any]) -> None:
        self._roots.discard(fiber)

    @property
    def roots(self) -> list[Fiber[Any, Any]]:
        return list(self._roots)

    def interrupt_roots(self) -> None:
        """Interrupt every unsupervised fiber (its children follow by supervision)."""
        for fiber in list(self._roots):
            fiber._signal_interrupt(OUTSIDE)

    def run_ready(self, max_slices: int) -> None:
        """Run up to `max_slices` fiber slices from the ready queue."""
        ready = self._ready
        while ready and max_slices > 0:
            max_slices -= 1
            ready.popleft()._run()

    # -- async boundaries ---------------------------------------------------------

    def start_promise(self, fiber: Fiber[Any, Any], epoch: int, node: _Promise[Any, Any]) -> None:
        if self._task_group is None:
            _needs_event_loop(fiber, epoch, node.label)
            return
        scope = anyio.CancelScope()
        fiber._canceler = scope.cancel
        self._task_group.start_soon(_await_promise, fiber, epoch, node, scope)

    def start_sleep(self, fiber: Fiber[Any, Any], epoch: int, seconds: float) -> None:
        if self._task_group is None:
            _needs_event_loop(fiber, epoch, f"fx.sleep({seconds})")
            return
        deadline = anyio.current_time() + seconds
        self._timer_seq += 1
        entry = (deadline, self._timer_seq, fiber, epoch)
        heapq.heappush(self._timers, entry)

        def cancel() -> None:
            # Lazy deletion: the stale entry's epoch no longer matches, so firing it
            # later is a no-op; dropping it here keeps the heap small.
            try:
                self._timers.remove(entry)
                heapq.heapify(self._timers)
            except ValueError:
                pass

        fiber._canceler = cancel

    def _fire_timers(self) -> None:
        timers = self._timers
        if not timers:
            return
        now = anyio.current_time()
        while timers and timers[0][0] <= now:
            _, _, fiber, epoch = heapq.heappop(timers)
            fiber._resume(epoch, _VOID)

    # -- drivers ------------------------------------------------------------------

    def drive_sync(self) -> None:
        """Run until no fiber is ready (synchronous runs)."""
        while self._ready:
            self.run_ready(1 << 30)

    async def drive(self, until: Callable[[], bool]) -> None:
        """Run fibers on the current event loop until `until()` is true.

        Yields to the loop at least every `_SLICE` seconds of fiber work, so promise
        tasks make progress, and sleeps until a timer is due or a fiber is resumed
        when nothing is ready."""
        ready = self._ready
        clock = time.perf_counter
        yielded = clock()
        while not until():
            if ready:
                self.run_ready(len(ready))
                self._fire_timers()
                if until():
                    return
                if ready:
                    # Fibers that hand work to each other (a run and the engine's
                    # writer) make many short rounds; a trip through the event loop
                    # after each would cost more than the rounds themselves.
                    if clock() - yielded >= _SLICE:
                        await anyio.lowlevel.checkpoint()
                        yielded = clock()
                    continue
            self._fire_timers()
            if ready:
                continue
            deadline = self._timers[0][0] if self._timers else math.inf
            event = anyio.Event()
            self._waiting = event
            with anyio.CancelScope(deadline=deadline):
                await event.wait()
            yielded = clock()
            self._waiting = None
            self._fire_timers()

    async def host(self, body: Callable[[], Any]) -> Any:
        """Open the task group promises run in, then await `body()` inside it.

        A `KeyboardInterrupt` or `SystemExit` raised by effect code is not a defect:
        it stops the run and propagates as itself, not wrapped in the task group's
        `BaseExceptionGroup`."""
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                try:
                    return await body()
                finally:
                    self._task_group = None
        except BaseExceptionGroup as group:
            if len(group.exceptions) == 1 and isinstance(
                group.exceptions[0], KeyboardInterrupt | SystemExit
            ):
                raise group.exceptions[0] from None
            raise


_VOID: Effect[None, Never, Never] = _Succeed(None)


def _needs_event_loop(fiber: Fiber[Any, Any], epoch: int, step: str) -> None:
    """A synchronous run reached `step`: the fiber dies there (its finalizers run)."""
    error = AsyncFiberError(
        f"Fiber #{fiber.id} cannot be resolved synchronously: it reached {step}, "
        "which needs an event loop; use `await fx.run(...)`"
    )
    fiber._resume(epoch, _FailCause(Die(error)))


async def _await_promise(
    fiber: Fiber[Any, Any], epoch: int, node: _Promise[Any, Any], scope: anyio.CancelScope
) -> None:
    # The outer shield keeps a cancellation of the host task (e.g. a `move_on_after`
    # around `fx.run`) from cancelling the I/O behind the runtime's back: the runtime
    # turns that cancellation into fiber interruption, which cancels `scope`.
    result: Effect[Any, Any, Any]
    with anyio.CancelScope(shield=True):
        with scope:
            try:
                value = await node.make()
            except Exception as exc:
                if node.catch is None:
                    result = _FailCause(Die(exc))
                else:
                    try:
                        result = _FailCause(_fail_leaf(node.catch(exc)))
                    except Exception as catch_exc:
                        result = _FailCause(Die(catch_exc))
            else:
                result = _Succeed(value)
        if scope.cancelled_caught:
            result = _VOID  # the fiber's pending interruption takes over on resume
    fiber._resume(epoch, result)


def _fail_leaf(error: object) -> Cause[Any]:
    from effect._exit import Fail

    return Fail(error)


async def run_exit(
    effect: Effect[A, E, Never], *, context: Context[Any] | None = None
) -> Exit[A, E]:
    """Run `effect` on the current event loop and return its `Exit`; never raises for
    the effect's failures.

    If the calling task is cancelled, the effect is interrupted, its finalizers run
    (shielded), and the cancellation is re-raised, as structured concurrency requires.
    Fibers forked as daemons are interrupted when the run ends.

    Examples:
        >>> import anyio, effect as fx
        >>> anyio.run(fx.run_exit, fx.fail("boom"))
        Failure(cause=Fail(error='boom'))
    """
    _check_effect(effect, "run_exit")
    scheduler = Scheduler(sync=False)
    main = scheduler.spawn(effect, context)

    async def body() -> None:
        try:
            await scheduler.drive(lambda: main.done)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                # The main fiber first: its scopes close in order, and their
                # finalizers stop the fibers they own (a scoped consumer may have to
                # drain first). Only what is left after that is interrupted.
                main._signal_interrupt(OUTSIDE)
                await scheduler.drive(lambda: main.done)
                scheduler.interrupt_roots()
                await scheduler.drive(lambda: not scheduler.roots)
            raise
        if scheduler.roots:
            with anyio.CancelScope(shield=True):
                scheduler.interrupt_roots()
                await scheduler.drive(lambda: not scheduler.roots)

    await scheduler.host(body)
    exit = main.poll()
    assert exit is not None
    return exit


async def run(effect: Effect[A, E, Never], *, context: Context[Any] | None = None) -> A:
    """Run `effect` on the current event loop and return its value; raise
    `FiberFailure` (holding the whole `Cause`) if it fails.

    Examples:
        >>> import anyio, effect as fx
        >>> anyio.run(fx.run, fx.sleep(0.001).as_("done"))
        'done'
    """
    return _value_or_raise(await run_exit(effect, context=context))


def run_sync_exit(
    effect: Effect[A, E, Never], *, context: Context[Any] | None = None
) -> Exit[A, E]:
    """Run `effect` without an event loop and return its `Exit`.

    A step that needs one (`fx.promise`, a real-clock `fx.sleep`) fails the fiber with
    the defect `AsyncFiberError` at that point, so its finalizers still run. A fiber
    left waiting forever (`fx.never`) is ended the same way."""
    _check_effect(effect, "run_sync_exit")
    scheduler = Scheduler(sync=True)
    main = scheduler.spawn(effect, context)
    scheduler.drive_sync()
    if not main.done:
        stuck = AsyncFiberError(
            f"Fiber #{main.id} cannot be resolved synchronously: it is waiting for something "
            "that only an event loop or another fiber could complete"
        )
        main._interrupt_cause = None
        _force_fail(main, stuck)
        scheduler.drive_sync()
    scheduler.interrupt_roots()
    scheduler.drive_sync()
    exit = main.poll()
    if exit is None:
        return Failure(
            Die(AsyncFiberError(f"Fiber #{main.id} could not be finished synchronously"))
        )
    return exit


def run_sync(effect: Effect[A, E, Never], *, context: Context[Any] | None = None) -> A:
    """Run `effect` without an event loop and return its value; raise `FiberFailure`
    if it fails (see `run_sync_exit`).

    Examples:
        >>> import effect as fx
        >>> fx.run_sync(fx.succeed(1).map(lambda n: n + 1))
        2
    """
    return _value_or_raise(run_sync_exit(effect, context=context))


def _force_fail(fiber: Fiber[Any, Any], error: Exception) -> None:
    canceler, fiber._canceler = fiber._canceler, None
    if canceler is not None:
        canceler()
    fiber._resume(fiber._epoch, _FailCause(Die(error)))


def _value_or_raise(exit: Exit[A, E]) -> A:
    if isinstance(exit, Success):
        return exit.value
    assert isinstance(exit, Failure)
    raise FiberFailure(exit.cause)
