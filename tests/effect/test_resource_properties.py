"""Properties of scopes, finalizers and layers, checked on random programs with
hypothesis, under `run_sync` and on both anyio backends.

The programs and the oracle come from `effect.testing.strategies`: the oracle is a
pure Python model of the rules (R26-R51); see `docs/effect/testing.md`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Never

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import effect as fx
from effect import Failure, Success
from effect.testing import strategies as fxst

BACKENDS = ["asyncio", "trio"]

SYNC = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ASYNC = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_on(backend: str, effect: fx.Effect[Any, Any, Never]) -> fx.Exit[Any, Any]:
    exit: fx.Exit[Any, Any] = anyio.run(fx.run_exit, effect, backend=backend)
    return exit


def interrupted_after(
    effect: fx.Effect[Any, Any, Never], yields: int, seconds: float = 0.0
) -> fx.Effect[fx.Exit[Any, Any], Never, Never]:
    """Fork `effect`, let the scheduler run `yields` rounds (and `seconds`), then
    interrupt it; succeed with its exit."""

    @fx.gen
    def driver() -> fx.Gen[fx.Exit[Any, Any], Never, Never]:
        fiber = yield from effect.fork()
        for _ in range(yields):
            yield from fx.yield_now()
        if seconds:
            yield from fx.sleep(seconds)
        return (yield from fiber.interrupt())

    return driver


# -- the oracle: events, order, exits ----------------------------------------------


@SYNC
@given(fxst.programs())
def test_programs_match_the_model_under_run_sync(program: fxst.Scoped) -> None:
    recorder = fxst.Recorder()
    exit = fx.run_sync_exit(fxst.compile(program, recorder))
    fxst.check_invariants(program, recorder)
    fxst.expected(program).check(recorder, exit)


@pytest.mark.parametrize("backend", BACKENDS)
@ASYNC
@given(program=fxst.programs(async_steps=True))
def test_programs_match_the_model_on_the_event_loop(backend: str, program: fxst.Scoped) -> None:
    recorder = fxst.Recorder()
    exit = run_on(backend, fxst.compile(program, recorder))
    fxst.check_invariants(program, recorder)
    fxst.expected(program).check(recorder, exit)


@SYNC
@given(fxst.programs(forks=False))
def test_a_program_runs_the_same_every_time(program: fxst.Scoped) -> None:
    effect_program = fxst.compile(program, first := fxst.Recorder())
    exit_a = fx.run_sync_exit(effect_program)
    count = len(first)
    exit_b = fx.run_sync_exit(effect_program)
    assert first[:count] == first[count:]
    assert fxst.ExitSpec.of(exit_a) == fxst.ExitSpec.of(exit_b)


# -- failing finalizers never stop the others; the cause keeps every failure --------


def failing_labels(program: fxst.Node) -> dict[tuple[str, str], tuple[str, fxst.Outcome]]:
    """(event kind, name) -> (failure label, outcome) for every action that fails or dies."""
    found: dict[tuple[str, str], tuple[str, fxst.Outcome]] = {}

    def walk(node: fxst.Node) -> None:
        if isinstance(node, fxst.Resource) and node.release.outcome != "succeed":
            found[("release", node.name)] = (f"{node.name}:release", node.release.outcome)
        elif isinstance(node, fxst.Finalizer) and node.action.outcome != "succeed":
            found[("finalizer", node.name)] = (node.name, node.action.outcome)
        elif isinstance(node, fxst.OnExit | fxst.Ensuring) and node.cleanup.outcome != "succeed":
            kind = "on_exit" if isinstance(node, fxst.OnExit) else "ensuring"
            found[(kind, node.name)] = (f"{node.name}:cleanup", node.cleanup.outcome)
        for child in _children(node):
            walk(child)

    walk(program)
    return found


def _children(node: fxst.Node) -> tuple[fxst.Node, ...]:
    if isinstance(node, fxst.Seq):
        return node.items
    if isinstance(node, fxst.Scoped | fxst.OnExit | fxst.Ensuring | fxst.Fork):
        return (node.body,)
    return ()


@SYNC
@given(fxst.programs(forks=False))
def test_every_finalizer_failure_reaches_the_final_cause(program: fxst.Scoped) -> None:
    recorder = fxst.Recorder()
    exit = fx.run_sync_exit(fxst.compile(program, recorder))
    fxst.check_invariants(program, recorder)  # every registered finalizer ran, once
    spec = fxst.ExitSpec.of(exit)
    failing = failing_labels(program)
    for event in recorder:
        key = (event.kind, event.name)
        if key in failing:
            label, outcome = failing[key]
            assert label in (spec.failures if outcome == "fail" else spec.defects), (
                f"{event} failed with {label!r} but the cause is {exit!r}"
            )
    fxst.expected(program).check(recorder, exit)


Outcome3 = Literal["ok", "fail", "die"]


@SYNC
@given(st.lists(st.sampled_from(["ok", "fail", "die"]), max_size=8), st.booleans())
def test_scope_close_runs_every_finalizer_and_collects_causes_in_order(
    outcomes: list[Outcome3], body_fails: bool
) -> None:
    ran: list[int] = []
    defects = {i: ValueError(f"d{i}") for i in range(len(outcomes))}

    def finalizer(i: int, outcome: Outcome3) -> Callable[[fx.Exit[Any, Any]], Any]:
        def run(ex: fx.Exit[Any, Any]) -> fx.Effect[None, str, Never]:
            step: fx.Effect[None, str, Never] = fx.sync(lambda: ran.append(i))
            if outcome == "fail":
                return step.and_then(fx.fail(f"f{i}"))
            if outcome == "die":
                return step.and_then(fx.die(defects[i]))
            return step

        return run

    body: fx.Effect[Any, str, fx.Scope] = fx.void
    for i, outcome in enumerate(outcomes):
        body = body.and_then(fx.add_finalizer(finalizer(i, outcome)))
    body = body.and_then(fx.fail("body") if body_fails else fx.succeed("value"))
    exit = fx.run_sync_exit(fx.scoped(body))

    assert ran == list(reversed(range(len(outcomes))))
    # expected causes, in the order the finalizers ran (newest first)
    failures = [f"f{i}" for i in reversed(range(len(outcomes))) if outcomes[i] == "fail"]
    dead = [defects[i] for i in reversed(range(len(outcomes))) if outcomes[i] == "die"]
    if body_fails:
        failures = ["body", *failures]
    if not failures and not dead:
        assert exit == Success("value")
    else:
        assert isinstance(exit, Failure)
        assert exit.cause.failures() == failures
        assert exit.cause.defects() == dead
        leaves = list(exit.cause.leaves())
        # the leaves are in execution order: body first, then finalizers newest first
        expected_order = ["body"] if body_fails else []
        expected_order += [
            f"f{i}" if outcomes[i] == "fail" else f"d{i}"
            for i in reversed(range(len(outcomes)))
            if outcomes[i] != "ok"
        ]
        assert [
            str(leaf.error) if isinstance(leaf, fx.Fail) else str(leaf.defect)  # type: ignore[union-attr]
            for leaf in leaves
        ] == expected_order


# -- interruption at any point ---------------------------------------------------------


@SYNC
@given(fxst.programs(), st.integers(0, 16))
def test_interrupting_at_any_point_releases_everything_once(
    program: fxst.Scoped, yields: int
) -> None:
    recorder = fxst.Recorder()
    exit = fx.run_sync(interrupted_after(fxst.compile(program, recorder), yields))
    fxst.check_invariants(program, recorder)
    fxst.check_interrupted(program, recorder, exit)


@pytest.mark.parametrize("backend", BACKENDS)
@ASYNC
@given(
    program=fxst.programs(async_steps=True),
    yields=st.integers(0, 8),
    seconds=st.sampled_from([0.0, 0.0001, 0.0005]),
)
def test_interrupting_at_any_point_on_the_event_loop(
    backend: str, program: fxst.Scoped, yields: int, seconds: float
) -> None:
    recorder = fxst.Recorder()
    effect = interrupted_after(fxst.compile(program, recorder), yields, seconds)
    exit = run_on(backend, effect)
    assert isinstance(exit, Success)
    fxst.check_invariants(program, recorder)
    fxst.check_interrupted(program, recorder, exit.value)


@pytest.mark.parametrize("backend", BACKENDS)
@ASYNC
@given(program=fxst.programs(async_steps=True), delay=st.sampled_from([0.0, 0.0002, 0.001]))
def test_cancelling_the_host_task_releases_everything_once(
    backend: str, program: fxst.Scoped, delay: float
) -> None:
    recorder = fxst.Recorder()
    outcome: list[fx.Exit[Any, Any]] = []

    async def main() -> None:
        with anyio.move_on_after(delay):
            outcome.append(await fx.run_exit(fxst.compile(program, recorder)))

    anyio.run(main, backend=backend)
    fxst.check_invariants(program, recorder)
    if outcome:  # it finished before the deadline: exactly as the model says
        fxst.expected(program).check(recorder, outcome[0])
    else:  # cancelled: the main fiber's events are those of some interruption point
        roots = {e.events for e in fxst.interruption_outcomes(program)}
        assert recorder.track("") in roots


# -- on_exit runs exactly once, whatever the outcome ------------------------------------


def test_a_fiber_interrupted_before_it_starts_runs_nothing() -> None:
    # The guarded effect never started, so there is nothing for on_exit to guard.
    seen: list[fx.Exit[Any, Any]] = []
    guarded = fx.void.on_exit(lambda ex: fx.sync(lambda: seen.append(ex)))
    exit = fx.run_sync(interrupted_after(guarded, 0))
    assert seen == []
    assert isinstance(exit, Failure) and exit.cause.is_interrupted_only()


@SYNC
@given(
    fxst.programs(),
    st.sampled_from(["succeed", "fail", "die", "interrupt_self", "interrupted"]),
    st.integers(1, 10),
)
def test_on_exit_runs_exactly_once_with_the_exit(
    program: fxst.Scoped, ending: str, yields: int
) -> None:
    recorder = fxst.Recorder()
    seen: list[fx.Exit[Any, Any]] = []
    body: fx.Effect[Any, Any, Never] = fxst.compile(program, recorder)
    if ending == "fail":
        body = body.and_then(fx.fail("end"))
    elif ending == "die":
        body = body.and_then(fx.die(ValueError("end")))
    elif ending == "interrupt_self":
        body = body.and_then(fx.interrupt())
    guarded = body.on_exit(lambda ex: fx.sync(lambda: seen.append(ex)))
    if ending == "interrupted":
        exit = fx.run_sync(interrupted_after(guarded, yields))
    else:
        exit = fx.run_sync_exit(guarded)
    assert len(seen) == 1
    assert seen[0] == exit
    assert fxst.exit_kind(seen[0]) == fxst.exit_kind(exit)
    fxst.check_invariants(program, recorder)


@pytest.mark.parametrize("backend", BACKENDS)
@ASYNC
@given(
    program=fxst.programs(async_steps=True),
    ending=st.sampled_from(["succeed", "fail", "die", "interrupted"]),
    yields=st.integers(1, 6),
)
def test_on_exit_runs_exactly_once_on_the_event_loop(
    backend: str, program: fxst.Scoped, ending: str, yields: int
) -> None:
    recorder = fxst.Recorder()
    seen: list[fx.Exit[Any, Any]] = []
    body: fx.Effect[Any, Any, Never] = fxst.compile(program, recorder)
    if ending == "fail":
        body = body.and_then(fx.fail("end"))
    elif ending == "die":
        body = body.and_then(fx.die(ValueError("end")))
    guarded = body.on_exit(lambda ex: fx.sync(lambda: seen.append(ex)))
    if ending == "interrupted":
        outer = run_on(backend, interrupted_after(guarded, yields))
        assert isinstance(outer, Success)
        exit = outer.value
    else:
        exit = run_on(backend, guarded)
    assert seen == [exit]
    fxst.check_invariants(program, recorder)


# -- layers: memoization by identity, release in reverse ---------------------------------


class T0(fx.Tag["T0", int]): ...


class T1(fx.Tag["T1", int]): ...


class T2(fx.Tag["T2", int]): ...


class T3(fx.Tag["T3", int]): ...


class T4(fx.Tag["T4", int]): ...


TAGS: list[type[fx.Tag[Any, int]]] = [T0, T1, T2, T3, T4]


@attrs.frozen
class Base:
    index: int
    fails: bool


@attrs.frozen
class Composite:
    kind: Literal["merge", "provide", "provide_merge", "fresh"]
    children: tuple[int, ...]  # indexes of earlier nodes of the graph


GraphNode = Base | Composite


@st.composite
def layer_graphs(draw: st.DrawFn, failures: bool = True) -> list[GraphNode]:
    """A DAG of layers: base scoped layers, then composites that reference earlier
    nodes (so layers, base or composite, are shared by identity). The last node is
    the root."""
    n_base = draw(st.integers(1, len(TAGS)))
    nodes: list[GraphNode] = [
        Base(i, draw(st.booleans()) if failures else False)
        if draw(st.integers(0, 4)) == 0
        else Base(i, False)
        for i in range(n_base)
    ]
    for _ in range(draw(st.integers(0, 7))):
        kind = draw(st.sampled_from(["merge", "merge", "provide", "provide_merge", "fresh"]))
        pick = st.integers(0, len(nodes) - 1)
        if kind == "fresh":
            children: tuple[int, ...] = (draw(pick),)
        elif kind == "merge":
            children = tuple(draw(st.lists(pick, min_size=1, max_size=3)))
        else:
            children = (draw(pick), draw(pick))
        nodes.append(Composite(kind, children))  # type: ignore[arg-type]
    return nodes


def build_layers(graph: list[GraphNode], log: list[Any]) -> list[fx.Layer[Any, str, Never]]:
    layers: list[fx.Layer[Any, str, Never]] = []
    for node in graph:
        if isinstance(node, Base):
            i, fails = node.index, node.fails
            if fails:
                layers.append(fx.Layer.fail(f"L{i} failed"))
                continue
            resource = fx.acquire_release(
                fx.sync(lambda i=i: log.append(("open", i))).as_(i),  # type: ignore[misc]
                lambda i, ex: fx.sync(lambda: log.append(("close", i, fxst.exit_kind(ex)))),
            )
            layers.append(fx.Layer.scoped(TAGS[i], resource))
        elif node.kind == "fresh":
            layers.append(fx.Layer.fresh(layers[node.children[0]]))
        elif node.kind == "merge":
            layers.append(fx.Layer.merge(*(layers[c] for c in node.children)))
        elif node.kind == "provide":
            layers.append(layers[node.children[0]].provide(layers[node.children[1]]))
        else:
            layers.append(layers[node.children[0]].provide_merge(layers[node.children[1]]))
    return layers


def model_build(graph: list[GraphNode]) -> tuple[list[int], str | None]:
    """The bases a build of the root acquires, in order, and the first failure: memo
    by node identity within one memo map, `fresh` builds its layer with a new map."""
    opened: list[int] = []

    def build(index: int, memo: set[int]) -> str | None:
        if index in memo:
            return None
        node = graph[index]
        if isinstance(node, Base):
            if node.fails:
                return f"L{node.index} failed"
            opened.append(node.index)
        elif node.kind == "fresh":
            error = build(node.children[0], set())
            if error is not None:
                return error
        elif node.kind == "merge":
            for child in node.children:
                error = build(child, memo)
                if error is not None:
                    return error
        else:  # provide / provide_merge: the dependency first
            outer, dependency = node.children
            error = build(dependency, memo) or build(outer, memo)
            if error is not None:
                return error
        memo.add(index)
        return None

    error = build(len(graph) - 1, set())
    return opened, error


def check_build(
    graph: list[GraphNode], log: list[Any], exit: fx.Exit[Any, Any], close_kind: str
) -> None:
    opened, error = model_build(graph)
    opens = [entry[1] for entry in log if entry[0] == "open"]
    closes = [entry[1] for entry in log if entry[0] == "close"]
    assert opens == opened  # memoized by identity: built once unless `fresh`
    assert closes == list(reversed(opens))  # released exactly once, in reverse
    if error is None:
        assert isinstance(exit, Success), exit
        kinds = {entry[2] for entry in log if entry[0] == "close"}
        assert kinds <= {close_kind}
    else:
        assert exit == Failure(fx.Fail(error))
        assert all(entry[2] == "failure" for entry in log if entry[0] == "close")


@SYNC
@given(layer_graphs())
def test_layer_builds_are_memoized_and_released_in_reverse(graph: list[GraphNode]) -> None:
    log: list[Any] = []
    root = build_layers(graph, log)[-1]
    ran: list[bool] = []
    exit = fx.run_sync_exit(fx.sync(lambda: ran.append(True)).provide(root))
    check_build(graph, log, exit, "success")
    assert ran == ([True] if isinstance(exit, Success) else [])


@SYNC
@given(layer_graphs(failures=False))
def test_layer_resources_see_the_programs_failure(graph: list[GraphNode]) -> None:
    log: list[Any] = []
    root = build_layers(graph, log)[-1]
    exit = fx.run_sync_exit(fx.fail("program failed").provide(root))
    opened, _ = model_build(graph)
    assert [e[1] for e in log if e[0] == "open"] == opened
    assert [e[1:] for e in log if e[0] == "close"] == [(i, "failure") for i in reversed(opened)]
    assert exit == Failure(fx.Fail("program failed"))


@pytest.mark.parametrize("backend", BACKENDS)
@ASYNC
@given(graph=layer_graphs(failures=False), runs=st.integers(1, 3))
def test_managed_runtime_builds_a_graph_once_and_releases_it_in_reverse(
    backend: str, graph: list[GraphNode], runs: int
) -> None:
    log: list[Any] = []
    root = build_layers(graph, log)[-1]

    async def main() -> None:
        async with fx.ManagedRuntime(root) as rt:
            for _ in range(runs):
                assert await rt.run_exit(fx.void) == Success(None)
            assert not any(entry[0] == "close" for entry in log)

    anyio.run(main, backend=backend)
    check_build(graph, log, Success(None), "success")
