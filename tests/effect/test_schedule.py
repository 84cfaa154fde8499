"""Schedule: constructor delays against Effect-TS formulas, combinator laws, and the
retry / repeat drivers (rules 85-87)."""

from __future__ import annotations

import math
from typing import Any, Never

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import effect as fx
from effect.schedule import Decision, Schedule, repeat, retry, retry_or_else


def decisions(
    schedule: Schedule[Any, Any], times: list[float], inputs: list[Any] | None = None
) -> list[Decision]:
    """Step `schedule` at each of `times`, stopping after the first "done"."""
    state = schedule.initial()
    out: list[Decision] = []
    for i, now in enumerate(times):
        state, _, delay = schedule.step(now, None if inputs is None else inputs[i], state)
        out.append(delay)
        if delay is None:
            break
    return out


def delays_of(schedule: Schedule[Any, Any], n: int) -> list[Decision]:
    """The first `n` decisions when each delay is slept exactly."""
    state = schedule.initial()
    now = 0.0
    out: list[Decision] = []
    for _ in range(n):
        state, _, delay = schedule.step(now, None, state)
        out.append(delay)
        if delay is None:
            break
        now += delay
    return out


seconds = st.floats(min_value=0.0, max_value=1000.0, allow_nan=False)

# -- constructors against the reference formulas ------------------------------------


@given(base=seconds, factor=st.floats(min_value=0.0, max_value=4.0))
def test_exponential_delays(base: float, factor: float) -> None:
    assert delays_of(Schedule.exponential(base, factor), 8) == [base * factor**n for n in range(8)]


def test_exponential_default_factor_is_two() -> None:
    assert Schedule.exponential(0.5).run(range(4)) == [0.5, 1.0, 2.0, 4.0]


@given(one=seconds)
def test_fibonacci_delays(one: float) -> None:
    expected = [one, one]
    while len(expected) < 10:
        expected.append(expected[-1] + expected[-2])
    assert delays_of(Schedule.fibonacci(one), 10) == expected
    assert Schedule.fibonacci(1.0).run(range(7)) == [1.0, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0]


@given(base=seconds)
def test_linear_delays(base: float) -> None:
    assert delays_of(Schedule.linear(base), 6) == [base * (n + 1) for n in range(6)]


@given(d=seconds)
def test_spaced_delays_and_count_output(d: float) -> None:
    assert delays_of(Schedule.spaced(d), 5) == [d] * 5
    assert Schedule.spaced(d).run(range(4)) == [0, 1, 2, 3]


@given(n=st.integers(0, 20))
def test_recurs_allows_exactly_n_recurrences(n: int) -> None:
    assert delays_of(Schedule.recurs(n), n + 5) == [0.0] * n + [None]
    assert Schedule.recurs(n).run(range(n + 5)) == list(range(n + 1))


def test_forever_and_once() -> None:
    assert delays_of(Schedule.forever, 100) == [0.0] * 100
    assert Schedule.forever.run(range(3)) == [0, 1, 2]
    assert delays_of(Schedule.once, 5) == [0.0, None]
    assert Schedule.once.run(range(5)) == [None, None]


def test_fixed_keeps_to_the_grid() -> None:
    s = Schedule.fixed(10.0)
    # Steps at 0 (first: a full interval), 3 (7 left to the 10 mark), 10 (a full
    # interval), 25 (5 to the 30 mark), 26.5 (3.5 to it), then 41: more than a whole
    # interval past the planned run at 30, so at once (Effect-TS "running behind").
    times = [0.0, 3.0, 10.0, 25.0, 26.5, 41.0]
    assert decisions(s, times) == [10.0, 7.0, 10.0, 5.0, 3.5, 0.0]
    assert s.run(range(3)) == [0, 1, 2]
    assert decisions(Schedule.fixed(0.0), [0.0, 1.0]) == [0.0, 0.0]


# -- combinators -------------------------------------------------------------------


