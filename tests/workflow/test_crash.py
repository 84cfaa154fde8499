"""Crash recovery with real processes killed by SIGKILL (worker: crash_worker.py).

The worker runs an `Engine` on a SQLite file with a fixed owner id and the HTTP
tracker posting to a real loopback collector (a `python -m tracker.collector`
subprocess). The test reads the worker's stdout and kills it at chosen points (in
the middle of each step, between each step's effect and the commit of its result)
and at random times, restarting it with the same owner until the run ends. Then:
the run completed; every step.started has exactly one terminal event, a crashed
attempt being reported as step.failed phase crash; the collector holds every
outbox event exactly once; and a step that always crashes its process is stopped
by max_attempts (or by max_crashes, whichever the configuration reaches first).
"""

from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.tracker.conftest import CollectorProcess
from tests.workflow.conftest import describe, guarantee_problems
from tracker.events import Event, parse_event_json
from workflow.storage import RunRecord, RunStatus, SqliteStorage

REPO_ROOT = Path(__file__).resolve().parents[2]
LINE_TIMEOUT = 30.0

pytestmark = pytest.mark.slow


class Worker:
    """A crash_worker.py subprocess whose stdout lines are read by a thread."""

    def __init__(self, *args: str) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        self.spawned = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.workflow.crash_worker", *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[tuple[float, str] | None] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put((time.monotonic(), line.strip()))
        self._lines.put(None)

    def next_line(self, timeout: float) -> tuple[float, str] | str | None:
        """(time read, line); None at the end of the output; "TIMEOUT" if none came."""
        try:
            item = self._lines.get(timeout=timeout)
        except queue.Empty:
            return "TIMEOUT"
        if item is not None:
            self.output.append(item[1])
        return item

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)

    def finish(self) -> int:
        try:
            self.proc.wait(timeout=LINE_TIMEOUT)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung worker
            self.kill()
            self.proc.wait()
        stderr = self.proc.stderr.read() if self.proc.stderr else ""
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        self.stderr = stderr
        return self.proc.returncode


def outbox(db: Path, run_id: str) -> tuple[RunRecord, list[Event], int]:
    with SqliteStorage(db) as storage:
        record = storage.get_run(run_id)
        assert record is not None
        events = [parse_event_json(row.payload_json) for row in storage.run_events(run_id)]
        undelivered = len([r for r in storage.undelivered_events() if r.run_id == run_id])
    return record, events, undelivered


def executions(effects: Path) -> Counter[str]:
    if not effects.exists():
        return Counter()
    return Counter(line.split(" ", 1)[0] for line in effects.read_text().splitlines() if line)


def collector_ids(collector: CollectorProcess, run_id: str) -> list[str]:
    """The event ids the collector stored for the run (it keeps each id once)."""
    deadline = time.monotonic() + 5
    while True:
        ids = [e["event_id"] for e in collector.events(workflow_id=run_id)]
        if ids or time.monotonic() > deadline:
            return ids
        time.sleep(0.05)


