"""`python -m workflow`: start, serve, inspect and cancel workflow runs from a terminal.

    python -m workflow run workflow.demo_workflows:order --input '{"order_id": "A-1"}'
    python -m workflow submit workflow.demo_workflows:order --input '{"order_id": "A-2"}'
    python -m workflow worker --db workflows.db --module workflow.demo_workflows
    python -m workflow list
    python -m workflow show A-1
    python -m workflow cancel A-2 --reason "customer changed their mind"
    python -m workflow demo

Every command works on one SQLite file (`--db`, default `./workflows.db`). `list` and
`show` only read it; `run`, `worker` and `cancel` open an `Engine` on it, restricted
(by `ScopedStorage`) to the runs the command is about, so a `run` of one workflow never
picks up, or fails, runs of workflows it does not know. See docs/workflow/cli.md.

Exit codes: 0 success, 1 the run failed or was cancelled (or another error, printed on
stderr), 2 bad usage, 130 interrupted by SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from datetime import UTC, datetime
from types import ModuleType
from typing import Any, Never, TypeVar

import anyio

import effect as fx
import tracker
from tracker.events import WorkflowQueued
from workflow import codec
from workflow.definition import Workflow
from workflow.engine import Engine
from workflow.errors import WorkflowCancelledError, WorkflowFailedError
from workflow.report import (
    RunView,
    UnknownRunError,
    format_history,
    format_run,
    format_runs,
    format_timeline,
    load_run_view,
)
from workflow.storage import (
    AppendEvents,
    HistoryEntry,
    InsertRun,
    Op,
    OutboxEvent,
    RunExistsError,
    RunRecord,
    RunStatus,
    SqliteStorage,
    Storage,
    StorageError,
)
from workflow.storage.base import is_claimable

__all__ = [
    "RunView",
    "ScopedStorage",
    "build_parser",
    "enqueue",
    "format_history",
    "format_run",
    "format_runs",
    "format_timeline",
    "load_run_view",
    "load_workflow",
    "main",
    "release_own_leases",
    "workflows_in",
]


T = TypeVar("T")

DEFAULT_DB = "workflows.db"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class CliError(Exception):
    """An error to print as `error: ...` with exit code 1 (2 with `usage=True`)."""

    def __init__(self, message: str, *, usage: bool = False) -> None:
        super().__init__(message)
        self.code = EXIT_USAGE if usage else EXIT_FAILED


# --------------------------------------------------------------------------- loading code


def load_workflow(spec: str) -> Workflow[Any, Any, Any]:
    """The workflow `MODULE:NAME` names (`NAME` may be dotted). `MODULE` alone works
    when the module defines exactly one workflow. Raises `CliError`."""
    module_name, _, attr = spec.partition(":")
    module = _import(module_name)
    if not attr:
        found = workflows_in(module)
        if len(found) != 1:
            names = ", ".join(sorted(w.name for w in found)) or "none"
            raise CliError(
                f"{module_name} defines {len(found)} workflows ({names}); "
                f"name one as {module_name}:ATTRIBUTE",
                usage=True,
            )
        return found[0]
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CliError(f"{module_name} has no attribute {attr!r}", usage=True) from None
    if not isinstance(obj, Workflow):
        raise CliError(
            f"{spec} is {type(obj).__name__}, not a workflow (decorate it with @wf.workflow)",
            usage=True,
        )
    return obj


def workflows_in(module: ModuleType) -> list[Workflow[Any, Any, Any]]:
    """The `Workflow` objects among `module`'s attributes, in definition order."""
    found: dict[int, Workflow[Any, Any, Any]] = {}
    for value in vars(module).values():
        if isinstance(value, Workflow):
            found.setdefault(id(value), value)
    return list(found.values())


def _import(module_name: str) -> ModuleType:
    if not module_name:
        raise CliError("expected MODULE:NAME, e.g. myapp.flows:order", usage=True)
    # `python -m` puts the working directory on sys.path; an installed console script
    # would not, and users expect their own modules to be importable either way.
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise CliError(f"cannot import {module_name}: {exc}", usage=True) from exc


