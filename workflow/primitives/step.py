"""`wf.step`: a unit of work whose result is stored, and the step event guarantee.

Once `step.started` is recorded for an attempt, exactly one of `step.completed`,
`step.failed` or `step.interrupted` follows for that attempt. The mechanism is one
rule: every change of a step entry out of status `started` is a single transaction
that also appends that attempt's terminal event. If even that write fails, the entry
stays `started`, and the next execution of the run (after the storage recovers, or
a restart) reports the attempt as `step.failed` with phase `crash`. Nothing relies
on code running after a failure, so nothing can skip the event.

Phases named in `step.failed.error.phase`: `user` (the step's effect failed),
`timeout`, `encode` (its result cannot be stored), `after` (storing the result
failed), `retry` (recording the failure failed), `crash` (the process died during
the attempt). A failure in phase `before` (recording the start) emits no step
event, because no `step.started` was recorded; `workflow.failed` still names the
step and attempt.

One commit per step: the result is not written on its own but staged into the
run's next transaction (`RunContext.stage`), usually the next step's start. If that
transaction fails, the failure is this step's, phase `after` (its result was not
stored), and the next step never started: `workflow.failed` names this step.
"""

from __future__ import annotations

import json
from typing import Any, Never, TypeVar

import attrs

import effect as fx
from tracker.events import (
    ErrorInfo,
    RetryExhausted,
    RetryScheduled,
    StepCompleted,
    StepFailed,
    StepInterrupted,
    StepStarted,
    TimeoutExceeded,
    TimeoutSet,
    format_timestamp,
)
from workflow import codec
from workflow.context import RunContext, WorkflowContext, inside_step
from workflow.errors import StepFailedError, StepInfrastructureError
from workflow.primitives.pause import pause
from workflow.primitives.retry import NO_RETRY, Retry
from workflow.storage import PutEntry

__all__ = ["step"]

A = TypeVar("A")
E = TypeVar("E")
R = TypeVar("R")


@attrs.define
class _Attempt:
    """Where one attempt is, so the interruption finalizer knows whether it owes a
    terminal event."""

    number: int
    started: bool = False
    settled: bool = False