def test_killed_at_every_step_boundary_and_at_random_the_run_completes_and_loses_no_event(
    tmp_path: Path, collector_process: CollectorProcess
) -> None:
    db, effects = tmp_path / "runs.db", tmp_path / "effects.txt"
    args = (
        *("run", str(db), "owner-a", "run-1"),
        *("--collector", collector_process.events_url, "--effects", str(effects)),
        *("--step-delay", "0.1", "--linger", "0.3", "--max-attempts", "20"),
        *("--max-crashes", "100"),
    )
    # Kill in the middle of each step (its effect has started), and once each step's
    # side effects are done but its result is not committed yet; and, in between, at
    # random times after the restarted engine is up.
    plan = [(kind, f"s{i}") for i in range(1, 6) for kind in ("STEP", "DONE")]
    rng = random.Random(20261122)
    random_kill_after = {2: rng.uniform(0.0, 0.4), 5: rng.uniform(0.0, 0.4), 8: 0.0}
    kills: list[str] = []
    final: Worker | None = None
    timings: list[tuple[float, ...]] = []
    for incarnation in range(len(plan) + len(random_kill_after) + 5):
        worker = Worker(*args)
        kill_at = random_kill_after.get(incarnation)
        engine_up: float | None = None
        first_step: float | None = None
        result_line: str | None = None
        while True:
            timeout = LINE_TIMEOUT
            if kill_at is not None and engine_up is not None:
                timeout = max(0.0, engine_up + kill_at - time.monotonic())
            item = worker.next_line(timeout)
            if item == "TIMEOUT" and kill_at is not None and engine_up is not None:
                worker.kill()
                kills.append(f"random {kill_at:.2f} s after start")
                break
            if item is None or item == "TIMEOUT":
                break
            assert isinstance(item, tuple)
            at, line = item
            if line.startswith("ENGINE"):
                engine_up = at
            elif line.startswith("STEP") and first_step is None:
                first_step = at
            if plan and line.split()[:2] == list(plan[0]):
                worker.kill()
                kills.append(" ".join(plan.pop(0)))
                break
            elif line.startswith("RESULT"):
                result_line = line
                timings.append(
                    tuple(
                        -1.0 if t is None else t - worker.spawned
                        for t in (engine_up, first_step, at)
                    )
                )
                break
            elif line.startswith("FAILED"):
                pytest.fail(f"the run failed: {line}\n{worker.output}")
        code = worker.finish()
        if result_line is not None:
            final = worker
            assert code == 0, worker.stderr
            break
        assert code == -signal.SIGKILL, f"worker exited with {code}: {worker.stderr}"
    assert final is not None, f"the run never completed; kills: {kills}"
    assert not plan, f"kill points never reached: {plan}"
    startup, first, finished = timings[-1]
    print(
        f"\n[crash sweep] {len(kills)} kills ({', '.join(kills)}); restart to finished: "
        f"engine up {startup:.3f} s after spawn, first re-executed step {first:.3f} s, "
        f"run finished {finished:.3f} s (step s5 re-ran: 0.4 s of step time)"
    )

    result_line = next(line for line in final.output if line.startswith("RESULT"))
    assert json.loads(result_line.split(" ", 1)[1]) == [f"s{i}-ok" for i in range(1, 6)]
    record, events, undelivered = outbox(db, "run-1")
    assert record.status is RunStatus.COMPLETED
    assert guarantee_problems(events) == [], describe(events)
    assert [e.seq for e in events] == list(range(len(events)))
    types = [e.type for e in events]
    # Each restart recovered the run (a random kill just after the engine came up may
    # come before the recovery was recorded).
    recoveries = types.count("workflow.recovered")
    assert len(kills) - len(random_kill_after) <= recoveries <= len(kills)
    # The crash count is of crashes in a row without progress: the run stored step
    # results after its last recovery, so it is back to 0.
    assert record.crash_count == 0
    completed = Counter(e.step_name for e in events if e.type == "step.completed")
    assert completed == Counter({f"s{i}": 1 for i in range(1, 6)})
    failed = [e for e in events if e.type == "step.failed"]
    assert {e.error.phase for e in failed} == {"crash"}, describe(events)
    # Every planned kill hit an attempt; a random one may fall between two attempts.
    assert 10 <= len(failed) <= len(kills), describe(events)
    # Each started attempt ran its effect at most once; only a random kill can land
    # between the commit of step.started and the effect.
    started = Counter(e.step_name for e in events if e.type == "step.started")
    ran = executions(effects)
    for step, count in started.items():
        assert count - len(random_kill_after) <= ran[step] <= count, (step, ran[step], count)
    # The collector has every outbox event exactly once (it dedupes by event id; the
    # outbox re-sends what a killed process delivered but had not marked).
    assert undelivered == 0
    stored = collector_ids(collector_process, "run-1")
    assert len(stored) == len(set(stored))
    assert sorted(stored) == sorted(e.event_id for e in events)


