"""`TestClock`: a `Clock` whose time only moves when a test says so.

Provide it in place of the real clock (`test_clock.layer()`, or
`provide_service(Clock, test_clock)`); then `fx.sleep`, `timeout`, and the delays of
`retry` / `repeat` wait on virtual time, and `adjust` moves that time forward,
waking the sleepers that come due in time order. A test of a retry policy that
backs off for hours runs in milliseconds, and deterministically.
"""

from __future__ import annotations

import heapq
import math
from typing import Any, Never

from effect._effect import (
    Canceler,
    Effect,
    Resume,
    _Async,
    _FailCause,
    _FlatMap,
    _Succeed,
    _Suspend,
    _Sync,
    _WithFiber,
    _YieldNow,
)
from effect._exit import Die
from effect._fiber import Fiber
from effect._layer import Layer
from effect.clock import Clock

__all__ = ["TestClock"]

_VOID: Effect[None, Never, Never] = _Succeed(None)
_YIELD: Effect[None, Never, Never] = _YieldNow()

# Upper bound on the yields spent letting other fibers settle after one wake-up, so a
# fiber that spins forever (`repeat(yield_now, forever)`) cannot hang `adjust`.
_MAX_SETTLE_ROUNDS = 10_000


class _Sleeper:
    __slots__ = ("deadline", "live", "resume")

    def __init__(self, deadline: float, resume: Resume) -> None:
        self.deadline = deadline
        self.resume = resume
        self.live = True


