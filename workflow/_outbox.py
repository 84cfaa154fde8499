"""The outbox sender: events committed to storage, delivered through the tracker.

Every event is written to the outbox in the transaction of the state change it
describes; this sender reads the rows past its cursor, emits them through the
engine's tracker, flushes it, and marks the rows delivered. Delivery is at least
once: a crash between the flush and the mark sends those events again after the
restart, with the same `event_id`s.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Never

import effect as fx
import tracker as tracker_
from tracker.events import Event, parse_event_json
from workflow._signal import Signal
from workflow.storage import Storage

__all__ = ["OutboxSender"]

# The engine's logger: the sender was part of the engine, and logging filters name it.
_log = logging.getLogger("workflow.engine")

# Rows read at a time, and sent ids kept unmarked at most.
_BATCH = 1000
# Committed events kept for the sender at most (see `note_committed`).
_CACHE = 10_000


class OutboxSender:
    """The outbox sender of one engine. `run` is its fiber; `note_committed` and
    `wake` are how the rest of the engine tells it there is something to send."""

    def __init__(self, storage: Storage, linger: float = 0.0) -> None:
        self._storage = storage
        self._signal = Signal()
        # On the real clock whatever the engine's: a test clock must not hold events.
        self._linger = fx.clock.RealClock().sleep(linger) if linger > 0 else None
        # The last row id sent, the ids sent but not yet marked delivered, and the
        # events of recent commits by (run id, seq).
        self._sent_up_to = 0
        self._unmarked: list[int] = []
        self._committed: dict[tuple[str, int], Event] = {}

    def note_committed(self, run_id: str, events: Sequence[Event]) -> None:
        """Events a run just committed: send them soon, and keep them, so that the
        sender need not parse back the JSON it reads from the outbox."""
        if len(self._committed) > _CACHE:
            # Rows another engine delivered never come back to this one: forget all.
            self._committed.clear()
        for event in events:
            self._committed[(run_id, event.seq)] = event
        self._signal.notify()

    def wake(self) -> None:
        """Look at the outbox soon, for rows written by other paths (another
        process, a previous one): the engine's scheduler calls it every round."""
        self._signal.notify()

    def run(self) -> fx.Effect[None, Never, tracker_.EventTracker]:
        """The sender's fiber: forever, send what is new, wait to be woken, and
        linger. It has no poll timer of its own: the scheduler's `wake`, every poll
        interval at most, stands for one."""

        @fx.gen
        def loop() -> fx.Gen[None, Never, tracker_.EventTracker]:
            while True:
                yield from self.deliver(until_empty=False)
                yield from self._signal.wait()
                if self._linger is not None:
                    yield from self._linger

        return loop

    def deliver(self, *, until_empty: bool) -> fx.Effect[None, Never, tracker_.EventTracker]:
        """Send undelivered outbox rows through the tracker, past the cursor of rows
        already sent: one batch of up to 1,000, or all of them if `until_empty` (at
        shutdown). Rows sent are marked delivered in bulk: when 1,000 are waiting,
        when a round finds nothing new (the engine is idle, or at the scheduler's
        poll), and at shutdown. A crash before the mark means those events are
        delivered again, which at-least-once delivery allows."""

        @fx.gen
        def deliver() -> fx.Gen[None, Never, tracker_.EventTracker]:
            t = yield from tracker_.EventTracker
            while True:
                try:
                    rows = self._storage.undelivered_events(_BATCH, after_id=self._sent_up_to)
                except Exception as exc:
                    _log.warning("could not read the outbox: %s", exc)
                    return
                if rows:
                    for row in rows:
                        event = self._committed.pop((row.run_id, row.seq), None)
                        if event is None:
                            try:
                                event = parse_event_json(row.payload_json)
                            except ValueError as exc:
                                _log.error(
                                    "outbox row %d is not an event, skipped: %s", row.id, exc
                                )
                                continue
                        yield from t.emit(event)
                    yield from t.flush()
                    self._sent_up_to = rows[-1].id
                    self._unmarked.extend(row.id for row in rows)
                if not rows or len(self._unmarked) >= _BATCH:
                    self._mark_sent()
                if not rows or (not until_empty and len(rows) < _BATCH):
                    return

        return deliver

    def _mark_sent(self) -> None:
        if not self._unmarked:
            return
        try:
            self._storage.mark_delivered(self._unmarked)
        except Exception as exc:
            # Kept for the next try; only a crash before it sends them again.
            _log.warning("could not mark events delivered (will try again): %s", exc)
            return
        self._unmarked = []
