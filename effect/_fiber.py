"""Fibers: lightweight threads of effect execution, and the interpreter loop.

A fiber is plain Python state: the effect to evaluate next, a continuation stack,
its services, and its interruption state. The scheduler (`_runtime.Scheduler`) runs
ready fibers one slice at a time; a fiber touches anyio only when it awaits real I/O
(`fx.promise`) or a timer. That is what makes forking a fiber about as cheap as a
plain object allocation instead of an anyio task (24-34 us here).

The loop is one function with an explicit stack, so a chain of a million
`flat_map`s or a million-deep recursion through `suspend` uses constant Python stack.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator
from types import GeneratorType
from typing import TYPE_CHECKING, Any, Generic, Never, TypeVar

from effect._context import Context
from effect._effect import (
    OP_ASYNC,
    OP_DELIVER,
    OP_FAIL,
    OP_FLAT_MAP,
    OP_FOLD,
    OP_FORK,
    OP_GEN,
    OP_GEN_FRAME,
    OP_GET_LOCAL,
    OP_LOCALLY,
    OP_MAP,
    OP_MASK,
    OP_PROMISE,
    OP_PROVIDE,
    OP_RESTORE_CONTEXT,
    OP_RESTORE_INTERRUPTIBLE,
    OP_RESTORE_REFS,
    OP_SERVICE,
    OP_SET_INTERRUPTIBLE,
    OP_SLEEP,
    OP_SUCCEED,
    OP_SUSPEND,
    OP_SYNC,
    OP_WITH_FIBER,
    OP_YIELD,
    Canceler,
    Effect,
    _Async,
    _describe,
    _FailCause,
    _FlatMap,
    _SetInterruptible,
    _Succeed,
    _WithFiber,
)
from effect._exit import Cause, Die, Exit, Failure, Interrupt, Success

if TYPE_CHECKING:
    from effect._runtime import Scheduler

__all__ = ["Fiber", "FiberId"]

A = TypeVar("A", covariant=True)
E = TypeVar("E", covariant=True)

FiberId = int
_ids = itertools.count(1)

# How many steps a fiber runs before it yields to the others (and, on an event loop,
# to other tasks). Large enough to keep the scheduler's overhead per step negligible.
BUDGET = 2048

# Fiber states.
_READY = 0
_RUNNING = 1
_SUSPENDED = 2
_DONE = 3


class _GenFrame:
    __slots__ = ("body", "gen")
    _op = OP_GEN_FRAME

    def __init__(self, gen: Generator[Any, Any, Any], body: object) -> None:
        self.gen = gen
        self.body = body


class _RestoreInterruptible:
    __slots__ = ("flag",)
    _op = OP_RESTORE_INTERRUPTIBLE

    def __init__(self, flag: bool) -> None:
        self.flag = flag


class _RestoreContext:
    __slots__ = ("context",)
    _op = OP_RESTORE_CONTEXT

    def __init__(self, context: Context[Any]) -> None:
        self.context = context


class _RestoreRefs:
    __slots__ = ("refs",)
    _op = OP_RESTORE_REFS

    def __init__(self, refs: dict[object, object]) -> None:
        self.refs = refs


class _Deliver:
    # Bottom frame used by supervision: once the children are gone, publish `exit`
    # whatever the interruption state is.
    __slots__ = ("exit",)
    _op = OP_DELIVER

    def __init__(self, exit: Exit[Any, Any]) -> None:
        self.exit = exit


class Fiber(Generic[A, E]):
    """A running effect. Obtained from `eff.fork()`; never constructed directly.

    Examples:
        >>> import effect as fx
        >>> prog = fx.succeed(21).map(lambda n: n * 2).fork().flat_map(lambda f: f.join())
        >>> fx.run_sync(prog)
        42
    """

    __slots__ = (
        "_canceler",
        "_children",
        "_context",
        "_cur",
        "_epoch",
        "_exit",
        "_interrupt_cause",
        "_interruptible",
        "_observers",
        "_parent",
        "_refs",
        "_resumed_inline",
        "_scheduler",
        "_self_resuming",
        "_stack",
        "_state",
        "id",
    )

    def __init__(
        self,
        scheduler: Scheduler,
        effect: Effect[Any, Any, Any],
        context: Context[Any],
        interruptible: bool,
        refs: dict[object, object] | None = None,
    ) -> None:
        self.id: FiberId = next(_ids)
        self._scheduler = scheduler
        self._cur: Effect[Any, Any, Any] | None = effect
        self._stack: list[Any] = []
        self._context = context
        self._interruptible = interruptible
        self._interrupt_cause: Cause[Never] | None = None
        self._state = _READY
        self._epoch = 0
        self._canceler: Canceler | None = None
        self._self_resuming = False
        self._exit: Exit[A, E] | None = None
        self._observers: list[Callable[[Exit[A, E]], None]] | None = None
        self._children: set[Fiber[Any, Any]] | None = None
        self._parent: Fiber[Any, Any] | None = None
        self._resumed_inline = False
        # Fiber-local values (log annotations, spans, ...). Never mutated in place: an
        # update replaces the dict, so a child can share its parent's at fork for free.
        self._refs: dict[object, object] = refs if refs is not None else _NO_REFS

    # -- public API (each returns an effect) ----------------------------------------

    def join(self) -> Effect[A, E, Never]:
        """Wait for the fiber and succeed or fail as it did. Joining an interrupted
        fiber fails the joiner with that interruption."""
        return _FlatMap(self.await_(), _from_exit)

    def await_(self) -> Effect[Exit[A, E], Never, Never]:
        """Wait for the fiber and succeed with its `Exit`; never fails."""
        return _Async(lambda joiner, resume: self._observe(lambda ex: resume(_Succeed(ex))))

    def interrupt(self) -> Effect[Exit[A, E], Never, Never]:
        """Interrupt the fiber and wait until it has ended, finalizers included; succeed
        with its `Exit`. On a fiber that already ended, its exit as it is."""

        def send(caller: Fiber[Any, Any]) -> Effect[Exit[A, E], Never, Never]:
            self._signal_interrupt(caller.id)
            return self.await_()

        return _WithFiber(send)

    def poll(self) -> Exit[A, E] | None:
        """The fiber's exit if it has ended, else None (a plain call, not an effect)."""
        return self._exit

    @property
    def done(self) -> bool:
        """True once the fiber has ended and published its exit."""
        return self._exit is not None

    def __repr__(self) -> str:
        state = ("ready", "running", "suspended", "done")[self._state]
        return f"<Fiber #{self.id} {state}>"

    # -- runtime internals --------------------------------------------------------

    def _observe(self, callback: Callable[[Exit[A, E]], None]) -> Canceler | None:
        """Call `callback(exit)` when the fiber ends (at once if it has). Returns a
        canceler that removes the observer."""
        if self._exit is not None:
            callback(self._exit)
            return None
        if self._observers is None:
            self._observers = []
        observers = self._observers
        observers.append(callback)

        def cancel() -> None:
            if callback in observers:
                observers.remove(callback)

        return cancel

    def _signal_interrupt(self, by: FiberId) -> None:
        """Ask the fiber to stop. It stops at once if it is suspended and interruptible,
        else when it next checks (resume, yield, end of an uninterruptible region)."""
        if self._exit is not None:
            return
        if self._interrupt_cause is None:
            self._interrupt_cause = Interrupt(by)
        if self._state == _SUSPENDED and self._interruptible:
            canceler, self._canceler = self._canceler, None
            if self._self_resuming:
                # Real I/O: cancel it and let its task resume us once it has stopped,
                # so finalizers never run while the I/O is still in progress.
                if canceler is not None:
                    canceler()
                return
            if canceler is not None:
                canceler()
            self._resume(self._epoch, _VOID)

    def _resume(self, epoch: int, effect: Effect[Any, Any, Any]) -> None:
        """Continue a suspended fiber with `effect`. Stale or repeated resumes (another
        epoch) are ignored, so a callback can never run a fiber twice."""
        if epoch != self._epoch or self._state == _DONE:
            return
        if self._state == _RUNNING:
            # `register` called resume before returning: continue inline.
            self._epoch += 1
            self._cur = effect
            self._resumed_inline = True
            return
        if self._state != _SUSPENDED:
            return
        self._epoch += 1
        self._canceler = None
        self._self_resuming = False
        self._cur = effect
        self._state = _READY
        self._scheduler.schedule(self)

    def _add_child(self, child: Fiber[Any, Any]) -> None:
        if self._children is None:
            self._children = set()
        self._children.add(child)
        child._parent = self

    def _run(self) -> None:
        """Run until the fiber ends, suspends, or spends its budget."""
        self._state = _RUNNING
        cur: Any = self._cur
        self._cur = None
        stack = self._stack
        push = stack.append
        pop = stack.pop
        budget = BUDGET
        if self._interrupt_cause is not None and self._interruptible:
            cur = _FailCause(self._interrupt_cause)
        while True:
            try:
                while True:
                    op = cur._op
                    if op == OP_FLAT_MAP or op == OP_MAP:
                        push(cur)
                        cur = cur.inner
                        continue
                    if op == OP_SUCCEED:
                        value = cur.value
                    # Do-notation next: `fx.gen` and `yield from` a tag or a fiber-local
                    # are most of what a workflow runs between its sequencing nodes.
                    elif op == OP_GEN:
                        gen = cur.body()
                        # The ABC check is slow; a real generator never needs it.
                        if type(gen) is not GeneratorType and not isinstance(gen, Generator):
                            raise TypeError(
                                f"fx.gen expected a generator function, but {_describe(cur.body)} "
                                f"returned {gen!r}"
                            )
                        frame = _GenFrame(gen, cur.body)
                        push(frame)
                        try:
                            cur = gen.send(None)
                        except StopIteration as stop:
                            pop()
                            value = stop.value
                        else:
                            if not isinstance(cur, Effect):
                                cur = _bad_yield(frame, cur)
                            continue
                    elif op == OP_SERVICE:
                        try:
                            value = self._context._services[cur.tag]
                        except KeyError:
                            cur = _FailCause(
                                Die(KeyError(f"Service not found: {cur.tag.__name__}"))
                            )
                            continue
                    elif op == OP_GET_LOCAL:
                        value = self._refs.get(cur.key)
                    elif op == OP_SYNC:
                        value = cur.thunk()
                    elif op == OP_FAIL:
                        cause = cur.cause
                        cur = None
                        # Unwind to the nearest frame that handles failures.
                        while stack:
                            frame = pop()
                            fop = frame._op
                            if fop == OP_FOLD:
                                if frame.on_failure is None:
                                    continue
                                if self._interruptible and self._interrupt_cause is not None:
                                    # Rule 21: an interrupted fiber skips the handler,
                                    # and the typed failures it would have seen go too.
                                    cause = cause.strip_failures()
                                    continue
                                cur = frame.on_failure(cause)
                                break
                            if fop == OP_RESTORE_INTERRUPTIBLE:
                                self._interruptible = frame.flag
                                ic = self._interrupt_cause
                                if frame.flag and ic is not None and not cause.is_interrupted():
                                    cause = cause.then(ic)
                            elif fop == OP_GEN_FRAME:
                                cause = _close_generator(frame, cause)
                            elif fop == OP_RESTORE_CONTEXT:
                                self._context = frame.context
                            elif fop == OP_RESTORE_REFS:
                                self._refs = frame.refs
                            elif fop == OP_DELIVER:
                                self._stack = stack
                                self._complete(frame.exit)
                                return
                        if cur is None:
                            if self._finish(Failure(cause)):
                                return
                            cur = self._cur
                            self._cur = None
                        continue
                    elif op == OP_FOLD:
                        push(cur)
                        cur = cur.inner
                        continue
                    elif op == OP_SUSPEND:
                        cur = cur.thunk()
                        budget -= 1
                        if budget == 0:
                            self._yield(cur)
                            return
                        continue
                    elif op == OP_SET_INTERRUPTIBLE:
                        flag = cur.flag
                        if flag != self._interruptible:
                            push(_RestoreInterruptible(self._interruptible))
                            self._interruptible = flag
                            if flag and self._interrupt_cause is not None:
                                cur = _FailCause(self._interrupt_cause)
                                continue
                        cur = cur.inner
                        continue
                    elif op == OP_MASK:
                        body = cur.body(_restorer(self._interruptible))
                        cur = _SetInterruptible(body, False)
                        continue
                    elif op == OP_WITH_FIBER:
                        cur = cur.body(self)
                        continue
                    elif op == OP_PROVIDE:
                        push(_RestoreContext(self._context))
                        self._context = cur.update(self._context)
                        cur = cur.inner
                        continue
                    elif op == OP_LOCALLY:
                        refs = self._refs
                        push(_RestoreRefs(refs))
                        self._refs = {**refs, cur.key: cur.update(refs.get(cur.key))}
                        cur = cur.inner
                        continue
                    elif op == OP_FORK:
                        value = self._fork(cur.inner, cur.daemon)
                    elif op == OP_ASYNC:
                        if self._suspend_on(cur.register):
                            return
                        cur = self._cur
                        self._cur = None
                        continue
                    elif op == OP_PROMISE:
                        self._state = _SUSPENDED
                        self._self_resuming = True
                        self._scheduler.start_promise(self, self._epoch, cur)
                        return
                    elif op == OP_SLEEP:
                        self._state = _SUSPENDED
                        self._scheduler.start_sleep(self, self._epoch, cur.seconds)
                        return
                    elif op == OP_YIELD:
                        self._yield(_VOID)
                        return
                    else:
                        raise TypeError(f"unknown effect node {cur!r}")

                    # A value was produced: feed it to the continuation stack.
                    while True:
                        if not stack:
                            if self._finish(Success(value)):
                                return
                            cur = self._cur
                            self._cur = None
                            break
                        frame = pop()
                        fop = frame._op
                        if fop == OP_MAP:
                            value = frame.f(value)
                            continue
                        if fop == OP_FLAT_MAP:
                            cur = frame.f(value)
                            budget -= 1
                            if budget == 0:
                                self._yield(cur)
                                return
                            break
                        if fop == OP_FOLD:
                            if frame.on_success is None:
                                continue
                            cur = frame.on_success(value)
                            break
                        if fop == OP_GEN_FRAME:
                            try:
                                cur = frame.gen.send(value)
                            except StopIteration as stop:
                                value = stop.value
                                continue
                            push(frame)
                            if not isinstance(cur, Effect):
                                cur = _bad_yield(frame, cur)
                            budget -= 1
                            if budget == 0:
                                self._yield(cur)
                                return
                            break
                        if fop == OP_RESTORE_INTERRUPTIBLE:
                            self._interruptible = frame.flag
                            if frame.flag and self._interrupt_cause is not None:
                                # Rule 51: the region finished, now the interrupt lands.
                                cur = _FailCause(self._interrupt_cause)
                                break
                            continue
                        if fop == OP_RESTORE_CONTEXT:
                            self._context = frame.context
                            continue
                        if fop == OP_RESTORE_REFS:
                            self._refs = frame.refs
                            continue
                        if fop == OP_DELIVER:
                            self._complete(frame.exit)
                            return
                        raise TypeError(f"unknown frame {frame!r}")
            except Exception as exc:  # a defect raised by user code inside a step
                if (
                    isinstance(exc, AttributeError)
                    and exc.name == "_op"
                    and exc.obj is cur
                    and not isinstance(cur, Effect)
                ):
                    # A callback returned something that is not an effect.
                    exc = TypeError(f"expected an Effect, got {cur!r} of type {type(cur).__name__}")
                cur = _FailCause(Die(exc))

    def _yield(self, cur: Effect[Any, Any, Any]) -> None:
        self._cur = cur
        self._state = _READY
        self._scheduler.schedule(self)

    def _suspend_on(
        self,
        register: Callable[
            [Fiber[Any, Any], Callable[[Effect[Any, Any, Any]], None]], Canceler | None
        ],
    ) -> bool:
        """Suspend on an `_Async` node. Returns False if `register` resumed at once (the
        fiber then continues inline with `self._cur`)."""
        epoch = self._epoch
        self._resumed_inline = False

        def resume(effect: Effect[Any, Any, Any]) -> None:
            self._resume(epoch, effect)

        canceler = register(self, resume)
        if self._resumed_inline:
            self._resumed_inline = False
            return False
        self._state = _SUSPENDED
        self._canceler = canceler
        if self._interrupt_cause is not None and self._interruptible:
            self._signal_interrupt(0)
        return True

    def _fork(self, effect: Effect[Any, Any, Any], daemon: bool) -> Fiber[Any, Any]:
        child: Fiber[Any, Any] = Fiber(
            self._scheduler, effect, self._context, self._interruptible, self._refs
        )
        if daemon:
            self._scheduler.add_root(child)
        else:
            self._add_child(child)
        self._scheduler.schedule(child)
        return child

    def _finish(self, exit: Exit[Any, Any]) -> bool:
        """The stack is empty. Returns True if the fiber is done; False if it must first
        interrupt and await its children (then `self._cur` holds that work)."""
        children = self._children
        if children:
            self._stack.append(_Deliver(exit))
            self._cur = _SetInterruptible(_Async(_interrupt_children), False)
            return False
        self._complete(exit)
        return True

    def _complete(self, exit: Exit[Any, Any]) -> None:
        self._state = _DONE
        self._exit = exit
        self._stack = []
        parent = self._parent
        if parent is not None and parent._children is not None:
            parent._children.discard(self)
            self._parent = None
        observers = self._observers
        self._observers = None
        if observers:
            for observer in observers:
                observer(exit)
        self._scheduler.fiber_done(self)


