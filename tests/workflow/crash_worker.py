"""A worker process for the crash tests (test_crash.py) and the lease tests (test_leases.py).

Usage (from the repository root):
    python -m tests.workflow.crash_worker run DB OWNER RUN_ID [options]   start or resume a run
    python -m tests.workflow.crash_worker many DB OWNER N [options]       work on many runs

`run` opens `SqliteStorage(DB)` and an `Engine` with the fixed owner OWNER and (with
--collector URL) the HTTP tracker posting to the collector; starts run RUN_ID of the
chosen workflow (idempotent: a run that exists is not started again, the engine
recovers it) and exits when the run has ended, printing ``RESULT <json>``,
``FAILED <error type> <step> <attempt>`` or ``CANCELLED``.

Each step's effect, when it runs, appends ``<step> <pid>`` to the side-effect file
(--effects; fsynced) and prints ``STEP <step> <n>`` (flushed), n being how many times
that step's effect has started so far, across processes. It then waits --step-delay
seconds, prints ``DONE <step> <n>`` (its side effects are all done), waits --linger
seconds and returns. A test reading stdout can SIGKILL the worker in the middle of a
chosen step (on ``STEP``) or once the step's side effects are done but before its
result is committed (on ``DONE``, given a --linger longer than the kill takes).

Workflows (--workflow):
    five     five steps s1..s5, each with Retry(max_attempts=--max-attempts): a crashed
             attempt counts as a failed one.
    crashy   step ok, then step boom, which SIGKILLs its own process every time
             (Retry(max_attempts=--max-attempts)), then step never.

`many` submits runs of the two-step workflow "pair" (ids many-{first}, then every
--stride-th up to many-{N-1}, --submit-gap seconds apart; each step has
Retry(max_attempts=5) and appends ``BEGIN|END <run> <step> <pid> <time>`` lines to
--effects around a --step-delay wait) and works, with whatever other workers share
the file, until N runs exist and all have ended, then prints ``ALLDONE <completed>``.
It prints ``UP`` once its engine runs and ``READY`` once its runs are submitted.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from typing import Any, Never

import anyio

import effect as fx
import tracker
import workflow as wf
from workflow.storage import RunStatus, SqliteStorage


def _say(line: str) -> None:
    print(line, flush=True)


def _line(path: str, text: str) -> None:
    """Append one line with a single O_APPEND write (not torn by other processes)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (text + "\n").encode())
    finally:
        os.close(fd)


def _logged(effects: str, run: str, step: str, delay: float) -> fx.Effect[str, Never, Never]:
    """A step effect that logs ``BEGIN|END <run> <step> <pid> <time>`` around a wait."""

    def mark(what: str) -> None:
        _line(effects, f"{what} {run} {step} {os.getpid()} {time.time():.6f}")

    return (
        fx.sync(lambda: mark("BEGIN"))
        .and_then(fx.sleep(delay))
        .and_then(fx.sync(lambda: mark("END")))
        .as_(f"{run}-{step}")
    )


def _make_workflows(args: argparse.Namespace) -> list[wf.Workflow[Any, Any, Any]]:
    effects: str = args.effects
    delay: float = args.step_delay
    linger: float = args.linger

    def body(name: str) -> fx.Effect[str, Never, Never]:
        def enter() -> int:
            # Counted per step name, across processes: "<step> <pid>" lines.
            with open(effects, "a+", encoding="utf-8") as f:
                f.write(f"{name} {os.getpid()}\n")
                f.flush()
                os.fsync(f.fileno())
                f.seek(0)
                n = sum(1 for line in f if line.split(" ", 1)[0] == name)
            _say(f"STEP {name} {n}")
            return n

        return (
            fx.sync(enter)
            .flat_map(lambda n: fx.sleep(delay).as_(n))
            .tap(lambda n: fx.sync(lambda: _say(f"DONE {name} {n}")))
            .flat_map(lambda n: fx.sleep(linger).as_(f"{name}-ok"))
        )

    @wf.workflow("five")
    def five(_: None) -> fx.Gen[list[str], wf.StepFailedError, wf.WorkflowContext]:
        retry = wf.Retry(max_attempts=args.max_attempts, backoff=0.0)
        results = []
        for i in range(1, 6):
            results.append((yield from wf.step(f"s{i}", body(f"s{i}"), retry=retry)))
        return results

    def boom() -> fx.Effect[str, Never, Never]:
        def crash() -> str:
            with open(effects, "a", encoding="utf-8") as f:
                f.write(f"boom {os.getpid()}\n")
                f.flush()
                os.fsync(f.fileno())
            _say("STEP boom crash")
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)  # pragma: no cover - the signal ends the process first
            return "unreachable"

        return fx.sync(crash)

    @wf.workflow("crashy")
    def crashy(_: None) -> fx.Gen[list[str], wf.StepFailedError, wf.WorkflowContext]:
        first = yield from wf.step("ok", body("ok"))
        second = yield from wf.step(
            "boom", boom(), retry=wf.Retry(max_attempts=args.max_attempts, backoff=0.0)
        )
        third = yield from wf.step("never", body("never"))
        return [first, second, third]

    @wf.workflow("pair")
    def pair(run: str) -> fx.Gen[list[str], wf.StepFailedError, wf.WorkflowContext]:
        retry = wf.Retry(max_attempts=5, backoff=0.0)
        out = []
        for name in ("p1", "p2"):
            out.append((yield from wf.step(name, _logged(effects, run, name, delay), retry=retry)))
        return out

    return [five, crashy, pair]