def random_schedule() -> st.SearchStrategy[Schedule[Any, Any]]:
    leaf = st.one_of(
        st.integers(0, 6).map(Schedule.recurs),
        seconds.map(Schedule.spaced),
        st.floats(0.0, 10.0).map(Schedule.exponential),
        st.floats(0.0, 10.0).map(Schedule.fibonacci),
        st.floats(0.0, 10.0).map(Schedule.linear),
        st.floats(0.1, 10.0).map(Schedule.fixed),
        st.just(Schedule.forever),
        st.just(Schedule.once),
    )
    return st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.tuples(inner, inner).map(lambda p: p[0].union(p[1])),
            st.tuples(inner, inner).map(lambda p: p[0].intersect(p[1])),
            st.tuples(inner, inner).map(lambda p: p[0].and_then(p[1])),
            st.tuples(inner, seconds).map(lambda p: p[0].up_to(p[1])),
        ),
        max_leaves=4,
    )


step_times = st.lists(st.floats(0.0, 50.0), min_size=1, max_size=15).map(
    lambda gaps: [sum(gaps[: i + 1]) for i in range(len(gaps))]
)


def _pairwise(
    left: Schedule[Any, Any], right: Schedule[Any, Any], times: list[float]
) -> list[tuple[Decision, Decision]]:
    ls, rs = left.initial(), right.initial()
    out = []
    for now in times:
        ls, _, ld = left.step(now, None, ls)
        rs, _, rd = right.step(now, None, rs)
        out.append((ld, rd))
    return out


@settings(max_examples=100)
@given(left=random_schedule(), right=random_schedule(), times=step_times)
def test_union_is_either_with_the_shorter_delay(
    left: Schedule[Any, Any], right: Schedule[Any, Any], times: list[float]
) -> None:
    state = left.union(right).initial()
    union = left.union(right)
    for now, (ld, rd) in zip(times, _pairwise(left, right, times), strict=True):
        state, _, delay = union.step(now, None, state)
        if ld is None and rd is None:
            assert delay is None
        elif ld is None or rd is None:
            assert delay == (rd if ld is None else ld)
        else:
            assert delay == min(ld, rd)


@settings(max_examples=100)
@given(left=random_schedule(), right=random_schedule(), times=step_times)
def test_intersect_is_both_with_the_longer_delay(
    left: Schedule[Any, Any], right: Schedule[Any, Any], times: list[float]
) -> None:
    both = left.intersect(right)
    state = both.initial()
    for now, (ld, rd) in zip(times, _pairwise(left, right, times), strict=True):
        state, out, delay = both.step(now, None, state)
        assert delay == (None if ld is None or rd is None else max(ld, rd))
        assert isinstance(out, tuple) and len(out) == 2


@given(n=st.integers(0, 5), d=seconds)
def test_and_then_runs_the_first_to_its_end_then_the_second(n: int, d: float) -> None:
    s = Schedule.recurs(n).and_then(Schedule.spaced(d))
    assert delays_of(s, n + 3) == [0.0] * n + [d] * 3


def test_up_to_stops_once_the_time_has_elapsed() -> None:
    s = Schedule.spaced(1.0).up_to(2.5)
    assert decisions(s, [10.0, 11.0, 12.0, 13.0]) == [1.0, 1.0, 1.0, None]
    assert delays_of(Schedule.exponential(1.0).up_to(5.0), 10) == [1.0, 2.0, 4.0, None]


def test_while_and_until_input_and_output() -> None:
    inputs = [1, 2, 3, 4, 5]
    times = [0.0] * 5
    assert decisions(Schedule.forever.while_input(lambda x: x < 3), times, inputs) == [
        0.0,
        0.0,
        None,
    ]
    assert decisions(Schedule.forever.until_input(lambda x: x == 2), times, inputs) == [0.0, None]
    assert Schedule.forever.while_output(lambda n: n < 2).run(range(9)) == [0, 1, 2]
    assert Schedule.forever.until_output(lambda n: n >= 1).run(range(9)) == [0, 1]


def test_map_and_delays() -> None:
    assert Schedule.recurs(2).map(lambda n: n * 10).run(range(9)) == [0, 10, 20]
    assert Schedule.linear(2.0).delays().run(range(3)) == [2.0, 4.0, 6.0]
    assert Schedule.once.delays().run(range(9)) == [0.0, 0.0]


