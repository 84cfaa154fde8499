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

__all__ = [
    "AsyncFiberError",
    "Cause",
    "Clock",
    "ClockService",
    "Context",
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
    "ManagedRuntime",
    "Never",
    "Parallel",
    "Provider",
    "RuntimeDisposedError",
    "Scope",
    "Sequential",
    "Success",
    "Tag",
    "TimeoutException",
    "UnknownException",
    "acquire_release",
    "acquire_use_release",
    "add_finalizer",
    "all",
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
    "never",
    "now",
    "promise",
    "provide_service",
    "race",
    "race_all",
    "race_first",
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
    "yield_now",
]