def _engine(args: argparse.Namespace, storage: SqliteStorage) -> wf.Engine:
    layer = tracker.http(args.collector, max_wait=0.05) if args.collector else tracker.noop()
    return wf.Engine(
        _make_workflows(args),
        storage=storage,
        tracker=layer,
        owner=args.owner,
        lease_ttl=args.lease_ttl,
        poll_interval=args.poll,
        max_crashes=args.max_crashes,
    )


async def _run_one(args: argparse.Namespace) -> int:
    storage = SqliteStorage(args.db, synchronous="NORMAL", busy_timeout_s=10.0)
    began = time.monotonic()
    async with _engine(args, storage) as engine:
        _say(f"ENGINE {time.monotonic() - began:.4f}")
        await engine.start(args.workflow, None, id=args.run_id)
        try:
            result = await engine.result(args.run_id)
        except wf.WorkflowFailedError as exc:
            _say(f"FAILED {exc.error_type} {exc.step_name} {exc.attempt}")
        except wf.WorkflowCancelledError:
            _say("CANCELLED")
        else:
            _say(f"RESULT {json.dumps(result)}")
    storage.close()
    return 0


async def _run_many(args: argparse.Namespace) -> int:
    storage = SqliteStorage(args.db, synchronous="NORMAL", busy_timeout_s=10.0)
    deadline = time.monotonic() + args.deadline
    async with _engine(args, storage) as engine:
        _say("UP")
        for i in range(args.first, args.count, args.stride):
            await engine.submit("pair", f"many-{i}", id=f"many-{i}")
            await anyio.sleep(args.submit_gap)
        _say("READY")
        while time.monotonic() < deadline:
            runs = storage.list_runs(limit=100_000)
            if len(runs) >= args.count and all(run.status.is_terminal for run in runs):
                break
            await anyio.sleep(0.05)
        done = storage.list_runs(status=RunStatus.COMPLETED, limit=100_000)
        _say(f"ALLDONE {len(done)}")
    storage.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["run", "many"])
    parser.add_argument("db")
    parser.add_argument("owner")
    parser.add_argument("target", help="RUN_ID for `run`, the number of runs for `many`")
    parser.add_argument("--workflow", default="five")
    parser.add_argument("--collector", default="")
    parser.add_argument("--effects", required=True)
    parser.add_argument("--step-delay", type=float, default=0.05)
    parser.add_argument("--linger", type=float, default=0.0)
    parser.add_argument("--max-attempts", type=int, default=3)
    parser.add_argument("--max-crashes", type=int, default=100)
    parser.add_argument("--lease-ttl", type=float, default=10.0)
    parser.add_argument("--poll", type=float, default=0.05)
    parser.add_argument("--deadline", type=float, default=60.0)
    parser.add_argument("--first", type=int, default=0, help="`many`: first run number")
    parser.add_argument("--stride", type=int, default=1, help="`many`: submit every n-th")
    parser.add_argument("--submit-gap", type=float, default=0.0)
    args = parser.parse_args(argv)
    if args.mode == "run":
        args.run_id = args.target
        return anyio.run(_run_one, args)
    args.count = int(args.target)
    return anyio.run(_run_many, args)


if __name__ == "__main__":
    sys.exit(main())
