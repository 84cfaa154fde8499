"""The scoped-tracker pitfall, reproduced on purpose.

The story. A workflow engine gave each run its tracker as a scoped layer: every
`run` built a fresh queue, a fresh consumer fiber and a fresh HTTP client, and closed
them when the run ended. A run lasts a few milliseconds; the tracker batches events for
up to `max_wait` (here 10 s). This is what happened to each event:

1. the workflow emits `workflow.started`: the event goes into the queue;
2. the consumer fiber wakes up, moves the event into its *local* batch, and waits for
   more events (or for `max_wait`) before sending;
3. the run ends a few milliseconds later, and its scope closes;
4. the tracker's finalizer empties the *queue*, which holds only the events emitted
   after the consumer took its batch, and sends those;
5. the scope interrupts the consumer, which still holds the batch: those events are
   gone. Nothing fails, nothing is logged, nothing is counted.

The tests passed all along, because they used an in-memory tracker that delivers
inside `emit`. Only the real tracker against a real endpoint shows the loss.

`tracker.naive` keeps that tracker, for teaching. `tracker.http` survives the same
per-run lifecycle: the batch being sent is shared state, not a local of the consumer;
the close asks the consumer to drain and waits for it (up to `close_deadline`) instead
of interrupting it; and the finalizer is registered after the consumer is forked, so it
runs before the scope interrupts the consumer.

A per-run tracker still pays for a new client, a new connection and a request per run,
and its batches never fill up. The right way to hold a tracker is one
`fx.ManagedRuntime` for the whole process: one client, one consumer, full batches.

The three tests below run the same workflow, 20 times, against the real collector on
127.0.0.1: per-run scope with the naive tracker (events lost), per-run scope with
`tracker.http` (all delivered), and one `ManagedRuntime` holding `tracker.http` (all
delivered, in a fraction of the requests). `docs/tracker.md` tells the story in full.
"""

from __future__ import annotations

from pathlib import Path
from typing import Never

import pytest

import effect as fx
import tracker
from tracker.collector import Collector
from tracker.events import StepCompleted, StepStarted, WorkflowCompleted, WorkflowStarted
from tracker.naive import naive_http

pytestmark = pytest.mark.anyio

RUNS = 20
MAX_WAIT = 10.0  # far longer than a run: the batch is never sent by time


@pytest.fixture(autouse=True)
def _no_ca_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No TLS on loopback: spare each new httpx client the CA-bundle parse (50-100 ms)."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))


def workflow_run(run_id: str, emitted: list[str]) -> fx.Effect[None, Never, tracker.EventTracker]:
    """A short workflow run: four events, with a little I/O (a sleep) between them."""

    @fx.gen
    def run() -> fx.Gen[None, Never, tracker.EventTracker]:
        t = yield from tracker.EventTracker
        common = {"workflow_id": run_id, "workflow_name": "checkout"}
        events = [
            WorkflowStarted(input={"cart": 3}, seq=0, **common),
            StepStarted(step_name="charge", attempt=1, seq=1, **common),
            StepCompleted(step_name="charge", attempt=1, duration_ms=0.5, seq=2, **common),
            WorkflowCompleted(result="ok", duration_ms=2.0, seq=3, **common),
        ]
        for event in events:
            yield from t.emit(event)
            emitted.append(event.event_id)
            yield from fx.sleep(0.0005)  # the step's I/O

    return run


def delivered(collector: Collector) -> list[str]:
    return [event["event_id"] for event in collector.events()]


async def test_per_run_scope_with_the_naive_tracker_loses_events(collector: Collector) -> None:
    emitted: list[str] = []
    for r in range(RUNS):
        layer = naive_http(collector.events_url, max_wait=MAX_WAIT)  # built and closed per run
        await fx.run(workflow_run(f"run-{r}", emitted).provide(layer))

    lost = set(emitted) - set(delivered(collector))
    # Every run loses the batch its consumer was holding: at least `workflow.started`.
    assert len(lost) >= RUNS
    delivered_types = {event["type"] for event in collector.events()}
    assert "workflow.started" not in delivered_types  # not from a single run


async def test_per_run_scope_with_tracker_http_delivers_everything(collector: Collector) -> None:
    emitted: list[str] = []
    for r in range(RUNS):
        layer = tracker.http(collector.events_url, max_wait=MAX_WAIT)  # built and closed per run
        await fx.run(workflow_run(f"run-{r}", emitted).provide(layer))

    assert sorted(delivered(collector)) == sorted(emitted)
    assert collector.stats()["duplicates"] == 0
    # Correct, but each run paid for its own client and sent its own small batch.
    assert len(collector.requests()) == RUNS


async def test_one_managed_runtime_holding_tracker_http_delivers_everything(
    collector: Collector,
) -> None:
    emitted: list[str] = []
    layer = tracker.http(collector.events_url, max_wait=MAX_WAIT)  # built once
    async with fx.ManagedRuntime(layer) as rt:
        for r in range(RUNS):
            await rt.run(workflow_run(f"run-{r}", emitted))
    # Leaving the block closed the tracker's scope: it drained before returning.

    assert sorted(delivered(collector)) == sorted(emitted)
    assert collector.stats()["duplicates"] == 0
    # One client, one consumer, and the 80 events went out in one full batch.
    assert len(collector.requests()) == 1
