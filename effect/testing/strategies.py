"""Hypothesis strategies for random resource programs, and an oracle that says what
running one must do.

A *program* is a small tree of plain data (frozen attrs nodes): nested `Scoped`
blocks, `Resource`s (`fx.acquire_release`), `Finalizer`s (`fx.add_finalizer`),
`OnExit` / `Ensuring` guards, steps that fail, die or interrupt themselves, `Yield`
points where an interruption can land, and `Fork`s whose child is joined or left to
supervision. Three functions work on it:

- `programs()` is a hypothesis strategy that draws programs (they shrink well:
  towards fewer, simpler, succeeding nodes);
- `compile(program, recorder)` builds the `Effect`; running it appends one `Event` to
  the `Recorder` (a plain list) for every acquisition, release, finalizer, cleanup and
  scope exit, each release with the kind of `Exit` it was given;
- `expected(program)` runs a pure Python model of the semantics (rules R26-R51 of the
  Effect-TS reference) and returns an `Expectation`: the exact events of the main
  fiber, the exit kind, and the failures and defects the final cause must hold.

The model is exact wherever the semantics are: the main fiber's events, every
joined child's events, and the final cause. A child left to supervision runs
concurrently and is interrupted when its parent ends, at a point the scheduler
picks; for its track the model gives the set of allowed traces (one per point where
the interruption can land, plus the complete run). For a program interrupted from
outside at an unknown moment, `interruption_outcomes(program)` lists one
`Expectation` per possible landing point and `check_interrupted` accepts any of
them; `check_invariants` checks what holds whatever the timing: every acquired
resource released exactly once, in reverse order, each release seeing its scope's
exit.

Examples:
    >>> import effect as fx
    >>> from hypothesis import given, settings
    >>> from effect.testing import strategies as fxst
    >>> @settings(max_examples=25, database=None)
    ... @given(fxst.programs())
    ... def test_resources(program: fxst.Scoped) -> None:
    ...     recorder = fxst.Recorder()
    ...     exit = fx.run_sync_exit(fxst.compile(program, recorder))
    ...     fxst.expected(program).check(recorder, exit)
    >>> test_resources()

A hand-written program reads like the effect it compiles to:

    >>> prog = fxst.Scoped("s0", fxst.Seq((
    ...     fxst.Resource("db", fxst.Action(), fxst.Action("fail")),
    ...     fxst.Resource("cache", fxst.Action(), fxst.Action()),
    ...     fxst.FailStep("boom"),
    ... )))
    >>> [str(e) for e in fxst.expected(prog).events]
    ['acquire db', 'acquire cache', 'scope_exit s0 [failure]', 'release cache [failure]', \
'release db [failure]']
    >>> fxst.expected(prog).exit.failures
    ('boom', 'db:release')

The model assumes an interruption from outside lands only where the fiber is
suspended (a `Yield`, a `Sleep`, a join) or before it starts, which is how the
runtime behaves for programs well under its slice budget (2048 steps between
yields); generated programs stay far below it.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Literal, Never, cast

import attrs
from hypothesis import strategies as st

import effect as fx
from effect import Effect, Exit, Scope, Success, acquire_release, add_finalizer, scoped

__all__ = [
    "Action",
    "DieStep",
    "Ensuring",
    "Event",
    "ExitKind",
    "ExitSpec",
    "Expectation",
    "FailStep",
    "Finalizer",
    "Fork",
    "InterruptStep",
    "Node",
    "OnExit",
    "Outcome",
    "ProgramDefect",
    "ProgramError",
    "Recorder",
    "Resource",
    "Scoped",
    "Seq",
    "Sleep",
    "Step",
    "Yield",
    "AcquireRelease",
    "actions",
    "check_interrupted",
    "check_invariants",
    "compile",
    "exit_kind",
    "expected",
    "interruption_outcomes",
    "programs",
]

ExitKind = Literal["success", "failure", "interrupted"]
"""How an exit is classified: `failure` if the cause holds a `Fail` or a `Die`,
`interrupted` if it holds only interruptions."""

Outcome = Literal["succeed", "fail", "die"]

EventKind = Literal[
    "step",
    "acquire",
    "release",
    "finalizer_added",
    "finalizer",
    "on_exit",
    "ensuring",
    "scope_exit",
]


# -- the program tree ------------------------------------------------------------------


@attrs.frozen
class Action:
    """What an acquire, a release, a finalizer or a cleanup does: pass `yields`
    `Yield` points, then succeed, fail with `ProgramError(label)` or die with
    `ProgramDefect(label)`. The label is `"<name>:acquire"`, `"<name>:release"`,
    `"<name>:cleanup"`, or the finalizer's name."""

    outcome: Outcome = "succeed"
    yields: int = 0


