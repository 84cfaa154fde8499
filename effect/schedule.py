"""`Schedule`: when to run something again, as a pure value; `retry` and `repeat`.

A `Schedule[In, Out]` is a step function. Given the current time, an input (the
error for `retry`, the value for `repeat`) and its state, it returns its next state,
an output, and a decision: the delay, in seconds, before the next recurrence, or
None when it is done. Stepping never sleeps or reads a clock: `retry` and `repeat`
read the time from the `Clock` service and sleep through it, so a `TestClock` makes
them deterministic.

Delays follow Effect-TS: `exponential(b, f)` waits `b * f**n` before the (n+1)-th
recurrence, `fibonacci(one)` waits one, one, 2*one, 3*one, 5*one..., and
`linear(base)` waits `base * (n + 1)`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, Never, TypeVar

from effect._effect import Effect, _check_effect, _FailCause, _FlatMap, _Succeed, _Suspend
from effect._exit import Fail

__all__ = ["Decision", "Schedule", "repeat", "retry", "retry_or_else"]

In = TypeVar("In", contravariant=True)
Out = TypeVar("Out", covariant=True)
I = TypeVar("I")
O = TypeVar("O")
O2 = TypeVar("O2")
A = TypeVar("A")
B = TypeVar("B")
E = TypeVar("E")
E2 = TypeVar("E2")
R = TypeVar("R")
R2 = TypeVar("R2")

Decision = float | None
"""A schedule's decision: the delay in seconds before the next recurrence, or None
for "done"."""

Step = Callable[[float, Any, Any], tuple[Any, Any, Decision]]


class Schedule(Generic[In, Out]):
    """A recurrence policy: a step function from `(now, input, state)` to
    `(state, output, decision)`, and a factory for the initial state.

    Schedules are immutable values; each `retry` / `repeat` run starts from
    `initial()`. Build them with the static constructors and combine them with the
    methods.

    Examples:
        >>> Schedule.exponential(0.1).up_to(1.0).run([None] * 10)
        [0.1, 0.2, 0.4, 0.8, 1.6]
    """

    __slots__ = ("_initial", "_step")

    forever: ClassVar[Schedule[object, int]]
    """Recur forever with no delay; outputs the recurrence count 0, 1, 2, ..."""

    once: ClassVar[Schedule[object, None]]
    """Recur once with no delay."""

    def __init__(
        self,
        initial: Callable[[], object],
        step: Callable[[float, In, Any], tuple[Any, Out, Decision]],
    ) -> None:
        """A custom schedule from an initial-state factory and a step function."""
        self._initial = initial
        self._step = step

    def initial(self) -> object:
        """A fresh initial state for one run of the schedule."""
        return self._initial()

    def step(self, now: float, input: In, state: Any) -> tuple[Any, Out, Decision]:
        """One decision: `(next state, output, delay in seconds or None when done)`."""
        return self._step(now, input, state)

    def run(self, inputs: Iterable[In], *, now: float = 0.0) -> list[Out]:
        """Step through `inputs` as if each delay were slept exactly, starting at
        `now`; the outputs, up to and including the step that said "done". Pure: for
        tests and documentation.

        Examples:
            >>> Schedule.recurs(2).run(["a", "b", "c", "d"])
            [0, 1, 2]
        """
        state = self.initial()
        outputs: list[Out] = []
        for item in inputs:
            state, out, delay = self._step(now, item, state)
            outputs.append(out)
            if delay is None:
                break
            now += delay
        return outputs

    # -- constructors ----------------------------------------------------------------

    @staticmethod
    def recurs(n: int) -> Schedule[object, int]:
        """Recur `n` times with no delay; outputs the count 0, 1, ... `n`. With
        `retry` that is n retries (n + 1 attempts); with `repeat`, n + 1 runs.

        Examples:
            >>> Schedule.recurs(2).delays().run(range(5))
            [0.0, 0.0, 0.0]
        """
        _check_int(n, "n")
        return Schedule.forever.while_output(lambda count: count < n)

    @staticmethod
    def spaced(seconds: float) -> Schedule[object, int]:
        """Recur forever, waiting `seconds` after each run; outputs the count.

        Examples:
            >>> Schedule.spaced(2.0).delays().run(range(3))
            [2.0, 2.0, 2.0]
        """
        _check_seconds(seconds, "seconds")
        return Schedule(_zero, lambda now, _, n: (n + 1, n, seconds))

    @staticmethod
    def fixed(seconds: float) -> Schedule[object, int]:
        """Recur on a fixed grid: every `seconds` from the first step, whatever the
        work took; a run that ends past its slot recurs at once, and missed slots are
        not made up. Outputs the count.

        Examples:
            >>> Schedule.fixed(10.0).delays().run(range(3))
            [10.0, 10.0, 10.0]
        """
        _check_seconds(seconds, "seconds")

        def step(now: float, _: object, state: tuple[float, float, int] | None) -> Any:
            if state is None:
                return (now, now + seconds, 1), 0, seconds
            start, last_run, n = state
            if now > last_run + seconds or seconds == 0:
                next_run = now
            else:
                boundary = seconds - math.fmod(now - start, seconds)
                next_run = now + (boundary if boundary > 0 else seconds)
            return (start, next_run, n + 1), n, next_run - now

        return Schedule(_none, step)

    @staticmethod
    def exponential(base: float, factor: float = 2.0) -> Schedule[object, float]:
        """Recur forever, waiting `base * factor**n` before recurrence n + 1 (n from 0);
        outputs that delay.

        Examples:
            >>> Schedule.exponential(1.0).run(range(4))
            [1.0, 2.0, 4.0, 8.0]
        """
        _check_seconds(base, "base")
        _check_seconds(factor, "factor")

        def step(now: float, _: object, n: int) -> tuple[int, float, float]:
            delay = base * factor**n
            return n + 1, delay, delay

        return Schedule(_zero, step)

    @staticmethod
    def fibonacci(one: float) -> Schedule[object, float]:
        """Recur forever, waiting one, one, 2*one, 3*one, 5*one, ... (each delay the
        sum of the two before); outputs that delay.

        Examples:
            >>> Schedule.fibonacci(1.0).run(range(6))
            [1.0, 1.0, 2.0, 3.0, 5.0, 8.0]
        """
        _check_seconds(one, "one")

        def step(now: float, _: object, state: tuple[float, float]) -> Any:
            a, b = state
            return (b, a + b), a, a

        return Schedule(lambda: (one, one), step)

    @staticmethod
    def linear(base: float) -> Schedule[object, float]:
        """Recur forever, waiting `base * (n + 1)` before recurrence n + 1 (n from 0);
        outputs that delay.

        Examples:
            >>> Schedule.linear(1.0).run(range(4))
            [1.0, 2.0, 3.0, 4.0]
        """
        _check_seconds(base, "base")

        def step(now: float, _: object, n: int) -> tuple[int, float, float]:
            delay = base * (n + 1)
            return n + 1, delay, delay

        return Schedule(_zero, step)

    # -- combinators -----------------------------------------------------------------

    def map(self: Schedule[I, O], f: Callable[[O], B]) -> Schedule[I, B]:
        """The same decisions, with outputs transformed by `f`.

        Examples:
            >>> Schedule.recurs(2).map(str).run(range(5))
            ['0', '1', '2']
        """
        step = self._step

        def mapped(now: float, input: I, state: Any) -> tuple[Any, B, Decision]:
            state, out, delay = step(now, input, state)
            return state, f(out), delay

        return Schedule(self._initial, mapped)

    def delays(self: Schedule[I, O]) -> Schedule[I, float]:
        """The same decisions, outputting each delay (0.0 for the final "done").

        Examples:
            >>> Schedule.spaced(1.5).delays().run(range(2))
            [1.5, 1.5]
        """
        step = self._step

        def mapped(now: float, input: I, state: Any) -> tuple[Any, float, Decision]:
            state, _, delay = step(now, input, state)
            return state, 0.0 if delay is None else float(delay), delay

        return Schedule(self._initial, mapped)

    def while_input(self: Schedule[I, O], p: Callable[[I], bool]) -> Schedule[I, O]:
        """Stop as soon as an input fails `p` (for `retry`: an error that must not be
        retried).

        Examples:
            >>> Schedule.forever.while_input(lambda n: n < 2).run(range(5))
            [0, 1, 2]
        """
        return self._check(lambda input, _: p(input))

    def while_output(self: Schedule[I, O], p: Callable[[O], bool]) -> Schedule[I, O]:
        """Stop as soon as an output fails `p`.

        Examples:
            >>> Schedule.exponential(1.0).while_output(lambda d: d < 5).run(range(9))
            [1.0, 2.0, 4.0, 8.0]
        """
        return self._check(lambda _, out: p(out))

    def until_input(self: Schedule[I, O], p: Callable[[I], bool]) -> Schedule[I, O]:
        """Stop as soon as an input satisfies `p`.

        Examples:
            >>> Schedule.forever.until_input(lambda n: n == 1).run(range(5))
            [0, 1]
        """
        return self._check(lambda input, _: not p(input))

    def until_output(self: Schedule[I, O], p: Callable[[O], bool]) -> Schedule[I, O]:
        """Stop as soon as an output satisfies `p`.

        Examples:
            >>> Schedule.forever.until_output(lambda n: n == 2).run(range(5))
            [0, 1, 2]
        """
        return self._check(lambda _, out: not p(out))

    def _check(self: Schedule[I, O], test: Callable[[I, O], bool]) -> Schedule[I, O]:
        step = self._step

        def checked(now: float, input: I, state: Any) -> tuple[Any, O, Decision]:
            state, out, delay = step(now, input, state)
            if delay is None or not test(input, out):
                return state, out, None
            return state, out, delay

        return Schedule(self._initial, checked)

    def up_to(self: Schedule[I, O], seconds: float) -> Schedule[I, O]:
        """Stop once `seconds` have elapsed since the first step (measured at each
        step, before its delay).

        Examples:
            >>> Schedule.spaced(1.0).up_to(2.5).run(range(9))
            [0, 1, 2, 3]
        """
        _check_seconds(seconds, "seconds")
        step = self._step

        def bounded(now: float, input: I, state: tuple[Any, float | None]) -> Any:
            inner, start = state
            if start is None:
                start = now
            inner, out, delay = step(now, input, inner)
            if delay is None or now - start >= seconds:
                return (inner, start), out, None
            return (inner, start), out, delay

        initial = self._initial
        return Schedule(lambda: (initial(), None), bounded)

    def jittered(
        self: Schedule[I, O], min: float = 0.8, max: float = 1.2, *, seed: int | None = None
    ) -> Schedule[I, O]:
        """Multiply each delay by a random factor in `[min, max)`. With `seed`, every
        run of the schedule draws the same factors.

        Examples:
            >>> s = Schedule.spaced(10.0).jittered(seed=7).delays()
            >>> s.run(range(3)) == s.run(range(3)), all(8 <= d < 12 for d in s.run(range(3)))
            (True, True)
        """
        _check_seconds(min, "min")
        _check_seconds(max, "max")
        if min > max:
            raise ValueError(f"min must be <= max, got min={min}, max={max}")
        step = self._step
        initial = self._initial

        def start() -> tuple[object, int]:
            return initial(), seed if seed is not None else random.getrandbits(64)

        def jitter(now: float, input: I, state: tuple[Any, int]) -> Any:
            inner, rng_seed = state
            inner, out, delay = step(now, input, inner)
            if delay is None:
                return (inner, rng_seed), out, None
            # The generator lives in the state as a seed, so stepping stays pure.
            rng = random.Random(rng_seed)
            r = rng.random()
            factor = min * (1 - r) + max * r
            return (inner, rng.getrandbits(64)), out, delay * factor

        return Schedule(start, jitter)

    def union(self: Schedule[I, O], other: Schedule[I, O2]) -> Schedule[I, tuple[O, O2]]:
        """Recur while either recurs, after the shorter of the two delays; outputs
        both outputs.

        Examples:
            >>> Schedule.recurs(1).union(Schedule.spaced(3.0)).delays().run(range(3))
            [0.0, 3.0, 3.0]
        """
        return self._combine(other, either=True)

    def intersect(self: Schedule[I, O], other: Schedule[I, O2]) -> Schedule[I, tuple[O, O2]]:
        """Recur while both recur, after the longer of the two delays; outputs both
        outputs.

        Examples:
            >>> Schedule.recurs(2).intersect(Schedule.spaced(3.0)).delays().run(range(9))
            [3.0, 3.0, 0.0]
        """
        return self._combine(other, either=False)

    def _combine(
        self: Schedule[I, O], other: Schedule[I, O2], *, either: bool
    ) -> Schedule[I, tuple[O, O2]]:
        left, right = self._step, other._step
        left_initial, right_initial = self._initial, other._initial

        def combined(now: float, input: I, state: tuple[Any, Any]) -> Any:
            ls, lo, ld = left(now, input, state[0])
            rs, ro, rd = right(now, input, state[1])
            delay: Decision
            if ld is None or rd is None:
                delay = (ld if rd is None else rd) if either else None
            else:
                delay = min(ld, rd) if either else max(ld, rd)
            return (ls, rs), (lo, ro), delay

        return Schedule(lambda: (left_initial(), right_initial()), combined)

    def and_then(self: Schedule[I, O], other: Schedule[I, O2]) -> Schedule[I, O | O2]:
        """Run this schedule to its end, then `other`.

        Examples:
            >>> Schedule.recurs(1).and_then(Schedule.spaced(5.0)).delays().run(range(4))
            [0.0, 5.0, 5.0, 5.0]
        """
        first, second = self._step, other._step
        first_initial, second_initial = self._initial, other._initial

        def chained(now: float, input: I, state: tuple[Any, Any, bool]) -> Any:
            ls, rs, on_first = state
            if on_first:
                ls, out, delay = first(now, input, ls)
                if delay is not None:
                    return (ls, rs, True), out, delay
            rs, out2, delay2 = second(now, input, rs)
            return (ls, rs, False), out2, delay2

        return Schedule(lambda: (first_initial(), second_initial(), True), chained)

    def __repr__(self) -> str:
        return "<Schedule>"


def _forever_step(now: float, _: object, n: int) -> tuple[int, int, float]:
    return n + 1, n, 0.0


def _zero() -> int:
    return 0


def _none() -> None:
    return None


# -- retry and repeat ----------------------------------------------------------------


def retry(
    effect: Effect[A, E, R],
    schedule: Schedule[E, Any] | None = None,
    *,
    times: int | None = None,
    while_: Callable[[E], bool] | None = None,
    until: Callable[[E], bool] | None = None,
) -> Effect[A, E, R]:
    """Run `effect`; on a typed failure, ask the policy and run it again after the
    delay, until it succeeds or the policy stops; then fail with the last error.

    The policy is `schedule` (default: forever), narrowed by `while_(error)` (retry
    only while true), `until(error)` (stop once true) and `times` (at most that many
    retries). Defects and interruption are never retried (catch-all semantics). The
    effect always runs at least once. Delays are slept through the `Clock`.

    Examples:
        >>> import effect as fx
        >>> attempts = []
        >>> def call() -> fx.Effect[str, str, fx.Never]:
        ...     attempts.append(1)
        ...     return fx.fail("busy") if len(attempts) < 3 else fx.succeed("ok")
        >>> fx.run_sync(retry(fx.suspend(call), times=5)), len(attempts)
        ('ok', 3)
    """
    policy = _retry_policy(schedule, times, while_, until)
    return retry_or_else(effect, policy, _fail_with)


def _fail_with(error: E, _: object) -> Effect[Never, E, Never]:
    return _FailCause(Fail(error))


def _retry_policy(
    schedule: Schedule[E, Any] | None,
    times: int | None,
    while_: Callable[[E], bool] | None,
    until: Callable[[E], bool] | None,
) -> Schedule[E, Any]:
    policy: Schedule[E, Any] = schedule if schedule is not None else Schedule.forever
    if not isinstance(policy, Schedule):
        raise TypeError(f"retry expected a Schedule, got {policy!r}")
    if while_ is not None:
        policy = policy.while_input(while_)
    if until is not None:
        policy = policy.until_input(until)
    if times is not None:
        _check_int(times, "times")
        policy = policy.intersect(Schedule.recurs(times))
    return policy


def retry_or_else(
    effect: Effect[A, E, R],
    schedule: Schedule[E, O],
    or_else: Callable[[E, O], Effect[B, E2, R2]],
) -> Effect[A | B, E2, R | R2]:
    """Like `retry`, but when the schedule stops, run `or_else(last error, last
    output of the schedule)` instead of failing.

    Examples:
        >>> import effect as fx
        >>> fallback = lambda e, n: fx.succeed(f"{e} after {n} retries")
        >>> eff = retry_or_else(fx.fail("down"), Schedule.recurs(2), fallback)
        >>> fx.run_sync(eff)
        'down after 2 retries'
    """
    _check_effect(effect, "retry")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"retry expected a Schedule, got {schedule!r}")
    from effect.clock import now, sleep

    def start() -> Effect[A | B, E2, R | R2]:
        state = schedule.initial()

        def on_error(error: E) -> Effect[A | B, E2, R | R2]:
            return _FlatMap(now(), lambda t: decide(t, error))

        def decide(t: float, error: E) -> Effect[A | B, E2, R | R2]:
            nonlocal state
            state, out, delay = schedule.step(t, error, state)
            if delay is None:
                return or_else(error, out)
            return _FlatMap(sleep(delay), lambda _: attempt)

        attempt: Effect[A | B, E2, R | R2] = effect.catch_all(on_error)
        return attempt

    return _Suspend(start)


def repeat(effect: Effect[A, E, R], schedule: Schedule[A, Any]) -> Effect[A, E, R]:
    """Run `effect`, then again after each success while `schedule` recurs, sleeping
    its delays through the `Clock`; succeed with the last value. The first failure
    stops and fails the whole. `Schedule.recurs(3)` gives four runs.

    Examples:
        >>> import effect as fx
        >>> runs = []
        >>> fx.run_sync(repeat(fx.sync(lambda: runs.append(1) or len(runs)), Schedule.recurs(3)))
        4
    """
    _check_effect(effect, "repeat")
    if not isinstance(schedule, Schedule):
        raise TypeError(f"repeat expected a Schedule, got {schedule!r}")
    from effect.clock import now, sleep

    def start() -> Effect[A, E, R]:
        state = schedule.initial()

        def on_value(value: A) -> Effect[A, E, R]:
            return _FlatMap(now(), lambda t: decide(t, value))

        def decide(t: float, value: A) -> Effect[A, E, R]:
            nonlocal state
            state, _, delay = schedule.step(t, value, state)
            if delay is None:
                return _Succeed(value)
            return _FlatMap(sleep(delay), lambda _: loop)

        loop: Effect[A, E, R] = _FlatMap(effect, on_value)
        return loop

    return _Suspend(start)


def _check_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {name}={value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {name}={value}")


def _check_seconds(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number of seconds, got {name}={value!r}")
    if not value >= 0 or value == math.inf:
        raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")


Schedule.forever = Schedule(_zero, _forever_step)
Schedule.once = Schedule.recurs(1).map(lambda _: None)
