"""`Deferred`: a value that is set once and awaited by any number of fibers.

A deferred starts empty. The first completion (`succeed`, `fail`, `die`, `interrupt`,
`done`, `complete`) stores an `Exit` for good and wakes every waiter; later
completions change nothing and return False (rule 93 of the semantics reference).
"""

from __future__ import annotations

from typing import Any, Generic, Never, TypeVar

from effect._effect import (
    Canceler,
    Effect,
    Resume,
    _Async,
    _FailCause,
    _FlatMap,
    _Mask,
    _Succeed,
    _Sync,
    _WithFiber,
)
from effect._exit import Cause, Die, Exit, Fail, Failure, Interrupt, Success
from effect._fiber import Fiber

__all__ = ["Deferred"]

A = TypeVar("A")
E = TypeVar("E")
A1 = TypeVar("A1")
E1 = TypeVar("E1")
R1 = TypeVar("R1")


class Deferred(Generic[A, E]):
    """A one-shot cell: empty until completed with an `Exit[A, E]`, then fixed.

    Examples:
        >>> import effect as fx
        >>> from effect.deferred import Deferred
        >>> @fx.gen
        ... def prog() -> fx.Gen[int, str, fx.Never]:
        ...     d = yield from Deferred[int, str].make()
        ...     waiter = yield from d.await_().fork()
        ...     first = yield from d.succeed(1)
        ...     second = yield from d.succeed(2)
        ...     value = yield from waiter.join()
        ...     return value if first and not second else -1
        >>> fx.run_sync(prog)
        1
    """

    __slots__ = ("_exit", "_waiters")

    def __init__(self) -> None:
        """An empty deferred. Prefer `Deferred.make()` inside effects."""
        self._exit: Exit[A, E] | None = None
        # An insertion-ordered set: waiters are woken in the order they arrived, and
        # an interrupted waiter is removed in O(1).
        self._waiters: dict[Resume, None] = {}

    @classmethod
    def make(cls) -> Effect[Deferred[A, E], Never, Never]:
        """An effect that creates a new, empty deferred each time it runs.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Deferred[int, str].make().flat_map(lambda d: d.is_done()))
            False
        """
        return _Sync(cls)

    # -- completing ----------------------------------------------------------------

    def done(self, exit: Exit[A, E]) -> Effect[bool, Never, Never]:
        """Complete with `exit`. True the first time; False (and no change) if the
        deferred was already complete. Every waiter resumes with that outcome.

        Examples:
            >>> import effect as fx
            >>> d: Deferred[int, str] = Deferred()
            >>> fx.run_sync(d.done(fx.Success(1)).zip(d.done(fx.Success(2))))
            (True, False)
        """
        return _Sync(lambda: self._complete(exit))

    def succeed(self, value: A) -> Effect[bool, Never, Never]:
        """Complete with `Success(value)`; True the first time only.

        Examples:
            >>> import effect as fx
            >>> d: Deferred[int, str] = Deferred()
            >>> fx.run_sync(d.succeed(7).and_then(d.await_()))
            7
        """
        return self.done(Success(value))

    def fail(self, error: E) -> Effect[bool, Never, Never]:
        """Complete with the typed failure `error`; waiters fail with `Fail(error)`.

        Examples:
            >>> import effect as fx
            >>> d: Deferred[int, str] = Deferred()
            >>> fx.run_sync_exit(d.fail("no").and_then(d.await_()))
            Failure(cause=Fail(error='no'))
        """
        return self.done(Failure(Fail(error)))

    def fail_cause(self, cause: Cause[E]) -> Effect[bool, Never, Never]:
        """Complete with the failure `cause`.

        Examples:
            >>> import effect as fx
            >>> d: Deferred[int, str] = Deferred()
            >>> fx.run_sync(d.fail_cause(fx.Fail("x")))
            True
        """
        return self.done(Failure(cause))

    def die(self, defect: BaseException) -> Effect[bool, Never, Never]:
        """Complete with the defect `defect`; waiters die with it.

        Examples:
            >>> import effect as fx
            >>> d: Deferred[int, str] = Deferred()
            >>> fx.run_sync(d.die(ValueError("bug")))
            True
        """
        return self.done(Failure(Die(defect)))

    def interrupt(self) -> Effect[bool, Never, Never]:
        """Complete with an interruption by the calling fiber: waiters fail with
        `Interrupt(caller id)`.

        Examples:
            >>> import effect as fx
            >>> d: Deferred[int, str] = Deferred()
            >>> exit = fx.run_sync_exit(d.interrupt().and_then(d.await_()))
            >>> exit.cause.is_interrupted_only()
            True
        """
        return _WithFiber(lambda fiber: _Succeed(self._complete(Failure(Interrupt(fiber.id)))))

    def complete(self, effect: Effect[A, E, R1]) -> Effect[bool, Never, R1]:
        """Run `effect` once and complete with its exit (uninterruptibly once it has
        ended, so the result is never lost). True if this completion was the first.

        Examples:
            >>> import effect as fx
            >>> d: Deferred[int, str] = Deferred()
            >>> fx.run_sync(d.complete(fx.succeed(3)).and_then(d.await_()))
            3
        """
        return _Mask(lambda restore: _FlatMap(restore(effect).exit(), lambda ex: self.done(ex)))

    # -- observing -----------------------------------------------------------------

    def await_(self) -> Effect[A, E, Never]:
        """Wait until the deferred is complete, then succeed or fail as its `Exit`
        says. Every waiter gets the same outcome. Interruptible: an interrupted waiter
        is removed and the deferred is unchanged.

        Examples:
            >>> import effect as fx
            >>> d: Deferred[str, str] = Deferred()
            >>> fx.run_sync(d.succeed("ready").and_then(d.await_()))
            'ready'
        """
        return _Async(self._register)

    def poll(self) -> Effect[Exit[A, E] | None, Never, Never]:
        """The stored `Exit`, or None if the deferred is not complete yet.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Deferred[int, str]().poll()) is None
            True
        """
        return _Sync(lambda: self._exit)

    def is_done(self) -> Effect[bool, Never, Never]:
        """True once the deferred is complete.

        Examples:
            >>> import effect as fx
            >>> d: Deferred[int, str] = Deferred()
            >>> fx.run_sync(d.succeed(1).and_then(d.is_done()))
            True
        """
        return _Sync(lambda: self._exit is not None)

    # -- internals -------------------------------------------------------------------

    def _complete(self, exit: Exit[A, E]) -> bool:
        if self._exit is not None:
            return False
        self._exit = exit
        waiters, self._waiters = self._waiters, {}
        result = _result_of(exit)
        for resume in waiters:
            resume(result)
        return True

    def _register(self, fiber: Fiber[Any, Any], resume: Resume) -> Canceler | None:
        exit = self._exit
        if exit is not None:
            resume(_result_of(exit))
            return None
        waiters = self._waiters
        waiters[resume] = None
        return lambda: waiters.pop(resume, None)

    def __repr__(self) -> str:
        state = "empty" if self._exit is None else repr(self._exit)
        return f"<Deferred {state}, {len(self._waiters)} waiting>"


def _result_of(exit: Exit[A1, E1]) -> Effect[A1, E1, Never]:
    if isinstance(exit, Success):
        return _Succeed(exit.value)
    return _FailCause(exit.cause)
