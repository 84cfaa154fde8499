"""`Queue`: an asynchronous FIFO queue between fibers, with back-pressure strategies.

The shape follows anyio's memory object streams: plain Python state, synchronous
`*_now` operations that either succeed or report that they would block, and effects
that wait (an `_Async` suspension) only when they would block.

Exactness is the point of this module, because the tracker's no-loss guarantee rests
on it: an item leaves the buffer only inside a step of the fiber that receives it,
and is handed to that fiber's continuation with no scheduling point in between, so an
interrupted `take` never removes anything and an interrupted `offer` never adds
anything. Waiters are woken, not served: a woken fiber takes (or adds) for itself
when it runs, and if it is interrupted first, its wake-up passes to the next waiter.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Generic, Literal, Never, TypeVar

from effect._effect import (
    Canceler,
    Effect,
    Resume,
    _Async,
    _FailCause,
    _Fold,
    _Mask,
    _Succeed,
    _Sync,
    _WithFiber,
)
from effect._exit import Cause, Interrupt
from effect._fiber import Fiber

__all__ = ["Queue", "Strategy"]

A = TypeVar("A")

Strategy = Literal["bounded", "dropping", "sliding", "unbounded"]
Restore = Callable[[Effect[Any, Any, Any]], Effect[Any, Any, Any]]

_VOID: Effect[None, Never, Never] = _Succeed(None)
_TRUE: Effect[bool, Never, Never] = _Succeed(True)
_FALSE: Effect[bool, Never, Never] = _Succeed(False)


class _Waiter:
    """A suspended taker or offerer. `queued`: in its line; `woken`: resumed (and
    counted in the line's reservations) but has not run yet. `items[pos:]` are an
    offerer's items still to add."""

    __slots__ = ("front", "items", "pos", "queued", "resume", "woken")

    def __init__(self, items: list[Any] | None = None) -> None:
        self.resume: Resume | None = None
        self.queued = False
        self.woken = False
        self.front = False
        self.items = items
        self.pos = 0


class Queue(Generic[A]):
    """A FIFO queue of `A` shared by fibers. Make one with `Queue.bounded`,
    `Queue.dropping`, `Queue.sliding` or `Queue.unbounded`.

    Examples:
        >>> import effect as fx
        >>> from effect.queue import Queue
        >>> @fx.gen
        ... def prog() -> fx.Gen[list[int], fx.Never, fx.Never]:
        ...     q = yield from Queue[int].bounded(2)
        ...     producer = yield from q.offer_all([1, 2, 3, 4]).fork()
        ...     got = []
        ...     for _ in range(4):
        ...         got.append((yield from q.take()))
        ...     yield from producer.join()
        ...     return got
        >>> fx.run_sync(prog)
        [1, 2, 3, 4]
    """

    __slots__ = (
        "_buffer",
        "_capacity",
        "_offerers",
        "_shutdown_by",
        "_shutdown_waiters",
        "_strategy",
        "_surplus",
        "_take_node",
        "_takers",
        "_woken_offerers",
        "_woken_takers",
    )

    def __init__(self, strategy: Strategy, capacity: int | None = None) -> None:
        """A queue with the given strategy. Prefer the effect constructors
        (`Queue.bounded(...)`, ...) inside effects, so each run gets its own queue."""
        if strategy == "unbounded":
            if capacity is not None:
                raise ValueError(f"an unbounded queue takes no capacity, got {capacity!r}")
        elif strategy in ("bounded", "dropping", "sliding"):
            _check_capacity(capacity)
        else:
            raise ValueError(f"unknown queue strategy {strategy!r}")
        self._strategy: Strategy = strategy
        self._capacity = capacity
        self._buffer: deque[A] = deque()
        self._takers: deque[_Waiter] = deque()
        self._offerers: deque[_Waiter] = deque()
        self._woken_takers = 0
        self._woken_offerers = 0
        # Items held by waiting (or woken) offerers: Effect-TS counts them in `size`.
        self._surplus = 0
        self._shutdown_by: int | None = None
        self._shutdown_waiters: dict[Resume, None] = {}
        self._take_node: Effect[A, Never, Never] = _WithFiber(self._take_body)

    # -- constructors ------------------------------------------------------------------

    @classmethod
    def bounded(cls, capacity: int) -> Effect[Queue[A], Never, Never]:
        """A queue holding at most `capacity` items; `offer` waits while it is full.

        `ValueError` (when called) if `capacity` is not a positive int.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Queue[int].bounded(1).flat_map(lambda q: q.offer(1)))
            True
        """
        _check_capacity(capacity)
        return _Sync(lambda: cls("bounded", capacity))

    @classmethod
    def dropping(cls, capacity: int) -> Effect[Queue[A], Never, Never]:
        """A queue holding at most `capacity` items; `offer` on a full queue drops the
        new item and returns False.

        Examples:
            >>> import effect as fx
            >>> prog = Queue[int].dropping(1).flat_map(lambda q: q.offer(1).zip(q.offer(2)))
            >>> fx.run_sync(prog)
            (True, False)
        """
        _check_capacity(capacity)
        return _Sync(lambda: cls("dropping", capacity))

    @classmethod
    def sliding(cls, capacity: int) -> Effect[Queue[A], Never, Never]:
        """A queue holding at most `capacity` items; `offer` on a full queue drops the
        oldest item to make room and returns True.

        Examples:
            >>> import effect as fx
            >>> prog = Queue[int].sliding(2).flat_map(
            ...     lambda q: q.offer_all([1, 2, 3]).and_then(q.take_all()))
            >>> fx.run_sync(prog)
            [2, 3]
        """
        _check_capacity(capacity)
        return _Sync(lambda: cls("sliding", capacity))

    @classmethod
    def unbounded(cls) -> Effect[Queue[A], Never, Never]:
        """A queue without a capacity; `offer` always adds.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Queue[str].unbounded().flat_map(lambda q: q.offer("a")))
            True
        """
        return _Sync(lambda: cls("unbounded"))

    @property
    def capacity(self) -> int | None:
        """The capacity, or None for an unbounded queue."""
        return self._capacity

    @property
    def strategy(self) -> Strategy:
        """What `offer` does on a full queue: "bounded" waits, "dropping" drops the new
        item, "sliding" drops the oldest; "unbounded" is never full."""
        return self._strategy

    # -- offering ------------------------------------------------------------------------

    def offer(self, item: A) -> Effect[bool, Never, Never]:
        """Add `item`. True if it was added; False if a dropping queue was full. On a
        full bounded queue, wait for room (interruptible: an interrupted offer adds
        nothing). After `shutdown`, interrupts the caller.

        Examples:
            >>> import effect as fx
            >>> q: Queue[int] = Queue("unbounded")
            >>> fx.run_sync(q.offer(1).and_then(q.size()))
            1
        """
        return _WithFiber(functools.partial(self._offer_body, item))

    def offer_all(self, items: Iterable[A]) -> Effect[bool, Never, Never]:
        """Add `items` in order. On a bounded queue, add what fits and wait for room for
        the rest; if interrupted while waiting, the items already added stay and the
        rest are not added. True if every item was added (False if a dropping queue
        dropped some).

        Examples:
            >>> import effect as fx
            >>> prog = Queue[int].dropping(2).flat_map(lambda q: q.offer_all([1, 2, 3]))
            >>> fx.run_sync(prog)
            False
        """
        listed = list(items)
        return _WithFiber(lambda fiber: self._offer_all_body(fiber, listed))

    def offer_nowait(self, item: A) -> bool:
        """Add `item` without waiting, from plain code (not an effect): True if added.

        A full bounded or dropping queue, or a shut-down queue, returns False. Call it
        from the event loop's thread (for example from a callback or a coroutine),
        never from another thread.

        Examples:
            >>> q: Queue[int] = Queue("bounded", 1)
            >>> q.offer_nowait(1), q.offer_nowait(2), q.size_nowait()
            (True, False, 1)
        """
        if self._shutdown_by is not None:
            return False
        return self._offer_now(item)

    # -- taking --------------------------------------------------------------------------

    def take(self) -> Effect[A, Never, Never]:
        """Remove and return the oldest item, waiting while the queue is empty.

        Interruptible while waiting; an interrupted take removes nothing. Waiting
        takers are served in arrival order. After `shutdown`, interrupts the caller.

        Examples:
            >>> import effect as fx
            >>> q: Queue[str] = Queue("unbounded")
            >>> fx.run_sync(q.offer("x").and_then(q.take()))
            'x'
        """
        return self._take_node

    def take_all(self) -> Effect[list[A], Never, Never]:
        """Remove and return every item now in the queue (maybe none); never waits.

        Examples:
            >>> import effect as fx
            >>> q: Queue[int] = Queue("unbounded")
            >>> fx.run_sync(q.offer_all([1, 2]).and_then(q.take_all()))
            [1, 2]
        """
        return _WithFiber(lambda fiber: self._take_up_to_body(fiber, -1))

    def take_up_to(self, n: int) -> Effect[list[A], Never, Never]:
        """Remove and return at most `n` of the oldest items; never waits.

        `ValueError` (when called) if `n` is negative.

        Examples:
            >>> import effect as fx
            >>> q: Queue[int] = Queue("unbounded")
            >>> fx.run_sync(q.offer_all([1, 2, 3]).and_then(q.take_up_to(2)))
            [1, 2]
        """
        _check_nonnegative(n, "n")
        return _WithFiber(lambda fiber: self._take_up_to_body(fiber, n))

    def take_between(self, min: int, max: int) -> Effect[list[A], Never, Never]:
        """Remove and return between `min` and `max` of the oldest items, waiting until
        at least `min` have been taken.

        Interruptible while waiting; the items it had already taken go back to the
        front of the queue, in order (a bounded queue may then briefly hold more than
        its capacity). `ValueError` (when called) unless `0 <= min <= max`.

        Examples:
            >>> import effect as fx
            >>> q: Queue[int] = Queue("unbounded")
            >>> fx.run_sync(q.offer_all([1, 2, 3]).and_then(q.take_between(1, 2)))
            [1, 2]
        """
        _check_nonnegative(min, "min")
        _check_nonnegative(max, "max")
        if min > max:
            raise ValueError(f"min must be <= max, got min={min}, max={max}")
        return _WithFiber(lambda fiber: self._take_between_body(fiber, min, max))

    def poll(self) -> Effect[A | None, Never, Never]:
        """Remove and return the oldest item, or None if the queue is empty; never
        waits.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Queue[int]("unbounded").poll()) is None
            True
        """

        def body(fiber: Fiber[Any, Any]) -> Effect[A | None, Never, Never]:
            if self._shutdown_by is not None:
                return _FailCause(Interrupt(fiber.id))
            return self._pop() if self._buffer else _VOID

        return _WithFiber(body)

    # -- inspecting ------------------------------------------------------------------

    def size(self) -> Effect[int, Never, Never]:
        """The number of items in the queue, as Effect-TS counts it: items held by
        offerers waiting on a full bounded queue count, and each waiting taker counts
        -1. After `shutdown`, interrupts the caller.

        Examples:
            >>> import effect as fx
            >>> q: Queue[int] = Queue("unbounded")
            >>> fx.run_sync(q.offer(1).and_then(q.size()))
            1
        """

        def body(fiber: Fiber[Any, Any]) -> Effect[int, Never, Never]:
            if self._shutdown_by is not None:
                return _FailCause(Interrupt(fiber.id))
            return _Succeed(self._size())

        return _WithFiber(body)

    def size_nowait(self) -> int:
        """`size()` as a plain call, for code outside fibers (0 after shutdown).

        Examples:
            >>> q: Queue[int] = Queue("unbounded")
            >>> q.offer_nowait(5), q.size_nowait()
            (True, 1)
        """
        return self._size()

    def is_full(self) -> Effect[bool, Never, Never]:
        """True if `size()` has reached the capacity (never for an unbounded queue).

        Examples:
            >>> import effect as fx
            >>> q: Queue[int] = Queue("bounded", 1)
            >>> fx.run_sync(q.offer(1).and_then(q.is_full()))
            True
        """
        cap = self._capacity
        return self.size().map(lambda n: cap is not None and n >= cap)

    def is_empty(self) -> Effect[bool, Never, Never]:
        """True if `size()` is 0 or less.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Queue[int]("unbounded").is_empty())
            True
        """
        return self.size().map(lambda n: n <= 0)

    # -- shutdown ------------------------------------------------------------------------

    def shutdown(self) -> Effect[None, Never, Never]:
        """Shut the queue down: the buffered items are dropped, every waiting taker and
        offerer is interrupted (cause `Interrupt(id of the calling fiber)`), and every
        later `offer`, `take`, `poll`, `size`... interrupts its caller. A second
        shutdown does nothing. It is one synchronous step, so it cannot be
        interrupted halfway.

        Examples:
            >>> import effect as fx
            >>> q: Queue[int] = Queue("unbounded")
            >>> fx.run_sync(q.shutdown().and_then(q.is_shutdown()))
            True
        """
        return _WithFiber(self._shutdown_body)

    def await_shutdown(self) -> Effect[None, Never, Never]:
        """Wait until the queue is shut down (at once if it is). Interruptible.

        Examples:
            >>> import effect as fx
            >>> q: Queue[int] = Queue("unbounded")
            >>> fx.run_sync(q.shutdown().and_then(q.await_shutdown()))
        """
        return _Async(self._register_shutdown_waiter)

    def is_shutdown(self) -> Effect[bool, Never, Never]:
        """True once `shutdown` has run. Never interrupts.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Queue[int]("unbounded").is_shutdown())
            False
        """
        return _Sync(lambda: self._shutdown_by is not None)

    def __repr__(self) -> str:
        cap = "" if self._capacity is None else f" {len(self._buffer)}/{self._capacity}"
        state = " shut down" if self._shutdown_by is not None else ""
        return f"<Queue {self._strategy}{cap}{state}>"

    # -- internals: synchronous operations -----------------------------------------------

    def _size(self) -> int:
        if self._shutdown_by is not None:
            return 0
        waiting_takers = len(self._takers) + self._woken_takers
        return len(self._buffer) - waiting_takers + self._surplus

    def _room(self) -> int:
        """Free slots not promised to an offerer that was woken but has not run."""
        cap = self._capacity
        assert cap is not None
        return cap - len(self._buffer) - self._woken_offerers

    def _offer_now(self, item: A) -> bool:
        buffer = self._buffer
        cap = self._capacity
        if cap is None or len(buffer) + self._woken_offerers < cap:
            buffer.append(item)
        elif self._strategy == "sliding":
            buffer.popleft()
            buffer.append(item)
        else:
            return False
        if self._takers:
            self._wake_takers()
        return True

    def _wake_takers(self) -> None:
        # Wake no more takers than there are items, so none is woken for nothing.
        takers = self._takers
        while takers and len(self._buffer) > self._woken_takers:
            waiter = takers.popleft()
            waiter.queued = False
            waiter.woken = True
            self._woken_takers += 1
            assert waiter.resume is not None
            waiter.resume(_VOID)

    def _wake_offerers(self) -> None:
        offerers = self._offerers
        while offerers and self._room() > 0:
            waiter = offerers.popleft()
            waiter.queued = False
            waiter.woken = True
            self._woken_offerers += 1
            assert waiter.resume is not None
            waiter.resume(_VOID)

    # -- internals: effect bodies ----------------------------------------------------
    # Each body runs inside `_WithFiber`, which (unlike `suspend`) hands the effect it
    # returns straight to the fiber with no scheduling point: a value taken out of the
    # buffer here reaches the caller even if an interrupt is about to arrive.

    def _offer_body(self, item: A, fiber: Fiber[Any, Any]) -> Effect[bool, Never, Never]:
        if self._shutdown_by is not None:
            return _FailCause(Interrupt(fiber.id))
        if self._offer_now(item):
            return _TRUE
        if self._strategy != "bounded":
            return _FALSE
        return _Mask(functools.partial(self._offer_wait, _Waiter([item])))

    def _offer_all_body(self, fiber: Fiber[Any, Any], items: list[A]) -> Effect[bool, Never, Never]:
        if self._shutdown_by is not None:
            return _FailCause(Interrupt(fiber.id))
        added_all = True
        for pos, item in enumerate(items):
            if self._offer_now(item):
                continue
            if self._strategy != "bounded":
                added_all = False
                continue
            waiter = _Waiter(items)
            waiter.pos = pos
            return _Mask(functools.partial(self._offer_wait, waiter))
        return _TRUE if added_all else _FALSE

    def _offer_wait(self, waiter: _Waiter, restore: Restore) -> Effect[bool, Never, Never]:
        # Runs uninterruptibly (inside a mask), with no scheduling point outside the
        # restored `_Async`: either the items are added in `on_success` and True
        # reaches the caller, or the wait fails and nothing more is added.
        items = waiter.items
        assert items is not None

        def register(fiber: Fiber[Any, Any], resume: Resume) -> Canceler | None:
            if self._shutdown_by is not None:
                resume(_FailCause(Interrupt(self._shutdown_by)))
                return None
            waiter.resume = resume
            waiter.queued = True
            self._surplus += len(items) - waiter.pos
            if waiter.front:
                self._offerers.appendleft(waiter)
            else:
                self._offerers.append(waiter)
            self._wake_offerers()
            return lambda: self._forget_offerer(waiter)

        def on_failure(cause: Cause[Any]) -> Effect[bool, Never, Never]:
            self._forget_offerer(waiter)
            return _FailCause(cause)

        def on_success(_: object) -> Effect[bool, Never, Never]:
            self._forget_offerer(waiter, pass_on=False)
            if self._shutdown_by is not None:
                return _FailCause(Interrupt(self._shutdown_by))
            room = self._room()
            if room > 0:
                end = min(len(items), waiter.pos + room)
                self._buffer.extend(items[waiter.pos : end])
                waiter.pos = end
                if self._takers:
                    self._wake_takers()
                if end == len(items):
                    return _TRUE
            waiter.front = True
            return _Fold(restore(_Async(register)), on_failure, on_success)

        return _Fold(restore(_Async(register)), on_failure, on_success)

    def _forget_offerer(self, waiter: _Waiter, pass_on: bool = True) -> None:
        items = waiter.items
        assert items is not None
        if waiter.queued:
            waiter.queued = False
            self._surplus -= len(items) - waiter.pos
            self._offerers.remove(waiter)
        elif waiter.woken:
            waiter.woken = False
            self._woken_offerers -= 1
            self._surplus -= len(items) - waiter.pos
            if pass_on:
                self._wake_offerers()

    def _take_body(self, fiber: Fiber[Any, Any]) -> Effect[A, Never, Never]:
        if self._shutdown_by is not None:
            return _FailCause(Interrupt(fiber.id))
        if len(self._buffer) > self._woken_takers:
            return self._pop()
        return _Mask(self._take_wait)

    def _pop(self) -> Effect[A, Never, Never]:
        item = self._buffer.popleft()
        if self._offerers:
            self._wake_offerers()
        return _Succeed(item)

    def _take_wait(self, restore: Restore) -> Effect[A, Never, Never]:
        # Uninterruptible except for the restored `_Async`; the item is removed in
        # `on_success`, which hands it on without a scheduling point.
        waiter = _Waiter()

        def on_success(_: object) -> Effect[A, Never, Never]:
            self._forget_taker(waiter, pass_on=False)
            if self._shutdown_by is not None:
                return _FailCause(Interrupt(self._shutdown_by))
            if len(self._buffer) > self._woken_takers:
                return self._pop()
            waiter.front = True
            return self._taker_wait(waiter, restore, on_success, None)

        return self._taker_wait(waiter, restore, on_success, None)

    def _taker_wait(
        self,
        waiter: _Waiter,
        restore: Restore,
        on_success: Callable[[object], Effect[Any, Never, Never]],
        put_back: list[A] | None,
    ) -> Effect[Any, Never, Never]:
        def register(fiber: Fiber[Any, Any], resume: Resume) -> Canceler | None:
            if self._shutdown_by is not None:
                resume(_FailCause(Interrupt(self._shutdown_by)))
                return None
            waiter.resume = resume
            waiter.queued = True
            if waiter.front:
                self._takers.appendleft(waiter)
            else:
                self._takers.append(waiter)
            self._wake_takers()
            return lambda: self._forget_taker(waiter)

        def on_failure(cause: Cause[Any]) -> Effect[Any, Never, Never]:
            if put_back and self._shutdown_by is None:
                self._buffer.extendleft(reversed(put_back))
                put_back.clear()
            self._forget_taker(waiter)
            return _FailCause(cause)

        return _Fold(restore(_Async(register)), on_failure, on_success)

    def _forget_taker(self, waiter: _Waiter, pass_on: bool = True) -> None:
        if waiter.queued:
            waiter.queued = False
            self._takers.remove(waiter)
        elif waiter.woken:
            waiter.woken = False
            self._woken_takers -= 1
        if pass_on and self._takers:
            self._wake_takers()

    def _take_up_to_body(self, fiber: Fiber[Any, Any], n: int) -> Effect[list[A], Never, Never]:
        if self._shutdown_by is not None:
            return _FailCause(Interrupt(fiber.id))
        return _Succeed(self._drain(n))

    def _drain(self, n: int) -> list[A]:
        """Remove up to `n` items (all of them if `n` is negative)."""
        buffer = self._buffer
        if n < 0 or n >= len(buffer):
            taken = list(buffer)
            buffer.clear()
        else:
            taken = [buffer.popleft() for _ in range(n)]
        if taken and self._offerers:
            self._wake_offerers()
        return taken

    def _take_between_body(
        self, fiber: Fiber[Any, Any], low: int, high: int
    ) -> Effect[list[A], Never, Never]:
        if self._shutdown_by is not None:
            return _FailCause(Interrupt(fiber.id))
        taken = self._drain(high)
        if len(taken) >= low:
            return _Succeed(taken)

        def body(restore: Restore) -> Effect[list[A], Never, Never]:
            waiter = _Waiter()

            def on_success(_: object) -> Effect[list[A], Never, Never]:
                self._forget_taker(waiter, pass_on=False)
                if self._shutdown_by is not None:
                    return _FailCause(Interrupt(self._shutdown_by))
                taken.extend(self._drain(high - len(taken)))
                if len(taken) >= low:
                    return _Succeed(taken)
                waiter.front = True
                return self._taker_wait(waiter, restore, on_success, taken)

            return self._taker_wait(waiter, restore, on_success, taken)

        return _Mask(body)

    def _shutdown_body(self, fiber: Fiber[Any, Any]) -> Effect[None, Never, Never]:
        if self._shutdown_by is not None:
            return _VOID
        self._shutdown_by = fiber.id
        self._buffer.clear()
        interrupted = _FailCause(Interrupt(fiber.id))
        waiters = [*self._takers, *self._offerers]
        self._takers.clear()
        self._offerers.clear()
        self._surplus = 0
        for waiter in waiters:
            waiter.queued = False
            assert waiter.resume is not None
            waiter.resume(interrupted)
        shutdown_waiters, self._shutdown_waiters = self._shutdown_waiters, {}
        for resume in shutdown_waiters:
            resume(_VOID)
        return _VOID

    def _register_shutdown_waiter(self, fiber: Fiber[Any, Any], resume: Resume) -> Canceler | None:
        if self._shutdown_by is not None:
            resume(_VOID)
            return None
        waiters = self._shutdown_waiters
        waiters[resume] = None
        return lambda: waiters.pop(resume, None)


def _check_capacity(capacity: object) -> None:
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        raise TypeError(f"capacity must be an int, got capacity={capacity!r}")
    if capacity <= 0:
        raise ValueError(f"capacity must be > 0, got capacity={capacity}")


def _check_nonnegative(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {name}={value!r}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {name}={value}")
