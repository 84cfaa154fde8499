"""Benchmarks of the workflow engine against DBOS (the closest Python peer) and raw SQLite.

Run with `make bench`, or `.venv/bin/python benchmarks/workflow.py`.
Options: `--repeat N` (default 3), `--only SCENARIO` (may be given several times),
`--recover-timeout S` (default 15).

Scenarios (the shapes of the DBOS benchmark in shared/reference/workflow-anchors.md §5),
each measured against its baselines in the same run, the variants interleaved within
each repetition so that disk noise hits them alike; the median of the repetitions is
reported:

- `wf_1000_steps`: one workflow of 1,000 trivial steps on `SqliteStorage` with
  `synchronous="FULL"` in a fresh temp dir, from `engine.start` to `engine.result`.
  Baselines: DBOS, the same workflow (`@DBOS.step`, SQLite system database), and raw
  `sqlite3`, one row insert + commit per step in WAL + FULL. Also reported: the engine
  with `synchronous="NORMAL"`, the longest event-loop stall seen during the run, and
  the storage floor: the engine's own commits (fence, history entries, two events a
  step) applied through `SqliteStorage` with no engine, which splits a step's time
  into what its writes cost and what the engine's Python adds.
  Targets: >= 4x DBOS; within 1.5x of raw SQLite (seconds per step).
- `wf_200x5_concurrent`: 200 workflows of 5 steps started at once, until all results
  are in. Baseline: DBOS `start_workflow` x 200. Target: >= 1,000 steps/s.
- `restart_after_sigkill`: a process runs a 100-step workflow and is SIGKILLed while
  step 50 is in flight; a new process with the same owner recovers the run and
  finishes it. Figure: seconds from spawning the new process to the finished run,
  minus the interpreter start with the same imports (measured separately). Baseline:
  DBOS, same shape (same executor id and app version, polled at 10 ms). Target: <= 0.5 s
  plus interpreter start. The steps have `wf.Retry(max_attempts=3, backoff=0)`: with
  the default policy (one attempt) the crashed attempt would fail the step, and the run.
- `replay_10k`: resuming a paused run whose history holds 10,000 completed steps (it
  replays them all, then pauses again at a long durable sleep): microseconds per
  replayed entry. Baselines: the same with 0 steps (fixed cost), and the data floor
  (`load_history` + decoding each result). Target: <= 50 us per entry.
- `storage_thread_hop`: one step-shaped commit (`PutEntry` + `AppendEvents` +
  `UpdateRun`) called directly on the event loop versus through
  `anyio.to_thread.run_sync`, per synchronous mode: the numbers behind the engine's
  choice to call storage synchronously (docs/design/workflow-engine.md).

A full run takes 10 to 30 minutes on the development machine, mostly DBOS waiting on
fsyncs; `--repeat 1 --only ...` for a quick look.

Every measurement runs in a fresh subprocess (this script with `--child`), in a new
temporary directory. If `dbos` is not importable (it is in the `bench` extra), the
DBOS lines are replaced by one JSON line saying so. Each result is checked (the
workflow's value, the number of events), so a broken run fails instead of printing a
fast number.

Output: one JSON line per comparison, with `scenario`, `n`, `seconds`, the figure
(`steps_per_s`, `us_per_entry` or `us_per_commit`), `baseline`, the baseline's figure,
`ratio`, `ratio_meaning`, `target`, `target_met` and the individual `runs`. `ratio` is
the median of the per-repetition ratios (the variants of one repetition run back to
back, so disk noise cancels better than in a ratio of medians).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# This file is named workflow.py: drop its own directory from the import path, or
# `import workflow` would import this script instead of the package.
sys.path[:] = [ROOT] + [p for p in sys.path if os.path.abspath(p or os.curdir) not in (HERE, ROOT)]

RESULT_PREFIX = "BENCH-RESULT "
OWNER = "bench-owner"
VICTIM_RUN = "victim"
REPLAY_RUN = "replay-run"
SCENARIOS = (
    "wf_1000_steps",
    "wf_200x5_concurrent",
    "restart_after_sigkill",
    "replay_10k",
    "storage_thread_hop",
)
ANCHOR_DBOS = {  # measured here earlier (workflow-anchors.md §5), for reference only
    "wf_1000_steps": "241 steps/s",
    "wf_200x5_concurrent": "129-134 steps/s",
    "restart_after_sigkill": "1.83 s to result",
}


# ======================================================================================
# Children: each prints one line `BENCH-RESULT {json}` and exits.
# ======================================================================================


def _emit(result: dict[str, Any]) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


# -- our engine ------------------------------------------------------------------------


def _chain_workflow(name: str, hang_at: int | None = None, marker: str | None = None) -> Any:
    """A workflow of `n` trivial steps `s0..s{n-1}` returning their sum. With `hang_at`,
    that step writes `marker` and then hangs (the victim of the restart scenario).
    Steps retry (no backoff) so that an attempt cut by a crash runs again."""
    import effect as fx
    import workflow as wf

    def body(i: int) -> Any:
        if i == hang_at:

            def touch() -> None:
                assert marker is not None
                with open(marker, "w"):
                    pass

            return fx.sync(touch).and_then(fx.sleep(3600)).as_(i)
        return fx.succeed(i)

    retry = wf.Retry(max_attempts=3, backoff=0.0) if marker is not None else None

    @wf.workflow(name)
    def chain(n: int) -> Any:
        total = 0
        for i in range(n):
            total += yield from wf.step(f"s{i}", body(i), retry=retry)
        return total

    return chain


class _StallProbe:
    """Ticks every 5 ms on the event loop; `max_stall_ms` is the longest it was late,
    i.e. the longest the loop was blocked."""

    def __init__(self) -> None:
        self.max_stall_ms = 0.0
        self.running = True

    async def run(self) -> None:
        import anyio

        while self.running:
            before = time.perf_counter()
            await anyio.sleep(0.005)
            late = (time.perf_counter() - before - 0.005) * 1000
            self.max_stall_ms = max(self.max_stall_ms, late)


async def _child_ours_steps(tmp: str, n: int, synchronous: str) -> dict[str, Any]:
    import anyio

    import workflow as wf
    from workflow.storage import SqliteStorage

    chain = _chain_workflow("chain")
    storage = SqliteStorage(os.path.join(tmp, "ours.db"), synchronous=synchronous)  # type: ignore[arg-type]
    probe = _StallProbe()
    engine = wf.Engine([chain], storage=storage, owner=OWNER)
    async with engine, anyio.create_task_group() as tg:
        tg.start_soon(probe.run)
        await anyio.sleep(0.02)
        start = time.perf_counter()
        run_id = await engine.start(chain, n)
        result = await engine.result(run_id)
        seconds = time.perf_counter() - start
        probe.running = False
    assert result == n * (n - 1) // 2, result
    events = storage.run_events(run_id)
    # queued, started, 2 per step, completed
    assert len(events) == 2 * n + 3, len(events)
    storage.close()
    return {"seconds": seconds, "loop_max_stall_ms": probe.max_stall_ms}


async def _child_ours_concurrent(
    tmp: str, runs: int, steps: int, synchronous: str
) -> dict[str, Any]:
    import anyio

    import workflow as wf
    from workflow.storage import SqliteStorage

    chain = _chain_workflow("five")
    storage = SqliteStorage(os.path.join(tmp, "ours.db"), synchronous=synchronous)  # type: ignore[arg-type]
    results: dict[int, int] = {}
    async with wf.Engine([chain], storage=storage, owner=OWNER) as engine:

        async def one(k: int) -> None:
            run_id = await engine.start(chain, steps)
            results[k] = await engine.result(run_id)

        start = time.perf_counter()
        async with anyio.create_task_group() as tg:
            for k in range(runs):
                tg.start_soon(one, k)
        seconds = time.perf_counter() - start
    assert len(results) == runs and set(results.values()) == {steps * (steps - 1) // 2}
    storage.close()
    return {"seconds": seconds}


class _Watch:
    """A `Storage` that delegates everything and notes when a run's status moves to
    paused or a terminal status, and when the first step attempt is started."""

    def __init__(self, inner: Any) -> None:
        import anyio

        self._inner = inner
        self.ended = anyio.Event()
        self.ended_at: float | None = None
        self.ended_wall: float | None = None
        self.status: str | None = None
        self.first_step_wall: float | None = None
        self.step_writes = 0
        self.steps_started = 0

    def apply(self, ops: Any) -> None:
        from workflow.storage import PutEntry, RunStatus, UpdateRun

        self._inner.apply(ops)
        for op in ops:
            if isinstance(op, PutEntry) and op.entry.kind == "step":
                self.step_writes += 1
                if op.entry.status == "started":
                    self.steps_started += 1
                    if self.first_step_wall is None:
                        self.first_step_wall = time.time()
            if isinstance(op, UpdateRun):
                status = op.changes.get("status")
                if status in (
                    RunStatus.PAUSED,
                    RunStatus.COMPLETED,
                    RunStatus.FAILED,
                    RunStatus.CANCELLED,
                ):
                    self.ended_at = time.perf_counter()
                    self.ended_wall = time.time()
                    self.status = str(getattr(status, "value", status))
                    self.ended.set()

    def apply_each(self, batches: Any) -> list[Exception | None]:
        from workflow.storage import apply_one_by_one

        return apply_one_by_one(self, batches)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


async def _child_ours_victim(tmp: str, marker: str) -> dict[str, Any]:
    import anyio

    import workflow as wf
    from workflow.storage import SqliteStorage

    chain = _chain_workflow("long", hang_at=50, marker=marker)
    storage = SqliteStorage(os.path.join(tmp, "ours.db"))
    async with wf.Engine([chain], storage=storage, owner=OWNER) as engine:
        await engine.start(chain, 100, id=VICTIM_RUN)
        await anyio.sleep(3600)  # SIGKILLed here
    return {}


async def _child_ours_recover(tmp: str, marker: str, timeout: float) -> dict[str, Any]:
    import anyio

    import workflow as wf
    from workflow.storage import SqliteStorage

    chain = _chain_workflow("long", marker=marker)
    inner = SqliteStorage(os.path.join(tmp, "ours.db"))
    storage = _Watch(inner)
    result: Any = None
    finished_wall: float | None = None
    async with wf.Engine([chain], storage=storage, owner=OWNER) as engine:  # type: ignore[arg-type]
        with anyio.move_on_after(timeout):
            result = await engine.result(VICTIM_RUN)
            finished_wall = time.time()
    record = inner.get_run(VICTIM_RUN)
    inner.close()
    if finished_wall is not None:
        assert result == 100 * 99 // 2, result
    return {
        "finished": finished_wall is not None,
        "finished_wall": finished_wall,
        "first_step_wall": storage.first_step_wall,
        "steps_reexecuted": storage.steps_started,
        "status": record.status.value if record else None,
        "lease_owner": record.lease_owner if record else None,
    }


def _replay_workflow() -> Any:
    """`count` trivial steps, then two long durable sleeps: the replay scenario's
    run pauses at the first, and `engine.resume` (which ends the wait it resumes)
    brings it to the second after replaying every step."""
    import effect as fx
    import workflow as wf

    @wf.workflow("replay")
    def replay(count: int) -> Any:
        total = 0
        for i in range(count):
            total += yield from wf.step(f"s{i}", fx.succeed(i))
        yield from wf.sleep("end", 86_400)
        yield from wf.sleep("again", 86_400)
        return total

    return replay


async def _child_replay_make(tmp: str, n: int, db: str) -> dict[str, Any]:
    import anyio

    import workflow as wf
    from workflow.storage import RunStatus, SqliteStorage

    replay = _replay_workflow()
    storage = SqliteStorage(db, synchronous="OFF")
    async with wf.Engine([replay], storage=storage, owner=OWNER) as engine:
        await engine.start(replay, n, id=REPLAY_RUN)
        while (await engine.status(REPLAY_RUN)) is not RunStatus.PAUSED:
            await anyio.sleep(0.05)
    storage.close()
    return {}


async def _child_replay_resume(tmp: str, n: int, db: str) -> dict[str, Any]:
    import anyio

    import workflow as wf
    from workflow import codec
    from workflow.storage import SqliteStorage

    replay = _replay_workflow()
    inner = SqliteStorage(db)
    # The floor: reading the history and decoding every stored result.
    start = time.perf_counter()
    entries = inner.load_history(REPLAY_RUN)
    decoded = [codec.decode(e.result_json) for e in entries if e.result_json is not None]
    floor = time.perf_counter() - start
    assert len(decoded) == n, len(decoded)
    storage = _Watch(inner)
    async with wf.Engine([replay], storage=storage, owner=OWNER) as engine:  # type: ignore[arg-type]
        start = time.perf_counter()
        await engine.resume(REPLAY_RUN)
        with anyio.fail_after(600):
            await storage.ended.wait()
    assert storage.ended_at is not None
    seconds = storage.ended_at - start
    assert storage.status == "paused", storage.status
    assert storage.step_writes == 0, f"{storage.step_writes} steps ran again instead of replaying"
    inner.close()
    return {"seconds": seconds, "floor_seconds": floor}


async def _child_thread_hop(tmp: str, n: int, synchronous: str) -> dict[str, Any]:
    import anyio
    import anyio.lowlevel
    import anyio.to_thread

    from workflow.storage import (
        AppendEvents,
        HistoryEntry,
        InsertRun,
        PutEntry,
        RunRecord,
        RunStatus,
        SqliteStorage,
        UpdateRun,
    )

    storage = SqliteStorage(os.path.join(tmp, "hop.db"), synchronous=synchronous)  # type: ignore[arg-type]
    payload = json.dumps({"type": "step.completed", "step_name": "s", "pad": "x" * 200})
    out: dict[str, Any] = {}
    seq = 0
    for mode in ("direct", "thread"):
        run_id = f"r-{mode}"
        storage.apply([InsertRun(RunRecord(run_id, "wf", "null", RunStatus.RUNNING, 0.0, 0.0))])
        probe = _StallProbe()

        def ops(i: int, run_id: str = run_id) -> list[Any]:
            entry = HistoryEntry(run_id, f"s{i}", "step", "completed", 1, result_json=str(i))
            return [
                UpdateRun(run_id, {}, expect_owner=None),
                PutEntry(entry),
                AppendEvents(run_id, [(i, payload)]),
            ]

        async with anyio.create_task_group() as tg:
            tg.start_soon(probe.run)
            await anyio.sleep(0.02)
            start = time.perf_counter()
            for i in range(n):
                if mode == "direct":
                    storage.apply(ops(i))
                    await anyio.lowlevel.checkpoint()
                else:
                    await anyio.to_thread.run_sync(storage.apply, ops(i))
                seq += 1
            out[f"{mode}_seconds"] = time.perf_counter() - start
            out[f"{mode}_loop_max_stall_ms"] = probe.max_stall_ms
            probe.running = False
    # The hop alone.
    start = time.perf_counter()
    for _ in range(n):
        await anyio.to_thread.run_sync(_noop)
    out["hop_only_seconds"] = time.perf_counter() - start
    storage.close()
    return out


def _noop() -> None:
    return None


def _child_raw_sqlite(tmp: str, n: int, synchronous: str) -> dict[str, Any]:
    import sqlite3

    conn = sqlite3.connect(os.path.join(tmp, "raw.db"), isolation_level=None)
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    assert mode == "wal", mode
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES (?)", (str(i),))
        conn.execute("COMMIT")
    seconds = time.perf_counter() - start
    assert conn.execute("SELECT COUNT(*) FROM t").fetchone()[0] == n
    conn.close()
    return {"seconds": seconds}


def _child_storage_floor(tmp: str, n: int, synchronous: str) -> dict[str, Any]:
    """The commits of the 1,000-step run without the engine: per step, the batch the
    engine hands the group commit (the lease fence, the previous step's result, this
    step's start, their two events), built ahead and applied with
    `SqliteStorage.apply_each` as the writer does. What is left of a step's time is
    the engine's Python."""
    from tracker.events import StepCompleted, StepStarted
    from workflow.storage import (
        AppendEvents,
        HistoryEntry,
        InsertRun,
        PutEntry,
        RunRecord,
        RunStatus,
        SqliteStorage,
        UpdateRun,
    )

    storage = SqliteStorage(os.path.join(tmp, "floor.db"), synchronous=synchronous)  # type: ignore[arg-type]
    run_id, name, failures = "floor", "chain", json.dumps({"failures": 0})
    record = RunRecord(
        run_id, name, str(n), RunStatus.RUNNING, 0.0, 0.0, lease_owner=OWNER, lease_expires_at=1e18
    )
    storage.apply([InsertRun(record)])

    def event(cls: Any, i: int, **fields: Any) -> str:
        envelope = {"workflow_id": run_id, "workflow_name": name, "execution_id": run_id}
        return str(cls(**envelope, step_name=f"s{i}", attempt=1, seq=i, **fields).to_json())

    def entry(i: int, status: str, result_json: str | None = None) -> Any:
        return PutEntry(
            HistoryEntry(
                run_id, f"s{i}", "step", status, 1, result_json=result_json, data_json=failures
            )
        )

    batches: list[list[Any]] = []
    for i in range(n):
        ops = [UpdateRun(run_id, {}, expect_owner=OWNER)]
        events = [(2 * i + 1, event(StepStarted, i))]
        if i:
            ops.append(entry(i - 1, "completed", str(i - 1)))
            events.insert(0, (2 * i, event(StepCompleted, i - 1, duration_ms=0.01)))
        ops += [entry(i, "started"), AppendEvents(run_id, events)]
        batches.append(ops)
    start = time.perf_counter()
    for ops in batches:
        assert storage.apply_each([ops]) == [None]
    seconds = time.perf_counter() - start
    assert len(storage.load_history(run_id)) == n
    storage.close()
    return {"seconds": seconds}


# -- DBOS --------------------------------------------------------------------------------


def _dbos_app(tmp: str, hang_at: int | None = None, marker: str | None = None) -> Any:
    """Configure DBOS on a SQLite file in `tmp` and define the benchmark's workflows.
    Defined in one place so the victim and the recovering process register the same
    names; the app version and executor id are pinned so recovery finds the run."""
    import logging

    from dbos import DBOS, DBOSConfig

    config: DBOSConfig = {
        "name": "bench",
        "system_database_url": f"sqlite:///{os.path.join(tmp, 'dbos.sqlite')}",
        "application_version": "bench-1",
        "executor_id": "local",
        "log_level": "WARNING",
    }
    DBOS(config=config)
    logging.getLogger("dbos").setLevel(logging.WARNING)
    first_step: list[float] = []

    @DBOS.step()
    def s(i: int) -> int:
        if not first_step:
            first_step.append(time.time())
        if i == hang_at:
            assert marker is not None
            with open(marker, "w"):
                pass
            time.sleep(3600)
        return i

    @DBOS.workflow()
    def chain(n: int) -> int:
        total = 0
        for i in range(n):
            total += s(i)
        return total

    return DBOS, chain, first_step


def _child_dbos_steps(tmp: str, n: int) -> dict[str, Any]:
    dbos, chain, _ = _dbos_app(tmp)
    dbos.launch()
    start = time.perf_counter()
    result = chain(n)
    seconds = time.perf_counter() - start
    assert result == n * (n - 1) // 2
    dbos.destroy()
    return {"seconds": seconds}


def _child_dbos_concurrent(tmp: str, runs: int, steps: int) -> dict[str, Any]:
    dbos, chain, _ = _dbos_app(tmp)
    dbos.launch()
    start = time.perf_counter()
    handles = [dbos.start_workflow(chain, steps) for _ in range(runs)]
    results = [h.get_result() for h in handles]
    seconds = time.perf_counter() - start
    assert set(results) == {steps * (steps - 1) // 2}
    dbos.destroy()
    return {"seconds": seconds}


def _child_dbos_victim(tmp: str, marker: str) -> dict[str, Any]:
    from dbos import SetWorkflowID

    dbos, chain, _ = _dbos_app(tmp, hang_at=50, marker=marker)
    dbos.launch()
    with SetWorkflowID(VICTIM_RUN):
        dbos.start_workflow(chain, 100)
    time.sleep(3600)  # SIGKILLed here
    return {}


def _child_dbos_recover(tmp: str, timeout: float) -> dict[str, Any]:
    dbos, _, first_step = _dbos_app(tmp)
    dbos.launch()
    deadline = time.monotonic() + timeout
    finished_wall = None
    while time.monotonic() < deadline:
        status = dbos.get_workflow_status(VICTIM_RUN)
        if status is not None and status.status == "SUCCESS":
            finished_wall = time.time()
            break
        time.sleep(0.01)
    result = dbos.retrieve_workflow(VICTIM_RUN).get_result() if finished_wall else None
    if finished_wall is not None:
        assert result == 100 * 99 // 2, result
    dbos.destroy()
    return {
        "finished": finished_wall is not None,
        "finished_wall": finished_wall,
        "first_step_wall": first_step[0] if first_step else None,
    }


def _child_imports(which: str) -> dict[str, Any]:
    if which == "ours":
        import anyio  # noqa: F401

        import effect  # noqa: F401
        import tracker  # noqa: F401
        import workflow  # noqa: F401
        from workflow.storage import SqliteStorage  # noqa: F401
    else:
        import dbos  # noqa: F401
    return {"imported_wall": time.time()}


def _run_child(argv: list[str]) -> None:
    import anyio

    kind, tmp, *rest = argv
    out: dict[str, Any]
    if kind == "ours-steps":
        out = anyio.run(_child_ours_steps, tmp, int(rest[0]), rest[1])
    elif kind == "ours-concurrent":
        out = anyio.run(_child_ours_concurrent, tmp, int(rest[0]), int(rest[1]), rest[2])
    elif kind == "ours-victim":
        out = anyio.run(_child_ours_victim, tmp, rest[0])
    elif kind == "ours-recover":
        out = anyio.run(_child_ours_recover, tmp, rest[0], float(rest[1]))
    elif kind == "replay-make":
        out = anyio.run(_child_replay_make, tmp, int(rest[0]), rest[1])
    elif kind == "replay-resume":
        out = anyio.run(_child_replay_resume, tmp, int(rest[0]), rest[1])
    elif kind == "thread-hop":
        out = anyio.run(_child_thread_hop, tmp, int(rest[0]), rest[1])
    elif kind == "raw-sqlite":
        out = _child_raw_sqlite(tmp, int(rest[0]), rest[1])
    elif kind == "storage-floor":
        out = _child_storage_floor(tmp, int(rest[0]), rest[1])
    elif kind == "dbos-steps":
        out = _child_dbos_steps(tmp, int(rest[0]))
    elif kind == "dbos-concurrent":
        out = _child_dbos_concurrent(tmp, int(rest[0]), int(rest[1]))
    elif kind == "dbos-victim":
        out = _child_dbos_victim(tmp, rest[0])
    elif kind == "dbos-recover":
        out = _child_dbos_recover(tmp, float(rest[0]))
    elif kind == "imports":
        out = _child_imports(rest[0])
    else:
        raise SystemExit(f"unknown child {kind!r}")
    _emit(out)


# ======================================================================================
# Parent: spawns the children, collects medians, prints the JSON lines.
# ======================================================================================


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _child_cmd(kind: str, tmp: str, *args: object) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), "--child", kind, tmp, *map(str, args)]


