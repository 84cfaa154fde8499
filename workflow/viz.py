"""Pictures of a run: its events drawn as a timeline, with matplotlib.

    events = await engine.events(run_id)
    workflow.viz.timeline(events, by="seq")             # in a notebook
    workflow.viz.save_timeline(events, "run.png")       # anywhere (no display needed)

One row per step, one per durable sleep, and one for the workflow itself (on top):

- each step attempt is a bar from its `step.started` to its terminal event, colored
  by outcome: completed, failed (annotated with the error phase: user, timeout,
  encode, after, retry, crash), interrupted (annotated with the reason), or
  *unfinished* (hatched gray, "no outcome": a `step.started` nothing settled, which
  the step guarantee says must not stay that way);
- a `retry.scheduled` wait is a thin hatched bar from the failure to the next
  attempt; a sleep a thin bar from `sleep.started` to `sleep.completed`; a paused
  run a light band on the workflow row from `workflow.paused` to `workflow.resumed`
  (or `workflow.recovered`);
- `workflow.*` events are markers on the workflow row; `retry.exhausted`,
  `timeout.set`, `timeout.exceeded`, and a terminal step event without a matching
  `step.started` (a cached replay, or a broken guarantee) are markers on the step's
  row. A `workflow.failed` that names a step is also marked on that step's row, so a
  failure before `step.started` (phase `before`: no step event at all) still shows
  where it happened.

The x axis is time (`by="time"`, seconds since the first event, from the event
timestamps) or event order (`by="seq"`, the per-run `seq`). Use `by="seq"` when the
picture must not depend on timing (docs, notebooks, tests): event order is
deterministic, durations are not.

matplotlib is an optional dependency (`pip install effect-workflow[viz]`); it is
imported only when a picture is drawn. `timeline_layout` computes the same picture as
plain data without it.

Every drawn bar and marker carries a `gid`, `"bar:<kind>:<row>:<attempt>"` or
`"marker:<event type>:<row>"`, so tests (and curious users) can find them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import attrs

from tracker.events import Event, parse_event

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "BAR_COLORS",
    "MARKER_STYLES",
    "Bar",
    "BarKind",
    "Marker",
    "Row",
    "TimelineLayout",
    "XAxis",
    "save_timeline",
    "timeline",
    "timeline_layout",
]

XAxis = Literal["time", "seq"]
"""What the x axis shows: seconds since the first event, or the event `seq`."""

BarKind = Literal[
    "completed", "failed", "interrupted", "unfinished", "retry_wait", "sleep", "paused"
]
"""What a bar stands for: a step attempt by outcome, a retry wait, a sleep, a pause."""

BAR_COLORS: Mapping[BarKind, str] = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "interrupted": "#ef6c00",
    "unfinished": "#bdbdbd",
    "retry_wait": "#ffe082",
    "sleep": "#90caf9",
    "paused": "#e1bee7",
}
"""Face color of each kind of bar (matplotlib color strings)."""

MARKER_STYLES: Mapping[str, tuple[str, str]] = {
    "workflow.queued": ("o", "#9e9e9e"),
    "workflow.started": (">", "#1565c0"),
    "workflow.paused": ("s", "#8e24aa"),
    "workflow.resumed": ("^", "#8e24aa"),
    "workflow.recovered": ("*", "#ef6c00"),
    "workflow.completed": ("D", "#2e7d32"),
    "workflow.failed": ("X", "#b71c1c"),
    "workflow.cancelled": ("x", "#212121"),
    "retry.exhausted": ("X", "#6d4c41"),
    "timeout.set": ("|", "#212121"),
    "timeout.exceeded": ("v", "#212121"),
    "step.completed": ("o", "#2e7d32"),
    "step.failed": ("X", "#c62828"),
    "step.interrupted": ("x", "#ef6c00"),
}
"""(matplotlib marker, color) of each event type drawn as a marker."""

_BAR_LEGEND: Mapping[BarKind, str] = {
    "completed": "attempt completed",
    "failed": "attempt failed (phase)",
    "interrupted": "attempt interrupted",
    "unfinished": "attempt with no outcome",
    "retry_wait": "retry wait",
    "sleep": "sleep",
    "paused": "run paused",
}
_LINE_MARKERS = frozenset({"|", "_", "x", "+", "1", "2", "3", "4"})
_THIN: frozenset[BarKind] = frozenset({"retry_wait", "sleep"})
_HATCH: Mapping[BarKind, str] = {"unfinished": "xx", "retry_wait": "///"}


@attrs.frozen
class Row:
    """A row of the picture: the workflow itself, a step or a sleep (by name)."""

    kind: Literal["workflow", "step", "sleep"]
    name: str

    @property
    def label(self) -> str:
        """The y-axis label: `workflow`, the step's name, or `sleep <name>`."""
        if self.kind == "workflow":
            return "workflow"
        return self.name if self.kind == "step" else f"sleep {self.name}"


