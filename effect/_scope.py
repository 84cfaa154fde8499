"""Scopes and resources: finalizers that run exactly once, in reverse order, with the
`Exit` of what they guard.

`Scope` is both a service tag and the service itself: an effect that needs a scope
has `Scope` in its requirements, and `scope = yield from Scope` gives the current one.
`fx.scoped(eff)` makes a fresh scope for `eff` and closes it when `eff` ends.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Literal, Never, TypeVar, overload

from effect._context import Tag
from effect._effect import (
    Effect,
    _check_effect,
    _FailCause,
    _FlatMap,
    _Mask,
    _Provide,
    _Service,
    _SetInterruptible,
    _Succeed,
    _Suspend,
    _WithFiber,
)
from effect._exit import Cause, Empty, Exit, Failure, Parallel
from effect._fiber import Fiber

__all__ = [
    "Finalizer",
    "Scope",
    "acquire_release",
    "acquire_use_release",
    "add_finalizer",
    "fork_in",
    "fork_scoped",
    "scoped",
]

A = TypeVar("A")
B = TypeVar("B")
E = TypeVar("E")
E2 = TypeVar("E2")
E3 = TypeVar("E3")
R = TypeVar("R")
R2 = TypeVar("R2")
R3 = TypeVar("R3")

Finalizer = Callable[[Exit[Any, Any]], Effect[Any, Any, Never]]
Strategy = Literal["sequential", "parallel"]

_keys = itertools.count()


class Scope(Tag["Scope", "Scope"]):
    """A place to register finalizers; closing it runs them.

    Finalizers run exactly once, in reverse order of registration, each with the exit
    the scope was closed with. A failing (or dying) finalizer does not stop the
    others; the close fails with the finalizers' causes combined as `Sequential`, in
    the order they ran. Adding a finalizer to a closed scope runs it at once with the
    close exit. `close` is idempotent and runs uninterruptibly.

    Examples:
        >>> import effect as fx
        >>> log = []
        >>> scope = fx.Scope()
        >>> prog = (
        ...     scope.add_finalizer(lambda ex: fx.sync(lambda: log.append("a")))
        ...     .and_then(scope.add_finalizer(lambda ex: fx.sync(lambda: log.append("b"))))
        ...     .and_then(scope.close(fx.Success(None)))
        ... )
        >>> fx.run_sync(prog); log
        ['b', 'a']
    """

    __slots__ = ("_closed", "_finalizers", "_strategy")

    def __init__(self, strategy: Strategy = "sequential") -> None:
        if strategy not in ("sequential", "parallel"):
            raise ValueError(f"strategy must be 'sequential' or 'parallel', got {strategy!r}")
        self._finalizers: dict[int, Finalizer] = {}
        self._closed: Exit[Any, Any] | None = None
        self._strategy = strategy

    @staticmethod
    def make(strategy: Strategy = "sequential") -> Effect[Scope, Never, Never]:
        """An effect that creates a new open scope."""
        return _Suspend(lambda: _Succeed(Scope(strategy)))

    @property
    def is_closed(self) -> bool:
        return self._closed is not None

    def add_finalizer(self, finalizer: Finalizer) -> Effect[None, Never, Never]:
        """Register `finalizer(exit)` to run when the scope closes (at once, with the
        close exit, if it is already closed)."""
        if not callable(finalizer):
            raise TypeError(f"add_finalizer expected a callable taking an Exit, got {finalizer!r}")

        def register() -> Effect[None, Never, Never]:
            closed = self._closed
            if closed is not None:
                # Rule 26: run at once, and its failure is the caller's.
                return _Suspend(lambda: finalizer(closed)).or_die().as_void
            self._finalizers[next(_keys)] = finalizer
            return _VOID

        return _Suspend(register)

    def _add(self, finalizer: Finalizer) -> int | None:
        """Register synchronously; returns the key, or None if the scope is closed."""
        if self._closed is not None:
            return None
        key = next(_keys)
        self._finalizers[key] = finalizer
        return key

    def _remove(self, key: int) -> None:
        self._finalizers.pop(key, None)

    def close(self, exit: Exit[Any, Any]) -> Effect[None, Never, Never]:
        """Close the scope with `exit`: run every finalizer once, newest first.
        Idempotent: closing a closed scope does nothing. Fails (with the finalizers'
        causes) if any finalizer failed."""

        def start() -> Effect[None, Never, Never]:
            if self._closed is not None:
                return _VOID
            self._closed = exit
            finalizers = list(self._finalizers.values())
            finalizers.reverse()
            self._finalizers.clear()
            if self._strategy == "parallel":
                return _close_parallel(finalizers, exit)
            return _close_sequential(finalizers, exit)

        return _SetInterruptible(_Suspend(start), False)

    def fork(self, strategy: Strategy = "sequential") -> Effect[Scope, Never, Never]:
        """A child scope, closed with this one (at its place in the LIFO order) or on
        its own; closing it first removes it from this scope. Forking a closed scope
        gives a closed child."""

        def make() -> Effect[Scope, Never, Never]:
            child = Scope(strategy)
            if self._closed is not None:
                child._closed = self._closed
                return _Succeed(child)
            key = self._add(lambda ex: child.close(ex))
            assert key is not None
            child._finalizers[next(_keys)] = lambda _: _Suspend(lambda: _remove_key(self, key))
            return _Succeed(child)

        return _Suspend(make)

    def extend(self, effect: Effect[A, E, Scope | R]) -> Effect[A, E, R]:
        """Run `effect` with this scope as its `Scope`, without closing it: what `effect`
        acquires lives as long as this scope."""
        return _Provide(effect, lambda ctx: ctx.add(Scope, self))

    def use(self, effect: Effect[A, E, Scope | R]) -> Effect[A, E, R]:
        """Run `effect` with this scope, then close the scope with `effect`'s exit."""
        return self.extend(effect).on_exit(self.close)

    def __repr__(self) -> str:
        state = "closed" if self._closed is not None else f"{len(self._finalizers)} finalizers"
        return f"<Scope {state}>"


