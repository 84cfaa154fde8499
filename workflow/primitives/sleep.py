"""`wf.sleep` and `wf.sleep_until`: durable waits."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Never

import effect as fx
from tracker.events import SleepCompleted, SleepStarted, format_timestamp
from workflow.context import WorkflowContext
from workflow.errors import StepInfrastructureError
from workflow.primitives.pause import pause
from workflow.storage import PutEntry

__all__ = ["sleep", "sleep_until"]


def sleep(name: str, seconds: float) -> fx.Effect[None, Never, WorkflowContext]:
    """Wait `seconds`, durably: the wake-up time is stored on the first execution, so
    a restart does not start the wait over. Short remaining waits happen in memory;
    long ones pause the run until due.

    Examples:
        >>> import effect as fx, workflow as wf
        >>> @wf.workflow("reminder")
        ... def reminder(_: None) -> fx.Gen[None, fx.Never, wf.WorkflowContext]:
        ...     yield from wf.sleep("a-day", 86_400)
    """
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
        raise ValueError(f"sleep {name!r}: seconds must be a non-negative number, got {seconds!r}")
    return _sleep(name, lambda now: now + seconds)


def sleep_until(name: str, wake_at: float) -> fx.Effect[None, Never, WorkflowContext]:
    """Wait until the Unix timestamp `wake_at`, durably (see `sleep`)."""
    if isinstance(wake_at, bool) or not isinstance(wake_at, int | float):
        raise ValueError(f"sleep_until {name!r}: wake_at must be a Unix timestamp, got {wake_at!r}")
    return _sleep(name, lambda now: float(wake_at))


def _sleep(name: str, due: object) -> fx.Effect[None, Never, WorkflowContext]:
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"a sleep name must be a non-empty string without '/', got {name!r}")

    @fx.gen
    def run() -> fx.Gen[None, Never, WorkflowContext]:
        ctx = yield from WorkflowContext
        location = yield from ctx.enter(name, "sleep")
        recorded = ctx.history.get(location)
        if recorded is not None and recorded.status == "completed":
            return
        now = ctx.now()
        if recorded is None:
            wake_at = due(now)  # type: ignore[operator]
            entry = ctx.entry(
                location, "sleep", "waiting", 0, data_json=json.dumps({"wake_at": wake_at})
            )
            event = ctx.event(
                SleepStarted,
                name=name,
                duration_ms=max(0.0, wake_at - now) * 1000,
                resume_at=_iso(wake_at),
            )
            yield from ctx.commit([PutEntry(entry)], [event]).catch_all(
                lambda exc: fx.die(StepInfrastructureError(name, "before", 1, exc))
            )
        else:
            wake_at = float(json.loads(recorded.data_json or "{}")["wake_at"])
        remaining = 0.0 if ctx.take_skip_wait() else wake_at - ctx.now()
        if remaining > ctx.in_memory_wait:
            yield from pause(wake_at, f"sleep {name!r}")
        if remaining > 0:
            yield from fx.sleep(remaining)
        done = ctx.entry(
            location, "sleep", "completed", 0, data_json=json.dumps({"wake_at": wake_at})
        )
        yield from ctx.commit([PutEntry(done)], [ctx.event(SleepCompleted, name=name)]).catch_all(
            lambda exc: fx.die(StepInfrastructureError(name, "after", 1, exc))
        )

    return run


def _iso(timestamp: float) -> str:
    return format_timestamp(datetime.fromtimestamp(timestamp, UTC))
