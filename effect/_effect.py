"""The `Effect` type: a lazy, immutable description of a program.

An `Effect[A, E, R]` succeeds with an `A`, may fail with a typed error `E`, and needs
the services `R` to run. Building one runs nothing; `fx.run` (or a `ManagedRuntime`)
interprets it on a fiber. This module holds the node types the interpreter knows
(`_effect` nodes carry an integer `_op` the loop dispatches on) and the combinators,
which only ever build nodes.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, Generic, Never, TypeVar, cast, overload

from returns import result as _result
from typing_extensions import TypeAliasType

from effect._context import Context, Tag
from effect._exit import Cause, Exit, Fail, Failure, Success

if TYPE_CHECKING:
    from effect._fiber import Fiber
    from effect._layer import Layer
    from effect._scope import Scope
    from effect.schedule import Schedule

__all__ = [
    "Effect",
    "Gen",
    "Provider",
    "TimeoutException",
    "UnknownException",
]

A = TypeVar("A", covariant=True)
E = TypeVar("E", covariant=True)
R = TypeVar("R", covariant=True)
A1 = TypeVar("A1")
A2 = TypeVar("A2")
B = TypeVar("B")
C = TypeVar("C")
D = TypeVar("D")
E1 = TypeVar("E1")
E2 = TypeVar("E2")
R1 = TypeVar("R1")
R2 = TypeVar("R2")
I = TypeVar("I")
S = TypeVar("S")
T = TypeVar("T")

Gen = TypeAliasType("Gen", Generator["Effect[Any, E1, R1]", Any, A1], type_params=(A1, E1, R1))
"""The type of an `fx.gen` body: `def body() -> fx.Gen[int, MyError, Tracker]: ...`."""


class UnknownException(Exception):
    """What `try_` / `try_promise` fail with when no `catch` is given.

    `.error` is the exception that was raised."""

    def __init__(self, error: BaseException, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.__cause__ = error


class TimeoutException(Exception):
    """What `timeout` fails with when the time runs out first."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"Operation timed out after '{format_duration(seconds)}'")
        self.seconds = seconds


def format_duration(seconds: float) -> str:
    """`1.5` -> `'1s 500ms'`, `0.02` -> `'20ms'`, as Effect-TS formats durations."""
    ms_total = round(seconds * 1000)
    parts: list[str] = []
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        n, ms_total = divmod(ms_total, size)
        if n:
            parts.append(f"{n}{unit}")
    return " ".join(parts) or "0ms"


# Operation codes. The interpreter dispatches on these small ints, which is much
# cheaper than isinstance chains; frames on the continuation stack use the same codes.
OP_SUCCEED = 0
OP_FLAT_MAP = 1
OP_MAP = 2
OP_SYNC = 3
OP_FAIL = 4
OP_FOLD = 5
OP_SUSPEND = 6
OP_GEN = 7
OP_SERVICE = 8
OP_SET_INTERRUPTIBLE = 9
OP_MASK = 10
OP_WITH_FIBER = 11
OP_PROVIDE = 12
OP_FORK = 13
OP_ASYNC = 14
OP_PROMISE = 15
OP_SLEEP = 16
OP_YIELD = 17
OP_LOCALLY = 18
OP_GET_LOCAL = 19
# frame-only codes
OP_GEN_FRAME = 20
OP_RESTORE_INTERRUPTIBLE = 21
OP_RESTORE_CONTEXT = 22
OP_DELIVER = 23
OP_RESTORE_REFS = 24