def _parse(stdout: str, cmd: list[str], stderr: str = "") -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            return result
    raise RuntimeError(f"child {cmd[3:]} printed no result\nstdout:\n{stdout}\nstderr:\n{stderr}")


def child(kind: str, *args: object, tmp: str | None = None, timeout: float = 900) -> dict[str, Any]:
    """Run one measurement in a fresh process (in a fresh temp dir unless given)."""
    own_tmp = tmp is None
    tmp = tmp or tempfile.mkdtemp(prefix="wfbench-")
    cmd = _child_cmd(kind, tmp, *args)
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=_env(), check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"child {kind} {args} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return _parse(proc.stdout, cmd, proc.stderr)
    finally:
        if own_tmp:
            shutil.rmtree(tmp, ignore_errors=True)


def _spawn_timed(kind: str, tmp: str, *args: object, timeout: float = 120) -> dict[str, Any]:
    """Run a child and add `spawn_wall`, the wall time just before it was spawned."""
    cmd = _child_cmd(kind, tmp, *args)
    spawn_wall = time.time()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=_env(), check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"child {kind} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    result = _parse(proc.stdout, cmd, proc.stderr)
    result["spawn_wall"] = spawn_wall
    return result


def _kill_at_marker(kind: str, tmp: str, marker: str, timeout: float = 120) -> None:
    """Start the victim, wait until it is inside step 50, SIGKILL it."""
    cmd = _child_cmd(kind, tmp, marker)
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env()
    )
    deadline = time.monotonic() + timeout
    try:
        while not os.path.exists(marker):
            if proc.poll() is not None:
                raise RuntimeError(f"victim {kind} exited early: {proc.stderr.read()}")  # type: ignore[union-attr]
            if time.monotonic() > deadline:
                raise RuntimeError(f"victim {kind} never reached step 50")
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    os.remove(marker)


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _paired(numerators: list[float], denominators: list[float]) -> float:
    """The median of the per-repetition ratios. The variants of one repetition run
    back to back, so their ratio is far less noisy (on a shared disk) than the ratio
    of two medians taken from different moments."""
    return _median([a / b for a, b in zip(numerators, denominators, strict=True)])


