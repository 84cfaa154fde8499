"""Algebraic laws of effects, checked on random programs through `fx.run_sync_exit`.

Two effects are "equivalent" when running them gives equal `Exit`s. Random effects
are built from a small syntax tree (so a failing example prints readably) that
mixes successes, typed failures, defects and sequencing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Never

from hypothesis import given
from hypothesis import strategies as st
from returns.result import Failure as RFailure
from returns.result import Success as RSuccess

import effect as fx
from effect import Fail, Failure, Success

# Defects come from a fixed pool: `Die` equality compares defects by value, and
# distinct exception objects are never equal.
DEFECTS: list[BaseException] = [ValueError("pool-0"), RuntimeError("pool-1")]

Eff = fx.Effect[Any, Any, Never]


def run(eff: Eff) -> fx.Exit[Any, Any]:
    return fx.run_sync_exit(eff)


# -- named pure functions --------------------------------------------------------------


@dataclass(frozen=True)
class Fn:
    name: str
    f: Callable[[int], int]

    def __call__(self, x: int) -> int:
        return self.f(x)

    def __repr__(self) -> str:
        return self.name


def _raise_pool(x: int) -> int:
    raise DEFECTS[x % 2]


PURE_FNS = [
    Fn("inc", lambda x: x + 1),
    Fn("double", lambda x: x * 2),
    Fn("neg", lambda x: -x),
    Fn("const7", lambda x: 7),
    Fn("square", lambda x: x * x),
    Fn("mod3", lambda x: x % 3),
]
# Functions that may throw: a throw inside map/flat_map is a defect (R15).
MAYBE_THROWING_FNS = [*PURE_FNS, Fn("raise_pool", _raise_pool)]

pure_fns = st.sampled_from(PURE_FNS)
any_fns = st.sampled_from(MAYBE_THROWING_FNS)


# -- named effectful functions (Kleisli arrows) -----------------------------------------


@dataclass(frozen=True)
class KFn:
    name: str
    f: Callable[[int], Eff]

    def __call__(self, x: int) -> Eff:
        return self.f(x)

    def __repr__(self) -> str:
        return self.name


def _k(name: str, f: Callable[[int], Eff]) -> KFn:
    return KFn(name, f)


K_FNS = [
    _k("succeed_inc", lambda x: fx.succeed(x + 1)),
    _k("succeed_double", lambda x: fx.succeed(x * 2)),
    _k("fail_self", lambda x: fx.fail(x)),
    _k("fail_if_even", lambda x: fx.fail(x) if x % 2 == 0 else fx.succeed(x + 3)),
    _k("die_if_odd", lambda x: fx.die(DEFECTS[0]) if x % 2 else fx.succeed(x - 1)),
    _k("sync_square", lambda x: fx.sync(lambda: x * x)),
    _k("suspend_neg", lambda x: fx.suspend(lambda: fx.succeed(-x))),
    _k("gen_add10", lambda x: fx.gen(lambda: _add10(x))),
    _k("nested", lambda x: fx.succeed(x).flat_map(_fail_if_big)),
]


def _fail_if_big(y: int) -> Eff:
    return fx.fail(y) if y > 5 else fx.succeed(y)


def _add10(x: int) -> fx.Gen[int, Never, Never]:
    y = yield from fx.succeed(10)
    return x + y


k_fns = st.sampled_from(K_FNS)


# -- random effects -----------------------------------------------------------------------


class Node:
    def build(self) -> Eff:
        raise NotImplementedError


@dataclass(frozen=True)
class Pure(Node):
    value: int

    def build(self) -> Eff:
        return fx.succeed(self.value)


@dataclass(frozen=True)
class Failing(Node):
    error: int

    def build(self) -> Eff:
        return fx.fail(self.error)


@dataclass(frozen=True)
class Dying(Node):
    index: int

    def build(self) -> Eff:
        return fx.die(DEFECTS[self.index])


@dataclass(frozen=True)
class SyncOf(Node):
    value: int
    f: Fn

    def build(self) -> Eff:
        return fx.sync(lambda: self.f(self.value))


@dataclass(frozen=True)
class MapN(Node):
    inner: Node
    f: Fn

    def build(self) -> Eff:
        return self.inner.build().map(self.f)


@dataclass(frozen=True)
class FlatMapN(Node):
    inner: Node
    k: KFn

    def build(self) -> Eff:
        return self.inner.build().flat_map(self.k)


@dataclass(frozen=True)
class CatchAllN(Node):
    inner: Node
    k: KFn

    def build(self) -> Eff:
        return self.inner.build().catch_all(self.k)


@dataclass(frozen=True)
class MapErrorN(Node):
    inner: Node
    f: Fn

    def build(self) -> Eff:
        return self.inner.build().map_error(self.f)


small_ints = st.integers(min_value=-10, max_value=10)

base_nodes: st.SearchStrategy[Node] = st.one_of(
    st.builds(Pure, small_ints),
    st.builds(Failing, small_ints),
    st.builds(Dying, st.integers(min_value=0, max_value=1)),
    st.builds(SyncOf, small_ints, any_fns),
)


def _extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    return st.one_of(
        st.builds(MapN, children, any_fns),
        st.builds(FlatMapN, children, k_fns),
        st.builds(CatchAllN, children, k_fns),
        st.builds(MapErrorN, children, pure_fns),
    )


nodes: st.SearchStrategy[Node] = st.recursive(base_nodes, _extend, max_leaves=8)


# -- monad laws -------------------------------------------------------------------------


@given(small_ints, k_fns)
def test_left_identity(a: int, k: KFn) -> None:
    assert run(fx.succeed(a).flat_map(k)) == run(k(a))


@given(nodes)
def test_right_identity(m: Node) -> None:
    assert run(m.build().flat_map(fx.succeed)) == run(m.build())


@given(nodes, k_fns, k_fns)
def test_associativity(m: Node, f: KFn, g: KFn) -> None:
    left = m.build().flat_map(f).flat_map(g)
    right = m.build().flat_map(lambda x: f(x).flat_map(g))
    assert run(left) == run(right)


# -- functor laws -------------------------------------------------------------------------


@given(nodes)
def test_map_identity(m: Node) -> None:
    assert run(m.build().map(lambda x: x)) == run(m.build())


@given(nodes, any_fns, any_fns)
def test_map_fusion(m: Node, f: Fn, g: Fn) -> None:
    assert run(m.build().map(f).map(g)) == run(m.build().map(lambda x: g(f(x))))


@given(nodes, any_fns)
def test_map_is_flat_map_with_succeed(m: Node, f: Fn) -> None:
    assert run(m.build().map(f)) == run(m.build().flat_map(lambda x: fx.succeed(f(x))))


@given(nodes, small_ints)
def test_as_is_map_to_a_constant(m: Node, b: int) -> None:
    assert run(m.build().as_(b)) == run(m.build().map(lambda _: b))


# -- error-channel laws ----------------------------------------------------------------


@given(nodes)
def test_map_error_identity(m: Node) -> None:
    assert run(m.build().map_error(lambda e: e)) == run(m.build())


@given(nodes, pure_fns, pure_fns)
def test_map_error_fusion(m: Node, f: Fn, g: Fn) -> None:
    assert run(m.build().map_error(f).map_error(g)) == run(m.build().map_error(lambda e: g(f(e))))


@given(small_ints, pure_fns)
def test_map_error_of_fail(e: int, f: Fn) -> None:
    assert run(fx.fail(e).map_error(f)) == Failure(Fail(f(e)))


@given(small_ints, pure_fns)
def test_map_error_of_succeed_is_identity(a: int, f: Fn) -> None:
    assert run(fx.succeed(a).map_error(f)) == Success(a)


@given(nodes, pure_fns)
def test_map_error_is_catch_all_with_fail(m: Node, f: Fn) -> None:
    assert run(m.build().map_error(f)) == run(m.build().catch_all(lambda e: fx.fail(f(e))))


@given(small_ints, k_fns)
def test_catch_all_of_fail(e: int, k: KFn) -> None:
    assert run(fx.fail(e).catch_all(k)) == run(k(e))


@given(small_ints, k_fns)
def test_catch_all_of_succeed(a: int, k: KFn) -> None:
    assert run(fx.succeed(a).catch_all(k)) == Success(a)


@given(st.integers(min_value=0, max_value=1), k_fns)
def test_catch_all_does_not_see_defects(i: int, k: KFn) -> None:
    assert run(fx.die(DEFECTS[i]).catch_all(k)) == run(fx.die(DEFECTS[i]))


@given(nodes)
def test_catch_all_with_fail_is_identity(m: Node) -> None:
    assert run(m.build().catch_all(fx.fail)) == run(m.build())


@given(nodes, k_fns, k_fns)
def test_catch_all_associativity(m: Node, h1: KFn, h2: KFn) -> None:
    left = m.build().catch_all(h1).catch_all(h2)
    right = m.build().catch_all(lambda e: h1(e).catch_all(h2))
    assert run(left) == run(right)


@given(nodes, k_fns)
def test_catch_all_after_map_error(m: Node, k: KFn) -> None:
    # Catching a mapped error is catching the original one through the mapping.
    f = PURE_FNS[0]
    assert run(m.build().map_error(f).catch_all(k)) == run(m.build().catch_all(lambda e: k(f(e))))


# -- either / exit / match -----------------------------------------------------------------


@given(nodes)
def test_either_reflects_the_exit(m: Node) -> None:
    ex = run(m.build())
    got = run(m.build().either())
    match ex:
        case Success(value):
            assert got == Success(RSuccess(value))
        case Failure(cause) if cause.failures() and not cause.is_die():
            assert got == Success(RFailure(cause.failures()[0]))
        case Failure(cause):
            assert got == Failure(cause)


@given(nodes)
def test_exit_reifies_the_exit(m: Node) -> None:
    assert run(m.build().exit()) == Success(run(m.build()))


@given(nodes)
def test_from_exit_of_exit_is_identity(m: Node) -> None:
    assert run(m.build().exit().flat_map(fx.from_exit)) == run(m.build())


@given(nodes, pure_fns, pure_fns)
def test_match_is_map_then_catch(m: Node, f: Fn, g: Fn) -> None:
    via_match = m.build().match(on_failure=f, on_success=g)
    via_combinators = m.build().map(g).catch_all(lambda e: fx.succeed(f(e)))
    assert run(via_match) == run(via_combinators)


@given(nodes, nodes)
def test_zip_is_flat_map_then_map(m1: Node, m2: Node) -> None:
    zipped = m1.build().zip(m2.build())
    manual = m1.build().flat_map(lambda a: m2.build().map(lambda b: (a, b)))
    assert run(zipped) == run(manual)


@given(nodes, k_fns)
def test_tap_keeps_the_value(m: Node, k: KFn) -> None:
    tapped = m.build().tap(k)
    manual = m.build().flat_map(lambda a: k(a).map(lambda _: a))
    assert run(tapped) == run(manual)


@given(nodes)
def test_gen_of_one_yield_is_the_effect(m: Node) -> None:
    def body() -> fx.Gen[Any, Any, Never]:
        x = yield from m.build()
        return x

    assert run(fx.gen(body)) == run(m.build())


@given(nodes, k_fns)
def test_gen_sequencing_is_flat_map(m: Node, k: KFn) -> None:
    def body() -> fx.Gen[Any, Any, Never]:
        x = yield from m.build()
        y = yield from k(x)
        return y

    assert run(fx.gen(body)) == run(m.build().flat_map(k))


@given(nodes)
def test_running_twice_gives_the_same_exit(m: Node) -> None:
    eff = m.build()
    assert run(eff) == run(eff)