def step(
    name: str,
    effect: fx.Effect[A, E, R],
    *,
    retry: Retry | None = None,
    timeout: float | None = None,
) -> fx.Effect[A, StepFailedError, R | WorkflowContext]:
    """Run `effect` as a durable step named `name`, or replay its stored result.

    On the first execution the attempt number is stored before `effect` runs (so a
    crash never resets it), then the result is stored. On a later execution of the
    run a completed step returns its stored result without running. A failing
    effect is retried per `retry` (short waits in memory, long ones pause the run
    durably); when no attempt is left the step fails with `StepFailedError`.
    `timeout` interrupts an attempt that runs longer (its finalizers run) and counts
    as a failure of phase `timeout`. A result the codec cannot store fails the step
    for good (`StepFailedError`, phase `encode`, naming the step and the type; nothing
    is stored). Storage failures around the effect fail the run with
    `StepInfrastructureError`; `Engine.resume` continues it once storage is back.
    Steps run at least once: an attempt
    interrupted by a crash runs again if `retry` allows another attempt: a crashed
    attempt counts like a failed one (so `max_attempts` holds across crashes), and the
    default policy is a single attempt, so give a step that must survive a crash a
    `Retry`.

    Examples:
        >>> import effect as fx, workflow as wf
        >>> @wf.workflow("greet")
        ... def greet(name: str) -> fx.Gen[str, wf.StepFailedError, wf.WorkflowContext]:
        ...     upper = yield from wf.step("upper", fx.sync(lambda: name.upper()))
        ...     return f"hello {upper}"
    """
    if not isinstance(name, str) or not name or "/" in name:
        raise ValueError(f"a step name must be a non-empty string without '/', got {name!r}")
    if not isinstance(effect, fx.Effect):
        raise TypeError(f"step {name!r} expected an Effect, got {effect!r}")
    if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
        raise ValueError(
            f"step {name!r}: timeout must be a positive number of seconds, got {timeout!r}"
        )
    policy = retry if retry is not None else NO_RETRY

    @fx.gen
    def run() -> fx.Gen[A, StepFailedError, R | WorkflowContext]:
        ctx = yield from WorkflowContext
        location = yield from ctx.enter(name, "step")
        recorded = ctx.history.get(location)
        if recorded is not None and recorded.status == "completed":
            assert recorded.result_json is not None
            return codec.decode(recorded.result_json)  # type: ignore[no-any-return]
        failures = _failures(recorded.data_json) if recorded else 0
        last = recorded.attempt if recorded else 0
        if recorded is not None:
            if recorded.status == "failed":
                return (
                    yield from fx.fail(_stored_failure(name, recorded.attempt, recorded.error_json))
                )
            if recorded.status == "started":
                # The process died during this attempt: report it now, then retry.
                failures += 1
                error = ErrorInfo(
                    "ProcessCrashed", "the process died during the attempt", phase="crash"
                )
                outcome = yield from _record_failure(
                    ctx, location, name, last, failures, error, None, policy
                )
                if outcome is None:
                    return (
                        yield from fx.fail(StepFailedError(name, last, error.type, error.message))
                    )
                yield from _wait_before_retry(ctx, location, outcome)
            elif recorded.status == "retrying":
                wake_at = json.loads(recorded.data_json or "{}").get("wake_at")
                if wake_at is not None and ctx.now() < wake_at and not ctx.take_skip_wait():
                    yield from pause(wake_at, f"retry of step {name!r}")
        while True:
            attempt = _Attempt(last + 1)
            last = attempt.number
            ctx.current_step = (name, attempt.number)
            exit = yield from _run_attempt(ctx, location, name, attempt, effect, timeout).on_exit(
                lambda ex, attempt=attempt: _record_interruption(ctx, location, name, attempt, ex)  # type: ignore[misc]
            )
            if isinstance(exit, fx.Success):
                ctx.current_step = None
                return exit.value
            error_info, error_value, phase_timeout = _describe_failure(exit.cause, timeout)
            if error_info is None:
                # A defect in the step's own effect: a bug, never retried. Record the
                # terminal event, then let the defect fail the run.
                info = _defect_info(exit.cause)
                yield from _record_failure(
                    ctx, location, name, attempt.number, failures + 1, info, None, NO_RETRY
                )
                return (yield from fx.fail_cause(exit.cause))
            failures += 1
            extra = (
                [
                    ctx.event(
                        TimeoutExceeded,
                        step_name=name,
                        attempt=attempt.number,
                        timeout_ms=timeout * 1000,
                    )
                ]
                if phase_timeout and timeout
                else []
            )
            outcome = yield from _record_failure(
                ctx,
                location,
                name,
                attempt.number,
                failures,
                error_info,
                error_value,
                policy,
                extra,
            )
            if outcome is None:
                ctx.current_step = None
                return (
                    yield from fx.fail(
                        StepFailedError(
                            name, attempt.number, error_info.type, error_info.message, error_value
                        )
                    )
                )
            yield from _wait_before_retry(ctx, location, outcome)

    return run