def _r(x: float, digits: int = 3) -> float:
    return round(x, digits)


def _print(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)


def _dbos_available() -> bool:
    return importlib.util.find_spec("dbos") is not None


def _dbos_skipped(scenario: str) -> None:
    _print(
        {
            "scenario": scenario,
            "baseline": "dbos",
            "skipped": "dbos is not importable; install the bench extra: pip install -e '.[bench]'",
        }
    )


def _line(
    scenario: str,
    n: int,
    runs: list[float],
    *,
    figure: str,
    to_figure: Callable[[float], float],
    baseline: str,
    baseline_runs: list[float],
    ratio: float,
    ratio_meaning: str,
    target: str,
    target_met: bool,
    **extra: Any,
) -> None:
    seconds = _median(runs)
    base_seconds = _median(baseline_runs)
    _print(
        {
            "scenario": scenario,
            "n": n,
            "seconds": _r(seconds, 4),
            figure: _r(to_figure(seconds), 1),
            "baseline": baseline,
            f"baseline_{figure}": _r(to_figure(base_seconds), 1),
            "ratio": _r(ratio, 2),
            "ratio_meaning": ratio_meaning,
            "target": target,
            "target_met": target_met,
            "runs": [_r(x, 4) for x in runs],
            "baseline_runs": [_r(x, 4) for x in baseline_runs],
            **extra,
        }
    )