@given(seed=st.integers(0, 2**32), d=st.floats(0.1, 100.0))
def test_jittered_is_seedable_and_in_bounds(seed: int, d: float) -> None:
    s = Schedule.spaced(d).jittered(0.5, 1.5, seed=seed)
    first, second = delays_of(s, 20), delays_of(s, 20)
    assert first == second
    assert all(x is not None and 0.5 * d <= x <= 1.5 * d for x in first)
    assert len(set(first)) > 1


def test_jittered_without_seed_differs_between_runs_and_keeps_done() -> None:
    s = Schedule.spaced(10.0).jittered()
    assert delays_of(s, 10) != delays_of(s, 10)
    assert delays_of(Schedule.recurs(2).jittered(seed=1), 5)[-1] is None


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="n=-1"):
        Schedule.recurs(-1)
    with pytest.raises(ValueError, match="seconds=-1"):
        Schedule.spaced(-1)
    with pytest.raises(ValueError, match="base"):
        Schedule.exponential(-0.5)
    with pytest.raises(ValueError, match="one"):
        Schedule.fibonacci(math.nan)
    with pytest.raises(ValueError, match="seconds"):
        Schedule.forever.up_to(-2)
    with pytest.raises(ValueError, match="min=2"):
        Schedule.forever.jittered(2.0, 1.0)
    with pytest.raises(TypeError, match="n="):
        Schedule.recurs(1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="times=-1"):
        retry(fx.fail("x"), times=-1)


# -- retry (rules 85, 86) -------------------------------------------------------------


class Flaky:
    """Fails with "e1", "e2", ... until attempt `succeed_on` (1-based)."""

    def __init__(self, succeed_on: int | None = None) -> None:
        self.attempts = 0
        self.succeed_on = succeed_on

    def effect(self) -> fx.Effect[str, str, Never]:
        def attempt() -> fx.Effect[str, str, Never]:
            self.attempts += 1
            if self.succeed_on is not None and self.attempts >= self.succeed_on:
                return fx.succeed(f"ok after {self.attempts}")
            return fx.fail(f"e{self.attempts}")

        return fx.suspend(attempt)


@pytest.mark.parametrize("n", [0, 1, 3])
def test_retry_recurs_n_gives_n_plus_one_attempts_and_the_last_error(n: int) -> None:
    flaky = Flaky()
    exit = fx.run_sync_exit(flaky.effect().retry(Schedule.recurs(n)))
    assert flaky.attempts == n + 1
    assert isinstance(exit, fx.Failure)
    assert exit.cause.failures() == [f"e{n + 1}"]


def test_retry_succeeds_as_soon_as_the_effect_does() -> None:
    flaky = Flaky(succeed_on=3)
    assert fx.run_sync(flaky.effect().retry(times=10)) == "ok after 3"
    assert flaky.attempts == 3


def test_retry_times() -> None:
    flaky = Flaky()
    assert fx.run_sync_exit(flaky.effect().retry(times=2)).is_failure()
    assert flaky.attempts == 3


def test_retry_until_and_while_test_the_error() -> None:
    flaky = Flaky()
    exit = fx.run_sync_exit(flaky.effect().retry(until=lambda e: e == "e3"))
    assert flaky.attempts == 3
    assert isinstance(exit, fx.Failure) and exit.cause.failures() == ["e3"]

    flaky = Flaky()
    fx.run_sync_exit(flaky.effect().retry(while_=lambda e: e != "e2"))
    assert flaky.attempts == 2

    flaky = Flaky()
    fx.run_sync_exit(flaky.effect().retry(until=lambda e: True))
    assert flaky.attempts == 1  # always runs at least once


def test_retry_schedule_and_predicate_stop_at_whichever_ends_first() -> None:
    flaky = Flaky()
    fx.run_sync_exit(flaky.effect().retry(Schedule.recurs(10), until=lambda e: e == "e2"))
    assert flaky.attempts == 2
    flaky = Flaky()
    fx.run_sync_exit(flaky.effect().retry(Schedule.recurs(1), until=lambda e: e == "e5"))
    assert flaky.attempts == 2
    flaky = Flaky()
    fx.run_sync_exit(flaky.effect().retry(Schedule.recurs(10), times=2))
    assert flaky.attempts == 3


