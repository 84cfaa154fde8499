"""`python -m workflow demo`: a durable workflow survives `kill -9`, and the events show it.

Self-contained, on the embedded defaults, in about 10 seconds:

1. a loopback event collector (`tracker.collector.Collector`, in a thread of this
   process) and a SQLite database, both in a temporary folder (`--keep DIR` keeps them);
2. one run of the order workflow (`workflow.demo_workflows.order`) is queued, and a
   worker subprocess (`python -m workflow worker --owner demo-worker ...`) executes it:
   charge-card fails twice and is retried, then a durable 2 s sleep pauses the run;
3. while the `ship` step is running, the demo kills the worker with SIGKILL (it watches
   the run's history in SQLite to know when), then starts a new worker with the same
   owner id, which recovers the run: the interrupted attempt is reported as
   `step.failed` with phase `crash` and retried, and the run completes;
4. it prints the events the collector received (`GET /events?workflow_id=...`) and
   checks what they show: retries, the durable sleep, the recovery, and no lost event.

Exit code 0 when the run completed and the collector holds its whole, gap-free timeline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, TextIO

from tracker.collector import Collector
from workflow.cli import enqueue
from workflow.report import format_timeline
from workflow.storage import HistoryEntry, RunRecord, RunStatus, SqliteStorage

__all__ = ["run_demo"]

OWNER = "demo-worker"
KILL_STEP = "ship"
MODULE = "workflow.demo_workflows"
RUN_TIMEOUT = 30.0


class DemoError(Exception):
    """The demo did not go as planned; the message says what to look at."""


class _Demo:
    def __init__(self, workdir: Path, out: TextIO) -> None:
        self.workdir = workdir
        self.db = workdir / "workflows.db"
        self.out = out
        self.began = time.monotonic()
        self.workers: list[subprocess.Popen[bytes]] = []
        self.seen: dict[str, tuple[str, int]] = {}
        self.run_state: tuple[RunStatus, int] | None = None

    # -- output -----------------------------------------------------------------------

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def log(self, text: str) -> None:
        self.say(f"[{time.monotonic() - self.began:5.1f}s] {text}")

    # -- workers ----------------------------------------------------------------------

    def start_worker(self, collector_url: str) -> subprocess.Popen[bytes]:
        number = len(self.workers) + 1
        command = [
            sys.executable,
            "-m",
            "workflow",
            "worker",
            "--db",
            str(self.db),
            "--module",
            MODULE,
            "--owner",
            OWNER,
            "--collector",
            collector_url,
        ]
        # The child must import this very package, installed or not.
        root = str(Path(__file__).resolve().parent.parent)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        log = open(self.workdir / f"worker-{number}.log", "wb")  # noqa: SIM115 - closed below
        try:
            proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        finally:
            log.close()
        self.workers.append(proc)
        if number == 1:
            shown = " ".join(["python", *command[1:]]).replace(str(self.workdir), "$DIR")
            self.log(f"worker 1 started (pid {proc.pid}):\n         {shown}")
        else:
            self.log(
                f"worker {number} started (pid {proc.pid}) with the same --owner {OWNER}: it "
                "releases the dead\n         worker's lease at once and recovers the run"
            )
        return proc

    def worker_log(self, number: int) -> str:
        path = self.workdir / f"worker-{number}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        lines = text.strip().splitlines()[-15:]
        return "\n".join(f"    | {line}" for line in lines) or "    | (empty)"

    def stop_all(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # -- watching the run in SQLite -----------------------------------------------------

    def watch(
        self,
        storage: SqliteStorage,
        run_id: str,
        until: Callable[[RunRecord, list[HistoryEntry]], bool],
        worker: subprocess.Popen[bytes],
        what: str,
    ) -> RunRecord:
        """Poll the run's record and history, narrate changes, return once `until`."""
        deadline = time.monotonic() + RUN_TIMEOUT
        while time.monotonic() < deadline:
            record = storage.get_run(run_id)
            history = storage.load_history(run_id)
            if record is None:
                raise DemoError(f"run {run_id} disappeared from {self.db}")
            self.narrate(record, history)
            if until(record, history):
                return record
            if worker.poll() is not None:
                number = self.workers.index(worker) + 1
                raise DemoError(
                    f"worker {number} exited with code {worker.returncode} while waiting "
                    f"for {what}; its log:\n{self.worker_log(number)}"
                )
            time.sleep(0.02)
        raise DemoError(f"timed out after {RUN_TIMEOUT:.0f} s waiting for {what}")

    def narrate(self, record: RunRecord, history: list[HistoryEntry]) -> None:
        # A run resumed or recovered is news before what it then does; a run paused,
        # after what made it pause.
        running = record.status is RunStatus.RUNNING
        if running:
            self.narrate_run(record)
        for entry in history:
            state = (entry.status, entry.attempt)
            if self.seen.get(entry.location) == state:
                continue
            self.seen[entry.location] = state
            self.log(f"  {entry.location:<14} {_describe(entry)}")
        if not running:
            self.narrate_run(record)

    def narrate_run(self, record: RunRecord) -> None:
        state = (record.status, record.crash_count)
        if state == self.run_state:
            return
        previous, self.run_state = self.run_state, state
        if record.status is RunStatus.PAUSED and record.wake_at is not None:
            wait = max(0.0, record.wake_at - time.time())
            self.log(f"run paused for {wait:.1f} s: wake-up time stored in SQLite, lease released")
        elif record.status is RunStatus.RUNNING and previous is not None:
            if record.crash_count > previous[1]:
                self.log(f"run recovered (crash #{record.crash_count})")
            elif previous[0] is RunStatus.PAUSED:
                self.log("run resumed: the timer is due")
        elif record.status.is_terminal:
            self.log(f"run {record.status}")


