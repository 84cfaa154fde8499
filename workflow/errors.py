"""The errors of the workflow engine.

WorkflowError
├── HistoryDivergedError     the code no longer matches the run's history
├── NestedPrimitiveError     a step or sleep used inside a step
├── StepFailedError          a step's user effect failed for good (typed failure of `wf.step`)
├── StepInfrastructureError  storage, encoding or bookkeeping failed around a step (a defect)
├── WorkflowFailedError      raised by `Engine.result` for a failed run
├── WorkflowCancelledError   raised by `Engine.result` for a cancelled run
└── CrashLoopError           a run crashed its process too many times in a row
"""

from __future__ import annotations

__all__ = [
    "CrashLoopError",
    "HistoryDivergedError",
    "NestedPrimitiveError",
    "StepFailedError",
    "StepInfrastructureError",
    "UnknownWorkflowError",
    "WorkflowCancelledError",
    "WorkflowError",
    "WorkflowFailedError",
]


class WorkflowError(Exception):
    """Base class of the engine's errors."""


class HistoryDivergedError(WorkflowError):
    """The workflow's code and the run's recorded history disagree at `location`: a
    name used twice in one scope, an entry of another kind at the same location, or
    history entries the code no longer visits. Replaying would not be faithful, so
    the run fails."""

    def __init__(self, location: str, reason: str) -> None:
        super().__init__(f"history diverged at {location!r}: {reason}")
        self.location = location
        self.reason = reason


class NestedPrimitiveError(WorkflowError):
    """A durable primitive (step, sleep) was used inside a step's effect. Steps are
    the unit of replay; their insides are plain effects."""

    def __init__(self, primitive: str, name: str, inside: str) -> None:
        super().__init__(
            f"{primitive} {name!r} cannot run inside step {inside!r}: a step's effect must "
            "not use durable primitives"
        )
        self.primitive = primitive
        self.name = name
        self.inside = inside


class StepFailedError(WorkflowError):
    """A step's effect failed and will not be retried. The typed failure of `wf.step`.

    `error_type` and `message` describe the last attempt's error; they are stored, so
    a replay of the run fails the same way. `error` is the original error object on
    the run that saw it, None on a replay."""

    def __init__(
        self, step_name: str, attempt: int, error_type: str, message: str, error: object = None
    ) -> None:
        super().__init__(f"step {step_name!r} failed on attempt {attempt}: {error_type}: {message}")
        self.step_name = step_name
        self.attempt = attempt
        self.error_type = error_type
        self.message = message
        self.error = error


class StepInfrastructureError(WorkflowError):
    """Something other than the step's own effect failed during an attempt: storage
    before or after it, or the retry bookkeeping. `phase` says
    where (see docs/workflow/guarantee.md). It fails the run as a defect, with the step
    and attempt named; the run can be resumed once the cause is fixed."""

    def __init__(self, step_name: str, phase: str, attempt: int, cause: BaseException) -> None:
        super().__init__(
            f"step {step_name!r} attempt {attempt} failed in phase {phase!r}: "
            f"{type(cause).__name__}: {cause}"
        )
        self.step_name = step_name
        self.phase = phase
        self.attempt = attempt
        self.cause = cause
        self.__cause__ = cause


class WorkflowFailedError(WorkflowError):
    """The run failed. `step_name` and `attempt` name the step in progress, if any."""

    def __init__(
        self,
        run_id: str,
        error_type: str,
        message: str,
        step_name: str | None = None,
        attempt: int | None = None,
    ) -> None:
        where = f" in step {step_name!r} (attempt {attempt})" if step_name else ""
        super().__init__(f"run {run_id!r} failed{where}: {error_type}: {message}")
        self.run_id = run_id
        self.error_type = error_type
        self.message = message
        self.step_name = step_name
        self.attempt = attempt


class WorkflowCancelledError(WorkflowError):
    """The run was cancelled."""

    def __init__(self, run_id: str, reason: str | None) -> None:
        super().__init__(f"run {run_id!r} was cancelled" + (f": {reason}" if reason else ""))
        self.run_id = run_id
        self.reason = reason


class CrashLoopError(WorkflowError):
    """The run was recovered after more than `max_crashes` crashes in a row (with no
    step result stored between them); it is failed rather than crashing the next
    process too."""

    def __init__(self, run_id: str, crashes: int) -> None:
        super().__init__(
            f"run {run_id!r} crashed its process {crashes} times in a row, "
            "without progress; giving up"
        )
        self.run_id = run_id
        self.crashes = crashes


class UnknownWorkflowError(WorkflowError):
    """No workflow of that name is registered with the engine."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no workflow named {name!r}; registered: {', '.join(known) or 'none'}")
        self.name = name