class TestClock:
    """A virtual clock for tests, and the `ClockService` that reads it.

    `now()` is the virtual time (seconds; starts at `start`). `sleep(d)` registers a
    sleeper due at `now() + d` and suspends. `adjust(d)` and `set_time(t)` move time
    forward and wake the due sleepers one at a time, earliest first (first come,
    first served for equal times), letting every fiber run until it is suspended
    again before waking the next: a woken fiber that sleeps again within the
    adjusted window is woken in the same `adjust`.

    Example:
        >>> import effect as fx
        >>> from effect.testing import TestClock
        >>> clock = TestClock()
        >>> @fx.gen
        ... def prog() -> fx.Gen[tuple[str, float], fx.Never, fx.Never]:
        ...     fiber = yield from fx.sleep(3600).as_("woke").fork()
        ...     yield from clock.adjust(3600)
        ...     return (yield from fiber.join()), clock.now()
        >>> fx.run_sync(prog.pipe(fx.provide_service(fx.Clock, clock)))
        ('woke', 3600.0)
    """

    __test__ = False  # not a pytest test class, despite the name

    __slots__ = ("_heap", "_live", "_now", "_seq")

    def __init__(self, start: float = 0.0) -> None:
        """A clock reading `start`. `TestClock.make(start)` is the effect form."""
        _check_time(start, "start")
        self._now = float(start)
        self._heap: list[tuple[float, int, _Sleeper]] = []
        self._seq = 0
        self._live = 0

    @staticmethod
    def make(start: float = 0.0) -> Effect[TestClock, Never, Never]:
        """An effect that creates a new test clock reading `start`.

        Example:
            >>> import effect as fx
            >>> fx.run_sync(TestClock.make(5.0)).now()
            5.0
        """
        _check_time(start, "start")
        return _Sync(lambda: TestClock(start))

    def layer(self) -> Layer[Clock, Never, Never]:
        """A layer providing this clock as the `Clock` service.

        Example:
            >>> import effect as fx
            >>> fx.run_sync(fx.now().provide(TestClock(42.0).layer()))
            42.0
        """
        return Layer.succeed(Clock, self)

    # -- ClockService --------------------------------------------------------------

    def now(self) -> float:
        """The virtual time, in seconds (a plain call, as `ClockService` requires)."""
        return self._now

    def sleep(self, seconds: float) -> Effect[None, Never, Never]:
        """Suspend until virtual time reaches `now() + seconds`. Interruptible: an
        interrupted sleeper is forgotten. `sleep(0)` only yields to other fibers.

        Example:
            >>> import effect as fx
            >>> clock = TestClock()
            >>> fx.run_sync(clock.sleep(0).as_("no wait"))
            'no wait'
        """
        if seconds <= 0:
            return _YIELD
        return _Async(lambda fiber, resume: self._register(self._now + seconds, resume))

    # -- controlling time ----------------------------------------------------------

    def adjust(self, seconds: float) -> Effect[None, Never, Never]:
        """Move time forward by `seconds`, waking every sleeper due by then, in time
        order, each given the chance to run (and sleep again) before the next wakes.

        `ValueError` (when called) if `seconds` is negative or not finite.

        Example:
            >>> import effect as fx
            >>> clock = TestClock()
            >>> fx.run_sync(clock.adjust(1.5).and_then(clock.adjust(1)))
            >>> clock.now()
            2.5
        """
        _check_time(seconds, "seconds")
        if seconds < 0:
            raise ValueError(f"adjust expects seconds >= 0, got seconds={seconds!r}")
        return _Suspend(lambda: self._advance(self._now + seconds))

    def set_time(self, time: float) -> Effect[None, Never, Never]:
        """Set the time to `time`, waking the sleepers due by then as `adjust` does.
        Setting an earlier time moves the clock back and wakes nobody.

        Example:
            >>> import effect as fx
            >>> clock = TestClock()
            >>> fx.run_sync(clock.set_time(100.0))
            >>> clock.now()
            100.0
        """
        _check_time(time, "time")
        return _Suspend(lambda: self._advance(time))

    def adjust_until_idle(self, *, max_wakes: int = 100_000) -> Effect[int, Never, Never]:
        """Jump from one due sleeper to the next until no fiber sleeps on this clock;
        succeed with the number of sleepers woken. Dies with `RuntimeError` past
        `max_wakes` wake-ups (a schedule that never ends, say).

        Example:
            >>> import effect as fx
            >>> clock = TestClock()
            >>> prog = fx.sleep(10).fork().flat_map(lambda f: clock.adjust_until_idle())
            >>> fx.run_sync(prog.pipe(fx.provide_service(fx.Clock, clock))), clock.now()
            (1, 10.0)
        """

        def loop(woken: int) -> Effect[int, Never, Never]:
            sleeper = self._pop_due(math.inf)
            if sleeper is None:
                return _Succeed(woken)
            if woken >= max_wakes:
                return _FailCause(
                    Die(RuntimeError(f"TestClock.adjust_until_idle: over {max_wakes} wake-ups"))
                )
            self._wake(sleeper)
            return _FlatMap(_settle(), lambda _: loop(woken + 1))

        return _FlatMap(_settle(), lambda _: loop(0))

    def sleepers(self) -> Effect[int, Never, Never]:
        """How many fibers are sleeping on this clock.

        Example:
            >>> import effect as fx
            >>> clock = TestClock()
            >>> prog = fx.sleep(5).fork().and_then(fx.yield_now()).and_then(clock.sleepers())
            >>> fx.run_sync(prog.pipe(fx.provide_service(fx.Clock, clock)))
            1
        """
        return _Sync(lambda: self._live)

    def __repr__(self) -> str:
        return f"<TestClock now={self._now} sleepers={self._live}>"

    # -- internals -------------------------------------------------------------------

    def _register(self, deadline: float, resume: Resume) -> Canceler:
        sleeper = _Sleeper(deadline, resume)
        self._seq += 1
        heapq.heappush(self._heap, (deadline, self._seq, sleeper))
        self._live += 1

        def cancel() -> None:
            # Lazy deletion: the heap entry is skipped when it comes up.
            if sleeper.live:
                sleeper.live = False
                self._live -= 1

        return cancel

    def _pop_due(self, target: float) -> _Sleeper | None:
        heap = self._heap
        while heap and heap[0][0] <= target:
            sleeper = heapq.heappop(heap)[2]
            if sleeper.live:
                return sleeper
        return None

    def _wake(self, sleeper: _Sleeper) -> None:
        sleeper.live = False
        self._live -= 1
        self._now = max(self._now, sleeper.deadline)
        sleeper.resume(_VOID)

    def _advance(self, target: float) -> Effect[None, Never, Never]:
        # Settle first: fibers forked just before `adjust` have not run yet and may be
        # about to sleep.
        def loop(_: object) -> Effect[None, Never, Never]:
            sleeper = self._pop_due(target)
            if sleeper is None:
                self._now = target
                return _VOID
            self._wake(sleeper)
            return _FlatMap(_settle(), loop)

        return _FlatMap(_settle(), loop)


def _settle() -> Effect[None, Never, Never]:
    """Yield until no other fiber is ready to run, i.e. every fiber has run until it
    suspended (or finished), up to `_MAX_SETTLE_ROUNDS` yields."""

    def check(fiber: Fiber[Any, Any], rounds: int) -> Effect[None, Never, Never]:
        if rounds >= _MAX_SETTLE_ROUNDS or not _others_ready(fiber):
            return _VOID
        return _FlatMap(_YIELD, lambda _: _WithFiber(lambda f: check(f, rounds + 1)))

    return _FlatMap(_YIELD, lambda _: _WithFiber(lambda f: check(f, 1)))


def _others_ready(fiber: Fiber[Any, Any]) -> bool:
    # The scheduler's ready queue holds the fibers that will run before this one gets
    # its next turn; empty means everything else is suspended or done. Fibers waiting
    # on real I/O (`fx.promise`) are not waited for.
    return bool(fiber._scheduler._ready)


def _check_time(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {name}={value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {name}={value!r}")
