"""Layers: recipes that build services, possibly from other services, possibly holding
resources for as long as the layer lives.

A `Layer[ROut, E, RIn]` builds the services `ROut`, may fail with `E`, and needs `RIn`.
Building one takes a `Scope` (its resources are finalizers there) and a memo map: the
same layer object referenced twice in one build is built once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Never, TypeVar, overload

from effect._context import Context, Tag
from effect._effect import Effect, _check_effect, _FailCause, _Provide, _Succeed, _Suspend, _Sync
from effect._exit import Fail
from effect._scope import Scope

__all__ = ["Layer", "MemoMap", "provide_layer"]

ROut = TypeVar("ROut", contravariant=True)
E = TypeVar("E", covariant=True)
RIn = TypeVar("RIn", covariant=True)
A = TypeVar("A")
I = TypeVar("I")
S = TypeVar("S")
O1 = TypeVar("O1")
O2 = TypeVar("O2")
O3 = TypeVar("O3")
O4 = TypeVar("O4")
E1 = TypeVar("E1")
E2 = TypeVar("E2")
E3 = TypeVar("E3")
E4 = TypeVar("E4")
R1 = TypeVar("R1")
R2 = TypeVar("R2")
R3 = TypeVar("R3")
R4 = TypeVar("R4")


class MemoMap:
    """The layers already built in one build (by identity), with their services."""

    __slots__ = ("_built",)

    def __init__(self) -> None:
        self._built: dict[int, tuple[Layer[Any, Any, Any], Context[Any]]] = {}

    def build(self, layer: Layer[Any, Any, Any], scope: Scope) -> Effect[Context[Any], Any, Any]:
        """Build `layer` into `scope`, or reuse this map's earlier build of it."""

        def go() -> Effect[Context[Any], Any, Any]:
            hit = self._built.get(id(layer))
            if hit is not None:
                return _Succeed(hit[1])
            return layer._build(self, scope).map(lambda ctx: self._remember(layer, ctx))

        return _Suspend(go)

    def _remember(self, layer: Layer[Any, Any, Any], ctx: Context[Any]) -> Context[Any]:
        # The layer is kept with its services so its id cannot be reused by another
        # object while this map lives.
        self._built[id(layer)] = (layer, ctx)
        return ctx