def _run_attempt(
    ctx: RunContext,
    location: str,
    name: str,
    attempt: _Attempt,
    effect: fx.Effect[A, E, R],
    timeout: float | None,
) -> fx.Effect[fx.Exit[A, Any], Never, R]:
    @fx.gen
    def run() -> fx.Gen[fx.Exit[A, Any], Never, R]:
        # Phase `before`: the attempt number and step.started in one transaction. If
        # it fails, nothing was recorded, so no step event is owed.
        events = [ctx.event(StepStarted, step_name=name, attempt=attempt.number)]
        if timeout is not None:
            events.append(
                ctx.event(
                    TimeoutSet, step_name=name, attempt=attempt.number, timeout_ms=timeout * 1000
                )
            )
        started = ctx.entry(
            location, "step", "started", attempt.number, data_json=_data(ctx, location)
        )
        yield from ctx.commit([PutEntry(started)], events).catch_all(
            lambda error: fx.die(StepInfrastructureError(name, "before", attempt.number, error))
        )
        attempt.started = True
        began = ctx.now()

        user: fx.Effect[Any, Any, Any] = inside_step(effect, name)
        if timeout is not None:
            user = user.timeout(timeout)
        exit = yield from user.exit()
        if isinstance(exit, fx.Failure):
            return exit

        # Phase `encode`, then `after`: the result and step.completed are staged
        # for the run's next transaction (usually the next step's start); if that
        # transaction fails, this attempt is aborted in phase `after`.
        try:
            result_json = codec.encode(exit.value)
        except codec.EncodeError as exc:
            return fx.Failure(fx.Fail(_EncodeFailure(exc)))
        duration_ms = (ctx.now() - began) * 1000
        done = ctx.entry(
            location,
            "step",
            "completed",
            attempt.number,
            result_json=result_json,
            data_json=_data(ctx, location),
        )
        completed = ctx.event(
            StepCompleted, step_name=name, attempt=attempt.number, duration_ms=duration_ms
        )
        number = attempt.number
        ctx.stage(
            [PutEntry(done)],
            [completed],
            lambda error: _abort(ctx, location, name, number, "after", error),
        )
        attempt.settled = True
        return exit

    return run


class _EncodeFailure(Exception):
    def __init__(self, error: codec.EncodeError) -> None:
        super().__init__(str(error))
        self.error = error


def _record_failure(
    ctx: RunContext,
    location: str,
    name: str,
    attempt: int,
    failures: int | None,
    error: ErrorInfo,
    error_value: object,
    policy: Retry,
    extra: list[Any] | None = None,
) -> fx.Effect[float | None, Never, Never]:
    """Record a failed attempt with its terminal `step.failed` (and the retry
    decision) in one transaction. Succeeds with the retry delay, or None if the step
    is out of attempts. If the write fails, dies with `StepInfrastructureError`
    (phase `retry`); the entry then stays `started` and is reported as a crash by the
    next execution."""
    will_retry = (
        failures is not None
        and error.phase not in ("encode", "after")
        and policy.should_retry(error_value if error_value is not None else error, failures)
    )
    delay = policy.delay(failures, ctx.rng) if will_retry and failures else 0.0
    events: list[Any] = list(extra or [])
    events.append(
        ctx.event(StepFailed, step_name=name, attempt=attempt, will_retry=will_retry, error=error)
    )
    data: dict[str, Any] = {"failures": failures or 0}
    if will_retry:
        wake_at = ctx.now() + delay
        data["wake_at"] = wake_at
        events.append(
            ctx.event(
                RetryScheduled,
                step_name=name,
                attempt=attempt,
                next_attempt=attempt + 1,
                delay_ms=delay * 1000,
                resume_at=_iso(wake_at),
            )
        )
    elif policy.max_attempts > 1 and failures is not None and failures >= policy.max_attempts:
        events.append(ctx.event(RetryExhausted, step_name=name, attempts=failures, error=error))
    status = "retrying" if will_retry else "failed"
    entry = ctx.entry(
        location,
        "step",
        status,
        attempt,
        error_json=json.dumps({"type": error.type, "message": error.message, "phase": error.phase}),
        data_json=json.dumps(data),
    )
    return (
        ctx.commit([PutEntry(entry)], events)
        .catch_all(lambda error: _abort(ctx, location, name, attempt, "retry", error))
        .as_(delay if will_retry else None)
    )


