"""Concurrency combinators: `all`, `for_each`, `race`, `race_first`, `race_all`,
`timeout`.

Each one forks child fibers of the fiber that runs it, so supervision holds: if that
fiber is interrupted, the children are interrupted and awaited before it ends.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any, Literal, Never, TypeVar, overload

from effect._effect import (
    Effect,
    TimeoutException,
    _Async,
    _check_effect,
    _FailCause,
    _FlatMap,
    _SetInterruptible,
    _Succeed,
    _Suspend,
    _WithFiber,
)
from effect._exit import Cause, Die, Empty, Exit, Success
from effect._fiber import Fiber

__all__ = ["all", "for_each", "race", "race_all", "race_first", "timeout"]

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
E = TypeVar("E")
E1 = TypeVar("E1")
E2 = TypeVar("E2")
E3 = TypeVar("E3")
E4 = TypeVar("E4")
R = TypeVar("R")
R1 = TypeVar("R1")
R2 = TypeVar("R2")
R3 = TypeVar("R3")
R4 = TypeVar("R4")

Concurrency = int | Literal["unbounded"] | None


def _check_concurrency(concurrency: Concurrency) -> int | None:
    if concurrency is None:
        return None
    if concurrency == "unbounded":
        return 1 << 62
    if isinstance(concurrency, bool) or not isinstance(concurrency, int):
        raise TypeError(f"concurrency must be an int, 'unbounded' or None, got {concurrency!r}")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    return concurrency


def for_each(
    items: Iterable[A],
    f: Callable[[A], Effect[B, E, R]],
    *,
    concurrency: Concurrency = None,
) -> Effect[list[B], E, R]:
    """Run `f(item)` for each item and succeed with the results in order.

    Sequential by default; with `concurrency=n` (or `"unbounded"`) up to n run at once
    on child fibers. The first failure interrupts the running siblings, waits for
    them, and fails with that failure (other real failures join it as `Parallel`).

    Examples:
        >>> import effect as fx
        >>> fx.run_sync(fx.for_each([1, 2, 3], lambda n: fx.succeed(n * 10)))
        [10, 20, 30]
    """
    bound = _check_concurrency(concurrency)
    if not callable(f):
        raise TypeError(f"for_each expected a callable, got {f!r}")
    values = list(items)
    if bound is None or bound == 1:
        return _Suspend(lambda: _sequential(values, f))
    return _WithFiber(lambda parent: _Async(_parallel(parent, values, f, bound)))


def _sequential(values: list[A], f: Callable[[A], Effect[B, E, R]]) -> Effect[list[B], E, R]:
    results: list[B] = []
    iterator = iter(values)

    def collect(value: B) -> Effect[list[B], E, R]:
        results.append(value)
        return step()

    def step() -> Effect[list[B], E, R]:
        for item in iterator:
            return _FlatMap(f(item), collect)
        return _Succeed(results)

    return step()


def _parallel(
    parent: Fiber[Any, Any],
    values: list[Any],
    f: Callable[[Any], Effect[Any, Any, Any]],
    bound: int,
) -> Callable[
    [Fiber[Any, Any], Callable[[Effect[Any, Any, Any]], None]], Callable[[], None] | None
]:
    def register(
        _: Fiber[Any, Any], resume: Callable[[Effect[Any, Any, Any]], None]
    ) -> Callable[[], None]:
        n = len(values)
        results: list[Any] = [None] * n
        running: dict[int, Fiber[Any, Any]] = {}
        state = {"next": 0, "finished": 0, "stopped": False}
        causes: list[Cause[Any]] = []

        def launch() -> None:
            while not state["stopped"] and len(running) < bound and state["next"] < n:
                i = state["next"]
                state["next"] = i + 1
                try:
                    eff = f(values[i])
                    _check_effect(eff, "for_each callback result")
                except Exception as exc:
                    eff = _FailCause(Die(exc))
                child = parent._fork(eff, False)
                running[i] = child
                child._observe(functools.partial(done, i))

        def done(i: int, ex: Exit[Any, Any]) -> None:
            running.pop(i, None)
            state["finished"] += 1
            if isinstance(ex, Success):
                results[i] = ex.value
            elif not (state["stopped"] and ex.cause.is_interrupted_only()):
                causes.append(ex.cause)
                if not state["stopped"]:
                    state["stopped"] = True
                    for sibling in list(running.values()):
                        sibling._signal_interrupt(parent.id)
            if state["stopped"]:
                if not running:
                    combined: Cause[Any] = Empty()
                    for cause in causes:
                        combined = combined.both(cause)
                    resume(_FailCause(combined))
            elif state["finished"] == n:
                resume(_Succeed(results))
            else:
                launch()

        if n == 0:
            resume(_Succeed(results))
        else:
            launch()

        def cancel() -> None:
            # The parent was interrupted: stop launching; supervision interrupts and
            # awaits the running children when the parent ends.
            state["stopped"] = True

        return cancel

    return register


# Tuples are matched before the general iterable on purpose: they keep each
# element's type, so the overlap mypy warns about is the point. The Never overloads
# come first because pyright reports a union of type variables all solved to Never
# as Unknown.
@overload
def all(  # type: ignore[overload-overlap]
    effects: tuple[Effect[A, Never, Never], Effect[B, Never, Never]],
    *,
    concurrency: Concurrency = None,
) -> Effect[tuple[A, B], Never, Never]: ...
@overload
def all(  # type: ignore[overload-overlap]
    effects: tuple[Effect[A, E1, R1], Effect[B, E2, R2]], *, concurrency: Concurrency = None
) -> Effect[tuple[A, B], E1 | E2, R1 | R2]: ...
@overload
def all(  # type: ignore[overload-overlap]
    effects: tuple[Effect[A, E1, R1], Effect[B, E2, R2], Effect[C, E3, R3]],
    *,
    concurrency: Concurrency = None,
) -> Effect[tuple[A, B, C], E1 | E2 | E3, R1 | R2 | R3]: ...
@overload
def all(  # type: ignore[overload-overlap]
    effects: tuple[Effect[A, E1, R1], Effect[B, E2, R2], Effect[C, E3, R3], Effect[D, E4, R4]],
    *,
    concurrency: Concurrency = None,
) -> Effect[tuple[A, B, C, D], E1 | E2 | E3 | E4, R1 | R2 | R3 | R4]: ...
@overload
def all(
    effects: Iterable[Effect[A, E, R]], *, concurrency: Concurrency = None
) -> Effect[list[A], E, R]: ...
def all(
    effects: Iterable[Effect[Any, Any, Any]], *, concurrency: Concurrency = None
) -> Effect[Any, Any, Any]:
    """Run every effect and collect the values (a tuple for a tuple, else a list).

    Same rules as `for_each`: sequential by default, `concurrency=` for parallel, the
    first failure interrupts the rest.

    Examples:
        >>> import effect as fx
        >>> fx.run_sync(fx.all((fx.succeed(1), fx.succeed("a"))))
        (1, 'a')
    """
    is_tuple = isinstance(effects, tuple)
    listed = list(effects)
    for eff in listed:
        _check_effect(eff, "all")
    collected = for_each(listed, _identity, concurrency=concurrency)
    return collected.map(tuple) if is_tuple else collected


def _identity(eff: Effect[A, E, R]) -> Effect[A, E, R]:
    return eff


def race_all(effects: Iterable[Effect[A, E, R]]) -> Effect[A, E, R]:
    """Run all at once; the first to succeed wins, and every loser is interrupted and
    awaited before the race returns. If all fail, the cause is `Parallel` of all the
    causes, the latest leftmost (so `either` gives the last failure, as in Effect-TS).

    Examples:
        >>> import effect as fx
        >>> fx.run_sync(fx.race_all([fx.fail("a"), fx.succeed(2)]))
        2
    """
    listed = list(effects)
    if not listed:
        raise ValueError("race_all needs at least one effect")
    for eff in listed:
        _check_effect(eff, "race_all")
    return _race(listed, first_completion=False, latest_first=True)


@overload
def race(
    left: Effect[A, Never, Never], right: Effect[B, Never, Never]
) -> Effect[A | B, Never, Never]: ...
@overload
def race(left: Effect[A, E1, R1], right: Effect[B, E2, R2]) -> Effect[A | B, E1 | E2, R1 | R2]: ...
def race(left: Effect[A, E1, R1], right: Effect[B, E2, R2]) -> Effect[A | B, E1 | E2, R1 | R2]:
    """See `Effect.race`: the first success wins; both failing gives
    `Parallel(left cause, right cause)`."""
    _check_effect(right, "race")
    return _race([left, right], first_completion=False, latest_first=False)


@overload
def race_first(
    left: Effect[A, Never, Never], right: Effect[B, Never, Never]
) -> Effect[A | B, Never, Never]: ...
@overload
def race_first(
    left: Effect[A, E1, R1], right: Effect[B, E2, R2]
) -> Effect[A | B, E1 | E2, R1 | R2]: ...
def race_first(
    left: Effect[A, E1, R1], right: Effect[B, E2, R2]
) -> Effect[A | B, E1 | E2, R1 | R2]:
    """See `Effect.race_first`: the first to end, success or failure, wins."""
    _check_effect(right, "race_first")
    return _race([left, right], first_completion=True, latest_first=False)


def _race(
    effects: list[Effect[Any, Any, Any]], *, first_completion: bool, latest_first: bool
) -> Effect[Any, Any, Any]:
    def start(parent: Fiber[Any, Any]) -> Effect[Any, Any, Any]:
        def register(_: Fiber[Any, Any], resume: Callable[[Effect[Any, Any, Any]], None]) -> None:
            # Contestants are interruptible even when the race runs in an
            # uninterruptible region (a finalizer, say): a race must be able to stop
            # its loser. An effect marked `uninterruptible()` still runs to its end.
            fibers = [parent._fork(_SetInterruptible(eff, True), False) for eff in effects]
            failures: list[Cause[Any]] = [Empty()] * len(fibers)
            winner: list[int] = []
            failed_order: list[int] = []

            def finish_after_losers(
                result: Effect[Any, Any, Any], losers: list[Fiber[Any, Any]]
            ) -> None:
                pending = len(losers)
                if pending == 0:
                    resume(result)
                    return

                def loser_done(_: Exit[Any, Any]) -> None:
                    nonlocal pending
                    pending -= 1
                    if pending == 0:
                        resume(result)

                for loser in losers:
                    loser._signal_interrupt(parent.id)
                for loser in losers:
                    loser._observe(loser_done)

            def on_exit(index: int, ex: Exit[Any, Any]) -> None:
                if winner:
                    return
                if isinstance(ex, Success) or first_completion:
                    winner.append(index)
                    result: Effect[Any, Any, Any] = (
                        _Succeed(ex.value) if isinstance(ex, Success) else _FailCause(ex.cause)
                    )
                    finish_after_losers(
                        result, [f for i, f in enumerate(fibers) if i != index and not f.done]
                    )
                    return
                failures[index] = ex.cause
                failed_order.append(index)
                if len(failed_order) == len(fibers):
                    winner.append(-1)
                    combined: Cause[Any] = Empty()
                    order = reversed(failed_order) if latest_first else range(len(fibers))
                    for i in order:
                        combined = combined.both(failures[i])
                    resume(_FailCause(combined))

            for i, fiber in enumerate(fibers):
                fiber._observe(functools.partial(on_exit, i))

        return _Async(register)

    return _WithFiber(start)


def timeout(effect: Effect[A, E, R], seconds: float) -> Effect[A, E | TimeoutException, R]:
    """See `Effect.timeout`."""
    _check_seconds(seconds, "timeout")
    from effect.clock import sleep

    timer: Effect[Never, TimeoutException, Never] = _FlatMap(
        sleep(seconds), lambda _: _FailCause(_fail(TimeoutException(seconds)))
    )
    return race_first(effect, timer)


def _fail(error: object) -> Cause[Any]:
    from effect._exit import Fail

    return Fail(error)


def _check_seconds(seconds: float, where: str) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise TypeError(f"{where} expected a number of seconds, got {seconds!r}")
    if seconds < 0 or seconds != seconds:
        raise ValueError(f"{where} expected a non-negative number of seconds, got {seconds!r}")
