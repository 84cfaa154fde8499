"""The shared shape of trackers that deliver synchronously, inside `emit`."""

from __future__ import annotations

from typing import Never

import effect as fx
from tracker.events import Event
from tracker.service import TrackerStats


class SyncTracker:
    """A tracker whose `emit` delivers at once (`_deliver`), so `flush` has nothing to
    wait for. A `_deliver` that raises drops the event (counted under its reason)
    instead of failing the caller: `emit` never fails."""

    drop_reason = "delivery_error"

    def __init__(self) -> None:
        self._emitted = 0
        self._delivered = 0
        self._dropped: dict[str, int] = {}

    def _deliver(self, event: Event) -> None:
        raise NotImplementedError  # pragma: no cover - subclasses implement it

    def emit_nowait(self, event: Event) -> None:
        """Deliver `event` now, from plain (non-effect) code."""
        self._emitted += 1
        try:
            self._deliver(event)
        except Exception:
            self._dropped[self.drop_reason] = self._dropped.get(self.drop_reason, 0) + 1
        else:
            self._delivered += 1

    def emit(self, event: Event) -> fx.Effect[None, Never, Never]:
        return fx.sync(lambda: self.emit_nowait(event))

    def flush(self) -> fx.Effect[None, Never, Never]:
        return fx.void

    def pending(self) -> fx.Effect[int, Never, Never]:
        return fx.succeed(0)

    def stats_nowait(self) -> TrackerStats:
        return TrackerStats(
            emitted=self._emitted, delivered=self._delivered, dropped=dict(self._dropped)
        )

    def stats(self) -> fx.Effect[TrackerStats, Never, Never]:
        return fx.sync(self.stats_nowait)