def _abort(
    ctx: RunContext, location: str, name: str, attempt: int, phase: str, cause: Exception
) -> fx.Effect[Never, Never, Never]:
    """End an attempt that infrastructure broke: record it as `aborted` with its
    terminal `step.failed` (best effort: if this write fails too, the entry stays
    `started` and the next execution reports it), then fail the run with
    `StepInfrastructureError`. An aborted attempt is run again when the run is
    resumed; it does not count against `max_attempts`."""
    info = ErrorInfo(type(cause).__name__, str(cause), phase=phase)
    entry = ctx.entry(
        location,
        "step",
        "aborted",
        attempt,
        error_json=json.dumps(info.to_dict()),
        data_json=_data(ctx, location),
    )
    event = ctx.event(StepFailed, step_name=name, attempt=attempt, will_retry=False, error=info)
    return (
        ctx.commit([PutEntry(entry)], [event])
        .catch_cause(lambda _: fx.void)
        .and_then(fx.die(StepInfrastructureError(name, phase, attempt, cause)))
    )


def _record_interruption(
    ctx: RunContext, location: str, name: str, attempt: _Attempt, exit: fx.Exit[Any, Any]
) -> fx.Effect[None, Never, Never]:
    """Finalizer of an attempt: if the run was interrupted (cancel, shutdown) after
    step.started and before any terminal event, record step.interrupted. An attempt
    does not count as a failure when interrupted."""
    if not (isinstance(exit, fx.Failure) and exit.cause.is_interrupted()):
        return fx.void
    if not attempt.started or attempt.settled:
        return fx.void
    attempt.settled = True
    reason = ctx.interrupt_reason or "interrupted"
    entry = ctx.entry(
        location, "step", "interrupted", attempt.number, data_json=_data(ctx, location)
    )
    return ctx.commit(
        [PutEntry(entry)],
        [ctx.event(StepInterrupted, step_name=name, attempt=attempt.number, reason=reason)],
    ).catch_cause(lambda _: fx.void)


def _wait_before_retry(
    ctx: RunContext, location: str, delay: float | None
) -> fx.Effect[None, Never, Never]:
    assert delay is not None
    if delay <= ctx.in_memory_wait:
        return fx.sleep(delay)
    return pause(ctx.now() + delay, f"retry of {location!r}")


def _describe_failure(
    cause: fx.Cause[Any], timeout: float | None
) -> tuple[ErrorInfo | None, object, bool]:
    """(error info, the error value, whether it was the timeout) for a typed failure;
    (None, None, False) when the cause holds a defect."""
    if cause.is_die():
        return None, None, False
    failures = cause.failures()
    if not failures:
        return ErrorInfo("Interrupted", "the attempt was interrupted", phase="user"), None, False
    error = failures[0]
    if isinstance(error, _EncodeFailure):
        return ErrorInfo("EncodeError", str(error), phase="encode"), error.error, False
    if isinstance(error, fx.TimeoutException) and timeout is not None:
        return ErrorInfo("TimeoutException", str(error), phase="timeout"), error, True
    if isinstance(error, BaseException):
        return ErrorInfo(type(error).__name__, str(error), phase="user"), error, False
    return ErrorInfo(type(error).__name__, repr(error), phase="user"), error, False


def _defect_info(cause: fx.Cause[Any]) -> ErrorInfo:
    defect = cause.defects()[0]
    return ErrorInfo(type(defect).__name__, str(defect), phase="user")


def _stored_failure(name: str, attempt: int, error_json: str | None) -> StepFailedError:
    data = json.loads(error_json or "{}")
    return StepFailedError(
        name, attempt, str(data.get("type", "Error")), str(data.get("message", ""))
    )


def _failures(data_json: str | None) -> int:
    return int(json.loads(data_json or "{}").get("failures", 0))


# The data of an entry with no failed attempt: every step's, until one fails.
_NO_FAILURES = json.dumps({"failures": 0})


def _data(ctx: RunContext, location: str) -> str:
    recorded = ctx.history.get(location)
    if recorded is None or recorded.data_json in (None, _NO_FAILURES):
        return _NO_FAILURES
    return json.dumps({"failures": _failures(recorded.data_json)})


def _iso(timestamp: float) -> str:
    from datetime import UTC, datetime

    return format_timestamp(datetime.fromtimestamp(timestamp, UTC))