@attrs.frozen
class Node:
    """Base class of the program nodes."""


@attrs.frozen
class Step(Node):
    """Record `Event("step", name)` and succeed."""

    name: str


@attrs.frozen
class Yield(Node):
    """`fx.yield_now()`: a point where an interruption can land."""


@attrs.frozen
class Sleep(Node):
    """`fx.sleep(seconds)`: like `Yield`, but through the event loop's timers (so the
    program needs `await fx.run`, not `run_sync`)."""

    seconds: float = 0.0001


@attrs.frozen
class FailStep(Node):
    """`fx.fail(ProgramError(name))`."""

    name: str


@attrs.frozen
class DieStep(Node):
    """`fx.die(ProgramDefect(name))`."""

    name: str


@attrs.frozen
class InterruptStep(Node):
    """`fx.interrupt()`: the fiber fails with its own interruption."""

    name: str


@attrs.frozen
class Seq(Node):
    """Run `items` in order; the first failure skips the rest."""

    items: tuple[Node, ...] = ()


@attrs.frozen
class Scoped(Node):
    """`fx.scoped(body)`: a fresh scope, closed with the body's exit when it ends.
    Records `Event("scope_exit", name, exit)` when the body ends, before the close."""

    name: str
    body: Node = Seq()


@attrs.frozen
class Resource(Node):
    """`fx.acquire_release(acquire, release)` in the enclosing scope. Records
    `acquire` once acquired, and `release` (with the exit it got) when released."""

    name: str
    acquire: Action = Action()
    release: Action = Action()


@attrs.frozen
class Finalizer(Node):
    """`fx.add_finalizer(...)` in the enclosing scope. Records `finalizer_added` at
    registration and `finalizer` (with the exit it got) when it runs."""

    name: str
    action: Action = Action()


@attrs.frozen
class OnExit(Node):
    """`body.on_exit(cleanup)`. Records `on_exit` with the body's exit kind."""

    name: str
    body: Node = Seq()
    cleanup: Action = Action()


@attrs.frozen
class Ensuring(Node):
    """`body.ensuring(cleanup)`. Records `ensuring` (no exit: it does not see it)."""

    name: str
    body: Node = Seq()
    cleanup: Action = Action()


@attrs.frozen
class Fork(Node):
    """Fork `body` (a `Scoped`, so the child owns its resources) on a child fiber. With
    `join`, wait for it and fail as it failed; without, continue at once and leave it
    to supervision (it is interrupted when the forking fiber ends). Its events go to
    track `"<parent track>/<name>"` (the main fiber's track is `""`)."""

    name: str
    body: Scoped = attrs.field(validator=attrs.validators.instance_of(Scoped))
    join: bool = True


# -- events and exits ------------------------------------------------------------------


@attrs.frozen
class Event:
    """One thing a compiled program did. `exit` is the kind of exit a release,
    finalizer, `on_exit` cleanup or scope close saw; `track` names the fiber."""

    kind: EventKind
    name: str
    exit: ExitKind | None = None
    track: str = ""

    def __str__(self) -> str:
        text = f"{self.kind} {self.name}"
        if self.exit is not None:
            text += f" [{self.exit}]"
        return f"{text} @{self.track}" if self.track else text


class Recorder(list[Event]):
    """The events of one run, in the order they happened (all fibers interleaved)."""

    def track(self, track: str = "") -> tuple[Event, ...]:
        """The events of one fiber, in order."""
        return tuple(e for e in self if e.track == track)

    def tracks(self) -> set[str]:
        """The names of the fibers that recorded something."""
        return {e.track for e in self}


@attrs.frozen
class ProgramError:
    """The typed error of a failing step or action."""

    label: str


class ProgramDefect(Exception):
    """The defect of a dying step or action."""

    def __init__(self, label: str) -> None:
        super().__init__(label)
        self.label = label


def exit_kind(exit: Exit[Any, Any]) -> ExitKind:
    """`success`, `failure` (the cause holds a `Fail` or a `Die`) or `interrupted`."""
    if isinstance(exit, Success):
        return "success"
    return "interrupted" if exit.cause.is_interrupted_only() else "failure"


