"""`Semaphore`: a fixed number of permits, handed out first come, first served.

Waiting is interruptible; handing out permits is exact. A waiter is only woken when
it is at the head of the line and enough permits are free; it stays at the head
(so nobody overtakes it) until it runs and takes them. If it is interrupted before
that, its place goes to the next waiter. `with_permits` releases what it took exactly
once, however the guarded effect ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Never, TypeVar

from effect._effect import (
    Canceler,
    Effect,
    Resume,
    _Async,
    _check_effect,
    _FailCause,
    _FlatMap,
    _Fold,
    _Mask,
    _Succeed,
    _Sync,
    _WithFiber,
)
from effect._exit import Cause
from effect._fiber import Fiber

__all__ = ["Semaphore"]

A = TypeVar("A")
E = TypeVar("E")
R = TypeVar("R")

Restore = Callable[[Effect[Any, Any, Any]], Effect[Any, Any, Any]]

_VOID: Effect[None, Never, Never] = _Succeed(None)


class _Waiter:
    __slots__ = ("n", "queued", "resume", "woken")

    def __init__(self, n: int) -> None:
        self.n = n
        self.woken = False
        self.queued = False
        self.resume: Resume | None = None


class Semaphore:
    """A pool of `permits` permits. Fibers take some, do their work, give them back.

    Examples:
        >>> import effect as fx
        >>> from effect.semaphore import Semaphore
        >>> @fx.gen
        ... def prog() -> fx.Gen[list[int], fx.Never, fx.Never]:
        ...     sem = yield from Semaphore.make(2)
        ...     work = [sem.with_permits(1)(fx.succeed(i)) for i in range(4)]
        ...     return (yield from fx.all(work, concurrency="unbounded"))
        >>> fx.run_sync(prog)
        [0, 1, 2, 3]
    """

    __slots__ = ("_free", "_permits", "_waiters")

    def __init__(self, permits: int) -> None:
        """A semaphore with `permits` free permits. Prefer `Semaphore.make` inside
        effects. `ValueError` if `permits` is negative."""
        _check_count(permits, "permits")
        self._permits = permits
        self._free = permits
        self._waiters: deque[_Waiter] = deque()

    @staticmethod
    def make(permits: int) -> Effect[Semaphore, Never, Never]:
        """An effect that creates a new semaphore with `permits` permits.

        `ValueError` (when called) if `permits` is negative.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Semaphore.make(3).flat_map(lambda s: s.available()))
            3
        """
        _check_count(permits, "permits")
        return _Sync(lambda: Semaphore(permits))

    @property
    def permits(self) -> int:
        """The total number of permits."""
        return self._permits

    def available(self) -> Effect[int, Never, Never]:
        """How many permits are free right now.

        Examples:
            >>> import effect as fx
            >>> sem = Semaphore(2)
            >>> fx.run_sync(sem.take(1).and_then(sem.available()))
            1
        """
        return _Sync(lambda: self._free)

    def take(self, n: int = 1) -> Effect[int, Never, Never]:
        """Take `n` permits, waiting in line (FIFO) until they are free; succeed
        with `n`. Interruptible while waiting: an interrupted take holds nothing and
        leaves the line. The caller must `release` them: prefer `with_permits`.

        `ValueError` (when called) if `n` is negative or more than the total.

        Examples:
            >>> import effect as fx
            >>> sem = Semaphore(3)
            >>> fx.run_sync(sem.take(2).and_then(sem.available()))
            1
        """
        self._check_request(n)

        def body(fiber: Fiber[Any, Any]) -> Effect[int, Never, Never]:
            # A plain step, not a `suspend`: nothing may sit between taking the
            # permits and handing `n` to the caller where an interrupt could drop it.
            if not self._waiters and self._free >= n:
                self._free -= n
                return _Succeed(n)
            return _Mask(lambda restore: self._wait(n, restore))

        return _WithFiber(body)

    def release(self, n: int = 1) -> Effect[int, Never, Never]:
        """Give back `n` permits and wake the waiters they satisfy; succeed with the
        number now free. The free count never exceeds the total.

        Examples:
            >>> import effect as fx
            >>> sem = Semaphore(2)
            >>> fx.run_sync(sem.take(2).and_then(sem.release(1)))
            1
        """
        self._check_request(n)
        return _Sync(lambda: self._release(n))

    def release_all(self) -> Effect[int, Never, Never]:
        """Make every permit free again; succeed with the total.

        Examples:
            >>> import effect as fx
            >>> sem = Semaphore(2)
            >>> fx.run_sync(sem.take(2).and_then(sem.release_all()))
            2
        """
        return _Sync(lambda: self._release(self._permits))

    def with_permits(self, n: int) -> Callable[[Effect[A, E, R]], Effect[A, E, R]]:
        """A function that runs an effect holding `n` permits:
        `eff.pipe(sem.with_permits(1))` or `sem.with_permits(1)(eff)`.

        Waiting for the permits is interruptible (with the caller's
        interruptibility); once they are taken, they are released exactly once when
        the effect ends, on success, failure, defect or interruption.

        Examples:
            >>> import effect as fx
            >>> sem = Semaphore(1)
            >>> fx.run_sync(sem.with_permits(1)(sem.available()).zip(sem.available()))
            (0, 1)
        """
        self._check_request(n)

        def apply(effect: Effect[A, E, R]) -> Effect[A, E, R]:
            _check_effect(effect, "with_permits")

            def on_failure(cause: Cause[Any]) -> Effect[Any, Any, Any]:
                self._release(n)
                return _FailCause(cause)

            def on_success(value: Any) -> Effect[Any, Any, Any]:
                self._release(n)
                return _Succeed(value)

            def body(restore: Restore) -> Effect[A, E, R]:
                # Everything outside `restore` is uninterruptible: an interrupt can
                # only land while waiting (nothing taken) or inside `effect` (the
                # fold releases).
                return _FlatMap(
                    self._acquire(n, restore),
                    lambda _: _Fold(restore(effect), on_failure, on_success),
                )

            return _Mask(body)

        return apply

    # -- internals -------------------------------------------------------------------

    def _acquire(self, n: int, restore: Restore) -> Effect[int, Never, Never]:
        if not self._waiters and self._free >= n:
            self._free -= n
            return _Succeed(n)
        return self._wait(n, restore)

    def _wait(self, n: int, restore: Restore) -> Effect[int, Never, Never]:
        """Runs uninterruptibly; only the `_Async` wait is restored to the caller's
        interruptibility."""
        waiter = _Waiter(n)

        def register(fiber: Fiber[Any, Any], resume: Resume) -> Canceler:
            waiter.resume = resume
            if not waiter.queued:
                waiter.queued = True
                self._waiters.append(waiter)
            self._wake()
            return lambda: self._remove(waiter)

        def on_failure(cause: Cause[Any]) -> Effect[int, Never, Never]:
            # Interrupted, possibly after being woken but before running: either way
            # it took nothing, and the next waiter may now go first.
            self._remove(waiter)
            return _FailCause(cause)

        def on_success(_: object) -> Effect[int, Never, Never]:
            waiters = self._waiters
            if waiters and waiters[0] is waiter and self._free >= n:
                waiters.popleft()
                waiter.queued = False
                self._free -= n
                self._wake()
                return _Succeed(n)
            # Not reachable while the invariants hold (only a head with enough free
            # permits is woken, and nobody overtakes it); wait again in place.
            waiter.woken = False
            return _Fold(restore(_Async(register)), on_failure, on_success)

        return _Fold(restore(_Async(register)), on_failure, on_success)

    def _remove(self, waiter: _Waiter) -> None:
        if waiter.queued:
            waiter.queued = False
            self._waiters.remove(waiter)
            self._wake()

    def _wake(self) -> None:
        waiters = self._waiters
        if waiters:
            head = waiters[0]
            if not head.woken and self._free >= head.n and head.resume is not None:
                head.woken = True
                head.resume(_VOID)

    def _release(self, n: int) -> int:
        self._free = min(self._permits, self._free + n)
        self._wake()
        return self._free

    def _check_request(self, n: int) -> None:
        _check_count(n, "n")
        if n > self._permits:
            raise ValueError(f"n={n} is more than the semaphore's {self._permits} permits")

    def __repr__(self) -> str:
        return f"<Semaphore {self._free}/{self._permits} free, {len(self._waiters)} waiting>"


def _check_count(value: int, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {name}={value}")