def _describe(entry: HistoryEntry) -> str:
    if entry.kind == "sleep":
        if entry.status == "completed":
            return "sleep over"
        wake_at = json.loads(entry.data_json or "{}").get("wake_at")
        left = f" {max(0.0, wake_at - time.time()):.1f} s" if wake_at else ""
        return f"sleeping{left} (durable: the wake-up time is in SQLite)"
    error = json.loads(entry.error_json or "{}")
    reason = f" ({error.get('type')}, phase {error.get('phase')})" if error else ""
    return {
        "started": f"attempt {entry.attempt} running",
        "completed": f"completed on attempt {entry.attempt}",
        "retrying": f"attempt {entry.attempt} failed{reason}, retry scheduled",
        "failed": f"attempt {entry.attempt} failed for good{reason}",
        "interrupted": f"attempt {entry.attempt} interrupted",
        "aborted": f"attempt {entry.attempt} aborted{reason}",
    }.get(entry.status, f"{entry.status} (attempt {entry.attempt})")


def _get_events(base_url: str, run_id: str) -> list[dict[str, Any]]:
    query = urllib.parse.urlencode({"workflow_id": run_id})
    with urllib.request.urlopen(f"{base_url}/events?{query}", timeout=5) as response:
        events: list[dict[str, Any]] = json.load(response)
    return events


@contextmanager
def _workspace(keep: str | None) -> Iterator[Path]:
    if keep is not None:
        path = Path(keep).resolve()
        path.mkdir(parents=True, exist_ok=True)
        yield path
    else:
        with tempfile.TemporaryDirectory(prefix="workflow-demo-") as tmp:
            yield Path(tmp)


def run_demo(keep: str | None = None, out: TextIO | None = None) -> int:
    """Run the demo, printing to `out` (stdout); return the exit code."""
    stream = out if out is not None else sys.stdout
    with ExitStack() as stack:
        workdir = stack.enter_context(_workspace(keep))
        demo = _Demo(workdir, stream)
        stack.callback(demo.stop_all)
        try:
            return _run(demo, stack, keep)
        except DemoError as exc:
            demo.say(f"\ndemo FAILED: {exc}")
            if keep is None:
                demo.say("(run again with --keep DIR to keep the database and worker logs)")
            return 1
        except KeyboardInterrupt:
            demo.say("\ninterrupted")
            return 130
    return 1  # pragma: no cover - unreachable, for mypy