_VOID: Effect[None, Never, Never] = _Succeed(None)


def _remove_key(scope: Scope, key: int) -> Effect[None, Never, Never]:
    scope._remove(key)
    return _VOID


def _run_finalizer(
    finalizer: Finalizer, exit: Exit[Any, Any]
) -> Effect[Exit[Any, Any], Never, Never]:
    # Each finalizer runs through `exit()` so that its failure, or a defect raised
    # while building its effect, cannot stop the ones after it.
    def build() -> Effect[Any, Any, Never]:
        eff = finalizer(exit)
        _check_effect(eff, "finalizer result")
        return eff

    return _Suspend(build).exit()


def _close_sequential(
    finalizers: list[Finalizer], exit: Exit[Any, Any]
) -> Effect[None, Never, Never]:
    causes: list[Cause[Any]] = []
    iterator = iter(finalizers)

    def step(_: object = None) -> Effect[None, Never, Never]:
        for finalizer in iterator:
            return _FlatMap(_run_finalizer(finalizer, exit), collect)
        if not causes:
            return _VOID
        combined: Cause[Any] = Empty()
        for cause in causes:
            combined = combined.then(cause)
        return _FailCause(combined)

    def collect(ex: Exit[Any, Any]) -> Effect[None, Never, Never]:
        if isinstance(ex, Failure):
            causes.append(ex.cause)
        return step()

    return step()


def _close_parallel(
    finalizers: list[Finalizer], exit: Exit[Any, Any]
) -> Effect[None, Never, Never]:
    from effect._concurrency import for_each

    def combine(exits: list[Exit[Any, Any]]) -> Effect[None, Never, Never]:
        combined: Cause[Any] = Empty()
        for ex in exits:
            if isinstance(ex, Failure):
                combined = (
                    Parallel(combined, ex.cause) if not combined.is_empty_node() else ex.cause
                )
        return _VOID if combined.is_empty_node() else _FailCause(combined)

    return for_each(
        finalizers, lambda f: _run_finalizer(f, exit), concurrency="unbounded"
    ).flat_map(combine)


def add_finalizer(finalizer: Finalizer) -> Effect[None, Never, Scope]:
    """Register `finalizer(exit)` in the current `Scope`; it runs uninterruptibly when
    the scope closes, with the scope's exit.

    Examples:
        >>> import effect as fx
        >>> log = []
        >>> record = lambda ex: fx.sync(lambda: log.append(ex.is_success()))
        >>> fx.run_sync(fx.scoped(fx.add_finalizer(record))); log
        [True]
    """
    return _FlatMap(_Service(Scope), lambda scope: scope.add_finalizer(finalizer))