def test_retry_never_retries_defects_or_interruption() -> None:
    calls: list[int] = []
    dying = fx.sync(lambda: calls.append(1)).and_then(fx.die(ValueError("bug")))
    exit = fx.run_sync_exit(dying.retry(times=5))
    assert calls == [1]
    assert isinstance(exit, fx.Failure) and len(exit.cause.defects()) == 1

    calls.clear()
    interrupted = fx.sync(lambda: calls.append(1)).and_then(fx.interrupt())
    exit = fx.run_sync_exit(interrupted.retry(times=5))
    assert calls == [1]
    assert isinstance(exit, fx.Failure) and exit.cause.is_interrupted_only()

    calls.clear()
    mixed = fx.sync(lambda: calls.append(1)).and_then(fx.fail("e")).ensuring(fx.die(ValueError()))
    fx.run_sync_exit(mixed.retry(times=5))
    assert calls == [1]  # a cause with a defect is never handed to the retry (rule 18)


def test_retry_or_else_gets_the_last_error_and_schedule_output() -> None:
    flaky = Flaky()
    eff = retry_or_else(flaky.effect(), Schedule.recurs(2), lambda e, out: fx.succeed((e, out)))
    assert fx.run_sync(eff) == ("e3", 2)


def test_a_retried_effect_can_run_again() -> None:
    flaky = Flaky(succeed_on=2)
    eff = flaky.effect().retry(times=3)
    assert fx.run_sync(eff) == "ok after 2"
    assert fx.run_sync(eff) == "ok after 3"  # the schedule state is fresh per run


class RecordingClock:
    """A clock whose sleeps return at once and are recorded."""

    def __init__(self) -> None:
        self.slept: list[float] = []
        self.time = 0.0

    def sleep(self, seconds: float) -> fx.Effect[None, Never, Never]:
        def record() -> None:
            self.slept.append(seconds)
            self.time += seconds

        return fx.sync(record)

    def now(self) -> float:
        return self.time


def test_retry_sleeps_the_schedule_delays_through_the_clock() -> None:
    clock = RecordingClock()
    flaky = Flaky()
    eff = flaky.effect().retry(Schedule.exponential(1.0), times=4)
    fx.run_sync_exit(eff.pipe(fx.provide_service(fx.Clock, clock)))
    assert clock.slept == [1.0, 2.0, 4.0, 8.0]
    assert flaky.attempts == 5


def test_retry_is_stack_safe() -> None:
    flaky = Flaky(succeed_on=5_000)
    assert fx.run_sync(flaky.effect().retry(times=10_000)) == "ok after 5000"


# -- repeat (rule 87) ---------------------------------------------------------------


def test_repeat_recurs_three_runs_four_times_and_returns_the_last_value() -> None:
    runs: list[int] = []
    eff = fx.sync(lambda: runs.append(len(runs) + 1) or len(runs))
    assert fx.run_sync(eff.repeat(Schedule.recurs(3))) == 4
    assert runs == [1, 2, 3, 4]


def test_repeat_stops_at_the_first_failure() -> None:
    runs: list[int] = []

    def step() -> fx.Effect[int, str, Never]:
        runs.append(1)
        return fx.fail("stop") if len(runs) == 2 else fx.succeed(len(runs))

    exit = fx.run_sync_exit(repeat(fx.suspend(step), Schedule.recurs(5)))
    assert len(runs) == 2
    assert isinstance(exit, fx.Failure) and exit.cause.failures() == ["stop"]


def test_repeat_feeds_values_to_the_schedule_and_sleeps_through_the_clock() -> None:
    clock = RecordingClock()
    counter = [0]

    def bump() -> int:
        counter[0] += 1
        return counter[0]

    policy = Schedule.spaced(5.0).while_input(lambda v: v < 3)
    eff = fx.sync(bump).repeat(policy).pipe(fx.provide_service(fx.Clock, clock))
    assert fx.run_sync(eff) == 3
    assert clock.slept == [5.0, 5.0]


@pytest.mark.anyio
async def test_retry_with_real_short_delays() -> None:
    flaky = Flaky(succeed_on=3)
    assert await fx.run(flaky.effect().retry(Schedule.spaced(0.001))) == "ok after 3"