@attrs.frozen
class ExitSpec:
    """What an exit must look like: its kind, the labels of the cause's failures and
    defects (left to right), and whether it holds an interruption."""

    kind: ExitKind
    failures: tuple[str, ...] = ()
    defects: tuple[str, ...] = ()
    interrupted: bool = False

    @staticmethod
    def of(exit: Exit[Any, Any]) -> ExitSpec:
        """The spec an observed exit satisfies."""
        if isinstance(exit, Success):
            return ExitSpec("success")
        cause = exit.cause
        return ExitSpec(
            exit_kind(exit),
            tuple(e.label if isinstance(e, ProgramError) else repr(e) for e in cause.failures()),
            tuple(d.label if isinstance(d, ProgramDefect) else repr(d) for d in cause.defects()),
            cause.is_interrupted(),
        )


TrackSet = frozenset[tuple[Event, ...]]


@attrs.frozen
class Expectation:
    """What one run of a program must show.

    `events` are the main fiber's events, exactly; `exit` the program's exit;
    `tracks` maps each forked fiber's track to the set of traces it may show (a
    single trace when its timing is determined). A track not listed must stay
    empty."""

    events: tuple[Event, ...]
    exit: ExitSpec
    tracks: tuple[tuple[str, TrackSet], ...] = ()

    def allowed(self, track: str) -> TrackSet:
        """The traces allowed on `track` (`""` is the main fiber)."""
        if track == "":
            return frozenset({self.events})
        for name, traces in self.tracks:
            if name == track:
                return traces
        return frozenset({()})

    def problems(self, events: Sequence[Event], exit: Exit[Any, Any]) -> list[str]:
        """Every way the observed run differs from this expectation (empty: none)."""
        found: list[str] = []
        observed = Recorder(events)
        if observed.track("") != self.events:
            found.append(
                "main fiber events differ:\n  expected: "
                + _show(self.events)
                + "\n  observed: "
                + _show(observed.track(""))
            )
        spec = ExitSpec.of(exit)
        if spec != self.exit:
            found.append(f"exit differs:\n  expected: {self.exit}\n  observed: {spec} ({exit!r})")
        names = observed.tracks() | {name for name, _ in self.tracks}
        for track in sorted(names - {""}):
            trace = observed.track(track)
            allowed = self.allowed(track)
            if trace not in allowed:
                options = "\n".join("    " + _show(t) for t in sorted(allowed, key=len))
                found.append(
                    f"track {track!r} shows a trace the model does not allow:\n"
                    f"  observed: {_show(trace)}\n  allowed:\n{options}"
                )
        return found

    def check(self, events: Sequence[Event], exit: Exit[Any, Any]) -> None:
        """Raise `AssertionError` describing every difference, if any."""
        found = self.problems(events, exit)
        if found:
            raise AssertionError("\n".join(found))


def _show(events: Iterable[Event]) -> str:
    return "[" + ", ".join(str(e) for e in events) + "]"


# -- compiling a program to an effect -----------------------------------------------

_Eff = Effect[None, ProgramError, Scope]

AcquireRelease = Callable[
    [
        Effect[None, ProgramError, Never],
        Callable[[None, Exit[Any, Any]], Effect[Any, Never, Never]],
    ],
    Effect[Any, ProgramError, Scope],
]
"""The shape of `fx.acquire_release` as `compile` uses it: what a `Resource` node
compiles through. Pass your own to test a resource combinator against the model."""


def compile(
    program: Scoped,
    recorder: list[Event],
    *,
    acquire_release: AcquireRelease = acquire_release,
) -> Effect[None, ProgramError, Never]:
    """The effect that runs `program`, appending its events to `recorder`.

    The effect has no async step unless the program holds a `Sleep`, so
    `fx.run_sync_exit` can run it. It can be run many times; each run appends again.
    Every `Resource` node goes through `acquire_release(acquire, release)` (by
    default `fx.acquire_release`): substitute your own combinator to check that it
    keeps the semantics the model describes (see `docs/effect/testing.md`).
    """
    if not isinstance(program, Scoped):
        raise TypeError(f"a program's root must be a Scoped node, got {program!r}")
    if not callable(acquire_release):
        raise TypeError(f"acquire_release must be callable, got {acquire_release!r}")
    return _Compiler(recorder, acquire_release).scoped(program, "")


def _action(
    action: Action, label: str, before: Callable[[], None] | None
) -> Effect[None, ProgramError, Never]:
    eff: Effect[None, ProgramError, Never] = fx.sync(before) if before is not None else fx.void
    for _ in range(action.yields):
        eff = eff.and_then(fx.yield_now())
    if action.outcome == "fail":
        eff = eff.and_then(fx.fail(ProgramError(label)))
    elif action.outcome == "die":
        eff = eff.and_then(fx.die(ProgramDefect(label)))
    return eff


