"""Constructors: the ways to make an effect from a value, a function, or a coroutine."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Never, ParamSpec, TypeVar, overload

from effect._context import Tag
from effect._effect import (
    Effect,
    Provider,
    UnknownException,
    _Async,
    _FailCause,
    _GenEffect,
    _Mask,
    _Promise,
    _Succeed,
    _succeed_node,
    _Suspend,
    _Sync,
    _WithFiber,
    _YieldNow,
)
from effect._exit import Cause, Die, Exit, Fail, Failure, Interrupt, Success
from effect._fiber import Fiber

__all__ = [
    "async_",
    "die",
    "die_message",
    "fail",
    "fail_cause",
    "fiber_id",
    "fn",
    "from_exit",
    "gen",
    "interrupt",
    "never",
    "promise",
    "provide_service",
    "succeed",
    "suspend",
    "sync",
    "try_",
    "try_promise",
    "uninterruptible_mask",
    "void",
    "yield_now",
]

A = TypeVar("A")
E = TypeVar("E")
R = TypeVar("R")
I = TypeVar("I")
S = TypeVar("S")
P = ParamSpec("P")


def succeed(value: A) -> Effect[A, Never, Never]:
    """An effect that succeeds with `value`.

    Examples:
        >>> import effect as fx
        >>> fx.run_sync(fx.succeed(42))
        42
    """
    return _succeed_node(value)


def fail(error: E) -> Effect[Never, E, Never]:
    """An effect that fails with the typed error `error` (cause `Fail(error)`).

    Examples:
        >>> import effect as fx
        >>> fx.run_sync_exit(fx.fail("no"))
        Failure(cause=Fail(error='no'))
    """
    return _FailCause(Fail(error))


def fail_cause(cause: Cause[E]) -> Effect[Never, E, Never]:
    """An effect that fails with exactly `cause`."""
    if not isinstance(cause, Cause):
        raise TypeError(f"fail_cause expected a Cause, got {cause!r}")
    return _FailCause(cause)


def die(defect: BaseException) -> Effect[Never, Never, Never]:
    """An effect that dies with the defect `defect`: a bug, not an expected failure."""
    if not isinstance(defect, BaseException):
        raise TypeError(f"die expected an exception, got {defect!r}; use fail() for typed errors")
    return _FailCause(Die(defect))


def die_message(message: str) -> Effect[Never, Never, Never]:
    """`die(RuntimeError(message))`."""
    return die(RuntimeError(message))


def sync(thunk: Callable[[], A]) -> Effect[A, Never, Never]:
    """An effect that calls `thunk()` each time it runs. An exception it raises is a
    defect; use `try_` to turn it into a typed failure.

    Examples:
        >>> import effect as fx
        >>> calls = []
        >>> eff = fx.sync(lambda: calls.append(1) or len(calls))
        >>> fx.run_sync(eff), fx.run_sync(eff)
        (1, 2)
    """
    if not callable(thunk):
        raise TypeError(f"sync expected a callable, got {thunk!r}")
    return _Sync(thunk)


@overload
def try_(thunk: Callable[[], A]) -> Effect[A, UnknownException, Never]: ...
@overload
def try_(thunk: Callable[[], A], catch: Callable[[Exception], E]) -> Effect[A, E, Never]: ...
def try_(
    thunk: Callable[[], A], catch: Callable[[Exception], Any] | None = None
) -> Effect[A, Any, Never]:
    """Call `thunk()`; an exception it raises becomes the typed failure `catch(exc)`, or
    `UnknownException` without `catch`. If `catch` itself raises, that is a defect.

    Examples:
        >>> import effect as fx
        >>> fx.run_sync(fx.try_(lambda: int("x"), catch=lambda e: "not a number").either())
        <Failure: not a number>
    """
    if not callable(thunk):
        raise TypeError(f"try_ expected a callable, got {thunk!r}")

    def attempt() -> Effect[A, Any, Never]:
        try:
            return _Succeed(thunk())
        except Exception as exc:
            if catch is None:
                return _FailCause(
                    Fail(UnknownException(exc, "An unknown error occurred in Effect.try"))
                )
            return _FailCause(Fail(catch(exc)))

    return _Suspend(attempt)


def promise(make: Callable[[], Awaitable[A]]) -> Effect[A, Never, Never]:
    """Await `make()` on the event loop. An exception is a defect (use `try_promise`
    for typed failures). Interrupting the fiber cancels the await (anyio cancel
    scope) and waits for it to stop; in an uninterruptible region the await finishes
    first.

    Examples:
        >>> import anyio, effect as fx
        >>> async def fetch() -> int:
        ...     await anyio.sleep(0)
        ...     return 7
        >>> anyio.run(fx.run, fx.promise(fetch))
        7
    """
    if not callable(make):
        raise TypeError(f"promise expected a callable returning an awaitable, got {make!r}")
    return _Promise(make, None, f"fx.promise({_name(make)})")


@overload
def try_promise(make: Callable[[], Awaitable[A]]) -> Effect[A, UnknownException, Never]: ...
@overload
def try_promise(
    make: Callable[[], Awaitable[A]], catch: Callable[[Exception], E]
) -> Effect[A, E, Never]: ...
def try_promise(
    make: Callable[[], Awaitable[A]], catch: Callable[[Exception], Any] | None = None
) -> Effect[A, Any, Never]:
    """Like `promise`, but an exception becomes the typed failure `catch(exc)`
    (`UnknownException` without `catch`)."""
    if not callable(make):
        raise TypeError(f"try_promise expected a callable returning an awaitable, got {make!r}")

    def default_catch(exc: Exception) -> UnknownException:
        return UnknownException(exc, "An unknown error occurred in Effect.tryPromise")

    return _Promise(make, catch or default_catch, f"fx.try_promise({_name(make)})")


def suspend(thunk: Callable[[], Effect[A, E, R]]) -> Effect[A, E, R]:
    """Build the effect lazily, each time it runs: the tool for recursion.

    Examples:
        >>> import effect as fx
        >>> def count(n: int) -> fx.Effect[int, fx.Never, fx.Never]:
        ...     return fx.succeed(n) if n == 0 else fx.suspend(lambda: count(n - 1))
        >>> fx.run_sync(count(100_000))
        0
    """
    if not callable(thunk):
        raise TypeError(f"suspend expected a callable, got {thunk!r}")
    return _Suspend(thunk)


void: Effect[None, Never, Never] = _Succeed(None)
"""An effect that succeeds with None."""


def _never_register(
    fiber: Fiber[Any, Any], resume: Callable[[Effect[Any, Any, Any]], None]
) -> None:
    return None


never: Effect[Never, Never, Never] = _Async(_never_register)
"""An effect that never ends (until interrupted)."""


def interrupt() -> Effect[Never, Never, Never]:
    """Fail with `Interrupt(own fiber id)`. Like Effect-TS this is only a failure, so
    `catch_cause` and `exit` can still recover it."""
    return _WithFiber(lambda f: _FailCause(Interrupt(f.id)))


def yield_now() -> Effect[None, Never, Never]:
    """Let other ready fibers run before continuing."""
    return _YieldNow()


def fiber_id() -> Effect[int, Never, Never]:
    """The id of the fiber running the effect."""
    return _WithFiber(lambda f: _Succeed(f.id))


def from_exit(exit: Exit[A, E]) -> Effect[A, E, Never]:
    """Succeed or fail as `exit` says."""
    if isinstance(exit, Success):
        return _Succeed(exit.value)
    if isinstance(exit, Failure):
        return _FailCause(exit.cause)
    raise TypeError(f"from_exit expected an Exit, got {exit!r}")


def async_(
    register: Callable[[Callable[[Effect[A, E, R]], None]], Callable[[], None] | None],
) -> Effect[A, E, R]:
    """Suspend until `register`'s callback is called with the effect to continue with
    (Effect-TS `Effect.async`). `register` may return a canceler, run if the fiber is
    interrupted while waiting. Calling the callback more than once has no effect."""
    return _Async(lambda fiber, resume: register(resume))


def uninterruptible_mask(
    body: Callable[[Callable[[Effect[Any, Any, Any]], Effect[Any, Any, Any]]], Effect[A, E, R]],
) -> Effect[A, E, R]:
    """Run `body(restore)` uninterruptibly; `restore(eff)` runs `eff` with the
    interruptibility that was in force outside.

    Examples:
        >>> import effect as fx
        >>> def body(restore):
        ...     return restore(fx.succeed(1)).map(lambda n: n + 1)
        >>> fx.run_sync(fx.uninterruptible_mask(body))
        2
    """
    return _Mask(body)


def gen(body: Callable[[], Generator[Effect[Any, E, R], Any, A]]) -> Effect[A, E, R]:
    """Do-notation: an effect from a generator function, where `x = yield from eff`
    runs `eff` and gives its value.

    Each run calls `body` anew. The first failing `yield from` ends the body: the
    generator is closed, so its `finally` blocks run (they may run plain code, not
    yield effects), but `except` blocks never see effect failures: handle those with
    combinators such as `catch_all`.

    Examples:
        >>> import effect as fx
        >>> @fx.gen
        ... def total() -> fx.Gen[int, fx.Never, fx.Never]:
        ...     a = yield from fx.succeed(1)
        ...     b = yield from fx.succeed(2)
        ...     return a + b
        >>> fx.run_sync(total)
        3
    """
    # Any callable is accepted (a generator function, or a function returning a
    # generator), so `callable` is the whole check.
    if not callable(body):
        raise TypeError(f"gen expected a generator function, got {body!r}")
    return _GenEffect(body)


def fn(body: Callable[P, Generator[Effect[Any, E, R], Any, A]]) -> Callable[P, Effect[A, E, R]]:
    """Turn a generator function with parameters into a function returning an effect.

    Examples:
        >>> import effect as fx
        >>> @fx.fn
        ... def double(n: int) -> fx.Gen[int, fx.Never, fx.Never]:
        ...     x = yield from fx.succeed(n)
        ...     return x * 2
        >>> fx.run_sync(double(21))
        42
    """

    @functools.wraps(body)
    def make(*args: P.args, **kwargs: P.kwargs) -> Effect[A, E, R]:
        return _GenEffect(lambda: body(*args, **kwargs))

    return make


def provide_service(tag: type[Tag[I, S]], service: S) -> Provider[I]:
    """A function that provides `service` under `tag` to an effect and removes `tag`
    from what it needs: `eff.pipe(fx.provide_service(Tracker, impl))`."""
    return Provider(tag, service)


def _name(fn: object) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)