class Layer(Generic[ROut, E, RIn]):
    """A recipe for services. Build nothing until provided.

    Examples:
        >>> import effect as fx
        >>> class Greeting(fx.Tag["Greeting", str]): ...
        >>> layer = fx.Layer.succeed(Greeting, "hello")
        >>> fx.run_sync(fx.service(Greeting).provide(layer))
        'hello'
    """

    __slots__ = ()

    def _build(self, memo: MemoMap, scope: Scope) -> Effect[Context[Any], Any, Any]:
        raise NotImplementedError  # pragma: no cover - every subclass overrides it

    def build(self, scope: Scope) -> Effect[Context[ROut], E, RIn]:
        """Build the services into `scope` (its resources are released when `scope`
        closes), with a fresh memo map."""
        return MemoMap().build(self, scope)

    # -- constructors --------------------------------------------------------------

    @staticmethod
    def succeed(tag: type[Tag[I, S]], service: S) -> Layer[I, Never, Never]:
        """A layer holding `service` as it is; building runs nothing."""
        return _Make(tag, lambda: _Succeed(service))

    @staticmethod
    def sync(tag: type[Tag[I, S]], make: Callable[[], S]) -> Layer[I, Never, Never]:
        """A layer that calls `make()` once per build."""
        if not callable(make):
            raise TypeError(f"Layer.sync expected a callable, got {make!r}")
        return _Make(tag, lambda: _Sync(make))

    @staticmethod
    def effect(tag: type[Tag[I, S]], effect: Effect[S, E2, R2]) -> Layer[I, E2, R2]:
        """A layer that runs `effect` at build time for its service."""
        _check_effect(effect, "Layer.effect")
        return _Make(tag, lambda: effect)

    @overload
    @staticmethod
    def scoped(tag: type[Tag[I, S]], effect: Effect[S, E2, Scope]) -> Layer[I, E2, Never]: ...
    @overload
    @staticmethod
    def scoped(tag: type[Tag[I, S]], effect: Effect[S, E2, Scope | R2]) -> Layer[I, E2, R2]: ...
    @staticmethod
    def scoped(tag: type[Tag[I, S]], effect: Effect[S, E2, Any]) -> Layer[I, E2, Any]:
        """A layer whose `effect` runs with the layer's `Scope`: what it acquires (with
        `acquire_release`, `fork_scoped`, `add_finalizer`) lives as long as the layer
        and is released, in reverse order, when the layer's scope closes."""
        _check_effect(effect, "Layer.scoped")
        return _Scoped(tag, effect)

    @staticmethod
    def fail(error: E2) -> Layer[object, E2, Never]:
        """A layer whose build fails with `error`."""
        return _Fail(error)

    # Pyright cannot solve `E1 | E2` when both are Never (it reports Unknown), so the
    # common case of layers that neither fail nor need anything has its own overloads.
    @overload
    @staticmethod
    def merge(
        a: Layer[O1, Never, Never], b: Layer[O2, Never, Never], /
    ) -> Layer[O1 | O2, Never, Never]: ...
    @overload
    @staticmethod
    def merge(
        a: Layer[O1, Never, Never], b: Layer[O2, Never, Never], c: Layer[O3, Never, Never], /
    ) -> Layer[O1 | O2 | O3, Never, Never]: ...
    @overload
    @staticmethod
    def merge(
        a: Layer[O1, E1, R1], b: Layer[O2, E2, R2], /
    ) -> Layer[O1 | O2, E1 | E2, R1 | R2]: ...
    @overload
    @staticmethod
    def merge(
        a: Layer[O1, E1, R1], b: Layer[O2, E2, R2], c: Layer[O3, E3, R3], /
    ) -> Layer[O1 | O2 | O3, E1 | E2 | E3, R1 | R2 | R3]: ...
    @overload
    @staticmethod
    def merge(
        a: Layer[O1, E1, R1], b: Layer[O2, E2, R2], c: Layer[O3, E3, R3], d: Layer[O4, E4, R4], /
    ) -> Layer[O1 | O2 | O3 | O4, E1 | E2 | E3 | E4, R1 | R2 | R3 | R4]: ...
    @overload
    @staticmethod
    def merge(*layers: Layer[O1, E1, R1]) -> Layer[O1, E1, R1]: ...
    @staticmethod
    def merge(*layers: Layer[Any, Any, Any]) -> Layer[Any, Any, Any]:
        """A layer with the services of all `layers`, built one after another in the
        order given (so resources are released in the reverse order)."""
        if not layers:
            raise ValueError("Layer.merge needs at least one layer")
        for layer in layers:
            _check_layer(layer, "Layer.merge")
        return _Merge(layers)

    @staticmethod
    def fresh(layer: Layer[O1, E1, R1]) -> Layer[O1, E1, R1]:
        """The same recipe, but never shared: each reference builds it again."""
        _check_layer(layer, "Layer.fresh")
        return _Fresh(layer)

    # -- composition -----------------------------------------------------------------

    def provide(self, dependency: Layer[RIn, E2, R2]) -> Layer[ROut, E | E2, R2]:
        """Build `dependency` first and feed its services to this layer. The result
        holds only this layer's services; on release, this layer's resources go
        before the dependency's."""
        _check_layer(dependency, "Layer.provide")
        return _ProvideTo(self, dependency, keep_dependency=False)

    def provide_merge(self, dependency: Layer[RIn, E2, R2]) -> Layer[ROut | RIn, E | E2, R2]:
        """Like `provide`, but the result holds the dependency's services too."""
        _check_layer(dependency, "Layer.provide_merge")
        return _ProvideTo(self, dependency, keep_dependency=True)


