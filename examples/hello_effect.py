"""Hello, effect: `fx.gen`, typed errors, recovering from them, and running.

Run it with `python examples/hello_effect.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Never

import anyio

import effect as fx


@dataclass(frozen=True)
class NotANumber:
    """A typed error: the input is not an integer."""

    text: str


@dataclass(frozen=True)
class Negative:
    """A typed error: the number is below zero."""

    value: int


def parse(text: str) -> fx.Effect[int, NotANumber, Never]:
    """Parse `text` as an int; a `ValueError` becomes the typed error `NotANumber`."""
    return fx.try_(lambda: int(text), catch=lambda _: NotANumber(text))


def check_positive(n: int) -> fx.Effect[int, Negative, Never]:
    return fx.fail(Negative(n)) if n < 0 else fx.succeed(n)


@fx.fn
def double(text: str) -> fx.Gen[int, NotANumber | Negative, Never]:
    """Each `yield from` runs an effect; the first failure ends the body."""
    n = yield from parse(text)
    n = yield from check_positive(n)
    return n * 2


def describe(text: str) -> fx.Effect[str, Never, Never]:
    """Handle every typed error, so the result can no longer fail (E is Never)."""

    def on_error(error: NotANumber | Negative) -> fx.Effect[str, Never, Never]:
        match error:
            case NotANumber(text=t):
                return fx.succeed(f"{t!r} is not a number")
            case Negative(value=v):
                return fx.succeed(f"{v} is negative")

    return double(text).map(lambda n: f"double of {text} is {n}").catch_all(on_error)


async def main_async() -> None:
    for text in ("21", "x", "-4"):
        print(await fx.run(describe(text)))

    # An unhandled typed failure is raised as FiberFailure, carrying the whole Cause.
    try:
        await fx.run(double("-1"))
    except fx.FiberFailure as failure:
        print(f"failed with {failure.cause.failures()}")

    # `exit()` turns the outcome into a value instead.
    outcome = await fx.run(double("oops").exit())
    print(f"exit: success={outcome.is_success()}")


def main() -> None:
    # Effects with no async step also run without an event loop.
    print(fx.run_sync(double("5")))
    anyio.run(main_async)


if __name__ == "__main__":
    main()
