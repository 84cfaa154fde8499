"""Structured logging as effects: `log_info("charged", amount=3)`.

A log call reads three fiber-local values (see `docs/design/runtime.md`): the
annotations added by `annotate_logs`, the spans opened by `with_log_span`, and the
minimum level set by `with_minimum_log_level` (INFO by default, as in Effect-TS).
Forked fibers inherit them. The record then goes to the `Logger` service; without
one, to the standard library's `logging` under the logger name "effect".

Logging never fails the effect: if the logger raises, the exception is reported
through `logging.getLogger("effect")` (with its traceback) and dropped.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Never, Protocol, TypeVar

import attrs

from effect._context import Tag
from effect._effect import Effect, _check_effect, _Succeed, _WithFiber, locally
from effect._fiber import Fiber
from effect._layer import Layer
from effect.clock import Clock

__all__ = [
    "LogEntry",
    "LogLevel",
    "Logger",
    "LoggerService",
    "MemoryLogger",
    "StdlibLogger",
    "annotate_logs",
    "log",
    "log_debug",
    "log_error",
    "log_info",
    "log_warning",
    "log_with_level",
    "with_log_span",
    "with_minimum_log_level",
]

A = TypeVar("A")
E = TypeVar("E")
R = TypeVar("R")

Spans = Sequence[tuple[str, float]]
"""Open spans at the time of a log call, outermost first: `(label, seconds elapsed)`."""


class LogLevel(enum.IntEnum):
    """Log levels, numbered as the standard library's (plus TRACE and NONE)."""

    TRACE = 5
    DEBUG = logging.DEBUG
    INFO = logging.INFO
    WARNING = logging.WARNING
    ERROR = logging.ERROR
    FATAL = logging.CRITICAL
    NONE = 100
    """As a minimum level: log nothing."""


class LoggerService(Protocol):
    """What a logger provides: one call per record that passed the minimum level."""

    def log(
        self, level: int, message: str, annotations: Mapping[str, object], spans: Spans
    ) -> None:
        """Write one record. `annotations` merges `annotate_logs` values and the call's
        own fields; `spans` are `(label, seconds elapsed)`, outermost first."""
        ...


class Logger(Tag["Logger", LoggerService]):
    """The tag of the logger service. Optional: without it, records go to the
    standard library (`StdlibLogger("effect")`)."""

    @staticmethod
    def layer(logger: LoggerService) -> Layer[Logger, Never, Never]:
        """A layer providing `logger` as the `Logger` service.

        Examples:
            >>> import effect as fx
            >>> memory = MemoryLogger()
            >>> fx.run_sync(log_info("hi").provide(Logger.layer(memory)))
            >>> memory.messages()
            ['hi']
        """
        return Layer.succeed(Logger, logger)


def render(message: str, annotations: Mapping[str, object], spans: Spans) -> str:
    """`message key=value ... span=12ms`, logfmt style (values with spaces quoted).

    Examples:
        >>> render("charged", {"user": "ada", "note": "two words"}, [("checkout", 0.0123)])
        'charged user=ada note="two words" checkout=12ms'
    """
    parts = [message]
    parts.extend(f"{key}={_logfmt(value)}" for key, value in annotations.items())
    parts.extend(f"{label}={round(elapsed * 1000)}ms" for label, elapsed in spans)
    return " ".join(parts)


def _logfmt(value: object) -> str:
    text = str(value)
    if not text or any(c.isspace() or c in '="' for c in text):
        return json.dumps(text)
    return text


class StdlibLogger:
    """Writes records through the standard library's `logging`.

    The message is rendered with its annotations and spans (`render`); the record
    also carries them as `record.effect` (a dict of the annotations) and
    `record.effect_spans` (a dict of span label to milliseconds).

    Examples:
        >>> import effect as fx
        >>> logger = StdlibLogger("my.app")
        >>> fx.run_sync(log_info("hello").provide(Logger.layer(logger)))
    """

    __slots__ = ("_logger",)

    def __init__(self, logger: logging.Logger | str = "effect") -> None:
        self._logger = logging.getLogger(logger) if isinstance(logger, str) else logger

    def log(
        self, level: int, message: str, annotations: Mapping[str, object], spans: Spans
    ) -> None:
        std = self._logger
        if not std.isEnabledFor(level):
            return
        std.log(
            level,
            render(message, annotations, spans),
            extra={
                "effect": dict(annotations),
                "effect_spans": {label: round(elapsed * 1000) for label, elapsed in spans},
            },
        )