def _run(demo: _Demo, stack: ExitStack, keep: str | None) -> int:
    say, log = demo.say, demo.log
    say("Durable workflow demo: an order workflow survives `kill -9` of its worker")
    say("=" * 74)
    collector = stack.enter_context(Collector(db=demo.workdir / "events.db"))
    say(f"folder     {demo.workdir}" + ("" if keep else "  (deleted at the end; --keep DIR)"))
    say(f"database   $DIR/{demo.db.name}   (SQLite: runs, history, event outbox)")
    say(f"collector  {collector.url}   (tracker.collector, loopback HTTP)")
    say(f"workflow   {MODULE}:order")
    say("           reserve-stock -> charge-card (fails twice, wf.Retry) -> sleep cool-off 2 s")
    say("           -> ship (takes 1 s; the worker is killed during it) -> notify")
    say()

    storage = stack.enter_context(SqliteStorage(demo.db))
    run_id = f"order-{uuid.uuid4().hex[:6]}"
    order = {"order_id": run_id.upper(), "amount": 59.9, "email": "ada@example.com"}
    enqueue(storage, "order", order, run_id=run_id)
    log(f"queued run {run_id}: {json.dumps(order)}")

    worker = demo.start_worker(collector.events_url)

    def ship_running(_: RunRecord, history: list[HistoryEntry]) -> bool:
        return any(e.location == KILL_STEP and e.status == "started" for e in history)

    demo.watch(storage, run_id, ship_running, worker, f"step {KILL_STEP!r} to start")
    time.sleep(0.3)  # well inside the 1 s step
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    log(f"*** SIGKILL -> worker 1 (pid {worker.pid}) in the middle of {KILL_STEP!r} ***")
    record = storage.get_run(run_id)
    assert record is not None
    cut = next(e for e in storage.load_history(run_id) if e.location == KILL_STEP)
    committed = storage.run_events(run_id)
    received = _get_events(collector.url, run_id)
    say(
        f"         SQLite: status {record.status}, leased to {record.lease_owner} (now dead); "
        f"{KILL_STEP!r} attempt {cut.attempt} {cut.status}"
    )
    say(
        f"         events: {len(committed)} committed to the outbox, "
        f"{len(received)} already at the collector"
    )

    worker = demo.start_worker(collector.events_url)
    demo.watch(storage, run_id, lambda r, _: r.status.is_terminal, worker, "the run to finish")
    record = storage.get_run(run_id)
    assert record is not None
    if record.status is not RunStatus.COMPLETED:
        raise DemoError(f"run ended {record.status}: {record.error_json}")

    # The worker delivers from the outbox right after each commit; wait for the end.
    deadline = time.monotonic() + 10
    events = _get_events(collector.url, run_id)
    while not any(e.get("type") == "workflow.completed" for e in events):
        if time.monotonic() > deadline:
            raise DemoError("the collector never received workflow.completed")
        time.sleep(0.05)
        events = _get_events(collector.url, run_id)
    worker.send_signal(signal.SIGTERM)
    try:
        code = worker.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise DemoError("worker 2 did not stop within 10 s of SIGTERM") from None
    log(f"worker 2 stopped by SIGTERM, exit code {code}")
    if code != 0:
        raise DemoError(f"worker 2 exited with {code}; its log:\n{demo.worker_log(2)}")
    events = _get_events(collector.url, run_id)

    say()
    say("What the collector received")
    say("-" * 74)
    say(f"GET {collector.url}/events?workflow_id={run_id}  ->  {len(events)} events, by seq.")
    say("Columns: seq, time (UTC), seconds since the first event, event type, step or")
    say("sleep name, attempt, details (step.failed: the error phase and whether it is")
    say("retried; retry.scheduled: the backoff).")
    say()
    for line in format_timeline(events):
        say("  " + line)
    say()
    findings = _findings(events, unsent_at_kill=len(committed) - len(received))
    say("What to look for")
    say("-" * 74)
    for finding in findings:
        say(textwrap.fill(finding, width=88, initial_indent="* ", subsequent_indent="  "))
    say()
    result = json.loads(record.result_json or "null")
    say(f"result: {json.dumps(result)}")
    took = time.monotonic() - demo.began
    if keep is not None:
        say(f"\nKept in {demo.workdir}: workflows.db, events.db, worker-1.log, worker-2.log.")
        say(f"Try: python -m workflow show {run_id} --db {demo.db}")
    say(f"\ndemo OK in {took:.1f} s")
    return 0


