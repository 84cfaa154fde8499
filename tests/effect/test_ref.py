"""Ref: atomic reads and writes (rule 94 of the semantics reference)."""

from __future__ import annotations

import pytest

import effect as fx
from effect.ref import Ref


def test_make_creates_a_fresh_ref_per_run() -> None:
    make = Ref.make(0)
    first = fx.run_sync(make)
    second = fx.run_sync(make)
    assert first is not second
    assert fx.run_sync(first.get()) == 0


def test_get_set_update() -> None:
    @fx.gen
    def prog() -> fx.Gen[list[int], fx.Never, fx.Never]:
        ref = yield from Ref.make(1)
        seen = [(yield from ref.get())]
        yield from ref.set(5)
        seen.append((yield from ref.get()))
        yield from ref.update(lambda n: n * 3)
        seen.append((yield from ref.get()))
        return seen

    assert fx.run_sync(prog) == [1, 5, 15]


def test_modify_returns_first_component_and_stores_second() -> None:
    ref = Ref(10)
    result = fx.run_sync(ref.modify(lambda n: (n + 1, n * 2)))
    assert result == 11
    assert fx.run_sync(ref.get()) == 20


def test_get_and_update_and_update_and_get() -> None:
    ref = Ref(2)
    assert fx.run_sync(ref.get_and_update(lambda n: n + 1)) == 2
    assert fx.run_sync(ref.update_and_get(lambda n: n + 1)) == 4
    assert fx.run_sync(ref.get_and_set(0)) == 4
    assert fx.run_sync(ref.get()) == 0


def test_a_raising_update_is_a_defect_and_changes_nothing() -> None:
    ref = Ref(1)

    def boom(_: int) -> int:
        raise ValueError("bad")

    exit = fx.run_sync_exit(ref.update(boom))
    assert isinstance(exit, fx.Failure)
    assert [type(d) for d in exit.cause.defects()] == [ValueError]
    assert fx.run_sync(ref.get()) == 1


def test_concurrent_updates_never_interleave() -> None:
    ref = Ref(0)

    def bump(_: int) -> fx.Effect[None, fx.Never, fx.Never]:
        return fx.yield_now().and_then(ref.update(lambda n: n + 1))

    fx.run_sync(fx.for_each(range(1000), bump, concurrency="unbounded"))
    assert fx.run_sync(ref.get()) == 1000


@pytest.mark.anyio
async def test_ref_under_an_event_loop() -> None:
    ref = Ref("a")
    assert await fx.run(ref.update_and_get(lambda s: s + "b")) == "ab"