@attrs.frozen
class Bar:
    """A span on a row, from x `start` to x `end` (`end >= start`: with `by="time"`, an
    end stamped earlier than its start by another process's clock is clamped)."""

    row: Row
    kind: BarKind
    start: float
    end: float
    attempt: int | None = None
    label: str | None = None
    """Annotation drawn above the bar: the error phase of a failed attempt, the reason
    of an interrupted one, `no outcome` for an unfinished one."""


@attrs.frozen
class Marker:
    """A point event on a row; `kind` is the event type (`workflow.paused`, ...)."""

    row: Row
    kind: str
    x: float
    label: str | None = None


@attrs.frozen
class TimelineLayout:
    """What `timeline` draws, as data: rows top to bottom, bars, markers, and the x
    range `(start, end)`; `by` says what x is."""

    rows: tuple[Row, ...]
    bars: tuple[Bar, ...]
    markers: tuple[Marker, ...]
    span: tuple[float, float]
    by: XAxis
    title: str

    def bars_of(self, row_label: str, kind: BarKind | None = None) -> list[Bar]:
        """The bars on the row labelled `row_label` (of one kind, if given)."""
        return [
            b for b in self.bars if b.row.label == row_label and (kind is None or b.kind == kind)
        ]

    def markers_of(self, row_label: str, kind: str | None = None) -> list[Marker]:
        """The markers on the row labelled `row_label` (of one event type, if given)."""
        return [
            m for m in self.markers if m.row.label == row_label and (kind is None or m.kind == kind)
        ]


_WORKFLOW = Row("workflow", "workflow")


def timeline_layout(
    events: Iterable[Event | Mapping[str, object]], *, by: XAxis = "time"
) -> TimelineLayout:
    """Compute the timeline of one run's `events` as plain data (no matplotlib).

    `events` are `tracker.events.Event`s, or their JSON form as dicts (what the
    collector serves; they are parsed). They are ordered by `seq`; duplicates (same
    `event_id`, possible with at-least-once delivery) are dropped. Raises
    `ValueError` for events of more than one run, or an unknown `by`.

    Example:
        >>> from tracker.events import StepStarted, StepFailed, ErrorInfo
        >>> run = dict(workflow_id="r1", workflow_name="demo")
        >>> layout = timeline_layout([
        ...     StepStarted(**run, seq=0, step_name="charge", attempt=1),
        ...     StepFailed(**run, seq=1, step_name="charge", attempt=1, will_retry=False,
        ...                error=ErrorInfo("OSError", "down", phase="after")),
        ... ], by="seq")
        >>> [(b.row.label, b.kind, b.start, b.end, b.label) for b in layout.bars]
        [('charge', 'failed', 0.0, 1.0, 'after')]
    """
    if by not in ("time", "seq"):
        raise ValueError(f"by must be 'time' or 'seq', got {by!r}")
    ordered = _prepare(events)
    runs = sorted({e.workflow_id for e in ordered})
    if len(runs) > 1:
        raise ValueError(f"timeline expects the events of one run, got runs {runs}")
    xs = _positions(ordered, by)
    builder = _Builder()
    for event, x in zip(ordered, xs, strict=True):
        builder.add(event, x)
    # min/max, not first/last: events of one run may come from processes whose clocks
    # disagree slightly (a crashed worker and the engine that recovered the run).
    start, end = (min(xs), max(xs)) if xs else (0.0, 0.0)
    builder.finish(end)
    title = f"{ordered[0].workflow_name} · run {ordered[0].workflow_id}" if ordered else ""
    return TimelineLayout(
        rows=tuple(builder.rows),
        bars=tuple(builder.bars),
        markers=tuple(builder.markers),
        span=(start, end),
        by=by,
        title=title,
    )


