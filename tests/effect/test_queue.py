"""Queue: strategies, back-pressure, exact interruption, shutdown (rules 95, 96), and
a model-based test of random operation sequences with interruptions."""

from __future__ import annotations

from collections import deque
from typing import Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import effect as fx
from effect.queue import Queue, Strategy

# -- strategies ---------------------------------------------------------------------


def test_bounded_offer_waits_when_full() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[bool, list[int], bool], fx.Never, fx.Never]:
        q = yield from Queue[int].bounded(2)
        yield from q.offer_all([1, 2])
        third = yield from q.offer(3).fork()
        yield from fx.yield_now()
        waiting = not third.done
        first = yield from q.take()
        yield from third.join()
        rest = yield from q.take_all()
        return waiting, [first, *rest], (yield from q.is_empty())

    assert fx.run_sync(prog) == (True, [1, 2, 3], True)


def test_dropping_rejects_when_full() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[bool, bool, bool, list[int]], fx.Never, fx.Never]:
        q = yield from Queue[int].dropping(2)
        a = yield from q.offer_all([1, 2])
        b = yield from q.offer(3)
        c = yield from q.is_full()
        return a, b, c, (yield from q.take_all())

    assert fx.run_sync(prog) == (True, False, True, [1, 2])


def test_sliding_drops_the_oldest() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[bool, list[int]], fx.Never, fx.Never]:
        q = yield from Queue[int].sliding(3)
        ok = yield from q.offer_all(range(1, 6))
        yield from q.offer(6)
        return ok, (yield from q.take_all())

    assert fx.run_sync(prog) == (True, [4, 5, 6])


def test_unbounded_never_full() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[int, bool], fx.Never, fx.Never]:
        q = yield from Queue[int].unbounded()
        yield from q.offer_all(range(10_000))
        return (yield from q.size()), (yield from q.is_full())

    assert fx.run_sync(prog) == (10_000, False)


def test_take_waits_and_takers_are_served_in_order() -> None:
    @fx.gen
    def prog() -> fx.Gen[list[tuple[str, int]], fx.Never, fx.Never]:
        q = yield from Queue[int].unbounded()
        got: list[tuple[str, int]] = []
        fibers = []
        for name in "abc":
            eff = q.take().map(lambda v, n=name: got.append((n, v)))
            fibers.append((yield from eff.fork()))
            yield from fx.yield_now()
        assert (yield from q.size()) == -3  # waiting takers count as -1 (Effect-TS)
        yield from q.offer_all([1, 2, 3])
        for f in fibers:
            yield from f.join()
        return got

    assert fx.run_sync(prog) == [("a", 1), ("b", 2), ("c", 3)]


def test_poll_take_up_to_take_all() -> None:
    @fx.gen
    def prog() -> fx.Gen[list[object], fx.Never, fx.Never]:
        q = yield from Queue[int].unbounded()
        empty_poll = yield from q.poll()
        yield from q.offer_all([1, 2, 3, 4, 5])
        return [
            empty_poll,
            (yield from q.poll()),
            (yield from q.take_up_to(2)),
            (yield from q.take_up_to(0)),
            (yield from q.take_all()),
            (yield from q.take_all()),
        ]

    assert fx.run_sync(prog) == [None, 1, [2, 3], [], [4, 5], []]


def test_take_between_waits_for_the_minimum() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[bool, list[int], list[int]], fx.Never, fx.Never]:
        q = yield from Queue[int].bounded(10)
        yield from q.offer(1)
        fiber = yield from q.take_between(3, 4).fork()
        yield from fx.yield_now()
        still_waiting = not fiber.done
        yield from q.offer_all([2, 3, 4, 5, 6])
        got = yield from fiber.join()
        return still_waiting, got, (yield from q.take_all())

    waiting, got, rest = fx.run_sync(prog)
    assert waiting
    assert got[:3] == [1, 2, 3] and 3 <= len(got) <= 4
    assert got + rest == [1, 2, 3, 4, 5, 6]


def test_interrupted_take_between_puts_items_back_in_order() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[bool, list[int]], fx.Never, fx.Never]:
        q = yield from Queue[int].unbounded()
        yield from q.offer_all([1, 2])
        fiber = yield from q.take_between(5, 5).fork()
        yield from fx.yield_now()
        yield from q.offer(3)  # taken into the waiting batch
        yield from fx.yield_now()
        exit = yield from fiber.interrupt()
        yield from q.offer(4)
        return exit.is_interrupted(), (yield from q.take_all())

    assert fx.run_sync(prog) == (True, [1, 2, 3, 4])


# -- interruption exactness (rule 95) ----------------------------------------------