@attrs.frozen
class LogEntry:
    """One record kept by a `MemoryLogger`."""

    level: int
    message: str
    annotations: Mapping[str, object]
    spans: tuple[tuple[str, float], ...]


class MemoryLogger:
    """Keeps every record in `entries`, for tests.

    Examples:
        >>> import effect as fx
        >>> memory = MemoryLogger()
        >>> prog = log_warning("slow", ms=250).pipe(annotate_logs("run", 7))
        >>> fx.run_sync(prog.provide(Logger.layer(memory)))
        >>> entry = memory.entries[0]
        >>> entry.level == LogLevel.WARNING, entry.message, dict(entry.annotations)
        (True, 'slow', {'run': 7, 'ms': 250})
    """

    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: list[LogEntry] = []

    def log(
        self, level: int, message: str, annotations: Mapping[str, object], spans: Spans
    ) -> None:
        self.entries.append(LogEntry(level, message, dict(annotations), tuple(spans)))

    def messages(self) -> list[str]:
        """The messages logged so far, in order."""
        return [entry.message for entry in self.entries]


_DEFAULT_LOGGER = StdlibLogger("effect")
_INTERNAL = logging.getLogger("effect")

# Keys of the fiber-local values; private objects so nothing else can collide.
_ANNOTATIONS = object()
_SPANS = object()
_MIN_LEVEL = object()

_VOID: Effect[None, Never, Never] = _Succeed(None)


# -- logging ---------------------------------------------------------------------


def log_with_level(level: int, message: str, **fields: object) -> Effect[None, Never, Never]:
    """Log `message` at `level` with the current annotations and spans, plus
    `fields` for this record only. Skipped below the fiber's minimum level. Never
    fails.

    Examples:
        >>> import effect as fx
        >>> memory = MemoryLogger()
        >>> fx.run_sync(log_with_level(LogLevel.ERROR, "x").provide(Logger.layer(memory)))
        >>> memory.entries[0].level
        40
    """
    if isinstance(level, bool) or not isinstance(level, int):
        raise TypeError(f"level must be an int or LogLevel, got level={level!r}")
    plain = int(level)
    return _WithFiber(lambda fiber: _emit(fiber, plain, message, fields))


def log(message: str, **fields: object) -> Effect[None, Never, Never]:
    """Log `message` at INFO (Effect-TS `Effect.log`). See `log_with_level`.

    Examples:
        >>> import effect as fx
        >>> memory = MemoryLogger()
        >>> fx.run_sync(log("started", job="sync").provide(Logger.layer(memory)))
        >>> memory.entries[0].annotations
        {'job': 'sync'}
    """
    return log_with_level(LogLevel.INFO, message, **fields)


def log_debug(message: str, **fields: object) -> Effect[None, Never, Never]:
    """Log `message` at DEBUG (dropped unless the minimum level allows it).

    Examples:
        >>> import effect as fx
        >>> memory = MemoryLogger()
        >>> fx.run_sync(log_debug("hidden").provide(Logger.layer(memory)))
        >>> memory.entries
        []
    """
    return log_with_level(LogLevel.DEBUG, message, **fields)


def log_info(message: str, **fields: object) -> Effect[None, Never, Never]:
    """Log `message` at INFO.

    Examples:
        >>> import effect as fx
        >>> fx.run_sync(log_info("hello"))
    """
    return log_with_level(LogLevel.INFO, message, **fields)


def log_warning(message: str, **fields: object) -> Effect[None, Never, Never]:
    """Log `message` at WARNING.

    Examples:
        >>> import effect as fx
        >>> fx.run_sync(log_warning("careful"))
    """
    return log_with_level(LogLevel.WARNING, message, **fields)


def log_error(message: str, **fields: object) -> Effect[None, Never, Never]:
    """Log `message` at ERROR.

    Examples:
        >>> import effect as fx
        >>> fx.run_sync(log_error("broken"))
    """
    return log_with_level(LogLevel.ERROR, message, **fields)