# -- scenarios ---------------------------------------------------------------------------


def bench_1000_steps(repeat: int, n: int = 1000) -> None:
    has_dbos = _dbos_available()
    full: list[float] = []
    normal: list[float] = []
    raw: list[float] = []
    raw_normal: list[float] = []
    floor: list[float] = []
    dbos: list[float] = []
    stalls: list[float] = []
    for _ in range(repeat):
        result = child("ours-steps", n, "FULL")
        full.append(result["seconds"])
        stalls.append(result["loop_max_stall_ms"])
        if has_dbos:
            dbos.append(child("dbos-steps", n)["seconds"])
        raw.append(child("raw-sqlite", n, "FULL")["seconds"])
        floor.append(child("storage-floor", n, "FULL")["seconds"])
        normal.append(child("ours-steps", n, "NORMAL")["seconds"])
        raw_normal.append(child("raw-sqlite", n, "NORMAL")["seconds"])

    def per_s(seconds: float) -> float:
        return n / seconds

    sc = "wf_1000_steps"
    if has_dbos:
        ratio = _paired(dbos, full)
        _line(
            sc,
            n,
            full,
            figure="steps_per_s",
            to_figure=per_s,
            baseline="dbos (sqlite)",
            baseline_runs=dbos,
            ratio=ratio,
            ratio_meaning="our steps/s divided by the baseline's",
            target=">= 4x dbos",
            target_met=ratio >= 4,
            storage="sqlite synchronous=FULL",
            loop_max_stall_ms=_r(_median(stalls), 1),
            dbos_anchor=ANCHOR_DBOS[sc],
        )
    else:
        _dbos_skipped(sc)

    def slower(
        runs: list[float], base: list[float], baseline: str, mode: str, limit: float = 0
    ) -> None:
        """A line comparing seconds per step, with a target `<= limit` x if given."""
        ratio = _paired(runs, base)
        _line(
            sc,
            n,
            runs,
            figure="steps_per_s",
            to_figure=per_s,
            baseline=baseline,
            baseline_runs=base,
            ratio=ratio,
            ratio_meaning="our seconds per step divided by the baseline's (lower is better)",
            target=f"<= {limit}x raw sqlite" if limit else "(none; reported)",
            target_met=not limit or ratio <= limit,
            storage=f"sqlite synchronous={mode}",
        )

    slower(full, raw, "raw sqlite3 insert+commit per step, WAL+FULL", "FULL", limit=1.5)
    slower(
        full,
        floor,
        "storage floor: the engine's commits via SqliteStorage, no engine, WAL+FULL",
        "FULL",
    )
    slower(normal, raw_normal, "raw sqlite3 insert+commit per step, WAL+NORMAL", "NORMAL")
    if has_dbos:
        ratio = _paired(dbos, normal)
        _line(
            sc,
            n,
            normal,
            figure="steps_per_s",
            to_figure=per_s,
            baseline="dbos (sqlite)",
            baseline_runs=dbos,
            ratio=ratio,
            ratio_meaning="our steps/s divided by the baseline's",
            target=">= 4x dbos",
            target_met=ratio >= 4,
            storage="sqlite synchronous=NORMAL",
        )


