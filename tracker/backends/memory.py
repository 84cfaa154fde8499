"""Trackers that keep events in memory (for tests) or nowhere at all."""

from __future__ import annotations

from tracker.backends._sync import SyncTracker
from tracker.events import Event


class InMemoryTracker(SyncTracker):
    """Keeps every emitted event, in order, in `events`."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[Event] = []

    def _deliver(self, event: Event) -> None:
        self.events.append(event)

    def of_type(self, type_: str) -> list[Event]:
        """The kept events whose `type` is `type_`, in order."""
        return [e for e in self.events if e.type == type_]


class NoopTracker(SyncTracker):
    """Accepts every event and keeps none (they still count as delivered)."""

    def _deliver(self, event: Event) -> None:
        return None