def _emit(
    fiber: Fiber[Any, Any], level: int, message: str, fields: dict[str, object]
) -> Effect[None, Never, Never]:
    refs = fiber._refs
    minimum = refs.get(_MIN_LEVEL)
    if level < (LogLevel.INFO if minimum is None else minimum):  # type: ignore[operator]
        return _VOID
    annotations: Mapping[str, object] = refs.get(_ANNOTATIONS) or {}  # type: ignore[assignment]
    if fields:
        annotations = {**annotations, **fields}
    context = fiber._context
    open_spans: tuple[tuple[str, float], ...] = refs.get(_SPANS) or ()  # type: ignore[assignment]
    spans: Spans = ()
    if open_spans:
        now = _now(fiber)
        spans = [(label, now - start) for label, start in open_spans]
    logger = context.get_option(Logger) or _DEFAULT_LOGGER
    try:
        logger.log(level, message, annotations, spans)
    except Exception:
        # A broken logging configuration as well leaves nothing else to try.
        with contextlib.suppress(Exception):
            _INTERNAL.error("effect logger %r failed to log %r", logger, message, exc_info=True)
    return _VOID


def _now(fiber: Fiber[Any, Any]) -> float:
    clock = fiber._context.get_option(Clock)
    return clock.now() if clock is not None else time.time()


# -- fiber-local settings ----------------------------------------------------------


def annotate_logs(key: str, value: object) -> Callable[[Effect[A, E, R]], Effect[A, E, R]]:
    """A function that runs an effect with `key=value` added to every log record it
    (and the fibers it forks) writes: `eff.pipe(annotate_logs("run", run_id))`.

    Examples:
        >>> import effect as fx
        >>> memory = MemoryLogger()
        >>> prog = log_info("step").pipe(annotate_logs("try", 2), annotate_logs("run", "r1"))
        >>> fx.run_sync(prog.provide(Logger.layer(memory)))
        >>> memory.entries[0].annotations
        {'run': 'r1', 'try': 2}
    """

    def update(old: Mapping[str, object] | None) -> Mapping[str, object]:
        return {**(old or {}), key: value}

    def apply(effect: Effect[A, E, R]) -> Effect[A, E, R]:
        _check_effect(effect, "annotate_logs")
        return locally(effect, _ANNOTATIONS, update)

    return apply


def with_log_span(label: str) -> Callable[[Effect[A, E, R]], Effect[A, E, R]]:
    """A function that runs an effect inside a log span: its records (and those of
    the fibers it forks) show `label=<ms since the effect started>ms`. The time comes
    from the `Clock`.

    Examples:
        >>> import effect as fx
        >>> from effect.testing import TestClock
        >>> clock, memory = TestClock(), MemoryLogger()
        >>> prog = clock.adjust(0.012).and_then(log_info("done")).pipe(with_log_span("load"))
        >>> prog = prog.provide(Logger.layer(memory)).pipe(fx.provide_service(fx.Clock, clock))
        >>> fx.run_sync(prog)
        >>> render(memory.entries[0].message, {}, memory.entries[0].spans)
        'done load=12ms'
    """

    def apply(effect: Effect[A, E, R]) -> Effect[A, E, R]:
        _check_effect(effect, "with_log_span")

        def start(fiber: Fiber[Any, Any]) -> Effect[A, E, R]:
            began = _now(fiber)
            return locally(effect, _SPANS, lambda spans: (*(spans or ()), (label, began)))

        return _WithFiber(start)

    return apply


def with_minimum_log_level(level: int) -> Callable[[Effect[A, E, R]], Effect[A, E, R]]:
    """A function that runs an effect logging only records at `level` or above
    (`LogLevel.NONE` silences it). The default minimum is INFO.

    Examples:
        >>> import effect as fx
        >>> memory = MemoryLogger()
        >>> prog = log_debug("details").pipe(with_minimum_log_level(LogLevel.DEBUG))
        >>> fx.run_sync(prog.provide(Logger.layer(memory)))
        >>> memory.messages()
        ['details']
    """
    if isinstance(level, bool) or not isinstance(level, int):
        raise TypeError(f"level must be an int or LogLevel, got level={level!r}")

    def apply(effect: Effect[A, E, R]) -> Effect[A, E, R]:
        _check_effect(effect, "with_minimum_log_level")
        return locally(effect, _MIN_LEVEL, lambda _: level)

    return apply