def run_until_ended(args: tuple[str, ...], limit: int) -> tuple[str, int]:
    """Restart the worker until it reports the run's end; (that line, restarts)."""
    for restart in range(limit):
        worker = Worker(*args)
        ended = None
        while (item := worker.next_line(LINE_TIMEOUT)) not in (None, "TIMEOUT"):
            assert isinstance(item, tuple)
            if item[1].startswith(("FAILED", "RESULT", "CANCELLED")):
                ended = item[1]
        code = worker.finish()
        if ended is not None:
            assert code == 0, worker.stderr
            return ended, restart
        assert code == -signal.SIGKILL, f"worker exited with {code}: {worker.stderr}"
    pytest.fail(f"the run did not end after {limit} restarts")


def test_a_step_that_always_crashes_its_process_stops_after_max_attempts(
    tmp_path: Path, collector_process: CollectorProcess
) -> None:
    """max_attempts=3 and max_crashes=10: the third crashed attempt exhausts the step
    (recovery 3 of at most 10), so the run fails with StepFailedError, attempt 3."""
    db, effects = tmp_path / "runs.db", tmp_path / "effects.txt"
    args = (
        *("run", str(db), "owner-a", "run-1", "--workflow", "crashy"),
        *("--collector", collector_process.events_url, "--effects", str(effects)),
        *("--max-attempts", "3", "--max-crashes", "10"),
    )
    ended, restarts = run_until_ended(args, limit=8)
    assert ended == "FAILED StepFailedError boom 3"
    assert restarts == 3
    assert executions(effects) == Counter({"ok": 1, "boom": 3})
    record, events, undelivered = outbox(db, "run-1")
    assert record.status is RunStatus.FAILED
    assert guarantee_problems(events) == [], describe(events)
    boom = [e for e in events if getattr(e, "step_name", None) == "boom"]
    assert [(e.type, e.attempt) for e in boom if e.type.startswith("step.")] == [
        ("step.started", 1),
        ("step.failed", 1),
        ("step.started", 2),
        ("step.failed", 2),
        ("step.started", 3),
        ("step.failed", 3),
    ]
    assert {e.error.phase for e in boom if e.type == "step.failed"} == {"crash"}
    failed = [e for e in events if e.type == "workflow.failed"]
    assert [(e.step_name, e.attempt) for e in failed] == [("boom", 3)]
    assert undelivered == 0
    assert sorted(collector_ids(collector_process, "run-1")) == sorted(e.event_id for e in events)


def test_a_crash_loop_is_stopped_by_max_crashes_before_max_attempts(
    tmp_path: Path, collector_process: CollectorProcess
) -> None:
    """max_attempts=10 and max_crashes=2: recoveries 1 and 2 retry the step, the third
    recovery is over max_crashes, so the run fails with CrashLoopError after three
    attempts; the attempt left started gets its step.failed (phase crash) first, and
    workflow.failed names the step in progress."""
    db, effects = tmp_path / "runs.db", tmp_path / "effects.txt"
    args = (
        *("run", str(db), "owner-a", "run-1", "--workflow", "crashy"),
        *("--collector", collector_process.events_url, "--effects", str(effects)),
        *("--max-attempts", "10", "--max-crashes", "2"),
    )
    ended, restarts = run_until_ended(args, limit=8)
    assert ended.startswith("FAILED CrashLoopError")
    assert restarts == 3
    assert executions(effects) == Counter({"ok": 1, "boom": 3})
    record, events, undelivered = outbox(db, "run-1")
    assert record.status is RunStatus.FAILED
    assert guarantee_problems(events) == [], describe(events)
    started = [e.attempt for e in events if e.type == "step.started" and e.step_name == "boom"]
    assert started == [1, 2, 3]
    assert undelivered == 0
    assert sorted(collector_ids(collector_process, "run-1")) == sorted(e.event_id for e in events)
    failed: list[Any] = [e for e in events if e.type == "workflow.failed"]
    assert [(e.step_name, e.attempt) for e in failed] == [("boom", 3)], describe(events)
    assert ended == "FAILED CrashLoopError boom 3"
