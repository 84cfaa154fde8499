"""`ManagedRuntime`: build a layer once and run many effects with its services.

This is the tool that keeps one long-lived service (an HTTP event tracker, a
connection pool) alive across many runs. Providing a scoped layer to each run
instead builds and tears it down per run, which is the pitfall
`docs/effect/layers.md` walks through.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any, Generic, Never, Self, TypeVar

import anyio
import anyio.abc

from effect._constructors import succeed
from effect._context import Context
from effect._effect import Effect, _check_effect
from effect._exit import Die, Exit, Failure, Success
from effect._fiber import Fiber
from effect._layer import Layer
from effect._runtime import OUTSIDE, Scheduler, _value_or_raise
from effect._scope import Scope

__all__ = ["ManagedRuntime", "RuntimeDisposedError"]

R = TypeVar("R", contravariant=True)
E = TypeVar("E", covariant=True)
A = TypeVar("A")
E2 = TypeVar("E2")


class RuntimeDisposedError(Exception):
    """A `ManagedRuntime` was used after `dispose()` (or outside its `async with`)."""


class ManagedRuntime(Generic[R, E]):
    """Runs effects with the services of one layer, built once.

    The layer is built on first use, exactly once even under concurrent first uses;
    a failed build is remembered and every run fails with it. `dispose()` (or leaving
    the `async with` block) closes the layer's scope with `Success(None)`, so its
    finalizers run once. Fibers that layers start with `fork_scoped` keep running
    between runs, on this runtime's own scheduler task.

    Examples:
        >>> import anyio, effect as fx
        >>> class Counter(fx.Tag["Counter", list[int]]): ...
        >>> async def main() -> list[int]:
        ...     async with fx.ManagedRuntime(fx.Layer.sync(Counter, list)) as rt:
        ...         for i in range(3):
        ...             await rt.run(fx.service(Counter).map(lambda c: c.append(i)))
        ...         return await rt.run(fx.service(Counter))
        >>> anyio.run(main)
        [0, 1, 2]
    """

    def __init__(self, layer: Layer[R, E, Never]) -> None:
        if not isinstance(layer, Layer):
            raise TypeError(f"ManagedRuntime expected a Layer, got {layer!r}")
        self._layer = layer
        self._scheduler = Scheduler(sync=False)
        self._scope = Scope()
        self._built: Exit[Context[Any], Any] | None = None
        self._building: anyio.Event | None = None
        self._task_group: anyio.abc.TaskGroup | None = None
        self._stopping = False
        self._disposed = False
        self._driver_done: anyio.Event | None = None

    async def __aenter__(self) -> Self:
        if self._task_group is not None:
            raise RuntimeError("this ManagedRuntime is already entered")
        self._task_group = anyio.create_task_group()
        await self._task_group.__aenter__()
        self._driver_done = anyio.Event()
        self._task_group.start_soon(self._drive)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        with anyio.CancelScope(shield=True):
            await self.dispose()
            self._stopping = True
            self._scheduler.interrupt_roots()
            self._scheduler.schedule_wakeup()
            assert self._driver_done is not None
            await self._driver_done.wait()
        assert self._task_group is not None
        # The driver has finished, so the group holds nothing that could fail: exit it
        # clean and let the block's own exception (if any) propagate as it is, not
        # wrapped in an ExceptionGroup.
        await self._task_group.__aexit__(None, None, None)
        return None

    async def _drive(self) -> None:
        scheduler = self._scheduler

        async def body() -> None:
            await scheduler.drive(lambda: self._stopping and not scheduler.roots)

        # Shielded: the driver stops when the runtime is left, not when the scope
        # around the `async with` is cancelled (that cancellation reaches the block,
        # whose exit then shuts the runtime down through this very driver).
        try:
            with anyio.CancelScope(shield=True):
                await scheduler.host(body)
        finally:
            assert self._driver_done is not None
            self._driver_done.set()

    async def _run_fiber(
        self, effect: Effect[Any, Any, Any], context: Context[Any] | None
    ) -> Exit[Any, Any]:
        fiber: Fiber[Any, Any] = self._scheduler.spawn(effect, context)
        done = anyio.Event()
        fiber._observe(lambda _: done.set())
        try:
            await done.wait()
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                fiber._signal_interrupt(OUTSIDE)
                await done.wait()
            raise
        exit = fiber.poll()
        assert exit is not None
        return exit

    async def _context(self) -> Exit[Context[Any], Any]:
        if self._built is not None:
            return self._built
        if self._building is not None:
            await self._building.wait()
            assert self._built is not None
            return self._built
        building = self._building = anyio.Event()

        def release_if_failed(
            built: Exit[Context[Any], Any],
        ) -> Effect[Exit[Context[Any], Any], Never, Never]:
            # Rule 68: what a failed build already acquired is released now, with the
            # failure; the failure itself is kept for every run (R80).
            if isinstance(built, Failure):
                return self._scope.close(built).as_(built)
            return succeed(built)

        def settle(exit: Exit[Exit[Context[Any], Any], Never]) -> None:
            self._built = exit.value if isinstance(exit, Success) else exit
            building.set()

        # The build runs on its own fiber, not the first caller's: a caller that is
        # cancelled while waiting leaves the build to finish for everyone (R77).
        build = self._layer.build(self._scope).exit().flat_map(release_if_failed)
        self._scheduler.spawn(build, None)._observe(settle)
        await building.wait()
        assert self._built is not None
        return self._built

    def _check_usable(self) -> None:
        if self._disposed:
            raise RuntimeDisposedError("ManagedRuntime disposed: it cannot run effects any more")
        if self._task_group is None:
            raise RuntimeDisposedError(
                "ManagedRuntime is not started: use `async with ManagedRuntime(layer) as rt:`"
            )

    async def run_exit(self, effect: Effect[A, E2, R]) -> Exit[A, E | E2]:
        """Run `effect` with the layer's services and return its `Exit`. Building the
        layer happens on the first run; a build failure is every run's failure."""
        _check_effect(effect, "ManagedRuntime.run_exit")
        if self._disposed:
            return Failure(Die(RuntimeDisposedError("ManagedRuntime disposed")))
        self._check_usable()
        built = await self._context()
        if isinstance(built, Failure):
            return built
        assert isinstance(built, Success)
        return await self._run_fiber(effect, built.value)

    async def fork(self, effect: Effect[A, E2, R]) -> Fiber[A, E | E2]:
        """Start `effect` on a new fiber of this runtime and return at once. The fiber
        runs in the background, with the layer's services, until it ends or the
        runtime shuts down (it is interrupted on leaving the `async with` block).
        Wait for it with `await rt.run(fiber.join())`."""
        _check_effect(effect, "ManagedRuntime.fork")
        self._check_usable()
        built = await self._context()
        if isinstance(built, Failure):
            from effect._constructors import fail_cause

            return self._scheduler.spawn(fail_cause(built.cause), None)
        assert isinstance(built, Success)
        return self._scheduler.spawn(effect, built.value)

    async def run(self, effect: Effect[A, E2, R]) -> A:
        """Run `effect` and return its value, or raise `FiberFailure`."""
        return _value_or_raise(await self.run_exit(effect))

    async def dispose(self) -> None:
        """Close the layer's scope with `Success(None)`, running its finalizers once.
        A second call does nothing; runs after it fail with `RuntimeDisposedError`."""
        if self._disposed:
            return
        self._disposed = True
        if self._task_group is None:
            return
        with anyio.CancelScope(shield=True):
            if self._building is not None:
                await self._building.wait()
            await self._run_fiber(self._scope.close(Success(None)), None)