class Effect(Generic[A, E, R]):
    """A program that succeeds with `A`, fails with `E`, and needs services `R`.

    Effects are values: building one runs nothing, and the same effect can be run
    many times. Combine them with methods (`map`, `flat_map`, `catch_all`, ...) or with
    `fx.gen`, and run them with `fx.run`.

    Examples:
        >>> import effect as fx
        >>> fx.run_sync(fx.succeed(20).map(lambda n: n + 1).flat_map(lambda n: fx.succeed(n * 2)))
        42
    """

    __slots__ = ()
    _op: int

    # -- do-notation -------------------------------------------------------------

    def __iter__(self) -> Generator[Effect[A, E, R], Any, A]:
        """`x = yield from eff` inside `fx.gen`: yields the effect, returns its value."""
        return (yield self)  # type: ignore[no-any-return]

    # -- sequencing --------------------------------------------------------------

    def map(self, f: Callable[[A], B]) -> Effect[B, E, R]:
        """Transform the success value with `f`. An exception raised by `f` is a defect."""
        node = _new(_Map)
        node.inner = self
        node.f = f
        return node

    def flat_map(self, f: Callable[[A], Effect[B, E2, R2]]) -> Effect[B, E | E2, R | R2]:
        """Run `f(value)` after this effect succeeds. Failures skip `f`; `f` must return
        an effect (anything else is a defect naming the value)."""
        node = _new(_FlatMap)
        node.inner = self
        node.f = f
        return node

    def and_then(self, that: Effect[B, E2, R2]) -> Effect[B, E | E2, R | R2]:
        """Run `that` after this effect succeeds, keeping `that`'s value."""
        _check_effect(that, "and_then")
        return _FlatMap(self, lambda _: that)

    def tap(self, f: Callable[[A], Effect[Any, E2, R2]]) -> Effect[A, E | E2, R | R2]:
        """Run `f(value)` for its effects, then succeed with the original value."""
        return _FlatMap(self, lambda a: _Map(f(a), lambda _: a))

    def as_(self, value: B) -> Effect[B, E, R]:
        """Replace the success value with `value`."""
        return _Map(self, lambda _: value)

    @property
    def as_void(self) -> Effect[None, E, R]:
        """Discard the success value."""
        return _Map(self, _to_none)

    def zip(self, that: Effect[B, E2, R2]) -> Effect[tuple[A, B], E | E2, R | R2]:
        """Run this, then `that`; succeed with both values as a pair."""
        _check_effect(that, "zip")
        return _FlatMap(self, lambda a: _Map(that, lambda b: (a, b)))

    def zip_left(self, that: Effect[Any, E2, R2]) -> Effect[A, E | E2, R | R2]:
        """Run this, then `that`; keep this effect's value."""
        _check_effect(that, "zip_left")
        return _FlatMap(self, lambda a: _Map(that, lambda _: a))

    @overload
    def pipe(self, f1: Callable[[Effect[A, E, R]], B], /) -> B: ...
    @overload
    def pipe(self, f1: Callable[[Effect[A, E, R]], B], f2: Callable[[B], C], /) -> C: ...
    @overload
    def pipe(
        self, f1: Callable[[Effect[A, E, R]], B], f2: Callable[[B], C], f3: Callable[[C], D], /
    ) -> D: ...
    def pipe(self, *fns: Callable[[Any], Any]) -> Any:
        """`eff.pipe(f, g)` is `g(f(eff))`: apply functions left to right (typed for up
        to three; chain `.pipe(...)` calls for more).

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(fx.succeed(2).pipe(lambda e: e.map(lambda n: n + 1)))
            3
        """
        value: Any = self
        for fn in fns:
            value = fn(value)
        return value

    # -- errors ------------------------------------------------------------------

    def map_error(self, f: Callable[[E], E2]) -> Effect[A, E2, R]:
        """Transform the typed failure with `f`. As in Effect-TS, the whole cause becomes
        `Fail(f(first failure))`: defects next to the failure are dropped."""

        def on_failure(cause: Cause[E]) -> Effect[A, E2, R]:
            failures = cause.failures()
            if not failures:
                return _FailCause(cast(Cause[E2], cause))
            return _FailCause(Fail(f(failures[0])))

        return _Fold(self, on_failure, None)

    def catch_all(self, f: Callable[[E], Effect[B, E2, R2]]) -> Effect[A | B, E2, R | R2]:
        """Recover from a typed failure with `f(error)`. Defects and external
        interruption are not caught; a cause mixing failures with defects fails with the
        failures turned into defects."""
        return _Fold(self, _recover_with(f), None)

    def catch_some(
        self, f: Callable[[E], Effect[B, E2, R2] | None]
    ) -> Effect[A | B, E | E2, R | R2]:
        """Recover from the failures for which `f` returns an effect; `None` means
        "not mine" and the failure passes through unchanged."""

        def handler(cause: Cause[E]) -> Effect[A | B, E | E2, R | R2]:
            failures = cause.failures()
            if failures and not cause.is_die():
                recovered = f(failures[0])
                if recovered is not None:
                    return recovered
            return _FailCause(cause)

        return _Fold(self, handler, None)

    def catch_cause(self, f: Callable[[Cause[E]], Effect[B, E2, R2]]) -> Effect[A | B, E2, R | R2]:
        """Recover from any failure, defects included, with `f(cause)`. External
        interruption still cannot be caught while the fiber is interruptible."""
        return _Fold(self, f, None)

    def or_else(self, that: Callable[[], Effect[B, E2, R2]]) -> Effect[A | B, E2, R | R2]:
        """On a typed failure, run `that()` instead."""
        return _Fold(self, _recover_with(lambda _: that()), None)

    def or_die(self) -> Effect[A, Never, R]:
        """Turn typed failures into defects: the error must not happen."""
        return _Fold(self, lambda c: _FailCause(c.failures_as_defects()), None)

    def either(self) -> Effect[_result.Result[A, E], Never, R]:
        """Succeed with `returns.result.Success(value)` or `Failure(error)`. Defects and
        interruption still fail the effect."""

        def on_failure(cause: Cause[E]) -> Effect[_result.Result[A, E], Never, R]:
            failures = cause.failures()
            if failures and not cause.is_die():
                return _Succeed(_result.Failure(failures[0]))
            return _FailCause(cause.failures_as_defects())

        return _Fold(self, on_failure, lambda a: _Succeed(_result.Success(a)))

    def exit(self) -> Effect[Exit[A, E], Never, R]:
        """Succeed with this effect's `Exit`, whatever it is. External interruption of
        an interruptible fiber still propagates."""
        return _Fold(self, _exit_of_failure, _exit_of_success)

    def match(
        self, on_failure: Callable[[E], B], on_success: Callable[[A], C]
    ) -> Effect[B | C, Never, R]:
        """Fold a typed failure and a success into one value."""

        def fail_case(cause: Cause[E]) -> Effect[B | C, Never, R]:
            failures = cause.failures()
            if failures and not cause.is_die():
                return _Succeed(on_failure(failures[0]))
            return _FailCause(cause.failures_as_defects())

        return _Fold(self, fail_case, lambda a: _Succeed(on_success(a)))

    # -- finalization ------------------------------------------------------------

    def on_exit(
        self, cleanup: Callable[[Exit[A, E]], Effect[Any, E2, R2]]
    ) -> Effect[A, E | E2, R | R2]:
        """Run `cleanup(exit)` after this effect, on success, failure, defect and
        interruption, exactly once and uninterruptibly.

        If the cleanup fails after a success, its cause replaces the success; after a
        failure, the result is `Sequential(failure, cleanup failure)`.

        Examples:
            >>> import effect as fx
            >>> seen = []
            >>> eff = fx.fail("x").on_exit(lambda ex: fx.sync(lambda: seen.append(ex)))
            >>> fx.run_sync_exit(eff).is_failure(), seen[0].is_failure()
            (True, True)
        """
        return _Mask(
            lambda restore: _Fold(
                restore(self),
                lambda cause: _FlatMap(
                    cleanup(Failure(cause)).exit(), lambda cx: _after_cleanup_failed(cause, cx)
                ),
                lambda value: _FlatMap(
                    cleanup(Success(value)).exit(), lambda cx: _after_cleanup_succeeded(value, cx)
                ),
            )
        )

    def ensuring(self, finalizer: Effect[Any, E2, R2]) -> Effect[A, E | E2, R | R2]:
        """Run `finalizer` after this effect however it ends (see `on_exit`)."""
        _check_effect(finalizer, "ensuring")
        return self.on_exit(lambda _: finalizer)

    def on_error(
        self, cleanup: Callable[[Cause[E]], Effect[Any, E2, R2]]
    ) -> Effect[A, E | E2, R | R2]:
        """Run `cleanup(cause)` if this effect fails for any reason (interruption
        included); not on success."""

        def on_exit(ex: Exit[A, E]) -> Effect[Any, E2, R2]:
            if isinstance(ex, Failure):
                return cleanup(ex.cause)
            return _VOID

        return self.on_exit(on_exit)

    def on_interrupt(
        self, cleanup: Callable[[frozenset[int]], Effect[Any, E2, R2]]
    ) -> Effect[A, E | E2, R | R2]:
        """Run `cleanup(interruptors)` only if this effect ends interrupted and nothing
        else (a cause mixing an interruption with a failure does not count)."""

        def on_exit(ex: Exit[A, E]) -> Effect[Any, E2, R2]:
            if (
                isinstance(ex, Failure)
                and ex.cause.is_interrupted()
                and ex.cause.is_interrupted_only()
            ):
                return cleanup(ex.cause.interruptors())
            return _VOID

        return self.on_exit(on_exit)

    # -- interruption ------------------------------------------------------------

    def uninterruptible(self) -> Effect[A, E, R]:
        """Run this effect with interruption deferred until it ends."""
        return _SetInterruptible(self, False)

    def interruptible(self) -> Effect[A, E, R]:
        """Run this effect interruptibly, even inside an uninterruptible region."""
        return _SetInterruptible(self, True)

    # -- services ----------------------------------------------------------------

    def provide_service(
        self: Effect[A1, E1, I], tag: type[Tag[I, S]], service: S
    ) -> Effect[A1, E1, Never]:
        """Give this effect the service it needs under `tag`.

        Typed for an effect that needs only `tag`; to provide one service of several,
        use `eff.pipe(fx.provide_service(tag, impl))` or a `Layer`.

        Examples:
            >>> import effect as fx
            >>> class Name(fx.Tag["Name", str]): ...
            >>> fx.run_sync(fx.service(Name).map(str.upper).provide_service(Name, "ada"))
            'ADA'
        """
        return _Provide(self, lambda ctx: ctx.add(tag, service))

    def provide_context(self, context: Context[R]) -> Effect[A, E, Never]:
        """Give this effect every service it needs, from `context`."""
        return _Provide(self, lambda ctx: ctx.merge(context))

    def provide(self, layer: Layer[R, E2, R2]) -> Effect[A, E | E2, R2]:
        """Build `layer` for this run, give its services to this effect, and release the
        layer's resources when the effect ends (with the effect's exit).

        Each run builds the layer again: to share one build across runs, use a
        `ManagedRuntime`."""
        from effect._layer import provide_layer

        return provide_layer(self, layer)

    # -- fibers ------------------------------------------------------------------

    def fork(self) -> Effect[Fiber[A, E], Never, R]:
        """Start this effect on a new child fiber and return at once. The child is
        interrupted when the parent fiber ends (supervision)."""
        return _Fork(self, False)

    def fork_daemon(self) -> Effect[Fiber[A, E], Never, R]:
        """Start this effect on a new fiber that is not supervised by its parent. It
        lives until it ends, or until the runtime that runs it shuts down."""
        return _Fork(self, True)

    def fork_scoped(self) -> Effect[Fiber[A, E], Never, R | Scope]:
        """Start this effect on a fiber that lives as long as the current `Scope`: the
        scope's close interrupts it and waits for it."""
        from effect._scope import fork_scoped

        return fork_scoped(self)

    def fork_in(self, scope: Scope) -> Effect[Fiber[A, E], Never, R]:
        """Start this effect on a fiber that lives as long as `scope`."""
        from effect._scope import fork_in

        return fork_in(self, scope)

    # -- time and concurrency --------------------------------------------------------

    def timeout(self, seconds: float) -> Effect[A, E | TimeoutException, R]:
        """Fail with `TimeoutException` if this effect does not end within `seconds`.

        When time runs out the effect is interrupted and awaited (its finalizers run)
        before the timeout failure is returned. If it ends first, its own outcome
        passes through unchanged."""
        from effect._concurrency import timeout

        return timeout(self, seconds)

    def race(self, that: Effect[B, E2, R2]) -> Effect[A | B, E | E2, R | R2]:
        """Run both; the first to succeed wins and the loser is interrupted and awaited.
        If both fail, the cause is `Parallel(this cause, that cause)`."""
        from effect._concurrency import race

        return race(self, that)

    def race_first(self, that: Effect[B, E2, R2]) -> Effect[A | B, E | E2, R | R2]:
        """Run both; the first to end, success or failure, wins."""
        from effect._concurrency import race_first

        return race_first(self, that)

    def delay(self, seconds: float) -> Effect[A, E, R]:
        """Sleep `seconds` (through the `Clock`), then run this effect."""
        from effect.clock import sleep

        return _FlatMap(sleep(seconds), lambda _: self)

    # -- schedules -----------------------------------------------------------------

    def retry(
        self,
        schedule: Schedule[Any, Any] | None = None,
        *,
        times: int | None = None,
        while_: Callable[[E], bool] | None = None,
        until: Callable[[E], bool] | None = None,
    ) -> Effect[A, E, R]:
        """Run again on typed failure while `schedule` (and `times` / `while_` /
        `until`) allow; when they stop, fail with the last error. Defects and
        interruption are never retried."""
        from effect.schedule import retry

        retried: Effect[A, E, R] = retry(self, schedule, times=times, while_=while_, until=until)
        return retried

    def repeat(self, schedule: Schedule[A, Any]) -> Effect[A, E, R]:
        """Run again after each success while `schedule` allows; succeed with the last
        value. `Schedule.recurs(3)` gives four runs."""
        from effect.schedule import repeat

        repeated: Effect[A, E, R] = repeat(self, schedule)
        return repeated

    def __repr__(self) -> str:
        return f"<{type(self).__name__.lstrip('_')} effect>"