def bench_200x5(repeat: int, runs: int = 200, steps: int = 5) -> None:
    has_dbos = _dbos_available()
    full: list[float] = []
    normal: list[float] = []
    dbos: list[float] = []
    for _ in range(repeat):
        full.append(child("ours-concurrent", runs, steps, "FULL")["seconds"])
        if has_dbos:
            dbos.append(child("dbos-concurrent", runs, steps)["seconds"])
        normal.append(child("ours-concurrent", runs, steps, "NORMAL")["seconds"])
    n = runs * steps

    def per_s(seconds: float) -> float:
        return n / seconds

    sc = "wf_200x5_concurrent"
    if not has_dbos:
        _dbos_skipped(sc)
    for storage, ours in (("sqlite synchronous=FULL", full), ("sqlite synchronous=NORMAL", normal)):
        if has_dbos:
            _line(
                sc,
                n,
                ours,
                figure="steps_per_s",
                to_figure=per_s,
                baseline="dbos (sqlite), start_workflow x 200",
                baseline_runs=dbos,
                ratio=_paired(dbos, ours),
                ratio_meaning="our steps/s divided by the baseline's",
                target=">= 1000 steps/s",
                target_met=per_s(_median(ours)) >= 1000,
                storage=storage,
                dbos_anchor=ANCHOR_DBOS[sc],
            )
        else:
            _print(
                {
                    "scenario": sc,
                    "n": n,
                    "seconds": _r(_median(ours), 4),
                    "steps_per_s": _r(per_s(_median(ours)), 1),
                    "target": ">= 1000 steps/s",
                    "target_met": per_s(_median(ours)) >= 1000,
                    "storage": storage,
                    "runs": [_r(x, 4) for x in ours],
                }
            )