class _Compiler:
    def __init__(self, recorder: list[Event], acquire_release: AcquireRelease) -> None:
        self.rec = recorder
        self.acquire_release = acquire_release

    def record(self, event: Event) -> Effect[None, Never, Never]:
        rec = self.rec
        return fx.sync(lambda: rec.append(event))

    def scoped(self, node: Scoped, track: str) -> Effect[None, ProgramError, Never]:
        name = node.name

        def scope_exit(ex: Exit[Any, Any]) -> Effect[None, Never, Never]:
            return self.record(Event("scope_exit", name, exit_kind(ex), track))

        return scoped(self.node(node.body, track).on_exit(scope_exit))

    def node(self, node: Node, track: str) -> _Eff:
        if isinstance(node, Step):
            return self.record(Event("step", node.name, None, track))
        if isinstance(node, Yield):
            return fx.yield_now()
        if isinstance(node, Sleep):
            return fx.sleep(node.seconds)
        if isinstance(node, FailStep):
            return fx.fail(ProgramError(node.name))
        if isinstance(node, DieStep):
            return fx.die(ProgramDefect(node.name))
        if isinstance(node, InterruptStep):
            return fx.interrupt()
        if isinstance(node, Seq):
            eff: _Eff = fx.void
            for item in node.items:
                eff = eff.and_then(self.node(item, track))
            return eff
        if isinstance(node, Scoped):
            return self.scoped(node, track)
        if isinstance(node, Resource):
            return self.resource(node, track)
        if isinstance(node, Finalizer):
            return self.finalizer(node, track)
        if isinstance(node, OnExit | Ensuring):
            return self.guard(node, track)
        if isinstance(node, Fork):
            child = self.scoped(node.body, _child_track(track, node.name))
            if node.join:
                return child.fork().flat_map(lambda fiber: fiber.join())
            return child.fork().as_void
        raise TypeError(f"not a program node: {node!r}")

    def resource(self, node: Resource, track: str) -> _Eff:
        name, release, rec = node.name, node.release, self.rec
        acquired = Event("acquire", name, None, track)
        acquire = _action(node.acquire, f"{name}:acquire", None).and_then(self.record(acquired))

        def release_fn(_: None, ex: Exit[Any, Any]) -> Effect[Any, Never, Never]:
            event = Event("release", name, exit_kind(ex), track)
            # A release typed `Never` may still fail at run time: that is what is tested.
            return cast(
                Effect[Any, Never, Never],
                _action(release, f"{name}:release", lambda: rec.append(event)),
            )

        return self.acquire_release(acquire, release_fn).as_void

    def finalizer(self, node: Finalizer, track: str) -> _Eff:
        name, action, rec = node.name, node.action, self.rec

        def finalizer(ex: Exit[Any, Any]) -> Effect[Any, Never, Never]:
            event = Event("finalizer", name, exit_kind(ex), track)
            return cast(Effect[Any, Never, Never], _action(action, name, lambda: rec.append(event)))

        added = self.record(Event("finalizer_added", name, None, track))
        return added.and_then(add_finalizer(finalizer))

    def guard(self, node: OnExit | Ensuring, track: str) -> _Eff:
        name, cleanup, rec = node.name, node.cleanup, self.rec
        body = self.node(node.body, track)
        if isinstance(node, Ensuring):
            event = Event("ensuring", name, None, track)
            return body.ensuring(_action(cleanup, f"{name}:cleanup", lambda: rec.append(event)))

        def on_exit(ex: Exit[Any, Any]) -> Effect[None, ProgramError, Never]:
            exited = Event("on_exit", name, exit_kind(ex), track)
            return _action(cleanup, f"{name}:cleanup", lambda: rec.append(exited))

        return body.on_exit(on_exit)


def _child_track(track: str, name: str) -> str:
    return f"{track}/{name}" if track else name


# -- the model ---------------------------------------------------------------------------

_LeafKind = Literal["fail", "die", "interrupt"]
_Leaf = tuple[_LeafKind, str]
_Out = tuple[_Leaf, ...] | None  # None: success; else the cause's leaves, in order
_INTERRUPT: _Leaf = ("interrupt", "")
_Tracks = dict[str, set[tuple[Event, ...]]]


def _kind(out: _Out) -> ExitKind:
    if out is None:
        return "success"
    return "failure" if any(k != "interrupt" for k, _ in out) else "interrupted"


def _spec(out: _Out) -> ExitSpec:
    if out is None:
        return ExitSpec("success")
    return ExitSpec(
        _kind(out),
        tuple(label for k, label in out if k == "fail"),
        tuple(label for k, label in out if k == "die"),
        any(k == "interrupt" for k, _ in out),
    )


