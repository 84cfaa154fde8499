"""A run's story as text: its record, history and event timeline, formatted for a
terminal. Used by `python -m workflow list/show`, the demo and the notebooks.

Events are the wire-format dicts the collector stores (or `Event.to_dict()`), so
the same code prints what storage holds and what an HTTP collector received.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import attrs

from workflow.storage import (
    HistoryEntry,
    RunRecord,
    RunStatus,
    Storage,
)

__all__ = [
    "RunView",
    "UnknownRunError",
    "format_history",
    "format_run",
    "format_runs",
    "format_timeline",
    "load_run_view",
]


class UnknownRunError(LookupError):
    """No run with that id in storage."""


@attrs.frozen
class RunView:
    """Everything `show` prints about a run: the record, its history, and its events
    from the outbox (parsed JSON objects, by seq). `undelivered` holds the seqs not yet
    delivered to a tracker."""

    record: RunRecord
    history: list[HistoryEntry]
    events: list[dict[str, Any]]
    undelivered: frozenset[int]


def load_run_view(storage: Storage, run_id: str) -> RunView:
    """Read one run for `show` (or a plot). Raises `CliError` for an unknown id."""
    record = storage.get_run(run_id)
    if record is None:
        raise UnknownRunError(f"no run with id {run_id!r}")
    rows = storage.run_events(run_id)
    events = sorted((json.loads(row.payload_json) for row in rows), key=_seq)
    return RunView(
        record=record,
        history=storage.load_history(run_id),
        events=events,
        undelivered=frozenset(row.seq for row in rows if not row.delivered),
    )


def format_runs(runs: Sequence[RunRecord]) -> str:
    """The `list` table: id, workflow, status, updated (UTC)."""
    if not runs:
        return "no runs"
    rows = [[r.run_id, r.workflow_name, str(r.status), _datetime(r.updated_at)] for r in runs]
    return "\n".join(_table(["RUN ID", "WORKFLOW", "STATUS", "UPDATED (UTC)"], rows))


def format_run(view: RunView) -> str:
    """The `show` report: summary, history and event timeline."""
    r = view.record
    lines = [
        f"run       {r.run_id}",
        f"workflow  {r.workflow_name}",
        f"status    {r.status}",
        f"created   {_datetime(r.created_at)} UTC",
        f"updated   {_datetime(r.updated_at)} UTC",
        f"input     {_short(r.input_json, 200)}",
    ]
    if r.result_json is not None:
        lines.append(f"result    {_short(r.result_json, 200)}")
    if r.error_json is not None:
        error = json.loads(r.error_json)
        message = str(error.get("message"))
        step = error.get("step_name")
        where = (
            f" (step {step!r}, attempt {error.get('attempt')})"
            if step and f"step {step!r}" not in message
            else ""
        )
        lines.append(f"error     {error.get('type')}: {_short(message, 200)}{where}")
    if r.cancel_reason is not None:
        lines.append(f"cancelled {r.cancel_reason}")
    if r.crash_count:
        lines.append(f"crashes   {r.crash_count} (recovered after its process died)")
    if r.status is RunStatus.PAUSED and r.wake_at is not None:
        lines.append(f"wakes at  {_datetime(r.wake_at)} UTC")
    if not r.status.is_terminal and r.lease_owner is not None:
        until = _datetime(r.lease_expires_at) if r.lease_expires_at is not None else "?"
        lines.append(f"lease     {r.lease_owner} until {until} UTC")
    lines += ["", f"History ({len(view.history)} entries)"]
    lines += ["  " + line for line in format_history(view.history)] or ["  (none)"]
    pending = len(view.undelivered)
    marks = view.undelivered if 0 < pending < len(view.events) else frozenset()
    if pending and marks:
        note = f"; * = {pending} still in the outbox, not yet delivered to a tracker"
    elif pending:
        note = "; none delivered to a tracker yet: they wait in the outbox"
    else:
        note = "; all delivered to a tracker"
    lines += ["", f"Events ({len(view.events)}, times UTC{note})"]
    timeline = format_timeline(view.events, undelivered=marks)
    lines += ["  " + line for line in timeline] or ["  (none)"]
    return "\n".join(lines)


def format_history(entries: Sequence[HistoryEntry]) -> list[str]:
    """History entries as table lines: location, kind, status, attempt, error, updated."""
    if not entries:
        return []
    rows = []
    for e in entries:
        error = ""
        if e.error_json:
            data = json.loads(e.error_json)
            phase = f" [{data['phase']}]" if data.get("phase") else ""
            error = f"{data.get('type')}{phase}: {_short(str(data.get('message')), 50)}"
        rows.append([e.location, e.kind, e.status, str(e.attempt), _clock(e.updated_at), error])
    return _table(["LOCATION", "KIND", "STATUS", "ATTEMPT", "UPDATED", "LAST ERROR"], rows)


def format_timeline(
    events: Iterable[Mapping[str, Any]], *, undelivered: Collection[int] = ()
) -> list[str]:
    """Events (wire-format JSON objects) as one line each, by seq: seq, time (UTC),
    seconds since the first event, type, step or sleep name, attempt, and what matters
    for the type (error phase and will_retry for step.failed, the backoff for
    retry.scheduled, ...)."""
    ordered = sorted(events, key=_seq)
    if not ordered:
        return []
    start = _parse_ts(ordered[0].get("timestamp"))
    rows = []
    for ev in ordered:
        at = _parse_ts(ev.get("timestamp"))
        elapsed = f"+{(at - start).total_seconds():.2f}s" if at and start else ""
        seq = ev.get("seq")
        mark = "*" if seq in undelivered else ""
        rows.append(
            [
                f"{seq}{mark}",
                at.strftime("%H:%M:%S.%f")[:-3] if at else "?",
                elapsed,
                str(ev.get("type")),
                str(ev.get("step_name") or ev.get("name") or ""),
                _attempt(ev),
                _detail(ev),
            ]
        )
    return _table(["SEQ", "TIME", "ELAPSED", "EVENT", "STEP", "ATT", "DETAIL"], rows, right={0})


def _attempt(ev: Mapping[str, Any]) -> str:
    if ev.get("type") == "retry.scheduled":
        return f"{ev.get('attempt')}->{ev.get('next_attempt')}"
    if ev.get("type") == "retry.exhausted":
        return str(ev.get("attempts"))
    attempt = ev.get("attempt")
    return "" if attempt is None else str(attempt)


def _detail(ev: Mapping[str, Any]) -> str:
    kind = ev.get("type")
    error = ev.get("error") if isinstance(ev.get("error"), dict) else None
    err = f"{error.get('type')}: {_short(str(error.get('message')), 60)}" if error else ""
    if kind == "step.failed":
        retry = "yes" if ev.get("will_retry") else "no"
        phase = error.get("phase") if error else None
        return f"phase={phase} will_retry={retry}  {err}"
    if kind == "workflow.failed":
        phase = error.get("phase") if error else None
        return (f"phase={phase}  " if phase else "") + err
    if kind == "retry.exhausted":
        return err
    if kind == "retry.scheduled":
        return f"backoff {_ms(ev.get('delay_ms'))}"
    if kind == "step.completed":
        return _ms(ev.get("duration_ms")) + (" (cached)" if ev.get("cached") else "")
    if kind == "sleep.started":
        return f"{_ms(ev.get('duration_ms'))}, until {_time_of(ev.get('resume_at'))}"
    if kind == "workflow.paused":
        until = f", until {_time_of(ev.get('resume_at'))}" if ev.get("resume_at") else ""
        return f"{ev.get('reason')}{until}"
    if kind in ("workflow.resumed", "workflow.cancelled", "step.interrupted"):
        return str(ev.get("reason") or "")
    if kind == "workflow.recovered":
        previous = ev.get("previous_owner")
        return f"crash #{ev.get('crash_count')}" + (
            f", previous owner {previous}" if previous else ", same owner restarted"
        )
    if kind == "workflow.started":
        return f"input {_short(json.dumps(ev.get('input')), 60)}"
    if kind == "workflow.completed":
        return f"result {_short(json.dumps(ev.get('result')), 60)}"
    if kind in ("timeout.set", "timeout.exceeded"):
        return f"timeout {_ms(ev.get('timeout_ms'))}"
    return ""


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], right: Collection[int] = ()
) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _seq(ev: Mapping[str, Any]) -> int:
    seq = ev.get("seq")
    return seq if isinstance(seq, int) else -1


def _parse_ts(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _time_of(value: object) -> str:
    at = _parse_ts(value)
    return at.strftime("%H:%M:%S.%f")[:-3] if at else "?"


def _datetime(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%H:%M:%S.%f")[:-3]


def _ms(value: object) -> str:
    if not isinstance(value, int | float):
        return ""
    return f"{value / 1000:.2f} s" if value >= 1000 else f"{value:.0f} ms"


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