def timeline(
    events: Iterable[Event | Mapping[str, object]],
    *,
    ax: Axes | None = None,
    title: str | None = None,
    by: XAxis = "time",
    legend: bool = True,
) -> Axes:
    """Draw one run's `events` as a timeline on `ax` (a new figure if None); return
    the axes.

    See the module docstring for what is drawn. `title` defaults to the workflow name
    and run id (`""` for none). `legend=False` leaves the legend out (for small
    multiples). With `ax=None` the figure is made with `matplotlib.pyplot`, so a
    notebook shows it; use `save_timeline` to write a file without pyplot.

    Raises `ImportError` if matplotlib is not installed, `ValueError` as
    `timeline_layout` does.

    Example:
        >>> import workflow.viz
        >>> events = await engine.events(run_id)  # doctest: +SKIP
        >>> ax = workflow.viz.timeline(events, by="seq", title="order A-1")  # doctest: +SKIP
        >>> ax.figure.savefig("order.png")  # doctest: +SKIP
    """
    _require_matplotlib()
    layout = timeline_layout(events, by=by)
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=_figsize(layout), layout="constrained")
    _draw(layout, ax, title=layout.title if title is None else title, legend=legend)
    return ax


def save_timeline(
    events: Iterable[Event | Mapping[str, object]],
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    by: XAxis = "time",
    dpi: int = 120,
) -> Path:
    """Draw the timeline of `events` (see `timeline`) into an image file at `path`
    (the format follows the suffix: .png, .svg, .pdf); return the path.

    Uses a standalone `matplotlib.figure.Figure`, not pyplot: no display, no GUI
    backend, and nothing left open.

    Example:
        >>> events = await engine.events(run_id)  # doctest: +SKIP
        >>> workflow.viz.save_timeline(events, "run.png", by="seq")  # doctest: +SKIP
        PosixPath('run.png')
    """
    _require_matplotlib()
    from matplotlib.figure import Figure

    layout = timeline_layout(events, by=by)
    fig: Figure = Figure(figsize=_figsize(layout), layout="constrained")
    ax = fig.add_subplot()
    _draw(layout, ax, title=layout.title if title is None else title, legend=True)
    out = Path(path)
    fig.savefig(out, dpi=dpi)
    return out


# -- layout ---------------------------------------------------------------------------


def _prepare(events: Iterable[Event | Mapping[str, object]]) -> list[Event]:
    seen: set[str] = set()
    out: list[Event] = []
    for item in events:
        event = item if isinstance(item, Event) else parse_event(item)
        if event.event_id in seen:
            continue
        seen.add(event.event_id)
        out.append(event)
    out.sort(key=lambda e: e.seq)  # stable: ties keep their given order
    return out


