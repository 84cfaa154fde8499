"""Tags, Context and providing services (R25, R72)."""

from __future__ import annotations

from typing import Any, Never

import pytest

import effect as fx
from effect import Failure


class Greeting(fx.Tag["Greeting", str]): ...


class Counter(fx.Tag["Counter", int]): ...


class Missing(fx.Tag["Missing", float]): ...


# -- Tag ----------------------------------------------------------------------------------


def test_tag_cannot_be_instantiated() -> None:
    with pytest.raises(TypeError, match="Greeting"):
        Greeting()


def test_tags_are_distinct_keys() -> None:
    ctx = fx.Context.empty().add(Greeting, "hi").add(Counter, 3)
    assert ctx.get(Greeting) == "hi"
    assert ctx.get(Counter) == 3


def test_same_service_type_under_two_tags_are_different() -> None:
    class A(fx.Tag["A", str]): ...

    class B(fx.Tag["B", str]): ...

    eff = fx.service(A).zip(fx.service(B))
    prog = eff.pipe(fx.provide_service(A, "a"), fx.provide_service(B, "b"))
    assert fx.run_sync(prog) == ("a", "b")


# -- Context ------------------------------------------------------------------------------


def test_context_empty_make_add_get() -> None:
    empty = fx.Context.empty()
    assert empty.tags() == []
    assert Greeting not in empty
    one = fx.Context.make(Greeting, "hello")
    assert one.get(Greeting) == "hello"
    assert Greeting in one
    two = one.add(Counter, 1)
    assert set(two.tags()) == {Greeting, Counter}
    # immutable: adding returns a new context
    assert Counter not in one


def test_context_add_replaces() -> None:
    ctx = fx.Context.make(Greeting, "a").add(Greeting, "b")
    assert ctx.get(Greeting) == "b"


def test_context_merge_other_wins() -> None:
    left = fx.Context.make(Greeting, "left").add(Counter, 1)
    right = fx.Context.make(Greeting, "right")
    merged = left.merge(right)
    assert merged.get(Greeting) == "right"
    assert merged.get(Counter) == 1


def test_context_get_missing_names_the_tag() -> None:
    with pytest.raises(KeyError, match="Missing"):
        fx.Context.empty().get(Missing)
    assert fx.Context.empty().get_option(Missing) is None


def test_context_add_rejects_non_tags() -> None:
    with pytest.raises(TypeError):
        fx.Context.empty().add(str, "x")  # type: ignore[arg-type]


def test_provide_context() -> None:
    ctx = fx.Context.make(Greeting, "hi").add(Counter, 2)
    eff = fx.service(Greeting).zip(fx.service(Counter))
    assert fx.run_sync(eff.provide_context(ctx)) == ("hi", 2)


def test_run_with_context_argument() -> None:
    ctx = fx.Context.make(Greeting, "from run")
    assert fx.run_sync(fx.service(Greeting), context=ctx) == "from run"  # type: ignore[arg-type]


# -- providing ---------------------------------------------------------------------------


def test_service_and_provide_service() -> None:
    eff = fx.service(Greeting).map(str.upper)
    assert fx.run_sync(eff.provide_service(Greeting, "hi")) == "HI"


def test_yield_from_tag_in_gen() -> None:
    @fx.gen
    def prog() -> fx.Gen[str, Never, Greeting | Counter]:
        g = yield from Greeting
        n = yield from Counter
        return g * n

    provided = prog.pipe(fx.provide_service(Greeting, "ab"), fx.provide_service(Counter, 3))
    assert fx.run_sync(provided) == "ababab"


def test_pipe_provide_service_one_at_a_time() -> None:
    eff = fx.service(Greeting).zip(fx.service(Counter))
    step1 = eff.pipe(fx.provide_service(Greeting, "x"))
    step2 = step1.pipe(fx.provide_service(Counter, 9))
    assert fx.run_sync(step2) == ("x", 9)


def test_provide_service_is_the_same_value_not_a_copy() -> None:
    impl: list[int] = []
    eff = fx.service(_ListTag).map(lambda lst: lst.append(1))
    fx.run_sync(eff.provide_service(_ListTag, impl))
    fx.run_sync(eff.provide_service(_ListTag, impl))
    assert impl == [1, 1]


class _ListTag(fx.Tag["_ListTag", list[int]]): ...


def test_missing_service_is_a_defect_naming_the_tag() -> None:
    # R25: "Service not found: <key>"
    ex = fx.run_sync_exit(fx.service(Missing))  # type: ignore[arg-type]
    assert isinstance(ex, Failure)
    assert ex.cause.failures() == []
    [defect] = ex.cause.defects()
    assert "Service not found: Missing" in str(defect)


def test_missing_service_is_not_caught_by_catch_all() -> None:
    eff = fx.service(Missing).catch_all(lambda _: fx.succeed(0.0))
    ex = fx.run_sync_exit(eff)  # type: ignore[arg-type]
    assert isinstance(ex, Failure) and len(ex.cause.defects()) == 1


def test_nested_provide_innermost_wins() -> None:
    # R72
    eff = fx.service(Greeting).provide_service(Greeting, "inner")
    outer: fx.Effect[str, Never, Never] = fx.provide_service(Greeting, "outer")(eff)
    assert fx.run_sync(outer) == "inner"


def test_nested_provide_with_pipe_innermost_wins() -> None:
    eff = fx.service(Greeting).pipe(fx.provide_service(Greeting, "inner"))
    outer = eff.pipe(fx.provide_service(Greeting, "outer"))
    assert fx.run_sync(outer) == "inner"


def test_provide_is_scoped_to_the_inner_effect() -> None:
    inner = fx.service(Greeting).pipe(fx.provide_service(Greeting, "inner"))
    eff = inner.zip(fx.service(Greeting)).zip(inner)
    prog = eff.pipe(fx.provide_service(Greeting, "outer"))
    assert fx.run_sync(prog) == (("inner", "outer"), "inner")


def test_provide_is_restored_after_a_failure() -> None:
    inner = fx.service(Greeting).pipe(fx.provide_service(Greeting, "inner")).flat_map(fx.fail)
    eff = inner.catch_all(lambda _: fx.service(Greeting))
    prog = eff.pipe(fx.provide_service(Greeting, "outer"))
    assert fx.run_sync(prog) == "outer"


def test_provide_with_a_layer() -> None:
    layer = fx.Layer.succeed(Greeting, "from layer")
    assert fx.run_sync(fx.service(Greeting).provide(layer)) == "from layer"


def test_nested_layer_provide_innermost_wins() -> None:
    inner = fx.service(Greeting).provide(fx.Layer.succeed(Greeting, "inner"))
    outer = inner.pipe(fx.provide_service(Greeting, "outer"))
    assert fx.run_sync(outer) == "inner"


def test_provided_effect_runs_lazily_each_time() -> None:
    calls: list[int] = []

    def note(n: int) -> int:
        calls.append(n)
        return n

    eff = fx.service(Counter).map(note)
    provided = eff.provide_service(Counter, 5)
    assert calls == []
    fx.run_sync(provided)
    fx.run_sync(provided)
    assert calls == [5, 5]


def test_forked_fibers_inherit_services() -> None:
    eff = fx.service(Greeting).fork().flat_map(lambda f: f.join())
    assert fx.run_sync(eff.provide_service(Greeting, "inherited")) == "inherited"


def test_service_in_a_finalizer_sees_the_context() -> None:
    seen: list[Any] = []
    eff = fx.void.ensuring(fx.service(Greeting).map(seen.append))
    fx.run_sync(eff.provide_service(Greeting, "fin"))
    assert seen == ["fin"]
