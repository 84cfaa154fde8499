"""A scoped layer holding a real resource: a loopback TCP server (and a temp file).

The same layer, two lifecycles, side by side:

- provided to each run (`program.provide(layer)`): built and torn down per run, so
  three runs start three servers and each one is closed (its port refuses
  connections) as soon as its run ends (R71);
- held by a `ManagedRuntime`: built once, one server for all runs, still accepting
  connections between runs, closed at dispose (R77, R78).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import IO, Any, Never

import anyio
import anyio.abc
import attrs
import pytest
from anyio.streams.stapled import MultiListener

import effect as fx

_serials = itertools.count(1)


@attrs.frozen
class Server:
    port: int
    serial: int


class LoopbackServer(fx.Tag["LoopbackServer", Server]):
    pass


def server_layer(log: list[str]) -> fx.Layer[LoopbackServer, Never, Never]:
    """A TCP server on 127.0.0.1 (port chosen by the OS) that greets each client with
    its serial number. The listener is an `acquire_release` resource; the accept loop
    is a `fork_scoped` fiber, so closing the layer's scope first stops the loop, then
    closes the listener (LIFO)."""

    def open_listener() -> fx.Effect[MultiListener[anyio.abc.SocketStream], Never, Never]:
        return fx.promise(lambda: anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0))

    def close_listener(
        listener: MultiListener[anyio.abc.SocketStream], serial: int, ex: fx.Exit[Any, Any]
    ) -> fx.Effect[None, Never, Never]:
        return fx.promise(listener.aclose).and_then(
            fx.sync(lambda: log.append(f"server {serial} closed ({type(ex).__name__})"))
        )

    @fx.gen
    def make() -> fx.Gen[Server, Never, fx.Scope]:
        serial = next(_serials)
        listener = yield from fx.acquire_release(
            open_listener(), lambda lst, ex: close_listener(lst, serial, ex)
        )
        port = listener.extra(anyio.abc.SocketAttribute.local_port)

        async def greet(stream: anyio.abc.SocketStream) -> None:
            async with stream:
                await stream.send(f"server {serial}\n".encode())

        yield from fx.promise(lambda: listener.serve(greet)).fork_scoped()
        log.append(f"server {serial} listening")
        return Server(port, serial)

    return fx.Layer.scoped(LoopbackServer, make)


async def greeting(port: int) -> str:
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        data = b""
        while not data.endswith(b"\n"):
            data += await stream.receive()
        return data.decode().strip()


async def refuses(port: int) -> bool:
    try:
        stream = await anyio.connect_tcp("127.0.0.1", port)
    except OSError:
        return True
    await stream.aclose()
    return False


@fx.gen
def ask_the_server() -> fx.Gen[tuple[Server, str], Never, LoopbackServer]:
    """The program: look the server up, connect to it, read its greeting."""
    server = yield from LoopbackServer
    text = yield from fx.promise(lambda: greeting(server.port))
    return server, text


@pytest.mark.anyio
async def test_provided_per_run_each_run_builds_and_closes_its_own_server() -> None:
    log: list[str] = []
    layer = server_layer(log)
    servers: list[Server] = []
    for _ in range(3):
        server, text = await fx.run(ask_the_server.provide(layer))
        assert text == f"server {server.serial}"
        # the run is over: its scope closed and took the server with it
        assert log[-1] == f"server {server.serial} closed (Success)"
        assert await refuses(server.port)
        servers.append(server)
    assert len({s.serial for s in servers}) == 3
    assert [line.split(" ", 2)[2] for line in log] == ["listening", "closed (Success)"] * 3


@pytest.mark.anyio
async def test_managed_runtime_keeps_one_server_for_all_runs_until_dispose() -> None:
    log: list[str] = []
    async with fx.ManagedRuntime(server_layer(log)) as rt:
        results = [await rt.run(ask_the_server) for _ in range(3)]
        servers = {server for server, _ in results}
        assert len(servers) == 1
        (server,) = servers
        assert [text for _, text in results] == [f"server {server.serial}"] * 3
        # between runs, outside any run, the server still answers
        assert await greeting(server.port) == f"server {server.serial}"
        assert log == [f"server {server.serial} listening"]
    assert log == [f"server {server.serial} listening", f"server {server.serial} closed (Success)"]
    assert await refuses(server.port)


@pytest.mark.anyio
async def test_a_failing_run_still_closes_its_server() -> None:
    log: list[str] = []
    seen: list[Server] = []
    failing = ask_the_server.flat_map(
        lambda result: fx.sync(lambda: seen.append(result[0])).and_then(fx.fail("after use"))
    )
    ex = await fx.run_exit(failing.provide(server_layer(log)))
    assert ex == fx.Failure(fx.Fail("after use"))
    assert log == [
        f"server {seen[0].serial} listening",
        f"server {seen[0].serial} closed (Failure)",
    ]
    assert await refuses(seen[0].port)


@pytest.mark.anyio
async def test_cancelling_a_run_closes_its_server() -> None:
    log: list[str] = []
    seen: list[Server] = []
    program = fx.service(LoopbackServer).tap(lambda s: fx.sync(lambda: seen.append(s)))
    with anyio.move_on_after(0.05):
        await fx.run(program.and_then(fx.never).provide(server_layer(log)))
    assert len(seen) == 1
    assert log == [
        f"server {seen[0].serial} listening",
        f"server {seen[0].serial} closed (Failure)",
    ]
    assert await refuses(seen[0].port)


# -- the same two lifecycles with a temp file ---------------------------------------------


class Journal(fx.Tag["Journal", IO[str]]):
    pass


def journal_layer(path: Path, opened: list[IO[str]]) -> fx.Layer[Journal, Never, Never]:
    def open_file() -> IO[str]:
        handle = path.open("a", encoding="utf-8")
        opened.append(handle)
        return handle

    resource = fx.acquire_release(
        fx.sync(open_file), lambda handle, ex: fx.sync(lambda: handle.close())
    )
    return fx.Layer.scoped(Journal, resource)


def write(line: str) -> fx.Effect[None, Never, Journal]:
    return fx.service(Journal).map(lambda handle: handle.write(line + "\n")).as_void


@pytest.mark.anyio
async def test_temp_file_per_run_versus_managed_runtime(tmp_path: Path) -> None:
    path = tmp_path / "journal.txt"
    per_run: list[IO[str]] = []
    layer = journal_layer(path, per_run)
    for i in range(3):
        await fx.run(write(f"per-run {i}").provide(layer))
        assert per_run[-1].closed
    assert len(per_run) == 3

    shared: list[IO[str]] = []
    async with fx.ManagedRuntime(journal_layer(path, shared)) as rt:
        for i in range(3):
            await rt.run(write(f"managed {i}"))
            assert not shared[0].closed
    assert len(shared) == 1
    assert shared[0].closed
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == [f"per-run {i}" for i in range(3)] + [f"managed {i}" for i in range(3)]
