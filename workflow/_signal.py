"""`Signal`: how the engine's background fibers are woken."""

from __future__ import annotations

from typing import Never

import effect as fx

__all__ = ["Signal"]


class Signal:
    """Wakes one waiting fiber, and remembers a wake-up that came while nobody
    waited: a sliding queue of one, so many notifications before a wait wake it
    once."""

    def __init__(self) -> None:
        self._queue: fx.Queue[None] = fx.Queue("sliding", 1)

    def notify(self) -> None:
        """Wake the waiter, or the next one to wait. Never blocks."""
        self._queue.offer_nowait(None)

    def wait(self, timeout: float | None = None) -> fx.Effect[None, Never, Never]:
        """Wait until notified, or `timeout` seconds."""
        notified = self._queue.take().as_void
        return notified if timeout is None else notified.race(fx.sleep(timeout))