def _restart_once(ours: bool, timeout: float) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="wfbench-")
    marker = os.path.join(tmp, "in-step-50")
    try:
        if ours:
            _kill_at_marker("ours-victim", tmp, marker)
            result = _spawn_timed("ours-recover", tmp, marker, timeout, timeout=timeout + 60)
        else:
            _kill_at_marker("dbos-victim", tmp, marker)
            result = _spawn_timed("dbos-recover", tmp, timeout, timeout=timeout + 60)
        imports = _spawn_timed("imports", tmp, "ours" if ours else "dbos")
        result["interpreter_start"] = imports["imported_wall"] - imports["spawn_wall"]
        if result["finished"]:
            result["to_finished"] = result["finished_wall"] - result["spawn_wall"]
        if result.get("first_step_wall"):
            result["to_first_step"] = result["first_step_wall"] - result["spawn_wall"]
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def bench_restart(repeat: int, timeout: float) -> None:
    sc = "restart_after_sigkill"
    has_dbos = _dbos_available()
    ours: list[dict[str, Any]] = []
    dbos: list[dict[str, Any]] = []
    for _ in range(repeat):
        ours.append(_restart_once(True, timeout))
        if has_dbos:
            dbos.append(_restart_once(False, timeout))
        if not ours[-1]["finished"]:
            break  # each failed try costs `timeout` seconds

    def summary(results: list[dict[str, Any]]) -> dict[str, Any]:
        done = [r for r in results if r["finished"]]
        out: dict[str, Any] = {"finished": f"{len(done)}/{len(results)}"}
        if done:
            total = _median([r["to_finished"] for r in done])
            start = _median([r["interpreter_start"] for r in done])
            out.update(
                to_finished_s=_r(total),
                interpreter_start_s=_r(start),
                net_s=_r(_median([r["to_finished"] - r["interpreter_start"] for r in done])),
                to_first_step_s=_r(_median([r.get("to_first_step", 0.0) for r in done])),
                runs_net_s=[_r(r["to_finished"] - r["interpreter_start"]) for r in done],
            )
        else:
            r = results[0]
            out.update(
                timeout_s=timeout,
                run_status_after_timeout=r.get("status"),
                lease_owner=r.get("lease_owner"),
            )
        return out

    mine = summary(ours)
    line: dict[str, Any] = {
        "scenario": sc,
        "variant": "the restarted process has the same owner id",
        "n": 100,
        **mine,
        "target": "<= 0.5 s plus interpreter start",
        "target_met": "net_s" in mine and mine["net_s"] <= 0.5,
    }
    if not ours[-1]["finished"]:
        line["note"] = "the restarted process did not finish the run within the timeout"
    if has_dbos:
        base = summary(dbos)
        line.update(
            baseline="dbos (sqlite), same executor id, polled at 10 ms",
            baseline_to_finished_s=base.get("to_finished_s"),
            baseline_net_s=base.get("net_s"),
            baseline_interpreter_start_s=base.get("interpreter_start_s"),
            baseline_to_first_step_s=base.get("to_first_step_s"),
            baseline_finished=base["finished"],
            dbos_anchor=ANCHOR_DBOS[sc],
        )
        if "to_finished_s" in mine and base.get("to_finished_s"):
            line["ratio"] = _r(base["to_finished_s"] / mine["to_finished_s"], 2)
            line["ratio_meaning"] = "baseline seconds to finished / ours (higher is better)"
    _print(line)
    if not has_dbos:
        _dbos_skipped(sc)