def _check_layer(value: object, where: str) -> None:
    if not isinstance(value, Layer):
        raise TypeError(f"{where} expected a Layer, got {value!r}")


class _Make(Layer[Any, Any, Any]):
    __slots__ = ("make", "tag")

    def __init__(self, tag: type[Tag[Any, Any]], make: Callable[[], Effect[Any, Any, Any]]) -> None:
        if not (isinstance(tag, type) and issubclass(tag, Tag)):
            raise TypeError(f"expected a Tag subclass, got {tag!r}")
        self.tag = tag
        self.make = make

    def _build(self, memo: MemoMap, scope: Scope) -> Effect[Context[Any], Any, Any]:
        tag = self.tag
        return _Suspend(self.make).map(lambda service: Context.make(tag, service))

    def __repr__(self) -> str:
        return f"<Layer {self.tag.__name__}>"


class _Scoped(_Make):
    __slots__ = ()

    def __init__(self, tag: type[Tag[Any, Any]], effect: Effect[Any, Any, Any]) -> None:
        super().__init__(tag, lambda: effect)

    def _build(self, memo: MemoMap, scope: Scope) -> Effect[Context[Any], Any, Any]:
        tag = self.tag
        return scope.extend(_Suspend(self.make)).map(lambda service: Context.make(tag, service))


class _Fail(Layer[Any, Any, Any]):
    __slots__ = ("error",)

    def __init__(self, error: object) -> None:
        self.error = error

    def _build(self, memo: MemoMap, scope: Scope) -> Effect[Context[Any], Any, Any]:
        return _FailCause(Fail(self.error))


class _Merge(Layer[Any, Any, Any]):
    __slots__ = ("layers",)

    def __init__(self, layers: tuple[Layer[Any, Any, Any], ...]) -> None:
        self.layers = layers

    def _build(self, memo: MemoMap, scope: Scope) -> Effect[Context[Any], Any, Any]:
        result: Effect[Context[Any], Any, Any] = _Succeed(Context.empty())
        for layer in self.layers:
            result = result.flat_map(
                lambda acc, layer=layer: memo.build(layer, scope).map(acc.merge)  # type: ignore[misc]
            )
        return result


class _Fresh(Layer[Any, Any, Any]):
    __slots__ = ("layer",)

    def __init__(self, layer: Layer[Any, Any, Any]) -> None:
        self.layer = layer

    def _build(self, memo: MemoMap, scope: Scope) -> Effect[Context[Any], Any, Any]:
        return MemoMap().build(self.layer, scope)


class _ProvideTo(Layer[Any, Any, Any]):
    __slots__ = ("dependency", "keep_dependency", "layer")

    def __init__(
        self,
        layer: Layer[Any, Any, Any],
        dependency: Layer[Any, Any, Any],
        *,
        keep_dependency: bool,
    ) -> None:
        self.layer = layer
        self.dependency = dependency
        self.keep_dependency = keep_dependency

    def _build(self, memo: MemoMap, scope: Scope) -> Effect[Context[Any], Any, Any]:
        def with_dependency(dep: Context[Any]) -> Effect[Context[Any], Any, Any]:
            built: Effect[Context[Any], Any, Any] = _Provide(
                memo.build(self.layer, scope), lambda ctx: ctx.merge(dep)
            )
            return built.map(dep.merge) if self.keep_dependency else built

        return memo.build(self.dependency, scope).flat_map(with_dependency)


def provide_layer(effect: Effect[A, E1, Any], layer: Layer[Any, E2, R2]) -> Effect[A, E1 | E2, R2]:
    """Build `layer` in a fresh scope for this run of `effect`, provide its services,
    and close the scope with `effect`'s exit."""
    _check_layer(layer, "provide")

    def run() -> Effect[A, E1 | E2, R2]:
        scope = Scope()
        built: Effect[Context[Any], E2, R2] = MemoMap().build(layer, scope)
        return built.flat_map(lambda ctx: _Provide(effect, lambda outer: outer.merge(ctx))).on_exit(
            scope.close
        )

    return _Suspend(run)
