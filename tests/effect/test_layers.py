"""Layers and the managed runtime (R61-R80 of the Effect-TS reference)."""

from __future__ import annotations

from typing import Any, Never

import anyio
import pytest

import effect as fx
from effect import Die, Fail, Failure, Success


class Config(fx.Tag["Config", dict[str, str]]):
    pass


class Db(fx.Tag["Db", "Conn"]):
    pass


class Cache(fx.Tag["Cache", "Conn"]):
    pass


class Counter(fx.Tag["Counter", list[int]]):
    pass


class Conn:
    """A fake resource: knows its name and whether it is open."""

    instances = 0

    def __init__(self, name: str, log: list[Any]) -> None:
        Conn.instances += 1
        self.name = name
        self.log = log
        self.open = True
        log.append(f"open {name}")

    def close(self, kind: str) -> None:
        assert self.open, f"{self.name} closed twice"
        self.open = False
        self.log.append(f"close {self.name} [{kind}]")


def _kind(ex: fx.Exit[Any, Any]) -> str:
    if isinstance(ex, Success):
        return "success"
    return "interrupted" if ex.cause.is_interrupted_only() else "failure"


def conn_layer(
    tag: type[fx.Tag[Any, Conn]], name: str, log: list[Any]
) -> fx.Layer[Any, Never, Never]:
    """A `Layer.scoped` that opens a `Conn` and closes it, with the exit, on release."""
    resource = fx.acquire_release(
        fx.sync(lambda: Conn(name, log)),
        lambda c, ex: fx.sync(lambda: c.close(_kind(ex))),
    )
    return fx.Layer.scoped(tag, resource)


def _record(log: list[Any], item: Any) -> fx.Effect[None, Never, Never]:
    return fx.sync(lambda: log.append(item))


# -- constructors (R61, R62) -------------------------------------------------------------


def test_a_layer_is_a_recipe_that_builds_nothing() -> None:
    log: list[str] = []
    fx.Layer.sync(Counter, lambda: log.append("1") or [])  # type: ignore[func-returns-value]
    fx.Layer.effect(Counter, _record(log, 2).as_([]))
    conn_layer(Db, "db", log)
    assert log == []


def test_succeed_holds_the_value_as_given() -> None:
    config = {"url": "sqlite://"}
    layer = fx.Layer.succeed(Config, config)
    assert fx.run_sync(fx.service(Config).provide(layer)) is config
    assert fx.run_sync(fx.service(Config).provide(layer)) is config


def test_sync_calls_make_once_per_build() -> None:
    calls: list[int] = []

    def make() -> list[int]:
        calls.append(1)
        return []

    layer = fx.Layer.sync(Counter, make)
    both = fx.Layer.merge(layer, layer)
    prog = fx.service(Counter).zip(fx.service(Counter))
    a, b = fx.run_sync(prog.provide(both))
    assert a is b
    assert len(calls) == 1
    c = fx.run_sync(fx.service(Counter).provide(layer))
    assert c is not a
    assert len(calls) == 2


def test_effect_runs_at_build_time() -> None:
    log: list[str] = []
    layer = fx.Layer.effect(Counter, _record(log, "built").as_([7]))
    prog = _record(log, "program").and_then(fx.service(Counter))
    assert fx.run_sync(prog.provide(layer)) == [7]
    assert log == ["built", "program"]


def test_scoped_resources_live_as_long_as_the_layer() -> None:
    log: list[Any] = []
    layer = conn_layer(Db, "db", log)

    @fx.gen
    def prog() -> fx.Gen[bool, Never, Db]:
        conn = yield from Db
        log.append("program")
        return conn.open

    assert fx.run_sync(prog.provide(layer)) is True
    assert log == ["open db", "program", "close db [success]"]


def test_fail_fails_the_build_and_the_program_never_runs() -> None:
    log: list[str] = []
    prog = _record(log, "program").provide(fx.Layer.fail("no config"))
    assert fx.run_sync_exit(prog) == Failure(Fail("no config"))
    assert log == []


def test_layer_effect_failure_is_the_run_failure() -> None:
    layer = fx.Layer.effect(Counter, fx.fail("cannot build"))
    assert fx.run_sync_exit(fx.service(Counter).provide(layer)) == Failure(Fail("cannot build"))


