"""The HTTP batch tracker: a bounded queue, one consumer fiber, batches POSTed with
httpx, and a close that delivers everything emitted before it.

Why it is built this way (see `docs/tracker.md` for the full story): a tracker whose
close empties the *queue* and then interrupts its consumer loses the batch the
consumer already took. Here the batch being sent is shared state (`_batch`), not a
local of the consumer, and close does not interrupt the consumer: it tells it to
drain (send what is queued at once, no `max_wait`) and waits for it, up to a
deadline. Only past the deadline is the consumer interrupted, and then what is left
is counted and reported, never silently dropped.
"""

from __future__ import annotations

import email.utils
import gzip
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Never

import attrs
import httpx

import effect as fx
from tracker.events import Event
from tracker.service import TrackerStats

__all__ = ["DeliveryError", "HttpTracker", "RetryPolicy"]

_log = logging.getLogger("tracker.http")

# Status codes worth another try: the server may recover or asked us to slow down.
RETRYABLE_STATUS = frozenset({408, 429}) | frozenset(range(500, 600))


@attrs.frozen
class RetryPolicy:
    """How a failing batch is retried: exponential backoff with jitter.

    Attempt `n` (1-based) that fails waits `min(max_delay, base_delay * factor**(n-1))`,
    scaled by a random factor in `[1 - jitter, 1 + jitter]`, and never less than the
    server's `Retry-After`. After `max_attempts` attempts the batch is dropped and
    reported."""

    max_attempts: int = 5
    base_delay: float = 0.1
    factor: float = 2.0
    max_delay: float = 5.0
    jitter: float = 0.2

    def __attrs_post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        for name in ("base_delay", "max_delay", "jitter"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.factor < 1:
            raise ValueError(f"factor must be at least 1, got {self.factor}")
        if self.jitter > 1:
            raise ValueError(f"jitter must be at most 1, got {self.jitter}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """The wait after failed attempt `attempt` (1-based), before any Retry-After."""
        try:
            raw = min(self.max_delay, self.base_delay * self.factor ** (attempt - 1))
        except OverflowError:  # far past the cap
            raw = self.max_delay
        return raw * rng.uniform(1 - self.jitter, 1 + self.jitter)


@attrs.frozen
class DeliveryError:
    """What `on_error` receives when events are given up on."""

    reason: str
    """`rejected`, `retries_exhausted`, `close_deadline` or `serialization`."""
    count: int
    """How many events were dropped."""
    detail: str
    """The status code and body excerpt, or the exception, that caused it."""
    event_ids: tuple[str, ...] = ()


class HttpTracker:
    """The service behind `tracker.http(...)`. Build it through that layer: the layer
    owns the HTTP client, the consumer fiber and the draining close."""

    def __init__(
        self,
        url: str,
        client: httpx.AsyncClient,
        *,
        max_batch: int,
        max_wait: float,
        max_queue: int,
        retry: RetryPolicy,
        env: str | None,
        service_key: str | None,
        compress: bool,
        headers: Mapping[str, str],
        on_error: Callable[[DeliveryError], None] | None,
        seed: int | None,
    ) -> None:
        self.url = url
        self._client = client
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._max_queue = max_queue
        self._retry = retry
        self._env = env
        self._service_key = service_key
        self._compress = compress
        self._headers = {"content-type": "application/json", **headers}
        if compress:
            self._headers["content-encoding"] = "gzip"
        self._on_error = on_error
        self._rng = random.Random(seed)

        self._queue: deque[Event] = deque()
        self._batch: list[Event] = []  # taken by the consumer, not yet settled
        self._first_at = 0.0  # when the oldest queued event arrived (monotonic)
        self._closing = False
        self._closed = False
        self._flush_requested = 0

        # Events enter in FIFO order and are settled (delivered or dropped) in the
        # same order, so "everything up to number n is settled" is one counter.
        self._accepted = 0
        self._settled = 0
        self._flush_waiters: list[tuple[int, Callable[[fx.Effect[None, Never, Never]], None]]] = []
        self._wakeup: fx.Queue[None] = fx.Queue("sliding", 1)

        self._emitted = 0
        self._delivered = 0
        self._dropped: dict[str, int] = {}
        self._retried = 0

    # -- the service -------------------------------------------------------------

    def emit_nowait(self, event: Event) -> None:
        """Queue `event` from plain code. O(1); never blocks, never raises."""
        self._emitted += 1
        if self._closed:
            self._count_drop("after_close", 1)
            return
        queue = self._queue
        if len(queue) >= self._max_queue:
            self._count_drop("queue_full", 1)
            return
        if not queue:
            self._first_at = time.monotonic()
        queue.append(event)
        self._accepted += 1
        n = len(queue)
        # The first event starts the max_wait clock; a full batch wants sending now. A
        # wake-up while the consumer is busy is kept, and after each send it checks the
        # queue again, so no other emit needs to wake it.
        if n == 1 or n == self._max_batch:
            self._wake_consumer()

    def emit(self, event: Event) -> fx.Effect[None, Never, Never]:
        return fx.sync(lambda: self.emit_nowait(event))

    def flush(self) -> fx.Effect[None, Never, Never]:
        def register(resume: Callable[[fx.Effect[None, Never, Never]], None]) -> Callable[[], None]:
            target = self._accepted
            if self._settled >= target:
                resume(fx.void)
                return _nothing
            waiter = (target, resume)
            self._flush_waiters.append(waiter)
            self._flush_requested += 1
            self._wake_consumer()

            def cancel() -> None:
                if waiter in self._flush_waiters:
                    self._flush_waiters.remove(waiter)
                    self._flush_requested -= 1

            return cancel

        return fx.async_(register)

    def pending(self) -> fx.Effect[int, Never, Never]:
        return fx.sync(lambda: self._accepted - self._settled)

    def stats_nowait(self) -> TrackerStats:
        return TrackerStats(
            emitted=self._emitted,
            delivered=self._delivered,
            dropped=dict(self._dropped),
            retried=self._retried,
            in_flight=len(self._batch),
            pending=len(self._queue),
        )

    def stats(self) -> fx.Effect[TrackerStats, Never, Never]:
        return fx.sync(self.stats_nowait)

    # -- the consumer ----------------------------------------------------------------

    def consume(self) -> fx.Effect[None, Never, Never]:
        """The consumer fiber's loop: batch by size and time, send, settle. Returns once
        closing and everything queued is settled."""

        @fx.gen
        def loop() -> fx.Gen[None, Never, Never]:
            while True:
                if not self._queue:
                    if self._closing:
                        return
                    yield from self._wait(None)
                    continue
                if not self._send_now():
                    remaining = self._first_at + self._max_wait - time.monotonic()
                    if remaining > 0:
                        yield from self._wait(remaining)
                        continue
                self._take_batch()
                yield from self._send_batch()

        return loop

    def _send_now(self) -> bool:
        return len(self._queue) >= self._max_batch or self._closing or self._flush_requested > 0

    def _take_batch(self) -> None:
        queue, take = self._queue, min(len(self._queue), self._max_batch)
        self._batch = [queue.popleft() for _ in range(take)]
        if queue:
            self._first_at = time.monotonic()

    def _send_batch(self) -> fx.Effect[None, Never, Never]:
        batch = self._batch

        @fx.gen
        def send() -> fx.Gen[None, Never, Never]:
            try:
                body = self._encode(batch)
            except (TypeError, ValueError) as exc:
                self._give_up("serialization", batch, repr(exc))
                return
            attempt = 0
            while True:
                attempt += 1
                outcome = yield from fx.try_promise(lambda: self._post(body)).either()
                detail, retry_after = _describe(outcome)
                if detail is None:
                    self._settle(len(batch), delivered=True)
                    return
                retryable = retry_after is not None
                if not retryable:
                    self._give_up("rejected", batch, detail)
                    return
                if attempt >= self._retry.max_attempts:
                    self._give_up("retries_exhausted", batch, detail)
                    return
                self._retried += 1
                delay = max(self._retry.delay(attempt, self._rng), retry_after or 0.0)
                yield from fx.sleep(delay)

        return send

    async def _post(self, body: bytes) -> httpx.Response:
        return await self._client.post(self.url, content=body, headers=self._headers)

    def _encode(self, batch: list[Event]) -> bytes:
        env, key = self._env, self._service_key
        text = json.dumps(
            [e.to_dict(env=env, service_key=key) for e in batch], separators=(",", ":")
        )
        data = text.encode()
        return gzip.compress(data, compresslevel=5) if self._compress else data

    # -- settling -----------------------------------------------------------------

    def _settle(self, count: int, *, delivered: bool) -> None:
        if delivered:
            self._delivered += count
        self._settled += count
        self._batch = []
        if self._flush_waiters:
            still: list[tuple[int, Callable[[fx.Effect[None, Never, Never]], None]]] = []
            for target, resume in self._flush_waiters:
                if self._settled >= target:
                    self._flush_requested -= 1
                    resume(fx.void)
                else:
                    still.append((target, resume))
            self._flush_waiters = still

    def _give_up(self, reason: str, events: list[Event], detail: str) -> None:
        self._count_drop(reason, len(events))
        self._settle(len(events), delivered=False)
        self._report(DeliveryError(reason, len(events), detail, tuple(e.event_id for e in events)))

    def _count_drop(self, reason: str, count: int) -> None:
        self._dropped[reason] = self._dropped.get(reason, 0) + count

    def _report(self, error: DeliveryError) -> None:
        _log.warning("dropped %d event(s): %s (%s)", error.count, error.reason, error.detail)
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:
                _log.exception("the tracker's on_error callback raised")

    # -- waking the consumer --------------------------------------------------------

    def _wake_consumer(self) -> None:
        # A sliding queue of one: a wake-up nobody waits for is kept (once).
        self._wakeup.offer_nowait(None)

    def _wait(self, timeout: float | None) -> fx.Effect[None, Never, Never]:
        """Wait until woken (an emit, a flush, close), or `timeout` seconds."""
        woken = self._wakeup.take().as_void
        return woken if timeout is None else woken.race(fx.sleep(timeout))

    # -- closing ------------------------------------------------------------------

    def close(
        self, consumer: fx.Fiber[None, Never], deadline: float
    ) -> fx.Effect[None, Never, Never]:
        """Deliver everything emitted so far, then stop. Runs as the layer's
        finalizer (uninterruptibly): ask the consumer to drain, wait for it up to
        `deadline` seconds; past that, stop it and report what is left."""

        def start() -> fx.Effect[None, Never, Never]:
            self._closing = True
            self._wake_consumer()
            ended: fx.Effect[fx.Exit[None, Never] | None, Never, Never] = consumer.await_()
            return ended.race(fx.sleep(deadline).as_(None)).flat_map(finish)

        def finish(exit: fx.Exit[None, Never] | None) -> fx.Effect[None, Never, Never]:
            if exit is None:
                # Past the deadline: stop the consumer first, so nothing is settled
                # twice, then count the rest: the batch it held and what is queued.
                return consumer.interrupt().and_then(
                    fx.sync(lambda: self._abandon("close_deadline", "close deadline passed"))
                )
            if isinstance(exit, fx.Failure):
                # The consumer died (a bug): whatever it left is counted and reported
                # rather than silently kept.
                _log.error("the tracker's consumer died: %s", exit.cause.pretty())
                return fx.sync(lambda: self._abandon("consumer_died", str(exit.cause.squash())))
            return fx.sync(lambda: self._abandon("close_deadline", "undelivered at close"))

        return fx.suspend(start)

    def _abandon(self, reason: str, detail: str) -> None:
        """Close, counting and reporting every event still held (none after a clean
        drain)."""
        left = self._batch + list(self._queue)
        self._queue.clear()
        self._closed = True
        if left:
            self._give_up(reason, left, detail)


def _nothing() -> None:
    return None


def _describe(outcome: Any) -> tuple[str | None, float | None]:
    """(None, None) for a delivered batch; else (detail, retry_after) where a
    retry_after of None means "do not retry" and a number means "retry, waiting at
    least that long" (0 when the server named no delay)."""
    from returns.result import Success

    if isinstance(outcome, Success):
        response: httpx.Response = outcome.unwrap()
        if 200 <= response.status_code < 300:
            return None, None
        detail = f"HTTP {response.status_code}: {response.text[:200]}"
        if response.status_code in RETRYABLE_STATUS:
            return detail, _retry_after(response)
        return detail, None
    error = outcome.failure()
    exc = getattr(error, "error", error)
    if isinstance(exc, httpx.TransportError):
        return f"{type(exc).__name__}: {exc}", 0.0
    return f"{type(exc).__name__}: {exc}", None


def _retry_after(response: httpx.Response) -> float:
    value = response.headers.get("retry-after")
    if value is None:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())