def test_interrupted_take_removes_nothing_and_size_returns_to_zero() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[int, int, list[int]], fx.Never, fx.Never]:
        q = yield from Queue[int].bounded(2)
        taker = yield from q.take().fork()
        yield from fx.yield_now()
        during = yield from q.size()
        yield from taker.interrupt()
        after = yield from q.size()
        yield from q.offer(7)
        return during, after, (yield from q.take_all())

    assert fx.run_sync(prog) == (-1, 0, [7])


def test_interrupted_offer_on_full_queue_adds_nothing() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[int, int, list[int]], fx.Never, fx.Never]:
        q = yield from Queue[int].bounded(1)
        yield from q.offer(1)
        offerer = yield from q.offer(2).fork()
        yield from fx.yield_now()
        during = yield from q.size()  # the waiting offerer's item counts (Effect-TS)
        yield from offerer.interrupt()
        after = yield from q.size()
        return during, after, (yield from q.take_all())

    assert fx.run_sync(prog) == (2, 1, [1])


def test_taker_woken_then_interrupted_passes_the_item_on() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[bool, int, list[int]], fx.Never, fx.Never]:
        q = yield from Queue[int].unbounded()
        me = yield from fx.fiber_id()
        doomed = yield from q.take().fork()
        other = yield from q.take().fork()
        yield from fx.yield_now()
        # Wake `doomed` with an item and interrupt it in the same step, before it runs.
        yield from fx.sync(lambda: (q.offer_nowait(1), doomed._signal_interrupt(me)))
        exit = yield from doomed.await_()
        got = yield from other.join()
        return exit.is_interrupted(), got, (yield from q.take_all())

    assert fx.run_sync(prog) == (True, 1, [])


def test_offerer_woken_then_interrupted_adds_nothing_and_passes_room_on() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[bool, list[int]], fx.Never, fx.Never]:
        q = yield from Queue[int].bounded(1)
        me = yield from fx.fiber_id()
        yield from q.offer(0)
        doomed = yield from q.offer(1).fork()
        other = yield from q.offer(2).fork()
        yield from fx.yield_now()
        first = yield from q.poll().map(lambda v: (v, doomed._signal_interrupt(me))[0])
        exit = yield from doomed.await_()
        yield from other.join()
        return exit.is_interrupted(), [first, *(yield from q.take_all())]

    assert fx.run_sync(prog) == (True, [0, 2])


# -- shutdown (rule 96) --------------------------------------------------------------


def test_shutdown_interrupts_waiters_with_the_callers_id() -> None:
    @fx.gen
    def prog() -> fx.Gen[tuple[int, list[fx.Exit[Any, Any]]], fx.Never, fx.Never]:
        q = yield from Queue[int].bounded(1)
        yield from q.offer(1)
        offerer = yield from q.offer(2).fork()
        q2 = yield from Queue[int].unbounded()
        taker = yield from q2.take().fork()
        yield from fx.yield_now()
        closer = yield from q.shutdown().and_then(q2.shutdown()).and_then(fx.fiber_id()).fork()
        closer_id = yield from closer.join()
        return closer_id, [(yield from offerer.await_()), (yield from taker.await_())]

    closer_id, exits = fx.run_sync(prog)
    for exit in exits:
        assert isinstance(exit, fx.Failure)
        assert exit.cause.is_interrupted_only()
        assert exit.cause.interruptors() == frozenset({closer_id})


def test_after_shutdown_operations_interrupt_the_caller() -> None:
    q: Queue[int] = Queue("bounded", 2)
    fx.run_sync(q.offer(1).and_then(q.shutdown()).and_then(q.shutdown()))
    effects: list[fx.Effect[Any, fx.Never, fx.Never]] = [
        q.offer(1),
        q.take(),
        q.take_all(),
        q.size(),
        q.poll(),
        q.offer_all([1]),
        q.take_between(1, 2),
        q.is_full(),
    ]
    for eff in effects:
        me, exit = fx.run_sync(fx.fiber_id().zip(eff.exit()))
        assert isinstance(exit, fx.Failure)
        assert exit.cause.interruptors() == frozenset({me})
    assert fx.run_sync(q.is_shutdown()) is True
    assert q.offer_nowait(3) is False
    assert q.size_nowait() == 0


def test_await_shutdown() -> None:
    @fx.gen
    def prog() -> fx.Gen[bool, fx.Never, fx.Never]:
        q = yield from Queue[int].unbounded()
        waiter = yield from q.await_shutdown().fork()
        yield from fx.yield_now()
        before = waiter.done
        yield from q.shutdown()
        yield from waiter.join()
        yield from q.await_shutdown()
        return before

    assert fx.run_sync(prog) is False