def _positions(events: list[Event], by: XAxis) -> list[float]:
    if by == "seq":
        seqs = [e.seq for e in events]
        if len(set(seqs)) == len(seqs):
            return [float(s) for s in seqs]
        return [float(i) for i in range(len(events))]  # seqs not unique: use the order
    times = [_parse_time(e.timestamp) for e in events]
    if not times:
        return []
    t0 = min(times)
    return [(t - t0).total_seconds() for t in times]


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _Builder:
    """Walks the events in order and turns them into rows, bars and markers."""

    def __init__(self) -> None:
        self.rows: dict[Row, None] = {}
        self.bars: list[Bar] = []
        self.markers: list[Marker] = []
        self.attempts: dict[tuple[str, int], float] = {}
        self.retries: dict[tuple[str, int], float] = {}
        self.sleeps: dict[str, float] = {}
        self.paused_at: float | None = None

    def row(self, kind: Literal["workflow", "step", "sleep"], name: str) -> Row:
        row = _WORKFLOW if kind == "workflow" else Row(kind, name)
        self.rows.setdefault(row, None)
        return row

    def add(self, event: Event, x: float) -> None:
        kind = event.type
        if kind.startswith("workflow."):
            self.workflow_event(event, x)
            return
        if kind.startswith("sleep."):
            name = str(getattr(event, "name", ""))
            row = self.row("sleep", name)
            if kind == "sleep.started":
                self.sleeps[name] = x
            else:
                start = self.sleeps.pop(name, x)
                self.bars.append(Bar(row, "sleep", start, max(start, x)))
            return
        step = str(getattr(event, "step_name", ""))
        row = self.row("step", step)
        attempt = getattr(event, "attempt", None)
        if kind == "step.started":
            assert isinstance(attempt, int)
            waited = self.retries.pop((step, attempt), None)
            if waited is not None:
                self.bars.append(Bar(row, "retry_wait", waited, max(waited, x), attempt))
            self.attempts[(step, attempt)] = x
        elif kind in ("step.completed", "step.failed", "step.interrupted"):
            assert isinstance(attempt, int)
            outcome: BarKind = (
                "completed"
                if kind == "step.completed"
                else "failed"
                if kind == "step.failed"
                else "interrupted"
            )
            label = _outcome_label(event)
            start = self.attempts.pop((step, attempt), math.nan)
            if math.isnan(start):
                if kind == "step.completed" and getattr(event, "cached", False):
                    label = "cached"
                self.markers.append(Marker(row, kind, x, label or "no step.started"))
            else:
                self.bars.append(Bar(row, outcome, start, max(start, x), attempt, label))
        elif kind == "retry.scheduled":
            self.retries[(step, int(getattr(event, "next_attempt", 0)))] = x
        else:  # retry.exhausted, timeout.set, timeout.exceeded
            self.markers.append(Marker(row, kind, x))

    def workflow_event(self, event: Event, x: float) -> None:
        row = self.row("workflow", "workflow")
        kind = event.type
        if kind in ("workflow.resumed", "workflow.recovered") and self.paused_at is not None:
            self.bars.append(Bar(row, "paused", self.paused_at, max(self.paused_at, x)))
            self.paused_at = None
        if kind == "workflow.paused":
            self.paused_at = x
        label = None
        error = getattr(event, "error", None)
        if error is not None:
            label = error.phase or error.type
        self.markers.append(Marker(row, kind, x, label))
        step = getattr(event, "step_name", None)
        if kind == "workflow.failed" and isinstance(step, str):
            self.markers.append(Marker(self.row("step", step), kind, x, label))

    def finish(self, end: float) -> None:
        for (step, attempt), start in self.attempts.items():
            self.bars.append(
                Bar(Row("step", step), "unfinished", start, end, attempt, "no outcome")
            )
        for (step, attempt), start in self.retries.items():
            self.bars.append(Bar(Row("step", step), "retry_wait", start, end, attempt))
        for name, start in self.sleeps.items():
            self.bars.append(Bar(Row("sleep", name), "sleep", start, end, None, "waiting"))
        if self.paused_at is not None:
            self.bars.append(Bar(_WORKFLOW, "paused", self.paused_at, end))
        # The workflow row first, then steps and sleeps in order of appearance.
        rows = list(self.rows)
        self.rows = dict.fromkeys(sorted(rows, key=lambda r: r.kind != "workflow"))


def _outcome_label(event: Event) -> str | None:
    if event.type == "step.interrupted":
        return str(getattr(event, "reason", "")) or None
    error = getattr(event, "error", None)
    if error is None:
        return None
    return str(error.phase or error.type)


# -- drawing --------------------------------------------------------------------------


