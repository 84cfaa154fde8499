"""A typed, stack-safe effect system for Python, modeled on Effect-TS, on anyio.

    import effect as fx

An `Effect[A, E, R]` is a lazy description of a program that succeeds with `A`, may
fail with the typed error `E`, and needs the services `R`. Compose effects with
methods or `fx.gen`, run them with `await fx.run(eff)` (asyncio or trio) or
`fx.run_sync(eff)`.
"""

from typing import Never

from effect._concurrency import all, for_each, race, race_all, race_first
from effect._constructors import (
    async_,
    die,
    die_message,
    fail,
    fail_cause,
    fiber_id,
    fn,
    from_exit,
    gen,
    interrupt,
    never,
    promise,
    provide_service,
    succeed,
    suspend,
    sync,
    try_,
    try_promise,
    uninterruptible_mask,
    void,
    yield_now,
)
from effect._context import Context, Tag
from effect._effect import Effect, Gen, Provider, TimeoutException, UnknownException, service
from effect._exit import (
    Cause,
    Die,
    Empty,
    Exit,
    Fail,
    Failure,
    FailureError,
    Interrupt,
    InterruptedException,
    Parallel,
    Sequential,
    Success,
)
from effect._fiber import Fiber
from effect._layer import Layer
from effect._managed import ManagedRuntime, RuntimeDisposedError
from effect._runtime import AsyncFiberError, FiberFailure, run, run_exit, run_sync, run_sync_exit
from effect._scope import (
    Scope,
    acquire_release,
    acquire_use_release,
    add_finalizer,
    fork_in,
    fork_scoped,
    scoped,
)
from effect.clock import Clock, ClockService, now, sleep
from effect.deferred import Deferred
from effect.logging import (
    Logger,
    LoggerService,
    LogLevel,
    StdlibLogger,
    annotate_logs,
    log,
    log_debug,
    log_error,
    log_info,
    log_warning,
    log_with_level,
    with_log_span,
    with_minimum_log_level,
)
from effect.queue import Queue
from effect.ref import Ref
from effect.schedule import Schedule, retry_or_else
from effect.semaphore import Semaphore

__all__ = [
    "AsyncFiberError",
    "Cause",
    "Clock",
    "ClockService",
    "Context",
    "Deferred",
    "Die",
    "Effect",
    "Empty",
    "Exit",
    "Fail",
    "Failure",
    "FailureError",
    "Fiber",
    "FiberFailure",
    "Gen",
    "Interrupt",
    "InterruptedException",
    "Layer",
    "LogLevel",
    "Logger",
    "LoggerService",
    "ManagedRuntime",
    "Never",
    "Parallel",
    "Provider",
    "Queue",
    "Ref",
    "RuntimeDisposedError",
    "Schedule",
    "Scope",
    "Semaphore",
    "Sequential",
    "StdlibLogger",
    "Success",
    "Tag",
    "TimeoutException",
    "UnknownException",
    "acquire_release",
    "acquire_use_release",
    "add_finalizer",
    "all",
    "annotate_logs",
    "async_",
    "die",
    "die_message",
    "fail",
    "fail_cause",
    "fiber_id",
    "fn",
    "for_each",
    "fork_in",
    "fork_scoped",
    "from_exit",
    "gen",
    "interrupt",
    "log",
    "log_debug",
    "log_error",
    "log_info",
    "log_warning",
    "log_with_level",
    "never",
    "now",
    "promise",
    "provide_service",
    "race",
    "race_all",
    "race_first",
    "retry_or_else",
    "run",
    "run_exit",
    "run_sync",
    "run_sync_exit",
    "scoped",
    "service",
    "sleep",
    "succeed",
    "suspend",
    "sync",
    "try_",
    "try_promise",
    "uninterruptible_mask",
    "void",
    "with_log_span",
    "with_minimum_log_level",
    "yield_now",
]
