"""Logging: levels, annotations, spans, the Logger service, stdlib integration."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Never

import pytest

import effect as fx
from effect.logging import (
    Logger,
    LogLevel,
    MemoryLogger,
    Spans,
    StdlibLogger,
    annotate_logs,
    log,
    log_debug,
    log_error,
    log_info,
    log_warning,
    log_with_level,
    render,
    with_log_span,
    with_minimum_log_level,
)
from effect.testing import TestClock


def run_with(memory: MemoryLogger, eff: fx.Effect[object, object, Logger]) -> object:
    return fx.run_sync(eff.provide(Logger.layer(memory)))


def test_levels_and_default_minimum_info() -> None:
    memory = MemoryLogger()
    prog = fx.all([log("a"), log_debug("b"), log_info("c"), log_warning("d"), log_error("e")])
    run_with(memory, prog)
    assert [(e.level, e.message) for e in memory.entries] == [
        (LogLevel.INFO, "a"),
        (LogLevel.INFO, "c"),
        (LogLevel.WARNING, "d"),
        (LogLevel.ERROR, "e"),
    ]


def test_minimum_level_is_fiber_local_and_scoped() -> None:
    memory = MemoryLogger()
    inner = fx.all([log_debug("debug in"), log_with_level(LogLevel.TRACE, "trace in")])
    prog = (
        inner.pipe(with_minimum_log_level(LogLevel.DEBUG))
        .and_then(log_debug("debug out"))
        .and_then(log_error("silenced").pipe(with_minimum_log_level(LogLevel.NONE)))
        .and_then(log_info("info out"))
    )
    run_with(memory, prog)
    assert memory.messages() == ["debug in", "info out"]


def test_annotations_nest_scope_and_merge_with_fields() -> None:
    memory = MemoryLogger()
    inner = log_info("inner", step="s1").pipe(annotate_logs("attempt", 2))
    prog = (
        inner.and_then(log_info("outer", run="override"))
        .pipe(annotate_logs("run", "r1"))
        .and_then(log_info("bare"))
    )
    run_with(memory, prog)
    assert [dict(e.annotations) for e in memory.entries] == [
        {"run": "r1", "attempt": 2, "step": "s1"},
        {"run": "override"},
        {},
    ]


def test_forked_fibers_inherit_annotations_and_level() -> None:
    memory = MemoryLogger()
    child = log_debug("from child").fork().flat_map(lambda f: f.join())
    prog = child.pipe(annotate_logs("parent", True), with_minimum_log_level(LogLevel.DEBUG))
    run_with(memory, prog)
    assert memory.entries[0].message == "from child"
    assert memory.entries[0].annotations == {"parent": True}


def test_spans_measure_elapsed_clock_time_outermost_first() -> None:
    clock, memory = TestClock(), MemoryLogger()
    inner = clock.adjust(0.25).and_then(log_info("step")).pipe(with_log_span("inner"))
    prog = clock.adjust(1.0).and_then(inner).pipe(with_log_span("outer"))
    fx.run_sync(prog.provide(Logger.layer(memory)).pipe(fx.provide_service(fx.Clock, clock)))
    entry = memory.entries[0]
    assert [label for label, _ in entry.spans] == ["outer", "inner"]
    assert [round(elapsed, 6) for _, elapsed in entry.spans] == [1.25, 0.25]
    assert render(entry.message, entry.annotations, entry.spans) == "step outer=1250ms inner=250ms"


def test_render_quotes_values_with_spaces() -> None:
    assert render("m", {"a": "x y", "b": "", "c": 'q"'}, []) == 'm a="x y" b="" c="q\\""'


def test_default_logger_writes_through_stdlib(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="effect")
    clock = TestClock()
    prog = (
        clock.adjust(0.012)
        .and_then(log_warning("charged", amount=3))
        .pipe(annotate_logs("run", "r1"), with_log_span("checkout"))
        .pipe(fx.provide_service(fx.Clock, clock))
    )
    fx.run_sync(prog)
    [record] = [r for r in caplog.records if r.name == "effect"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == "charged run=r1 amount=3 checkout=12ms"
    assert record.effect == {"run": "r1", "amount": 3}  # type: ignore[attr-defined]
    assert record.effect_spans == {"checkout": 12}  # type: ignore[attr-defined]


def test_stdlib_logger_respects_its_own_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="effect.quiet")
    prog = log_warning("dropped").and_then(log_error("kept"))
    fx.run_sync(prog.provide(Logger.layer(StdlibLogger("effect.quiet"))))
    assert [r.getMessage() for r in caplog.records if r.name == "effect.quiet"] == ["kept"]


class Exploding:
    def log(
        self, level: int, message: str, annotations: Mapping[str, object], spans: Spans
    ) -> None:
        raise RuntimeError("logger broke")


def test_a_failing_logger_never_fails_the_effect(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="effect")
    result = fx.run_sync(log_info("x").as_("still fine").provide(Logger.layer(Exploding())))
    assert result == "still fine"
    [record] = [r for r in caplog.records if r.name == "effect"]
    assert "failed to log" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


def test_bad_level() -> None:
    with pytest.raises(TypeError, match="level"):
        with_minimum_log_level("DEBUG")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="level"):
        log_with_level(None, "x")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_logging_under_an_event_loop() -> None:
    memory = MemoryLogger()

    def work(i: int) -> fx.Effect[None, Never, Never]:
        return fx.sleep(0.001).and_then(log_info("done")).pipe(annotate_logs("task", i))

    prog = fx.for_each(range(3), work, concurrency="unbounded")
    await fx.run(prog.provide(Logger.layer(memory)))
    assert sorted(e.annotations["task"] for e in memory.entries) == [0, 1, 2]  # type: ignore[type-var]
