"""Shared pieces of the workflow engine tests.

- The real loopback collector fixtures of ``tests/tracker/conftest.py`` (``collector``,
  ``collector_process``, ``start_collector_process``), re-exported for the crash tests.
- `guarantee_problems(events)`: every way a list of events breaks the step event
  guarantee, as readable strings (empty when it holds).
- Workflows described as data (`StepSpec`, `SleepSpec`, `WaitSpec`, `build`), with the
  executions of each step's effect counted.
- ``quiet_engine``: silences the engine's warnings (tests that inject thousands of
  storage faults).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import attrs
import pytest

import effect as fx
import workflow as wf
from tests.tracker.conftest import (  # noqa: F401  (fixtures, re-exported)
    collector,
    collector_process,
    start_collector_process,
)

TERMINAL_STEP_EVENTS = ("step.completed", "step.failed", "step.interrupted")
STEP_EVENTS = (
    "step.started",
    *TERMINAL_STEP_EVENTS,
    "retry.scheduled",
    "retry.exhausted",
    "timeout.set",
    "timeout.exceeded",
)


def dedupe(events: Iterable[Any]) -> list[Any]:
    """Events in order, each `event_id` once (delivery is at least once)."""
    seen: set[str] = set()
    out = []
    for event in events:
        if event.event_id not in seen:
            seen.add(event.event_id)
            out.append(event)
    return out


def describe(events: Sequence[Any]) -> str:
    """One line per event: seq, type, and the step fields it has."""
    lines = []
    for e in events:
        extra = []
        for field in ("step_name", "attempt", "will_retry", "reason"):
            value = getattr(e, field, None)
            if value is not None:
                extra.append(f"{field}={value}")
        error = getattr(e, "error", None)
        if error is not None:
            extra.append(f"error={error.type}/{error.phase}")
        lines.append(f"  {e.seq:3} {e.type:20} {' '.join(extra)}")
    return "\n".join(lines)


def guarantee_problems(events: Iterable[Any]) -> list[str]:
    """What breaks the step event guarantee in `events` (one run's, in commit order;
    duplicates by `event_id` are ignored):

    - every `step.started` (step, attempt) is followed by exactly one of
      step.completed / step.failed / step.interrupted for that attempt;
    - no step event (terminal, retry.*, timeout.*) for an attempt that has no
      `step.started` before it;
    - no `step.started` twice for one attempt;
    - `workflow.failed` comes after the terminal event of every started attempt.
    """
    problems: list[str] = []
    started: dict[tuple[str, int], int] = {}
    terminals: dict[tuple[str, int], list[str]] = defaultdict(list)
    for index, event in enumerate(dedupe(events)):
        if event.type == "step.started":
            key = (event.step_name, event.attempt)
            if key in started:
                problems.append(f"step.started twice for {key}")
            started[key] = index
        elif event.type in STEP_EVENTS:
            if event.type == "retry.exhausted":
                continue  # names the attempt count, not one attempt
            key = (event.step_name, event.attempt)
            if key not in started:
                problems.append(f"{event.type} for {key} without a step.started before it")
            if event.type in TERMINAL_STEP_EVENTS:
                terminals[key].append(event.type)
        elif event.type == "workflow.failed":
            open_attempts = [key for key in started if not terminals[key]]
            if open_attempts:
                problems.append(
                    f"workflow.failed while {open_attempts} had no terminal event yet "
                    "(step.failed must come first)"
                )
    for key in started:
        if len(terminals[key]) != 1:
            problems.append(f"{key}: {len(terminals[key])} terminal events {terminals[key]}")
    return problems


@pytest.fixture
def quiet_engine() -> Iterator[None]:
    """The engine logs every storage fault it survives; silence it for this test."""
    logger = logging.getLogger("workflow.engine")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


# -- workflows described as data


MAX_DELAY = 60.0  # the retry delay cap of the steps `build` makes


@attrs.frozen
class StepSpec:
    """A step: fails (typed) its first `fails` executions; its first execution
    sleeps `slow_first` (a timeout shorter than that interrupts it)."""

    name: str
    fails: int = 0  # typed failures before it succeeds
    max_attempts: int = 1
    backoff: float = 0.0
    timeout: float | None = None
    slow_first: float | None = None  # its first execution sleeps this long
    delay: float = 0.0  # every execution sleeps this long


@attrs.frozen
class SleepSpec:
    """A durable sleep (`wf.sleep`)."""

    name: str
    seconds: float


@attrs.frozen
class WaitSpec:
    """Non-durable work between steps: an in-memory `fx.sleep` outside any step (the
    result of the step before it is still staged when it begins)."""

    seconds: float


Spec = StepSpec | SleepSpec | WaitSpec


class Executions:
    """How many times each step's effect started, across the engines of a scenario."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()


def build(shape: Sequence[Spec], executions: Executions) -> wf.Workflow[None, list[str], Any]:
    """Workflow "shape": its steps and sleeps in order; returns the steps' results
    (``"<name>-ok"``)."""

    def body(spec: StepSpec) -> fx.Effect[str, Exception, Any]:
        @fx.gen
        def run() -> fx.Gen[str, Exception, Any]:
            executions.counts[spec.name] += 1
            n = executions.counts[spec.name]
            if spec.slow_first is not None and n == 1:
                yield from fx.sleep(spec.slow_first)
            if spec.delay:
                yield from fx.sleep(spec.delay)
            if n <= spec.fails:
                return (yield from fx.fail(ValueError(f"{spec.name} fails ({n})")))
            return f"{spec.name}-ok"

        return run

    @wf.workflow("shape")
    def shape_workflow(_: None) -> fx.Gen[list[str], Any, wf.WorkflowContext]:
        results: list[str] = []
        for spec in shape:
            if isinstance(spec, SleepSpec):
                yield from wf.sleep(spec.name, spec.seconds)
                continue
            if isinstance(spec, WaitSpec):
                yield from fx.sleep(spec.seconds)
                continue
            retry = wf.Retry(
                max_attempts=spec.max_attempts, backoff=spec.backoff, max_delay=MAX_DELAY
            )
            results.append(
                (yield from wf.step(spec.name, body(spec), retry=retry, timeout=spec.timeout))
            )
        return results

    return shape_workflow


def expected_result(shape: Sequence[Spec]) -> list[str]:
    return [f"{s.name}-ok" for s in shape if isinstance(s, StepSpec)]


def expected_outcome(shape: Sequence[Spec]) -> tuple[bool, float]:
    """(whether the run completes, how many virtual seconds it takes): the attempts'
    durations (a timed-out attempt takes its timeout), the retry delays
    (backoff * 2**(n-1), capped) and the sleeps."""
    total = 0.0
    for spec in shape:
        if isinstance(spec, SleepSpec | WaitSpec):
            total += spec.seconds
            continue
        for n in range(1, spec.max_attempts + 1):
            slow = spec.slow_first if n == 1 and spec.slow_first is not None else 0.0
            timed_out = spec.timeout is not None and slow + spec.delay > spec.timeout
            total += spec.timeout if timed_out and spec.timeout is not None else slow + spec.delay
            if not timed_out and n > spec.fails:
                break
            if n == spec.max_attempts:
                return False, total
            total += min(MAX_DELAY, spec.backoff * 2 ** (n - 1))
    return True, total
