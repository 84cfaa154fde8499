"""Tags and Context: how an effect names the services it needs.

A service is declared as a `Tag` subclass that names itself and the service's type:

    class Tracker(fx.Tag["Tracker", TrackerService]): ...

The class `Tracker` is then both the key under which the service is stored and the
requirement type: an effect that needs it has `Tracker` in its `R` parameter, and
`svc = yield from Tracker` inside `fx.gen` gives the `TrackerService`.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import TYPE_CHECKING, Any, Generic, Never, TypeVar

if TYPE_CHECKING:
    from effect._effect import Effect

__all__ = ["Context", "Tag"]

I = TypeVar("I")
S = TypeVar("S")
I2 = TypeVar("I2")
S2 = TypeVar("S2")
R = TypeVar("R", contravariant=True)


class _TagMeta(type):
    # The metaclass makes the Tag *class* iterable, so `yield from Tracker` works in
    # `fx.gen`, and typed: `cls: type[Tag[I, S]]` lets the checker read I and S off the
    # subclass's base.
    def __iter__(cls: type[Tag[I, S]]) -> Generator[Effect[S, Never, I], Any, S]:  # type: ignore[misc]
        found: S = yield _effect.service(cls)
        return found

    def __repr__(cls) -> str:
        return f"<Tag {cls.__name__}>"


class Tag(Generic[I, S], metaclass=_TagMeta):
    """The key of a service, and the requirement type of the effects that need it.

    Subclass it with the subclass's own name and the service type:

        >>> import effect as fx
        >>> class Greeter(fx.Tag["Greeter", str]): ...
        >>> @fx.gen
        ... def hello() -> fx.Gen[str, fx.Never, Greeter]:
        ...     greeting = yield from Greeter
        ...     return greeting + ", world"
        >>> fx.run_sync(hello.provide_service(Greeter, "hello"))
        'hello, world'

    A tag is never instantiated; the class itself is the key.
    """

    def __init__(self) -> None:
        raise TypeError(f"{type(self).__name__} is a Tag: use the class itself, do not call it")


class Context(Generic[R]):
    """An immutable map from tags to services; `Context[Tracker | Storage]` holds both.

    Examples:
        >>> ctx = Context.empty().add(Greeter, "hi")  # doctest: +SKIP
    """

    __slots__ = ("_services",)

    def __init__(self, services: Mapping[type[Any], object]) -> None:
        self._services: Mapping[type[Any], object] = services

    @staticmethod
    def empty() -> Context[Never]:
        """A context holding no service."""
        return Context({})

    @staticmethod
    def make(tag: type[Tag[I, S]], service: S) -> Context[I]:
        """A context holding one service."""
        return Context({tag: service})

    def add(self, tag: type[Tag[I2, S2]], service: S2) -> Context[R | I2]:
        """A new context with `service` under `tag` added (or replaced)."""
        _check_tag(tag)
        services = dict(self._services)
        services[tag] = service
        return Context(services)

    def merge(self, other: Context[I2]) -> Context[R | I2]:
        """A new context with the services of both; `other` wins on a shared tag."""
        if not other._services:
            return self  # type: ignore[return-value]  # nothing added: same services
        services = dict(self._services)
        services.update(other._services)
        return Context(services)

    def get(self, tag: type[Tag[I, S]]) -> S:
        """The service under `tag`; `KeyError` naming the tag if it is missing."""
        try:
            return self._services[tag]  # type: ignore[return-value]
        except KeyError:
            raise KeyError(f"Service not found: {tag.__name__}") from None

    def get_option(self, tag: type[Tag[Any, S]]) -> S | None:
        """The service under `tag`, or None."""
        return self._services.get(tag)  # type: ignore[return-value]

    def __contains__(self, tag: object) -> bool:
        return tag in self._services

    def tags(self) -> list[type[Any]]:
        """The tags this context holds."""
        return list(self._services)

    def __repr__(self) -> str:
        names = ", ".join(t.__name__ for t in self._services)
        return f"Context({names})"


def _check_tag(tag: object) -> None:
    if not (isinstance(tag, type) and issubclass(tag, Tag)):
        raise TypeError(f"expected a Tag subclass, got {tag!r}")


# Last: `effect._effect` imports this module first.
from effect import _effect  # noqa: E402
