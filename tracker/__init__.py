"""Workflow and step events and the services that deliver them.

    import tracker

    layer = tracker.http("http://127.0.0.1:8080/events", max_batch=100, max_wait=1.0)

Layers: `noop()`, `in_memory()`, `jsonl(path)`, `http(url, ...)`. Provide one to
each run and it lives as long as that run; hold it in one `effect.ManagedRuntime`
and it lives as long as the runtime (`docs/tracker.md` explains why that matters).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Never

import httpx

import effect as fx
from tracker.backends.http import DeliveryError, HttpTracker, RetryPolicy
from tracker.backends.jsonl import JsonlTracker
from tracker.backends.memory import InMemoryTracker, NoopTracker
from tracker.service import EventTracker, TrackerService, TrackerStats

__all__ = [
    "DeliveryError",
    "EventTracker",
    "HttpTracker",
    "InMemoryTracker",
    "JsonlTracker",
    "NoopTracker",
    "RetryPolicy",
    "TrackerService",
    "TrackerStats",
    "http",
    "in_memory",
    "jsonl",
    "noop",
]


def noop() -> fx.Layer[EventTracker, Never, Never]:
    """A tracker that accepts every event and keeps none."""
    return fx.Layer.sync(EventTracker, NoopTracker)


def in_memory(tracker: InMemoryTracker | None = None) -> fx.Layer[EventTracker, Never, Never]:
    """A tracker that keeps events in a list. Pass your own `InMemoryTracker` to read
    `tracker.events` afterwards; otherwise each build makes a new one.

    Examples:
        >>> import effect as fx, tracker
        >>> from tracker.events import WorkflowStarted
        >>> mem = tracker.InMemoryTracker()
        >>> emit = fx.service(tracker.EventTracker).flat_map(
        ...     lambda t: t.emit(WorkflowStarted(workflow_id="w1", workflow_name="demo")))
        >>> fx.run_sync(emit.provide(tracker.in_memory(mem)))
        >>> [e.type for e in mem.events]
        ['workflow.started']
    """
    if tracker is not None:
        return fx.Layer.succeed(EventTracker, tracker)
    return fx.Layer.sync(EventTracker, InMemoryTracker)


def jsonl(
    path: str | os.PathLike[str], *, env: str | None = None, service_key: str | None = None
) -> fx.Layer[EventTracker, Never, Never]:
    """A tracker that appends each event as a JSON line to `path`; the file is closed
    when the layer's scope closes."""
    opened = fx.acquire_release(
        fx.sync(lambda: JsonlTracker(path, env=env, service_key=service_key)),
        lambda t, _: fx.sync(t.close),
    )
    return fx.Layer.scoped(EventTracker, opened)


def http(
    url: str,
    *,
    max_batch: int = 100,
    max_wait: float = 1.0,
    max_queue: int = 10_000,
    retry: RetryPolicy | None = None,
    request_timeout: float = 10.0,
    close_deadline: float = 5.0,
    env: str | None = None,
    service_key: str | None = None,
    compress: bool = False,
    headers: Mapping[str, str] | None = None,
    on_error: Callable[[DeliveryError], None] | None = None,
    seed: int | None = None,
) -> fx.Layer[EventTracker, Never, Never]:
    """A scoped HTTP batch tracker.

    Events go into a bounded queue (`max_queue`; when full, new events are dropped
    and counted as `queue_full`). One consumer fiber sends them as JSON arrays by
    POST to `url`, `max_batch` at a time, waiting at most `max_wait` seconds to fill a
    batch. A failed batch is retried (`retry`) on 5xx, 408, 429 and connection
    errors, honoring `Retry-After`; other 4xx are not retried. Batches given up on are
    counted and passed to `on_error`. The same `event_id`s are sent on every retry,
    so a deduplicating collector stores each event once.

    When the layer's scope closes, everything emitted before is delivered (the batch
    being sent included) within `close_deadline` seconds, even if the closing task
    is cancelled; past the deadline the rest is counted as `close_deadline` and
    reported.
    """
    _positive_int("max_batch", max_batch)
    _positive_int("max_queue", max_queue)
    _non_negative("max_wait", max_wait)
    _non_negative("request_timeout", request_timeout)
    _non_negative("close_deadline", close_deadline)
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError(f"url must be an http(s) URL, got {url!r}")
    policy = retry if retry is not None else RetryPolicy()

    @fx.gen
    def build() -> fx.Gen[TrackerService, Never, fx.Scope]:
        client = yield from fx.acquire_release(
            fx.sync(lambda: httpx.AsyncClient(timeout=request_timeout)),
            lambda c, _: fx.promise(c.aclose),
        )
        service = HttpTracker(
            url,
            client,
            max_batch=max_batch,
            max_wait=max_wait,
            max_queue=max_queue,
            retry=policy,
            env=env,
            service_key=service_key,
            compress=compress,
            headers=dict(headers or {}),
            on_error=on_error,
            seed=seed,
        )
        consumer = yield from service.consume().fork_scoped()
        # Registered after the consumer, so it runs before the scope interrupts it.
        yield from fx.add_finalizer(lambda _: service.close(consumer, close_deadline))
        return service

    return fx.Layer.scoped(EventTracker, build)


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")


def _non_negative(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a non-negative number of seconds, got {value!r}")