def acquire_release(
    acquire: Effect[A, E, R],
    release: Callable[[A, Exit[Any, Any]], Effect[Any, Never, Never]],
) -> Effect[A, E, R | Scope]:
    """Acquire a resource and register its release in the current `Scope`.

    `acquire` runs uninterruptibly, together with registering `release`, so no
    interrupt can leak the resource. `release(resource, exit)` runs exactly once when
    the scope closes, with the scope's exit. If `acquire` fails, nothing is
    registered.

    Examples:
        >>> import effect as fx
        >>> log = []
        >>> res = fx.acquire_release(
        ...     fx.sync(lambda: log.append("open") or "conn"),
        ...     lambda conn, ex: fx.sync(lambda: log.append("close")),
        ... )
        >>> fx.run_sync(fx.scoped(res.map(lambda c: log.append("use " + c))))
        >>> log
        ['open', 'use conn', 'close']
    """
    _check_effect(acquire, "acquire_release")
    if not callable(release):
        raise TypeError(f"acquire_release expected a release function, got {release!r}")

    def register(scope: Scope, resource: A) -> Effect[A, Never, Never]:
        return scope.add_finalizer(lambda ex: release(resource, ex)).as_(resource)

    return _SetInterruptible(
        _FlatMap(_Service(Scope), lambda scope: _FlatMap(acquire, lambda a: register(scope, a))),
        False,
    )


def acquire_use_release(
    acquire: Effect[A, E, R],
    use: Callable[[A], Effect[B, E2, R2]],
    release: Callable[[A, Exit[B, E2]], Effect[Any, E3, R3]],
) -> Effect[B, E | E2 | E3, R | R2 | R3]:
    """Acquire, use, release: `release(resource, exit_of_use)` always runs once
    `acquire` succeeded. `acquire` and `release` are uninterruptible; `use` has the
    surrounding interruptibility.

    | use    | release | result                              |
    |--------|---------|-------------------------------------|
    | ok     | ok      | use's value                         |
    | failed | ok      | use's cause                         |
    | failed | failed  | Sequential(use cause, release cause) |
    | ok     | failed  | release's cause only                |
    """
    _check_effect(acquire, "acquire_use_release")

    def body(
        restore: Callable[[Effect[Any, Any, Any]], Effect[Any, Any, Any]],
    ) -> Effect[Any, Any, Any]:
        return _FlatMap(
            acquire, lambda a: restore(_Suspend(lambda: use(a))).on_exit(lambda ex: release(a, ex))
        )

    return _Mask(body)


@overload
def scoped(effect: Effect[A, E, Scope]) -> Effect[A, E, Never]: ...
@overload
def scoped(effect: Effect[A, E, Scope | R]) -> Effect[A, E, R]: ...
def scoped(effect: Effect[A, E, Any]) -> Effect[A, E, Any]:
    """Run `effect` with a fresh `Scope` and close it when `effect` ends, with
    `effect`'s exit (uninterruptibly). Removes `Scope` from the requirements.

    Examples:
        >>> import effect as fx
        >>> fx.run_sync(fx.scoped(fx.add_finalizer(lambda ex: fx.void).as_(1)))
        1
    """
    _check_effect(effect, "scoped")

    def run() -> Effect[A, E, R]:
        scope = Scope()
        return scope.use(effect)

    return _Suspend(run)


def fork_in(effect: Effect[A, E, R], scope: Scope) -> Effect[Fiber[A, E], Never, R]:
    """Fork `effect` on a fiber supervised by `scope` rather than by the current fiber:
    closing the scope interrupts the fiber and waits for it; if the fiber ends first
    its finalizer is removed; a closed scope interrupts it at once."""

    def start(
        parent: Fiber[Any, Any], restore: Callable[[Effect[Any, Any, Any]], Effect[Any, Any, Any]]
    ) -> Effect[Fiber[A, E], Never, R]:
        # The fork and the registration happen uninterruptibly (no fiber can escape
        # its scope), but the child runs with the caller's interruptibility, so the
        # scope's close can interrupt it.
        child: Fiber[A, E] = parent._fork(restore(effect), True)
        key = scope._add(lambda _: child.interrupt())
        if key is None:
            child._signal_interrupt(parent.id)
        else:
            child._observe(lambda _: scope._remove(key))
        return _Succeed(child)

    return _Mask(lambda restore: _WithFiber(lambda parent: start(parent, restore)))


def fork_scoped(effect: Effect[A, E, R]) -> Effect[Fiber[A, E], Never, R | Scope]:
    """Fork `effect` on a fiber that lives as long as the current `Scope`."""
    return _FlatMap(_Service(Scope), lambda scope: fork_in(effect, scope))
