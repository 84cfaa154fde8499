"""`Ref`: a mutable cell whose reads and writes are effects.

Every operation is one synchronous step of the fiber that runs it, and the runtime
runs one fiber step at a time on one thread, so each call is atomic: no other fiber
can observe or change the value in the middle of an `update` or a `modify`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, Never, TypeVar

from effect._effect import Effect, _Sync

__all__ = ["Ref"]

A = TypeVar("A")
B = TypeVar("B")


class Ref(Generic[A]):
    """A mutable reference to a value of type `A`, read and written through effects.

    Examples:
        >>> import effect as fx
        >>> from effect.ref import Ref
        >>> @fx.gen
        ... def counter() -> fx.Gen[int, fx.Never, fx.Never]:
        ...     ref = yield from Ref.make(0)
        ...     yield from ref.update(lambda n: n + 1)
        ...     return (yield from ref.update_and_get(lambda n: n * 10))
        >>> fx.run_sync(counter)
        10
    """

    __slots__ = ("_value",)

    def __init__(self, value: A) -> None:
        """A ref holding `value` at once. Prefer `Ref.make` inside effects, so that
        each run of the effect gets its own ref."""
        self._value = value

    @staticmethod
    def make(value: B) -> Effect[Ref[B], Never, Never]:
        """An effect that creates a new ref holding `value`, each time it runs.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Ref.make("a").flat_map(lambda r: r.get()))
            'a'
        """
        return _Sync(lambda: Ref(value))

    def get(self) -> Effect[A, Never, Never]:
        """The current value.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Ref(3).get())
            3
        """
        return _Sync(self._get)

    def set(self, value: A) -> Effect[None, Never, Never]:
        """Replace the value with `value`.

        Examples:
            >>> import effect as fx
            >>> ref = Ref(1)
            >>> fx.run_sync(ref.set(2).and_then(ref.get()))
            2
        """

        def write() -> None:
            self._value = value

        return _Sync(write)

    def update(self, f: Callable[[A], A]) -> Effect[None, Never, Never]:
        """Replace the value `v` with `f(v)`, atomically. If `f` raises, the value is
        unchanged and the effect dies with that exception (a defect).

        Examples:
            >>> import effect as fx
            >>> ref = Ref(1)
            >>> fx.run_sync(ref.update(lambda n: n + 1).and_then(ref.get()))
            2
        """

        def write() -> None:
            self._value = f(self._value)

        return _Sync(write)

    def modify(self, f: Callable[[A], tuple[B, A]]) -> Effect[B, Never, Never]:
        """Call `f(v)`, which returns `(result, new_value)`; store `new_value` and
        succeed with `result`, atomically. If `f` raises, nothing changes and the
        effect dies with that exception.

        Examples:
            >>> import effect as fx
            >>> ref = Ref(10)
            >>> fx.run_sync(ref.modify(lambda n: (f"was {n}", n - 1)).zip(ref.get()))
            ('was 10', 9)
        """

        def run() -> B:
            result, self._value = f(self._value)
            return result

        return _Sync(run)

    def get_and_set(self, value: A) -> Effect[A, Never, Never]:
        """Store `value` and succeed with the value it replaced.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Ref("old").get_and_set("new"))
            'old'
        """
        return self.modify(lambda old: (old, value))

    def get_and_update(self, f: Callable[[A], A]) -> Effect[A, Never, Never]:
        """Replace `v` with `f(v)` and succeed with the old value `v`.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Ref(5).get_and_update(lambda n: n * 2))
            5
        """

        def run() -> A:
            old = self._value
            self._value = f(old)
            return old

        return _Sync(run)

    def update_and_get(self, f: Callable[[A], A]) -> Effect[A, Never, Never]:
        """Replace `v` with `f(v)` and succeed with the new value.

        Examples:
            >>> import effect as fx
            >>> fx.run_sync(Ref(5).update_and_get(lambda n: n * 2))
            10
        """

        def run() -> A:
            self._value = new = f(self._value)
            return new

        return _Sync(run)

    def _get(self) -> A:
        return self._value

    def __repr__(self) -> str:
        return f"Ref({self._value!r})"