def _combine(out: _Out, cleanup: _Out) -> _Out:
    # R31: after a success the cleanup's cause replaces it; after a failure the two
    # are sequential.
    if cleanup is None:
        return out
    return cleanup if out is None else out + cleanup


def _has_interrupt(out: tuple[_Leaf, ...]) -> bool:
    return any(k == "interrupt" for k, _ in out)


class _Memo:
    def __init__(self) -> None:
        self.detached: dict[tuple[int, str, bool], _Tracks] = {}


class _Sim:
    """One fiber of the model. `interrupt_at` is the index of the interruption point
    (0 is the fiber's start) at which an interruption from outside arrives."""

    def __init__(self, track: str, interrupt_at: int | None, memo: _Memo, interruptible: bool):
        self.track = track
        self.interrupt_at = interrupt_at
        self.memo = memo
        self.interruptible = interruptible
        self.pending = False
        self.points = 0
        self.events: list[Event] = []
        self.scopes: list[list[Callable[[ExitKind], _Out]]] = []
        self.tracks: _Tracks = defaultdict(set)

    def run_program(self, program: Scoped) -> _Out:
        if self._point():
            return (_INTERRUPT,)
        return self._run(program)

    # interruption ------------------------------------------------------------------

    def _point(self) -> bool:
        """Pass an interruption point; True if the interruption lands here."""
        index = self.points
        self.points += 1
        if index == self.interrupt_at:
            self.pending = True
        return self.pending and self.interruptible

    def _region_end(self, saved: bool, out: _Out) -> _Out:
        # R51: leaving an uninterruptible region, a pending interruption lands.
        if saved and self.pending:
            if out is None:
                return (_INTERRUPT,)
            if not _has_interrupt(out):
                return (*out, _INTERRUPT)
        return out

    def _on_exit(self, body: Callable[[], _Out], cleanup: Callable[[_Out], _Out]) -> _Out:
        # The mask makes the region uninterruptible; `restore(body)` runs the body with
        # the outer flag, and a pending interruption fails it on entry.
        saved = self.interruptible
        out: _Out = (_INTERRUPT,) if saved and self.pending else body()
        self.interruptible = False
        out = _combine(out, cleanup(out))
        self.interruptible = saved
        return self._region_end(saved, out)

    # nodes ---------------------------------------------------------------------------

    def _emit(self, kind: EventKind, name: str, exit: ExitKind | None = None) -> None:
        self.events.append(Event(kind, name, exit, self.track))

    def _action(self, action: Action, label: str) -> _Out:
        for _ in range(action.yields):
            if self._point():
                return (_INTERRUPT,)
        if action.outcome == "fail":
            return (("fail", label),)
        if action.outcome == "die":
            return (("die", label),)
        return None

    def _run(self, node: Node) -> _Out:
        if isinstance(node, Step):
            self._emit("step", node.name)
            return None
        if isinstance(node, Yield | Sleep):
            return (_INTERRUPT,) if self._point() else None
        if isinstance(node, FailStep):
            return (("fail", node.name),)
        if isinstance(node, DieStep):
            return (("die", node.name),)
        if isinstance(node, InterruptStep):
            return (_INTERRUPT,)
        if isinstance(node, Seq):
            for item in node.items:
                out = self._run(item)
                if out is not None:
                    return out
            return None
        if isinstance(node, Scoped):
            return self._scoped(node)
        if isinstance(node, Resource):
            return self._resource(node)
        if isinstance(node, Finalizer):
            return self._finalizer(node)
        if isinstance(node, OnExit | Ensuring):
            return self._guard(node)
        if isinstance(node, Fork):
            return self._fork(node)
        raise TypeError(f"not a program node: {node!r}")

    def _scoped(self, node: Scoped) -> _Out:
        self.scopes.append([])

        def body() -> _Out:
            def scope_exit(out: _Out) -> _Out:
                self._emit("scope_exit", node.name, _kind(out))
                return None

            return self._on_exit(lambda: self._run(node.body), scope_exit)

        def close(out: _Out) -> _Out:
            # R28: LIFO, each with the scope's exit, every one runs, causes in order.
            finalizers = self.scopes.pop()
            leaves: tuple[_Leaf, ...] = ()
            for finalizer in reversed(finalizers):
                result = finalizer(_kind(out))
                if result is not None:
                    leaves += result
            return leaves or None

        return self._on_exit(body, close)

    def _resource(self, node: Resource) -> _Out:
        # R39: acquire and the registration of release are one uninterruptible region.
        saved = self.interruptible
        self.interruptible = False
        out = self._action(node.acquire, f"{node.name}:acquire")
        if out is None:
            self._emit("acquire", node.name)
            name, release = node.name, node.release

            def finalizer(kind: ExitKind) -> _Out:
                self._emit("release", name, kind)
                return self._action(release, f"{name}:release")

            self.scopes[-1].append(finalizer)
        self.interruptible = saved
        return self._region_end(saved, out)

    def _finalizer(self, node: Finalizer) -> _Out:
        self._emit("finalizer_added", node.name)
        name, action = node.name, node.action

        def finalizer(kind: ExitKind) -> _Out:
            self._emit("finalizer", name, kind)
            return self._action(action, name)

        self.scopes[-1].append(finalizer)
        return None

    def _guard(self, node: OnExit | Ensuring) -> _Out:
        def cleanup(out: _Out) -> _Out:
            if isinstance(node, OnExit):
                self._emit("on_exit", node.name, _kind(out))
            else:
                self._emit("ensuring", node.name)
            return self._action(node.cleanup, f"{node.name}:cleanup")

        return self._on_exit(lambda: self._run(node.body), cleanup)

    def _fork(self, node: Fork) -> _Out:
        track = _child_track(self.track, node.name)
        if not node.join:
            self._merge(_detached(node.body, track, self.interruptible, self.memo))
            return None
        if self._point():
            # Interrupted while joining: the child is left to supervision.
            self._merge(_detached(node.body, track, self.interruptible, self.memo))
            return (_INTERRUPT,)
        child = _Sim(track, None, self.memo, self.interruptible)
        out = child.run_program(node.body)
        self._merge({track: {tuple(child.events)}})
        self._merge(child.tracks)
        return out

    def _merge(self, tracks: _Tracks) -> None:
        for name, traces in tracks.items():
            self.tracks[name] |= traces