def _collect(module_names: Sequence[str]) -> list[Workflow[Any, Any, Any]]:
    by_name: dict[str, Workflow[Any, Any, Any]] = {}
    for module_name in module_names:
        found = workflows_in(_import(module_name))
        if not found:
            raise CliError(f"{module_name} defines no workflow (@wf.workflow)", usage=True)
        for wf in found:
            other = by_name.setdefault(wf.name, wf)
            if other is not wf:
                raise CliError(f"two different workflows are named {wf.name!r}", usage=True)
    return list(by_name.values())


def _parse_input(text: str) -> object:
    if text.startswith("@"):
        try:
            with open(text[1:], encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise CliError(f"cannot read the input file: {exc}", usage=True) from exc
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"--input is not valid JSON ({exc}): {text[:80]!r}", usage=True) from exc


# --------------------------------------------------------------------------- storage helpers


class ScopedStorage:
    """A `Storage` that shows an `Engine` only some runs, so the engine claims and
    delivers only those.

    Everything is passed through to `inner`, except what the engine's scheduler and
    outbox dispatcher read: `claimable_runs` and `next_wake_at` see only runs whose id
    is in `run_ids` and whose workflow is in `workflow_names` (None = any), and
    `undelivered_events` is empty unless `deliver` (then limited to `run_ids`, if
    given). Events left undelivered stay in the outbox for an engine that delivers
    them; `show` reads them either way.
    """

    def __init__(
        self,
        inner: Storage,
        *,
        run_ids: Collection[str] | None = None,
        workflow_names: Collection[str] | None = None,
        deliver: bool = True,
    ) -> None:
        self.inner = inner
        self.run_ids = None if run_ids is None else set(run_ids)
        self.workflow_names = None if workflow_names is None else frozenset(workflow_names)
        self.deliver = deliver

    def _visible(self, run: RunRecord) -> bool:
        return (self.run_ids is None or run.run_id in self.run_ids) and (
            self.workflow_names is None or run.workflow_name in self.workflow_names
        )

    def claimable_runs(self, now: float, limit: int = 100) -> list[RunRecord]:
        if self.run_ids is not None:
            runs = [r for r in map(self.inner.get_run, sorted(self.run_ids)) if r is not None]
            due = [r for r in runs if is_claimable(r, now) and self._visible(r)]
            return sorted(due, key=lambda r: r.created_at)[:limit]
        runs = self.inner.claimable_runs(now, limit=1_000_000)
        return [r for r in runs if self._visible(r)][:limit]

    def next_wake_at(self) -> float | None:
        # Filtered too: a due timer of a run this engine may not claim would otherwise
        # make its scheduler spin.
        if self.run_ids is None and self.workflow_names is None:
            return self.inner.next_wake_at()
        if self.run_ids is not None:
            runs = [r for r in map(self.inner.get_run, self.run_ids) if r is not None]
            paused = [r for r in runs if r.status is RunStatus.PAUSED]
        else:
            paused = self.inner.list_runs(status=RunStatus.PAUSED, limit=1_000_000)
        wakes = [r.wake_at for r in paused if r.wake_at is not None and self._visible(r)]
        return min(wakes, default=None)

    def undelivered_events(self, limit: int = 1000, after_id: int = 0) -> list[OutboxEvent]:
        if not self.deliver:
            return []
        if self.run_ids is None:
            return self.inner.undelivered_events(limit, after_id)
        rows = [
            e
            for rid in self.run_ids
            for e in self.inner.run_events(rid)
            if not e.delivered and e.id > after_id
        ]
        return sorted(rows, key=lambda e: e.id)[:limit]

    # -- passed through ----------------------------------------------------------------

    def apply(self, ops: Sequence[Op]) -> None:
        self.inner.apply(ops)

    def apply_each(self, batches: Sequence[Sequence[Op]]) -> list[Exception | None]:
        return self.inner.apply_each(batches)

    def get_run(self, run_id: str) -> RunRecord | None:
        return self.inner.get_run(run_id)

    def list_runs(
        self, status: RunStatus | None = None, workflow_name: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        return self.inner.list_runs(status=status, workflow_name=workflow_name, limit=limit)

    def load_history(self, run_id: str) -> list[HistoryEntry]:
        return self.inner.load_history(run_id)

    def mark_delivered(self, ids: Sequence[int]) -> None:
        self.inner.mark_delivered(ids)

    def run_events(self, run_id: str) -> list[OutboxEvent]:
        return self.inner.run_events(run_id)

    def try_claim(self, run_id: str, owner: str, now: float, ttl: float) -> RunRecord | None:
        return self.inner.try_claim(run_id, owner, now, ttl)

    def renew_leases(self, owner: str, now: float, ttl: float) -> list[str]:
        return self.inner.renew_leases(owner, now, ttl)

    def release_lease(self, run_id: str, owner: str) -> None:
        self.inner.release_lease(run_id, owner)

    def close(self) -> None:
        self.inner.close()


def release_own_leases(storage: Storage, owner: str) -> list[str]:
    """Release the leases `owner` holds on unfinished runs; return their ids.

    For a process starting under a fixed owner id: any lease already held under that
    id belongs to a previous process that died, so its runs can be recovered at once
    instead of after the lease runs out. Only call it before the engine starts, and
    never while another live process uses the same owner id."""
    released: list[str] = []
    for status in (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.PAUSED):
        for run in storage.list_runs(status=status, limit=1_000_000):
            if run.lease_owner == owner:
                storage.release_lease(run.run_id, owner)
                released.append(run.run_id)
    return released


def enqueue(
    storage: Storage, workflow_name: str, input: object = None, *, run_id: str | None = None
) -> str:
    """Queue a run of `workflow_name` for a worker to execute; return its id.

    What `Engine.start` writes (the run, queued, and its `workflow.queued` event at
    seq 0, in one transaction) without executing it here. `run_id` is an idempotency
    key as in `Engine.start`: an existing run of the same workflow is left as it is."""
    input_json = codec.encode(input)
    run_id = run_id or uuid.uuid4().hex
    now = time.time()
    record = RunRecord(
        run_id=run_id,
        workflow_name=workflow_name,
        input_json=input_json,
        status=RunStatus.QUEUED,
        created_at=now,
        updated_at=now,
    )
    queued = WorkflowQueued(
        workflow_id=run_id, workflow_name=workflow_name, execution_id=run_id, seq=0
    )
    try:
        storage.apply([InsertRun(record), AppendEvents(run_id, [(0, queued.to_json())])])
    except RunExistsError:
        existing = storage.get_run(run_id)
        if existing is not None and existing.workflow_name != workflow_name:
            raise CliError(
                f"run {run_id!r} exists for workflow {existing.workflow_name!r}, "
                f"not {workflow_name!r}"
            ) from None
    return run_id


def _open(db: str, *, must_exist: bool) -> SqliteStorage:
    if must_exist and db != ":memory:" and not os.path.exists(db):
        raise CliError(f"no database at {db} (give --db PATH)")
    return SqliteStorage(db)


def _tracker_layer(url: str | None) -> fx.Layer[tracker.EventTracker, Never, Never]:
    if url is None:
        return tracker.noop()
    if not url.rstrip("/").endswith("/events"):
        url = url.rstrip("/") + "/events"
    return tracker.http(url, max_wait=0.2)


# --------------------------------------------------------------------------- signals


async def _until_signal(work: Callable[[anyio.Event], Awaitable[int]]) -> int:
    """Run `work(stop)`, setting `stop` on SIGINT or SIGTERM; return its exit code.

    `work` must end soon after `stop` is set, leaving its `async with Engine(...)`
    normally. Cancelling a scope around a running engine is not an option: it cancels
    the `ManagedRuntime`'s driver task too, and the engine's shutdown then waits
    forever for fibers nobody drives."""
    stop = anyio.Event()
    outcome: list[int] = []
    errors: list[Exception] = []
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with anyio.create_task_group() as tg:

            async def watch() -> None:
                async for signum in signals:
                    print(f"\n{signal.Signals(signum).name}: shutting down", file=sys.stderr)
                    stop.set()

            tg.start_soon(watch)
            try:
                outcome.append(await work(stop))
            except Exception as exc:  # re-raised below, outside the task group
                errors.append(exc)
            tg.cancel_scope.cancel()  # only the watcher is left in it
    if errors:
        raise errors[0]
    return outcome[0]


async def _unless_stopped(
    stop: anyio.Event, fn: Callable[[], Awaitable[T]]
) -> tuple[bool, T | None]:
    """`(True, await fn())`, or `(False, None)` if `stop` is set first (then `fn` is
    cancelled). An exception of `fn` propagates."""
    outcome: list[T] = []
    errors: list[Exception] = []
    async with anyio.create_task_group() as tg:

        async def call() -> None:
            try:
                outcome.append(await fn())
            except Exception as exc:
                errors.append(exc)
            tg.cancel_scope.cancel()

        async def wait() -> None:
            await stop.wait()
            tg.cancel_scope.cancel()

        tg.start_soon(call)
        tg.start_soon(wait)
    if errors:
        raise errors[0]
    return (True, outcome[0]) if outcome else (False, None)


# --------------------------------------------------------------------------- commands


def _cmd_run(args: argparse.Namespace) -> int:
    wf = load_workflow(args.workflow)
    input_value = _parse_input(args.input)
    run_id: str = args.id or uuid.uuid4().hex
    storage = _open(args.db, must_exist=False)
    scoped = ScopedStorage(storage, run_ids={run_id}, deliver=args.collector is not None)
    existing = storage.get_run(run_id)
    if existing is not None and existing.workflow_name != wf.name:
        storage.close()
        raise CliError(f"run {run_id!r} exists for workflow {existing.workflow_name!r}")
    # Errors are returned, not raised, inside `async with Engine`: the engine's task
    # group would wrap them in an ExceptionGroup.
    error: list[str] = []

    async def work(stop: anyio.Event) -> int:
        async with Engine([wf], storage=scoped, tracker=_tracker_layer(args.collector)) as engine:
            began = time.monotonic()
            await engine.start(wf, input_value, id=run_id)
            if existing is None:
                print(f"run {run_id} ({wf.name}) started", file=sys.stderr)
            else:
                print(f"run {run_id} exists ({existing.status}); waiting for it", file=sys.stderr)
            try:
                finished, _ = await _unless_stopped(stop, lambda: engine.result(run_id))
            except (WorkflowFailedError, WorkflowCancelledError) as exc:
                error.append(str(exc))
                return EXIT_FAILED
            if not finished:
                return EXIT_INTERRUPTED
            took = time.monotonic() - began
        record = storage.get_run(run_id)
        assert record is not None
        print(f"run {run_id} completed ({took:.2f} s)", file=sys.stderr)
        print(json.dumps(json.loads(record.result_json or "null"), indent=2))
        return EXIT_OK

    try:
        code = anyio.run(_until_signal, work)
    finally:
        storage.close()
    if error:
        raise CliError(error[0])
    if code == EXIT_INTERRUPTED:
        print(
            f"run {run_id} was left paused; a worker on {args.db} (or `run --id {run_id}`) "
            "continues it",
            file=sys.stderr,
        )
    return code


def _cmd_submit(args: argparse.Namespace) -> int:
    wf = load_workflow(args.workflow)
    input_value = _parse_input(args.input)
    storage = _open(args.db, must_exist=False)
    try:
        run_id = enqueue(storage, wf.name, input_value, run_id=args.id)
    except codec.EncodeError as exc:
        raise CliError(str(exc), usage=True) from exc
    finally:
        storage.close()
    print(run_id)
    return EXIT_OK


def _cmd_worker(args: argparse.Namespace) -> int:
    workflows = _collect(args.module)
    names = sorted(w.name for w in workflows)
    storage = _open(args.db, must_exist=False)
    owner: str | None = args.owner
    released = release_own_leases(storage, owner) if owner else []
    scoped = ScopedStorage(storage, workflow_names=names, deliver=args.collector is not None)

    async def work(stop: anyio.Event) -> int:
        engine = Engine(
            workflows,
            storage=scoped,
            tracker=_tracker_layer(args.collector),
            owner=owner,
            lease_ttl=args.lease_ttl,
            poll_interval=args.poll_interval,
        )
        events = args.collector or "kept in the database's outbox (no --collector)"
        print(
            f"worker {engine.owner}: serving {', '.join(names)} from {args.db}\n"
            f"  events: {events}\n"
            + (
                f"  took back {len(released)} run(s) of a previous process: {', '.join(released)}\n"
                if released
                else ""
            )
            + "  stop with Ctrl-C or SIGTERM",
            flush=True,
        )
        async with engine:
            await stop.wait()
        return EXIT_OK

    try:
        anyio.run(_until_signal, work)
    finally:
        storage.close()
    print("worker stopped (runs it was executing are paused, due for the next worker)", flush=True)
    return EXIT_OK


def _cmd_list(args: argparse.Namespace) -> int:
    storage = _open(args.db, must_exist=True)
    try:
        status = RunStatus(args.status) if args.status else None
        runs = storage.list_runs(status=status, workflow_name=args.workflow, limit=args.limit)
    finally:
        storage.close()
    print(format_runs(runs))
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    storage = _open(args.db, must_exist=True)
    try:
        view = load_run_view(storage, args.run_id)
    finally:
        storage.close()
    print(format_run(view))
    if args.plot is not None:
        from workflow.viz import save_timeline

        path = save_timeline(view.events, args.plot, title=f"run {args.run_id}", by="seq")
        print(f"timeline picture written to {path}")
    return EXIT_OK


def _cmd_cancel(args: argparse.Namespace) -> int:
    storage = _open(args.db, must_exist=True)
    try:
        record = storage.get_run(args.run_id)
        if record is None:
            raise CliError(f"no run with id {args.run_id!r}")
        if record.status.is_terminal:
            print(f"run {args.run_id} is already {record.status}; nothing to cancel")
            return EXIT_OK
        # The engine sees no claimable run and delivers nothing: it only cancels. Its
        # events stay in the outbox for a worker with a collector.
        scoped = ScopedStorage(storage, run_ids=(), deliver=False)
        refused: list[RuntimeError] = []

        async def work() -> None:
            async with Engine([], storage=scoped) as engine:
                try:
                    await engine.cancel(args.run_id, args.reason)
                except RuntimeError as exc:  # leased by a live engine elsewhere
                    refused.append(exc)

        anyio.run(work)
        if refused:
            current = storage.get_run(args.run_id) or record
            until = datetime.fromtimestamp(current.lease_expires_at or 0, UTC).strftime(
                "%Y-%m-%d %H:%M:%S"
            )
            raise CliError(
                f"run {args.run_id} is being executed by {current.lease_owner} (lease until "
                f"{until} UTC); stop that worker (the run pauses) and cancel again"
            )
    finally:
        storage.close()
    print(f"run {args.run_id} cancelled" + (f": {args.reason}" if args.reason else ""))
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace) -> int:
    from workflow.demo import run_demo

    return run_demo(keep=args.keep)


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The `python -m workflow` argument parser."""
    parser = argparse.ArgumentParser(
        prog="python -m workflow",
        description="Start, serve, inspect and cancel durable workflow runs stored in SQLite.",
        epilog="Run `python -m workflow COMMAND --help` for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def db(p: argparse.ArgumentParser, default: str | None = DEFAULT_DB) -> None:
        p.add_argument(
            "--db",
            default=default,
            required=default is None,
            metavar="PATH",
            help=f"SQLite database of the runs (default: ./{DEFAULT_DB})"
            if default
            else "SQLite database of the runs",
        )

    def collector(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--collector",
            metavar="URL",
            help="send events to this HTTP collector (base URL or its /events URL, e.g. "
            "http://127.0.0.1:8080, see `python -m tracker.collector`); without it they "
            "stay in the database's outbox",
        )

    p = sub.add_parser(
        "run",
        help="start a run here, wait for it, print its result as JSON",
        description="Start a run of a workflow in this process, wait for it to end and print "
        "its result as JSON on stdout. Exit 1 (error on stderr) if the run fails or is "
        "cancelled. With --id of an existing run, wait for that run instead.",
    )
    p.add_argument("workflow", metavar="MODULE:NAME", help="the workflow, e.g. myapp.flows:order")
    p.add_argument(
        "--input", default="null", metavar="JSON", help="the run's input as JSON, or @FILE"
    )
    db(p)
    p.add_argument("--id", metavar="ID", help="run id (an idempotency key; default: random)")
    collector(p)
    p.set_defaults(handler=_cmd_run)

    p = sub.add_parser(
        "submit",
        help="queue a run for a worker and print its id",
        description="Queue a run of a workflow without executing it; a `worker` serving the "
        "workflow picks it up. Prints the run id.",
    )
    p.add_argument("workflow", metavar="MODULE:NAME", help="the workflow, e.g. myapp.flows:order")
    p.add_argument(
        "--input", default="null", metavar="JSON", help="the run's input as JSON, or @FILE"
    )
    db(p)
    p.add_argument("--id", metavar="ID", help="run id (an idempotency key; default: random)")
    p.set_defaults(handler=_cmd_submit)

    p = sub.add_parser(
        "worker",
        help="execute and recover runs until SIGINT/SIGTERM",
        description="Serve the workflows defined in the given modules: execute queued runs, "
        "resume paused runs when their timer is due, and recover runs whose process died. "
        "Runs of other workflows are left alone. On SIGINT or SIGTERM, running steps are "
        "interrupted (step.interrupted), their runs paused for the next worker, events "
        "flushed, and the worker exits 0.",
    )
    db(p, default=None)
    p.add_argument(
        "--module",
        action="append",
        required=True,
        metavar="MODULE",
        help="import MODULE and serve the workflows it defines (repeatable)",
    )
    p.add_argument(
        "--owner",
        metavar="ID",
        help="lease owner id of this worker (default: host:pid:random). A worker restarted "
        "with the same id takes back the runs of the dead one at once, instead of after "
        "their lease runs out; never give two live workers the same id",
    )
    collector(p)
    p.add_argument(
        "--lease-ttl",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long a run stays owned by this worker without renewal (default: 10)",
    )
    p.add_argument(
        "--poll-interval",
        type=float,
        default=0.5,
        metavar="SECONDS",
        help="how often to look for due and orphaned runs (default: 0.5)",
    )
    p.set_defaults(handler=_cmd_worker)

    p = sub.add_parser(
        "list",
        help="a table of runs, newest first",
        description="List runs, newest first: id, workflow, status, last update (UTC).",
    )
    db(p)
    p.add_argument(
        "--status", choices=[s.value for s in RunStatus], help="only runs in this status"
    )
    p.add_argument("--workflow", metavar="NAME", help="only runs of this workflow")
    p.add_argument("--limit", type=int, default=50, help="at most this many runs (default: 50)")
    p.set_defaults(handler=_cmd_list)

    p = sub.add_parser(
        "show",
        help="a run's status, history and event timeline",
        description="Show one run: its status, input and outcome; its history entries "
        "(location, kind, status, attempt); and its event timeline from the outbox "
        "(seq, time, type, step, attempt, error phase, ...).",
    )
    p.add_argument("run_id", metavar="ID", help="the run id")
    p.add_argument(
        "--plot",
        metavar="PNG",
        help="also draw the run's events as a timeline picture to this file "
        "(needs matplotlib: pip install effect-workflow[viz])",
    )
    db(p)
    p.set_defaults(handler=_cmd_show)

    p = sub.add_parser(
        "cancel",
        help="cancel a queued, paused or orphaned run",
        description="Cancel a run that is queued, paused, or left running by a dead process "
        "(a step it left started is reported as step.failed, phase crash). A run being "
        "executed by a live worker cannot be cancelled from here: stop the worker first.",
    )
    p.add_argument("run_id", metavar="ID", help="the run id")
    db(p)
    p.add_argument("--reason", metavar="TEXT", help="why (stored, and sent in workflow.cancelled)")
    p.set_defaults(handler=_cmd_cancel)

    p = sub.add_parser(
        "demo",
        help="a durable order workflow through retries, a durable sleep and a SIGKILL",
        description="Self-contained demo (about 10 s): a loopback event collector, SQLite in "
        "a temporary folder, and an order workflow run by a worker subprocess that is killed "
        "with SIGKILL mid-step and restarted; then prints the events the collector received.",
    )
    p.add_argument(
        "--keep",
        metavar="DIR",
        help="put the database, collector store and worker logs in DIR and keep them",
    )
    p.set_defaults(handler=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except CliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except (StorageError, UnknownRunError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # Output piped into `head` and the like: stop quietly, as other tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
