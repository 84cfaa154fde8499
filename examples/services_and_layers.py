"""Services and layers: a `Tag`, a `Layer.scoped` resource, and a `ManagedRuntime`.

`Store` is a service backed by a resource that must be opened and closed. The layer
opens it with `acquire_release`, so it is closed when the layer's scope closes.
Providing the layer to a single run opens and closes it around that run; a
`ManagedRuntime` opens it once and keeps it for every run until the runtime exits.

Run it with `python examples/services_and_layers.py`.
"""

from __future__ import annotations

from typing import Any, Never

import anyio

import effect as fx


class Connection:
    """A pretend connection to a key-value database."""

    opened = 0

    def __init__(self) -> None:
        Connection.opened += 1
        self.number = Connection.opened
        self.data: dict[str, int] = {}
        self.closed = False
        print(f"open connection #{self.number}")

    def close(self) -> None:
        self.closed = True
        print(f"close connection #{self.number}")


class StoreService:
    """What the `Store` service offers: effects, so callers compose them."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def increment(self, key: str) -> fx.Effect[int, Never, Never]:
        def bump() -> int:
            data = self._connection.data
            data[key] = data.get(key, 0) + 1
            return data[key]

        return fx.sync(bump)


class Store(fx.Tag["Store", StoreService]):
    """The tag: the key of the service, and the requirement type of effects using it."""


class Greeting(fx.Tag["Greeting", str]):
    """A plain value as a service."""


def close_connection(
    connection: Connection, exit: fx.Exit[Any, Any]
) -> fx.Effect[None, Never, Never]:
    return fx.sync(connection.close)


store_layer: fx.Layer[Store, Never, Never] = fx.Layer.scoped(
    Store,
    fx.acquire_release(fx.sync(Connection), close_connection).map(StoreService),
)
greeting_layer: fx.Layer[Greeting, Never, Never] = fx.Layer.succeed(Greeting, "hello")
app_layer: fx.Layer[Store | Greeting, Never, Never] = fx.Layer.merge(store_layer, greeting_layer)


@fx.fn
def visit(name: str) -> fx.Gen[str, Never, Store | Greeting]:
    store = yield from Store
    greeting = yield from Greeting
    visits = yield from store.increment(name)
    return f"{greeting} {name}, visit #{visits}"


async def main_async() -> None:
    print("-- provide: the layer is built for each run")
    for _ in range(2):
        print(await fx.run(visit("ada").provide(app_layer)))

    print("-- ManagedRuntime: built once, released when the block ends")
    async with fx.ManagedRuntime(app_layer) as runtime:
        for name in ("ada", "ada", "grace"):
            print(await runtime.run(visit(name)))
    print(f"connections opened: {Connection.opened}")


def main() -> None:
    anyio.run(main_async)


if __name__ == "__main__":
    main()