def _outcomes(
    program: Scoped, track: str, interruptible: bool, memo: _Memo
) -> Iterator[tuple[_Sim, _Out]]:
    """Run the model once per interruption point (0 = before the start), ending with
    the run the interruption never reaches."""
    index = 0
    while True:
        sim = _Sim(track, index, memo, interruptible)
        out = sim.run_program(program)
        yield sim, out
        if sim.points <= index:
            return
        index += 1


def _detached(program: Scoped, track: str, interruptible: bool, memo: _Memo) -> _Tracks:
    key = (id(program), track, interruptible)
    cached = memo.detached.get(key)
    if cached is not None:
        return cached
    result: _Tracks = defaultdict(set)
    for sim, _ in _outcomes(program, track, interruptible, memo):
        result[track].add(tuple(sim.events))
        for name, traces in sim.tracks.items():
            result[name] |= traces
    memo.detached[key] = result
    return result


def _expectation(sim: _Sim, out: _Out) -> Expectation:
    tracks = tuple(sorted((name, frozenset(traces)) for name, traces in sim.tracks.items()))
    return Expectation(tuple(sim.events), _spec(out), tracks)


def expected(program: Scoped) -> Expectation:
    """What running `program` must show when nothing interrupts it from outside.

    Examples:
        >>> prog = Scoped("s", Seq((Resource("r", release=Action("die")), Step("x"))))
        >>> exp = expected(prog)
        >>> [str(e) for e in exp.events]
        ['acquire r', 'step x', 'scope_exit s [success]', 'release r [success]']
        >>> exp.exit
        ExitSpec(kind='failure', failures=(), defects=('r:release',), interrupted=False)
    """
    if not isinstance(program, Scoped):
        raise TypeError(f"a program's root must be a Scoped node, got {program!r}")
    sim = _Sim("", None, _Memo(), True)
    out = sim.run_program(program)
    return _expectation(sim, out)


def interruption_outcomes(program: Scoped) -> tuple[Expectation, ...]:
    """One `Expectation` per point where an interruption from outside can land on the
    program's fiber: before it starts, at each `Yield`/`Sleep`/join it reaches, and
    finally never (the last one equals `expected(program)`).

    Examples:
        >>> prog = Scoped("s", Seq((Resource("r"), Yield(), Step("after"))))
        >>> for outcome in interruption_outcomes(prog):
        ...     print(outcome.exit.kind, [str(e) for e in outcome.events])
        interrupted []
        interrupted ['acquire r', 'scope_exit s [interrupted]', 'release r [interrupted]']
        success ['acquire r', 'step after', 'scope_exit s [success]', 'release r [success]']
    """
    if not isinstance(program, Scoped):
        raise TypeError(f"a program's root must be a Scoped node, got {program!r}")
    memo = _Memo()
    unique: dict[Expectation, None] = {}
    for sim, out in _outcomes(program, "", True, memo):
        unique[_expectation(sim, out)] = None
    return tuple(unique)


