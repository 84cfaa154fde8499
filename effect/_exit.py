"""Exit and Cause: how an effect ended, and the full story of why it failed.

An `Exit` is `Success(value)` or `Failure(cause)`. A `Cause` is a tree that keeps
every failure an effect met: typed failures (`Fail`), defects (`Die`),
interruptions (`Interrupt`), and how they were combined: one after another
(`Sequential`, e.g. a finalizer failing after the body failed) or at the same time
(`Parallel`, e.g. two racing fibers failing).

Causes compare semantically, as in Effect-TS: `Sequential` is associative,
`Parallel` is associative and commutative, and `Empty` is an identity for both.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Iterator
from typing import Any, Generic, Never, TypeVar

import attrs
from typing_extensions import TypeAliasType

__all__ = [
    "Cause",
    "Die",
    "Empty",
    "Exit",
    "Fail",
    "Failure",
    "InterruptedException",
    "Interrupt",
    "Parallel",
    "Sequential",
    "Success",
]

A = TypeVar("A", covariant=True)
E = TypeVar("E", covariant=True)
B = TypeVar("B")
E2 = TypeVar("E2")


class InterruptedException(Exception):
    """What `Cause.squash` gives for a cause made only of interruptions."""


class Cause(Generic[E]):
    """Why an effect failed. One of `Empty`, `Fail`, `Die`, `Interrupt`, `Sequential`,
    `Parallel`.

    Examples:
        >>> c = Sequential(Fail("a"), Die(ValueError("b")))
        >>> c.failures(), [str(d) for d in c.defects()]
        (['a'], ['b'])
    """

    __slots__ = ()

    # -- queries -----------------------------------------------------------------

    def leaves(self) -> Iterator[Fail[E] | Die | Interrupt]:
        """Every `Fail`, `Die` and `Interrupt` leaf, left to right."""
        stack: list[Cause[E]] = [self]
        while stack:
            c = stack.pop()
            if isinstance(c, Sequential | Parallel):
                stack.append(c.right)
                stack.append(c.left)
            elif isinstance(c, Fail | Die | Interrupt):
                yield c

    def failures(self) -> list[E]:
        """The typed errors of every `Fail` leaf, left to right."""
        return [leaf.error for leaf in self.leaves() if isinstance(leaf, Fail)]

    def defects(self) -> list[BaseException]:
        """The exceptions of every `Die` leaf, left to right."""
        return [leaf.defect for leaf in self.leaves() if isinstance(leaf, Die)]

    def interruptors(self) -> frozenset[int]:
        """The ids of the fibers that interrupted, from every `Interrupt` leaf."""
        return frozenset(leaf.fiber_id for leaf in self.leaves() if isinstance(leaf, Interrupt))

    def size(self) -> int:
        """How many `Fail`, `Die` and `Interrupt` leaves there are."""
        return sum(1 for _ in self.leaves())

    def is_failure(self) -> bool:
        """True if the cause holds at least one typed failure."""
        return any(isinstance(leaf, Fail) for leaf in self.leaves())

    def is_die(self) -> bool:
        """True if the cause holds at least one defect."""
        return any(isinstance(leaf, Die) for leaf in self.leaves())

    def is_interrupted(self) -> bool:
        """True if the cause holds at least one interruption (not necessarily only)."""
        return any(isinstance(leaf, Interrupt) for leaf in self.leaves())

    def is_interrupted_only(self) -> bool:
        """True if the cause holds no `Fail` and no `Die` (so `Empty` counts)."""
        return not any(isinstance(leaf, Fail | Die) for leaf in self.leaves())

    def is_empty(self) -> bool:
        """True if the cause holds no leaf at all."""
        return next(self.leaves(), None) is None

    def squash(self) -> object:
        """The most important error: the first failure, else the first defect, else an
        `InterruptedException` naming the interrupting fibers."""
        failures = self.failures()
        if failures:
            return failures[0]
        defects = self.defects()
        if defects:
            return defects[0]
        ids = ", ".join(f"#{i}" for i in sorted(self.interruptors()))
        return InterruptedException(f"Interrupted by fibers: {ids}")

    def to_exception(self) -> BaseException:
        """`squash()` as something that can be raised: a non-exception failure is wrapped
        in a `FailureError` that keeps the value in `.error`."""
        squashed = self.squash()
        if isinstance(squashed, BaseException):
            return squashed
        return FailureError(squashed)

    # -- transformations ---------------------------------------------------------

    def map(self, f: Callable[[E], B]) -> Cause[B]:
        """Apply `f` to every typed failure, keeping the shape."""
        if isinstance(self, Fail):
            return Fail(f(self.error))
        if isinstance(self, Sequential):
            return Sequential(self.left.map(f), self.right.map(f))
        if isinstance(self, Parallel):
            return Parallel(self.left.map(f), self.right.map(f))
        return self  # type: ignore[return-value]  # Empty, Die, Interrupt hold no E

    def strip_failures(self) -> Cause[Never]:
        """The same cause with every `Fail` leaf replaced by `Empty`."""
        if isinstance(self, Fail):
            return Empty()
        if isinstance(self, Sequential):
            return Sequential(self.left.strip_failures(), self.right.strip_failures())
        if isinstance(self, Parallel):
            return Parallel(self.left.strip_failures(), self.right.strip_failures())
        return self  # type: ignore[return-value]

    def failures_as_defects(self) -> Cause[Never]:
        """The same cause with every `Fail(e)` turned into `Die(e)` (non-exceptions wrapped
        in `FailureError`). Used when a handler must not see a cause mixing failures with
        defects (rule 18 of the semantics reference)."""
        if isinstance(self, Fail):
            err = self.error
            return Die(err if isinstance(err, BaseException) else FailureError(err))
        if isinstance(self, Sequential):
            return Sequential(self.left.failures_as_defects(), self.right.failures_as_defects())
        if isinstance(self, Parallel):
            return Parallel(self.left.failures_as_defects(), self.right.failures_as_defects())
        return self  # type: ignore[return-value]

    def then(self, other: Cause[E2]) -> Cause[E | E2]:
        """`Sequential(self, other)`, skipping empty sides (`Empty` is the identity)."""
        if self.is_empty_node():
            return other
        if other.is_empty_node():
            return self
        return Sequential(self, other)

    def both(self, other: Cause[E2]) -> Cause[E | E2]:
        """`Parallel(self, other)`, skipping empty sides."""
        if self.is_empty_node():
            return other
        if other.is_empty_node():
            return self
        return Parallel(self, other)

    def is_empty_node(self) -> bool:
        return isinstance(self, Empty)

    # -- rendering ---------------------------------------------------------------

    def pretty(self) -> str:
        """A readable rendering: one entry per failure and defect, defects with their
        Python traceback; `All fibers interrupted without errors.` for an
        interrupted-only cause."""
        if self.is_interrupted_only():
            return "All fibers interrupted without errors."
        parts: list[str] = []
        for leaf in self.leaves():
            if isinstance(leaf, Fail):
                parts.append(_render_error(leaf.error))
            elif isinstance(leaf, Die):
                header = _render_error(leaf.defect)
                if leaf.defect.__traceback__ is None:
                    parts.append(header)  # never raised: there is no traceback to show
                else:
                    tb = "".join(traceback.format_exception(leaf.defect)).rstrip()
                    parts.append(f"{header}\n{_indent(tb)}")
        return "\n".join(parts)

    def __str__(self) -> str:
        return self.pretty()

    # -- semantic equality --------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cause):
            return NotImplemented
        a, b = _flatten(self), _flatten(other)
        return len(a) == len(b) and all(_same_multiset(x, y) for x, y in zip(a, b, strict=True))

    def __hash__(self) -> int:
        return hash(tuple(len(s) for s in _flatten(self)))


class FailureError(Exception):
    """Wraps a typed failure that is not an exception, so it can be raised.

    The value is kept in `.error`."""

    def __init__(self, error: object) -> None:
        super().__init__(error)
        self.error = error

    def __str__(self) -> str:
        return _message(self.error)


@attrs.frozen(eq=False, repr=True)
class Empty(Cause[Never]):
    """No failure at all: the identity of `Sequential` and `Parallel`."""


@attrs.frozen(eq=False, repr=True)
class Fail(Cause[E]):
    """An expected, typed failure: `fx.fail(error)`."""

    error: E


@attrs.frozen(eq=False, repr=True)
class Die(Cause[Never]):
    """A defect: an exception nobody planned for (a bug, or `fx.die`)."""

    defect: BaseException


@attrs.frozen(eq=False, repr=True)
class Interrupt(Cause[Never]):
    """The fiber was interrupted by the fiber with id `fiber_id`."""

    fiber_id: int


@attrs.frozen(eq=False, repr=True)
class Sequential(Cause[E]):
    """`left` happened, then `right` (e.g. a finalizer failing after the body)."""

    left: Cause[E]
    right: Cause[E]


@attrs.frozen(eq=False, repr=True)
class Parallel(Cause[E]):
    """`left` and `right` happened concurrently (e.g. two raced fibers failing)."""

    left: Cause[E]
    right: Cause[E]


def _render_error(error: object) -> str:
    name = type(error).__name__ if isinstance(error, BaseException) else "Error"
    return f"{name}: {_message(error)}"


def _message(error: object) -> str:
    # Rule 9: the value itself if a string, else its `message`, else a user-defined
    # `__str__`, else its repr (Python's stand-in for Effect-TS's JSON rendering).
    if isinstance(error, str):
        return error
    if isinstance(error, BaseException):
        return str(error)
    message = getattr(error, "message", None)
    if isinstance(message, str):
        return message
    if type(error).__str__ is not object.__str__:
        return str(error)
    return repr(error)


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def _flatten(cause: Cause[Any]) -> list[list[Cause[Any]]]:
    """A cause as a list of parallel groups of leaves, the form equality compares.

    Sequential concatenates the lists, Parallel merges them position by position, and
    Empty is the empty list: that is exactly what makes the laws hold."""
    if isinstance(cause, Empty):
        return []
    if isinstance(cause, Fail | Die | Interrupt):
        return [[cause]]
    if isinstance(cause, Sequential):
        return _flatten(cause.left) + _flatten(cause.right)
    if isinstance(cause, Parallel):
        left, right = _flatten(cause.left), _flatten(cause.right)
        merged: list[list[Cause[Any]]] = []
        for i in range(max(len(left), len(right))):
            group: list[Cause[Any]] = []
            if i < len(left):
                group.extend(left[i])
            if i < len(right):
                group.extend(right[i])
            merged.append(group)
        return merged
    raise TypeError(f"not a Cause: {cause!r}")


def _same_leaf(a: Cause[Any], b: Cause[Any]) -> bool:
    if isinstance(a, Fail) and isinstance(b, Fail):
        return bool(a.error == b.error)
    if isinstance(a, Die) and isinstance(b, Die):
        return a.defect is b.defect or bool(a.defect == b.defect)
    if isinstance(a, Interrupt) and isinstance(b, Interrupt):
        return a.fiber_id == b.fiber_id
    return False


def _same_multiset(xs: list[Cause[Any]], ys: list[Cause[Any]]) -> bool:
    if len(xs) != len(ys):
        return False
    remaining = list(ys)
    for x in xs:
        for i, y in enumerate(remaining):
            if _same_leaf(x, y):
                del remaining[i]
                break
        else:
            return False
    return True


@attrs.frozen(repr=True)
class Success(Generic[A]):
    """The effect succeeded with `value`. One of the two cases of `Exit`."""

    value: A

    def is_success(self) -> bool:
        return True

    def is_failure(self) -> bool:
        return False

    def is_interrupted(self) -> bool:
        return False


@attrs.frozen(repr=True)
class Failure(Generic[E]):
    """The effect failed; `cause` says how. One of the two cases of `Exit`."""

    cause: Cause[E]

    def is_success(self) -> bool:
        return False

    def is_failure(self) -> bool:
        return True

    def is_interrupted(self) -> bool:
        """True if the cause contains an interruption anywhere (not only)."""
        return self.cause.is_interrupted()


Exit = TypeAliasType("Exit", Success[A] | Failure[E], type_params=(A, E))
"""How an effect ended: `Success(value)` or `Failure(cause)`.

Examples:
    >>> import effect as fx
    >>> match fx.run_sync_exit(fx.fail("boom")):
    ...     case fx.Failure(cause):
    ...         print(cause.failures())
    ['boom']
"""
