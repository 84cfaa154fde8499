"""A deliberately naive HTTP batch tracker, kept to teach one failure. Do not use it.

It reproduces the bug that lost every event in a production engine: its close
takes what is left in the *queue*, sends that, and then interrupts the consumer. But
the consumer moves events from the queue into a local batch while it waits to fill
it, so at close the queue is usually empty and the held batch dies with the
consumer. Provided to each short run as a scoped layer, it loses nearly everything;
the tests use it as a canary that proves they can catch the bug, and notebook 03
shows it next to `tracker.http`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Never

import httpx

import effect as fx
from tracker.events import Event
from tracker.service import EventTracker, TrackerService, TrackerStats

__all__ = ["naive_http"]


class _NaiveTracker:
    def __init__(self, url: str, client: httpx.AsyncClient, max_wait: float) -> None:
        self.url = url
        self._client = client
        self._max_wait = max_wait
        self._queue: deque[Event] = deque()
        self._wakeup: Callable[[fx.Effect[None, Never, Never]], None] | None = None
        self.emitted = 0
        self.delivered = 0

    def emit(self, event: Event) -> fx.Effect[None, Never, Never]:
        def put() -> None:
            self.emitted += 1
            self._queue.append(event)
            wake, self._wakeup = self._wakeup, None
            if wake is not None:
                wake(fx.void)

        return fx.sync(put)

    def flush(self) -> fx.Effect[None, Never, Never]:
        return fx.void  # the naive tracker has no barrier: that is part of the lesson

    def pending(self) -> fx.Effect[int, Never, Never]:
        return fx.sync(lambda: len(self._queue))

    def stats(self) -> fx.Effect[TrackerStats, Never, Never]:
        return fx.sync(lambda: TrackerStats(emitted=self.emitted, delivered=self.delivered))

    def _wait_for_item(self) -> fx.Effect[None, Never, Never]:
        def register(resume: Callable[[fx.Effect[None, Never, Never]], None]) -> None:
            if self._queue:
                resume(fx.void)
            else:
                self._wakeup = resume

        return fx.async_(register)

    def _post(self, batch: list[Event]) -> fx.Effect[None, Never, Never]:
        async def post() -> None:
            response = await self._client.post(self.url, json=[e.to_dict() for e in batch])
            if response.is_success:
                self.delivered += len(batch)

        return fx.promise(post).catch_cause(lambda _: fx.void)

    def consume(self) -> fx.Effect[None, Never, Never]:
        @fx.gen
        def loop() -> fx.Gen[None, Never, Never]:
            while True:
                yield from self._wait_for_item()
                batch = list(self._queue)  # the events now live only in this local
                self._queue.clear()
                yield from fx.sleep(self._max_wait)  # let the batch fill up
                batch.extend(self._queue)
                self._queue.clear()
                yield from self._post(batch)

        return loop

    def close(self) -> fx.Effect[None, Never, Never]:
        left = list(self._queue)
        self._queue.clear()
        return self._post(left) if left else fx.void


def naive_http(url: str, *, max_wait: float = 1.0) -> fx.Layer[EventTracker, Never, Never]:
    """The naive tracker as a scoped layer. For teaching and for canary tests only."""

    @fx.gen
    def build() -> fx.Gen[TrackerService, Never, fx.Scope]:
        client = yield from fx.acquire_release(
            fx.sync(httpx.AsyncClient), lambda c, _: fx.promise(c.aclose)
        )
        service = _NaiveTracker(url, client, max_wait)
        yield from service.consume().fork_scoped()
        yield from fx.add_finalizer(lambda _: service.close())
        return service

    return fx.Layer.scoped(EventTracker, build)
