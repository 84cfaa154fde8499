"""The `EventTracker` service: where workflow and step events go.

Code that emits events depends only on the `EventTracker` tag; a layer decides where
they end up (`tracker.noop()`, `tracker.in_memory()`, `tracker.jsonl(path)`,
`tracker.http(url)`).

The contract every backend keeps:

- `emit(event)` never awaits I/O and never fails: it hands the event over (or drops
  and counts it) and returns.
- `flush()` is a barrier: it returns when every event emitted before it has been
  delivered or reported failed.
- `stats()` tells what happened to every event: delivered, dropped (by reason),
  retried, in flight, pending.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Never, Protocol

import attrs

import effect as fx
from tracker.events import Event

__all__ = ["EventTracker", "TrackerService", "TrackerStats"]


@attrs.frozen
class TrackerStats:
    """A snapshot of what a tracker did with the events it was given.

    `emitted` = `delivered` + sum of `dropped` + `pending` + `in_flight` at any moment.
    """

    emitted: int = 0
    """Events handed to `emit`."""
    delivered: int = 0
    """Events acknowledged by the destination."""
    dropped: Mapping[str, int] = attrs.field(factory=dict)
    """Events given up on, by reason: `queue_full`, `rejected` (a 4xx other than 408
    and 429), `retries_exhausted`, `close_deadline`, `consumer_died`, `serialization`,
    `after_close` (emitted after the tracker closed)."""
    retried: int = 0
    """Batch send attempts that were retried."""
    in_flight: int = 0
    """Events in the batch being sent right now."""
    pending: int = 0
    """Events waiting in the queue."""

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


class TrackerService(Protocol):
    """What an event tracker provides. Every method returns an effect."""

    def emit(self, event: Event) -> fx.Effect[None, Never, Never]:
        """Hand `event` over for delivery. Never awaits I/O, never fails."""
        ...

    def flush(self) -> fx.Effect[None, Never, Never]:
        """Wait until every event emitted before this call is delivered or reported
        failed."""
        ...

    def pending(self) -> fx.Effect[int, Never, Never]:
        """How many emitted events are not yet delivered or given up on."""
        ...

    def stats(self) -> fx.Effect[TrackerStats, Never, Never]:
        """A snapshot of the tracker's counters."""
        ...


class EventTracker(fx.Tag["EventTracker", TrackerService]):
    """The tag of the event tracker service.

    Examples:
        >>> import effect as fx, tracker
        >>> from tracker.events import WorkflowStarted
        >>> @fx.gen
        ... def prog() -> fx.Gen[int, fx.Never, tracker.EventTracker]:
        ...     t = yield from tracker.EventTracker
        ...     yield from t.emit(WorkflowStarted(workflow_id="w1", workflow_name="demo"))
        ...     return (yield from t.pending())
        >>> fx.run_sync(prog.provide(tracker.in_memory()))
        0
    """