def check_interrupted(program: Scoped, events: Sequence[Event], exit: Exit[Any, Any]) -> None:
    """Check a run of `program` interrupted from outside at an unknown moment: it must
    match one of `interruption_outcomes(program)`. Raises `AssertionError` showing
    the closest outcome otherwise.

    Examples:
        >>> prog = Scoped("s", Seq((Resource("r"), Yield(), Step("after"))))
        >>> @fx.gen
        ... def interrupt_after_one_round() -> fx.Gen[Exit[Any, Any], Never, Never]:
        ...     fiber = yield from compile(prog, recorder).fork()
        ...     yield from fx.yield_now()
        ...     return (yield from fiber.interrupt())
        >>> recorder = Recorder()
        >>> exit = fx.run_sync(interrupt_after_one_round)
        >>> check_interrupted(prog, recorder, exit)
        >>> [str(e) for e in recorder]
        ['acquire r', 'scope_exit s [interrupted]', 'release r [interrupted]']
    """
    best: list[str] | None = None
    for expectation in interruption_outcomes(program):
        found = expectation.problems(events, exit)
        if not found:
            return
        if best is None or len(found) < len(best):
            best = found
    assert best is not None
    raise AssertionError("no interruption point explains the run; closest:\n" + "\n".join(best))


# -- invariants that hold whatever the timing ----------------------------------------


def _owners(node: Node, scope: str, owners: dict[str, str]) -> None:
    if isinstance(node, Scoped):
        _owners(node.body, node.name, owners)
    elif isinstance(node, Resource | Finalizer):
        owners[node.name] = scope
    elif isinstance(node, Seq):
        for item in node.items:
            _owners(item, scope, owners)
    elif isinstance(node, OnExit | Ensuring | Fork):
        _owners(node.body, scope, owners)


def check_invariants(program: Scoped, events: Sequence[Event]) -> None:
    """Check what every run of `program` must show, however it was interrupted: on
    each fiber, every acquired resource and registered finalizer released exactly
    once, in reverse order of acquisition (scopes nest, so the releases of a fiber
    mirror its acquisitions like parentheses), each release after its scope's body
    ended and with that body's exit kind, and no event twice.

    Examples:
        >>> prog = Scoped("s", Seq((Resource("a"), Resource("b"))))
        >>> check_invariants(prog, [Event("acquire", "a"), Event("acquire", "b")])
        Traceback (most recent call last):
        ...
        AssertionError: track '': never released: ['b', 'a']
    """
    owners: dict[str, str] = {}
    _owners(program, program.name, owners)
    found: list[str] = []
    recorder = Recorder(events)
    for track in sorted(recorder.tracks()):
        stack: list[str] = []
        scope_exits: dict[str, ExitKind | None] = {}
        seen: set[tuple[str, str]] = set()
        where = f"track {track!r}: "
        for event in recorder.track(track):
            key = (event.kind, event.name)
            if key in seen:
                found.append(where + f"{event} happened twice")
            seen.add(key)
            if event.kind in ("acquire", "finalizer_added"):
                stack.append(event.name)
            elif event.kind in ("release", "finalizer"):
                if event.name not in stack:
                    found.append(where + f"{event} without an acquisition")
                    continue
                if stack[-1] != event.name:
                    found.append(where + f"{event} out of LIFO order (expected {stack[-1]} first)")
                stack.remove(event.name)
                scope = owners.get(event.name)
                if scope not in scope_exits:
                    found.append(where + f"{event} before the body of its scope {scope} ended")
                elif scope_exits[scope] != event.exit:
                    found.append(
                        where + f"{event} saw another exit than its scope's ({scope_exits[scope]})"
                    )
            elif event.kind == "scope_exit":
                scope_exits[event.name] = event.exit
        if stack:
            found.append(where + f"never released: {list(reversed(stack))}")
    if found:
        raise AssertionError("\n".join(found))


# -- strategies ----------------------------------------------------------------------


@attrs.frozen
class _Options:
    max_depth: int
    max_items: int
    failures: bool
    interrupts: bool
    forks: bool
    async_steps: bool


