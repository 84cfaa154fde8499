"""The `Clock` service: where `fx.sleep`, timeouts and schedule delays get their time.

The default clock is the event loop's. Replace it with a layer or
`provide_service(Clock, ...)`, e.g. with `effect.testing.TestClock`, to make time
deterministic.
"""

from __future__ import annotations

import time
from typing import Never, Protocol

from effect._context import Tag
from effect._effect import Effect, _Sleep, _Succeed, _WithFiber, _YieldNow

__all__ = ["Clock", "ClockService", "RealClock", "now", "sleep"]


class ClockService(Protocol):
    """What a clock provides."""

    def sleep(self, seconds: float) -> Effect[None, Never, Never]:
        """An effect that waits `seconds` (already validated: finite, >= 0)."""
        ...

    def now(self) -> float:
        """The current time, in seconds since the Unix epoch."""
        ...


class Clock(Tag["Clock", ClockService]):
    """The tag of the clock service. Always available: the real clock is the default."""


class RealClock:
    """Wall time for `now`, the event loop's timers for `sleep`."""

    def sleep(self, seconds: float) -> Effect[None, Never, Never]:
        return _Sleep(seconds) if seconds > 0 else _YIELD

    def now(self) -> float:
        return time.time()


REAL_CLOCK = RealClock()
_YIELD: Effect[None, Never, Never] = _YieldNow()


def sleep(seconds: float) -> Effect[None, Never, Never]:
    """Wait `seconds` through the current `Clock`. Interruptible.

    Examples:
        >>> import anyio, effect as fx
        >>> anyio.run(fx.run, fx.sleep(0.01).as_("woke"))
        'woke'
    """
    from effect._concurrency import _check_seconds

    _check_seconds(seconds, "sleep")
    return _WithFiber(lambda f: _clock_of(f).sleep(seconds))


def now() -> Effect[float, Never, Never]:
    """The current time from the current `Clock`, in seconds since the epoch."""
    return _WithFiber(lambda f: _Succeed(_clock_of(f).now()))


def _clock_of(fiber: object) -> ClockService:
    clock: ClockService | None = fiber._context.get_option(Clock)  # type: ignore[attr-defined]
    return clock if clock is not None else REAL_CLOCK