def _to_none(_: object) -> None:
    return None


def _recover_with(
    f: Callable[[Any], Effect[Any, Any, Any]],
) -> Callable[[Cause[Any]], Effect[Any, Any, Any]]:
    # Rule 18: a cause with a defect is never handed to a typed handler; its failures
    # become defects so nothing is silently dropped.
    def handler(cause: Cause[Any]) -> Effect[Any, Any, Any]:
        failures = cause.failures()
        if failures and not cause.is_die():
            return f(failures[0])
        if failures:
            return _FailCause(cause.failures_as_defects())
        return _FailCause(cause)

    return handler


def _exit_of_failure(cause: Cause[Any]) -> Effect[Exit[Any, Any], Never, Never]:
    return _Succeed(Failure(cause))


def _exit_of_success(value: Any) -> Effect[Exit[Any, Any], Never, Never]:
    return _Succeed(Success(value))


def _after_cleanup_failed(cause: Cause[Any], cleanup_exit: Exit[Any, Any]) -> Effect[Any, Any, Any]:
    if isinstance(cleanup_exit, Failure):
        return _FailCause(cause.then(cleanup_exit.cause))
    return _FailCause(cause)


def _after_cleanup_succeeded(value: Any, cleanup_exit: Exit[Any, Any]) -> Effect[Any, Any, Any]:
    if isinstance(cleanup_exit, Failure):
        return _FailCause(cleanup_exit.cause)
    return _Succeed(value)


