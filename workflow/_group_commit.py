"""Group commit: the writes of many runs made durable by one storage transaction.

With one commit (one fsync) per write, a hundred runs each taking a step cost a
hundred fsyncs. Here a run's fiber hands its write to `GroupCommit.write` and
waits; the writer fiber takes every write handed in since it last ran and applies
them with one `Storage.apply_each` call. Runs that become ready together (the
previous group woke them all) hand in their next writes before the writer runs
again, so groups form by themselves, with no timer and no added latency for a
lone run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Never

import effect as fx
from effect.deferred import Deferred
from workflow._signal import Signal
from workflow.storage import Op, Storage, StorageError

__all__ = ["GroupCommit"]


class GroupCommit:
    """The write queue of one engine, and the fiber that drains it (`run`).
    `on_round` is called at the start of every round, before the group is applied
    (the engine stores there the staged writes no run took along)."""

    def __init__(self, storage: Storage, on_round: Callable[[], None] = lambda: None) -> None:
        self._storage = storage
        self._on_round = on_round
        self._pending: list[tuple[Sequence[Op], Deferred[None, Exception]]] = []
        self._wake = Signal()
        self._stopped = False

    def write(self, ops: Sequence[Op]) -> fx.Effect[None, Exception, Never]:
        """Apply `ops` atomically in the next group; fails with the error that
        rolled them back. Uninterruptible: once handed in, the write happens, and
        the caller must learn whether it did (its next write depends on it)."""

        def hand_in() -> fx.Effect[None, Exception, Never]:
            if self._stopped:
                # Nobody would ever apply it: fail now rather than wait forever.
                return fx.fail(_stopped_error())
            done: Deferred[None, Exception] = Deferred()
            self._pending.append((ops, done))
            self._wake.notify()
            return done.await_()

        return fx.suspend(hand_in).uninterruptible()

    def wake(self) -> None:
        """Make the writer run a round soon even if no write is handed in (for
        `on_round`, called at the start of every round)."""
        self._wake.notify()

    def run(self) -> fx.Effect[None, Never, Never]:
        """The writer: forever, apply the pending writes as one group. If it stops
        (the engine closing), writes still pending, and any handed in later, fail
        with `StorageError`."""

        @fx.gen
        def loop() -> fx.Gen[None, Never, Never]:
            while True:
                yield from self._wake.wait()
                yield from self._apply_group().uninterruptible()

        return loop.ensuring(fx.suspend(self._fail_pending))

    def _apply_group(self) -> fx.Effect[None, Never, Never]:
        @fx.gen
        def apply() -> fx.Gen[None, Never, Never]:
            self._on_round()
            group, self._pending = self._pending, []
            if not group:
                return
            try:
                outcomes = self._storage.apply_each([ops for ops, _ in group])
            except Exception as error:
                outcomes = [error] * len(group)
            for (_, done), outcome in zip(group, outcomes, strict=True):
                yield from (done.succeed(None) if outcome is None else done.fail(outcome))

        return apply

    def _fail_pending(self) -> fx.Effect[None, Never, Never]:
        self._stopped = True
        group, self._pending = self._pending, []
        return fx.all([done.fail(_stopped_error()) for _, done in group]).as_void


def _stopped_error() -> StorageError:
    return StorageError("the engine stopped before this write", operation="apply")
