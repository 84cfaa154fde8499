"""A durable workflow engine whose primitives are effects.

    import effect as fx
    import workflow as wf

    @wf.workflow("order")
    def order(order_id: int) -> fx.Gen[str, wf.StepFailedError, wf.WorkflowContext]:
        charged = yield from wf.step("charge", charge(order_id), retry=wf.Retry(max_attempts=5))
        yield from wf.sleep("cool-off", 3600)
        return (yield from wf.step("ship", ship(order_id, charged)))

    async with wf.Engine([order], storage=wf.SqliteStorage("runs.db")) as engine:
        run_id = await engine.start(order, 42)
        print(await engine.result(run_id))

Each primitive records what it did in the run's history, under its location; when a
run resumes (after a durable sleep, a long retry backoff, or a crash), completed
primitives replay their stored results and execution continues where it stopped.
"""

from workflow.codec import DecodeError, EncodeError
from workflow.context import WorkflowContext
from workflow.definition import Workflow, workflow
from workflow.engine import Engine
from workflow.errors import (
    CrashLoopError,
    HistoryDivergedError,
    NestedPrimitiveError,
    StepFailedError,
    StepInfrastructureError,
    UnknownWorkflowError,
    WorkflowCancelledError,
    WorkflowError,
    WorkflowFailedError,
)
from workflow.primitives.retry import Retry
from workflow.primitives.sleep import sleep, sleep_until
from workflow.primitives.step import step
from workflow.storage import MemoryStorage, RunStatus, SqliteStorage, Storage

__all__ = [
    "CrashLoopError",
    "DecodeError",
    "EncodeError",
    "Engine",
    "HistoryDivergedError",
    "MemoryStorage",
    "NestedPrimitiveError",
    "Retry",
    "RunStatus",
    "SqliteStorage",
    "StepFailedError",
    "StepInfrastructureError",
    "Storage",
    "UnknownWorkflowError",
    "Workflow",
    "WorkflowCancelledError",
    "WorkflowContext",
    "WorkflowError",
    "WorkflowFailedError",
    "sleep",
    "sleep_until",
    "step",
    "workflow",
]