def bench_replay(repeat: int, n: int = 10_000) -> None:
    sc = "replay_10k"
    work = tempfile.mkdtemp(prefix="wfbench-")
    try:
        templates = {}
        for count in (n, 0):
            path = os.path.join(work, f"template-{count}.db")
            child("replay-make", count, path, tmp=work, timeout=1800)
            templates[count] = path
        full: list[float] = []
        empty: list[float] = []
        floor: list[float] = []
        for rep in range(repeat):
            for count, into in ((n, full), (0, empty)):
                copy = os.path.join(work, f"copy-{count}-{rep}.db")
                shutil.copyfile(templates[count], copy)
                result = child("replay-resume", count, copy, tmp=work)
                into.append(result["seconds"])
                if count == n:
                    floor.append(result["floor_seconds"])
    finally:
        shutil.rmtree(work, ignore_errors=True)

    def us(seconds: float) -> float:
        return seconds / n * 1e6

    per_entry = us(_median(full))
    marginal = (_median(full) - _median(empty)) / n * 1e6
    _line(
        sc,
        n,
        full,
        figure="us_per_entry",
        to_figure=us,
        baseline="load_history + codec.decode of every entry (the data floor)",
        baseline_runs=floor,
        ratio=_paired(full, floor),
        ratio_meaning="our seconds divided by the floor's (lower is better)",
        target="<= 50 us per replayed entry",
        target_met=per_entry <= 50,
        storage="sqlite synchronous=FULL",
        fixed_cost_s=_r(_median(empty), 4),
        marginal_us_per_entry=_r(marginal, 1),
        runs_fixed_cost=[_r(x, 4) for x in empty],
    )


