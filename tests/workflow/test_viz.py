"""`workflow.viz`: the timeline of real runs, as data and as a matplotlib figure (Agg)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Never

import anyio
import pytest

import effect as fx
import workflow as wf
from tracker.events import ErrorInfo, Event, StepFailed, StepStarted, WorkflowStarted
from workflow import viz

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

from matplotlib.colors import to_rgba  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


class Flaky(Exception):
    pass


def flaky(failures: int) -> fx.Effect[str, Flaky, Never]:
    """Fails `failures` times, then succeeds (state lives in the closure, per run)."""
    calls = [0]

    def attempt() -> str:
        calls[0] += 1
        if calls[0] <= failures:
            raise Flaky(f"attempt {calls[0]}")
        return "ok"

    return fx.try_(attempt, catch=lambda exc: Flaky(str(exc)))


def make_workflow() -> wf.Workflow[Any, Any, Any]:
    @wf.workflow("viz-demo")
    def demo(x: int) -> fx.Gen[str, wf.StepFailedError, wf.WorkflowContext]:
        yield from wf.step("fetch", fx.succeed(x + 1))
        yield from wf.step("flaky", flaky(2), retry=wf.Retry(max_attempts=3, backoff=0.001))
        yield from wf.sleep("nap", 0.01)
        yield from wf.sleep("long-nap", 0.02)  # longer than in_memory_wait: a durable pause
        yield from wf.step("charge", fx.fail(ValueError("card declined")))
        return "unreachable"

    return demo


def run_demo(run_id: str) -> list[Event]:
    demo = make_workflow()

    async def main() -> list[Event]:
        engine = wf.Engine(
            [demo], storage=wf.MemoryStorage(), poll_interval=0.01, in_memory_wait=0.015
        )
        async with engine:
            await engine.start(demo, 1, id=run_id)
            with pytest.raises(wf.WorkflowFailedError):
                await engine.result(run_id, timeout=10)
            return await engine.events(run_id)

    events: list[Event] = anyio.run(main)
    return events


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return run_demo("viz-run")


def artists(ax: Any, prefix: str) -> list[Any]:
    """The patches and collections of `ax` whose gid starts with `prefix`."""
    found = [*ax.patches, *ax.collections]
    return [a for a in found if (a.get_gid() or "").startswith(prefix)]


# -- the layout (no drawing) ------------------------------------------------------------


def test_layout_of_a_real_run_has_one_row_per_step_and_sleep(events: list[Event]) -> None:
    layout = viz.timeline_layout(events, by="seq")
    assert [row.label for row in layout.rows] == [
        "workflow",
        "fetch",
        "flaky",
        "sleep nap",
        "sleep long-nap",
        "charge",
    ]
    assert layout.title == "viz-demo · run viz-run"
    assert layout.span == (0.0, float(len(events) - 1))


def test_layout_bars_per_step_follow_the_attempts(events: list[Event]) -> None:
    layout = viz.timeline_layout(events, by="seq")
    assert [b.kind for b in layout.bars_of("fetch")] == ["completed"]
    flaky_bars = [(b.kind, b.attempt, b.label) for b in layout.bars_of("flaky")]
    assert flaky_bars == [
        ("failed", 1, "user"),
        ("retry_wait", 2, None),
        ("failed", 2, "user"),
        ("retry_wait", 3, None),
        ("completed", 3, None),
    ]
    assert [(b.kind, b.attempt, b.label) for b in layout.bars_of("charge")] == [
        ("failed", 1, "user")
    ]
    assert [b.kind for b in layout.bars_of("sleep nap")] == ["sleep"]
    assert [b.kind for b in layout.bars_of("sleep long-nap")] == ["sleep"]
    # The durable sleep paused the run: a band on the workflow row.
    assert [b.kind for b in layout.bars_of("workflow")] == ["paused"]
    # Each attempt bar spans its own events: started at `start`, settled at `end`.
    by_seq = {e.seq: e for e in events}
    for bar in layout.bars:
        if bar.kind in ("completed", "failed"):
            assert by_seq[int(bar.start)].type == "step.started"
            assert by_seq[int(bar.end)].type == f"step.{bar.kind}"


def test_layout_markers_of_the_workflow_row_and_the_failing_step(events: list[Event]) -> None:
    layout = viz.timeline_layout(events, by="seq")
    assert [m.kind for m in layout.markers_of("workflow")] == [
        "workflow.queued",
        "workflow.started",
        "workflow.paused",
        "workflow.resumed",
        "workflow.failed",
    ]
    # workflow.failed names the step, so it is marked on the step's row too.
    assert [m.kind for m in layout.markers_of("charge")] == ["workflow.failed"]
    assert layout.markers_of("fetch") == []


def test_by_seq_is_deterministic_across_runs(events: list[Event]) -> None:
    again = run_demo("viz-run")
    first = viz.timeline_layout(events, by="seq")
    second = viz.timeline_layout(again, by="seq")
    assert (first.rows, first.bars, first.markers) == (second.rows, second.bars, second.markers)


def test_by_time_is_seconds_since_the_first_event(events: list[Event]) -> None:
    layout = viz.timeline_layout(events, by="time")
    assert layout.span[0] == 0.0
    assert 0.02 <= layout.span[1] < 10  # the durable pause alone is 20 ms
    for bar in layout.bars:
        assert 0.0 <= bar.start <= bar.end <= layout.span[1]
    paused = layout.bars_of("workflow", "paused")[0]
    assert paused.end > paused.start
    long_nap = layout.bars_of("sleep long-nap")[0]
    assert long_nap.end - long_nap.start >= 0.01  # a 20 ms sleep, give or take the clock


def test_collector_json_is_accepted_and_duplicates_are_dropped(events: list[Event]) -> None:
    as_json = [e.to_dict(env="test") for e in events]
    layout = viz.timeline_layout(as_json + as_json[:5], by="seq")
    assert layout == viz.timeline_layout(events, by="seq")


def test_an_attempt_nothing_settled_and_an_orphan_outcome_are_shown() -> None:
    run = {"workflow_id": "r1", "workflow_name": "synthetic"}
    events = [
        WorkflowStarted(**run, seq=0),
        StepStarted(**run, seq=1, step_name="lost", attempt=1),
        StepFailed(
            **run,
            seq=2,
            step_name="orphan",
            attempt=1,
            will_retry=False,
            error=ErrorInfo("OSError", "down", phase="crash"),
        ),
    ]
    layout = viz.timeline_layout(events, by="seq")
    assert [(b.kind, b.start, b.end, b.label) for b in layout.bars_of("lost")] == [
        ("unfinished", 1.0, 2.0, "no outcome")
    ]
    assert [(m.kind, m.label) for m in layout.markers_of("orphan")] == [("step.failed", "crash")]


def test_bad_input_is_refused() -> None:
    a = WorkflowStarted(workflow_id="a", workflow_name="n")
    b = WorkflowStarted(workflow_id="b", workflow_name="n")
    with pytest.raises(ValueError, match="one run"):
        viz.timeline_layout([a, b])
    with pytest.raises(ValueError, match="by must be"):
        viz.timeline_layout([a], by="order")  # type: ignore[arg-type]
    empty = viz.timeline_layout([])
    assert (empty.rows, empty.bars, empty.markers) == ((), (), ())


# -- the figure -------------------------------------------------------------------------


def test_the_figure_has_the_bars_markers_and_colors_of_the_run(events: list[Event]) -> None:
    fig = Figure()
    ax = viz.timeline(events, ax=fig.add_subplot(), by="seq", title="a run")
    assert ax.get_title() == "a run"
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "workflow",
        "fetch",
        "flaky",
        "sleep nap",
        "sleep long-nap",
        "charge",
    ]
    expected_bars = {
        "bar:completed:fetch:": 1,
        "bar:failed:flaky:": 2,
        "bar:retry_wait:flaky:": 2,
        "bar:completed:flaky:": 1,
        "bar:failed:charge:": 1,
        "bar:sleep:sleep nap:": 1,
        "bar:sleep:sleep long-nap:": 1,
        "bar:paused:workflow:": 1,
        "bar:interrupted:": 0,
        "bar:unfinished:": 0,
    }
    for prefix, count in expected_bars.items():
        found = artists(ax, prefix)
        assert len(found) == count, prefix
        kind = prefix.split(":")[1]
        for patch in found:
            assert patch.get_facecolor() == to_rgba(viz.BAR_COLORS[kind])  # type: ignore[index]
    assert len(artists(ax, "bar:")) == sum(expected_bars.values())
    workflow_markers = [a.get_gid().split(":")[1] for a in artists(ax, "marker:")]
    assert workflow_markers.count("workflow.failed") == 2  # workflow row and the step's
    assert len(artists(ax, "marker:workflow.queued:workflow")) == 1
    failed_marker = artists(ax, "marker:workflow.failed:charge")[0]
    marker_style = viz.MARKER_STYLES["workflow.failed"]
    assert tuple(failed_marker.get_facecolor()[0]) == to_rgba(marker_style[1])
    # Failed attempts are annotated with their phase.
    texts = [t.get_text() for t in ax.texts]
    assert texts.count("user") == 3
    legend = ax.get_legend()
    assert legend is not None
    assert legend.get_texts()[0].get_text() == "attempt completed"


def test_an_interrupted_attempt_is_drawn_in_its_color() -> None:
    @wf.workflow("viz-cancel")
    def slow(_: None) -> fx.Gen[None, wf.StepFailedError, wf.WorkflowContext]:
        yield from wf.step("wait", fx.sleep(30))

    async def main() -> list[Event]:
        async with wf.Engine([slow], storage=wf.MemoryStorage(), poll_interval=0.01) as engine:
            run_id = await engine.start(slow, None, id="cancel-me")
            with anyio.fail_after(5):
                while not any(e.type == "step.started" for e in await engine.events(run_id)):
                    await anyio.sleep(0.005)
            await engine.cancel(run_id, "changed my mind")
            with pytest.raises(wf.WorkflowCancelledError):
                await engine.result(run_id, timeout=5)
            return await engine.events(run_id)

    events: list[Event] = anyio.run(main)
    fig = Figure()
    ax = viz.timeline(events, ax=fig.add_subplot(), by="seq", legend=False)
    [bar] = artists(ax, "bar:interrupted:wait:1")
    assert bar.get_facecolor() == to_rgba(viz.BAR_COLORS["interrupted"])
    assert "cancelled: changed my mind" in [t.get_text() for t in ax.texts]
    assert len(artists(ax, "marker:workflow.cancelled:workflow")) == 1
    assert ax.get_legend() is None


def test_timeline_without_ax_makes_a_pyplot_figure(events: list[Event]) -> None:
    import matplotlib.pyplot as plt

    ax = viz.timeline(events, by="time")
    try:
        assert ax.get_xlabel() == "seconds since the first event"
        assert ax.get_title() == "viz-demo · run viz-run"
    finally:
        plt.close(ax.get_figure())  # type: ignore[arg-type]


def test_save_timeline_writes_a_png(events: list[Event], tmp_path: Path) -> None:
    out = viz.save_timeline(events, tmp_path / "run.png", by="seq")
    assert out == tmp_path / "run.png"
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    image = matplotlib.image.imread(out)
    height, width = image.shape[:2]
    assert width > 600 and height > 200


def test_a_missing_matplotlib_names_the_extra(
    events: list[Event], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install effect-workflow\[viz\]"):
        viz.timeline(events)
    with pytest.raises(ImportError, match=r"pip install effect-workflow\[viz\]"):
        viz.save_timeline(events, tmp_path / "x.png")
    # The layout needs no matplotlib.
    assert viz.timeline_layout(events).rows