def test_layer_constructors_validate_their_arguments() -> None:
    with pytest.raises(TypeError):
        fx.Layer.sync(Counter, [])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fx.Layer.effect(Counter, [])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        fx.Layer.succeed(int, 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        fx.Layer.merge()
    with pytest.raises(TypeError):
        fx.Layer.merge(fx.Layer.succeed(Counter, []), "layer")  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        fx.ManagedRuntime("layer")  # type: ignore[arg-type]


# -- merge / provide / provide_merge (R66, R67) --------------------------------------


def test_merge_holds_every_service_and_releases_in_reverse() -> None:
    log: list[Any] = []
    layer = fx.Layer.merge(conn_layer(Db, "db", log), conn_layer(Cache, "cache", log))

    @fx.gen
    def prog() -> fx.Gen[str, Never, Db | Cache]:
        db = yield from Db
        cache = yield from Cache
        return f"{db.name}+{cache.name}"

    assert fx.run_sync(prog.provide(layer)) == "db+cache"
    # This runtime builds merged layers one after another, in the order given (Effect-TS
    # builds them concurrently, R66), so the release order is the exact reverse.
    assert log == ["open db", "open cache", "close cache [success]", "close db [success]"]


def test_provide_builds_the_dependency_first_and_releases_it_last() -> None:
    log: list[Any] = []
    db = conn_layer(Db, "db", log)

    @fx.gen
    def make_cache() -> fx.Gen[Conn, Never, Db | fx.Scope]:
        dep = yield from Db
        assert dep.open
        return (
            yield from fx.acquire_release(
                fx.sync(lambda: Conn(f"cache-over-{dep.name}", log)),
                lambda c, ex: fx.sync(lambda: c.close(_kind(ex))),
            )
        )

    cache = fx.Layer.scoped(Cache, make_cache).provide(db)
    assert fx.run_sync(fx.service(Cache).map(lambda c: c.name).provide(cache)) == "cache-over-db"
    assert log == [
        "open db",
        "open cache-over-db",
        "close cache-over-db [success]",
        "close db [success]",
    ]


def test_provide_keeps_only_the_outer_services() -> None:
    log: list[Any] = []
    cache = fx.Layer.effect(Cache, fx.service(Db)).provide(conn_layer(Db, "db", log))
    ex = fx.run_sync_exit(fx.service(Db).provide(cache))  # type: ignore[arg-type]
    assert isinstance(ex, Failure)
    assert "Service not found: Db" in str(ex.cause.defects()[0])


def test_provide_merge_keeps_both() -> None:
    log: list[Any] = []
    layer = fx.Layer.effect(Cache, fx.service(Db)).provide_merge(conn_layer(Db, "db", log))
    prog = fx.service(Db).zip(fx.service(Cache))
    db, cache = fx.run_sync(prog.provide(layer))
    assert db is cache
    assert log == ["open db", "close db [success]"]


def test_nested_provide_innermost_wins() -> None:
    # R72
    inner = fx.Layer.succeed(Config, {"who": "inner"})
    outer = fx.Layer.succeed(Config, {"who": "outer"})
    prog = fx.service(Config).map(lambda c: c["who"]).provide(inner).provide(outer)
    assert fx.run_sync(prog) == "inner"


# -- memoization by identity, fresh (R63, R64) ---------------------------------------


def test_a_layer_referenced_twice_in_one_build_is_built_once() -> None:
    log: list[Any] = []
    db = conn_layer(Db, "db", log)
    cache = fx.Layer.effect(Cache, fx.service(Db)).provide(db)
    both = fx.Layer.merge(db, cache, db)
    prog = fx.service(Db).zip(fx.service(Cache))
    a, b = fx.run_sync(prog.provide(both))
    assert a is b
    assert log == ["open db", "close db [success]"]


def test_two_equal_but_distinct_layers_are_built_twice() -> None:
    log: list[Any] = []
    first, second = conn_layer(Db, "db", log), conn_layer(Db, "db", log)
    layer = fx.Layer.merge(
        fx.Layer.effect(Cache, fx.service(Db)).provide(first),
        second,
    )
    prog = fx.service(Db).zip(fx.service(Cache))
    db, cache = fx.run_sync(prog.provide(layer))
    assert db is not cache
    assert log == ["open db", "open db", "close db [success]", "close db [success]"]


def test_fresh_builds_again() -> None:
    log: list[Any] = []
    db = conn_layer(Db, "db", log)
    layer = fx.Layer.merge(
        db,
        fx.Layer.effect(Cache, fx.service(Db)).provide(fx.Layer.fresh(db)),
    )
    prog = fx.service(Db).zip(fx.service(Cache))
    a, b = fx.run_sync(prog.provide(layer))
    assert a is not b
    assert log.count("open db") == 2
    assert log.count("close db [success]") == 2


def test_fresh_of_the_same_layer_twice_builds_twice() -> None:
    calls: list[int] = []
    layer = fx.Layer.sync(Counter, lambda: calls.append(1) or [len(calls)])  # type: ignore[func-returns-value]
    both = fx.Layer.merge(fx.Layer.fresh(layer), fx.Layer.fresh(layer))
    fx.run_sync(fx.service(Counter).provide(both))
    assert len(calls) == 2


# -- build failure (R68) -----------------------------------------------------------


def test_a_failing_layer_releases_what_was_acquired_in_reverse_with_a_failure_exit() -> None:
    log: list[Any] = []
    ran: list[str] = []
    layer = fx.Layer.merge(
        conn_layer(Db, "db", log),
        conn_layer(Cache, "cache", log),
        fx.Layer.fail("config missing"),
    )
    prog = _record(ran, "program").provide(layer)
    ex = fx.run_sync_exit(prog)
    assert ex == Failure(Fail("config missing"))
    assert ran == []
    assert log == ["open db", "open cache", "close cache [failure]", "close db [failure]"]


def test_a_failing_dependency_stops_the_layers_that_need_it() -> None:
    log: list[Any] = []
    cache = conn_layer(Cache, "cache", log).provide(fx.Layer.fail("no db"))
    layer = fx.Layer.merge(conn_layer(Db, "db", log), cache)
    ex = fx.run_sync_exit(fx.service(Db).provide(layer))
    assert ex == Failure(Fail("no db"))
    assert log == ["open db", "close db [failure]"]


def test_a_dying_layer_releases_too() -> None:
    log: list[Any] = []
    boom = RuntimeError("boom")
    layer = fx.Layer.merge(conn_layer(Db, "db", log), fx.Layer.effect(Cache, fx.die(boom)))
    ex = fx.run_sync_exit(fx.service(Db).provide(layer))
    assert ex == Failure(Die(boom))
    assert log == ["open db", "close db [failure]"]


# -- per-run provide (R40, R71, R75) ---------------------------------------------------


@pytest.mark.anyio
async def test_a_scoped_layer_provided_per_run_is_built_and_released_per_run() -> None:
    log: list[Any] = []
    Conn.instances = 0
    layer = conn_layer(Db, "db", log)
    program = fx.service(Db).tap(lambda c: _record(log, f"run uses {id(c)}"))
    conns = [await fx.run(program.provide(layer)) for _ in range(3)]
    assert Conn.instances == 3
    assert len({id(c) for c in conns}) == 3
    assert all(not c.open for c in conns)
    assert [entry.split(" ")[0] for entry in log] == ["open", "run", "close"] * 3


def test_two_provides_in_one_program_build_two_instances() -> None:
    log: list[Any] = []
    layer = conn_layer(Db, "db", log)
    get = fx.service(Db).provide(layer)
    a, b = fx.run_sync(get.zip(get))
    assert a is not b
    assert log == ["open db", "close db [success]", "open db", "close db [success]"]


def test_layer_finalizers_see_the_programs_exit() -> None:
    log: list[Any] = []
    layer = conn_layer(Db, "db", log)
    boom = ValueError("program died")
    assert fx.run_sync_exit(fx.fail("bad").provide(layer)) == Failure(Fail("bad"))
    assert fx.run_sync_exit(fx.die(boom).provide(layer)) == Failure(Die(boom))
    assert log == ["open db", "close db [failure]", "open db", "close db [failure]"]


@pytest.mark.anyio
async def test_layer_finalizers_see_an_interruption() -> None:
    log: list[Any] = []
    layer = conn_layer(Db, "db", log)
    with anyio.move_on_after(0.01):
        await fx.run(fx.never.provide(layer))
    assert log == ["open db", "close db [interrupted]"]


@pytest.mark.anyio
async def test_a_plain_fork_in_a_provided_layer_lives_until_the_program_ends() -> None:
    # R75: under provide, the build runs on the program's fiber.
    ticks: list[int] = []

    def ticker() -> fx.Effect[None, Never, Never]:
        return fx.sleep(0.002).and_then(_record(ticks, 1)).and_then(fx.suspend(ticker))

    layer = fx.Layer.effect(Counter, ticker().fork().as_(ticks))
    counted = await fx.run(fx.sleep(0.03).and_then(fx.sync(lambda: len(ticks))).provide(layer))
    assert counted >= 3
    after = len(ticks)
    await anyio.sleep(0.01)
    assert len(ticks) == after


# -- ManagedRuntime (R77-R80) -----------------------------------------------------------


def counted_layer(
    log: list[Any], builds: list[int], delay: float = 0.0
) -> fx.Layer[Db, Never, Never]:
    """A scoped Db layer that counts its builds and takes `delay` to build."""

    @fx.gen
    def build() -> fx.Gen[Conn, Never, fx.Scope]:
        builds.append(1)
        if delay:
            yield from fx.sleep(delay)
        return (
            yield from fx.acquire_release(
                fx.sync(lambda: Conn(f"db{len(builds)}", log)),
                lambda c, ex: fx.sync(lambda: c.close(_kind(ex))),
            )
        )

    return fx.Layer.scoped(Db, build)


@pytest.mark.anyio
async def test_managed_runtime_builds_once_for_many_runs() -> None:
    log: list[Any] = []
    builds: list[int] = []
    async with fx.ManagedRuntime(counted_layer(log, builds)) as rt:
        assert builds == []  # lazy: nothing built before the first use
        conns = [await rt.run(fx.service(Db)) for _ in range(3)]
        assert builds == [1]
        assert conns[0] is conns[1] is conns[2]
        assert conns[0].open  # resources live between runs
    assert not conns[0].open
    assert log == ["open db1", "close db1 [success]"]


@pytest.mark.anyio
async def test_managed_runtime_builds_once_under_concurrent_first_uses() -> None:
    log: list[Any] = []
    builds: list[int] = []
    seen: list[Conn] = []

    async with fx.ManagedRuntime(counted_layer(log, builds, delay=0.02)) as rt:

        async def use() -> None:
            seen.append(await rt.run(fx.service(Db)))

        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(use)
        assert builds == [1]
        assert len(seen) == 5
        assert all(c is seen[0] for c in seen)
    assert log == ["open db1", "close db1 [success]"]


@pytest.mark.anyio
async def test_a_cancelled_first_run_does_not_break_the_shared_build() -> None:
    # R77: concurrent first uses share one build. A caller that gives up (its task is
    # cancelled) while the layer is building must not take the build down with it:
    # the other callers, and every later run, still get the service.
    builds: list[int] = []
    layer = fx.Layer.effect(
        Counter, fx.sync(lambda: builds.append(1)).and_then(fx.sleep(0.03)).as_([7])
    )
    outcomes: list[Any] = []
    async with fx.ManagedRuntime(layer) as rt:

        async def impatient() -> None:
            with anyio.move_on_after(0.005):
                await rt.run(fx.service(Counter))
            outcomes.append("gave up")

        async def patient() -> None:
            await anyio.sleep(0.001)
            outcomes.append(await rt.run_exit(fx.service(Counter)))

        async with anyio.create_task_group() as tg:
            tg.start_soon(impatient)
            tg.start_soon(patient)
        outcomes.append(await rt.run_exit(fx.service(Counter)))
    assert outcomes == ["gave up", Success([7]), Success([7])]
    assert builds == [1]


@pytest.mark.anyio
async def test_dispose_closes_with_success_and_a_second_dispose_does_nothing() -> None:
    exits: list[fx.Exit[Any, Any]] = []
    layer = fx.Layer.scoped(
        Counter,
        fx.add_finalizer(lambda ex: fx.sync(lambda: exits.append(ex))).as_([1]),
    )
    rt = fx.ManagedRuntime(layer)
    async with rt:
        assert await rt.run(fx.fail("a run fails").catch_all(lambda e: fx.service(Counter))) == [1]
        await rt.run_exit(fx.fail("another run fails"))
        await rt.dispose()
        assert exits == [Success(None)]  # R78: runs never close; dispose closes with success
        await rt.dispose()
    assert exits == [Success(None)]


@pytest.mark.anyio
async def test_a_run_after_dispose_fails_with_runtime_disposed_error() -> None:
    async with fx.ManagedRuntime(fx.Layer.succeed(Counter, [])) as rt:
        await rt.run(fx.void)
        await rt.dispose()
        ex = await rt.run_exit(fx.succeed(1))
        assert isinstance(ex, Failure)
        assert isinstance(ex.cause.defects()[0], fx.RuntimeDisposedError)
        with pytest.raises(fx.FiberFailure) as info:
            await rt.run(fx.succeed(1))
        assert isinstance(info.value.cause.defects()[0], fx.RuntimeDisposedError)


@pytest.mark.anyio
async def test_a_runtime_outside_its_async_with_block_cannot_run() -> None:
    rt = fx.ManagedRuntime(fx.Layer.succeed(Counter, []))
    with pytest.raises(fx.RuntimeDisposedError):
        await rt.run(fx.void)


@pytest.mark.anyio
async def test_a_failed_build_is_cached() -> None:
    # R80: every run fails with the layer's error; the build counter stays at 1.
    builds: list[int] = []
    layer = fx.Layer.effect(Counter, fx.sync(lambda: builds.append(1)).and_then(fx.fail("down")))
    async with fx.ManagedRuntime(layer) as rt:
        for _ in range(3):
            assert await rt.run_exit(fx.service(Counter)) == Failure(Fail("down"))
        with pytest.raises(fx.FiberFailure, match="down"):
            await rt.run(fx.service(Counter))
    assert builds == [1]


@pytest.mark.anyio
async def test_a_failed_build_releases_what_it_acquired() -> None:
    log: list[Any] = []
    layer = fx.Layer.merge(conn_layer(Db, "db", log), fx.Layer.fail("broken"))
    async with fx.ManagedRuntime(layer) as rt:
        assert await rt.run_exit(fx.void) == Failure(Fail("broken"))
        assert log == ["open db", "close db [failure]"]
    assert log == ["open db", "close db [failure]"]


@pytest.mark.anyio
async def test_runtime_resources_are_released_in_reverse_at_dispose() -> None:
    log: list[Any] = []
    layer = fx.Layer.merge(conn_layer(Db, "db", log), conn_layer(Cache, "cache", log))
    async with fx.ManagedRuntime(layer) as rt:
        await rt.run(fx.service(Db))
        await rt.run(fx.service(Cache))
        assert log == ["open db", "open cache"]
    assert log == ["open db", "open cache", "close cache [success]", "close db [success]"]


@pytest.mark.anyio
async def test_a_fork_scoped_fiber_in_a_layer_runs_between_runs_until_dispose() -> None:
    ticks: list[int] = []
    ended: list[str] = []

    def ticker() -> fx.Effect[None, Never, Never]:
        return fx.sleep(0.002).and_then(_record(ticks, 1)).and_then(fx.suspend(ticker))

    worker = ticker().on_exit(lambda ex: _record(ended, _kind(ex)))
    layer = fx.Layer.scoped(Counter, worker.fork_scoped().as_(ticks))
    async with fx.ManagedRuntime(layer) as rt:
        await rt.run(fx.service(Counter))
        first = len(ticks)
        await anyio.sleep(0.03)  # no run in progress: the fiber keeps going
        second = await rt.run(fx.sync(lambda: len(ticks)))
        assert second >= first + 3
        assert ended == []
        await rt.dispose()
        assert ended == ["interrupted"]
        stopped = len(ticks)
    await anyio.sleep(0.01)
    assert len(ticks) == stopped


@pytest.mark.anyio
async def test_the_runtime_shares_one_instance_between_concurrent_runs() -> None:
    log: list[Any] = []
    async with fx.ManagedRuntime(
        fx.Layer.merge(conn_layer(Db, "db", log), fx.Layer.sync(Counter, list))
    ) as rt:

        async def bump() -> None:
            await rt.run(fx.service(Counter).map(lambda c: c.append(1)).delay(0.001))

        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(bump)
        assert await rt.run(fx.service(Counter)) == [1] * 10
    assert log == ["open db", "close db [success]"]


@pytest.mark.anyio
async def test_dispose_does_not_interrupt_runs_in_flight() -> None:
    # R79: a run started before dispose keeps running (its services are released).
    log: list[Any] = []
    async with fx.ManagedRuntime(conn_layer(Db, "db", log)) as rt:
        await rt.run(fx.void)

        async def in_flight() -> None:
            await rt.run(fx.sleep(0.02).and_then(_record(log, "in-flight run finished")))

        async with anyio.create_task_group() as tg:
            tg.start_soon(in_flight)
            await anyio.sleep(0.005)
            await rt.dispose()
            log.append("disposed")
    assert log == ["open db", "close db [success]", "disposed", "in-flight run finished"]