def bench_thread_hop(repeat: int) -> None:
    sc = "storage_thread_hop"
    for synchronous, n in (("FULL", 300), ("NORMAL", 2000), ("OFF", 2000)):
        results = [child("thread-hop", n, synchronous) for _ in range(repeat)]

        def med(key: str, results: list[dict[str, Any]] = results) -> float:
            return _median([r[key] for r in results])

        direct = med("direct_seconds")
        thread = med("thread_seconds")
        paired = _paired(
            [r["thread_seconds"] for r in results], [r["direct_seconds"] for r in results]
        )
        _print(
            {
                "scenario": sc,
                "n": n,
                "storage": f"sqlite synchronous={synchronous}",
                "seconds": _r(thread, 4),
                "us_per_commit": _r(thread / n * 1e6, 1),
                "variant": "anyio.to_thread.run_sync(storage.apply, ops)",
                "baseline": "storage.apply(ops) on the event loop",
                "baseline_us_per_commit": _r(direct / n * 1e6, 1),
                "ratio": _r(paired, 2),
                "ratio_meaning": "thread hop seconds divided by direct (lower is better)",
                "hop_only_us": _r(med("hop_only_seconds") / n * 1e6, 1),
                "direct_loop_max_stall_ms": _r(med("direct_loop_max_stall_ms"), 2),
                "thread_loop_max_stall_ms": _r(med("thread_loop_max_stall_ms"), 2),
                "runs_direct": [_r(r["direct_seconds"], 4) for r in results],
                "runs_thread": [_r(r["thread_seconds"], 4) for r in results],
            }
        )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _run_child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", action="append", choices=SCENARIOS)
    parser.add_argument("--recover-timeout", type=float, default=15.0)
    args = parser.parse_args()
    chosen = args.only or list(SCENARIOS)
    if "wf_1000_steps" in chosen:
        bench_1000_steps(args.repeat)
    if "wf_200x5_concurrent" in chosen:
        bench_200x5(args.repeat)
    if "restart_after_sigkill" in chosen:
        bench_restart(args.repeat, args.recover_timeout)
    if "replay_10k" in chosen:
        bench_replay(args.repeat)
    if "storage_thread_hop" in chosen:
        bench_thread_hop(args.repeat)


if __name__ == "__main__":
    main()