# -- plain calls, bad input, event loops ---------------------------------------------


def test_offer_nowait_strategies() -> None:
    bounded: Queue[int] = Queue("bounded", 1)
    assert [bounded.offer_nowait(1), bounded.offer_nowait(2)] == [True, False]
    sliding: Queue[int] = Queue("sliding", 1)
    assert [sliding.offer_nowait(1), sliding.offer_nowait(2)] == [True, True]
    assert fx.run_sync(sliding.take_all()) == [2]
    assert bounded.size_nowait() == 1


def test_bad_input_names_the_argument() -> None:
    with pytest.raises(ValueError, match="capacity=0"):
        Queue.bounded(0)
    with pytest.raises(ValueError, match="capacity=-1"):
        Queue.sliding(-1)
    with pytest.raises(TypeError, match="capacity"):
        Queue.dropping(1.5)  # type: ignore[arg-type]
    q: Queue[int] = Queue("unbounded")
    with pytest.raises(ValueError, match="n=-1"):
        q.take_up_to(-1)
    with pytest.raises(ValueError, match="min=3, max=2"):
        q.take_between(3, 2)
    with pytest.raises(ValueError, match="strategy"):
        Queue("lifo")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_offer_nowait_from_a_plain_task_wakes_a_taker() -> None:
    q: Queue[int] = Queue("bounded", 4)
    results: list[int] = []

    async def consume() -> None:
        results.append(await fx.run(q.take()))

    async with anyio.create_task_group() as tg:
        tg.start_soon(consume)
        await anyio.sleep(0.001)
        assert q.size_nowait() == -1
        assert q.offer_nowait(42)
    assert results == [42]


@pytest.mark.anyio
async def test_producer_consumer_through_a_small_bounded_queue() -> None:
    @fx.gen
    def prog() -> fx.Gen[list[int], fx.Never, fx.Never]:
        q = yield from Queue[int].bounded(3)
        producer = yield from fx.for_each(range(200), q.offer).fork()
        got: list[int] = []
        for _ in range(200):
            got.append((yield from q.take()))
        yield from producer.join()
        return got

    assert await fx.run(prog) == list(range(200))


@pytest.mark.anyio
async def test_take_interrupted_by_timeout_leaves_no_taker() -> None:
    q: Queue[int] = Queue("unbounded")
    exit = await fx.run_exit(q.take().timeout(0.002))
    assert isinstance(exit, fx.Failure)
    assert q.size_nowait() == 0
    assert q.offer_nowait(1)
    assert await fx.run(q.take()) == 1


# -- model-based test -----------------------------------------------------------------

OPS = st.one_of(
    # Offers and takes are listed several times to make full and empty queues, and
    # lines of waiters, common.
    st.tuples(st.just("offer")),
    st.tuples(st.just("offer")),
    st.tuples(st.just("offer")),
    st.tuples(st.just("take")),
    st.tuples(st.just("take")),
    st.tuples(st.just("poll")),
    st.tuples(st.just("take_up_to"), st.integers(0, 3)),
    st.tuples(st.just("offer_nowait")),
    st.tuples(st.just("yield"), st.integers(1, 3)),
    st.tuples(st.just("interrupt"), st.integers(0, 63)),
    # The interesting window: a waiter woken by the first call and interrupted in the
    # same step, before it could run.
    st.tuples(st.just("offer_nowait_then_interrupt_taker"), st.integers(0, 63)),
    st.tuples(st.just("poll_then_interrupt_offerer"), st.integers(0, 63)),
    st.tuples(st.just("settle_and_check")),
)