# -- node types ------------------------------------------------------------------
# Each node is a tiny slotted object. Sequencing nodes (_Map, _FlatMap, _Fold) are
# pushed on the fiber's continuation stack as their own frames, so no frame object is
# allocated per step.


class _Succeed(Effect[A, Never, Never]):
    __slots__ = ("value",)
    _op = OP_SUCCEED

    def __init__(self, value: A) -> None:
        self.value = value


# The three hottest nodes are also made without calling `__init__`: on CPython 3.11 an
# `__init__` frame costs more than the allocation itself, and a chain of maps is
# nothing but these allocations.
_new = object.__new__


def _succeed_node(value: Any) -> Effect[Any, Never, Never]:
    node = _new(_Succeed)
    node.value = value
    return node


class _FailCause(Effect[Never, E, Never]):
    __slots__ = ("cause",)
    _op = OP_FAIL

    def __init__(self, cause: Cause[E]) -> None:
        self.cause = cause


class _Sync(Effect[A, Never, Never]):
    __slots__ = ("thunk",)
    _op = OP_SYNC

    def __init__(self, thunk: Callable[[], A]) -> None:
        self.thunk = thunk


class _Suspend(Effect[A, E, R]):
    __slots__ = ("thunk",)
    _op = OP_SUSPEND

    def __init__(self, thunk: Callable[[], Effect[A, E, R]]) -> None:
        self.thunk = thunk