_VOID: Effect[None, Never, Never] = _Succeed(None)
_NO_REFS: dict[object, object] = {}


def _from_exit(exit: Exit[Any, Any]) -> Effect[Any, Any, Never]:
    if isinstance(exit, Success):
        return _Succeed(exit.value)
    assert isinstance(exit, Failure)
    return _FailCause(exit.cause)


def _restorer(outer: bool) -> Callable[[Effect[Any, Any, Any]], Effect[Any, Any, Any]]:
    """The `restore` of a mask: runs an effect with the interruptibility `outer` that
    was in force when the mask began (a closure over a value, not over a variable
    of the loop, which later masks reassign)."""
    return lambda eff: _SetInterruptible(eff, outer)


def _interrupt_children(
    fiber: Fiber[Any, Any], resume: Callable[[Effect[Any, Any, Any]], None]
) -> None:
    children = list(fiber._children or ())
    remaining = len(children)

    def one_done(_: Exit[Any, Any]) -> None:
        nonlocal remaining
        remaining -= 1
        if remaining == 0:
            resume(_VOID)

    for child in children:
        child._signal_interrupt(fiber.id)
    for child in children:
        child._observe(one_done)


def _close_generator(frame: _GenFrame, cause: Cause[Any]) -> Cause[Any]:
    # Closing runs the generator's `finally` blocks now rather than at garbage
    # collection. They may run plain code but may not yield effects.
    try:
        frame.gen.close()
    except Exception as exc:
        return cause.then(Die(exc))
    return cause


def _bad_yield(frame: _GenFrame, value: object) -> Effect[Any, Any, Any]:
    hint = " (use `yield from`, not `yield`)" if isinstance(value, type) else ""
    return _FailCause(
        Die(
            TypeError(
                f"fx.gen body {_describe(frame.body)} yielded {value!r}, "
                f"which is not an Effect{hint}"
            )
        )
    )