def actions(*, failures: bool = True, max_yields: int = 1) -> st.SearchStrategy[Action]:
    """Actions that mostly succeed; with `failures`, some fail or die."""
    outcomes: list[Outcome] = ["succeed", "succeed", "fail", "die"] if failures else ["succeed"]
    return st.builds(Action, st.sampled_from(outcomes), st.integers(0, max_yields))


def _to_seq(items: list[Node]) -> Seq:
    return Seq(tuple(items))


def _tree(opts: _Options) -> st.SearchStrategy[Seq]:
    """Sequences of nodes nested up to `opts.max_depth` deep. The strategies are built
    once per level (not per draw), which keeps generation cheap."""
    action = actions(failures=opts.failures)
    acquire_outcomes: list[Outcome] = (
        ["succeed", "succeed", "succeed", "fail", "die"] if opts.failures else ["succeed"]
    )
    acquire = st.builds(Action, st.sampled_from(acquire_outcomes), st.integers(0, 1))
    resource = st.builds(lambda a, r: Resource("", a, r), acquire, action)
    leaves: list[st.SearchStrategy[Node]] = [
        st.just(Step("")),
        st.just(Yield()),
        resource,
        resource,
        st.builds(lambda a: Finalizer("", a), action),
    ]
    if opts.failures:
        leaves += [st.just(FailStep("")), st.just(DieStep(""))]
    if opts.interrupts:
        leaves.append(st.just(InterruptStep("")))
    if opts.async_steps:
        leaves.append(st.just(Sleep()))
    seq = st.lists(st.one_of(leaves), max_size=opts.max_items).map(_to_seq)
    for _ in range(opts.max_depth):
        body = seq
        scoped_node = st.builds(lambda b: Scoped("", b), body)
        nested: list[st.SearchStrategy[Node]] = [
            scoped_node,
            scoped_node,
            st.builds(lambda b, a: OnExit("", b, a), body, action),
            st.builds(lambda b, a: Ensuring("", b, a), body, action),
        ]
        if opts.forks:
            fork = st.builds(lambda b, j: Fork("", Scoped("", b), j), body, st.booleans())
            nested += [fork, fork]
        seq = st.lists(st.one_of(leaves + nested), max_size=opts.max_items).map(_to_seq)
    return seq


_PREFIX = {
    Step: "step",
    FailStep: "fail",
    DieStep: "die",
    InterruptStep: "int",
    Scoped: "s",
    Resource: "r",
    Finalizer: "fin",
    OnExit: "exit",
    Ensuring: "ens",
    Fork: "fork",
}


def _name_all(node: Node, counter: Iterator[int]) -> Node:
    """Give every named node a unique name, in pre-order."""
    changes: dict[str, Any] = {}
    prefix = _PREFIX.get(type(node))
    if prefix is not None:
        changes["name"] = f"{prefix}{next(counter)}"
    if isinstance(node, Seq):
        changes["items"] = tuple(_name_all(item, counter) for item in node.items)
    elif isinstance(node, Scoped | OnExit | Ensuring | Fork):
        changes["body"] = _name_all(node.body, counter)
    return attrs.evolve(node, **changes) if changes else node


def _numbered(program: Scoped) -> Scoped:
    named = _name_all(program, itertools.count())
    assert isinstance(named, Scoped)
    return named


def programs(
    *,
    max_depth: int = 3,
    max_items: int = 4,
    failures: bool = True,
    interrupts: bool = True,
    forks: bool = True,
    async_steps: bool = False,
) -> st.SearchStrategy[Scoped]:
    """Random programs: a root `Scoped` block of up to `max_items` nodes, nested up to
    `max_depth` blocks deep (`Scoped`, `OnExit`, `Ensuring`, `Fork`).

    `failures` allows failing and dying steps and actions; `interrupts` allows
    `InterruptStep`; `forks` allows `Fork` (joined or not); `async_steps` adds `Sleep`
    (then run the program with `await fx.run_exit`). Every named node gets a unique
    name (`r3`, `fin7`, `s0`...), so each event happens at most once per run.

    Examples:
        >>> from hypothesis import given, settings
        >>> @settings(max_examples=25, database=None)
        ... @given(programs(forks=False))
        ... def test(program: Scoped) -> None:
        ...     recorder = Recorder()
        ...     exit = fx.run_sync_exit(compile(program, recorder))
        ...     expected(program).check(recorder, exit)
        >>> test()
    """
    if max_depth < 0 or max_items < 0:
        raise ValueError("max_depth and max_items must be >= 0")
    opts = _Options(max_depth, max_items, failures, interrupts, forks, async_steps)
    return _tree(opts).map(lambda body: _numbered(Scoped("", body)))
