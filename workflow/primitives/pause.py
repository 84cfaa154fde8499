"""Pausing a run durably: stop executing now, continue at `wake_at`.

A pause is how a long wait (a durable sleep, a long retry backoff) survives the
process: the run fails with the private `PauseSignal` defect, the engine records the
run as Paused with `wake_at` and releases it, and its scheduler starts the run again
when the time comes. Completed steps replay from history, so execution picks up
where it stopped. User code must not swallow defects (`catch_cause`) around a
primitive, or the pause is lost.
"""

from __future__ import annotations

from typing import Never

import effect as fx

__all__ = ["PauseSignal", "find_pause", "pause"]


class PauseSignal(Exception):
    """The run asked to pause until `wake_at` (a Unix timestamp)."""

    def __init__(self, wake_at: float, reason: str) -> None:
        super().__init__(f"pause until {wake_at} ({reason})")
        self.wake_at = wake_at
        self.reason = reason


def pause(wake_at: float, reason: str) -> fx.Effect[Never, Never, Never]:
    """Stop this execution of the run; the engine resumes it at `wake_at`."""
    return fx.die(PauseSignal(wake_at, reason))


def find_pause(cause: fx.Cause[object]) -> PauseSignal | None:
    """The pause request in `cause`, if the run stopped to pause."""
    for defect in cause.defects():
        if isinstance(defect, PauseSignal):
            return defect
    return None