class _Map(Effect[A, E, R]):
    __slots__ = ("f", "inner")
    _op = OP_MAP

    def __init__(self, inner: Effect[Any, E, R], f: Callable[[Any], A]) -> None:
        self.inner = inner
        self.f = f


class _FlatMap(Effect[A, E, R]):
    __slots__ = ("f", "inner")
    _op = OP_FLAT_MAP

    def __init__(
        self, inner: Effect[Any, Any, Any], f: Callable[[Any], Effect[A, Any, Any]]
    ) -> None:
        self.inner = inner
        self.f = f


class _Fold(Effect[A, E, R]):
    __slots__ = ("inner", "on_failure", "on_success")
    _op = OP_FOLD

    def __init__(
        self,
        inner: Effect[Any, Any, Any],
        on_failure: Callable[[Cause[Any]], Effect[Any, Any, Any]] | None,
        on_success: Callable[[Any], Effect[Any, Any, Any]] | None,
    ) -> None:
        self.inner = inner
        self.on_failure = on_failure
        self.on_success = on_success


class _GenEffect(Effect[A, E, R]):
    __slots__ = ("body",)
    _op = OP_GEN

    def __init__(self, body: Callable[[], Generator[Effect[Any, Any, Any], Any, A]]) -> None:
        self.body = body