def _require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "workflow.viz draws with matplotlib, which is not installed: "
            "pip install effect-workflow[viz]"
        ) from exc


def _figsize(layout: TimelineLayout) -> tuple[float, float]:
    return (10.0, 1.2 + 0.45 * max(1, len(layout.rows)))


def _draw(layout: TimelineLayout, ax: Axes, *, title: str, legend: bool) -> None:
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle
    from matplotlib.ticker import MaxNLocator

    y_of = {row: i for i, row in enumerate(layout.rows)}
    lo, hi = layout.span
    width = max(hi - lo, 1.0 if layout.by == "seq" else 1e-3)
    min_width = 0.25 if layout.by == "seq" else width * 0.004
    for bar in layout.bars:
        y = y_of[bar.row]
        height = 0.3 if bar.kind in _THIN else 0.9 if bar.kind == "paused" else 0.6
        rect = Rectangle(
            (bar.start, y - height / 2),
            max(bar.end - bar.start, min_width),
            height,
            facecolor=BAR_COLORS[bar.kind],
            edgecolor="#424242" if bar.kind not in ("paused", "sleep") else "none",
            linewidth=0.6,
            hatch=_HATCH.get(bar.kind),
            zorder=1 if bar.kind == "paused" else 2,
            gid=f"bar:{bar.kind}:{bar.row.label}:{bar.attempt if bar.attempt else ''}",
        )
        ax.add_patch(rect)
        if bar.label:
            # Just above the bar's top left corner (the y axis is inverted): clear of
            # the retry wait or next attempt that often follows right after it.
            ax.annotate(
                bar.label,
                (bar.start, y - height / 2),
                xytext=(0, 1),
                textcoords="offset points",
                ha="left",
                va="bottom",
                fontsize=7,
                color=BAR_COLORS[bar.kind] if bar.kind != "unfinished" else "#424242",
            )
    for marker in layout.markers:
        shape, color = MARKER_STYLES.get(marker.kind, ("o", "#000000"))
        # Filled markers get a white rim, so they stand out on a bar of their own color.
        style: dict[str, Any] = (
            {"facecolors": color, "edgecolors": "white", "linewidths": 0.8}
            if shape not in _LINE_MARKERS
            else {"color": color, "linewidths": 1.5}
        )
        ax.scatter(
            [marker.x],
            [y_of[marker.row]],
            marker=shape,
            s=90 if marker.kind == "workflow.recovered" else 50,
            zorder=4,
            gid=f"marker:{marker.kind}:{marker.row.label}",
            **style,
        )
    ax.set_yticks(range(len(layout.rows)), [row.label for row in layout.rows])
    ax.set_ylim(len(layout.rows) - 0.5, -0.5)  # first row on top
    pad = width * 0.04
    ax.set_xlim(lo - pad, hi + width * 0.12)
    if layout.by == "seq":
        ax.set_xlabel("event seq")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.set_xlabel("seconds since the first event")
    ax.grid(axis="x", color="#eeeeee", zorder=0)
    ax.set_axisbelow(True)
    if title:
        ax.set_title(title, fontsize=10)
    if not layout.rows:
        ax.text(0.5, 0.5, "no events", transform=ax.transAxes, ha="center", va="center")
    if legend:
        kinds = list(dict.fromkeys(bar.kind for bar in layout.bars))
        handles: list[Patch | Line2D] = [
            Patch(
                facecolor=BAR_COLORS[k],
                edgecolor="#424242",
                hatch=_HATCH.get(k),
                label=_BAR_LEGEND[k],
            )
            for k in kinds
        ]
        for kind in dict.fromkeys(m.kind for m in layout.markers):
            shape, color = MARKER_STYLES.get(kind, ("o", "#000000"))
            handles.append(Line2D([], [], marker=shape, color=color, linestyle="none", label=kind))
        if handles:
            ax.legend(
                handles=handles,
                loc="upper left",
                bbox_to_anchor=(1.01, 1.0),
                fontsize=7,
                frameon=False,
                borderaxespad=0.0,
            )