def _findings(events: list[dict[str, Any]], *, unsent_at_kill: int) -> list[str]:
    """What the timeline shows, checked: raises `DemoError` if a part is missing."""
    seqs = sorted(e["seq"] for e in events)
    if seqs != list(range(len(seqs))):
        missing = sorted(set(range(max(seqs) + 1)) - set(seqs))
        raise DemoError(f"the collector is missing events with seq {missing}")
    by_type: dict[str, list[dict[str, Any]]] = {}
    for e in sorted(events, key=lambda e: e["seq"]):
        by_type.setdefault(e["type"], []).append(e)

    def of(kind: str, step: str | None = None) -> list[dict[str, Any]]:
        return [e for e in by_type.get(kind, []) if step is None or e.get("step_name") == step]

    findings: list[str] = []
    retries = of("retry.scheduled", "charge-card")
    if not retries:
        raise DemoError("no retry.scheduled for charge-card")
    backoffs = ", ".join(f"{r['delay_ms']:.0f} ms" for r in retries)
    charged = of("step.completed", "charge-card")
    findings.append(
        f"Retries: charge-card failed {len(retries)} times (step.failed phase=user "
        f"will_retry=yes), each followed by retry.scheduled (backoff {backoffs}); "
        f"attempt {charged[0]['attempt'] if charged else '?'} succeeded."
    )
    if of("workflow.paused") and of("sleep.completed"):
        findings.append(
            "Durable sleep: sleep.started, then workflow.paused: the wake-up time went to "
            "SQLite and the worker let the run go; at the due time its scheduler took it "
            "back (workflow.resumed) and sleep.completed."
        )
    recovered = of("workflow.recovered")
    if not recovered:
        raise DemoError("no workflow.recovered event: the crash was not recovered")
    crashed = [e for e in of("step.failed") if (e.get("error") or {}).get("phase") == "crash"]
    crash = (
        f"step.failed for {crashed[0]['step_name']!r} attempt {crashed[0]['attempt']} with "
        f"phase=crash (the attempt SIGKILL cut short), then attempt "
        f"{crashed[0]['attempt'] + 1} ran and completed"
        if crashed
        else "no step was running"
    )
    findings.append(
        f"Crash recovery: worker 1 emitted no event when it was killed. Worker 2 (same "
        f"owner) emitted workflow.recovered (crash #{recovered[0]['crash_count']}), then "
        f"{crash}. Steps completed before the crash were not run again."
    )
    handover = (
        f"{unsent_at_kill} event(s) worker 1 had committed but not sent when it died were "
        "delivered by worker 2"
        if unsent_at_kill > 0
        else "this time worker 1 had sent everything it committed before it died; had it "
        "not, worker 2 would have delivered the rest from the outbox"
    )
    findings.append(
        f"Nothing lost: seq 0..{seqs[-1]} all arrived. Each event is written to the outbox "
        "in the same SQLite transaction as the state change it describes, and delivered "
        f"from there: {handover} (the collector drops duplicates by event_id)."
    )
    if not of("workflow.completed"):
        raise DemoError("no workflow.completed event")
    return findings