class _Service(Effect[S, Never, I]):
    __slots__ = ("tag",)
    _op = OP_SERVICE

    def __init__(self, tag: type[Tag[I, S]]) -> None:
        self.tag = tag


class _SetInterruptible(Effect[A, E, R]):
    __slots__ = ("flag", "inner")
    _op = OP_SET_INTERRUPTIBLE

    def __init__(self, inner: Effect[A, E, R], flag: bool) -> None:
        self.inner = inner
        self.flag = flag


class _Mask(Effect[A, E, R]):
    __slots__ = ("body",)
    _op = OP_MASK

    def __init__(
        self,
        body: Callable[[Callable[[Effect[Any, Any, Any]], Effect[Any, Any, Any]]], Effect[A, E, R]],
    ) -> None:
        self.body = body


class _WithFiber(Effect[A, E, R]):
    __slots__ = ("body",)
    _op = OP_WITH_FIBER

    def __init__(self, body: Callable[[Fiber[Any, Any]], Effect[A, E, R]]) -> None:
        self.body = body


class _Provide(Effect[A, E, R]):
    __slots__ = ("inner", "update")
    _op = OP_PROVIDE

    def __init__(
        self, inner: Effect[A, E, Any], update: Callable[[Context[Any]], Context[Any]]
    ) -> None:
        self.inner = inner
        self.update = update


class _Fork(Effect[Any, Never, R]):
    __slots__ = ("daemon", "inner")
    _op = OP_FORK

    def __init__(self, inner: Effect[Any, Any, R], daemon: bool) -> None:
        self.inner = inner
        self.daemon = daemon


Resume = Callable[[Effect[Any, Any, Any]], None]
Canceler = Callable[[], None]


class _Async(Effect[A, E, R]):
    """Suspend the fiber until `register`'s `resume` is called with the effect to
    continue with. `register` may return a canceler, called if the fiber is
    interrupted while it waits; the fiber then continues interrupted."""

    __slots__ = ("register",)
    _op = OP_ASYNC

    def __init__(self, register: Callable[[Fiber[Any, Any], Resume], Canceler | None]) -> None:
        self.register = register