def _run_program(
    strategy: Strategy, capacity: int, ops: list[tuple[Any, ...]]
) -> tuple[
    list[tuple[str, int]], list[int], list[fx.Exit[Any, Any]], list[fx.Exit[Any, Any]], bool
]:
    """Run `ops` against a real queue; return the add/remove events in the order they
    happened, the final contents, the exits of the forked offers and takes, and
    whether some waiter was left stuck although it could have proceeded."""
    q: Queue[int] = Queue(strategy, None if strategy == "unbounded" else capacity)
    events: list[tuple[str, int]] = []
    offers: list[fx.Fiber[Any, Any]] = []
    takes: list[fx.Fiber[Any, Any]] = []
    counter = iter(range(1, 1_000_000))

    def on_offer(item: int) -> Any:
        return lambda ok: events.append(("add" if ok else "drop", item))

    def removed(item: int | None) -> None:
        if item is not None:
            events.append(("remove", item))

    def nowait(item: int) -> None:
        events.append(("add" if q.offer_nowait(item) else "drop", item))

    def live(fibers: list[fx.Fiber[Any, Any]]) -> list[fx.Fiber[Any, Any]]:
        return [f for f in fibers if not f.done]

    def pick(candidates: list[fx.Fiber[Any, Any]], index: int) -> fx.Fiber[Any, Any]:
        # Half the time the oldest: usually the head of its line, the one just woken.
        return candidates[0] if index < 32 else candidates[index % len(candidates)]

    def stuck() -> bool:
        """Someone waits for something that is there (call after settling)."""
        takers_stuck = bool(live(takes)) and len(q._buffer) > 0
        cap = q.capacity
        offerers_stuck = bool(live(offers)) and cap is not None and len(q._buffer) < cap
        return takers_stuck or offerers_stuck

    settle = fx.for_each(range(20), lambda _: fx.yield_now())

    @fx.gen
    def driver() -> fx.Gen[tuple[list[int], bool], fx.Never, fx.Never]:
        me = yield from fx.fiber_id()
        for op in ops:
            kind = op[0]
            if kind == "offer":
                item = next(counter)
                offers.append((yield from q.offer(item).map(on_offer(item)).fork()))
            elif kind == "take":
                takes.append((yield from q.take().map(removed).fork()))
            elif kind == "poll":
                yield from q.poll().map(removed)
            elif kind == "take_up_to":
                batch = yield from q.take_up_to(op[1])
                for item in batch:
                    removed(item)
            elif kind == "offer_nowait":
                yield from fx.sync(lambda i=next(counter): nowait(i))
            elif kind == "yield":
                for _ in range(op[1]):
                    yield from fx.yield_now()
            elif kind == "interrupt":
                candidates = live(offers + takes)
                if candidates:
                    yield from candidates[op[1] % len(candidates)].interrupt()
            elif kind == "offer_nowait_then_interrupt_taker":
                candidates = live(takes)
                item = next(counter)
                if candidates:
                    victim = pick(candidates, op[1])
                    yield from fx.sync(
                        lambda i=item, v=victim: (nowait(i), v._signal_interrupt(me))
                    )
                    yield from victim.await_()
                    yield from settle
                    if stuck():
                        return [], True
                else:
                    yield from fx.sync(lambda i=item: nowait(i))
            elif kind == "poll_then_interrupt_offerer":
                candidates = live(offers)
                if candidates:
                    victim = pick(candidates, op[1])
                    yield from q.poll().map(
                        lambda v, w=victim: (removed(v), w._signal_interrupt(me))
                    )
                    yield from victim.await_()
                    yield from settle
                    if stuck():
                        return [], True
                else:
                    yield from q.poll().map(removed)
            elif kind == "settle_and_check":
                yield from settle
                if stuck():
                    return [], True
        yield from settle
        was_stuck = stuck()
        for fiber in live(offers + takes):
            yield from fiber.interrupt()
        rest = yield from q.take_all()
        return rest, was_stuck

    rest, was_stuck = fx.run_sync(driver)
    offer_exits = [f.poll() for f in offers]
    take_exits = [f.poll() for f in takes]
    return events, rest, offer_exits, take_exits, was_stuck  # type: ignore[return-value]


@pytest.mark.parametrize("strategy", ["bounded", "dropping", "sliding", "unbounded"])
@settings(max_examples=150, deadline=None)
@given(capacity=st.integers(1, 3), ops=st.lists(OPS, max_size=40))
def test_queue_matches_model(strategy: Strategy, capacity: int, ops: list[tuple[Any, ...]]) -> None:
    events, rest, offer_exits, take_exits, stuck = _run_program(strategy, capacity, ops)
    assert not stuck
    model: deque[int] = deque()
    seen_added: set[int] = set()
    for kind, item in events:
        if kind == "add":
            assert item not in seen_added, f"{item} added twice"
            seen_added.add(item)
            if strategy == "sliding" and len(model) == capacity:
                model.popleft()
            elif strategy in ("bounded", "dropping"):
                assert len(model) < capacity, "added beyond capacity"
            model.append(item)
        elif kind == "drop":
            assert strategy in ("bounded", "dropping"), f"{strategy} queue dropped"
            if strategy == "dropping":
                assert len(model) == capacity, "dropped although not full"
        else:
            assert model, f"removed {item} from an empty queue"
            assert model.popleft() == item, "removed out of order"
    assert rest == list(model), "final contents differ from the model"
    # Every forked offer or take either completed (and was recorded) or was
    # interrupted (and changed nothing, which the replay above checked).
    for exit in offer_exits + take_exits:
        assert exit is not None
        assert exit.is_success() or exit.cause.is_interrupted_only()