class _Promise(Effect[A, E, Never]):
    __slots__ = ("catch", "label", "make")
    _op = OP_PROMISE

    def __init__(
        self,
        make: Callable[[], Awaitable[A]],
        catch: Callable[[Exception], Any] | None,
        label: str,
    ) -> None:
        self.make = make
        self.catch = catch
        self.label = label


class _Sleep(Effect[None, Never, Never]):
    __slots__ = ("seconds",)
    _op = OP_SLEEP

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


class _Locally(Effect[A, E, R]):
    """Run `inner` with the fiber-local value under `key` set to `update(old)`
    (`old` is None when unset), restoring the previous values afterwards."""

    __slots__ = ("inner", "key", "update")
    _op = OP_LOCALLY

    def __init__(self, inner: Effect[A, E, R], key: object, update: Callable[[Any], Any]) -> None:
        self.inner = inner
        self.key = key
        self.update = update


def locally(
    effect: Effect[A1, E1, R1], key: object, update: Callable[[Any], Any]
) -> Effect[A1, E1, R1]:
    """Run `effect` with the fiber-local value under `key` replaced by `update(old)`.
    Forked fibers inherit the values current at fork. Used by logging (annotations,
    spans); `key` should be a private sentinel object."""
    _check_effect(effect, "locally")
    return _Locally(effect, key, update)


class _GetLocal(Effect[Any, Never, Never]):
    __slots__ = ("key",)
    _op = OP_GET_LOCAL

    def __init__(self, key: object) -> None:
        self.key = key


def get_local(key: object) -> Effect[Any, Never, Never]:
    """The fiber-local value under `key`, or None."""
    return _GetLocal(key)


class _YieldNow(Effect[None, Never, Never]):
    __slots__ = ()
    _op = OP_YIELD


_VOID: Effect[None, Never, Never] = _Succeed(None)
_UNIT_MAP_NONE = _to_none


def _check_effect(value: object, where: str) -> None:
    if not isinstance(value, Effect):
        raise TypeError(f"{where} expected an Effect, got {value!r} of type {type(value).__name__}")


def _describe(fn: object) -> str:
    name = getattr(fn, "__qualname__", None) or repr(fn)
    try:
        file = inspect.getsourcefile(fn)  # type: ignore[arg-type]
        _, line = inspect.getsourcelines(fn)  # type: ignore[arg-type]
    except (TypeError, OSError):
        return str(name)
    return f"{name} ({file}:{line})"


class Provider(Generic[I]):
    """Provides one service to an effect, removing it from the effect's needs.

    Made by `fx.provide_service(tag, impl)`; apply it with `eff.pipe(provider)`."""

    __slots__ = ("_service", "_tag")

    def __init__(self, tag: type[Tag[I, Any]], service: object) -> None:
        self._tag = tag
        self._service = service

    # The first overload covers an effect needing only this tag: matching `I` against
    # `I | R1` would leave R1 unsolved.
    @overload
    def __call__(self, effect: Effect[A1, E1, I]) -> Effect[A1, E1, Never]: ...
    @overload
    def __call__(self, effect: Effect[A1, E1, I | R1]) -> Effect[A1, E1, R1]: ...
    def __call__(self, effect: Effect[A1, E1, Any]) -> Effect[A1, E1, Any]:
        tag, service = self._tag, self._service
        return _Provide(effect, lambda ctx: ctx.add(tag, service))


def service(tag: type[Tag[I, S]]) -> Effect[S, Never, I]:
    """The service stored under `tag`. A missing service is a defect whose message
    names the tag (and a type error at check time)."""
    return _Service(tag)


# Keep the names the interpreter imports in one place.
NODE_TYPES = (
    _Succeed,
    _FailCause,
    _Sync,
    _Suspend,
    _Map,
    _FlatMap,
    _Fold,
    _GenEffect,
    _Service,
    _SetInterruptible,
    _Mask,
    _WithFiber,
    _Provide,
    _Fork,
    _Async,
    _Promise,
    _Sleep,
    _YieldNow,
)
